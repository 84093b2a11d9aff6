r"""HALO (Seto et al. 2020): a penalty with per-weight trainable scales.

The loss gains :math:`\xi \sum_j |w_j| / \lambda_j^2 + \psi \sum_j |\lambda_j|`;
the scales train with their own optimizer, and the method ends with global
magnitude pruning (:func:`sparse_optax.pruning.prune_by_magnitude`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sparse_optax import selection
from sparse_optax.projections import validation


def _halo_pairs(params, scales, fn_name):
  """(param, scale) for every leaf where ``scales`` is not None."""
  is_none = lambda v: v is None
  scale_flat, _ = jax.tree_util.tree_flatten_with_path(scales, is_leaf=is_none)
  param_flat, _ = jax.tree_util.tree_flatten_with_path(params)
  keys = lambda path: tuple(str(key) for key in path)
  if (len(scale_flat) != len(param_flat)
      or any(keys(sp) != keys(pp) for (sp, _), (pp, _) in zip(scale_flat, param_flat))):
    raise ValueError(
        f"{fn_name}: scales must have the parameters' structure ({len(scale_flat)} "
        f"scale leaves for {len(param_flat)} parameters); build them with "
        "halo_scales(params), None leaves a parameter unpenalised.")
  pairs = []
  for (path, scale), (_, leaf) in zip(scale_flat, param_flat):
    if scale is None:
      continue
    if np.shape(scale) != np.shape(leaf):
      raise ValueError(
          f"{fn_name}: the scales of {jax.tree_util.keystr(path)} have shape "
          f"{np.shape(scale)}, the parameter {np.shape(leaf)}; HALO has one scale per weight.")
    pairs.append((leaf, scale))
  return pairs


def halo_scales(params, value=1.0, *, selected=True):
  r"""Initial HALO scales :math:`\lambda`: one per weight of each selected leaf.

  Args:
    params: a pytree of arrays.
    value: the initial scale, > 0 (the reference code uses 1).
    selected: ``True`` (every leaf with ``ndim >= 2``; the reference code also
      penalises biases, pass ``lambda path, leaf: True`` for that), a pytree
      of booleans/``None`` or a callable ``(path, leaf) -> bool | None``.

  Returns:
    A pytree with the parameters' structure: ``value``-filled arrays of the
    leaf's shape and dtype for selected leaves, ``None`` for the others.
    Train it with its own optimizer, on the gradient of :func:`halo_penalty`.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> regularizers.halo_scales({"w": jnp.zeros((1, 2)), "b": jnp.zeros(2)})
    {'b': None, 'w': Array([[1., 1.]], dtype=float32)}
  """
  if np.ndim(value) != 0 or (not isinstance(value, jax.core.Tracer) and float(value) <= 0):
    raise ValueError(f"halo_scales: value must be a positive scalar, got {value!r}.")
  flags = selection.per_leaf(selected, params, name="halo_scales", what="selected")
  leaves, treedef = jax.tree_util.tree_flatten(params)
  scales = [jnp.full(np.shape(leaf), value, jnp.result_type(leaf)) if flag else None
            for leaf, flag in zip(leaves, flags)]
  return jax.tree_util.tree_unflatten(treedef, scales)


def halo_penalty(params, scales, xi, psi) -> jax.Array:
  r"""The HALO penalty (Hierarchical Adaptive Lasso, Seto et al. 2020).

  .. math::

    R(w, \lambda) = \xi \sum_j \frac{|w_j|}{\lambda_j^2} + \psi \sum_j |\lambda_j|

  summed over the leaves where ``scales`` is not None. Added to the loss and
  minimised jointly in :math:`w` and the scales :math:`\lambda` (each with its
  own optimizer); a weight with a small scale meets a steep ℓ1 penalty. For a
  fixed :math:`w` the best scale and the penalty it leaves are

  .. math::

    \lambda_j^\star = \Big(\frac{2 \xi |w_j|}{\psi}\Big)^{1/3}, \qquad
    \min_\lambda R = \tfrac32 \, \psi^{2/3} (2\xi)^{1/3} \sum_j |w_j|^{1/3},

  a non-convex :math:`|w|^{1/3}` penalty (see :func:`halo_optimal_scales`).
  HALO ends with global magnitude pruning (:func:`prune_by_magnitude`), no
  fine-tuning.

  Args:
    params: a pytree of arrays.
    scales: a pytree with the parameters' structure, an array of the leaf's
      shape or ``None`` (leaf not penalised); see :func:`halo_scales`.
    xi: :math:`\xi \ge 0`.
    psi: :math:`\psi \ge 0`.

  Returns:
    A scalar, differentiable in both ``params`` and ``scales``.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> params = {"w": jnp.array([[2.0, -1.0]]), "b": jnp.ones(2)}
    >>> scales = {"w": jnp.array([[1.0, 0.5]]), "b": None}
    >>> regularizers.halo_penalty(params, scales, xi=1.0, psi=0.1)  # 2 + 4 + 0.15
    Array(6.15, dtype=float32)

  References:
    Seto, Wells & Zhang, "HALO: Learning to prune neural networks with
    shrinkage", 2020 (code: github.com/skyler120/sparsity-halo).
  """
  validation.nonnegative(xi, "halo_penalty", "xi")
  validation.nonnegative(psi, "halo_penalty", "psi")
  pairs = _halo_pairs(params, scales, "halo_penalty")
  weighted = sum((jnp.sum(jnp.abs(w) / (s * s)) for w, s in pairs), jnp.zeros([]))
  scale_mass = sum((jnp.sum(jnp.abs(s)) for _, s in pairs), jnp.zeros([]))
  return xi * weighted + psi * scale_mass


def halo_optimal_scales(params, xi, psi, *, selected=True):
  r"""The scales that minimise :func:`halo_penalty` for fixed weights.

  .. math::

    \lambda_j^\star = \Big(\frac{2 \xi |w_j|}{\psi}\Big)^{1/3}

  (from :math:`\partial_\lambda (\xi |w|/\lambda^2 + \psi \lambda) =
  -2\xi|w|/\lambda^3 + \psi = 0`).

  Args:
    params: a pytree of arrays.
    xi: :math:`\xi \ge 0`.
    psi: :math:`\psi > 0`.
    selected: as for :func:`halo_scales`.

  Returns:
    A pytree like :func:`halo_scales`' output.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> regularizers.halo_optimal_scales({"w": jnp.array([[4.0, 0.0]])}, xi=1.0, psi=1.0)
    {'w': Array([[2., 0.]], dtype=float32)}
  """
  validation.nonnegative(xi, "halo_optimal_scales", "xi")
  if np.ndim(psi) != 0 or (not isinstance(psi, jax.core.Tracer) and float(psi) <= 0):
    raise ValueError(f"halo_optimal_scales: psi must be a positive scalar, got {psi!r}.")
  flags = selection.per_leaf(selected, params, name="halo_optimal_scales", what="selected")
  leaves, treedef = jax.tree_util.tree_flatten(params)
  scales = [jnp.cbrt(2 * xi * jnp.abs(leaf) / psi).astype(jnp.result_type(leaf)) if flag else None
            for leaf, flag in zip(leaves, flags)]
  return jax.tree_util.tree_unflatten(treedef, scales)
