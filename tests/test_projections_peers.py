"""The cases of optax's and jaxopt's projection tests, on this library's functions.

Inputs, radii and expected values follow those two test suites (the code is
written here); each defect found by running them has its own regression test
at the end.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_optax import projections

import numpy_reference

ARRAY_1D = np.array([0.5, 2.1, -3.5], np.float32)
ARRAY_2D = np.array([[0.5, 2.1, -3.5], [1.0, 2.0, 3.0]], np.float32)
DATA = {
    "array_1d": ARRAY_1D,
    "array_2d": ARRAY_2D,
    "tree": (ARRAY_1D, ARRAY_1D),
    "dict": {"w": ARRAY_2D, "b": np.float32(0.5)},
}


def flat(tree):
  return np.concatenate([np.ravel(np.asarray(leaf, np.float64)) for leaf in jax.tree.leaves(tree)])


NORMS = {
    "l1_ball": lambda t: np.abs(flat(t)).sum(),
    "l2_ball": lambda t: np.linalg.norm(flat(t)),
    "linf_ball": lambda t: np.abs(flat(t)).max(),
}
SPHERES = {"l1_ball": projections.l1_sphere}


def assert_trees_close(got, expected, **tolerances):
  assert jax.tree.structure(got) == jax.tree.structure(expected)
  for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
    assert np.shape(g) == np.shape(e)
    np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(e, np.float64), **tolerances)


def jacrev(fn, argnums=0):
  # Jitted: one compilation of the whole Jacobian instead of op-by-op dispatch.
  return jax.jit(jax.jacrev(fn, argnums=argnums))


def jacfwd(fn, argnums=0):
  return jax.jit(jax.jacfwd(fn, argnums=argnums))


def random_vector(n=50, seed=0, scale=1.0):
  return (scale * np.random.RandomState(seed).randn(n)).astype(np.float32)


def simplex_jacobian(p):
  support = (np.asarray(p) > 0).astype(np.float64)
  return np.diag(support) - np.outer(support, support) / support.sum()


# Balls: inside, on the boundary, outside (optax's test_projection_ball, jaxopt's
# _check_projection_ball), on arrays and pytrees.


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("name", list(NORMS))
def test_ball_inside_boundary_outside(name, data):
  fn, norm = getattr(projections, name), NORMS[name]
  x = DATA[data]
  value = norm(x)
  assert_trees_close(fn(x, 2 * value), x, rtol=0, atol=0)
  assert_trees_close(fn(x, value), x, rtol=0, atol=1e-6)
  outside = fn(x, value / 2)
  np.testing.assert_allclose(norm(outside), value / 2, rtol=1e-5)
  expected = getattr(numpy_reference, name)(flat(x), value / 2)
  np.testing.assert_allclose(flat(outside), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NORMS))
def test_ball_jacobians_identity_inside_and_on_the_boundary(name):
  fn, norm = getattr(projections, name), NORMS[name]
  x = random_vector()
  value = np.float32(norm(x))
  for radius in (2 * value, value):
    np.testing.assert_allclose(jacrev(fn)(x, radius), np.eye(x.size), atol=1e-6)
    np.testing.assert_allclose(jacrev(fn, argnums=1)(x, radius), np.zeros(x.size), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPHERES))
def test_ball_jacobian_outside_is_the_spheres(name):
  fn, sphere = getattr(projections, name), SPHERES[name]
  x = random_vector()
  radius = np.float32(NORMS[name](x) / 2)
  for argnums in (0, 1):
    np.testing.assert_allclose(jacrev(fn, argnums=argnums)(x, radius),
                               jacrev(sphere, argnums=argnums)(x, radius), atol=1e-6)


@pytest.mark.slow
def test_l2_ball_jacobian_outside_is_the_analytic_one():
  x = random_vector().astype(np.float64)
  n = np.linalg.norm(x)
  expected = (n / 2) / n * (np.eye(x.size) - np.outer(x, x) / n ** 2)
  np.testing.assert_allclose(jacrev(projections.l2_ball)(jnp.asarray(x, jnp.float32), n / 2),
                             expected, atol=1e-6)


def test_l2_ball_of_a_split_vector_is_the_split_projection():
  x = random_vector()
  r = float(np.linalg.norm(x)) / 3
  first, second = projections.l2_ball((x[:25], x[25:]), r)
  whole = np.asarray(projections.l2_ball(x, r))
  np.testing.assert_allclose(np.concatenate([first, second]), whole, rtol=1e-6)


def test_linf_ball_at_and_below_the_largest_entry():
  x = random_vector()
  top = float(np.abs(x).max())
  np.testing.assert_array_equal(projections.linf_ball(x, top), x)
  np.testing.assert_allclose(np.abs(projections.linf_ball(x, top / 2)).max(), top / 2)


# The ℓ1 sphere.


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("radius", [1.0, 3.21])
def test_l1_sphere_lands_on_the_sphere(data, radius):
  x = DATA[data]
  p = projections.l1_sphere(x, radius)
  assert jax.tree.structure(p) == jax.tree.structure(x)
  np.testing.assert_allclose(np.abs(flat(p)).sum(), radius, rtol=1e-5)
  np.testing.assert_allclose(flat(p), numpy_reference.l1_sphere(flat(x), radius), atol=1e-6)


def test_l1_sphere_of_a_random_vector():
  x = random_vector()
  for radius in (1.0, 3.21):
    p = projections.l1_sphere(x, radius)
    np.testing.assert_allclose(np.abs(np.asarray(p)).sum(), radius, rtol=1e-5)


# The simplex.


@pytest.mark.parametrize("scale", [1.0, 1e9])
@pytest.mark.parametrize("radius", [1.0, 0.8])
def test_simplex_of_random_vectors(scale, radius):
  rng = np.random.RandomState(0)
  for _ in range(10):
    x = (scale * rng.randn(50)).astype(np.float32)
    p = np.asarray(projections.simplex(x, radius))
    np.testing.assert_allclose(p.sum(), radius, rtol=1e-5)
    assert np.all(p >= 0) and np.all(p <= radius)
    np.testing.assert_allclose(p, numpy_reference.simplex(x, radius), atol=1e-6)


@pytest.mark.parametrize("radius", [1.0, 0.8])
def test_simplex_of_a_pytree(radius):
  tree = {"w": jnp.array([2.5, 3.2]), "b": 0.5}
  p = projections.simplex(tree, radius)
  assert jax.tree.structure(p) == jax.tree.structure(tree)
  np.testing.assert_allclose(flat(p).sum(), radius, rtol=1e-6)
  np.testing.assert_allclose(flat(p), numpy_reference.simplex(flat(tree), radius), atol=1e-6)


@pytest.mark.parametrize("radius", [1.0, 0.8])
def test_simplex_with_minus_infinity(radius):
  p = projections.simplex(jnp.array([0.0, 0.0, -jnp.inf]), radius)
  np.testing.assert_allclose(p, [radius / 2, radius / 2, 0.0], rtol=1e-6)


def test_simplex_default_radius_is_one():
  np.testing.assert_allclose(np.asarray(projections.simplex(random_vector())).sum(), 1.0, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1.0, 1e9])
def test_simplex_jacobian(scale):
  rng = np.random.RandomState(0)
  x = (scale * rng.rand(5)).astype(np.float32)
  v = (scale * rng.randn(5)).astype(np.float32)
  expected = simplex_jacobian(projections.simplex(x))
  np.testing.assert_allclose(jacfwd(projections.simplex)(x), expected, atol=1e-6)
  np.testing.assert_allclose(jacrev(projections.simplex)(x), expected, atol=1e-6)
  (vjp,) = jax.vjp(projections.simplex, x)[1](v)
  np.testing.assert_allclose(vjp, v @ expected, rtol=1e-5, atol=1e-6 * scale)
  jvp = jax.jvp(projections.simplex, (x,), (v,))[1]
  np.testing.assert_allclose(jvp, expected @ v, rtol=1e-5, atol=1e-6 * scale)


def test_simplex_jvp_matches_finite_differences():
  rng = np.random.RandomState(0)
  x = rng.rand(5).astype(np.float32)
  v = rng.randn(5).astype(np.float32)
  eps = 1e-3
  jvp = jax.jvp(projections.simplex, (x,), (v,))[1]
  numeric = (projections.simplex(x + eps * v) - projections.simplex(x - eps * v)) / (2 * eps)
  np.testing.assert_allclose(jvp, numeric, atol=1e-3)


@pytest.mark.parametrize("radius", [1.0, 0.8])
def test_simplex_under_vmap(radius):
  xs = np.random.RandomState(0).randn(3, 50).astype(np.float32)
  p = jax.vmap(projections.simplex)(xs, jnp.full(3, radius))
  np.testing.assert_allclose(p.sum(axis=1), [radius] * 3, rtol=1e-5)
  assert np.all(p >= 0) and np.all(p <= radius)


@pytest.mark.slow
def test_gradient_through_vmapped_simplex_matches_finite_differences():
  rng = np.random.RandomState(0)
  xs = rng.rand(4, 5).astype(np.float32)
  u = rng.rand(4, 5)
  u = (u / np.sqrt(np.sum(u ** 2))).astype(np.float32)
  loss = lambda xs: jnp.sum(jax.vmap(projections.simplex)(xs) ** 2)
  eps = 1e-3
  numeric = (loss(xs + eps * u) - loss(xs - eps * u)) / (2 * eps)
  np.testing.assert_allclose(jnp.vdot(jax.grad(loss)(xs), u), numeric, atol=1e-3)


# Pytrees: one vector, the same structure back; group balls refuse them.


def test_l1_ball_of_a_pytree_is_the_projection_of_its_concatenation():
  tree = {"kernel": random_vector(12, 1).reshape(3, 4), "bias": random_vector(4, 2),
          "nested": (random_vector(3, 3),)}
  r = 0.3 * NORMS["l1_ball"](tree)
  got = projections.l1_ball(tree, r)
  assert jax.tree.structure(got) == jax.tree.structure(tree)
  np.testing.assert_allclose(flat(got), numpy_reference.l1_ball(flat(tree), r), atol=1e-6)


def test_weighted_l1_ball_of_a_pytree_takes_weights_of_its_structure():
  tree = (random_vector(6, 1), random_vector(4, 2).reshape(2, 2))
  weights = (np.linspace(0.0, 2.0, 6), np.full((2, 2), 0.5))
  r = 0.2 * float(np.sum(flat(weights) * np.abs(flat(tree))))
  got = projections.weighted_l1_ball(tree, r, weights)
  expected = numpy_reference.weighted_l1_ball(flat(tree), r, flat(weights))
  np.testing.assert_allclose(flat(got), expected, atol=1e-6)
  with pytest.raises(ValueError, match="structure"):
    projections.weighted_l1_ball(tree, r, weights[0])


def test_mixed_dtypes_in_a_pytree_come_back_as_they_went_in():
  tree = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
  got = projections.l1_ball(tree, 1.0)
  assert got["a"].dtype == jnp.bfloat16 and got["b"].dtype == jnp.float32
  np.testing.assert_allclose(flat(got).sum(), 1.0, rtol=1e-2)


@pytest.mark.parametrize("name", ["l21_ball", "l11_ball", "l1inf_ball", "bilevel_l1inf_ball"])
@pytest.mark.parametrize("tree", [(ARRAY_1D, ARRAY_1D), [ARRAY_1D, ARRAY_1D], {"w": ARRAY_2D}])
def test_group_balls_refuse_pytrees_instead_of_stacking(name, tree):
  with pytest.raises(TypeError, match=f"{name} projects one array, got a"):
    getattr(projections, name)(tree, 1.0)


@pytest.mark.parametrize("name", ["l1_ball", "l1_sphere", "simplex", "l2_ball", "linf_ball"])
def test_integer_leaf_in_a_pytree_is_refused(name):
  with pytest.raises(TypeError, match="real floating"):
    getattr(projections, name)({"a": jnp.ones(2), "b": jnp.ones(2, jnp.int32)}, 1.0)


@pytest.mark.parametrize("name", ["l1_sphere", "simplex"])
def test_new_functions_check_radius_and_method(name):
  fn = getattr(projections, name)
  with pytest.raises(ValueError, match="radius must be >= 0"):
    fn(jnp.ones(3), -1.0)
  with pytest.raises(ValueError, match="method must be one of"):
    fn(jnp.ones(3), 1.0, method="bisect")
  np.testing.assert_allclose(fn(jnp.ones(3), 1.0, method="sort"), fn(jnp.ones(3), 1.0), atol=1e-7)


# Regressions: one per defect the peers' cases found.


@pytest.mark.parametrize("name", ["l1_ball", "weighted_l1_ball", "l1inf_ball", "bilevel_l1inf_ball",
                                  "l21_ball", "l11_ball"])
def test_jacobian_inside_the_ball_is_the_identity_at_zero_entries(name):
  x = jnp.array([0.0, 0.5, -0.2])
  fn = getattr(projections, name)
  call = (lambda v: fn(v, 10.0, jnp.ones(3))) if name == "weighted_l1_ball" else (lambda v: fn(v, 10.0))
  np.testing.assert_array_equal(jacfwd(call)(x), np.eye(3))
  np.testing.assert_array_equal(jacrev(call)(x), np.eye(3))


def test_l1inf_derivative_is_one_at_a_zero_entry_below_its_level():
  # One group (a row) clipped at level μ = 1.5: the zero entry is strictly
  # inside [-μ, μ], so moving it moves the output one for one.
  x = jnp.array([[3.0, 0.0, -2.0], [0.1, 0.1, 0.1]])
  p = projections.l1inf_ball(x, 1.5)
  np.testing.assert_allclose(p[0], [1.5, 0.0, -1.5], atol=1e-6)
  jac = jacfwd(lambda v: projections.l1inf_ball(v, 1.5))(x)
  assert float(jac[0, 1, 0, 1]) == 1.0
  numeric = (projections.l1inf_ball(x.at[0, 1].add(1e-3), 1.5)
             - projections.l1inf_ball(x.at[0, 1].add(-1e-3), 1.5)) / 2e-3
  np.testing.assert_allclose(numeric[0, 1], 1.0, atol=1e-3)


def test_weighted_l1_unconstrained_zero_entry_has_derivative_one():
  x = jnp.array([0.0, 2.0, -3.0])
  w = jnp.array([0.0, 1.0, 1.0])
  jac = jacfwd(lambda v: projections.weighted_l1_ball(v, 1.0, w))(x)
  assert float(jac[0, 0]) == 1.0


def test_float32_far_outside_the_ball_lands_on_the_sphere():
  x = jnp.asarray(1e9 * np.random.RandomState(0).uniform(size=5), jnp.float32)
  vertex = np.zeros(5)
  vertex[np.argmax(np.asarray(x))] = 1.0
  for method in ("newton", "sort"):
    np.testing.assert_array_equal(projections.l1_ball(x, 1.0, method=method), vertex)
    np.testing.assert_array_equal(projections.l1_ball(-x, 1.0, method=method), -vertex)
  np.testing.assert_array_equal(projections.simplex(x), vertex)
  np.testing.assert_array_equal(projections.l1_sphere(x, 1.0), vertex)


@pytest.mark.parametrize("method", ["newton", "sort"])
def test_jacobian_on_the_boundary_is_the_identity(method):
  x = random_vector()
  radius = jnp.sum(jnp.abs(jnp.asarray(x)))
  call = lambda v: projections.l1_ball(v, radius, method=method)
  np.testing.assert_array_equal(call(x), x)
  np.testing.assert_array_equal(jacrev(call)(x), np.eye(x.size))


def test_a_tuple_is_one_vector_not_a_stacked_array():
  a, b = jnp.array([3.0, 0.0]), jnp.array([0.0, 1.0])
  got = projections.l1_ball((a, b), 2.0)
  assert isinstance(got, tuple) and got[0].shape == (2,) and got[1].shape == (2,)
  np.testing.assert_allclose(np.concatenate(got), numpy_reference.l1_ball(np.r_[3.0, 0, 0, 1], 2.0))


@pytest.mark.parametrize("name", ["l1_ball", "l1_sphere", "simplex", "l2_ball", "linf_ball",
                                  "l21_ball", "l11_ball", "l1inf_ball", "bilevel_l1inf_ball"])
def test_a_concrete_radius_array_closed_over_inside_jit(name):
  # Inside a trace, NumPy functions on a concrete jax.Array stage JAX ops; the
  # radius check must read the value without them.
  fn = getattr(projections, name)
  x = jnp.asarray(ARRAY_2D)
  radius = jnp.asarray(2.5)
  np.testing.assert_allclose(jax.jit(lambda v: fn(v, radius))(x), fn(x, 2.5), rtol=1e-6)


def test_l2_ball_gradient_at_the_origin_is_the_identity():
  # optax's test_projection_l2_ball_grad_at_zero: inside the ball, also at 0.
  np.testing.assert_array_equal(jax.grad(lambda x: projections.l2_ball(x, 1.0).sum())(jnp.zeros(3)),
                                np.ones(3))
  tree = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
  grads = jax.grad(lambda t: sum(v.sum() for v in jax.tree.leaves(projections.l2_ball(t, 1.0))))(tree)
  for leaf in jax.tree.leaves(grads):
    np.testing.assert_array_equal(leaf, np.ones_like(leaf))


def test_l2_ball_result_is_inside_in_float32():
  p = projections.l2_ball(jnp.array([1.0, 2.0, 3.0]), 0.1)
  assert float(jnp.linalg.norm(p)) <= 0.1
  rng = np.random.default_rng(11)
  for _ in range(200):
    # A few sizes (each compiles once), many values and scales.
    size = rng.choice([2, 3, 17, 640, 2999])
    v = (rng.standard_normal(size) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
    r = np.float32(np.linalg.norm(v.astype(np.float64)) * rng.uniform(0.01, 0.99))
    p = np.asarray(projections.l2_ball(jnp.asarray(v), r), np.float64)
    assert np.linalg.norm(p) <= r
    np.testing.assert_allclose(np.linalg.norm(p), r, rtol=1e-6)


@pytest.mark.parametrize("radius", [1.0, 30.0, 168.0, 1e4])
def test_simplex_above_the_largest_entry_keeps_float32_accuracy(radius):
  # The shift by the largest entry rounds every entry to ulp(r); the mean
  # bound keeps the rounding at the size of the result.
  x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
  got = np.asarray(projections.simplex(jnp.asarray(x), radius), np.float64)
  expected = numpy_reference.simplex(x.astype(np.float64), radius)
  np.testing.assert_allclose(got, expected, rtol=0, atol=4 * np.finfo(np.float32).eps * max(1, radius / 100))
