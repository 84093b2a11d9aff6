"""The radius under which a given number of groups survive a ball."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sparse_optax.projections import _groups
from sparse_optax.projections import _threshold
from sparse_optax.projections import validation

# Per ball, what its outer ℓ1 projection is taken of: each group's ℓ2 or ℓ1
# norm or its largest magnitude; the ℓ1 ball ranks single entries.
RANKED = {"l1_ball": None, "l21_ball": 2, "l11_ball": 1, "bilevel_l1inf_ball": np.inf}


def group_count(shape, axis) -> int:
  """The number of groups of an array of ``shape`` (``axis`` reduced inside one)."""
  return int(np.prod([n for ax, n in enumerate(shape) if ax not in axis], dtype=int))


def kept_count(keep, groups: int):
  """``round(keep × groups)``, as an int32 that may be traced."""
  return jnp.round(jnp.asarray(keep, jnp.float32) * groups).astype(jnp.int32)


def ranked_values(v, ball, axis):
  """The quantities whose ℓ1 projection decides which groups of ``ball`` survive."""
  if RANKED[ball] is None:
    return jnp.abs(v).reshape(-1)
  if RANKED[ball] == np.inf:
    return jnp.max(jnp.abs(v), axis=axis)
  return _groups.group_norms(v, axis, ord=RANKED[ball]).reshape(-1)


def keep_radius(x, keep, *, ball: str, axis=-1) -> jax.Array:
  r"""The radius at which exactly ``round(keep × groups)`` groups of ``x`` survive ``ball``.

  With the groups' norms sorted, :math:`n_{(1)} \ge n_{(2)} \ge \dots` (ℓ2 norms
  for ``l21_ball``, ℓ1 norms for ``l11_ball``, maxima for
  ``bilevel_l1inf_ball``, the magnitudes of single entries for ``l1_ball``),
  the ℓ1 projection of the norms at

  .. math::

    \eta^\ast = \sum_{g \le k} \left(n_{(g)} - n_{(k+1)}\right)

  has the threshold :math:`n_{(k+1)}`: the k largest groups keep a positive
  budget and every other group gets 0 (with ties at :math:`n_{(k+1)}`, fewer
  survive). :math:`n_{(k+1)}` is found by counting passes (a bisection on the
  bits of the threshold), not by sorting. ``keep=1`` gives the norm itself
  (nothing moves), ``keep=0`` gives 0.

  The ``keep=`` of :func:`sparse_optax.project_l21` and its siblings uses this
  radius at every step, with the threshold read off the norms directly.

  Args:
    x: real floating array.
    keep: the fraction of groups (entries, for ``l1_ball``) to keep, in [0, 1].
    ball: ``"l1_ball"``, ``"l21_ball"``, ``"l11_ball"`` or ``"bilevel_l1inf_ball"``.
    axis: the axes reduced inside one group, as for the balls.

  Returns:
    :math:`\eta^\ast`, a scalar of ``x``'s compute dtype. Not differentiable.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import keep_radius, l21_ball
    >>> x = jnp.array([[3.0, 4.0], [0.6, 0.8], [1.2, 1.6]])
    >>> eta = keep_radius(x, 1 / 3, ball="l21_ball")  # norms 5, 1, 2: keep 1 group
    >>> eta
    Array(3., dtype=float32)
    >>> l21_ball(x, eta).any(axis=1)  # the group of norm 5 alone survives
    Array([ True, False, False], dtype=bool)
  """
  if ball not in RANKED:
    raise ValueError(f"keep_radius: ball must be one of {tuple(RANKED)}, got {ball!r}.")
  x = validation.single_array(x, "keep_radius")
  axes = validation.group_axes(axis, x.ndim, "keep_radius")
  validation.fraction(keep, "keep_radius")
  v = x.astype(validation.compute_dtype(x.dtype))
  values = ranked_values(v, ball, axes)
  theta = _threshold.rank_threshold(values, kept_count(keep, values.size))
  return jnp.sum(jnp.maximum(values - theta, 0))
