"""The budgets of one run (:class:`RunConfig`): bootstrap resamples, fit steps and NUTS
draws, with a short ``quick`` set for smoke tests."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunConfig"]


@dataclass(frozen=True)
class RunConfig:
    """Budgets of one run. ``quick`` shortens every fit and sample count (CI, smoke tests)."""

    quick: bool = False
    seed: int = 0
    table: str = "measured"            # the shipped base-model table (data.BASE_TABLES):
                                       #   "measured", or "paper" (the authors' mixed Pythia)
    n_bootstrap: int = 10_000          # Nc bootstrap resamples (paper: 10^4)
    frontier_bootstrap: int = 2_000    # resamples of the SWE → GPQA line
    ode_steps: int | None = None       # Optax steps of every coupling-ODE fit (None: the
    pythia_steps: int | None = None    #   CouplingODE default, as in the shipped fits and
    holdout_steps: int | None = None   #   in capedyn.evaluation.heldout's benchmark)
    nuts_chains: int | None = None     # coupling-level NUTS (None: the posterior module's
    nuts_samples: int | None = None    #   SAMPLER_DEFAULTS, tuned there for R-hat ≤ 1.01)
    nuts_warmup: int | None = None
    ode_posterior: bool = True         # ODE-level NUTS (a solve per family per gradient)
    ode_nuts_chains: int | None = None  # None: the posterior module's SAMPLER_DEFAULTS["ode"],
    ode_nuts_samples: int | None = None  #   which converge (R-hat ≤ 1.01, no divergences)
    ode_nuts_warmup: int | None = None

    @classmethod
    def make(cls, quick: bool = False, seed: int = 0, table: str = "measured") -> "RunConfig":
        """The full run's budgets, or the quick set (every stage still runs), on the
        shipped base-model table ``table``."""
        if not quick:
            return cls(quick=False, seed=seed, table=table)
        return cls(quick=True, seed=seed, table=table, n_bootstrap=1_000, frontier_bootstrap=300,
                   ode_steps=150, pythia_steps=150, holdout_steps=60, nuts_chains=2,
                   nuts_samples=150, nuts_warmup=150, ode_posterior=False)

    def steps(self, which: str) -> dict[str, int]:
        """``steps=`` for a CouplingODE fit (``which``: "ode", "pythia" or "holdout") only
        when this run overrides the estimator's default; else an empty dict."""
        steps = getattr(self, f"{which}_steps")
        return {} if steps is None else {"steps": int(steps)}
