"""Magnitude pruning (Frankle & Carbin 2019), beside the lottery ticket.

Remove a fraction of the smallest surviving weights per round, rewind,
retrain; with :mod:`sparse_optax.lottery`::

    params, mask = init, None
    for _ in range(rounds):
      tx = adam if mask is None else lottery.retrain_optimizer(adam, mask)
      mask = pruning.magnitude_mask(train(params, tx), 0.2, mask)
      params = lottery.rewind(init, mask)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sparse_optax import lottery
from sparse_optax import selection
from sparse_optax.projections import validation


def _selected_leaves(params, selected, mask, fn_name):
  flags = selection.per_leaf(selected, params, name=fn_name, what="selected")
  leaves, treedef = jax.tree_util.tree_flatten(params)
  masks = (selection.per_leaf(mask, params, name=fn_name, what="mask",
                               default=lambda leaf: True)
           if mask is not None else [None] * len(leaves))
  alive = []
  for leaf, flag, m in zip(leaves, flags, masks):
    if not flag:
      alive.append(None)
      continue
    if m is None or isinstance(m, bool):
      alive.append(jnp.ones(np.shape(leaf), bool))
    else:
      if np.shape(m) != np.shape(leaf):
        raise ValueError(
            f"{fn_name}: a mask leaf has shape {np.shape(m)}, its parameter {np.shape(leaf)}.")
      alive.append(jnp.asarray(m, bool))
  return leaves, treedef, alive


def magnitude_mask(params, fraction, mask=None, *, selected=True):
  r"""One round of global magnitude pruning: the mask after it.

  Among the entries of the selected leaves still True in ``mask``, the
  :math:`\operatorname{round}(f \cdot n_{\text{alive}})` (half up) of smallest
  :math:`|w|` are removed, globally over all selected leaves (Frankle & Carbin
  2019 prune :math:`f = 0.2` per round, then rewind with
  :func:`sparse_optax.lottery.rewind`). Entries of equal magnitude are removed
  in the order of the flattened pytree (leaf order, then row-major index).
  Works under ``jit`` (``fraction`` may be traced).

  Args:
    params: a pytree of arrays, the trained weights.
    fraction: :math:`f \in [0, 1]`, the share of surviving entries to remove.
    mask: the previous round's mask (boolean arrays, ``None`` = all alive) or
      ``None`` for the first round. Entries already False stay False.
    selected: ``True`` (every leaf with ``ndim >= 2``), a pytree of
      booleans/``None`` or a callable ``(path, leaf) -> bool | None``.

  Returns:
    A pytree with the parameters' structure: boolean arrays (True = kept) for
    the selected leaves, ``None`` for the others, as
    :func:`sparse_optax.lottery.survivors`.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import pruning
    >>> params = {"w": jnp.array([[0.1, -3.0], [2.0, 0.2]]), "b": jnp.zeros(2)}
    >>> pruning.magnitude_mask(params, 0.5)["w"]
    Array([[False,  True],
           [ True, False]], dtype=bool)
  """
  validation.fraction(fraction, "magnitude_mask")
  leaves, treedef, alive = _selected_leaves(params, selected, mask, "magnitude_mask")
  chosen = [i for i, a in enumerate(alive) if a is not None]
  if not chosen:
    return jax.tree_util.tree_unflatten(treedef, alive)
  kept = _global_keep([leaves[i] for i in chosen], [alive[i] for i in chosen], fraction)
  out = list(alive)
  for i, keep in zip(chosen, kept):
    out[i] = keep
  return jax.tree_util.tree_unflatten(treedef, out)


@jax.jit
def _global_keep(leaves, alive, fraction):
  """Per leaf, the entries left after removing the smallest alive ones globally."""
  dtype = jnp.result_type(*leaves, jnp.float32)
  magnitude = jnp.concatenate([jnp.abs(jnp.asarray(leaf, dtype)).ravel() for leaf in leaves])
  living = jnp.concatenate([a.ravel() for a in alive])
  count = jnp.sum(living)
  n_remove = jnp.floor(jnp.asarray(fraction, jnp.float32) * count + 0.5).astype(jnp.int32)
  order = jnp.argsort(jnp.where(living, magnitude, jnp.inf), stable=True)
  rank = jnp.zeros(magnitude.shape, jnp.int32).at[order].set(
      jnp.arange(magnitude.size, dtype=jnp.int32))
  keep = living & (rank >= n_remove)
  offsets = np.cumsum([0] + [np.size(leaf) for leaf in leaves])
  return [keep[offsets[j]:offsets[j + 1]].reshape(np.shape(leaf)) for j, leaf in enumerate(leaves)]


def prune_by_magnitude(params, *, fraction=None, threshold=None, mask=None, selected=True):
  r"""Global magnitude pruning: zeroes the smallest weights of the selected leaves.

  Give exactly one of ``fraction`` (remove that share of the surviving
  entries, as :func:`magnitude_mask`; HALO prunes to a target sparsity this
  way) or ``threshold`` (remove every entry with :math:`|w| \le t`).

  Args:
    params: a pytree of arrays.
    fraction: :math:`f \in [0, 1]`.
    threshold: :math:`t \ge 0`.
    mask: entries already pruned (False) stay zero; ``None`` = none.
    selected: as for :func:`magnitude_mask`.

  Returns:
    ``params`` with the removed entries set to 0.0; the mask is
    ``sparse_optax.lottery.survivors(result, selected)``.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import pruning
    >>> params = {"w": jnp.array([[0.1, -3.0], [2.0, 0.2]])}
    >>> pruning.prune_by_magnitude(params, threshold=0.5)["w"]
    Array([[ 0., -3.],
           [ 2.,  0.]], dtype=float32)
  """
  if (fraction is None) == (threshold is None):
    raise ValueError("prune_by_magnitude: give exactly one of fraction= and threshold=.")
  if fraction is not None:
    new_mask = magnitude_mask(params, fraction, mask, selected=selected)
  else:
    validation.nonnegative(threshold, "prune_by_magnitude", "threshold")
    leaves, treedef, alive = _selected_leaves(params, selected, mask, "prune_by_magnitude")
    new_mask = jax.tree_util.tree_unflatten(treedef, [
        None if a is None else a & (jnp.abs(leaf) > threshold)
        for leaf, a in zip(leaves, alive)])
  return lottery.rewind(params, new_mask)
