"""The coupling field and its solve: correctness against independent computations.

Every test that differentiates or fits uses the estimator's default field configuration
and the Pythia-shaped batch (2 padded families × 8 save points) so that one compilation
serves the whole file (and test_fit.py)."""

from __future__ import annotations

import functools

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import capedyn as cd
from capedyn._jax import x64
from capedyn.dynamics.state import FLOORS, N_FEATURES, polynomial_features, to_state, from_state
from capedyn.models.coupling_ode import CouplingODE
from capedyn.dynamics.objective import Population, loss_and_grad
from capedyn.dynamics.trajectory import stack_trajectories, trajectories
from capedyn.dynamics.field import CouplingField, FamilyParams, solve

HS, TQA = 0, 1
pytestmark = pytest.mark.xdist_group("fit_ode")  # with test_fit.py on two workers


@pytest.fixture(autouse=True)
def _float64():
    """capedyn scopes float64 to its own calls; these tests build JAX arrays directly."""
    with x64():
        yield


def _random_field(seed=0, scale=0.05, gamma0=0.3, coupling="score"):
    rng = np.random.default_rng(seed)
    coef = scale * rng.standard_normal((5, N_FEATURES))
    coef[:, 0] = [0.9, -0.2, 0.5, 0.3, 0.1]
    field = CouplingField.zeros(coupling=coupling)
    return eqx.tree_at(lambda f: (f.coef, f.gamma0), field,
                       (jnp.asarray(coef), jnp.asarray(gamma0, jnp.float64)))


def test_polynomial_field_solution_matches_scipy():
    """A pure polynomial field integrated by diffrax agrees with scipy's LSODA/RK45."""
    field = _random_field(seed=1)
    poly = CouplingField.from_polynomial(np.asarray(field.coef))
    fam = FamilyParams.make(9.0, np.zeros(5))
    coef = np.asarray(field.coef)
    z0 = to_state(np.array([30.0, 45.0, 22.0, 51.0, 25.5]))
    xs = np.array([8.0, 8.5, 9.0, 9.7, 10.2])
    ours = np.asarray(solve(poly, z0, 8.0, xs, fam))
    rhs = lambda x, z: coef @ polynomial_features(z)
    ref = solve_ivp(rhs, (8.0, 10.2), z0, t_eval=xs, rtol=1e-10, atol=1e-12, method="DOP853")
    np.testing.assert_allclose(ours, ref.y.T, rtol=1e-5, atol=1e-6)


def test_score_coupling_adds_gamma_times_hs_rate_in_points():
    """coupling='score': with only an HS source, dTQA/dx (points) = γ12(x) · dHS/dx (points)."""
    field = CouplingField.zeros(coupling="score", kappa_max=1e6)
    field = eqx.tree_at(lambda f: f.gamma0, field, jnp.asarray(0.4, jnp.float64))
    fam = FamilyParams.make(9.5, [0.7, 0.0, 0.0, 0.0, 0.0])
    z = to_state(np.array([55.0, 40.0, 30.0, 60.0, 26.0]))
    x = 10.3
    dz = np.asarray(field(x, jnp.asarray(z), fam))
    # score slope ds/dz by central differences of from_state (independent of the code's formula)
    eps = 1e-6
    slope = (from_state(z + eps) - from_state(z - eps)) / (2 * eps)
    ds = slope * dz
    gamma = 0.4 * (x - 9.5)
    assert ds[TQA] == pytest.approx(gamma * ds[HS], rel=1e-6)
    np.testing.assert_allclose(dz[2:], 0.0, atol=1e-14)


def test_latent_coupling_and_no_coupling():
    fam = FamilyParams.make(9.0, [0.5, 0.1, 0.0, 0.0, 0.0])
    z = jnp.zeros(5)
    lat = CouplingField.zeros(coupling="latent")
    lat = eqx.tree_at(lambda f: f.gamma0, lat, jnp.asarray(0.2, jnp.float64))
    assert float(lat(10.0, z, fam)[TQA]) == pytest.approx(0.1 + 0.2 * 1.0 * 0.5)
    none = CouplingField.from_polynomial(np.zeros((5, N_FEATURES)))
    assert float(none(10.0, z, fam)[TQA]) == pytest.approx(0.1)


def test_gradient_matches_central_finite_differences(base_df):
    """d(objective)/d(parameters) through the diffrax solve vs central differences (float64)."""
    trajs = trajectories(base_df[base_df["family"] == "Pythia"])
    batch = stack_trajectories(trajs)
    field = _random_field(seed=2, scale=0.03)
    fams = FamilyParams(jnp.asarray([9.3, 9.3]), jnp.asarray(np.tile([0.1, -0.05, 0.0, 0.02, 0.0], (2, 1))))
    pop = Population(field, fams, jnp.asarray(9.4))
    pen = CouplingODE(l2_h=0.1, l2_nc=0.2)._penalties()
    (value, _), grad = loss_and_grad(pop, batch, pen)

    probes = {
        "gamma0": (lambda p: p.field.gamma0, lambda g: g.field.gamma0, ()),
        "log10_nc": (lambda p: p.families.log10_nc, lambda g: g.families.log10_nc, (0,)),
        "h_tqa": (lambda p: p.families.h, lambda g: g.families.h, (0, 1)),
        "coef_hs_const": (lambda p: p.field.coef, lambda g: g.field.coef, (0, 0)),
        "coef_tqa_hs*wg": (lambda p: p.field.coef, lambda g: g.field.coef, (1, 9)),
        "mu_nc": (lambda p: p.mu_nc, lambda g: g.mu_nc, ()),
    }
    eps = 1e-4
    for name, (get, gget, idx) in probes.items():
        base = get(pop)
        bump = lambda d: eqx.tree_at(get, pop, base.at[idx].add(d))
        up = float(loss_and_grad(bump(eps), batch, pen)[0][0])
        down = float(loss_and_grad(bump(-eps), batch, pen)[0][0])
        fd = (up - down) / (2 * eps)
        ad = float(np.asarray(gget(grad))[idx])
        assert ad == pytest.approx(fd, rel=2e-4, abs=1e-6), name


def test_solve_failure_names_the_family():
    field = CouplingField.from_polynomial(np.zeros((5, N_FEATURES)))
    coef = np.zeros((5, N_FEATURES))
    coef[0, 0], coef[0, 6] = 2.0, 3.0  # dz_HS = 2 + 3 z_HS² blows up in finite x
    field = CouplingField.from_polynomial(coef)
    with pytest.raises(cd.SolveError, match="Exploding"):
        solve(field, np.zeros(5), 8.0, np.array([9.0, 12.0]), FamilyParams.make(), name="Exploding")
    with pytest.raises(cd.SolveError, match="Exploding"):
        cd.predict_scores(field, FamilyParams.make(), [30, 40, 25, 50, 25], 0.1, [1000.0],
                          name="Exploding")


def test_solve_rejects_bad_save_points():
    field = CouplingField.from_polynomial(np.zeros((5, N_FEATURES)))
    with pytest.raises(ValueError, match="sorted"):
        solve(field, np.zeros(5), 8.0, np.array([9.0, 8.5]), FamilyParams.make())
    with pytest.raises(ValueError, match="x0"):
        solve(field, np.zeros(5), 9.0, np.array([8.5, 9.5]), FamilyParams.make())
    with pytest.raises(ValueError, match="below the initial"):
        cd.predict_scores(field, FamilyParams.make(), [30, 40, 25, 50, 25], 7.0, [1.0])


def test_predict_scores_keeps_requested_order_and_initial_point():
    """A constant latent drift has the closed form z(x) = z0 + c·(x − x0)."""
    coef = np.zeros((5, N_FEATURES))
    coef[:, 0] = [0.8, -0.3, 0.4, 0.2, 0.1]
    field = CouplingField.from_polynomial(coef)
    s0 = np.array([30.0, 45.0, 24.0, 52.0, 25.0])
    sizes = np.array([70.0, 1.0, 13.0])
    got = cd.predict_scores(field, FamilyParams.make(), s0, 1.0, sizes)
    dx = np.log10(sizes / 1.0)
    expect = from_state(to_state(s0)[None, :] + dx[:, None] * coef[:, 0][None, :])
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    np.testing.assert_allclose(got[1], s0, rtol=1e-9)
    assert np.all(got > FLOORS) and np.all(got < 100)


@pytest.mark.parametrize("steps", [1, 4])
def test_fixed_grid_solve_equals_diffeqsolve_with_a_constant_step(steps, base_df):
    """The fixed-grid solve (Diffrax's Tsit5 step in a scan) against ``diffrax.diffeqsolve``
    with ``ConstantStepSize`` and ``SaveAt(ts=...)``, every family of the shipped fit,
    save times at the start, inside steps and at the end: equal to rounding, in value and
    in forward- and reverse-mode derivatives with respect to the family's Nc."""
    import diffrax
    import jax
    import jax.numpy as jnp

    from capedyn.dynamics.field import _vector_field, solve_unchecked

    est = cd.load_fit("all_families")
    trajs = {t.family: t for t in trajectories(base_df)}

    def reference(lnc, fam, z0, x0, xs, adjoint):
        fam = eqx.tree_at(lambda p: p.log10_nc, fam, lnc)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_vector_field), diffrax.Tsit5(), t0=x0, t1=xs[-1],
            dt0=(xs[-1] - x0) / steps, y0=z0, args=(est.field_, fam),
            saveat=diffrax.SaveAt(ts=xs), stepsize_controller=diffrax.ConstantStepSize(),
            max_steps=steps + 1, adjoint=adjoint)
        return sol.ys

    def fixed_grid(lnc, fam, z0, x0, xs, adjoint):
        fam = eqx.tree_at(lambda p: p.log10_nc, fam, lnc)
        return solve_unchecked(est.field_, z0, x0, xs, fam, fixed_steps=steps,
                               adjoint=adjoint)[0]

    @eqx.filter_jit
    def compared(*args):  # (reference, fixed grid) values, then d/d log10 Nc
        ref = functools.partial(reference, adjoint=diffrax.RecursiveCheckpointAdjoint())
        ref_fwd = functools.partial(reference, adjoint=diffrax.ForwardMode())
        new_fwd = functools.partial(fixed_grid, adjoint="forward")
        new_rev = functools.partial(fixed_grid, adjoint="reverse")
        return ((ref(*args), new_rev(*args)),
                (jax.jacfwd(ref_fwd)(*args), jax.jacfwd(new_fwd)(*args)),
                (jax.jacfwd(ref_fwd)(*args), jax.jacrev(new_rev)(*args)))

    for name, params in est.families_.items():
        t = trajs[name]
        xs = np.concatenate([t.x, np.full(8 - len(t.x), t.x[-1])])  # one shape: one compile
        out = compared(params.log10_nc, params, jnp.asarray(to_state(t.scores[0])), t.x[0],
                       jnp.asarray(xs))
        for (want, got), atol in zip(out, (1e-12, 1e-10, 1e-10)):
            np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=name)


@pytest.mark.parametrize("name", ["all_families", "pythia"])
def test_fixed_step_solve_matches_adaptive_on_every_shipped_family(name, base_df):
    """The posterior's and the fit's fixed-step Tsit5 (their default numbers of steps over
    each family's span) against the adaptive PID solve, every family of each shipped fit at
    its fitted Nc and h: within 1e-3 points (the score noise is 1-3 points) and, for the
    fit's grid, 1e-4 points, as the fit's own error estimate says."""
    import jax.numpy as jnp

    from capedyn.dynamics.field import solve_unchecked
    from capedyn.inference.sampling import SAMPLER_DEFAULTS

    est = cd.load_fit(name)
    trajs = {t.family: t for t in trajectories(base_df)}
    steps = SAMPLER_DEFAULTS["ode"]["ode_steps"]
    lm_steps = cd.CouplingODE().lm_solve_steps
    lm_err = []
    for fam, params in est.families_.items():
        t = trajs[fam]
        args = (est.field_, jnp.asarray(to_state(t.scores[0])), t.x[0], jnp.asarray(t.x), params)
        ref, ok_ref = solve_unchecked(*args)
        fixed, ok = solve_unchecked(*args, fixed_steps=steps)
        assert bool(ok_ref) and bool(ok)
        err = np.abs(np.asarray(from_state(fixed)) - np.asarray(from_state(ref)))
        assert err.max() < 1e-3, (fam, err.max())
        lm_err.append(np.abs(np.asarray(from_state(solve_unchecked(*args, fixed_steps=lm_steps)[0]))
                             - np.asarray(from_state(ref)))[1:].max())
    # the grid the default fit solves on, and the fit's own estimate of that grid's error
    # (against a 4x finer grid) next to the error measured here against the adaptive solve
    assert max(lm_err) < 1e-4
    gap, _ = _lm_grid_error(est, [trajs[f] for f in est.families_], lm_steps)
    # (the adaptive solve's own error, rtol 1e-7, is of the same order as the grid's here)
    assert max(lm_err) / 3 < gap < 3 * max(lm_err)


def _lm_grid_error(est, trajs, steps):
    """``fixed_step_gap`` for a fitted estimator's families, padded as a fit pads them."""
    import jax.numpy as jnp

    from capedyn.dynamics.objective import Population, _float64, fixed_step_gap
    from capedyn.dynamics.trajectory import stack_trajectories

    batch = _float64(stack_trajectories(trajs, lm_solve_steps=steps))
    pop = est.population()
    pad = batch.x0.shape[0] - len(trajs)
    fams = type(pop.families)(jnp.concatenate([pop.families.log10_nc,
                                               jnp.repeat(pop.families.log10_nc[:1], pad)]),
                              jnp.concatenate([pop.families.h,
                                               jnp.repeat(pop.families.h[:1], pad, axis=0)]))
    return (float(v) for v in fixed_step_gap(_float64(Population(pop.field, fams, pop.mu_nc)), batch))
