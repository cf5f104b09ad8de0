"""The second-generation coupling ODE: dynamics shared across benchmarks in floor-normalised
logit space.

Motivation. A field with a free rate per benchmark learns from one family only the
benchmarks that family moved on: Pythia's MMLU sits at chance through 12B, so a field fit
on Pythia has no reason to move MMLU for any family. This model treats the benchmarks as
*exchangeable*: they share one rate law, and each benchmark's own deviation from it is
shrunk toward zero, so a benchmark is expected to move the way the others move unless the
training data say otherwise.

State and scale
    z_k = logit((s_k − f_k) / (100 − f_k)) with floors f_k = chance_k − ``floor_slack``
    (chance 25 for HellaSwag, ARC, MMLU; 50 for WinoGrande; 20 for TruthfulQA MC2), scores
    s_k in percent; x = log10 N with N in parameters.

Vector field (:class:`SharedLogitField`, logit units per decade)::

    dz_k/dx = g0 + g1·tanh(z_k / 2) + g2·(x − 9)        shared by every benchmark
              + c_k                                    benchmark offset   (ridge l2_c)
              + Σ_{j≠k} W_kj · z_j                     cross-benchmark coupling (ridge l2_w)
              + h_f,k                                  family source      (ridge l2_h)

The shared part may depend on the benchmark's own state (bounded, so saturation can slow a
benchmark down) and on scale (``state_term``, ``scale_term``; with both off every benchmark
drifts at one constant logit rate plus its offset). A family the fit has never seen gets
h = 0 (the population), the training families' mean source, or a source predicted from its
start by a ridge regression across the training families (``new_family_source``).

Benchmarks that never left chance. A family whose scores on a benchmark stay at chance
(Pythia's MMLU, 24-27 % from 70M to 12B) shows that the benchmark can sit at chance, not how
fast it moves once it has left it. With ``censor_margin`` set, such (family, benchmark)
series (every score below chance + margin) are left out of the loss, so the benchmark's
offset is learnt from the families that did move it, or — if none did — shrinks to the
shared rate (the exchangeable prior); and a new family starting below chance + margin on
such a benchmark is predicted to stay at its starting score.

Fit. Every training family with ≥ 2 complete models is integrated from its smallest complete
model with ``diffrax.diffeqsolve`` (Tsit5, PID step control, ``SaveAt(ts=...)``), vmapped
over families padded to shared shapes; the loss is the mean squared error in score points
over its other models plus the ridges. ``optimizer="adam"``: Optax Adam on a warm-up/cosine
schedule (``optax.warmup_cosine_decay_schedule``) inside ``optax.apply_if_finite``, the best
iterate kept. ``optimizer="lm"``: Levenberg–Marquardt (the coupling ODE's, optimistix's
algorithm on an explicit Jacobian) on the residual vector whose squared norm is that
objective (Jacobians by forward mode through the solve, ``diffrax.ForwardMode``), stopping
at its tolerance. One ``eqx.filter_jit``-compiled step serves every fit with the same
padded shapes: the tolerance, floors, penalties, the censoring mask and the
``state_term``/``scale_term`` switches are dynamic arrays (a switched-off term is masked to
0 inside the fit), so no setting recompiles.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float
from sklearn.base import BaseEstimator

from .._errors import CapedynError, InputError
from .._fitmemo import FitMemo, array_digest
from ._intervals import interval_predict
from .._jax import scoped_x64
from .._progress import Progress
from ..dynamics.levenberg_marquardt import LMState, lm_start, lm_step
from ..dynamics.objective import own_family_columns
from ..dynamics.state import CHANCE, CEILING
from .baselines import initial_condition, prediction_frame, _targets
from ..data.tables import BENCHMARKS, complete_models, log10_params
from .peers import floor_logit as _to_z

__all__ = ["SharedLogitField", "SharedLogitODE", "X_REF"]

N = len(BENCHMARKS)
X_REF = 9.0
"""The scale term of the shared rate is written in x − 9 (relative to 1B parameters)."""
_CHANCE = np.array([CHANCE[b] for b in BENCHMARKS])
_OFFDIAG = 1.0 - np.eye(N)


class SharedLogitField(eqx.Module):
    """dz/dx of the module docstring; ``h`` is the family source passed per call."""

    g: Float[Array, "3"]
    c: Float[Array, "5"]
    W: Float[Array, "5 5"]
    scale_term: bool = eqx.field(static=True, default=True)
    state_term: bool = eqx.field(static=True, default=True)

    def __call__(self, x, z, h):
        g1 = self.g[1] if self.state_term else 0.0
        g2 = self.g[2] if self.scale_term else 0.0
        shared = self.g[0] + g1 * jnp.tanh(z / 2.0) + g2 * (x - X_REF)
        cross = (self.W * jnp.asarray(_OFFDIAG, dtype=z.dtype)) @ z
        return shared + self.c + cross + h


class _Params(eqx.Module):
    field: SharedLogitField
    h: Float[Array, "F 5"]


class _Batch(eqx.Module):
    x0: Float[Array, "F"]
    z0: Float[Array, "F 5"]
    xs: Float[Array, "F M"]
    ys: Float[Array, "F M 5"]
    mask: Float[Array, "F M"]
    bmask: Float[Array, "F 5"]      # 0 for a (family, benchmark) series left out (censored)
    floors: Float[Array, "5"]
    pen: Float[Array, "4"]          # l2_c, l2_w, l2_h, l2_g
    g_mask: Float[Array, "3"]       # 1, state_term, scale_term: the shared terms fitted


def _from_z(z, floors):
    return floors + (CEILING - floors) * jax.nn.sigmoid(z)


def _solve_one(field, h, z0, x0, xs, max_steps=512, forward=False):
    import diffrax

    # forward mode (Levenberg–Marquardt's Jacobian) needs diffrax's ForwardMode adjoint;
    # reverse mode (Adam's gradient) the default checkpointed one
    adjoint = diffrax.ForwardMode() if forward else diffrax.RecursiveCheckpointAdjoint()
    t1 = jnp.maximum(xs[-1], x0 + 1e-9)
    from .._cache import solve_checks_as_nan

    with solve_checks_as_nan():  # no host callback: the compiled program can be cached
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, args: field(t, y, args)), diffrax.Tsit5(), t0=x0,
            t1=t1, dt0=None, y0=z0, args=h, saveat=diffrax.SaveAt(ts=jnp.clip(xs, x0, t1)),
            stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8),
            max_steps=max_steps, throw=False, adjoint=adjoint)
    ok = (sol.result == diffrax.RESULTS.successful) & jnp.all(jnp.isfinite(sol.ys))
    return sol.ys, ok


def _errors(params: _Params, batch: _Batch, forward: bool = False):
    """Score errors (F, M, 5) in points, 0 where a value is not scored (initial model,
    padding, censored series); the count of scored values (at least 1); every solve ok.
    ``forward``: solves differentiable in forward mode (Levenberg–Marquardt)."""
    # A shared term switched off is masked here rather than left out of the field: its
    # coefficient's effect (and its Jacobian column) is zero either way, and every setting
    # of the switches then shares one compiled fit.
    w = _weights(batch)
    err, ok = jax.vmap(functools.partial(_family_errors, forward=forward),
                       in_axes=(None, 0, 0, 0, 0, 0, 0, None))(
        params.field, params.h, batch.z0, batch.x0, batch.xs, batch.ys, w, batch)
    return err, jnp.maximum(jnp.sum(w), 1.0), jnp.all(ok)


def _weights(batch: _Batch):
    """(F, M, 5): 1 where a score counts (a scored model of a series not censored)."""
    return batch.mask[..., None] * batch.bmask[:, None, :]


def _family_errors(field, h, z0, x0, xs, ys, w, batch: _Batch, forward: bool = False):
    """One family's score errors (M, 5) in points (0 where ``w`` is) and its solve's success."""
    zs, ok = _solve_one(_switched(field, batch), h, z0, x0, xs, forward=forward)
    return jnp.where(w > 0, _from_z(zs, batch.floors) - ys, 0.0), ok


def _loss(params: _Params, batch: _Batch):
    err, n, ok = _errors(params, batch)
    mse = jnp.sum(err ** 2) / n
    f = params.field
    pen = (batch.pen[0] * jnp.sum(f.c ** 2) + batch.pen[1] * jnp.sum((f.W * _OFFDIAG) ** 2)
           + batch.pen[2] * jnp.sum(params.h ** 2) + batch.pen[3] * jnp.sum(f.g[1:] ** 2))
    total = jnp.where(ok, mse + pen, jnp.nan)
    return total, mse


def _switched(field: SharedLogitField, batch: _Batch) -> SharedLogitField:
    """``field`` with the shared terms switched off by ``batch.g_mask`` zeroed."""
    return eqx.tree_at(lambda f: f.g, field, field.g * batch.g_mask)


def _penalty_residuals(params: _Params, batch: _Batch):
    f, pen = params.field, jnp.sqrt(batch.pen)
    return jnp.concatenate([pen[0] * f.c, pen[1] * (f.W * _OFFDIAG).ravel(),
                            pen[2] * params.h.ravel(), pen[3] * f.g[1:]])


def _residuals(params: _Params, batch: _Batch):
    """Residual vector whose squared norm is the objective of :func:`_loss` (data errors in
    points scaled by 1/sqrt(count), each ridge a sqrt-weighted extra residual); NaN when a
    solve fails. The fit takes it, with its Jacobian, from :func:`_residual_jacobian`; this
    plain form is what that family-by-family construction is checked against."""
    err, n, ok = _errors(params, batch, forward=True)
    r = jnp.concatenate([err.ravel() / jnp.sqrt(n), _penalty_residuals(params, batch)])
    return jnp.where(ok, r, jnp.nan)


def _residual_jacobian(params: _Params, batch: _Batch):
    """(residuals, Jacobian with respect to ``ravel_pytree(params)``) by forward mode, family
    by family: a family's rows depend on the shared field and its own source h only, so
    each is pushed through its solve with those 38 tangents rather than every parameter's
    (33 + 5 per family); the ridge rows, which need no solve, are differentiated whole."""
    from jax.flatten_util import ravel_pytree

    w = _weights(batch)
    n = jnp.maximum(jnp.sum(w), 1.0)

    def one(h, z0, x0, xs, ys, wf):
        def rows(a):
            err, ok = _family_errors(*a, z0, x0, xs, ys, wf, batch, forward=True)
            r = err.ravel() / jnp.sqrt(n)
            return r, (r, ok)

        return jax.jacfwd(rows, has_aux=True)((params.field, h))

    (d_field, d_h), (r_data, ok) = jax.vmap(one)(params.h, batch.z0, batch.x0, batch.xs,
                                                 batch.ys, w)
    n_rows = r_data.size
    j_data = jnp.concatenate([d_field.g.reshape(n_rows, -1), d_field.c.reshape(n_rows, -1),
                              d_field.W.reshape(n_rows, -1), own_family_columns(d_h)], axis=1)
    flat, unravel = ravel_pytree(params)

    def ridges(t):
        r = _penalty_residuals(unravel(t), batch)
        return r, r

    j_pen, r_pen = jax.jacfwd(ridges, has_aux=True)(flat)
    good = jnp.all(ok)
    r = jnp.concatenate([r_data.ravel(), r_pen])
    return jnp.where(good, r, jnp.nan), jnp.where(good, jnp.concatenate([j_data, j_pen]), 0.0)


def _fit_lm(params: _Params, batch: _Batch, tol: float, max_steps: int):
    """Levenberg–Marquardt (:mod:`capedyn.dynamics.levenberg_marquardt`, the coupling ODE's)
    from ``params`` on :func:`_residuals`, at most ``max_steps`` steps, stopping when the
    Cauchy test holds with ``rtol = atol = tol``. Returns (last accepted point, steps
    taken, objective, data MSE in points²). ``tol`` is an argument of the compiled step, so
    any tolerance shares it."""
    tol = jnp.asarray(tol, jnp.float64)
    state, n_steps = _lm_begin(params, batch), 0
    for n_steps in range(1, max_steps + 1):
        state, done = _lm_step_jit(state, params, batch, tol)
        if bool(done):
            break
    value, loss, mse = _lm_end(state.y, params, batch)
    return value, n_steps, loss, mse


@eqx.filter_jit
def _lm_begin(params: _Params, batch: _Batch) -> LMState:
    from jax.flatten_util import ravel_pytree

    n_ridges = jax.eval_shape(_penalty_residuals, params, batch).shape[0]  # no solve traced
    return lm_start(ravel_pytree(params)[0], batch.ys.size + n_ridges)


@eqx.filter_jit
def _lm_step_jit(state: LMState, like: _Params, batch: _Batch, tol):
    """One step; ``like`` gives the structure ``state``'s flat vectors unravel to."""
    from jax.flatten_util import ravel_pytree

    unravel = ravel_pytree(like)[1]
    return lm_step(state, lambda t: _residual_jacobian(unravel(t), batch), tol)


@eqx.filter_jit
def _lm_end(flat, like: _Params, batch: _Batch):
    from jax.flatten_util import ravel_pytree

    value = ravel_pytree(like)[1](flat)
    return (value,) + _loss(value, batch)


_LM_FITS = FitMemo(512)
"""Results of :func:`_fit_lm` by the exact bytes of its inputs: grid points that differ only
in a setting applied after the optimisation (``new_family_source``, ``transfer_alpha``)
share one optimisation, with the same bits as running it again."""


def _fit_lm_memo(params: _Params, batch: _Batch, tol: float, max_steps: int):
    leaves, treedef = jax.tree_util.tree_flatten((params, batch))
    key = array_digest(*leaves, extra=(str(treedef), float(tol), int(max_steps)))
    out, _ = _LM_FITS.get_or_fit(key, lambda: _fit_lm(params, batch, tol, max_steps))
    return out


@functools.lru_cache(maxsize=1)
def _optimizer():
    import optax

    return optax.apply_if_finite(optax.inject_hyperparams(optax.adam)(learning_rate=0.0),
                                 max_consecutive_errors=50)


@eqx.filter_jit
def _step(params, opt_state, batch, lr):
    import optax

    (loss, mse), grads = eqx.filter_value_and_grad(_loss, has_aux=True)(params, batch)
    opt_state = optax.tree_utils.tree_set(opt_state, learning_rate=lr)
    updates, opt_state = _optimizer().update(grads, opt_state, params)
    return eqx.apply_updates(params, updates), opt_state, loss, mse


def _bucket(n: int, lo: int) -> int:
    return max(lo, 1 << (n - 1).bit_length())


class SharedLogitODE(BaseEstimator):
    """Second-generation coupling ODE with dynamics shared across benchmarks (module doc).

    Parameters
    ----------
    floor_slack : floors sit this many points below chance (percent).
    l2_c, l2_w, l2_h : ridges on the benchmark offsets c, the cross-benchmark coupling W and
        the family sources h (squared points per squared logit-rate unit).
    l2_g : small ridge on the shared state and scale terms.
    scale_term : include the shared g2·(x − 9) term (False: rates depend on the state only,
        so a family's scale never slows it down by itself).
    state_term : include the shared g1·tanh(z_k/2) term (False: the shared rate does not
        depend on how far a benchmark has already risen).
    new_family_source : the source h of a family the fit has never seen: "zero" (the
        population, h = 0) or "mean" (the mean of the training families' sources; with one
        training family its own source, so what the fit split between the offsets c and
        that family's h is not lost) or "transfer" (a ridge regression, across the training
        families, of h_f on the family's start — its initial logits and log10 N —
        standardised, penalty ``transfer_alpha`` per training family; the mean with fewer
        than three training families).
    censor_margin : None, or points above chance (percent). A training family's benchmark
        whose every complete-model score stays below chance + ``censor_margin`` carries no
        information about how fast that benchmark moves once it leaves chance (it never
        did): that series is left out of the loss, so the benchmark's offset c_k is
        learnt from the families that moved it and, with none, shrinks to the shared rate.
        Symmetrically, when predicting, a benchmark that starts below chance +
        ``censor_margin`` and that some training family kept at chance throughout is held
        at its starting score (the training data show it can stay there; when it will
        emerge cannot be read off one model at chance).
    optimizer : "adam" (Optax Adam through the solver, every step run, the best iterate
        kept) or "lm" (Levenberg–Marquardt on the residual vector, Jacobians by
        forward mode through the Diffrax solve; stops at its tolerance ``tol``, typically
        after 10-30 steps).
    steps : iteration cap (Adam runs all of them).
    learning_rate, warmup : Adam's peak rate and warm-up steps.
    tol : Levenberg–Marquardt's relative and absolute tolerance.
    progress : progress line on stderr.

    Attributes
    ----------
    field_ (SharedLogitField), floors_ (5,), families_ (name → h_f), new_source_ (5,) the
    source of an unseen family, censored_ (name → benchmarks left out of the loss),
    hold_at_chance_ (5,) bool: benchmarks held at a start below chance + margin, mse_
    (training MSE, points²), history_ (objective per step), n_families_.
    """

    def __init__(self, floor_slack: float = 10.0, l2_c: float = 3.0, l2_w: float = 30.0,
                 l2_h: float = 3.0, l2_g: float = 0.01, steps: int = 800,
                 learning_rate: float = 0.03, warmup: int = 50, progress: bool = False,
                 scale_term: bool = True, state_term: bool = True,
                 new_family_source: str = "zero", censor_margin: float | None = None,
                 optimizer: str = "adam", tol: float = 1e-7, transfer_alpha: float = 1.0):
        self.floor_slack = floor_slack
        self.l2_c = l2_c
        self.l2_w = l2_w
        self.l2_h = l2_h
        self.l2_g = l2_g
        self.steps = steps
        self.learning_rate = learning_rate
        self.warmup = warmup
        self.progress = progress
        self.scale_term = scale_term
        self.state_term = state_term
        self.new_family_source = new_family_source
        self.censor_margin = censor_margin
        self.optimizer = optimizer
        self.tol = tol
        self.transfer_alpha = transfer_alpha

    def _floors(self) -> np.ndarray:
        slack = float(self.floor_slack)
        if not 0 <= slack < 20:
            raise InputError(f"floor_slack must be in [0, 20) points below chance, got {self.floor_slack!r}")
        return _CHANCE - slack

    @scoped_x64
    def fit(self, train_df: pd.DataFrame) -> "SharedLogitODE":
        """Fit on every family of ``train_df`` with ≥ 2 complete models."""
        floors = self._floors()
        if self.optimizer not in ("adam", "lm"):
            raise InputError(f"optimizer must be 'adam' or 'lm', got {self.optimizer!r}")
        if self.new_family_source not in ("zero", "mean", "transfer"):
            raise InputError("new_family_source must be 'zero', 'mean' or 'transfer', got "
                             f"{self.new_family_source!r}")
        margin = None if self.censor_margin is None else float(self.censor_margin)
        if margin is not None and not np.isfinite(margin):
            raise InputError(f"censor_margin must be a finite number of points or None, got {self.censor_margin!r}")
        full = complete_models(train_df)
        # row numbers of each family, sorted by size as DataFrame.sort_values("params_b")
        # sorts (the same NumPy quicksort), in NumPy: this runs once per inner fit
        family, size = full["family"].to_numpy(), full["params_b"].to_numpy(float)
        scores = full[list(BENCHMARKS)].to_numpy(float)
        rows_of = {f: np.flatnonzero(family == f) for f in dict.fromkeys(family)}
        rows_of = {f: r[np.argsort(size[r], kind="quicksort")] for f, r in rows_of.items()
                   if len(r) >= 2}
        fams = list(rows_of)
        if not fams:
            raise CapedynError("SharedLogitODE needs a training family with two complete models")
        n_f = _bucket(len(fams), 2)
        m = _bucket(max(len(r) for r in rows_of.values()), 8)
        xs = np.zeros((n_f, m)); ys = np.zeros((n_f, m, N)); mask = np.zeros((n_f, m))
        bmask = np.ones((n_f, N))
        for i in range(n_f):
            rows = rows_of[fams[i if i < len(fams) else 0]]
            x = log10_params(size[rows])
            s = scores[rows]
            k = len(x)
            xs[i, :k], xs[i, k:] = x, x[-1]
            ys[i, :k], ys[i, k:] = s, s[-1]
            if i < len(fams):
                mask[i, 1:k] = 1.0
                if margin is not None:
                    bmask[i] = (s.max(axis=0) >= _CHANCE + margin).astype(float)
        z0 = _to_z(ys[:, 0], floors)
        batch = _Batch(jnp.asarray(xs[:, 0]), jnp.asarray(z0), jnp.asarray(xs), jnp.asarray(ys),
                       jnp.asarray(mask), jnp.asarray(bmask), jnp.asarray(floors),
                       jnp.asarray([self.l2_c, self.l2_w, self.l2_h, self.l2_g], float),
                       jnp.asarray([1.0, bool(self.state_term), bool(self.scale_term)], float))
        # start from the pooled mean logit drift (first → last model of each family)
        drifts = np.array([(_to_z(ys[i, int(mask[i].sum())], floors) - z0[i])
                           / max(xs[i, int(mask[i].sum())] - xs[i, 0], 1e-3) for i in range(len(fams))])
        kept = bmask[:len(fams)] > 0
        drift = float(drifts[kept].mean()) if kept.any() else float(drifts.mean())
        field = SharedLogitField(g=jnp.asarray([drift, 0.0, 0.0]), c=jnp.zeros(N),
                                 W=jnp.zeros((N, N)))  # both terms on, masked by batch.g_mask
        params = _Params(field, jnp.zeros((n_f, N)))
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        steps = int(self.steps)
        if self.optimizer == "lm":
            params, n_iter, loss, mse = _fit_lm_memo(params, batch, float(self.tol), max(steps, 1))
            best, history = (float(loss), float(mse), params), [float(loss)]
            self.n_iter_ = int(n_iter)
        else:
            best, history = self._adam(params, batch, steps)
            self.n_iter_ = steps
        if not np.isfinite(best[0]):
            raise CapedynError("every step of the shared-logit ODE fit had a failing solve; "
                               "raise l2_w or lower learning_rate")
        params = best[2]
        # a switched-off term's coefficient never moved from 0; the fitted field says so
        self.field_ = SharedLogitField(params.field.g, params.field.c, params.field.W,
                                       scale_term=bool(self.scale_term),
                                       state_term=bool(self.state_term))
        self.floors_, self.mse_ = floors, best[1]
        self.families_ = {f: np.asarray(params.h[i]) for i, f in enumerate(fams)}
        self.new_source_ = (np.mean(list(self.families_.values()), axis=0)
                            if self.new_family_source != "zero" else np.zeros(N))
        self.transfer_ = None
        if self.new_family_source == "transfer" and len(fams) >= 3:
            from sklearn.linear_model import Ridge
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            feats = np.column_stack([z0[:len(fams)], xs[:len(fams), 0]])
            self.transfer_ = make_pipeline(StandardScaler(), Ridge(
                alpha=float(self.transfer_alpha) * len(fams))).fit(
                feats, np.asarray(params.h[:len(fams)]))
        self.censored_ = {f: [b for b, keep in zip(BENCHMARKS, bmask[i]) if not keep]
                          for i, f in enumerate(fams)}
        self.hold_at_chance_ = np.asarray((bmask[:len(fams)] == 0).any(axis=0))
        self.history_, self.n_families_ = history, len(fams)
        return self

    def _adam(self, params, batch, steps):
        import optax

        opt_state = _optimizer().init(eqx.filter(params, eqx.is_inexact_array))
        sched = optax.warmup_cosine_decay_schedule(
            init_value=self.learning_rate / 10, peak_value=float(self.learning_rate),
            warmup_steps=int(self.warmup), decay_steps=max(steps, int(self.warmup) + 1),
            end_value=self.learning_rate / 100)
        rates = np.asarray(jax.vmap(sched)(jnp.arange(max(steps, 1))), float)
        best, history = (np.inf, np.nan, params), []
        with Progress(steps, "shared-logit ODE fit", enabled=bool(self.progress)) as bar:
            for k in range(steps):
                new, opt_state, loss, mse = _step(params, opt_state, batch, jnp.asarray(rates[k]))
                loss = float(loss)
                history.append(loss)
                if np.isfinite(loss) and loss < best[0]:
                    best = (loss, float(mse), params)
                params = new
                bar.update(k + 1, loss=loss)
        return best, history

    @interval_predict
    @scoped_x64
    def predict(self, initial_row, params_b) -> pd.DataFrame:
        """Scores (percent) at ``params_b`` (billions) from ``initial_row``'s five scores,
        with the family's fitted source if the row's family was in training, else the
        new-family source (``new_family_source``: h = 0, the training mean, or the
        transfer rule applied to this start)."""
        if not hasattr(self, "field_"):
            raise CapedynError("SharedLogitODE is not fitted; call fit(train_df) first")
        p0, y0 = initial_condition(initial_row)
        p = _targets(params_b)
        if np.any(p < p0 * (1 - 1e-12)):
            raise InputError("SharedLogitODE integrates upward in scale only; sizes must be ≥ "
                             f"the initial model's {p0:g}B")
        fam = initial_row.get("family") if hasattr(initial_row, "get") else None
        new = getattr(self, "new_source_", np.zeros(N))
        if getattr(self, "transfer_", None) is not None and fam not in self.families_:
            feats = np.append(_to_z(y0, self.floors_), float(log10_params(p0)))
            new = self.transfer_.predict(feats[None, :])[0]
        h = self.families_.get(fam, new) if fam is not None else new
        order = np.argsort(p, kind="stable")
        xs = log10_params(p[order])
        n = len(xs)
        padded = np.concatenate([xs, np.repeat(xs[-1], -n % 8)])
        zs, ok = _solve_jit(self.field_, jnp.asarray(h, float), jnp.asarray(_to_z(y0, self.floors_)),
                            jnp.asarray(float(log10_params(p0))), jnp.asarray(padded))
        if not bool(ok):
            from .._errors import SolveError

            raise SolveError(f"shared-logit ODE solve failed for family '{fam or 'held-out'}'")
        out = np.empty((n, N))
        out[order] = np.asarray(_from_z(zs[:n], jnp.asarray(self.floors_)))
        if self.censor_margin is not None:
            hold = getattr(self, "hold_at_chance_", np.zeros(N, bool)) & (
                y0 < _CHANCE + float(self.censor_margin))
            out[:, hold] = y0[hold]
        return prediction_frame(p, out)

    def score(self, df: pd.DataFrame) -> dict:
        """In-sample error of each family of ``df`` integrated from its smallest complete
        model: mean relative error % per benchmark and their mean (the in-sample metric)."""
        full = complete_models(df)
        errs, acts = [], []
        for fam in dict.fromkeys(full["family"]):
            rows = full[full["family"] == fam].sort_values("params_b")
            if len(rows) < 2:
                continue
            pred = self.predict(rows.iloc[0], rows["params_b"].to_numpy()[1:])[list(BENCHMARKS)].to_numpy()
            actual = rows[list(BENCHMARKS)].to_numpy()[1:]
            errs.append(np.abs(pred - actual)); acts.append(actual)
        e, a = np.vstack(errs), np.vstack(acts)
        per = 100 * e.mean(axis=0) / a.mean(axis=0)
        return {"per_benchmark_rel_error_pct": dict(zip(BENCHMARKS, per.tolist())),
                "mean_rel_error_pct": float(per.mean()),
                "rel_mae_pct": float(100 * e.mean() / a.mean())}


_solve_jit = eqx.filter_jit(_solve_one)
