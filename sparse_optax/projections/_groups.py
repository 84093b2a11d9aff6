"""Group balls built on the ℓ1 threshold: exact ℓ2,1 and the paper's bilevel ℓ1,1.

``axis`` names the axes reduced inside one group (NumPy's convention); the
remaining axes index the groups. For a Flax ``Dense`` kernel ``(in, out)``,
``axis=-1`` makes each group one input feature.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sparse_optax.projections import validation
from sparse_optax.projections import _threshold
from sparse_optax.projections import warm_start


def validated_group_call(core, x, radius, axis, fn_name, **options):
  """Checks the arguments every group projection shares, then calls ``core``."""
  x = validation.single_array(x, fn_name)
  validation.radius(radius, fn_name)
  axes = validation.group_axes(axis, x.ndim, fn_name)
  if "method" in options:
    validation.method(options["method"], fn_name)
  if x.size == 0:
    return x
  return core(x, radius, axis=axes, **options)


def group_norms(v, axis, ord):
  """ℓ1 or ℓ2 norm of every group, keeping the reduced axes (size 1)."""
  if ord == 1:
    return jnp.sum(jnp.abs(v), axis=axis, keepdims=True)
  squares = jnp.sum(v * v, axis=axis, keepdims=True)
  # Double `where`: sqrt's derivative at an all-zero group would be inf * 0.
  # The other branch is `squares` itself, 0 there (and NaN stays NaN).
  nonzero = squares > 0
  return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squares, 1)), squares)


def group_budgets(norms, radius, start=None, method="auto", by_rank=False):
  """ℓ1 projection of the vector of group norms: the radius each group keeps.

  With ``by_rank``, ``radius`` is the number of groups to keep, and the
  threshold is the next largest norm (the radius :func:`keep_radius` gives),
  read off the norms rather than searched, so that no rounding lets one more
  group survive. Returns ``(budgets, theta)``; ``theta == 0`` means the point
  is inside.
  """
  if by_rank:
    theta = _threshold.rank_threshold(norms, radius).reshape((1,) * norms.ndim)
    return jnp.maximum(norms - theta, 0), theta
  r = jnp.maximum(jnp.asarray(radius, norms.dtype), 0)
  theta = _threshold.l1_threshold(norms, r, tuple(range(norms.ndim)), method, start)
  return jnp.maximum(norms - theta, 0), theta


def _l21_ball_from(x, radius, start, axis, method="auto", by_rank=False):
  v = x.astype(validation.compute_dtype(x.dtype))
  norms = group_norms(v, axis, ord=2)
  budgets, theta = group_budgets(norms, radius, start, method, by_rank)
  scale = budgets / jnp.where(norms > 0, norms, 1)
  projected = validation.poison_non_finite(jnp.where(theta > 0, v * scale, v), jnp.sum(norms),
                                           0 if by_rank else radius)
  return projected.astype(x.dtype), theta


def outer_cold(x, axis, method="auto", by_rank=False):
  """Cold search state (NaN) of a threshold over all groups: one value per array."""
  del method, by_rank  # every search starts from the same cold state
  return jnp.full((1,) * x.ndim, jnp.nan, validation.compute_dtype(x.dtype))


L21_BALL, _l21_ball = warm_start.ball(_l21_ball_from, outer_cold, ("axis", "method", "by_rank"))


def l21_ball(x, radius, *, axis=-1, method: str = "auto") -> jax.Array:
  r"""Euclidean projection onto the ℓ2,1 (group-lasso) ball.

  .. math::

    \underset{p}{\operatorname{argmin}} \ \tfrac12 \|p - x\|_2^2
    \quad \text{subject to} \quad \sum_g \|p_g\|_2 \le r

  Exact: the vector of group norms is projected onto the ℓ1 ball,
  :math:`t = \operatorname{proj}_{\ell_1}((\|x_g\|_2)_g, r)`, and each group is
  rescaled, :math:`p_g = x_g \, t_g / \|x_g\|_2`. Groups with :math:`t_g = 0`
  vanish whole.

  Args:
    x: real floating array.
    radius: scalar :math:`r \ge 0` (a traced negative radius acts as 0).
    axis: int or tuple of ints, the axes reduced inside one group.
    method: the search for the ℓ1 threshold of the group norms, as in
      :func:`~sparse_optax.projections.l1_ball`.

  Returns:
    The projection, with ``x``'s shape and dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import l21_ball
    >>> l21_ball(jnp.array([[3.0, 4.0], [0.6, 0.8]]), 2.5)
    Array([[1.5, 2. ],
           [0. , 0. ]], dtype=float32)

  References:
    Barlaud, Belhajali, Combettes & Fillatre, "Classification and regression
    using an outer approximation projection-gradient method", IEEE TSP 2017
    (Algorithm 2 of Barlaud & Guyard, ICPR 2020).
  """
  return validated_group_call(_l21_ball, x, radius, axis, "l21_ball", method=method)


def _l11_ball_from(x, radius, starts, axis, method="auto", by_rank=False):
  outer_start, inner_start = (None, None) if starts is None else starts
  v = x.astype(validation.compute_dtype(x.dtype))
  a = jnp.abs(v)
  norms = group_norms(v, axis, ord=1)
  budgets, theta = group_budgets(norms, radius, outer_start, method, by_rank)
  inner = _threshold.l1_threshold(a, budgets, axis, method, inner_start)
  # Inside the ball the outer threshold is exactly 0; returning v then avoids
  # trusting two differently rounded sums of the same group to agree.
  projected = jnp.where(theta > 0, _threshold.soft_threshold(v, inner), v)
  projected = validation.poison_non_finite(projected, jnp.sum(norms), 0 if by_rank else radius)
  return projected.astype(x.dtype), (theta, inner)


def _l11_cold(x, axis, method="auto", by_rank=False):
  """Cold search states: the outer threshold's and one inner threshold per group."""
  return (outer_cold(x, axis, method, by_rank),
          jnp.full(warm_start.kept_shape(x.shape, axis), jnp.nan,
                   validation.compute_dtype(x.dtype)))


L11_BALL, _l11_ball = warm_start.ball(_l11_ball_from, _l11_cold, ("axis", "method", "by_rank"))


def l11_ball(x, radius, *, axis=-1, method: str = "auto") -> jax.Array:
  r"""The bilevel ℓ1,1 projection of Barlaud & Guyard (Algorithm 3, "PGL11").

  .. math::

    t = \operatorname{proj}_{\ell_1}\big((\|x_g\|_1)_g,\ r\big), \qquad
    p_g = \operatorname{proj}_{\ell_1}(x_g,\ t_g)

  Each group keeps the ℓ1 budget :math:`t_g` that the projection of the group
  norms grants it, then is projected onto its own ℓ1 ball. The result is
  feasible (:math:`\sum_g \|p_g\|_1 \le r`) and zeroes whole groups, which
  is what removes neurons. It is *not* the Euclidean projection onto
  :math:`\{\|p\|_{1,1} \le r\}`: that one is :func:`l1_ball` of ``vec x``,
  which scatters its zeros.

  Args:
    x: real floating array.
    radius: scalar :math:`r \ge 0` (a traced negative radius acts as 0).
    axis: int or tuple of ints, the axes reduced inside one group. For a Flax
      ``Dense`` kernel ``(in, out)`` the default ``-1`` groups by input feature,
      the paper's choice.
    method: the search for the ℓ1 thresholds (of the group norms, then inside
      each group), as in :func:`~sparse_optax.projections.l1_ball`.

  Returns:
    The bilevel projection, with ``x``'s shape and dtype; ``x`` itself when
    :math:`\sum_g \|x_g\|_1 \le r`.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import l11_ball
    >>> l11_ball(jnp.array([[3.0, 1.0], [0.5, 0.5]]), 2.0)
    Array([[2., 0.],
           [0., 0.]], dtype=float32)

  References:
    Barlaud & Guyard, "Learning sparse deep neural networks using efficient
    structured projections on convex constraints for green AI", ICPR 2020.
  """
  return validated_group_call(_l11_ball, x, radius, axis, "l11_ball", method=method)
