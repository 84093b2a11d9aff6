"""ℓ1/ℓ2 (Berthelier et al. 2020): a scale-invariant group penalty added to the loss."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sparse_optax import selection
from sparse_optax.projections import validation
from sparse_optax.projections import group_norms


def l1_over_l2_penalty(x, *, axis=-1) -> jax.Array:
  r"""The ℓ1/ℓ2 pseudo-norm summed over groups (Berthelier et al. 2020).

  .. math::

    R(x) = \sum_g \frac{\|x_g\|_1}{\|x_g\|_2}, \qquad 0/0 := 0

  Each ratio lies in :math:`[1, \sqrt{|g|}]` for a non-zero group, is 1 for a
  one-sparse group and does not change with the group's scale: it makes the
  entries of a group sparse, not the group small. ``axis=None`` makes the
  whole array one group. A zero group contributes 0 with a zero (finite)
  gradient.

  Args:
    x: real floating array.
    axis: int, tuple of ints or None: the axes reduced inside one group.

  Returns:
    A scalar of ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> regularizers.l1_over_l2_penalty(jnp.array([[3.0, 4.0], [0.0, 2.0], [0.0, 0.0]]))
    Array(2.4, dtype=float32)

  References:
    Berthelier, Yan, Chateau, Blanc, Duffner & Garcia, "Learning sparse
    filters in deep convolutional neural networks with a l1/l2 pseudo-norm",
    ICPR Workshops 2020.
  """
  x = validation.float_array(x, "l1_over_l2_penalty")
  return _l1_over_l2(x, validation.array_axes(x, axis, "l1_over_l2_penalty"))


@functools.partial(jax.jit, static_argnames="axis")
def _l1_over_l2(x, axis):
  v = x.astype(validation.compute_dtype(x.dtype))
  l1 = group_norms(v, axis, ord=1)
  l2 = group_norms(v, axis, ord=2)  # already safe at zero groups
  nonzero = l2 > 0
  ratio = jnp.where(nonzero, l1 / jnp.where(nonzero, l2, 1), 0)
  return jnp.sum(ratio).astype(x.dtype)


def tree_l1_over_l2_penalty(params, *, selected=True, groups: str = "out", axis=None):
  r""":func:`l1_over_l2_penalty` summed over the selected leaves.

  Args:
    params: a pytree of arrays.
    selected: ``True`` (every leaf with ``ndim >= 2``), a pytree with the
      parameters' structure of booleans/``None``, or a callable
      ``(path, leaf) -> bool | None``.
    groups: ``"out"`` (default: one group per output neuron or filter, the
      paper's filters) or ``"in"`` (one group per input feature).
    axis: the axes reduced inside one group, for every selected leaf;
      overrides ``groups``.

  Returns:
    A scalar, to be added to the loss times the regularisation weight.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> params = {"kernel": jnp.array([[3.0, 0.0], [4.0, 2.0]]), "bias": jnp.ones(2)}
    >>> regularizers.tree_l1_over_l2_penalty(params)
    Array(2.4, dtype=float32)
  """
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  flags = selection.per_leaf(selected, params, name="tree_l1_over_l2_penalty", what="selected")
  total = jnp.zeros([], jnp.result_type(*[leaf for _, leaf in flat], jnp.float32)
                    if flat else jnp.float32)
  for (path, leaf), flag in zip(flat, flags):
    if not flag or np.size(leaf) == 0:
      continue
    axes = selection.leaf_axes(leaf, groups, axis, path, "tree_l1_over_l2_penalty")
    total = total + l1_over_l2_penalty(leaf, axis=axes)
  return total
