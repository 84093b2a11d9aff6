"""Derivatives of the projections: finite differences, the analytic Jacobian."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_optax import projections

from projection_cases import ALL, METHODS, norm, project, weights_for

CASES = [((8, 5), -1), ((4, 3, 5), (0, 2))]


def central_difference(f, x, v, eps=1e-6):
  return (np.asarray(f(x + eps * v)) - np.asarray(f(x - eps * v))) / (2 * eps)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_jvp_matches_finite_differences(name, x64):
  rng = np.random.default_rng(0)
  for shape, axis in CASES:
    x = rng.standard_normal(shape)
    w = weights_for(x)
    v = rng.standard_normal(shape)
    for fraction in (0.1, 0.5):
      r = fraction * norm(name, x, axis=axis, weights=w)
      methods = METHODS if name in ("l1_ball", "weighted_l1_ball") else (None,)
      for method in methods:
        f = lambda x: project(name, x, r, axis=axis, weights=w, method=method)
        _, tangent = jax.jvp(f, (jnp.asarray(x),), (jnp.asarray(v),))
        np.testing.assert_allclose(tangent, central_difference(f, x, v), atol=1e-6,
                                   err_msg=f"{name} {method} {shape} r={fraction}")
        # Reverse mode goes through the transpose of the same linear rule.
        vjp = jax.grad(lambda x: jnp.vdot(f(x), jnp.asarray(v)))(jnp.asarray(x))
        np.testing.assert_allclose(np.vdot(vjp, v), np.vdot(tangent, v), rtol=1e-9)


@pytest.mark.parametrize("name", ALL)
def test_derivative_in_the_radius_matches_finite_differences(name, x64):
  rng = np.random.default_rng(1)
  x = rng.standard_normal((8, 5))
  w = weights_for(x)
  c = rng.standard_normal(x.shape)
  loss = lambda r: jnp.vdot(project(name, jnp.asarray(x), r, weights=w), c)
  r = 0.3 * norm(name, x, weights=w)
  fd = (loss(r + 1e-6) - loss(r - 1e-6)) / 2e-6
  np.testing.assert_allclose(jax.grad(loss)(r), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_l1_jacobian_is_the_analytic_one(method, x64):
  # On the active set A: J = I − s sᵀ / |A| (s the signs); zero elsewhere.
  x = np.random.default_rng(2).standard_normal(12)
  p = projections.l1_ball(x, 2.0, method=method)
  active = np.asarray(p) != 0
  s = np.sign(x) * active
  expected = np.diag(active.astype(float)) - np.outer(s, s) / active.sum()
  jac = jax.jacfwd(lambda x: projections.l1_ball(x, 2.0, method=method))(x)
  np.testing.assert_allclose(jac, expected, atol=1e-12)
  np.testing.assert_allclose(jax.jacrev(lambda x: projections.l1_ball(x, 2.0, method=method))(x),
                             expected, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_jacobian_is_identity_inside_and_zero_at_radius_zero(name, x64):
  x = np.random.default_rng(3).standard_normal((3, 4))
  w = weights_for(x)
  inside = 2.0 * norm(name, x, weights=w)
  jac_inside = jax.jacfwd(lambda x: project(name, x, inside, weights=w))(x)
  np.testing.assert_array_equal(jac_inside.reshape(12, 12), np.eye(12))
  jac_zero = jax.jacfwd(lambda x: project(name, x, 0.0, weights=w))(x).reshape(12, 12)
  free = (w == 0).ravel() if name == "weighted_l1_ball" else np.zeros(12, bool)
  np.testing.assert_array_equal(jac_zero, np.diag(free.astype(float)))


@pytest.mark.parametrize("name", ALL)
def test_grad_under_vmap_and_jit(name):
  xs = jnp.asarray(np.random.default_rng(4).standard_normal((3, 6, 4)), jnp.float32)
  w = weights_for(xs[0])
  radii = jnp.asarray([0.5, 1.0, 4.0], jnp.float32)
  loss = lambda x, r: jnp.sum(project(name, x, r, weights=w) ** 2)
  batched = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1))))(xs, radii)
  for i in range(3):
    one = jax.grad(loss, argnums=(0, 1))(xs[i], radii[i])
    # Where the loss is flat (‖l2_ball(x)‖ = r outside), both are float32
    # rounding noise of a few 1e-6.
    np.testing.assert_allclose(batched[0][i], one[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batched[1][i], one[1], rtol=1e-5, atol=1e-6)
