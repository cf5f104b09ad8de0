"""The whole CAPE analysis in one call: :func:`reproduce` runs every stage on the shipped
data and writes a self-contained report.

Stages, in order (each prints its progress and elapsed time on stderr):

1. ``data``       load and validate both shipped tables;
2. ``coupling``   running coupling γ12, population fit, sign test, each family's own
                  least-squares line, the Nc bootstrap (10^4 resamples), the algebraic
                  phase classifier;
3. ``ode``        the coupling ODE fit on every complete family, on Pythia alone for
                  the paper's in-sample check, and the per-phase (tax vs bonus) fits;
4. ``posterior``  per-family Nc posteriors (NumPyro NUTS): the coupling-level model,
                  whose median and intervals are the report's one Nc of each family (its
                  table also shows the family's own least-squares crossing, so named), and
                  the ODE-level model (likelihood through the Diffrax solve; 4 chains ×
                  150 draws, chosen by measurement to fit the 10-minute budget; skipped
                  with ``quick``);
5. ``holdout``    SINDy and the held-out family benchmark (P1: Pythia → Llama-2; P2:
                  leave one family out), every method on the same splits;
6. ``frontier``   the SWE → GPQA population line, the h-field, per-lab means,
                  leave-one-lab-out, saturation.

Each stage first computes a result object (numbers, tables and fitted models, no text),
then its figures are drawn from that result; when every stage is done the report is
rendered from the results: Jinja2 templates lay each section out, every value they print
held out as a slot, and the layout becomes a document of typed blocks whose values are
text spans; ``report.md`` and ``report.html`` are both written from that document. The
modules, in the order a run uses them:

``config``      :class:`RunConfig`, the budgets (``quick`` for smoke tests);
``output``      the output folder: checks before any work, staging, the final move;
``s1_data`` … ``s7_steering``   one stage each: ``compute_<stage>() -> <Stage>Result``;
``figures``     each figure drawn from a stage result, with its caption;
``render``      results → templates (``templates/*.md.j2``) → :class:`Report`;
``layout``      the templates' layout, values held out as slots → the document's blocks;
``blocks``      the document model: typed blocks (headings, paragraphs, tables, figures,
                ...) of typed spans (template text, values, bold, code);
``document``    :class:`Report`, a title and its blocks, written by the two writers:
``md_writer``   the document as Markdown (values escaped where Markdown reads markup);
``html_writer`` the document as one HTML page (markupsafe; only the run's own figures);
``formatting``  how numbers are written (:func:`fmt`, :func:`paper`);
``run``         :func:`reproduce`: the stages in order, timings, ``summary.json``.

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

from .config import RunConfig
from .document import Report
from .figures import FIGURES
from .formatting import fmt, fmt_ci, paper  # noqa: F401  (report.fmt etc., used by tests)
from .render import render_document, render_markdown, render_section, section_document
from .run import STAGES, SUMMARY_KEYS, reproduce

__all__ = ["reproduce", "RunConfig", "Report", "STAGES", "FIGURES", "SUMMARY_KEYS",
           "render_document", "render_markdown", "render_section", "section_document"]
