"""The coupling ODE: a learned vector field over the bounded latent state, solved with Diffrax.

State and scale
    z = ``to_state(scores)`` (bounded logit of the above-floor fraction, see
    :mod:`capedyn.dynamics.state`), x = log10 N with N in parameters.

Vector field (all rates in latent units per decade of N)::

    r(z)      = coef @ Θ(z) + h_f                       universal part + family source
    γ12(x)    = gamma0 · (x − log10 Nc_f)               running coupling (TQA per HS)
    dz/dx     = r(z) + e_TQA · γ12(x) · κ(z) · r_HS(z)  TQA's rate follows HS's rate

``Θ(z) = polynomial_features(z)`` is the 21-term degree-2 library shared with SINDy, so
``coef`` compares term by term with a SINDy fit. ``κ(z)`` converts the coupling to the
units it is stated in:

* ``coupling="score"`` (default): κ = s'_HS(z_HS) / s'_TQA(z_TQA), the ratio of the
  score-per-latent slopes, so that the added TQA score rate is exactly γ12 times the HS
  score rate, dTQA/dx += γ12 · dHS/dx in percent per decade — the paper's γ12 in TQA points
  per HS point. κ is capped at ``kappa_max`` so a TQA score pinned near its floor or
  ceiling cannot make the latent rate explode.
* ``coupling="latent"``: κ = 1; γ12 is then latent TQA per latent HS.
* ``coupling="none"``: no running-coupling term (pure polynomial field; used for SINDy
  fields via :meth:`CouplingField.from_polynomial`).

``degree`` (static) masks the library: 1 keeps the constant and linear terms only.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._errors import InputError, SolveError
from .._jax import scoped_x64
from .state import (
    CEILING, FLOORS, N_FEATURES, N_STATE, QUADRATIC_PAIRS, from_state, polynomial_features, to_state,
)
from ..data.tables import BENCHMARKS, log10_params

__all__ = ["FamilyParams", "CouplingField", "solve", "solve_unchecked", "predict_scores",
           "N_FEATURES", "to_state", "from_state", "polynomial_features"]

HS, TQA = BENCHMARKS.index("hellaswag"), BENCHMARKS.index("truthfulqa")
CouplingKind = Literal["score", "latent", "none"]
DEFAULT_MAX_STEPS = 4096


class FamilyParams(eqx.Module):
    """What sets one family apart from the population.

    ``log10_nc``: log10 of the critical scale Nc in parameters (9.54 for 3.5B).
    ``h``: additive source terms (the data field), latent units per decade, one per benchmark.
    A batch of families is the same module with a leading axis on both leaves.
    """

    log10_nc: Float[Array, ""]
    h: Float[Array, "5"]

    @classmethod
    @scoped_x64
    def make(cls, log10_nc=9.5, h=None) -> "FamilyParams":
        h = jnp.zeros(N_STATE) if h is None else jnp.asarray(h, dtype=float)
        return cls(log10_nc=jnp.asarray(log10_nc, dtype=float), h=h)

    def __repr__(self) -> str:
        lnc, h = np.asarray(self.log10_nc), np.asarray(self.h)
        if lnc.ndim == 0:
            hs = ", ".join(f"{v:+.4g}" for v in h)
            return (f"FamilyParams(log10_nc={float(lnc):.4f} "  # a field parameter (docs/nc.md #6)
                    f"(field parameter Nc={10 ** (float(lnc) - 9):.3g}B), "
                    f"h=[{hs}])")
        return f"FamilyParams(batch of {lnc.shape[0]}: log10_nc={np.round(lnc, 3).tolist()})"

    @property
    def critical_scale_b(self) -> float:
        """Nc in billions of parameters."""
        return float(10.0 ** (np.asarray(self.log10_nc) - 9.0))


def library_mask(degree: int) -> np.ndarray:
    """(21,) mask of the library terms kept at polynomial ``degree`` (0, 1 or 2)."""
    if degree not in (0, 1, 2):
        raise InputError(f"degree must be 0, 1 or 2, got {degree}")
    order = np.array([0] + [1] * N_STATE + [2] * len(QUADRATIC_PAIRS))
    return order <= degree


def _score_slope(z: Array) -> Array:
    """d(score)/dz in percent per latent unit, per benchmark."""
    u = jax.nn.sigmoid(z)
    return (CEILING - jnp.asarray(FLOORS)) * u * (1.0 - u)


class CouplingField(eqx.Module):
    """dz/dx = coef @ Θ(z) + h_f, plus the running coupling γ12(x) = gamma0·(x − log10 Nc_f)
    feeding HS's rate into TQA's (see the module docstring for the units)."""

    coef: Float[Array, "5 21"]
    gamma0: Float[Array, ""]
    degree: int = eqx.field(static=True, default=2)
    coupling: str = eqx.field(static=True, default="score")
    kappa_max: float = eqx.field(static=True, default=4.0)

    def __check_init__(self):
        if self.coupling not in ("score", "latent", "none"):
            raise InputError(f"coupling must be 'score', 'latent' or 'none', got {self.coupling!r}")
        library_mask(self.degree)

    @classmethod
    @scoped_x64
    def zeros(cls, *, degree: int = 2, coupling: CouplingKind = "score",
              kappa_max: float = 4.0) -> "CouplingField":
        return cls(coef=jnp.zeros((N_STATE, N_FEATURES)), gamma0=jnp.zeros(()),
                   degree=degree, coupling=coupling, kappa_max=kappa_max)

    @classmethod
    @scoped_x64
    def from_polynomial(cls, coef) -> "CouplingField":
        """A pure polynomial field dz/dx = coef @ Θ(z) (no coupling term, gamma0 = 0), e.g. a
        SINDy fit, so it is integrated by exactly the same solve as the learned field."""
        coef = jnp.asarray(coef, dtype=float)
        if coef.shape != (N_STATE, N_FEATURES):
            raise InputError(f"coef must have shape ({N_STATE}, {N_FEATURES}), got {coef.shape}")
        return cls(coef=coef, gamma0=jnp.zeros(()), degree=2, coupling="none")

    @property
    def config(self) -> dict:
        """Static configuration (what a saved fit must match to be loaded)."""
        return {"degree": self.degree, "coupling": self.coupling, "kappa_max": self.kappa_max,
                "coef_shape": list(np.shape(self.coef)), "n_features": N_FEATURES,
                "benchmarks": list(BENCHMARKS)}

    def with_gamma0(self, gamma0) -> "CouplingField":
        """The same field with the running coupling's strength replaced (a scalar in TQA
        points per HS point per decade; inside a vmap, one per family or draw)."""
        return eqx.tree_at(lambda f: f.gamma0, self, gamma0)

    def masked_coef(self) -> Float[Array, "5 21"]:
        return self.coef * jnp.asarray(library_mask(self.degree), dtype=self.coef.dtype)

    def universal_rate(self, z: Float[Array, "5"]) -> Float[Array, "5"]:
        return self.masked_coef() @ polynomial_features(z)

    def running_coupling(self, x, family: FamilyParams):
        """γ12(x) = gamma0 · (x − log10 Nc_f); negative below Nc (tax), positive above (bonus)."""
        return self.gamma0 * (x - family.log10_nc)

    def __call__(self, x, z: Float[Array, "5"], family: FamilyParams) -> Float[Array, "5"]:
        rate = self.universal_rate(z) + family.h
        if self.coupling == "none":
            return rate
        if self.coupling == "score":
            slope = _score_slope(z)
            kappa = jnp.minimum(slope[HS] / slope[TQA], self.kappa_max)
        else:
            kappa = 1.0
        return rate.at[TQA].add(self.running_coupling(x, family) * kappa * rate[HS])


def _vector_field(t, y, args):
    field, family = args
    return field(t, y, family)


def solve_unchecked(field: CouplingField, z0: Float[Array, "5"], x0, xs: Float[Array, "n"],
                    family: FamilyParams, *, max_steps: int = DEFAULT_MAX_STEPS,
                    rtol: float = 1e-7, atol: float = 1e-9, fixed_steps: int | None = None,
                    adjoint: Literal["reverse", "forward"] = "reverse",
                    ) -> tuple[Float[Array, "n 5"], Bool[Array, ""]]:
    """jit/vmap/grad-safe solve: (z at xs, ok). ``ok`` is False when the step budget ran out,
    the solver failed, or the state went non-finite; the caller decides what to do.

    The single solve path of capedyn (fits, posteriors, predictions, SINDy fields):

    * ``fixed_steps=None`` (default): Tsit5 with a PID step-size controller (``rtol``,
      ``atol``, at most ``max_steps`` steps).
    * ``fixed_steps=k``: Tsit5 with ``k`` equal steps from ``x0`` to ``xs[-1]`` (the save
      grid is known in advance, the trajectories are smooth and span ≤ 3 decades), values at
      ``xs`` from Tsit5's dense interpolant (:func:`_fixed_grid_solve`). Cheaper, and the
      result is a smooth function of the parameters (no accept/reject decisions), which
      suits NUTS. Accuracy against the adaptive solve is checked in the tests.

    ``adjoint`` chooses how derivatives flow through the solve: ``"reverse"``
    (gradients of a scalar loss, e.g. Adam, NUTS; ``diffrax.RecursiveCheckpointAdjoint``
    for the adaptive solve) or ``"forward"`` (forward-mode Jacobians of a residual vector,
    as the Gauss–Newton fit uses; ``diffrax.ForwardMode``).
    """
    import diffrax

    xs = jnp.asarray(xs)
    x0 = jnp.asarray(x0, dtype=xs.dtype)
    t1 = jnp.maximum(xs[-1], x0 + 1e-9)  # a zero-length span would be rejected by diffrax
    if adjoint not in ("reverse", "forward"):
        raise InputError(f"adjoint must be 'reverse' or 'forward', got {adjoint!r}")
    if fixed_steps is not None:
        if int(fixed_steps) < 1:
            raise InputError(f"fixed_steps must be a positive number of steps, got {fixed_steps}")
        zs = _fixed_grid_solve(field, jnp.asarray(z0, dtype=xs.dtype), x0, t1,
                               jnp.clip(xs, x0, t1), family, int(fixed_steps), adjoint)
        return zs, jnp.all(jnp.isfinite(zs))
    adj = diffrax.ForwardMode() if adjoint == "forward" else diffrax.RecursiveCheckpointAdjoint()
    from .._cache import solve_checks_as_nan

    with solve_checks_as_nan():  # no host callback: the compiled program can be cached
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_vector_field), diffrax.Tsit5(), t0=x0, t1=t1, dt0=None,
            y0=jnp.asarray(z0, dtype=xs.dtype), args=(field, family),
            saveat=diffrax.SaveAt(ts=jnp.clip(xs, x0, t1)),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps, throw=False, adjoint=adj)
    zs = sol.ys
    ok = (sol.result == diffrax.RESULTS.successful) & jnp.all(jnp.isfinite(zs))
    return zs, ok


@eqx.filter_jit  # as diffeqsolve is: a call outside jit reuses one compiled program
def _fixed_grid_solve(field: CouplingField, z0, x0, t1, ts, family: FamilyParams,
                      steps: int, adjoint: str) -> Float[Array, "n 5"]:
    """``steps`` equal Tsit5 steps from x0 to t1 and the values at ``ts`` from each step's
    dense interpolant: Diffrax's own Tsit5 step and interpolation on the time grid that
    ``diffeqsolve`` with a constant step size makes (t1 reached by its 100-ULP clip), in a
    ``lax.scan`` that JAX differentiates directly, instead of ``diffeqsolve``'s while loop
    with its adjoint and save bookkeeping: a NUTS gradient of the ODE posterior 0.69 →
    0.51 ms, a fit's trace 1.9 → 1.0 s (docs/estimators.md). The loop over a step's
    stages is Diffrax's default (checkpointed: reverse mode) or, for forward mode, a plain
    one, as ``diffeqsolve`` with ``ForwardMode`` picks."""
    import diffrax

    solver = diffrax.Tsit5(scan_kind="lax" if adjoint == "forward" else None)
    term, args = diffrax.ODETerm(_vector_field), (field, family)
    dt, floor = (t1 - x0) / steps, jax.lax.stop_gradient(t1)
    for _ in range(100):
        floor = jnp.nextafter(floor, -jnp.inf)

    def next_time(t):  # the step after t, set to t1 within 100 ULP of it
        return jnp.where(t + dt > floor, t1, t + dt)

    def one_step(carry, _):
        tprev, tnext, y, state = carry
        y, _, info, state, _ = solver.step(term, tprev, tnext, y, args, state, False)
        return (tnext, next_time(tnext), y, state), (tprev, tnext, info)

    first = next_time(x0)
    state = solver.init(term, x0, first, z0, args)
    _, (starts, ends, infos) = jax.lax.scan(one_step, (x0, first, z0, state), length=steps)
    # each save time is read from the first step that reaches it, as diffeqsolve saves
    step_of = jnp.minimum(jnp.searchsorted(ends, ts, side="left"), steps - 1)

    def at(t, i):
        info = jax.tree.map(lambda a: a[i], infos)
        return solver.interpolation_cls(t0=starts[i], t1=ends[i], **info).evaluate(t)

    return jax.vmap(at)(ts, step_of)


_solve_jit = eqx.filter_jit(solve_unchecked)


@scoped_x64
def solve(field: CouplingField, z0, x0, xs, family: FamilyParams, *, name: str = "family",
          max_steps: int = DEFAULT_MAX_STEPS) -> Float[Array, "n 5"]:
    """Integrate dz/dx from (x0, z0) and return z at ``xs`` (log10 N, sorted, ≥ x0).

    Diffrax Tsit5 with a PID step controller and ``SaveAt(ts=xs)``. Raises
    :class:`~capedyn.SolveError` naming ``name`` when the step budget runs out or the state
    becomes non-finite. Use :func:`solve_unchecked` inside jitted losses or NumPyro models.
    """
    xs = jnp.asarray(xs, dtype=float)
    if xs.ndim != 1 or xs.size == 0:
        raise InputError("xs must be a non-empty 1-D array of log10 N")
    if not bool(jnp.all(jnp.isfinite(xs))):
        raise InputError("xs contains non-finite values")
    if bool(jnp.any(jnp.diff(xs) < 0)):
        raise InputError("xs must be sorted in increasing order")
    if float(xs[0]) < float(x0) - 1e-12:
        raise InputError(f"xs must start at or after x0 = {float(x0):.4f} (log10 N); "
                         f"got {float(xs[0]):.4f}")
    # Pad the save points to a multiple of 8 so repeated calls reuse one compilation.
    n = xs.shape[0]
    padded = jnp.concatenate([xs, jnp.full((-n) % 8, xs[-1])])
    zs, ok = _solve_jit(field, jnp.asarray(z0, dtype=float), jnp.asarray(x0, dtype=float),
                        padded, family, max_steps=max_steps)
    zs = zs[:n]
    if not bool(ok):
        raise SolveError(
            f"ODE solve failed for family '{name}' between log10 N = {float(x0):.3f} and "
            f"{float(xs[-1]):.3f}: the state blew up or the {max_steps}-step budget ran out. "
            "The field is unstable there; fit with stronger regularisation or predict over a "
            "shorter range.")
    return zs


@scoped_x64
def predict_scores(field: CouplingField, family: FamilyParams, initial_scores, initial_params_b,
                   params_b, *, name: str = "family") -> np.ndarray:
    """Scores (percent, shape (n, 5), columns in ``BENCHMARKS`` order) at ``params_b``
    (billions), integrating from one model's five scores at ``initial_params_b`` (billions).
    Sizes may come in any order but must not be below the initial size."""
    s0 = np.asarray(initial_scores, dtype=float).reshape(-1)
    if s0.shape != (N_STATE,) or not np.all(np.isfinite(s0)):
        raise InputError(f"initial_scores must be {N_STATE} finite percentages "
                         f"({', '.join(BENCHMARKS)})")
    sizes = np.atleast_1d(np.asarray(params_b, dtype=float))
    if sizes.size == 0 or not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise InputError("params_b must be positive finite sizes in billions of parameters")
    if np.any(sizes < float(initial_params_b) * (1 - 1e-12)):
        raise InputError(f"requested sizes {sorted(sizes[sizes < initial_params_b].tolist())}B "
                         f"are below the initial model ({float(initial_params_b):g}B); the ODE "
                         "only integrates upward in scale")
    order = np.argsort(sizes, kind="stable")
    xs = log10_params(sizes[order])
    x0 = float(log10_params(float(initial_params_b)))
    zs = solve(field, to_state(s0), x0, xs, family, name=name)
    out = np.empty((sizes.size, N_STATE))
    out[order] = np.asarray(from_state(np.asarray(zs)))
    return out
