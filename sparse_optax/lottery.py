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

:func:`lottery_ticket` is the same stage as one Optax transformation, for an
unchanged training loop::

  tx = sparse_optax.lottery_ticket(optax.adam(lr), sparse_optax.project_l11(eta),
                                   prune_at=8 * steps_per_epoch)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from sparse_optax import selection
from sparse_optax.projections import validation
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
  flags = selection.per_leaf(selected, params, name="survivors", what="selected")
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
  return selection.masked(initial_params, mask)


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


class LotteryTicketState(NamedTuple):
  """State of :func:`lottery_ticket`; its trees have the parameters' structure.

  Attributes:
    count: the number of updates so far.
    inner: the inner optimizer's state (re-initialised at the prune).
    rewind_params: the parameters the prune rewinds to: the initial ones, or
      those after ``rewind_to`` updates once that update has happened.
    mask: for each leaf the projection selects, a boolean array (True =
      trainable), all True before the prune; ``None`` for the other leaves,
      which are never masked.
  """

  count: jax.Array
  inner: optax.OptState
  rewind_params: Any
  mask: Any


def _selected_leaves(projection, params) -> list[bool]:
  """Which leaves ``projection`` (a ``project_*`` transformation) projects."""
  state = projection.init(params)
  if not isinstance(state, transforms.ProjectionState):
    raise TypeError(
        "lottery_ticket: projection must be one of the sparse_optax.project_* "
        f"transformations (e.g. sparse_optax.project_l11(400.0)); its state is a "
        f"{type(state).__name__}, not a ProjectionState.")
  treedef = jax.tree.structure(params)
  return [search is not None for search in treedef.flatten_up_to(state.searches)]


def lottery_ticket(optimizer: optax.GradientTransformation,
                   projection: optax.GradientTransformation, *, prune_at: int,
                   rewind_to: int = 0,
                   retrain_optimizer: optax.GradientTransformation | None = None,
                   ) -> optax.GradientTransformationExtraArgs:
  r"""The lottery of Barlaud & Guyard (ICPR 2020, Algorithm 4) as one transformation.

  Updates :math:`1, \dots, p - 1` (with :math:`p` = ``prune_at``) are the
  inner optimizer's: dense training. Update :math:`p` prunes: with
  :math:`v = w + u` the point the inner optimizer reaches,

  .. math::

    M = \big[\operatorname{proj}_\eta(v) \ne 0\big], \qquad
    w \leftarrow M \odot w_{r},

  where :math:`w_r` are the parameters after ``rewind_to`` updates (the
  initial ones for 0). The inner optimizer's state is then re-initialised,
  and every later update is the inner optimizer's on the masked gradient,
  masked again, so pruned entries stay exactly 0.0 through momentum and
  weight decay. Leaves the projection does not select (biases) are rewound
  and never masked, as in the lottery-ticket papers (Frankle & Carbin, 2019).

  The whole run is one compiled step: the phase is chosen from the update
  count inside the step, so nothing retraces at the prune.

  Memory: one copy of the parameters (the rewind point) and one byte per
  projected weight (the mask) beside the inner state, for every
  ``rewind_to``. A late rewind (``rewind_to > 0``, Frankle et al. 2020)
  overwrites that copy at update ``rewind_to``.

  Args:
    optimizer: the inner optimizer, e.g. ``optax.adam(1e-3)``.
    projection: one of the ``sparse_optax.project_*`` transformations; its
      radius and its selection of leaves make the mask.
    prune_at: the number of the update that prunes (>= 1); e.g.
      ``8 * steps_per_epoch`` prunes after 8 epochs.
    rewind_to: rewind to the parameters after this many updates (0 = the
      initial ones); below ``prune_at``.
    retrain_optimizer: the optimizer after the prune, started fresh from the
      rewound parameters; by default ``optimizer``. Its state must have the
      structure of ``optimizer``'s (e.g. the same optimizer with another
      learning-rate schedule).

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`; its ``update`` needs
    ``params``. Rewound entries equal :math:`w_r` up to the rounding of
    :math:`w + (w_r - w)`; pruned ones are exactly 0.0.

  Example:
    >>> import jax, jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[3.0, 1.0], [0.5, 0.5]]), "bias": jnp.ones(2)}
    >>> tx = sparse_optax.lottery_ticket(
    ...     optax.sgd(0.1), sparse_optax.project_l11(2.0), prune_at=2)
    >>> state = tx.init(params)
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> for _ in range(3):
    ...   updates, state = tx.update(grads, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> params["kernel"]  # pruned at update 2 and rewound to [[3, 0], [0, 0]]
    Array([[2.9, 0. ],
           [0. , 0. ]], dtype=float32)
  """
  retrain_optimizer = optimizer if retrain_optimizer is None else retrain_optimizer
  for name, value in (("prune_at", prune_at), ("rewind_to", rewind_to)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
      raise TypeError(f"lottery_ticket: {name} must be an int, got {value!r}.")
  if prune_at < 1:
    raise ValueError(f"lottery_ticket: prune_at must be >= 1 (the update that prunes), "
                     f"got {prune_at}.")
  if not 0 <= rewind_to < prune_at:
    raise ValueError(f"lottery_ticket: rewind_to must be in [0, prune_at) = [0, {prune_at}), "
                     f"got {rewind_to}: the rewind point must exist when the prune comes.")
  for name, value in (("optimizer", optimizer), ("projection", projection),
                      ("retrain_optimizer", retrain_optimizer)):
    if not isinstance(value, optax.GradientTransformation):
      raise TypeError(f"lottery_ticket: {name} must be an optax transformation, got {value!r}.")
  optimizer = optax.with_extra_args_support(optimizer)
  retrain_optimizer = optax.with_extra_args_support(retrain_optimizer)

  def init_fn(params):
    selected = _selected_leaves(projection, params)
    treedef = jax.tree.structure(params)
    mask = jax.tree.unflatten(treedef, [
        jnp.ones(np.shape(leaf), bool) if chosen else None
        for chosen, leaf in zip(selected, jax.tree.leaves(params))])
    inner = optimizer.init(params)
    if retrain_optimizer is not optimizer:
      retrain_structure = jax.tree.structure(jax.eval_shape(retrain_optimizer.init, params))
      if retrain_structure != jax.tree.structure(inner):
        raise ValueError("lottery_ticket: retrain_optimizer's state must have the structure of "
                         "optimizer's (the same optimizer with other hyperparameters).")
    return LotteryTicketState(count=jnp.zeros([], jnp.int32), inner=inner,
                              rewind_params=jax.tree.map(jnp.asarray, params), mask=mask)

  def update_fn(updates, state, params=None, **extra_args):
    validation.require_params(params, "lottery_ticket", "it projects params + update at the "
                              "prune and rewinds the parameters.")
    count = optax.safe_int32_increment(state.count)
    grads = selection.masked(updates, state.mask)
    if retrain_optimizer is optimizer:
      step, inner = optimizer.update(grads, state.inner, params, **extra_args)
    else:
      step, inner = lax.cond(
          count > prune_at,
          lambda: retrain_optimizer.update(grads, state.inner, params, **extra_args),
          lambda: optimizer.update(grads, state.inner, params, **extra_args))
    step = selection.masked(step, state.mask)
    rewind_params = state.rewind_params
    if rewind_to > 0:
      rewind_params = lax.cond(count == rewind_to,
                               lambda: optax.apply_updates(params, step),
                               lambda: rewind_params)

    def prune():
      reached = optax.apply_updates(params, step)
      # params = 0 makes the projecting update proj(0 + v) - 0: proj(v) exactly.
      zeros = jax.tree.map(jnp.zeros_like, params)
      projected, _ = projection.update(reached, projection.init(reached), zeros)
      mask = jax.tree.map(lambda m, p: None if m is None else p != 0, state.mask, projected,
                          is_leaf=lambda m: m is None)
      rewound = selection.masked(rewind_params, mask)
      to_rewound = jax.tree.map(lambda r, p, u: (r - p).astype(u.dtype), rewound, params, step)
      return to_rewound, retrain_optimizer.init(rewound), mask

    step, inner, mask = lax.cond(count == prune_at, prune, lambda: (step, inner, state.mask))
    return step, LotteryTicketState(count=count, inner=inner, rewind_params=rewind_params,
                                    mask=mask)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
