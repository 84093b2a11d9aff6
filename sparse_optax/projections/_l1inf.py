r"""The ℓ1,∞ ball: the exact Euclidean projection and the bilevel one.

Both clip every group at a level, :math:`p_{gi} = \operatorname{sign}(x_{gi})
\min(|x_{gi}|, \mu_g)`; they differ in how the levels :math:`\mu_g` are chosen.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from sparse_optax.projections import validation
from sparse_optax.projections import _groups
from sparse_optax.projections import _threshold
from sparse_optax.projections import warm_start

# Bound on the joint Newton iterations of the exact projection. On every
# input tried it converged in far fewer; past the bound the levels still sum to
# the radius, so the result stays feasible.
L1INF_STEPS = 64


def _clip(v, levels):
  """``sign(v) min(|v|, levels)``, with the derivative 1 below a positive level.

  `where`, not `minimum`: at a tie the derivative follows the level (the entry
  is clipped), where `minimum` would split it in halves; and an entry 0 below a
  positive level keeps the derivative 1 that `sign(v) |v|` would lose. Callers
  return ``v`` itself inside the ball.
  """
  return jnp.where(jnp.abs(v) < levels, v, jnp.sign(v) * levels)


def _levels_from_tangents(sums, counts, radius):
  r"""Solves the linearised level equations for one multiplier λ.

  Around the current levels each group's clipped mass is the line
  :math:`\sum_i (a_{gi} - \mu)_+ \approx S_g - k_g \mu`. Setting it to λ for
  every surviving group and :math:`\sum_g \mu_g = r` is the weighted ℓ1
  threshold problem :math:`\sum_g w_g (b_g - \lambda w_g)_+ = r` with
  :math:`w_g = k_g^{-1/2}`, :math:`b_g = S_g k_g^{-1/2}`.
  """
  has_mass = counts > 0
  w = jnp.where(has_mass, lax.rsqrt(jnp.where(has_mass, counts, 1)), 0)
  every_axis = tuple(range(sums.ndim))
  lam = _threshold.weighted_l1_threshold(sums * w, w, radius, every_axis)
  levels = jnp.maximum(sums - lam, 0) / jnp.where(has_mass, counts, 1)
  return lam, levels


def l1inf_levels(a, radius, axis, start=None):
  r"""Clipping levels μ of the exact ℓ1,∞ projection (reduced axes kept).

  Joint Newton on the optimality system (the groups share one multiplier
  :math:`\lambda`): :math:`\sum_i (a_{gi} - \mu_g)_+ = \lambda` where
  :math:`\mu_g > 0`, groups with :math:`\|a_g\|_1 \le \lambda` vanish, and
  :math:`\sum_g \mu_g = r`. Each step linearises every group's clipped mass at
  the current level (one pass) and solves the linear system exactly. Since the
  lines lie under the convex masses, λ never overshoots and rises
  monotonically; once no active set changes, the levels are exact.

  ``start`` (kept shape) are levels to linearise at first, e.g. those of a
  previous nearby problem; ``None`` or ``inf`` start at the levels of the same
  problem on a sample of every group (whole blocks of consecutive entries,
  as for the ℓ1 threshold), or at the group maxima when the groups are short.
  """
  if start is None:
    start = jnp.full((), jnp.inf, a.dtype)
  return _l1inf_levels(a, radius, start, axis)


def _left_tangents(a, levels, axis):
  r"""``(S, k)``: the sum and count of each group's entries at or above its level.

  The clipped mass is :math:`\sum_i (a_i - \mu)_+ \ge S - k \mu` near the
  level, with equality at it: a left tangent, which exists even at the group
  maximum, where the right one is flat. Written with the vectorised sums of
  the threshold search.
  """
  below = jnp.sum(_threshold.exceeds(levels, a), axis=axis, keepdims=True)
  counts = _threshold.group_size(a, axis) - below
  return _threshold.excess(a, None, levels, axis) + counts * levels, counts


def _cold_start(a, radius, axis):
  """The levels of the problem on a sample of every group, or the group maxima."""
  plan = _threshold.sample_plan(a.shape, axis)
  if plan is None:
    return jnp.full((), jnp.inf, a.dtype)
  # The clipped masses of a sample are a fraction of the whole ones, the
  # levels about the same: the radius is not scaled.
  return _l1inf_levels(_threshold.sample_blocks(a, plan), radius,
                       jnp.full((), jnp.inf, a.dtype), axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _l1inf_levels(a, radius, start, axis):
  gmax = jnp.max(a, axis=axis, keepdims=True)
  inside = jnp.sum(gmax) <= radius
  start = lax.cond(jnp.all(jnp.isinf(start)), lambda: jnp.broadcast_to(
      _cold_start(a, radius, axis), gmax.shape), lambda: jnp.broadcast_to(start, gmax.shape))
  # Left tangents (a subgradient of each convex clipped mass) at the start,
  # capped at the group maximum, put the first λ below λ*. Outside the ball
  # λ* > 0, but lines taken far below the group maxima can meet Σ μ = r only
  # at a negative λ; clamped to 0, their levels would sum to less than r and
  # λ would never rise. The line of each group's largest entry alone,
  # (max a − μ)₊ ≤ Σ (a − μ)₊, always has its λ above 0: start there instead.
  first = _levels_from_tangents(*_left_tangents(a, jnp.minimum(start, gmax), axis), radius)
  lam, levels = lax.cond(
      jnp.all(first[0] > 0), lambda: first,
      lambda: _levels_from_tangents(gmax, jnp.ones_like(gmax), radius))

  def more(state):
    it, _, _, moving = state
    return (it < L1INF_STEPS) & moving

  def step(state):
    it, lam, levels, _ = state
    # Left tangents here too: a level can round onto a group's largest
    # entries (when λ / k is below the level's ulp), where the right tangent
    # is flat and would read as a group without mass, sent to 0.
    new_lam, new_levels = _levels_from_tangents(*_left_tangents(a, levels, axis), radius)
    # The step is kept even when λ does not rise: in exact arithmetic that
    # happens once no active set changes, and the new levels are then the old
    # ones; in float32 λ can round an ulp below the last one while the levels
    # still move to the solution (which the last step reached).
    return it + 1, new_lam, new_levels, (new_lam > lam).reshape(())

  moving = ~inside & (radius > 0)
  _, _, levels, _ = lax.while_loop(more, step, (0, lam, levels, moving))
  levels = jnp.where(radius > 0, levels, 0)
  return jnp.where(inside, gmax, levels)


@_l1inf_levels.defjvp
def _l1inf_levels_jvp(axis, primals, tangents):
  a, r, _ = primals
  da, dr, _ = tangents
  levels = _l1inf_levels(*primals, axis)
  # Differentiate S_g − k_g μ_g = λ on the clipped groups and Σ μ_g = r; the
  # start is only where the search began.
  clipped = a > levels
  counts = jnp.sum(clipped, axis=axis, keepdims=True).astype(a.dtype)
  dsums = jnp.sum(jnp.where(clipped, da, 0), axis=axis, keepdims=True)
  inside = jnp.sum(jnp.max(a, axis=axis, keepdims=True)) <= r
  live = (levels > 0) & (counts > 0) & ~inside
  inv_k = jnp.where(live, 1 / jnp.where(live, counts, 1), 0)
  total = jnp.sum(inv_k)
  dlam = (jnp.sum(dsums * inv_k) - dr) / jnp.where(total > 0, total, 1)
  dlevels = jnp.where(live, (dsums - dlam) * inv_k, 0)
  return levels, dlevels


def _l1inf_ball_from(x, radius, start, axis):
  v = x.astype(validation.compute_dtype(x.dtype))
  r = jnp.maximum(jnp.asarray(radius, v.dtype), 0)
  a = jnp.abs(v)
  levels = l1inf_levels(a, r, axis, start)
  total = jnp.sum(jnp.max(a, axis=axis, keepdims=True))
  projected = validation.poison_non_finite(jnp.where(total <= r, v, _clip(v, levels)), total, r)
  return projected.astype(x.dtype), levels


def _l1inf_cold(x, axis):
  """Cold search state: every group's level at +inf."""
  return jnp.full(warm_start.kept_shape(x.shape, axis), jnp.inf, validation.compute_dtype(x.dtype))


L1INF_BALL, _l1inf_ball = warm_start.ball(_l1inf_ball_from, _l1inf_cold, ("axis",))


def l1inf_ball(x, radius, *, axis=-1) -> jax.Array:
  r"""Euclidean projection onto the ℓ1,∞ ball.

  .. math::

    \underset{p}{\operatorname{argmin}} \ \tfrac12 \|p - x\|_2^2
    \quad \text{subject to} \quad \sum_g \max_i |p_{gi}| \le r

  The solution clips each group, :math:`p_{gi} = \operatorname{sign}(x_{gi})
  \min(|x_{gi}|, \mu_g)`, where the levels share one multiplier
  :math:`\theta`: :math:`\sum_i (|x_{gi}| - \mu_g)_+ = \theta` for every group
  with :math:`\mu_g > 0`, groups with :math:`\|x_g\|_1 \le \theta` vanish, and
  :math:`\sum_g \mu_g = r`. Found by a joint Newton iteration (one streaming
  pass per step, each step solving the linearised system exactly), at most
  ``L1INF_STEPS`` steps.

  Args:
    x: real floating array.
    radius: scalar :math:`r \ge 0` (a traced negative radius acts as 0).
    axis: int or tuple of ints, the axes reduced inside one group.

  Returns:
    The projection, with ``x``'s shape and dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import l1inf_ball
    >>> l1inf_ball(jnp.array([[4.0, 4.0], [3.0, 0.0]]), 4.0)
    Array([[3., 3.],
           [1., 0.]], dtype=float32)

  References:
    Quattoni, Carreras, Collins & Darrell, "An efficient projection for
    ℓ1,∞ regularization", ICML 2009. Chu, Liu, Mahdavi & Wright, "Semismooth
    Newton algorithm for efficient projections onto ℓ1,∞-norm ball", ICML 2020.
  """
  return _groups.validated_group_call(_l1inf_ball, x, radius, axis, "l1inf_ball")


def _bilevel_l1inf_ball_from(x, radius, start, axis, method="auto", by_rank=False):
  v = x.astype(validation.compute_dtype(x.dtype))
  gmax = jnp.max(jnp.abs(v), axis=axis, keepdims=True)
  budgets, theta = _groups.group_budgets(gmax, radius, start, method, by_rank)
  projected = validation.poison_non_finite(jnp.where(theta > 0, _clip(v, budgets), v),
                                           jnp.sum(gmax), 0 if by_rank else radius)
  return projected.astype(x.dtype), theta


BILEVEL_L1INF_BALL, _bilevel_l1inf_ball = warm_start.ball(
    _bilevel_l1inf_ball_from, _groups.outer_cold, ("axis", "method", "by_rank"))


def bilevel_l1inf_ball(x, radius, *, axis=-1, method: str = "auto") -> jax.Array:
  r"""The bilevel ℓ1,∞ projection (Barlaud, Perez & Marmorat).

  .. math::

    u = \operatorname{proj}_{\ell_1}\big((\max_i |x_{gi}|)_g,\ r\big), \qquad
    p_{gi} = \operatorname{sign}(x_{gi}) \min(|x_{gi}|, u_g)

  Feasible for the ℓ1,∞ ball and linear time (two streaming passes), but not
  the Euclidean projection; like :func:`l11_ball` it zeroes whole groups.

  Args:
    x: real floating array.
    radius: scalar :math:`r \ge 0` (a traced negative radius acts as 0).
    axis: int or tuple of ints, the axes reduced inside one group.
    method: the search for the ℓ1 threshold of the group maxima, as in
      :func:`~sparse_optax.projections.l1_ball`.

  Returns:
    The bilevel projection, with ``x``'s shape and dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import bilevel_l1inf_ball
    >>> bilevel_l1inf_ball(jnp.array([[4.0, 4.0], [3.0, 0.0]]), 4.0)
    Array([[2.5, 2.5],
           [1.5, 0. ]], dtype=float32)

  References:
    Barlaud, Perez & Marmorat, "A new linear time bi-level ℓ1,∞ projection;
    application to the sparsification of auto-encoders neural networks",
    arXiv:2407.16293, 2024.
  """
  return _groups.validated_group_call(
      _bilevel_l1inf_ball, x, radius, axis, "bilevel_l1inf_ball", method=method)
