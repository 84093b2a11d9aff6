"""Properties every projection must have, checked by hypothesis in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from projection_cases import ALL, EXACT, norm, project, weights_for



@pytest.fixture(autouse=True, scope="module")
def float64():
  with jax.enable_x64(True):
    yield


LAYOUTS = [((7,), -1), ((5, 4), -1), ((5, 4), 0), ((2, 3, 4), (0, 2))]


@st.composite
def problems(draw):
  shape, axis = draw(st.sampled_from(LAYOUTS))
  # Magnitudes over many decades, with exact zeros and repeated values.
  magnitude = st.one_of(st.just(0.0), st.floats(1e-6, 1e6), st.sampled_from([0.5, 1.0, 2.0]))
  x = draw(hnp.arrays(np.float64, shape, elements=magnitude))
  x = x * draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0])))
  fraction = draw(st.floats(0.0, 1.5))
  seed = draw(st.integers(0, 2**16))
  return x, axis, fraction, seed


def solve(name, x, fraction, axis, **kwargs):
  w = weights_for(x)
  r = fraction * norm(name, x, axis=axis, weights=w)
  p = np.asarray(project(name, jnp.asarray(x), r, axis=axis, weights=w, **kwargs))
  return p, r, w


def scale(x):
  return max(float(np.abs(x).sum()), 1.0)


@pytest.mark.parametrize("name", ALL)
@given(problem=problems())
def test_result_is_feasible(name, problem):
  x, axis, fraction, _ = problem
  p, r, w = solve(name, x, fraction, axis)
  assert norm(name, p, axis=axis, weights=w) <= r + 1e-12 * scale(x)


@pytest.mark.parametrize("name", EXACT)
@given(problem=problems())
def test_variational_inequality(name, problem):
  # p is the nearest point of a convex set C iff <x − p, y − p> <= 0 for all y in C.
  x, axis, fraction, seed = problem
  p, r, w = solve(name, x, fraction, axis)
  rng = np.random.default_rng(seed)
  for _ in range(5):
    y = rng.standard_normal(x.shape) * rng.choice([1e-3, 1.0, 1e3])
    y *= min(1.0, r / max(norm(name, y, axis=axis, weights=w), 1e-300))
    assert np.vdot(x - p, y - p) <= 1e-9 * scale(x) * (scale(x) + scale(y))


@pytest.mark.parametrize("name", ALL)
@given(problem=problems())
def test_idempotent(name, problem):
  x, axis, fraction, _ = problem
  p, r, w = solve(name, x, fraction, axis)
  again = np.asarray(project(name, jnp.asarray(p), r, axis=axis, weights=w))
  np.testing.assert_allclose(again, p, rtol=0, atol=1e-12 * scale(x))


@pytest.mark.parametrize("name", ALL)
@given(problem=problems())
def test_identity_inside_the_ball(name, problem):
  x, axis, fraction, _ = problem
  w = weights_for(x)
  # Strictly inside: at r == norm the answer hangs on how the sum was rounded.
  r = (1.0 + 1e-9 + fraction) * norm(name, x, axis=axis, weights=w)
  np.testing.assert_array_equal(np.asarray(project(name, jnp.asarray(x), r, axis=axis, weights=w)), x)


@pytest.mark.parametrize("name", ALL)
@given(problem=problems())
def test_keeps_signs_and_only_shrinks(name, problem):
  x, axis, fraction, _ = problem
  p, _, _ = solve(name, x, fraction, axis)
  assert np.all(p * x >= 0)
  assert np.all(np.abs(p) <= np.abs(x))


@pytest.mark.parametrize("name", ["l1_ball", "weighted_l1_ball"])
@given(problem=problems())
def test_sort_and_newton_agree(name, problem):
  x, axis, fraction, _ = problem
  by_sort, _, _ = solve(name, x, fraction, axis, method="sort")
  by_newton, _, _ = solve(name, x, fraction, axis, method="newton")
  np.testing.assert_allclose(by_newton, by_sort, rtol=0, atol=1e-12 * scale(x))
