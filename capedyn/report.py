"""The whole CAPE analysis in one call: :func:`reproduce` runs every stage on the shipped
data and writes a self-contained report.

Stages, in order (each prints its progress and elapsed time on stderr):

1. ``data``       load and validate both shipped tables;
2. ``coupling``   running coupling γ12, population fit, sign test, family Nc, the Nc
                  bootstrap (10^4 resamples), the algebraic phase classifier;
3. ``ode``        the coupling ODE fit on every complete family, on Pythia alone for
                  the paper's in-sample check, and the per-phase (tax vs bonus) fits;
4. ``posterior``  per-family Nc posteriors (NumPyro NUTS): the coupling-level model, and
                  the ODE-level model (likelihood through the Diffrax solve; 4 chains ×
                  150 draws, chosen by measurement to fit the 10-minute budget; skipped
                  with ``quick``);
5. ``holdout``    SINDy and the held-out family benchmark (P1: Pythia → Llama-2; P2:
                  leave one family out), every method on the same splits;
6. ``frontier``   the SWE → GPQA population line, the h-field, per-lab means,
                  leave-one-lab-out, saturation.

Output folder::

    report.md          the report (figures linked from figures/)
    report.html        the same report, self-contained (figures embedded as base64 PNG)
    figures/*.png      every figure
    summary.json       headline numbers, per-stage timings, version, seed, quick flag

Every number in the report is computed in the run; the papers' figures appear beside them
in columns labelled "paper", taken from the modules' ``PAPER_REFERENCE`` dictionaries.
``quick=True`` shortens every fit and sample count and says so at the top of the report.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ._errors import InputError, OutputError
from ._io import atomic_write_json, atomic_write_text, check_output_dir
from ._json import to_jsonable
from .data import BENCHMARKS
from ._jax import scoped_x64

__all__ = ["reproduce", "RunConfig", "Report", "STAGES", "FIGURES", "SUMMARY_KEYS"]

STAGES: tuple[str, ...] = ("data", "coupling", "ode", "posterior", "holdout", "frontier")

FIGURES: dict[str, str] = {
    "tqa_vs_n": "TruthfulQA against size by family, with the tax/bonus regions",
    "gamma12_vs_n": "running coupling γ12 against size, population fit and Nc interval",
    "ode_trajectories": "coupling-ODE trajectories against the data, per family",
    "nc_forest": "per-family Nc posterior (forest plot)",
    "holdout_errors": "held-out family error by method",
    "frontier_h": "frontier SWE-bench vs GPQA with the h-field",
}
"""Figure file stem → what it shows; every one is written to ``figures/<stem>.png``."""

SUMMARY_KEYS: tuple[str, ...] = ("nc_b", "nc_ci95_b", "llama2_rel_mae_pct",
                                 "lofo_mean_rel_mae_pct", "frontier_slope", "frontier_intercept")
"""Keys :func:`reproduce` always writes to ``summary.json`` (beside quick, seed, timings)."""


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class RunConfig:
    """Budgets of one run. ``quick`` shortens every fit and sample count (CI, smoke tests)."""

    quick: bool = False
    seed: int = 0
    n_bootstrap: int = 10_000          # Nc bootstrap resamples (paper: 10^4)
    frontier_bootstrap: int = 2_000    # resamples of the SWE → GPQA line
    ode_steps: int | None = None       # Optax steps of every coupling-ODE fit (None: the
    pythia_steps: int | None = None    #   CouplingODE default, as in the shipped fits and
    holdout_steps: int | None = None   #   in capedyn.heldout's benchmark)
    nuts_chains: int | None = None     # coupling-level NUTS (None: the posterior module's
    nuts_samples: int | None = None    #   SAMPLER_DEFAULTS, tuned there for R-hat ≤ 1.01)
    nuts_warmup: int | None = None
    ode_posterior: bool = True         # ODE-level NUTS (a solve per family per gradient)
    ode_nuts_chains: int | None = None  # None: the posterior module's SAMPLER_DEFAULTS["ode"],
    ode_nuts_samples: int | None = None  #   which converge (R-hat ≤ 1.01, no divergences)

    @classmethod
    def make(cls, quick: bool = False, seed: int = 0) -> "RunConfig":
        if not quick:
            return cls(quick=False, seed=seed)
        return cls(quick=True, seed=seed, n_bootstrap=1_000, frontier_bootstrap=300,
                   ode_steps=150, pythia_steps=150, holdout_steps=60, nuts_chains=2,
                   nuts_samples=150, nuts_warmup=150, ode_posterior=False)


# --------------------------------------------------------------------------- the document

@dataclass
class _Block:
    kind: str
    payload: Any


class Report:
    """A small document model rendered both to Markdown and to self-contained HTML."""

    def __init__(self, title: str):
        self.title = title
        self.blocks: list[_Block] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(_Block("h", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(_Block("p", text))

    def callout(self, text: str) -> None:
        self.blocks.append(_Block("callout", text))

    def bullets(self, items: Iterable[str]) -> None:
        self.blocks.append(_Block("ul", list(items)))

    def table(self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
              caption: str | None = None) -> None:
        rows = list(rows)
        cols = list(columns or (rows[0].keys() if rows else []))
        self.blocks.append(_Block("table", (cols, [[_cell(r.get(c)) for c in cols]
                                                   for r in rows], caption)))

    def figure(self, relpath: str, caption: str) -> None:
        self.blocks.append(_Block("figure", (relpath, caption)))

    # ---- rendering
    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b.kind == "h":
                level, text = b.payload
                out += ["#" * level + " " + text, ""]
            elif b.kind == "p":
                out += [b.payload, ""]
            elif b.kind == "callout":
                out += ["> " + line for line in b.payload.splitlines()] + [""]
            elif b.kind == "ul":
                out += [f"- {item}" for item in b.payload] + [""]
            elif b.kind == "table":
                cols, body, caption = b.payload
                if caption:
                    out += [f"*{caption}*", ""]
                if not body:
                    out += ["(no rows)", ""]
                    continue
                esc = lambda s: str(s).replace("|", "\\|")
                out.append("| " + " | ".join(esc(c) for c in cols) + " |")
                out.append("|" + "|".join("---" for _ in cols) + "|")
                out += ["| " + " | ".join(esc(v) for v in row) + " |" for row in body]
                out.append("")
            elif b.kind == "figure":
                path, caption = b.payload
                alt = Path(path).stem.replace("_", " ")
                out += [f"![{alt}]({path})", "", f"*{caption}*", ""]
        return "\n".join(out).rstrip() + "\n"

    def to_html(self, root: Path) -> str:
        parts = [f"<h1>{_inline(self.title)}</h1>"]
        for b in self.blocks:
            if b.kind == "h":
                level, text = b.payload
                parts.append(f"<h{level}>{_inline(text)}</h{level}>")
            elif b.kind == "p":
                parts.append(f"<p>{_inline(b.payload)}</p>")
            elif b.kind == "callout":
                parts.append(f'<div class="callout">{_inline(b.payload)}</div>')
            elif b.kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.payload)
                             + "</ul>")
            elif b.kind == "table":
                cols, body, caption = b.payload
                cap = f"<caption>{_inline(caption)}</caption>" if caption else ""
                head = "".join(f"<th>{_inline(c)}</th>" for c in cols)
                rows = "".join("<tr>" + "".join(
                    f'<td class="{"num" if _numeric_text(v) else "txt"}">{_inline(v)}</td>'
                    for v in row) + "</tr>" for row in body)
                parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead>"
                             f"<tbody>{rows}</tbody></table>")
            elif b.kind == "figure":
                path, caption = b.payload
                data = base64.b64encode((root / path).read_bytes()).decode("ascii")
                parts.append(f'<figure><img alt="{html.escape(caption)}" '
                             f'src="data:image/png;base64,{data}"/>'
                             f"<figcaption>{_inline(caption)}</figcaption></figure>")
        return _HTML_PAGE.format(title=html.escape(self.title), body="\n".join(parts))


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1000px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }}
h1 {{ border-bottom: 2px solid #444; padding-bottom: .2em; }}
h2 {{ border-bottom: 1px solid #ccc; padding-bottom: .15em; margin-top: 2em; }}
table {{ border-collapse: collapse; margin: .8em 0 1.2em; font-size: .88em; }}
caption {{ caption-side: top; text-align: left; font-style: italic; padding-bottom: .3em; }}
th, td {{ border: 1px solid #ccc; padding: .25em .6em; }}
th {{ background: #f0f0f0; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tbody tr:nth-child(even) {{ background: #fafafa; }}
code {{ background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }}
figure {{ margin: 1em 0 1.6em; }}
figure img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ font-style: italic; font-size: .9em; color: #555; }}
.callout {{ background: #fff4ce; border-left: 6px solid #e0a800; padding: .6em 1em;
            margin: 1em 0; font-weight: 600; }}
</style></head>
<body>
{body}
</body></html>
"""


def _inline(text: Any) -> str:
    """Escape for HTML, then render the two inline marks the report uses: **bold**, `code`."""
    s = html.escape(str(text))
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def _numeric_text(v: str) -> bool:
    return bool(re.fullmatch(r"[-+−]?[\d.,]+(e[-+]?\d+)?( ?[%B])?", str(v).strip()))


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return fmt(float(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_cell(x) for x in v) + "]"
    return str(v)


def fmt(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (at least one decimal for |v| < 1000);
    None/NaN as an en dash."""
    if v is None:
        return "–"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = max(digits - 1 - mag, 0)
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{decimals}f}"


def fmt_ci(ci: Sequence[float] | None, digits: int = 3, unit: str = "") -> str:
    if ci is None:
        return "–"
    lo, hi = ci
    return f"[{fmt(lo, digits)}{unit}, {fmt(hi, digits)}{unit}]"


def paper(v: Any, unit: str = "") -> str:
    """A paper reference value exactly as published (no re-rounding)."""
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(paper(x, unit) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}{unit}"
    return f"{v}{unit}"


# --------------------------------------------------------------------------- the run

class _Run:
    """State shared by the stages: config, output folder, report, results, timings."""

    def __init__(self, out: Path, cfg: RunConfig, progress: bool):
        self.out, self.cfg, self.progress = out, cfg, progress
        self.fig_dir = out / "figures"
        self.report = Report("capedyn reproduce: capability-coupling dynamics of "
                             "language-model scaling")
        self.results: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.figures: list[str] = []
        self.t0 = time.perf_counter()

    def log(self, msg: str) -> None:
        if self.progress:
            sys.stderr.write(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}\n")
            sys.stderr.flush()

    @contextmanager
    def stage(self, name: str):
        k = STAGES.index(name) + 1
        self.log(f"stage {k}/{len(STAGES)} {name}: start")
        t = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t, 2)
        self.log(f"stage {k}/{len(STAGES)} {name}: done in {self.timings[name]:.1f}s")

    def save_figure(self, stem: str, draw: Callable[[], Any], caption: str) -> None:
        """``draw()`` returns an Axes or a Figure (capedyn.plotting's convention); it is
        written as ``figures/<stem>.png`` (atomically) and added to the report."""
        from .plotting import save_figure

        path = self.fig_dir / f"{stem}.png"
        drawn = draw()
        save_figure(getattr(drawn, "figure", drawn), path, dpi=110)
        rel = f"figures/{stem}.png"
        self.figures.append(rel)
        self.report.figure(rel, caption)


RUN_FILES: tuple[str, ...] = ("summary.json", "report.md", "report.html")
"""A folder holding any of these holds a previous run."""


@scoped_x64
def reproduce(out_dir: str | Path = "reproduce_out", quick: bool = False, seed: int = 0,
              progress: bool = True, force: bool = False) -> dict[str, Any]:
    """Run the whole analysis and write ``report.md``, ``report.html``, ``figures/*.png``
    and ``summary.json`` into ``out_dir``; return the summary dict.

    ``out_dir`` is checked before any computation: an ``OSError``
    (:class:`~capedyn._errors.OutputError`) names it when it cannot be created or
    written, when it is a file, when it is a non-empty folder that holds no run, and when
    it holds a previous run and ``force`` is False. The run is built in a temporary
    sibling folder (``.<name>.partial-*``) and moved into place only when complete, so
    ``out_dir`` never mixes two runs and a failed or interrupted run leaves it as it was
    (the temporary folder is removed). ``force=True`` replaces a previous run. A write
    that fails (e.g. a full disk) names the file, under ``out_dir``.

    ``quick`` shortens every fit and sample count (the report says so at the top).
    ``seed`` seeds every random step (bootstrap, NUTS, fits). Progress lines (stage,
    elapsed seconds) go to stderr unless ``progress`` is False.
    """
    from . import __version__

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}")
    out = _writable(out_dir, force=force)
    cfg = RunConfig.make(quick=bool(quick), seed=int(seed))
    stage_dir = _staging_dir(out, out_dir)
    try:
        (stage_dir / "figures").mkdir()
        run = _Run(stage_dir, cfg, progress)
        _intro(run)
        for name in STAGES:
            with run.stage(name):
                _STAGE_FUNCS[name](run)
        run.timings["total"] = round(time.perf_counter() - run.t0, 2)
        _closing(run)

        summary = {
            "package": "capedyn", "version": __version__, "quick": cfg.quick, "seed": cfg.seed,
            **{k: run.summary.get(k) for k in SUMMARY_KEYS},
            **{k: v for k, v in run.summary.items() if k not in SUMMARY_KEYS},
            "config": asdict(cfg),
            "timings_s": dict(run.timings),
            "files": ["report.md", "report.html", "summary.json", *run.figures],
        }
        atomic_write_text(stage_dir / "report.md", run.report.to_markdown())
        atomic_write_text(stage_dir / "report.html", run.report.to_html(stage_dir))
        atomic_write_json(stage_dir / "summary.json", to_jsonable(summary))
        _move_into_place(stage_dir, out, out_dir)
    except OSError as exc:
        shutil.rmtree(stage_dir, ignore_errors=True)
        if isinstance(exc, OutputError) and str(stage_dir) in str(exc):
            # name the file the user will look for, not the temporary folder
            err = OutputError(str(exc).replace(str(stage_dir), str(out_dir).rstrip("/"))
                              + f"; nothing was changed in '{out_dir}'")
            err.errno = exc.errno
            raise err from None
        raise
    except BaseException:
        shutil.rmtree(stage_dir, ignore_errors=True)
        raise
    run.log(f"wrote {out / 'report.md'}, report.html, summary.json and "
            f"{len(run.figures)} figures in {run.timings['total']:.1f}s")
    return to_jsonable(summary)


def _writable(path: str | Path, force: bool = False) -> Path:
    """Check the output folder before any work; create nothing. Refuses a file, a place
    where nothing can be written, a non-empty folder that holds no run, and (unless
    ``force``) a folder that holds a previous run. Messages name the folder as given."""
    given = str(path)
    head = f"cannot write to output folder '{given}'"
    p = Path(path).expanduser()
    if given.strip() == "":
        raise OutputError(f"{head}: the path is empty; give a folder name (--out)")
    if os.path.lexists(p) and not p.is_dir():
        raise OutputError(f"{head}: it is an existing file; choose a folder (--out)")
    if p.is_dir():
        entries = sorted(e.name for e in p.iterdir())
        holds_run = any(name in entries for name in RUN_FILES)
        foreign = [e for e in entries if not _run_entry(p / e)]
        if entries and not holds_run:
            raise OutputError(f"{head}: the folder is not empty and holds no capedyn run "
                              f"({_names(entries)}); choose a new or empty folder (--out)")
        if holds_run and foreign:
            raise OutputError(f"{head}: it holds a previous run and other files "
                              f"({_names(foreign)}), which a new run would remove; choose "
                              "another folder (--out)")
        if holds_run and not force:
            raise OutputError(f"{head}: it holds a previous run; pass --force (force=True) "
                              "to replace it, or choose another folder (--out)")
        if os.path.samefile(p, Path.cwd()):
            raise OutputError(f"{head}: it is the current folder; choose a folder below it")
    try:
        check_output_dir(p.parent if str(p.parent) else Path("."), "output folder")
    except OSError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise OutputError(f"{head} ({reason}); choose a writable output folder (--out)") from None
    return p


def _names(entries: Sequence[str], n: int = 5) -> str:
    return ", ".join(entries[:n]) + (f" and {len(entries) - n} more" if len(entries) > n else "")


def _run_entry(path: Path) -> bool:
    """Whether ``path`` (an entry of an output folder) is something a run writes."""
    if path.name in RUN_FILES:
        return path.is_file()
    if path.name == "figures" and path.is_dir():
        return all(f.is_file() and f.suffix.lower() == ".png" for f in path.iterdir())
    return False


def _staging_dir(out: Path, given: str | Path) -> Path:
    """A fresh temporary folder next to ``out`` (same file system, so the final move is
    a rename), with the permissions of a normal folder."""
    import tempfile

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as exc:
        raise OutputError(f"cannot write to output folder '{given}' "
                          f"({exc.strerror or exc}); choose a writable output folder (--out)") from None
    return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _move_into_place(stage_dir: Path, out: Path, given: str | Path) -> None:
    """Rename the complete run onto ``out``; a previous run there (already allowed by
    :func:`_writable`) is moved aside first and deleted once the new one is in place."""
    old = None
    if out.is_dir() and any(out.iterdir()):
        old = Path(_sibling_name(out, ".old-"))
        os.rename(out, old)
    elif out.is_dir():
        out.rmdir()
    try:
        os.rename(stage_dir, out)
    except OSError as exc:
        if old is not None:
            os.rename(old, out)
        raise OutputError(f"cannot move the finished run into '{given}' "
                          f"({exc.strerror or exc})") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _sibling_name(out: Path, tag: str) -> str:
    """An unused sibling name ``.<name><tag><random>`` of ``out``."""
    import secrets

    while True:
        cand = out.parent / f".{out.name}{tag}{secrets.token_hex(4)}"
        if not os.path.lexists(cand):
            return str(cand)


def _intro(run: _Run) -> None:
    from . import __version__

    cfg, rep = run.cfg, run.report
    if cfg.quick:
        rep.callout(
            "QUICK RUN (--quick): short fits and few samples "
            f"({cfg.n_bootstrap} bootstrap resamples, {cfg.ode_steps} ODE fit steps, "
            f"{cfg.holdout_steps} steps per held-out fit, a 2×2 SINDy grid, NUTS "
            f"{cfg.nuts_chains}×{cfg.nuts_samples} draws, no per-phase fits, no ODE-level "
            "posterior). The numbers "
            "below are a smoke test of the pipeline, NOT the analysis: run "
            "`capedyn reproduce` without --quick for it.")
    rep.para(f"Generated by capedyn {__version__} on {time.strftime('%Y-%m-%d %H:%M')}, "
             f"seed {cfg.seed}. Every number in this report was computed in this run from "
             "the tables shipped with capedyn (`benchmarks_data/`). Where the CAPE papers "
             "(\"Lying Is Just a Phase\", Paper 3A; \"The Growing Pains of Frontier Models\", "
             "Paper 3B) give a figure, it is shown beside ours in a column labelled **paper**; "
             "the papers used their own data versions, so differences are expected and are "
             "findings, not errors.")
    rep.para("Units: scores in percent (0–100); N in billions of parameters (B); "
             "x = log10 N with N in parameters; γ12 in TruthfulQA points per HellaSwag "
             "point; h in GPQA points.")


def _closing(run: _Run) -> None:
    rep = run.report
    rep.heading("Run details")
    rows = [{"stage": s, "seconds": f"{run.timings.get(s, float('nan')):.1f}"}
            for s in [*STAGES, "total"]]
    rep.table(rows, ["stage", "seconds"], caption="wall time per stage")
    rep.table([{"setting": k, "value": "estimator default" if v is None else v}
               for k, v in asdict(run.cfg).items()],
              ["setting", "value"], caption="budgets of this run")


# --------------------------------------------------------------------------- stage 1: data

def _stage_data(run: _Run) -> None:
    from .data import complete_models, load_base_models, load_frontier_models

    df = load_base_models()
    fdf = load_frontier_models()
    complete = complete_models(df)
    run.results.update(df=df, fdf=fdf, complete=complete)
    rep = run.report
    rep.heading("1. Data")
    rep.para(f"Base models: **{len(df)}** models in **{df['family'].nunique()}** families "
             f"({len(complete)} with all five scores, which the ODE and the held-out "
             f"benchmark need). Frontier models: **{len(fdf)}** from "
             f"**{fdf['lab'].nunique()}** labs. Both tables passed validation "
             "(`load_base_models`, `load_frontier_models`).")
    rows = []
    for fam, g in df.groupby("family", sort=False):
        rows.append({"family": fam, "models": len(g),
                     "complete": int(g[list(BENCHMARKS)].notna().all(axis=1).sum()),
                     "smallest (B)": float(g["params_b"].min()),
                     "largest (B)": float(g["params_b"].max()),
                     "source": ", ".join(dict.fromkeys(g["source"].astype(str)))})
    rep.table(rows, caption="families in the base-model table")
    run.summary["n_base_models"] = len(df)
    run.summary["n_frontier_models"] = len(fdf)


# --------------------------------------------------------------------------- stage 2: coupling

def _stage_coupling(run: _Run) -> None:
    from . import coupling as cp

    cfg, rep, df = run.cfg, run.report, run.results["df"]
    ref = cp.PAPER_REFERENCE
    table = cp.running_coupling(df)
    paper14 = list(cp.WEB_TRAINED_PAPER)
    web = cp.web_trained_families(df)
    fit_all = cp.population_fit(table)
    fit_p14 = cp.population_fit(table, families=paper14)
    run.log(f"coupling: Nc bootstrap, {cfg.n_bootstrap} resamples")
    boot = cp.bootstrap_nc(table, n_resamples=cfg.n_bootstrap, seed=cfg.seed, families=paper14)
    boot_web = cp.bootstrap_nc(table, n_resamples=cfg.n_bootstrap, seed=cfg.seed,
                               families=[f for f in web if f in set(table["family"])])
    sign_all = cp.sign_test(table)
    sign_p14 = cp.sign_test(table, families=paper14)
    fams = cp.family_couplings(table)
    run.results.update(pairs=table, fit=fit_all, boot=boot, family_nc=fams)

    rep.heading("2. Running coupling γ12 and the critical scale Nc")
    used = table[~table["skipped"]]
    rep.para(f"{len(table)} consecutive within-family pairs, {int(table['skipped'].sum())} "
             f"skipped as ill-conditioned (|ΔHS| < {cp.MIN_DELTA_HS:g} points). "
             f"γ12 < 0 (tax) in {int((used['gamma12'] < 0).sum())} pairs, = 0 in "
             f"{int((used['gamma12'] == 0).sum())}, > 0 (bonus) in "
             f"{int((used['gamma12'] > 0).sum())}.")

    pf = ref["population_fit"]
    rows = []
    for label, f in (("all families", fit_all), ("paper's 14 web-trained models", fit_p14)):
        rows.append({"fit": label, "pairs": f.n, "A": f.A, "B": f.B, "R²": f.r2,
                     "Nc (B)": f.nc_b, "Theil–Sen A": f.robust_A, "Theil–Sen B": f.robust_B,
                     "Theil–Sen Nc (B)": f.robust_nc_b})
    rows.append({"fit": "**paper**", "pairs": None, "A": paper(pf["A"]), "B": paper(pf["B"]),
                 "R²": paper(pf["r2"]), "Nc (B)": "≈ " + paper(pf["nc_b"]),
                 "Theil–Sen A": None, "Theil–Sen B": None, "Theil–Sen Nc (B)": None})
    rep.table(rows, caption="population fit γ12 = A·log10 N + B (OLS; Theil–Sen beside it); "
              "Nc = 10^(−B/A)")

    pb = ref["nc_bootstrap_paper14"]
    rows = [
        {"resampled pairs": f"Pythia, Llama-1, Llama-2 ({boot.n_pairs} pairs)",
         "median Nc (B)": boot.median_b, "68% CI (B)": fmt_ci(boot.ci68_b),
         "95% CI (B)": fmt_ci(boot.ci95_b),
         "valid / resamples": f"{boot.n_valid} / {boot.n_resamples}"},
        {"resampled pairs": f"all web-trained families ({boot_web.n_pairs} pairs)",
         "median Nc (B)": boot_web.median_b, "68% CI (B)": fmt_ci(boot_web.ci68_b),
         "95% CI (B)": fmt_ci(boot_web.ci95_b),
         "valid / resamples": f"{boot_web.n_valid} / {boot_web.n_resamples}"},
        {"resampled pairs": "**paper** (14 web-trained models)",
         "median Nc (B)": paper(pb["median_b"]), "68% CI (B)": paper(pb["ci68_b"]),
         "95% CI (B)": paper(pb["ci95_b"]), "valid / resamples": f"– / {pb['n_resamples']}"},
    ]
    rep.table(rows, caption="bootstrap of Nc (resampling usable pairs; resamples without an "
              "upward crossing are dropped and counted)")

    from .plotting import family_colours, plot_gamma12, plot_tqa_phases

    colours = family_colours(df["family"])
    run.save_figure("gamma12_vs_n", lambda: plot_gamma12(table, fit_all, boot, colours=colours),
                    f"{FIGURES['gamma12_vs_n']}: every usable pair at the geometric mean of "
                    "its two sizes; OLS (solid) and Theil–Sen (dashed) population fits over all "
                    "families; shaded: 95% bootstrap interval of Nc (Pythia, Llama-1, Llama-2).")
    run.save_figure("tqa_vs_n", lambda: plot_tqa_phases(df, boot, colours=colours),
                    f"{FIGURES['tqa_vs_n']}. Background: tax region below the 95% Nc interval, "
                    "bonus region above it, the interval itself grey. Markers: filled when the "
                    "algebraic classifier TQA > sqrt(0.187·HS) puts the model in the bonus "
                    "phase, hollow in the tax phase.")

    st = ref["sign_test"]
    rows = [{"pairs": "all families", "correct": sign_all.correct, "tested": sign_all.total,
             "violations": "; ".join(f"{v['family']} {v['model_from']}→{v['model_to']} "
                                     f"(γ12 = {fmt(v['gamma12'])})"
                                     for v in sign_all.violations) or "none"},
            {"pairs": "Pythia, Llama-1, Llama-2", "correct": sign_p14.correct,
             "tested": sign_p14.total,
             "violations": "; ".join(f"{v['family']} {v['model_from']}→{v['model_to']}"
                                     for v in sign_p14.violations) or "none"},
            {"pairs": "**paper**", "correct": st["correct"], "tested": st["total"],
             "violations": "none"}]
    rep.table(rows, caption=f"sign test: pairs centred below {sign_all.below_b:g}B should have "
              f"γ12 ≤ 0, above {sign_all.above_b:g}B γ12 > 0")

    rep.table(_checks_table(df, table, ref, cp), ["check", "this run", "paper"],
              caption="point checks against the paper")

    fam_rows = []
    for r in fams.itertuples(index=False):
        ref_nc = ref["family_nc_b"].get(r.family)
        fam_rows.append({"family": r.family, "pairs": r.n_pairs, "γ0 (per decade)": r.gamma0,
                         "Nc (B)": r.nc_b if math.isfinite(r.nc_b) else r.crossing,
                         "where": r.nc_position,
                         "paper Nc (B)": paper(ref_nc) if ref_nc is not None else "–"})
    for fam, ref_nc in ref["family_nc_b"].items():
        if fam not in set(fams["family"]):
            fam_rows.append({"family": fam, "pairs": int((used["family"] == fam).sum()),
                             "γ0 (per decade)": None, "Nc (B)": "too few pairs",
                             "where": "–", "paper Nc (B)": paper(ref_nc)})
    rep.table(fam_rows, caption="per-family fit γ12(N, D) = γ0(D)·log10(N / Nc(D)) "
              "(families with ≥ 2 usable pairs)")
    valid = fams[np.isfinite(fams["nc_b"]) & (fams["nc_position"] == "within tested range")]
    if len(valid):
        lo, hi = float(valid["nc_b"].min()), float(valid["nc_b"].max())
        rep.para(f"Family Nc within the tested range spans {fmt(lo)}B to {fmt(hi)}B "
                 f"(a {fmt(hi / lo, 2)}× range; paper: OPT ≈ 0.12B to Falcon ≈ 7B, 60×).")

    ph = cp.phase_classifier(df["hellaswag"].to_numpy(), df["truthfulqa"].to_numpy())
    counts = pd.Series(ph.phase).value_counts()
    rep.para(f"Algebraic classifier over all {len(df)} base models: "
             f"{int(counts.get('bonus', 0))} in the bonus phase (TQA > TQA_c), "
             f"{int(counts.get('tax', 0))} in the tax phase.")

    run.summary.update(
        nc_b=boot.median_b, nc_ci95_b=list(boot.ci95_b), nc_ci68_b=list(boot.ci68_b),
        nc_definition=("median of the Nc bootstrap over the usable pairs of Pythia, Llama-1 "
                       "and Llama-2 (the paper's 14 web-trained models), in billions"),
        population_fit=fit_all.to_dict(),
        sign_test={"correct": sign_all.correct, "total": sign_all.total})


def _checks_table(df, table, ref, cp) -> list[dict[str, str]]:
    rows = []
    py = df[df["family"] == "Pythia"].dropna(subset=["hellaswag", "truthfulqa"])
    if len(py) >= 3:
        r = float(np.corrcoef(py["hellaswag"], py["truthfulqa"])[0, 1])
        rows.append({"check": f"r(HS, TQA) within Pythia ({len(py)} models)", "this run": fmt(r),
                     "paper": paper(ref["pythia_r_hs_tqa"])})
    olmo = [r for r in table.itertuples(index=False) if r.family == "OLMo"]
    for r in olmo:
        g = df.set_index("model")
        rows.append({"check": f"OLMo γ12 {r.model_from}→{r.model_to}",
                     "this run": f"{fmt(r.gamma12)} (TQA {g.loc[r.model_from, 'truthfulqa']:g} → "
                                 f"{g.loc[r.model_to, 'truthfulqa']:g}, HS "
                                 f"{g.loc[r.model_from, 'hellaswag']:g} → "
                                 f"{g.loc[r.model_to, 'hellaswag']:g})",
                     "paper": "{:.3f} (TQA {:.1f} → {:.1f}, HS {:.1f} → {:.1f})".format(
                         ref["olmo_1b_7b"]["gamma12"], *ref["olmo_1b_7b"]["tqa"],
                         *ref["olmo_1b_7b"]["hs"])})
    opt = df[df["family"] == "OPT"].set_index("params_b")
    for key, (a, b) in (("2.7B->6.7B", (2.7, 6.7)), ("6.7B->30B", (6.7, 30.0))):
        if a in opt.index and b in opt.index:
            g = ((opt.loc[b, "truthfulqa"] - opt.loc[a, "truthfulqa"])
                 / (opt.loc[b, "hellaswag"] - opt.loc[a, "hellaswag"]))
            between = int(((opt.index > a) & (opt.index < b)).sum())
            note = f" (span over {between} intermediate model)" if between else ""
            rows.append({"check": f"OPT γ12 {key.replace('->', '→')}{note}",
                         "this run": fmt(float(g)), "paper": paper(ref["opt"][key])})
    for r in table[table["family"] == "OPT"].itertuples(index=False):
        if r.params_b_from >= 6.7 and r.params_b_to <= 30:
            rows.append({"check": f"OPT γ12 {r.model_from}→{r.model_to} (consecutive)",
                         "this run": fmt(r.gamma12), "paper": "–"})
    for m in df[df["family"] == "OLMo"].itertuples(index=False):
        ph = cp.phase_classifier(m.hellaswag, m.truthfulqa)
        rows.append({"check": f"classifier on {m.model}: TQA_c vs measured TQA (fractions)",
                     "this run": f"{ph.tqa_critical_fraction:.4f} vs {m.truthfulqa / 100:.4f} "
                                 f"→ {ph.phase}",
                     "paper": f"{ref['classifier_olmo']['tqa_critical']:.4f} vs "
                              f"{ref['classifier_olmo']['tqa_measured']:.4f}"})
    return rows


# --------------------------------------------------------------------------- figures

# --------------------------------------------------------------------------- stage 6: frontier

def _stage_frontier(run: _Run) -> None:
    from . import frontier as fr

    cfg, rep, fdf, df = run.cfg, run.report, run.results["fdf"], run.results["df"]
    ref = fr.PAPER_REFERENCE
    line = fr.population_line(fdf, n_bootstrap=cfg.frontier_bootstrap, seed=cfg.seed)
    rep.heading("6. Frontier models: the h-field")
    rows = [{"line": f"this run ({line.n} frozen models)", "slope a": line.slope,
             "a 95% CI": fmt_ci(line.slope_ci), "intercept b": line.intercept,
             "b 95% CI": fmt_ci(line.intercept_ci), "r": line.r},
            {"line": f"**paper** ({ref['n_models']} models, {ref['n_labs']} labs)",
             "slope a": paper(ref["slope"]), "a 95% CI": "–",
             "intercept b": paper(ref["intercept"]), "b 95% CI": "–", "r": paper(ref["r"])}]
    rep.table(rows, caption="population line GPQA = a·SWE + b (least squares; intervals from "
              f"{line.n_bootstrap} case resamples)")

    we = ref["worked_example"]
    ours_pred = float(line.predict(we["swe"]))
    ours_h = fr.h_field(we["swe"], we["gpqa"], line.slope, line.intercept)
    paper_line_h = fr.h_field(we["swe"], we["gpqa"], ref["slope"], ref["intercept"])
    rep.table([
        {"worked example (SWE 87.6, GPQA 94.2)": "predicted GPQA",
         "our line": fmt(ours_pred), "paper's line, computed here":
             fmt(ref["slope"] * we["swe"] + ref["intercept"]), "paper": paper(we["predicted_gpqa"])},
        {"worked example (SWE 87.6, GPQA 94.2)": "h", "our line": f"{ours_h:+.1f}",
         "paper's line, computed here": f"{paper_line_h:+.1f}", "paper": f"{we['h']:+.1f}"},
    ], caption="the papers' worked example: h = GPQA − (a·SWE + b)")

    labs = fr.lab_summary(fdf, line)
    rows = []
    for e in labs:
        h_paper_def = e["mean_h_core"] if e["mean_h_core"] is not None else e["mean_h"]
        rows.append({"lab": e["lab"], "models": e["n"], "mean h": e["mean_h"],
                     "mean h (paper's definition)": h_paper_def,
                     "paper mean h": paper(ref["lab_mean_h"].get(e["lab"])),
                     "lab slope": e["slope"]})
    rep.table(rows, caption="per-lab field against our line (paper's definition: core rows "
              "where the lab has any); paper lab slopes range "
              f"{paper(ref['lab_slope_range'])}")
    lolo = fr.leave_one_lab_out(fdf)
    rep.para(f"Leave-one-lab-out: refit the line without each lab and predict its GPQA from "
             f"SWE. Mean MAE over the {lolo['n_labs']} labs with ≥ {lolo['min_models']} models: "
             f"**{fmt(lolo['mean_mae'])}** GPQA points (paper: {paper(ref['leave_one_lab_out_mae'])}); "
             f"over all {lolo['n_labs_all']} labs {fmt(lolo['mean_mae_all'])}; pooled over "
             f"every held-out model {fmt(lolo['pooled_mae'])}.")

    sat_rows = []
    for table, cols, what in ((fdf, ("swe_bench", "gpqa_diamond"), "frontier"),
                              (df, BENCHMARKS, "base models")):
        for c in cols:
            s = fr.saturation(table, c)
            sat_rows.append({"benchmark": c, "table": what, "top-5 spread (points)": s["spread"],
                             "spent (< 2 points)": s["spent"],
                             "leader": f"{s['leaders'][0]['model']} ({s['leaders'][0]['value']:g})"})
    rep.table(sat_rows, caption="saturation: a benchmark is spent when its top five models sit "
              "within 2 points (paper's rule)")

    fam = run.results.get("family_nc")
    nc1 = "–"
    if fam is not None:
        ok = fam[np.isfinite(fam["nc_b"]) & (fam["nc_position"] == "within tested range")]
        if len(ok):
            nc1 = f"{fmt(ok['nc_b'].min())}–{fmt(ok['nc_b'].max())}B (family fits, this run)"
    casc = []
    for c in fr.CASCADE:
        rng = f"{c.low_b:g}–{c.high_b:g}B" if c.high_b and c.high_b != c.low_b else \
              (f"{c.low_b:g}B" if c.high_b else f"{c.low_b:g}B+")
        casc.append({"scale": c.name, "paper": f"{rng} ({c.status})", "what flips": c.flips,
                     "this run": nc1 if c.name == "Nc1" else "not computable from these tables"})
    rep.table(casc, caption="the paper's cascade of critical scales; only Nc1 can be checked "
              "against the base-model table")

    from .plotting import plot_frontier

    run.save_figure("frontier_h", lambda: plot_frontier(fdf, line),
                    f"{FIGURES['frontier_h']}: the line fitted in this run with its bootstrap "
                    "band; vertical bars are each model's h; stars are post-cutoff models, "
                    "which are not in the fit.")
    run.summary.update(frontier_slope=line.slope, frontier_intercept=line.intercept,
                       frontier_r=line.r, frontier_lolo_mean_mae=lolo["mean_mae"],
                       frontier_lab_mean_h={e["lab"]: e["mean_h"] for e in labs})


# --------------------------------------------------------------------------- stage 3: ODE

_PAD = 8  # predictions are padded to a fixed number of sizes: one compiled solve for all


def _predict_padded(model, start: dict, sizes: Sequence[float], family: str | None,
                    pad: int = _PAD) -> np.ndarray:
    """Scores (len(sizes), 5) predicted from a family's start; the size list is padded to a
    multiple of ``pad`` with its last value so every call has the same shape (one compile)."""
    sizes = np.asarray(sizes, dtype=float)
    n = len(sizes)
    m = pad * max(1, -(-n // pad))
    padded = np.concatenate([sizes, np.full(m - n, sizes[-1])])
    init = {"params_b": start["params_b"], **dict(zip(BENCHMARKS, start["scores"]))}
    pred = model.predict(init, padded, family=family)
    return pred[list(BENCHMARKS)].to_numpy(dtype=float)[:n]


def _in_sample_errors(model, df: pd.DataFrame) -> pd.DataFrame:
    """Long table (family, model, benchmark, pred, actual) of each fitted family integrated
    from its own smallest complete model with its fitted parameters."""
    from .data import complete_models

    full = complete_models(df)
    rows = []
    for fam, start in model.starts_.items():
        g = full[full["family"] == fam].sort_values("params_b")
        g = g[g["params_b"] > start["params_b"]]
        if g.empty:
            continue
        pred = _predict_padded(model, start, g["params_b"].to_numpy(), fam)
        actual = g[list(BENCHMARKS)].to_numpy(dtype=float)
        for i, name in enumerate(g["model"]):
            for k, b in enumerate(BENCHMARKS):
                rows.append({"family": fam, "model": name, "benchmark": b,
                             "pred": float(pred[i, k]), "actual": float(actual[i, k])})
    return pd.DataFrame(rows)


def _steps(steps: int | None) -> dict[str, int]:
    """``steps=`` for CouplingODE only when this run overrides the estimator's default."""
    return {} if steps is None else {"steps": int(steps)}


def _stage_ode(run: _Run) -> None:
    from .fit import PAPER_REFERENCE as REF, CouplingODE, summarise_errors

    cfg, rep, df = run.cfg, run.report, run.results["df"]
    rep.heading("3. The coupling ODE")
    run.log("ode: fit on every complete family")
    model = CouplingODE(**_steps(cfg.ode_steps), seed=cfg.seed, progress=run.progress).fit(df)
    errs = _in_sample_errors(model, df)
    run.results["ode_all"] = model
    fam_rows = []
    for fam, p in model.families_.items():
        e = summarise_errors(errs[errs["family"] == fam])
        fam_rows.append({"family": fam, "models": len(model.starts_[fam]["models"]),
                         "start": model.starts_[fam]["model"],
                         "Nc (B)": p.critical_scale_b,
                         "|h| (latent/decade)": float(np.linalg.norm(np.asarray(p.h))),
                         "MAE (points)": e["mae"], "rel. MAE %": e["rel_mae_pct"]})
    total = summarise_errors(errs)
    rep.para(f"One universal field (constant + linear + quadratic terms of the bounded latent "
             f"state, 21 library terms per benchmark), the running coupling "
             f"γ12(x) = γ0·(x − log10 Nc_f) feeding HellaSwag's rate into TruthfulQA's, and a "
             f"source h_f per family; fit by Levenberg–Marquardt (optimistix; forward-mode "
             f"Jacobians through the Diffrax solve) on "
             f"**{len(model.families_)}** families ({model.n_iter_} {model.optimizer_} steps), each integrated "
             f"from its own smallest complete model. Final objective {fmt(model.loss_)}, data "
             f"MSE {fmt(model.mse_)} points²; γ0 = {fmt(float(model.field_.gamma0))} per decade; "
             f"population Nc = {fmt(10 ** (model.mu_nc_ - 9))}B. In-sample over all "
             f"{total['n_pairs']} (model, benchmark) pairs: MAE {fmt(total['mae'])} points, "
             f"relative MAE {fmt(total['rel_mae_pct'])}%.")
    rep.table(fam_rows, caption="per-family parameters and in-sample trajectory error of the "
              "all-family fit (Nc_f is the family's zero of the running coupling)")
    from .plotting import plot_ode_trajectories

    run.save_figure("ode_trajectories", lambda: plot_ode_trajectories(model, df),
                    f"{FIGURES['ode_trajectories']}: lines are the all-family coupling ODE "
                    "integrated from each family's smallest complete model (star), dots the "
                    "measured scores.")

    py = df[df["family"] == "Pythia"]
    run.log("ode: Pythia-only fit")
    pythia = CouplingODE(**_steps(cfg.pythia_steps), seed=cfg.seed,
                         progress=run.progress).fit(py)
    run.results["ode_pythia"] = pythia
    pe = summarise_errors(_in_sample_errors(pythia, py))
    ref = REF["in_sample_pythia_rel_error_pct"]
    rows = [{"benchmark": b, "relative error % (this run)": pe["per_benchmark"][b]["rel_error_pct"],
             "MAE (points)": pe["per_benchmark"][b]["mae"], "paper %": paper(ref[b])}
            for b in BENCHMARKS]
    rows.append({"benchmark": "**mean of the five**",
                 "relative error % (this run)": pe["mean_rel_error_pct"],
                 "MAE (points)": pe["mae"], "paper %": paper(ref["mean"])})
    rep.table(rows, caption="in-sample check (paper: linear ODE fit on Pythia, integrated from "
              "Pythia-70M): the coupling ODE fit on Pythia alone, integrated from Pythia-70M, "
              "error over the seven later models")
    run.summary["pythia_in_sample_mean_rel_error_pct"] = pe["mean_rel_error_pct"]
    run.summary["ode_all_families"] = {"n_families": len(model.families_), "loss": model.loss_,
                                       "mse_points2": model.mse_,
                                       "population_nc_b": 10 ** (model.mu_nc_ - 9),
                                       "in_sample_rel_mae_pct": total["rel_mae_pct"]}

    if cfg.quick:
        rep.para("Per-phase analysis (separate tax / bonus fits on Pythia): skipped in quick mode.")
        return
    from .analysis import per_phase_analysis

    run.log("ode: per-phase analysis (Pythia tax vs bonus models)")
    ph = per_phase_analysis(df)
    pr = REF["hs_to_tqa_coefficient"]
    rep.table([
        {"HS → TQA coefficient": "tax models " + ", ".join(ph["tax"]["models"]),
         "score units": ph["tax"]["hs_to_tqa_score"], "latent units": ph["tax"]["hs_to_tqa_latent"],
         "paper": paper(pr["tax"])},
        {"HS → TQA coefficient": "bonus models " + ", ".join(ph["bonus"]["models"]),
         "score units": ph["bonus"]["hs_to_tqa_score"],
         "latent units": ph["bonus"]["hs_to_tqa_latent"], "paper": paper(pr["bonus"])},
        {"HS → TQA coefficient": "ratio bonus / tax", "score units": ph["ratio_score"],
         "latent units": ph["ratio_latent"], "paper": f"{paper(pr['ratio'])}×"},
        {"HS → TQA coefficient": "rank-1 share of the difference (s1 / Σs)",
         "score units": ph["difference_rank1_share_score"],
         "latent units": ph["difference_rank1_share_latent"], "paper": "close to rank 1"},
    ], caption="per-phase analysis: linear fields fit separately on Pythia's tax and bonus "
               "models (score units: TQA points per decade per HS point)")
    run.summary["per_phase_ratio_score"] = ph["ratio_score"]


# --------------------------------------------------------------------------- stage 5: holdout

def _holdout_methods(cfg: RunConfig) -> dict[str, Callable[[], Any]]:
    """Every benchmark method with nested selection; the gradient-fitted ones with this
    run's step budget and seed (quick runs: short budgets and small grids)."""
    from .heldout import configured_methods

    overrides = {"coupling_ode": {**_steps(cfg.holdout_steps), "seed": cfg.seed, "progress": False}}
    grids = None
    if cfg.quick:  # small grids and budgets: the CV solves and inner fits dominate
        small = {"thresholds": (0.03, 0.3), "alphas": (0.1, 10.0)}
        overrides.update(sindy_ode=small, sindy_ode_1se=small,
                         shared_ode={"steps": int(cfg.holdout_steps or 60)})
        # the gradient-fitted ODEs keep their default settings here (no nested selection):
        # a smoke test of the pipeline, not the analysis
        grids = {"logit_rate": {"floor_slack": [10.0, 5.0, 0.0]},
                 "pca_capability": {"n_components": [2, 1], "floor_slack": [10.0, 5.0]},
                 "latent_skill": {"n_skills": [2, 1], "floor_slack": [10.0, 5.0]},
                 "poly_anchored": {"degree": [2, 1, 3]}}
    return configured_methods(overrides, grids=grids)


def _stage_holdout(run: _Run) -> None:
    from . import heldout as ho
    from .fit import PAPER_REFERENCE as FIT_REF
    from .sindy import PAPER_HS_EQUATION, SparseCouplingODE

    cfg, rep, df = run.cfg, run.report, run.results["df"]
    rep.heading("5. SINDy and the held-out family benchmark")
    py = df[df["family"] == "Pythia"]
    sindy = SparseCouplingODE().fit(py)
    sindy_frac = SparseCouplingODE(state="fraction").fit(py)
    hs_eq = sindy.equations()[BENCHMARKS.index("hellaswag")]
    hs_frac = sindy_frac.equations()[BENCHMARKS.index("hellaswag")]
    paper_eq = " ".join(f"{'+' if v >= 0 else '−'} {abs(v):g}{'' if k == '1' else '·' + k}"
                        for k, v in PAPER_HS_EQUATION.items()).lstrip("+ ")
    small = {"thresholds": (0.03, 0.3), "alphas": (0.1, 10.0)} if cfg.quick else {}
    sindy_1se = SparseCouplingODE(selection="1se", **small).fit(py)
    hs_1se = sindy_1se.equations()[BENCHMARKS.index("hellaswag")]
    rep.table([
        {"SINDy on Pythia": "latent state z (the integrable form)", "HS equation": f"`{hs_eq}`",
         "terms kept": f"{len(sindy.equation_terms('hellaswag'))} of {sindy.coef_.shape[1]}",
         "threshold, alpha": f"{sindy.threshold_:g}, {sindy.alpha_:g}"},
        {"SINDy on Pythia": "latent state z, one-standard-error rule", "HS equation": f"`{hs_1se}`",
         "terms kept": f"{len(sindy_1se.equation_terms('hellaswag'))} of {sindy_1se.coef_.shape[1]}",
         "threshold, alpha": f"{sindy_1se.threshold_:g}, {sindy_1se.alpha_:g}"},
        {"SINDy on Pythia": "scores as fractions", "HS equation": f"`{hs_frac}`",
         "terms kept": f"{len(sindy_frac.equation_terms('hellaswag'))} of "
                       f"{sindy_frac.coef_.shape[1]}",
         "threshold, alpha": f"{sindy_frac.threshold_:g}, {sindy_frac.alpha_:g}"},
        {"SINDy on Pythia": "**paper** (its own normalisation)", "HS equation": f"`dHS/dx = {paper_eq}`",
         "terms kept": "3", "threshold, alpha": "–"},
    ], caption="sparse HS equation discovered by pysindy (STLSQ, degree-2 library; threshold "
               "and ridge chosen by cross-validation inside the training family)")

    methods = _holdout_methods(cfg)
    run.log("holdout: P1 (train Pythia, predict Llama-2), every method")
    r1 = ho.p1(df, methods=methods, curves=True, progress=False)
    t1 = r1.table
    p1_ref = FIT_REF
    rows = []
    for r in t1.itertuples(index=False):
        ref = ""
        if r.method == "linear_ode":
            ref = paper(p1_ref["heldout_llama2_rel_mae_pct"])
        elif r.method == "poly2":
            ref = paper(p1_ref["heldout_llama2_poly2_rel_mae_pct"])
        rows.append({"method": r.method, "rel. MAE %": r.rel_mae_pct if r.status == "ok" else r.status,
                     "MAE (points)": r.mae_pp, "predicted models outside [0, 100]": r.n_out_of_range,
                     "paper rel. MAE %": ref or "–"})
    rep.para("Protocol: the held-out family is removed from training; each method sees "
             "the training families and the held-out family's smallest model only, predicts "
             "every other model's five scores from its size, and is scored over every "
             "(model, benchmark) pair: relative MAE % = 100·mean|pred − actual| / mean(actual). "
             "Every hyper-parameter (floors, numbers of skills or components, penalties, "
             "polynomial degree, SINDy threshold and ridge) is selected inside each training "
             "set: leave one training family out when two or more training families have ≥ 3 "
             "complete models, otherwise forward validation inside the training family (its "
             "smaller half predicts its larger half)."
             + (" Quick run: the coupling and shared-dynamics ODEs use their default settings "
                "without nested selection." if cfg.quick else ""))
    rep.table(rows, caption="P1, the paper's split: train on Pythia only, predict Llama-2 from "
              "Llama2-7B (paper: its linear ODE 5.6%, a degree-2 polynomial 10.2%)")
    from .plotting import plot_holdout_errors, plot_holdout_trajectories

    run.save_figure("holdout_llama2", lambda: plot_holdout_trajectories(r1, "Llama-2"),
                    "P1: every method's predicted Llama-2 trajectories (trained on Pythia, "
                    "started from Llama2-7B, star) against the measured 13B and 70B models.")

    run.log("holdout: P2 (leave one family out), every method")
    r2 = ho.crossval(df, methods=methods, progress=run.progress)
    summ = r2.summary
    skipped = ", ".join(f"{s.family} ({s.n_complete})" for s in r2.skipped.itertuples(index=False))
    rep.para(f"P2, leave one family out: {len(r2.splits)} families with ≥ 3 complete models "
             f"held out in turn, each method trained on all other families. Not held out "
             f"(too few complete models): {skipped or 'none'}.")
    p1_by = {r.method: (r.rel_mae_pct if r.status == "ok" else None)
             for r in t1.itertuples(index=False)}
    rows = [{"method": s.method, "P1 Llama-2 rel. MAE %": p1_by.get(s.method),
             "P2 mean rel. MAE %": s.mean_rel_mae_pct,
             "P2 median rel. MAE %": s.median_rel_mae_pct, "P2 mean MAE (points)": s.mean_mae_pp,
             "families scored": s.n_families, "failed": s.n_failed}
            for s in summ.itertuples(index=False)]
    rep.table(rows, caption="held-out error by method (lower is better)")
    wide = r2.table.pivot(index="family", columns="method", values="rel_mae_pct")
    wide = wide[[m for m in methods if m in wide.columns]]
    rep.table([{"held-out family": fam, **{m: wide.loc[fam, m] for m in wide.columns}}
               for fam in wide.index],
              caption="P2 relative MAE % per held-out family and method")
    failed = r2.table[r2.table["status"] != "ok"]
    if len(failed):
        rep.bullets(f"{r.family} / {r.method}: {r.message}" for r in failed.itertuples(index=False))
    if len(r2.selections):
        sel = r2.selections
        rep.table([{"method": m, "settings chosen (held-out family: settings)":
                    "; ".join(f"{r.family}: {r.best_params}" for r in g.itertuples(index=False))}
                   for m, g in sel.groupby("method", sort=False)],
                  caption="hyper-parameters selected inside each P2 training set (nested)")
    run.save_figure("holdout_errors", lambda: plot_holdout_errors(t1, summ),
                    f"{FIGURES['holdout_errors']}: P1 (Pythia → Llama-2) and the P2 mean and "
                    "median over held-out families, relative MAE %.")
    run.summary.update(
        llama2_rel_mae_pct={k: v for k, v in p1_by.items()},
        lofo_mean_rel_mae_pct={s.method: s.mean_rel_mae_pct for s in summ.itertuples(index=False)},
        lofo_median_rel_mae_pct={s.method: s.median_rel_mae_pct
                                 for s in summ.itertuples(index=False)},
        lofo_families=list(r2.splits["family"]) if len(r2.splits) else [],
        sindy_pythia_terms={"cv": int(sindy.n_terms_), "one_se": int(sindy_1se.n_terms_)})


# --------------------------------------------------------------------------- stage 4: posterior

def _stage_posterior(run: _Run) -> None:
    from .plotting import plot_nc_forest

    from . import posterior as po
    cfg, rep, df = run.cfg, run.report, run.results["df"]
    rep.heading("4. Posteriors of Nc (NumPyro NUTS)")
    run.log("posterior: coupling-level NUTS")
    post = po.sample_posterior(df, model="coupling", chains=cfg.nuts_chains,
                               samples=cfg.nuts_samples, warmup=cfg.nuts_warmup, seed=cfg.seed,
                               progress=False)
    pc = post.config
    rep.para(f"Hierarchical model on the running-coupling pairs: per family "
             f"γ12 = γ0_f·(log10 N − log10 Nc_f) with log10 Nc_f ~ Normal(μ, τ), pair noise "
             f"from the score noise through the ratio ΔTQA/ΔHS (see `capedyn.posterior`). "
             f"NUTS, {pc['chains']} chains × {pc['samples']} draws after "
             f"{pc['warmup']} warm-up; {post.divergences} divergent transitions; "
             f"largest R-hat {fmt(float(post.table['rhat_max'].max()))}, smallest bulk ESS "
             f"{fmt(float(post.table['ess_bulk_min'].min()))}; {fmt(post.runtime_s)} s.")
    _posterior_table(rep, post, po.POSTERIOR_PAPER_REFERENCE)
    run.save_figure("nc_forest", lambda: plot_nc_forest(post),
                    f"{FIGURES['nc_forest']}: posterior median (dot), 68% (thick) and 95% (thin) "
                    "intervals, coupling-level model; in brackets the number of usable pairs; "
                    "shaded: the paper's bootstrap 95% interval.")
    pop = post.row("population")
    run.summary["posterior_coupling"] = {
        "population_nc_median_b": pop["nc_median_b"],
        "population_nc_ci95_b": [pop["nc_ci95_lo_b"], pop["nc_ci95_hi_b"]],
        "divergences": post.divergences, "rhat_max": float(post.table["rhat_max"].max()),
        "ess_bulk_min": float(post.table["ess_bulk_min"].min()), "seconds": post.runtime_s,
        "families": {r["family"]: [r["nc_median_b"], r["nc_ci95_lo_b"], r["nc_ci95_hi_b"]]
                     for r in post.family_rows().to_dict("records")}}

    if not cfg.ode_posterior:
        rep.para(ODE_POSTERIOR_NOTE)
        return
    run.log("posterior: ODE-level NUTS")
    ode_post = po.sample_posterior(df, model="ode", fit=run.results["ode_all"],
                                   chains=cfg.ode_nuts_chains, samples=cfg.ode_nuts_samples,
                                   warmup=cfg.ode_nuts_samples, seed=cfg.seed, progress=False)
    oc = ode_post.config
    rep.para(f"ODE-level model: the observed scores given the coupling-ODE solution, the "
             f"universal field held at this run's Optax fit (empirical Bayes), "
             f"log10 Nc_f ~ Normal(μ, τ), h_f ~ Normal(0, σ_h), noise per benchmark. NUTS, "
             f"{oc['chains']} chains × {oc['samples']} draws after "
             f"{oc['warmup']} warm-up; {ode_post.divergences} divergent transitions; "
             f"largest R-hat {fmt(float(ode_post.table['rhat_max'].max()))}, smallest bulk "
             f"ESS {fmt(float(ode_post.table['ess_bulk_min'].min()))}; "
             f"{fmt(ode_post.runtime_s)} s. Here Nc_f is the zero of the ODE's running "
             "coupling, a different quantity from the pairwise fit above.")
    for note in ode_post.notes:
        rep.para(f"Note from the sampler: {note}.")
    _posterior_table(rep, ode_post, po.POSTERIOR_PAPER_REFERENCE)
    run.save_figure("nc_forest_ode", lambda: plot_nc_forest(ode_post),
                    "per-family Nc posterior of the ODE-level model (same layout as above; in "
                    "brackets the number of observed models after each family's smallest).")
    pop = ode_post.row("population")
    run.summary["posterior_ode"] = {
        "population_nc_median_b": pop["nc_median_b"],
        "population_nc_ci95_b": [pop["nc_ci95_lo_b"], pop["nc_ci95_hi_b"]],
        "divergences": ode_post.divergences,
        "rhat_max": float(ode_post.table["rhat_max"].max()),
        "ess_bulk_min": float(ode_post.table["ess_bulk_min"].min()),
        "seconds": ode_post.runtime_s}


ODE_POSTERIOR_NOTE = (
    "ODE-level posterior (likelihood on the observed scores through the Diffrax solve, "
    "`capedyn.posterior.sample_posterior(model=\"ode\")`): skipped in quick mode — it "
    "solves the ODE of every family inside every NUTS gradient (`capedyn bench` measures "
    "its effective samples per second). The default run includes it.")


def _posterior_table(rep: Report, post, ref: dict) -> None:
    rows = []
    for r in post.table.to_dict("records"):
        ref_nc = ref.get("family_nc_b", {}).get(r["family"])
        if r["kind"] == "population":
            ref_txt = f"{paper(ref['nc_median_b'])} {paper(ref['nc_ci95_b'])} (bootstrap)"
        else:
            ref_txt = paper(ref_nc) if ref_nc is not None else "–"
        rows.append({"family": r["family"], "pairs/obs": r["n_obs"],
                     "Nc median (B)": r["nc_median_b"],
                     "68% (B)": fmt_ci((r["nc_ci68_lo_b"], r["nc_ci68_hi_b"])),
                     "95% (B)": fmt_ci((r["nc_ci95_lo_b"], r["nc_ci95_hi_b"])),
                     "R-hat max": r["rhat_max"], "bulk ESS min": r["ess_bulk_min"],
                     "paper Nc (B)": ref_txt})
    rep.table(rows, caption=f"Nc posterior by family ({post.model}-level model), population "
              "centre 10^μ and the predictive Nc of a new family")


_STAGE_FUNCS: dict[str, Callable[[_Run], None]] = {
    "data": _stage_data, "coupling": _stage_coupling, "ode": _stage_ode,
    "posterior": _stage_posterior, "holdout": _stage_holdout, "frontier": _stage_frontier,
}
