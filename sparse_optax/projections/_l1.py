"""Euclidean projections onto the ℓ1 ball and the weighted ℓ1 ball."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sparse_optax.projections import validation
from sparse_optax.projections import _threshold
from sparse_optax.projections import warm_start


def _l1_ball_from(x, radius, start, method):
  dtype = validation.compute_dtype(x.dtype)
  flat = x.reshape(-1).astype(dtype)
  r = jnp.maximum(jnp.asarray(radius, dtype), 0)
  theta = _threshold.l1_threshold(jnp.abs(flat), r, (0,), method, start)
  return _threshold.soft_threshold(flat, theta).reshape(x.shape).astype(x.dtype), theta


@functools.partial(jax.jit, static_argnames="method")
def _l1_ball(x, radius, method):
  return _l1_ball_from(x, radius, None, method)[0]


L1_BALL = warm_start.WarmStart(
    cold=lambda x, method="newton": jnp.full((1,), jnp.nan, validation.compute_dtype(x.dtype)),
    project=jax.jit(lambda x, radius, start, method="newton": _l1_ball_from(x, radius, start, method),
                    static_argnames="method"))


def l1_ball(x, radius, *, method: str = "newton") -> jax.Array:
  r"""Euclidean projection of ``x`` onto the ℓ1 ball of the given radius.

  .. math::

    \underset{p}{\operatorname{argmin}} \ \tfrac12 \|p - x\|_2^2
    \quad \text{subject to} \quad \|\operatorname{vec} p\|_1 \le r

  The solution is a soft threshold, :math:`p = \operatorname{sign}(x)
  (|x| - \theta)_+`, with :math:`\theta \ge 0` the root of
  :math:`\sum_i (|x_i| - \theta)_+ = r` (0 when ``x`` is inside the ball).

  The whole array is one vector; use :func:`l11_ball` or :func:`l21_ball` for
  one constraint per group. The function is jit-, vmap- and grad-compatible;
  its derivative is the derivative of the projection wherever it exists.

  Args:
    x: real floating array of any shape.
    radius: scalar radius :math:`r \ge 0`. A Python number below 0 raises; a
      traced radius below 0 behaves as 0.
    method: ``"newton"`` (default, Michelot's fixed point safeguarded by
      bisection: a few streaming passes, the fastest measured on CPU) or
      ``"sort"`` (sort-and-threshold, Duchi et al. 2008, O(n log n)).

  Returns:
    The projection, with ``x``'s shape and dtype. ``x`` itself when it is
    already inside the ball, zeros when ``radius`` is 0.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import l1_ball
    >>> l1_ball(jnp.array([3.0, -2.0, 0.5]), 3.0)
    Array([ 2., -1.,  0.], dtype=float32)

  References:
    Duchi, Shalev-Shwartz, Singer & Chandra, "Efficient projections onto the
    ℓ1-ball for learning in high dimensions", ICML 2008. Condat, "Fast
    projection onto the simplex and the ℓ1 ball", Math. Program. 2016.
  """
  x = validation.float_array(x, "l1_ball")
  validation.radius(radius, "l1_ball")
  validation.method(method, "l1_ball")
  if x.size == 0:
    return x
  return _l1_ball(x, radius, method)


def _weighted_l1_ball_from(x, radius, weights, start, method):
  dtype = validation.compute_dtype(x.dtype)
  flat = x.reshape(-1).astype(dtype)
  w = jnp.maximum(weights.reshape(-1).astype(dtype), 0)
  r = jnp.maximum(jnp.asarray(radius, dtype), 0)
  theta = _threshold.weighted_l1_threshold(jnp.abs(flat), w, r, (0,), method, start)
  return _threshold.soft_threshold(flat, theta, w).reshape(x.shape).astype(x.dtype), theta


@functools.partial(jax.jit, static_argnames="method")
def _weighted_l1_ball(x, radius, weights, method):
  return _weighted_l1_ball_from(x, radius, weights, None, method)[0]


WEIGHTED_L1_BALL = warm_start.WarmStart(
    cold=lambda x, weights, method="newton": jnp.full((1,), jnp.nan, validation.compute_dtype(x.dtype)),
    project=jax.jit(
        lambda x, radius, start, weights, method="newton":
        _weighted_l1_ball_from(x, radius, jnp.asarray(weights), start, method),
        static_argnames="method"))


def weighted_l1_ball(x, radius, weights, *, method: str = "newton") -> jax.Array:
  r"""Euclidean projection of ``x`` onto the weighted ℓ1 ball.

  .. math::

    \underset{p}{\operatorname{argmin}} \ \tfrac12 \|p - x\|_2^2
    \quad \text{subject to} \quad \sum_i w_i |p_i| \le r

  The solution is :math:`p_i = \operatorname{sign}(x_i)(|x_i| - \theta w_i)_+`
  with :math:`\theta` the root of :math:`\sum_i w_i(|x_i| - \theta w_i)_+ = r`.
  An entry with weight 0 is not constrained and passes through unchanged.

  Args:
    x: real floating array of any shape.
    radius: scalar radius :math:`r \ge 0` (a traced negative radius acts as 0).
    weights: non-negative array of ``x``'s shape. Concrete weights with a
      negative entry raise; traced negative weights act as 0.
    method: ``"newton"`` (default) or ``"sort"``, as in :func:`l1_ball`.

  Returns:
    The projection, with ``x``'s shape and dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import weighted_l1_ball
    >>> weighted_l1_ball(jnp.array([3.0, 3.0]), 2.0, jnp.array([1.0, 0.0]))
    Array([2., 3.], dtype=float32)

  References:
    Duchi et al., ICML 2008: the same derivation, with the breakpoints
    :math:`|x_i| / w_i` in place of :math:`|x_i|`.
  """
  x = validation.float_array(x, "weighted_l1_ball")
  validation.radius(radius, "weighted_l1_ball")
  validation.method(method, "weighted_l1_ball")
  weights = validation.weights(weights, x.shape, "weighted_l1_ball")
  if x.size == 0:
    return x
  return _weighted_l1_ball(x, radius, weights, method)
