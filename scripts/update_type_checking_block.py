"""Rewrite the ``if TYPE_CHECKING:`` import block of capedyn/__init__.py from ``_EXPORTS``.

Run after adding or removing a public name: ``python scripts/update_type_checking_block.py``.
tests/test_api.py fails while the block and ``_EXPORTS`` disagree.
"""

from __future__ import annotations

import re
import textwrap
from collections import defaultdict
from pathlib import Path

INIT = Path(__file__).resolve().parents[1] / "capedyn" / "__init__.py"


def block(exports: dict[str, str]) -> str:
    by: dict[str, list[str]] = defaultdict(list)
    for name, module in exports.items():
        by[module].append(name)
    lines = ["if TYPE_CHECKING:  # the lazy exports above, spelled out for type checkers and IDEs",
             "    # generated from _EXPORTS by scripts/update_type_checking_block.py"]
    for module in sorted(by):
        names = ", ".join(sorted(by[module], key=str.lower))
        body = textwrap.fill(names + ",", width=88, initial_indent=" " * 8,
                             subsequent_indent=" " * 8)
        lines += [f"    from .{module} import (", body, "    )"]
    return "\n".join(lines) + "\n"


def main() -> None:
    src = INIT.read_text(encoding="utf-8")
    ns: dict = {}
    start = src.index("_EXPORTS: dict[str, str] = {")
    end = src.index("\n}\n", start) + 3
    exec("from typing import Any\n" + src[start:end], ns)
    new = re.sub(r"if TYPE_CHECKING:.*?\n(?=\n\ndef __getattr__)", block(ns["_EXPORTS"]),
                 src, count=1, flags=re.S)
    INIT.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
