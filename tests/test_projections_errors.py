"""Bad static input fails at trace time with a message that says what to do."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_optax import projections

from projection_cases import ALL, GROUPED, project, weights_for

X = jnp.ones((4, 3), jnp.float32)
W = weights_for(X)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("radius", [-1.0, -1, np.float32(-0.5), jnp.asarray(-2.0)])
def test_negative_concrete_radius(name, radius):
  with pytest.raises(ValueError, match="must be >= 0"):
    project(name, X, radius, weights=W)


def test_negative_radius_message_is_one_readable_line():
  with pytest.raises(ValueError) as raised:
    projections.l11_ball(X, -1.0)
  assert str(raised.value) == (
      "l11_ball: radius must be >= 0, got -1.0. A radius of 0 projects onto the origin; "
      "a traced negative radius behaves as 0.")


@pytest.mark.parametrize("name", ALL)
def test_negative_radius_raises_inside_jit_too(name):
  with pytest.raises(ValueError, match="must be >= 0"):
    jax.jit(lambda x: project(name, x, -1.0, weights=W))(X)


@pytest.mark.parametrize("name", ALL)
def test_non_scalar_radius(name):
  with pytest.raises(ValueError, match="must be a scalar.*vmap"):
    project(name, X, jnp.ones(3), weights=W)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, jnp.complex64])
def test_integer_bool_and_complex_inputs(name, dtype):
  with pytest.raises(TypeError, match="real floating-point.*astype"):
    project(name, jnp.ones((4, 3), dtype), 1.0, weights=W)


@pytest.mark.parametrize("name", GROUPED)
@pytest.mark.parametrize("axis,message", [
    (2, "out of range"), (-3, "out of range"), ((0, 0), "same axis twice"),
    ((1, -1), "same axis twice"), (1.5, "int or a tuple"), ("rows", "int or a tuple"),
])
def test_bad_axis(name, axis, message):
  with pytest.raises((ValueError, TypeError), match=message):
    project(name, X, 1.0, axis=axis)


def test_weights_of_the_wrong_shape_or_sign():
  with pytest.raises(ValueError, match=r"shape of x, \(4, 3\)"):
    projections.weighted_l1_ball(X, 1.0, jnp.ones((3, 4)))
  with pytest.raises(ValueError, match="weights must be >= 0"):
    projections.weighted_l1_ball(X, 1.0, -jnp.ones((4, 3)))


def test_traced_negative_weights_act_as_zero():
  w = jnp.ones((4, 3)).at[0, 0].set(-1.0)
  got = jax.jit(lambda w: projections.weighted_l1_ball(X * 5, 1.0, w))(w)
  np.testing.assert_allclose(got, projections.weighted_l1_ball(X * 5, 1.0, jnp.maximum(w, 0)))


@pytest.mark.parametrize("name", ["l1_ball", "weighted_l1_ball"])
def test_unknown_method(name):
  with pytest.raises(ValueError, match="method must be one of"):
    project(name, X, 1.0, weights=W, method="bucket")
