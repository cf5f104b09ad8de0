"""Stage 2, coupling: the running coupling γ12 between consecutive sizes, the population
fit and its Nc, the Nc bootstrap, the sign test, each family's own least-squares line (its
zero crossing is shown in section 4 beside the family's posterior Nc, under its own name),
the algebraic phase classifier, and the point checks the papers quote."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from .config import RunConfig
from .s1_data import DataResult

__all__ = ["CouplingResult", "PointChecks", "compute_coupling"]


@dataclass(frozen=True)
class PointChecks:
    """Numbers the papers quote for single models or pairs, recomputed on this table."""

    pythia_r_hs_tqa: tuple[int, float] | None      # (models, Pearson r of HS and TQA)
    olmo_pairs: list[dict[str, Any]]               # model_from/to, gamma12, tqa/hs from/to
    opt_spans: list[dict[str, Any]]                # key ("2.7B->6.7B"), gamma12, between
    opt_consecutive: list[dict[str, Any]]          # model_from/to, gamma12 (6.7B to 30B)
    olmo_classifier: list[dict[str, Any]]          # model, tqa_critical/tqa fractions, phase


@dataclass(frozen=True)
class CouplingResult:
    """Every number of the coupling stage. Nc values in billions of parameters; γ12 in
    TruthfulQA points per HellaSwag point."""

    base: pd.DataFrame              # the base-model table (for the figures)
    pairs: pd.DataFrame             # running_coupling: one row per consecutive pair
    min_delta_hs: float             # pairs with |ΔHS| below this are skipped
    fit_all: Any                    # CouplingFit over all families
    fit_paper14: Any                # CouplingFit over Pythia, Llama-1, Llama-2
    boot: Any                       # NcBootstrap over Pythia, Llama-1, Llama-2 (the headline)
    boot_web: Any                   # NcBootstrap over every web-trained family
    sign_all: Any                   # SignTest over all families
    sign_paper14: Any               # SignTest over Pythia, Llama-1, Llama-2
    family_nc: pd.DataFrame         # family_couplings: each family's own least-squares
                                    #   line, γ0 and its zero crossing nc_b (no interval)
    usable_pairs_by_family: dict[str, int]
    checks: PointChecks
    n_models: int                   # base models given to the phase classifier
    n_bonus_models: int
    n_tax_models: int

    @property
    def usable(self) -> pd.DataFrame:
        return self.pairs[~self.pairs["skipped"]]

    @property
    def n_skipped(self) -> int:
        return int(self.pairs["skipped"].sum())

    def n_usable_with_sign(self, sign: int) -> int:
        """Usable pairs with γ12 < 0 (``sign`` -1), = 0 (0) or > 0 (+1)."""
        return int((np.sign(self.usable["gamma12"]) == sign).sum())

    @property
    def family_nc_range(self) -> tuple[float, float] | None:
        """Smallest and largest least-squares crossing (B) that lies within the family's
        tested sizes (the report shows the span of stage 4's posterior medians instead)."""
        fams = self.family_nc
        ok = fams[np.isfinite(fams["nc_b"]) & (fams["nc_position"] == "within tested range")]
        return (float(ok["nc_b"].min()), float(ok["nc_b"].max())) if len(ok) else None

    def summary(self) -> dict[str, Any]:
        return dict(
            nc_b=self.boot.median_b, nc_ci95_b=list(self.boot.ci95_b),
            nc_ci68_b=list(self.boot.ci68_b),
            nc_definition=("median of the Nc bootstrap over the usable pairs of Pythia, "
                           "Llama-1 and Llama-2 (the paper's 14 web-trained models), in billions"),
            population_fit=self.fit_all.to_dict(),
            sign_test={"correct": self.sign_all.correct, "total": self.sign_all.total})


def compute_coupling(data: DataResult, cfg: RunConfig,
                     log: Callable[[str], None] = lambda msg: None) -> CouplingResult:
    """Running coupling, population fits, both Nc bootstraps (``cfg.n_bootstrap``
    resamples, ``cfg.seed``), sign tests, family fits, classifier counts, point checks."""
    from ..coupling import nc_bootstrap, phase, running as cp

    df = data.base
    table = cp.running_coupling(df)
    paper14 = list(cp.WEB_TRAINED_PAPER)
    web = cp.web_trained_families(df)
    fit_all = cp.population_fit(table)
    fit_p14 = cp.population_fit(table, families=paper14)
    log(f"coupling: Nc bootstrap, {cfg.n_bootstrap} resamples")
    boot = nc_bootstrap.bootstrap_nc(table, n_resamples=cfg.n_bootstrap, seed=cfg.seed, families=paper14)
    boot_web = nc_bootstrap.bootstrap_nc(table, n_resamples=cfg.n_bootstrap, seed=cfg.seed,
                               families=[f for f in web if f in set(table["family"])])
    sign_all = cp.sign_test(table)
    sign_p14 = cp.sign_test(table, families=paper14)
    fams = cp.family_couplings(table)
    phases = pd.Series(phase.phase_classifier(df["hellaswag"].to_numpy(),
                                           df["truthfulqa"].to_numpy()).phase).value_counts()
    return CouplingResult(
        base=df, pairs=table, min_delta_hs=cp.MIN_DELTA_HS, fit_all=fit_all,
        fit_paper14=fit_p14, boot=boot, boot_web=boot_web, sign_all=sign_all,
        sign_paper14=sign_p14, family_nc=fams,
        usable_pairs_by_family={str(k): int(v)
                                for k, v in cp.usable_pairs(table)["family"].value_counts().items()},
        checks=_point_checks(df, table), n_models=len(df),
        n_bonus_models=int(phases.get("bonus", 0)), n_tax_models=int(phases.get("tax", 0)))


def _point_checks(df: pd.DataFrame, table: pd.DataFrame) -> PointChecks:
    from ..coupling import phase

    py = df[df["family"] == "Pythia"].dropna(subset=["hellaswag", "truthfulqa"])
    r = None
    if len(py) >= 3:
        r = (len(py), float(np.corrcoef(py["hellaswag"], py["truthfulqa"])[0, 1]))
    g = df.set_index("model")
    olmo = [{"model_from": p.model_from, "model_to": p.model_to, "gamma12": p.gamma12,
             "tqa_from": g.loc[p.model_from, "truthfulqa"], "tqa_to": g.loc[p.model_to, "truthfulqa"],
             "hs_from": g.loc[p.model_from, "hellaswag"], "hs_to": g.loc[p.model_to, "hellaswag"]}
            for p in table.itertuples(index=False) if p.family == "OLMo"]
    opt = df[df["family"] == "OPT"].set_index("params_b")
    spans = []
    for key, (a, b) in (("2.7B->6.7B", (2.7, 6.7)), ("6.7B->30B", (6.7, 30.0))):
        if a in opt.index and b in opt.index:
            gam = ((opt.loc[b, "truthfulqa"] - opt.loc[a, "truthfulqa"])
                   / (opt.loc[b, "hellaswag"] - opt.loc[a, "hellaswag"]))
            spans.append({"key": key, "gamma12": float(gam),
                          "between": int(((opt.index > a) & (opt.index < b)).sum())})
    consecutive = [{"model_from": p.model_from, "model_to": p.model_to, "gamma12": p.gamma12}
                   for p in table[table["family"] == "OPT"].itertuples(index=False)
                   if p.params_b_from >= 6.7 and p.params_b_to <= 30]
    classifier = []
    for m in df[df["family"] == "OLMo"].itertuples(index=False):
        ph = phase.phase_classifier(m.hellaswag, m.truthfulqa)
        classifier.append({"model": m.model, "tqa_critical_fraction": ph.tqa_critical_fraction,
                           "tqa_fraction": m.truthfulqa / 100, "phase": ph.phase})
    return PointChecks(pythia_r_hs_tqa=r, olmo_pairs=olmo, opt_spans=spans,
                       opt_consecutive=consecutive, olmo_classifier=classifier)
