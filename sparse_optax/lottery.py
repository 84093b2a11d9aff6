"""The lottery stage (Barlaud & Guyard, ICPR 2020, Algorithm 4) on pytrees.

Train with a plain optimizer; project the trained weights once; keep the zero
pattern as a mask; rewind the surviving weights to their initial values; then
retrain with the mask applied to every update so the zeros stay zero. Pure
functions, no hidden state, no Flax::

  trained = train(init_params, optax.adam(lr))
  projected = lottery.project_once(trained, sparse_optax.project_l11(eta))
  mask = lottery.survivors(projected)
  params = lottery.rewind(init_params, mask)
  final = train(params, lottery.retrain_optimizer(optax.adam(lr), mask))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from sparse_optax import transforms


def project_once(params, transform: optax.GradientTransformation):
  """Applies a projecting transformation to ``params`` once, with no step.

  Args:
    params: a pytree of arrays.
    transform: a projecting transformation such as
      ``sparse_optax.project_l11(eta)``.

  Returns:
    ``params`` with every leaf the transformation selects replaced by its
    projection.

  Example:
    >>> import jax.numpy as jnp, sparse_optax
    >>> params = {"kernel": jnp.array([[3.0, 1.0], [0.5, 0.5]]), "bias": jnp.ones(2)}
    >>> sparse_optax.lottery.project_once(params, sparse_optax.project_l11(2.0))["kernel"]
    Array([[2., 0.],
           [0., 0.]], dtype=float32)
  """
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = transform.update(zeros, transform.init(params), params)
  return optax.apply_updates(params, updates)


def survivors(params, selected=True):
  """The lottery mask: True where a selected leaf is non-zero.

  Args:
    params: a pytree of arrays, typically the output of :func:`project_once`.
    selected: which leaves get a mask. ``True`` (default) means every leaf with
      ``ndim >= 2``, as the projecting transformations select; or a pytree with
      the parameters' structure of booleans/``None``; or a callable
      ``(path, leaf) -> bool | None``.

  Returns:
    A pytree with the parameters' structure: boolean arrays for selected
    leaves, ``None`` for the others (they are never masked).

  Example:
    >>> import jax.numpy as jnp, sparse_optax
    >>> mask = sparse_optax.lottery.survivors({"w": jnp.array([[0.0, 2.0]]), "b": jnp.zeros(2)})
    >>> mask["w"], mask["b"]
    (Array([[False,  True]], dtype=bool), None)
  """
  flags = transforms.per_leaf(selected, params, name="survivors", what="selected")
  leaves, treedef = jax.tree_util.tree_flatten(params)
  masks = [leaf != 0 if flag else None for leaf, flag in zip(leaves, flags)]
  return jax.tree_util.tree_unflatten(treedef, masks)


def rewind(initial_params, mask):
  """Rewinds to the initial weights, with zeros where the mask is False.

  Args:
    initial_params: the parameters the first training stage started from.
    mask: the output of :func:`survivors` (``None`` leaves are rewound whole).

  Returns:
    The starting point of the retraining stage.

  Example:
    >>> import jax.numpy as jnp, sparse_optax
    >>> sparse_optax.lottery.rewind({"w": jnp.array([5.0, 6.0])}, {"w": jnp.array([True, False])})
    {'w': Array([5., 0.], dtype=float32)}
  """
  return jax.tree.map(
      lambda m, w: w if m is None else jnp.where(m, w, jnp.zeros_like(w)),
      mask, initial_params, is_leaf=lambda v: v is None)


def retrain_optimizer(inner: optax.GradientTransformation, mask) -> optax.GradientTransformation:
  """The optimizer of the retraining stage: ``inner`` with masked updates.

  The mask is applied to the final update, after ``inner`` (Adam's moments,
  momentum, weight decay), so masked weights stay exactly where they are.

  Args:
    inner: the optimizer, e.g. ``optax.adam(1e-3)``.
    mask: the output of :func:`survivors`.

  Returns:
    ``optax.chain(inner, sparse_optax.apply_mask(mask))``.
  """
  return optax.chain(inner, transforms.apply_mask(mask))
