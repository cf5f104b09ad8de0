"""The Levenberg–Marquardt step (capedyn.dynamics.levenberg_marquardt) against a second
implementation of the same algorithm (optimistix.LevenbergMarquardt with a Cholesky normal
solve, stepped one iteration at a time) and against known parameters."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from capedyn._jax import x64
from capedyn.dynamics.levenberg_marquardt import lm_start, lm_step

# An exponential decay plus offset, y = a·exp(−b·t) + c, sampled without noise.
_T = np.linspace(0.0, 4.0, 25)
_TRUE = np.array([2.0, 1.3, 0.5])


def _residuals(p, y):
    return p[0] * jnp.exp(-p[1] * jnp.asarray(_T)) + p[2] - y


def _with_jacobian(y):
    return lambda p: (_residuals(p, y), jax.jacfwd(_residuals)(p, y))


def _ours(p0, y, tol, steps):
    state, points, stop = lm_start(jnp.asarray(p0), _T.size), [], None
    step = jax.jit(lambda s: lm_step(s, _with_jacobian(y), tol))
    for k in range(steps):
        state, done = step(state)
        points.append(np.asarray(state.y))
        if bool(done):
            stop = k + 1
            break
    return points, stop


def _optimistix(p0, y, tol, steps):
    import lineax as lx
    import optimistix as optx

    solver = optx.LevenbergMarquardt(rtol=tol, atol=tol, linear_solver=lx.Normal(lx.Cholesky()))
    fn = lambda p, _: (_residuals(p, y), None)  # noqa: E731
    p = jnp.asarray(p0)
    f_struct = jax.eval_shape(lambda: _residuals(p, y))
    state = solver.init(fn, p, None, {}, f_struct, None, frozenset())
    step = eqx.filter_jit(lambda p, s: solver.step(fn, p, None, {}, s, frozenset())[:2])
    points, stop = [], None
    for k in range(steps):
        p, state = step(p, state)
        points.append(np.asarray(p))
        if bool(solver.terminate(fn, p, None, {}, state, frozenset())[0]):
            stop = k + 1
            break
    return points, stop


@pytest.mark.parametrize("p0", [[1.0, 0.5, 0.0], [5.0, 3.0, -1.0], [0.1, 0.05, 2.0]])
def test_lm_step_retraces_optimistix_iterate_by_iterate(p0):
    """Same algorithm, two implementations: every accepted point agrees to rounding, and
    both stop on the same step (rejected steps, which move neither, included)."""
    with x64():
        y = _residuals(jnp.asarray(_TRUE), 0.0)
        ours, ours_stop = _ours(p0, y, 1e-8, 200)
        theirs, their_stop = _optimistix(p0, y, 1e-8, 200)
    assert ours_stop is not None and ours_stop == their_stop
    np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-9, atol=1e-12)


def test_lm_step_recovers_known_parameters():
    """From a start far from the truth on noise-free data, the fit returns the parameters
    the data were made with."""
    with x64():
        y = _residuals(jnp.asarray(_TRUE), 0.0)
        points, stop = _ours([5.0, 3.0, -1.0], y, 1e-10, 200)
    assert stop is not None
    np.testing.assert_allclose(points[-1], _TRUE, rtol=1e-7)


def test_a_rejected_step_keeps_the_point_and_shrinks_the_step():
    """A trial that raises ½‖r‖² is rejected: the accepted point, residuals and Jacobian
    stay, and the step size falls by the rejection factor (0.25)."""
    with x64():
        y = _residuals(jnp.asarray(_TRUE), 0.0)
        fn = _with_jacobian(y)
        state, _ = lm_step(lm_start(jnp.asarray(_TRUE), _T.size), fn, 1e-8)  # accepts the start
        worse = state.y + jnp.array([3.0, -1.0, 2.0])
        state = type(state)(state.y, state.residual, state.jac, worse, state.step_size,
                            state.first)
        after, done = lm_step(state, fn, 1e-8)
    assert not bool(done)
    np.testing.assert_array_equal(np.asarray(after.y), np.asarray(state.y))
    np.testing.assert_array_equal(np.asarray(after.jac), np.asarray(state.jac))
    assert float(after.step_size) == pytest.approx(0.25 * float(state.step_size))
