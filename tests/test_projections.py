"""Values of the projections against float64 NumPy references and cvxpy."""

import cvxpy as cp
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_optax import projections
from sparse_optax.projections import _threshold

import numpy_reference
from projection_cases import ALL, EXACT, GROUPED, METHODS, norm, precision, project, reference, weights_for

# (shape, axis): vectors, Dense kernels grouped by input and by output, a conv
# kernel (kh, kw, in, out) grouped by input channel, one group of everything.
LAYOUTS = [
    ((40,), -1),
    ((9, 6), -1),
    ((9, 6), 0),
    ((3, 4, 5), (0, 2)),
    ((3, 3, 4, 5), (0, 1, 3)),
    ((4, 7), (0, 1)),
]
FRACTIONS = (0.0, 1e-3, 0.05, 0.3, 0.9, 0.999, 1.0, 3.0)


def sample(kind, shape, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(shape)
  if kind == "ties":
    x = np.round(x * 2) / 2  # many equal magnitudes, and zeros
  elif kind == "zeros":
    x[rng.uniform(size=shape) < 0.5] = 0.0
  elif kind == "wide":
    x = np.sign(x) * 10.0 ** rng.uniform(-8, 8, size=shape)
  return x


def tolerance(dtype, x):
  scale = float(np.max(np.abs(x), initial=1.0))
  return (1e-10 if dtype == "float64" else 3e-5) * scale * np.sqrt(np.size(x))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["normal", "ties", "zeros", "wide"])
@pytest.mark.parametrize("name", ALL)
def test_matches_numpy_reference(name, kind, dtype):
  for shape, axis in LAYOUTS if name in GROUPED else LAYOUTS[:1] + LAYOUTS[3:4]:
    x = sample(kind, shape).astype(dtype)
    w = weights_for(x)
    methods = METHODS if name in ("l1_ball", "weighted_l1_ball") else (None,)
    for fraction in FRACTIONS:
      r = fraction * norm(name, x, axis=axis, weights=w)
      expected = reference(name, x, r, axis=axis, weights=w)
      for method in methods:
        with precision(dtype):
          got = project(name, jnp.asarray(x), r, axis=axis, weights=w, method=method)
        assert got.dtype == np.dtype(dtype) and got.shape == x.shape
        np.testing.assert_allclose(
            np.asarray(got, np.float64), expected, rtol=0, atol=tolerance(dtype, x),
            err_msg=f"{name} {method} {shape} axis={axis} r={fraction}*norm")


def cvxpy_projection(name, x, r, axis, w):
  """Solves the projection (or, for bilevel ones, each of its levels) with cvxpy."""
  rows, restore = numpy_reference._groups(x, axis)

  def nearest(target, constraint):
    p = cp.Variable(target.shape)
    cp.Problem(cp.Minimize(cp.sum_squares(p - target)), [constraint(p)]).solve(
        solver=cp.CLARABEL)
    return p.value

  if name == "l1_ball":
    return nearest(x, lambda p: cp.norm1(p) <= r)
  if name == "weighted_l1_ball":
    return nearest(x, lambda p: cp.sum(cp.multiply(w, cp.abs(p))) <= r)
  if name == "l2_ball":
    return nearest(x, lambda p: cp.sum_squares(p) <= r ** 2)
  if name == "linf_ball":
    return nearest(x, lambda p: cp.abs(p) <= r)
  if name == "l21_ball":
    return restore(nearest(rows, lambda p: cp.sum(cp.norm(p, 2, axis=1)) <= r))
  if name == "l1inf_ball":
    return restore(nearest(rows, lambda p: cp.sum(cp.max(cp.abs(p), axis=1)) <= r))
  if name == "l11_ball":
    budgets = nearest(np.abs(rows).sum(axis=1), lambda t: cp.norm1(t) <= r)
    return restore(np.stack([nearest(row, lambda p, t=t: cp.norm1(p) <= max(t, 0))
                             for row, t in zip(rows, budgets)]))
  budgets = nearest(np.abs(rows).max(axis=1), lambda t: cp.norm1(t) <= r)
  return restore(np.sign(rows) * np.minimum(np.abs(rows), np.maximum(budgets, 0)[:, None]))


@pytest.mark.parametrize("name", ALL)
def test_matches_convex_solver(name, x64):
  rng = np.random.default_rng(3)
  for shape, axis in [((12,), -1), ((5, 4), -1), ((3, 2, 4), (0, 2))]:
    if name not in GROUPED and len(shape) > 1 and shape != (5, 4):
      continue
    x = rng.standard_normal(shape)
    w = weights_for(x)
    for fraction in (0.05, 0.4, 0.8):
      r = fraction * norm(name, x, axis=axis, weights=w)
      got = np.asarray(project(name, x, r, axis=axis, weights=w))
      np.testing.assert_allclose(got, cvxpy_projection(name, x, r, axis, w), atol=2e-6,
                                 err_msg=f"{name} {shape} r={fraction}*norm")


@pytest.mark.parametrize("name", ALL)
def test_inside_the_ball_returns_x_bit_for_bit(name):
  x = jnp.asarray(sample("normal", (6, 5)), jnp.float32)
  w = weights_for(x)
  r = 1.0001 * norm(name, x, weights=w)
  assert np.array_equal(np.asarray(project(name, x, r, weights=w)), np.asarray(x))


@pytest.mark.parametrize("name", ALL)
def test_radius_zero_gives_zeros(name):
  x = jnp.asarray(sample("normal", (6, 5)), jnp.float32)
  w = weights_for(x)
  got = np.asarray(project(name, x, 0.0, weights=w))
  expected = np.where(w == 0, x, 0.0) if name == "weighted_l1_ball" else np.zeros(x.shape)
  np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", ALL)
def test_traced_negative_radius_acts_as_zero(name):
  x = jnp.asarray(sample("normal", (6, 5)), jnp.float32)
  w = weights_for(x)
  got = jax.jit(lambda x, r: project(name, x, r, weights=w))(x, -2.0)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(project(name, x, 0.0, weights=w)))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_entries_follow_one_convention(name, bad):
  # validation.NON_FINITE: NaN everywhere, except the box, which works entry
  # by entry.
  x = sample("normal", (6, 5))
  x[2, 3] = bad
  got = np.asarray(project(name, jnp.asarray(x, jnp.float32), 1.0, weights=weights_for(x)))
  if name == "linf_ball":
    expected = np.clip(x, -1.0, 1.0)
    np.testing.assert_array_equal(got, expected.astype(np.float32))
  else:
    assert np.isnan(got).all()


@pytest.mark.parametrize("name", ALL + ("simplex", "l1_sphere"))
def test_traced_nan_radius_gives_nan_and_concrete_nan_raises(name):
  x = jnp.asarray(sample("normal", (6, 5)), jnp.float32)
  w = weights_for(x)
  call = ((lambda x, r: getattr(projections, name)(x, r)) if name in ("simplex", "l1_sphere")
          else (lambda x, r: project(name, x, r, weights=w)))
  assert np.isnan(np.asarray(jax.jit(call)(x, jnp.float32(np.nan)))).all()
  with pytest.raises(ValueError, match=f"^{name}: radius is NaN; give a number >= 0.$"):
    call(x, float("nan"))


def test_simplex_keeps_negative_infinity_as_zero():
  got = projections.simplex(jnp.array([-jnp.inf, 0.5, 0.2]), 1.0)
  np.testing.assert_allclose(got, [0.0, 0.65, 0.35], rtol=1e-6)


def test_empty_and_scalar_inputs():
  assert projections.l1_ball(jnp.zeros((0,)), 1.0).shape == (0,)
  assert projections.l11_ball(jnp.zeros((0, 3)), 1.0).shape == (0, 3)
  assert projections.l1inf_ball(jnp.zeros((3, 0)), 1.0).shape == (3, 0)
  np.testing.assert_allclose(projections.l1_ball(jnp.float32(-5.0), 2.0), -2.0)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_is_float32_maths_rounded_once(name, dtype):
  x16 = jnp.asarray(sample("normal", (8, 6)), dtype)
  x32 = x16.astype(jnp.float32)
  w = weights_for(x16)
  r = 0.3 * norm(name, np.asarray(x32), weights=w)
  got = project(name, x16, r, weights=w)
  assert got.dtype == dtype
  # The maths runs in float32 on the same values, so the only difference is
  # the final rounding to the 16-bit type.
  np.testing.assert_array_equal(
      np.asarray(got.astype(jnp.float32)),
      np.asarray(project(name, x32, r, weights=w).astype(dtype).astype(jnp.float32)))


@pytest.mark.parametrize("name", EXACT)
def test_bfloat16_within_stated_tolerance_of_float32(name):
  # Exact projections are 1-Lipschitz: rounding x to bfloat16 (relative error
  # 2**-8) moves p by at most that much in ℓ2, plus the rounding of p itself.
  x32 = jnp.asarray(sample("normal", (16, 12)), jnp.float32)
  w = weights_for(x32)
  r = 0.2 * norm(name, np.asarray(x32), weights=w)
  p32 = np.asarray(project(name, x32, r, weights=w), np.float64)
  p16 = np.asarray(project(name, x32.astype(jnp.bfloat16), r, weights=w).astype(jnp.float32), np.float64)
  bound = 2.0 ** -8 * (np.linalg.norm(np.asarray(x32)) + np.linalg.norm(p32))
  assert np.linalg.norm(p16 - p32) <= bound


@pytest.mark.parametrize("name", ALL)
def test_jit_and_vmap_over_matrices_and_radii(name):
  xs = jnp.asarray(sample("normal", (5, 7, 4)), jnp.float32)
  w = weights_for(xs[0])
  radii = jnp.asarray([0.0, 0.5, 2.0, 5.0, 100.0], jnp.float32)
  batched = jax.jit(jax.vmap(lambda x, r: project(name, x, r, weights=w)))(xs, radii)
  for x, r, got in zip(xs, radii, batched):
    np.testing.assert_allclose(got, project(name, x, float(r), weights=w), rtol=1e-6, atol=1e-6)
  shared = jax.vmap(lambda x: project(name, x, 1.5, weights=w))(xs)
  np.testing.assert_allclose(shared[2], project(name, xs[2], 1.5, weights=w), rtol=1e-6, atol=1e-6)


def test_vmap_of_weighted_ball_over_weights():
  xs = jnp.asarray(sample("normal", (4, 10)), jnp.float32)
  ws = jnp.asarray(np.abs(sample("normal", (4, 10), seed=1)), jnp.float32)
  got = jax.vmap(lambda x, w: projections.weighted_l1_ball(x, 1.0, w))(xs, ws)
  for x, w, g in zip(xs, ws, got):
    np.testing.assert_allclose(g, projections.weighted_l1_ball(x, 1.0, w), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("steps", [0, 1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bisection_safeguard_is_exact(monkeypatch, steps, dtype):
  # With the Newton budget cut, the bit-pattern bisection has to finish the
  # job; the threshold must still be the reference one.
  monkeypatch.setattr(_threshold, "NEWTON_STEPS", steps)
  rng = np.random.default_rng(5)
  with precision(dtype):
    for n, fraction in [(50, 0.3), (1000, 0.01), (7, 0.9)]:
      a = np.abs(rng.standard_normal((3, n))).astype(dtype)
      radii = fraction * a.sum(axis=1, keepdims=True)
      got = _threshold.l1_threshold(jnp.asarray(a), jnp.asarray(radii), (1,))
      w = weights_for(a)
      got_w = _threshold.weighted_l1_threshold(jnp.asarray(a), jnp.asarray(w, dtype),
                                               jnp.asarray(radii), (1,))
      for row in range(3):
        rel = 1e-12 if dtype == "float64" else 2e-5
        np.testing.assert_allclose(got[row, 0], numpy_reference.threshold(a[row], radii[row, 0]), rtol=rel)
        np.testing.assert_allclose(got_w[row, 0], numpy_reference.threshold(a[row], radii[row, 0], w[row]),
                                   rtol=rel)


def test_large_vector_uses_sample_warm_start_and_stays_exact(x64):
  n = 3 * _threshold.SAMPLE_SIZE * _threshold.SAMPLE_EVERY + 17
  x = np.random.default_rng(11).standard_cauchy(n)
  for fraction in (1e-4, 0.02, 0.6):
    r = fraction * np.abs(x).sum()
    np.testing.assert_allclose(projections.l1_ball(x, r), numpy_reference.l1_ball(x, r),
                               atol=1e-9 * np.abs(x).max())


@pytest.mark.parametrize("kind", ["normal", pytest.param("wide", marks=pytest.mark.slow),
                                  pytest.param("zeros", marks=pytest.mark.slow)])
def test_rows_long_enough_to_sample_stay_exact(kind, x64):
  # 40 rows of 2048: each row's search starts from a sample of its blocks
  # (and the l1,inf levels from the levels of the sampled rows); the sample
  # only moves the start, never the result.
  assert _threshold.sample_plan((40, 2048), (1,)) == (1, 16)
  x = sample(kind, (40, 2048), seed=3)
  a = np.abs(x)
  radii = a.sum(axis=1, keepdims=True) * 10.0 ** np.random.default_rng(4).uniform(-4, -0.05, (40, 1))
  got = np.asarray(_threshold.l1_threshold(jnp.asarray(a), jnp.asarray(radii), (1,)))
  np.testing.assert_allclose(got[:, 0], numpy_reference.row_thresholds(a, radii[:, 0]), rtol=1e-10)
  for fraction in (0.02, 0.3):
    for name in ("l11_ball", "l1inf_ball"):
      r = fraction * numpy_reference.ball_norm(name, x)
      np.testing.assert_allclose(getattr(projections, name)(jnp.asarray(x), r),
                                 getattr(numpy_reference, name)(x, r), atol=1e-9 * a.max())


def test_l11_removes_exactly_the_groups_below_the_outer_threshold():
  # The paper's point: at the same radius ℓ1,1 removes whole rows (every row
  # whose ℓ1 norm is under the threshold of the norms), plain ℓ1 far fewer.
  x = sample("normal", (32, 16)).astype(np.float32)
  r = 0.1 * float(np.abs(x).sum())
  norms = np.abs(x.astype(np.float64)).sum(axis=1)
  expected_dead = int(np.sum(norms <= numpy_reference.threshold(norms, r)))
  dead_rows = lambda p: int(np.sum(~np.asarray(p).any(axis=1)))
  structured = projections.l11_ball(jnp.asarray(x), r)
  assert dead_rows(structured) == expected_dead > 0
  assert dead_rows(projections.l1_ball(jnp.asarray(x), r)) < expected_dead


@pytest.mark.slow
@pytest.mark.parametrize("steps,gathered", [(1, False), (5, True), (_threshold.NEWTON_STEPS, True)])
def test_rows_finished_on_a_gathered_copy_are_exact(monkeypatch, steps, gathered, x64):
  # 300 rows of 128 (trailing groups, many of them): once at most an eighth
  # of the rows still move, their last passes run on a gathered copy. Radii
  # over six decades make rows converge at very different passes (here 24
  # rows still move after 6 passes); with a Newton budget of 1 too many rows
  # are left and the bisection finishes them on the full array instead.
  monkeypatch.setattr(_threshold, "NEWTON_STEPS", steps)
  taken = []
  finish = _threshold._finish_moving_rows

  def spy(*args, **kwargs):
    jax.debug.callback(lambda: taken.append(True))
    return finish(*args, **kwargs)

  monkeypatch.setattr(_threshold, "_finish_moving_rows", spy)
  assert _threshold._settle_size((300, 128), (1,)) == 37
  rng = np.random.default_rng(8)
  a = np.abs(rng.standard_cauchy((300, 128)))
  radii = a.sum(axis=1, keepdims=True) * 10.0 ** rng.uniform(-6, 0.3, (300, 1))
  got = np.asarray(_threshold.l1_threshold(jnp.asarray(a), jnp.asarray(radii), (1,)))
  assert bool(taken) == gathered
  expected = numpy_reference.row_thresholds(a, radii[:, 0], iters=120)
  np.testing.assert_allclose(got[:, 0], expected, rtol=1e-10, atol=1e-300)
  x = rng.standard_normal((300, 128))
  for fraction in (0.01, 0.2, 0.7):
    r = fraction * np.abs(x).sum()
    np.testing.assert_allclose(projections.l11_ball(jnp.asarray(x), r),
                               numpy_reference.l11_ball(x, r), atol=1e-11)


@pytest.mark.parametrize("name", ["l1_ball", "weighted_l1_ball", "l21_ball", "l11_ball",
                                  "l1inf_ball", "bilevel_l1inf_ball"])
def test_warm_start_from_any_state_gives_the_same_projection(name, x64):
  # The transforms restart each search where the previous step's ended; the
  # result must not depend on where the search starts.
  from sparse_optax.projections import _groups, _l1, _l1inf
  warm = {"l1_ball": _l1.L1_BALL, "weighted_l1_ball": _l1.WEIGHTED_L1_BALL,
          "l21_ball": _groups.L21_BALL, "l11_ball": _groups.L11_BALL,
          "l1inf_ball": _l1inf.L1INF_BALL, "bilevel_l1inf_ball": _l1inf.BILEVEL_L1INF_BALL}[name]
  rng = np.random.default_rng(9)
  x = rng.standard_normal((70, 40))
  w = weights_for(x)
  options = {"weights": w} if name == "weighted_l1_ball" else (
      {} if name == "l1_ball" else {"axis": (1,)})
  r = 0.1 * norm(name, x, weights=w)
  expected = reference(name, x, r, weights=w)
  cold = warm.cold(jnp.asarray(x), **options)
  _, solved = warm.project(jnp.asarray(x), r, cold, **options)
  scale = lambda factor: jax.tree.map(lambda s: s * factor, solved)
  for start in [cold, solved, scale(0.5), scale(2.0), scale(np.inf),
                jax.tree.map(lambda s: jnp.asarray(rng.uniform(0, 3, s.shape)), solved)]:
    got, _ = warm.project(jnp.asarray(x), r, start, **options)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_l1inf_ball_leaves_a_point_of_its_boundary_in_place(x64):
  # Found by the idempotence property: the group (356834.88, 356834.88) ties at
  # its maximum, and the levels of a point an ulp outside the ball round onto
  # it. The Newton step must still see that group's mass, not drop it to 0.
  x = np.zeros((2, 3, 4))
  x[0, 0, 0], x[0, 1, :2], x[0, 2, 2] = -670731.0, [-556569.8263685431, -450993.921875], -347745.0
  r = 787522.9131842715
  p = np.asarray(projections.l1inf_ball(jnp.asarray(x), r, axis=(0, 2)))
  np.testing.assert_allclose(p, numpy_reference.l1inf_ball(x, r, axis=(0, 2)), atol=1e-9)
  again = np.asarray(projections.l1inf_ball(jnp.asarray(p), r, axis=(0, 2)))
  np.testing.assert_allclose(again, numpy_reference.l1inf_ball(p, r, axis=(0, 2)), atol=1e-9)
  np.testing.assert_allclose(again, p, atol=1e-9)
