"""Results → the report document. Each section is a Jinja2 template (``templates/*.md.j2``)
that receives its stage's result object as ``r`` and lays the section out in a small
Markdown subset. Every value a template prints is held out of that layout as a numbered
slot (:func:`_hold`), so the layout :mod:`capedyn.report.layout` reads into blocks is only
the templates' own text; the values enter the blocks as text spans. Both ``report.md`` and
``report.html`` are written from those blocks. Nothing here computes a number: it only
formats them."""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, Iterator, Mapping, Sequence

import jinja2

from ..data.tables import BENCHMARKS
from .config import RunConfig
from .document import Report
from .figures import CAPTIONS
from .formatting import cell, fmt, fmt_ci, paper
from .layout import read_layout, slot_token
from .s5_holdout import LOFO_MIN_MODELS, QUICK_LOFO_FAMILIES

__all__ = ["SECTIONS", "TITLE", "render_document", "render_markdown", "render_section",
           "section_document"]

TITLE = "capedyn reproduce: capability-coupling dynamics of language-model scaling"

SECTIONS: list[tuple[str, str]] = [
    ("data", "s1_data.md.j2"),
    ("coupling", "s2_coupling.md.j2"),
    ("ode", "s3_ode.md.j2"),
    ("posterior", "s4_posterior.md.j2"),
    ("holdout", "s5_holdout.md.j2"),
    ("frontier", "s6_frontier.md.j2"),
    ("steering", "s7_steering.md.j2"),
    ("intervals", "s8_intervals.md.j2"),
]
"""(result name, template) of each section, in report order. A section is written when
its result is present. To add a section, add its template and an entry here (and the
stage that computes its result in :mod:`capedyn.report.run`)."""


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _scale_range(c: Any) -> str:
    """The size range of one cascade scale (B): ``lo–hiB``, ``loB`` or open-ended ``loB+``."""
    if c.high_b and c.high_b != c.low_b:
        return f"{c.low_b:g}–{c.high_b:g}B"
    return f"{c.low_b:g}B" if c.high_b else f"{c.low_b:g}B+"


def _equation(terms: Mapping[str, float]) -> str:
    """``{"1": a, "z": b}`` → ``a + b·z`` with signs written out."""
    return " ".join(f"{'+' if v >= 0 else '−'} {abs(v):g}{'' if k == '1' else '·' + k}"
                    for k, v in terms.items()).lstrip("+ ")


def _nc_bound(v: Any) -> str:
    """An implied Nc or bound in billions: ∞ above the scan (tax side throughout)."""
    return "∞" if v is not None and v == math.inf else fmt(v)


class _Blocks(str):
    """Template output that is layout, not a value: a macro's table, a figure line (their
    own values are already held out as slots)."""


_SLOTS: ContextVar[list[str]] = ContextVar("capedyn_report_slots")
"""The values printed so far by the templates of the document being rendered."""


@contextmanager
def _collecting() -> Iterator[list[str]]:
    slots: list[str] = []
    token = _SLOTS.set(slots)
    try:
        yield slots
    finally:
        _SLOTS.reset(token)


def _hold(value: Any) -> str:
    """The slot standing for ``value`` in the layout; its text, on one line (no line break
    or control character), becomes a text span of the document. Blank text needs no slot."""
    text = _BREAKS.sub(" ", str(value))
    if not text.strip():
        return text
    slots = _SLOTS.get()
    slots.append(text)
    return slot_token(len(slots) - 1)


@jinja2.pass_context  # (also keeps Jinja2 from folding constants at compile time)
def _finalize(context: Any, value: Any) -> str:
    """Jinja2 ``finalize``: every printed value is held out as a slot, except layout
    (:class:`_Blocks`) that a template marks with ``|blocks``."""
    return value if isinstance(value, _Blocks) else _hold(value)


_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("capedyn.report", "templates"),
        autoescape=False,   # a layout, not a page: values are slots, escaped when written
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, finalize=_finalize)
    env.filters.update(blocks=_Blocks)
    env.filters.update(fmt=fmt, fmt_ci=fmt_ci, paper=paper, cell=cell,
                       g=lambda v: f"{v:g}", scale_range=_scale_range, equation=_equation,
                       nc_bound=_nc_bound)
    env.tests["finite"] = _finite
    return env


@lru_cache(maxsize=1)
def _paper_references() -> SimpleNamespace:
    """The papers' published values, by module (shown beside ours, never used in a fit)."""
    from ..coupling import running as coupling
    from ..models import coupling_ode as fit
    from ..coupling import frontier
    from ..inference import result as posterior_result
    from ..models import sindy

    return SimpleNamespace(
        coupling=coupling.PAPER_REFERENCE, fit=fit.PAPER_REFERENCE,
        frontier=frontier.PAPER_REFERENCE, cascade=frontier.CASCADE,
        posterior=posterior_result.POSTERIOR_PAPER_REFERENCE, sindy_hs=sindy.PAPER_HS_EQUATION)


def _figure(saved: Mapping[str, str] | None):
    def figure(stem: str) -> str:
        """The image line and caption of a figure the run saved (nothing if it did not)."""
        if saved is not None and stem not in saved:
            return ""
        caption = _hold((saved or {}).get(stem) or CAPTIONS.get(stem, ""))
        return _Blocks(f"![{stem.replace('_', ' ')}](figures/{stem}.png)\n\n*{caption}*")
    return figure


def _render(template: str, figures: Mapping[str, str] | None, **context: Any) -> str:
    tpl = _environment().get_template(template)
    return tpl.render(ref=_paper_references(), benchmarks=BENCHMARKS, nan=math.nan,
                      lofo_min_models=LOFO_MIN_MODELS, quick_lofo_families=QUICK_LOFO_FAMILIES,
                      figure=_figure(figures), **context)


def section_document(name: str, result: Any, cfg: RunConfig | None = None,
                     figures: Mapping[str, str] | None = None) -> Report:
    """One section's blocks from its stage result (``name`` as in :data:`SECTIONS`).
    ``figures`` maps the stems of saved figures to captions (None: place every figure the
    template names, with its standard caption)."""
    with _collecting() as slots:
        layout = _render(dict(SECTIONS)[name], figures, r=result, cfg=cfg or RunConfig())
    return read_layout(layout, slots)


def render_section(name: str, result: Any, cfg: RunConfig | None = None,
                   figures: Mapping[str, str] | None = None) -> str:
    """:func:`section_document` as Markdown text."""
    return section_document(name, result, cfg, figures).to_markdown()


def render_document(results: Mapping[str, Any], cfg: RunConfig, *, version: str,
                    generated: str, timings: Mapping[str, float] | None = None,
                    stages: Sequence[str] = (), figures: Mapping[str, str] | None = None
                    ) -> Report:
    """The whole report: title, introduction, one section per result present (in
    :data:`SECTIONS` order), and the run details (``timings`` in seconds per entry of
    ``stages`` and "total"; ``generated`` is the timestamp printed at the top)."""
    with _collecting() as slots:
        parts = [f"# {TITLE}",
                 _render("intro.md.j2", figures, cfg=cfg, version=version, generated=generated)]
        parts += [_render(template, figures, r=results[name], cfg=cfg)
                  for name, template in SECTIONS if results.get(name) is not None]
        parts.append(_render("closing.md.j2", figures, timings=dict(timings or {}),
                             stages=[*stages, "total"], budgets=asdict(cfg)))
    return read_layout("\n\n".join(parts), slots)


def render_markdown(results: Mapping[str, Any], cfg: RunConfig, **kwargs: Any) -> str:
    """:func:`render_document` as Markdown text."""
    return render_document(results, cfg, **kwargs).to_markdown()
