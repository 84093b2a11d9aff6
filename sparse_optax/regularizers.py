r"""The literature's comparators: HALO, GSEF, ℓ1/ℓ2 and magnitude pruning.

Pure functions over arrays and pytrees, plus one Optax transformation (GSEF's
proximal step), so that the methods the paper is measured against run in the
same training loop as the projections:

* HALO (Seto et al. 2020): a differentiable penalty with per-weight trainable
  scales, added to the loss; :func:`halo_penalty`, :func:`halo_scales`,
  :func:`halo_optimal_scales`; ends with global magnitude pruning,
  :func:`prune_by_magnitude`.
* GSEF (Refael et al. 2022): a proximal step on the sparse envelope of the
  group norms, :func:`gsef`, built on the exact k-support prox
  :func:`ksupport_prox`; ends by keeping the k largest groups,
  :func:`keep_top_groups`.
* ℓ1/ℓ2 (Berthelier et al. 2020): a scale-invariant penalty added to the loss,
  :func:`l1_over_l2_penalty`, :func:`tree_l1_over_l2_penalty`.
* Magnitude pruning and the lottery ticket (Frankle & Carbin 2019): remove a
  fraction of the smallest surviving weights per round, rewind, retrain;
  :func:`magnitude_mask` with :mod:`sparse_optax.lottery`::

    params, mask = init, None
    for _ in range(rounds):
      tx = adam if mask is None else lottery.retrain_optimizer(adam, mask)
      mask = regularizers.magnitude_mask(train(params, tx), 0.2, mask)
      params = lottery.rewind(init, mask)

Groups follow :mod:`sparse_optax.projections`: ``axis`` lists the axes reduced
inside one group, the other axes index the groups; the pytree functions take
``groups="in"``/``"out"`` like the projecting transformations.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sparse_optax import lottery
from sparse_optax import transforms
from sparse_optax.projections import validation
from sparse_optax.projections import group_norms


# --------------------------------------------------------------------------
# Static checks.


def _static_int(k, fn_name: str, minimum: int = 1) -> int:
  """``k`` must be a Python (or NumPy) int >= ``minimum``, known at trace time."""
  if isinstance(k, jax.core.Tracer):
    raise TypeError(
        f"{fn_name}: k must be a static Python int (it fixes the shape of the "
        "search); pass it outside jit, or mark it static.")
  if isinstance(k, bool) or not isinstance(k, (numbers.Integral, np.integer)):
    raise TypeError(f"{fn_name}: k must be an int, got {k!r}.")
  if k < minimum:
    raise ValueError(f"{fn_name}: k must be >= {minimum}, got {k}.")
  return int(k)


def _nonnegative(value, fn_name: str, what: str):
  """A scalar; when known at trace time, not negative."""
  if np.ndim(value) != 0:
    raise ValueError(f"{fn_name}: {what} must be a scalar, got shape {np.shape(value)}.")
  if not isinstance(value, jax.core.Tracer) and float(value) < 0:
    raise ValueError(f"{fn_name}: {what} must be >= 0, got {value}.")
  return value


def _fraction(value, fn_name: str):
  if np.ndim(value) != 0:
    raise ValueError(f"{fn_name}: fraction must be a scalar, got shape {np.shape(value)}.")
  if not isinstance(value, jax.core.Tracer) and not 0 <= float(value) <= 1:
    raise ValueError(f"{fn_name}: fraction must be in [0, 1], got {value}.")
  return value


def _axes(x, axis, fn_name):
  """``axis`` normalised; ``None`` means every axis (the whole array is one group)."""
  if axis is None:
    return tuple(range(x.ndim))
  return validation.group_axes(axis, x.ndim, fn_name)


def _leaf_axes(leaf, groups, axis, path, fn_name):
  if groups not in transforms.GROUPS:
    raise ValueError(f"{fn_name}: groups must be one of {transforms.GROUPS}, got {groups!r}.")
  axes = transforms.group_axes(np.shape(leaf), groups, axis, path, fn_name)
  return validation.group_axes(axes, np.ndim(leaf), f"{fn_name} ({jax.tree_util.keystr(path)})")


# --------------------------------------------------------------------------
# The k-support norm, the sparse envelope and its proximal operator.


def _sorted_magnitudes(v):
  """|v|, |v| sorted up, and the sums of its j smallest entries, j = 0..n.

  Sums of the smallest entries, not differences of sums of the largest: a
  tail of tiny entries next to a huge one keeps its digits.
  """
  z = jnp.abs(v)
  ascending = jnp.sort(z)
  smallest = jnp.concatenate([jnp.zeros(1, z.dtype), jnp.cumsum(ascending)])
  return z, ascending, smallest


@functools.partial(jax.jit, static_argnames="k")
def _ksupport_squared(v, k):
  """‖v‖²_(k) of a vector with k < n: the best feasible θ of the variational form."""
  n = v.shape[0]
  _, ascending, smallest = _sorted_magnitudes(v)
  z = ascending[::-1]
  squares = jnp.concatenate([jnp.zeros(1, z.dtype), jnp.cumsum(z * z)])
  r = jnp.arange(k)
  head = k - 1 - r  # entries with θ = 1
  tail = smallest[n - head]  # all but the head largest; they get θ = (r+1) z / tail
  # Feasible iff the largest such θ is <= 1. Feasibility only ever fails above
  # the optimal r, and r = 0 is always feasible (the tail holds z_k itself),
  # so the minimum over the feasible ones is finite and is the norm.
  feasible = (r + 1) * z[head] <= tail
  values = squares[head] + tail * tail / (r + 1)
  return jnp.min(jnp.where(feasible, values, jnp.inf))


def sparse_envelope(v, k: int) -> jax.Array:
  r"""The sparse envelope :math:`s_k(v) = \tfrac12 \|v\|_{(k)}^2`.

  The convex envelope (biconjugate) of :math:`\tfrac12\|x\|_2^2` restricted to
  k-sparse vectors; its conjugate is :math:`\tfrac12 \sum_{i \le k}
  (|u|^{\downarrow}_i)^2`. With :math:`z = |v|` sorted decreasingly,

  .. math::

    \|v\|_{(k)}^2 = \min_{0 < \theta \le 1,\ \sum_i \theta_i \le k}
    \sum_i \frac{v_i^2}{\theta_i}
    = \sum_{i=1}^{k-r-1} z_i^2 + \frac{1}{r+1}\Big(\sum_{i=k-r}^{n} z_i\Big)^2

  for the :math:`r \in \{0, \dots, k-1\}` that makes the second form's
  :math:`\theta` feasible (the minimum over the feasible ones is taken).
  Equal to :math:`\tfrac12\|v\|_2^2` when :math:`\|v\|_0 \le k`,
  :math:`\tfrac12\|v\|_1^2` for k = 1. O(n log n).

  Args:
    v: real floating array, taken as one vector :math:`\operatorname{vec} v`.
    k: static int >= 1.

  Returns:
    A scalar of ``v``'s dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> regularizers.sparse_envelope(jnp.array([3.0, 1.0, 0.5]), 1)  # ½ ‖v‖₁²
    Array(10.125, dtype=float32)

  References:
    Argyriou, Foygel & Srebro, "Sparse prediction with the k-support norm",
    NeurIPS 2012 (Proposition 2.1); Refael et al. 2022 (GSEF).
  """
  v = validation.float_array(v, "sparse_envelope")
  k = _static_int(k, "sparse_envelope")
  return _sparse_envelope(v, k)


@functools.partial(jax.jit, static_argnames="k")
def _sparse_envelope(v, k):
  flat = v.ravel().astype(validation.compute_dtype(v.dtype))
  if flat.size <= k:
    return (0.5 * jnp.sum(flat * flat)).astype(v.dtype)
  return (0.5 * _ksupport_squared(flat, k)).astype(v.dtype)


def ksupport_norm(v, k: int) -> jax.Array:
  r"""The k-support norm :math:`\|v\|_{(k)} = \sqrt{2 s_k(v)}`.

  The gauge of the convex hull of the k-sparse vectors of unit ℓ2 norm; its
  dual norm is the ℓ2 norm of the k largest :math:`|u_i|`. ℓ1 for k = 1, ℓ2
  for k >= n. See :func:`sparse_envelope`.

  Args:
    v: real floating array, taken as one vector.
    k: static int >= 1.

  Returns:
    A scalar of ``v``'s dtype (gradient finite at 0).

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> regularizers.ksupport_norm(jnp.array([3.0, 4.0, 0.0]), 2)
    Array(5., dtype=float32)
  """
  squared = 2 * sparse_envelope(v, k).astype(validation.compute_dtype(jnp.result_type(v)))
  positive = squared > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1)), 0).astype(
      jnp.result_type(v))


@functools.partial(jax.jit, static_argnames="k")
def _ksupport_prox(v, k, strength):
  """The prox on a flat vector, k < n; see :func:`ksupport_prox` for the maths."""
  n = v.shape[0]
  lam = jnp.maximum(jnp.asarray(strength, v.dtype), 0)
  z, ascending, smallest = _sorted_magnitudes(v)
  a = lam / (1 + lam)
  top_ascending = a * ascending  # entry i is in the top set iff a z_i >= gamma

  def sets(n_gt, n_top):
    """Top size, middle size and middle sum from |{z > c}| and |top| ⊆ it."""
    n_top = jnp.minimum(n_top, n_gt)
    # The middle entries are the ascending ones with index in [n - n_gt, n - n_top).
    return n_top, n_gt - n_top, smallest[n - n_top] - smallest[n - n_gt]

  # g(c) = Σ θ_i(c), nonincreasing; evaluated at every breakpoint, times c > 0.
  candidates = jnp.concatenate([ascending, top_ascending])
  n_top, middle, middle_sum = sets(
      n - jnp.searchsorted(ascending, candidates, side="right"),  # z > c
      n - jnp.searchsorted(top_ascending, candidates, side="left"))  # a z >= c
  c_g = n_top * candidates + lam * (middle_sum - candidates * middle)
  reaches = (candidates > 0) & (c_g >= k * candidates)
  low = jnp.max(jnp.where(reaches, candidates, 0))
  # On the interval above `low` the sets are fixed: solve Σ θ_i(γ) = k there.
  n_top, middle, middle_sum = sets(jnp.sum(ascending > low), jnp.sum(top_ascending > low))
  denominator = k - n_top + lam * middle
  solvable = (middle_sum > 0) & (denominator > 0)
  gamma = jnp.where(solvable, lam * middle_sum / jnp.where(solvable, denominator, 1), 0)
  magnitude = jnp.minimum(z / (1 + lam), jnp.maximum(z - gamma, 0))
  return jnp.where(magnitude > 0, jnp.sign(v) * magnitude, 0)


def ksupport_prox(v, k: int, strength) -> jax.Array:
  r"""Proximal operator of the scaled sparse envelope, :math:`\lambda s_k`.

  .. math::

    \operatorname{prox}_{\lambda s_k}(v) = \underset{w}{\operatorname{argmin}}
    \ \tfrac12 \|w - v\|_2^2 + \frac{\lambda}{2} \|w\|_{(k)}^2

  with :math:`\lambda` = ``strength`` and :math:`\|\cdot\|_{(k)}` the k-support
  norm (:func:`ksupport_norm`). Exact. Writing the squared norm as
  :math:`\min_\theta \sum_i w_i^2/\theta_i` over :math:`0 < \theta_i \le 1,\
  \sum_i \theta_i \le k`, the optimal :math:`w_i = v_i \theta_i / (\theta_i +
  \lambda)` and :math:`\theta_i = \operatorname{clip}(\lambda(|v_i|/\gamma - 1),
  0, 1)`, which gives

  .. math::

    w_i = \operatorname{sign}(v_i) \min\Big(\frac{|v_i|}{1 + \lambda},\
    (|v_i| - \gamma)_+\Big),
    \qquad \sum_i \operatorname{clip}\Big(\lambda\,\frac{|v_i| - \gamma}{\gamma},
    0, 1\Big) = k

  (:math:`\gamma = 0` when :math:`\|v\|_0 \le k`): the largest entries are
  shrunk by :math:`1/(1+\lambda)`, the next ones soft-thresholded by
  :math:`\gamma`, the rest set to zero. The left side of the equation is
  nonincreasing and piecewise simple in :math:`\gamma` with breakpoints
  :math:`|v_i|` and :math:`\tfrac{\lambda}{1+\lambda}|v_i|`; it is evaluated at
  all 2n breakpoints with prefix sums and binary searches on the sorted
  :math:`|v|`, and solved in closed form on the bracketing interval,
  :math:`\gamma = \lambda S_M / (k - |T| + \lambda |M|)` with :math:`T` the
  shrunk (top) set and :math:`M`, :math:`S_M` the soft-thresholded set and its
  sum. This is the two-index search (r = |T|, ℓ = |T| + |M|) of Argyriou et al.
  (2012, Algorithm 1) done in O(n log n), static shapes, no loop. For k >= n
  it is :math:`v / (1 + \lambda)`; for k = 1 the prox of
  :math:`\tfrac{\lambda}{2}\|\cdot\|_1^2`.

  Args:
    v: real floating array, taken as one vector :math:`\operatorname{vec} v`
      (use :func:`jax.vmap` for a batch).
    k: static int >= 1.
    strength: :math:`\lambda \ge 0`, may be traced (a traced negative value
      acts as 0).

  Returns:
    The prox, with ``v``'s shape and dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> regularizers.ksupport_prox(jnp.array([3.0, -1.0, 0.5]), 1, 1.0)
    Array([1.5, 0. , 0. ], dtype=float32)
    >>> regularizers.ksupport_prox(jnp.array([4.0, -2.0, 1.0]), 2, 1.0)
    Array([ 2., -1.,  0.], dtype=float32)

  References:
    Argyriou, Foygel & Srebro, "Sparse prediction with the k-support norm",
    NeurIPS 2012; McDonald, Pontil & Stamos, "New perspectives on k-support
    and cluster norms", JMLR 2016.
  """
  v = validation.float_array(v, "ksupport_prox")
  k = _static_int(k, "ksupport_prox")
  _nonnegative(strength, "ksupport_prox", "strength")
  flat = v.ravel().astype(validation.compute_dtype(v.dtype))
  if flat.size == 0:
    return v
  if flat.size <= k:
    lam = jnp.maximum(jnp.asarray(strength, flat.dtype), 0)
    return (flat / (1 + lam)).reshape(v.shape).astype(v.dtype)
  return _ksupport_prox(flat, k, strength).reshape(v.shape).astype(v.dtype)


# --------------------------------------------------------------------------
# GSEF: the sparse envelope of the group norms.


def group_sparse_envelope(x, k: int, *, axis=-1) -> jax.Array:
  r"""The group sparse envelope :math:`G_k(x) = s_k\big((\|x_g\|_2)_g\big)`.

  Args:
    x: real floating array.
    k: static int >= 1, the number of groups the envelope favours.
    axis: int or tuple of ints, the axes reduced inside one group.

  Returns:
    A scalar of ``x``'s dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> regularizers.group_sparse_envelope(jnp.array([[3.0, 4.0], [0.0, 1.0]]), 1)
    Array(18., dtype=float32)
  """
  x = validation.float_array(x, "group_sparse_envelope")
  axes = _axes(x, axis, "group_sparse_envelope")
  norms = group_norms(x.astype(validation.compute_dtype(x.dtype)), axes, ord=2)
  return sparse_envelope(norms, k).astype(x.dtype)


@functools.partial(jax.jit, static_argnames=("k", "axis"))
def _group_sparse_envelope_prox(x, k, strength, axis):
  v = x.astype(validation.compute_dtype(x.dtype))
  norms = group_norms(v, axis, ord=2)
  flat = norms.ravel()
  if flat.size <= k:
    kept = flat / (1 + jnp.maximum(jnp.asarray(strength, flat.dtype), 0))
  else:
    kept = _ksupport_prox(flat, k, strength)
  kept = kept.reshape(norms.shape)
  scale = kept / jnp.where(norms > 0, norms, 1)
  return jnp.where(kept > 0, v * scale, 0).astype(x.dtype)


def group_sparse_envelope_prox(x, k: int, strength, *, axis=-1) -> jax.Array:
  r"""Proximal operator of :math:`\lambda G_k`, the group sparse envelope.

  .. math::

    \underset{p}{\operatorname{argmin}} \ \tfrac12 \|p - x\|_2^2 +
    \frac{\lambda}{2} \big\|(\|p_g\|_2)_g\big\|_{(k)}^2,
    \qquad p_g = x_g \, \frac{t_g}{\|x_g\|_2},\quad
    t = \operatorname{prox}_{\lambda s_k}\big((\|x_g\|_2)_g\big)

  The k-support prox (:func:`ksupport_prox`) of the vector of group norms, then
  each group rescaled; exact, since :math:`s_k` is absolutely symmetric. Zero
  groups stay zero. Groups whose norm is at most the prox's threshold
  :math:`\gamma` come out exactly zero, but nothing bounds their number by k
  (with a small :math:`\lambda` none may vanish): GSEF ends with
  :func:`keep_top_groups`.

  Args:
    x: real floating array.
    k: static int >= 1, the number of groups to keep.
    strength: :math:`\lambda \ge 0` (a traced negative value acts as 0).
    axis: int or tuple of ints, the axes reduced inside one group (for a Flax
      ``Dense`` kernel ``(in, out)``, ``axis=-1`` makes a group one input
      feature).

  Returns:
    The prox, with ``x``'s shape and dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> regularizers.group_sparse_envelope_prox(jnp.array([[3.0, 4.0], [0.6, 0.8]]), 1, 1.0)
    Array([[1.5, 2. ],
           [0. , 0. ]], dtype=float32)

  References:
    Refael, Arbel & Huleihel, "Learning k-level sparse neural networks using a
    new generalized group sparse envelope regularization", 2022.
  """
  x = validation.float_array(x, "group_sparse_envelope_prox")
  k = _static_int(k, "group_sparse_envelope_prox")
  _nonnegative(strength, "group_sparse_envelope_prox", "strength")
  axes = validation.group_axes(axis, x.ndim, "group_sparse_envelope_prox")
  if x.size == 0:
    return x
  return _group_sparse_envelope_prox(x, k, strength, axes)


@functools.partial(jax.jit, static_argnames=("k", "axis"))
def _keep_top_groups(x, k, axis):
  norms = group_norms(x.astype(validation.compute_dtype(x.dtype)), axis, ord=2)
  flat = norms.ravel()
  order = jnp.argsort(-flat, stable=True)  # ties: the lower index first
  rank = jnp.zeros(flat.shape, jnp.int32).at[order].set(jnp.arange(flat.size, dtype=jnp.int32))
  keep = (rank < k).reshape(norms.shape)
  return jnp.where(keep, x, jnp.zeros_like(x))


def keep_top_groups(x, k: int, *, axis=-1) -> jax.Array:
  r"""Zeroes every group but the k of largest ℓ2 norm.

  The final step of GSEF (the prox of :math:`\lambda G_k` shrinks, this
  zeroes). Groups of equal norm are ranked by index, the lower first.

  Args:
    x: real floating array.
    k: static int >= 0; ``k`` >= the number of groups returns ``x``.
    axis: int or tuple of ints, the axes reduced inside one group.

  Returns:
    ``x`` with all but k groups zeroed, same shape and dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> regularizers.keep_top_groups(jnp.array([[1.0, 1.0], [3.0, 0.0], [0.0, 2.0]]), 2)
    Array([[0., 0.],
           [3., 0.],
           [0., 2.]], dtype=float32)
  """
  x = validation.float_array(x, "keep_top_groups")
  k = _static_int(k, "keep_top_groups", minimum=0)
  axes = validation.group_axes(axis, x.ndim, "keep_top_groups")
  if x.size == 0:
    return x
  return _keep_top_groups(x, k, axes)


def _resolve_gsef(k, strength, params, groups, axis, name):
  """Per leaf: None to skip, else (k, strength, axes)."""
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  ks = transforms.per_leaf(k, params, name=name, what="k")
  strengths = (transforms.per_leaf(strength, params, name=name, what="strength",
                                   default=lambda leaf: True)
               if strength is not None else [None] * len(flat))
  plan = []
  for (path, leaf), leaf_k, leaf_strength in zip(flat, ks, strengths):
    if leaf_k is None or np.size(leaf) == 0:
      plan.append(None)
      continue
    where = f"{name} ({jax.tree_util.keystr(path)})"
    validation.float_array(leaf, where)
    leaf_k = _static_int(leaf_k, where)
    if strength is not None:
      if leaf_strength is None:
        raise ValueError(f"{name}: no strength for {jax.tree_util.keystr(path)}, which has k={leaf_k}.")
      _nonnegative(leaf_strength, where, "strength")
    plan.append((leaf_k, leaf_strength, _leaf_axes(leaf, groups, axis, path, name)))
  return plan


def gsef(k, strength, *, groups: str = "in", axis=None) -> optax.GradientTransformationExtraArgs:
  r"""GSEF's proximal step on each selected leaf (Refael et al. 2022).

  .. math::

    w \leftarrow \operatorname{prox}_{\lambda G_k}(w + u) =
    \underset{p}{\operatorname{argmin}} \ \tfrac12\|p - (w + u)\|_2^2 +
    \frac{\lambda}{2} \big\|(\|p_g\|_2)_g\big\|_{(k)}^2

  Chained after an optimizer it makes proximal gradient descent: with
  ``optax.sgd(lr)`` and a regularisation weight :math:`\beta`, pass
  ``strength = lr * beta``. Like the projecting transformations it returns
  ``prox(params + updates) - params``, needs ``params`` and must come last. At
  the end of training, zero all but the k groups with
  :func:`tree_keep_top_groups` (the prox zeroes the groups below its
  threshold, but does not guarantee that at most k are left).

  Args:
    k: the number of groups to keep, a static int: a number (every leaf with
      ``ndim >= 2``), a pytree with the parameters' structure (``None`` skips
      a leaf) or a callable ``(path, leaf) -> int | None``.
    strength: :math:`\lambda \ge 0` per step, a number (every leaf with a k)
      or a pytree/callable as for ``k``; may be traced (a traced negative value
      acts as 0).
    groups: ``"in"`` (one group per input feature: axis -2 of a Flax kernel
      is kept) or ``"out"`` (one group per output neuron or filter).
    axis: the axes reduced inside one group, for every selected leaf;
      overrides ``groups``.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`; its ``update`` needs
    ``params`` and it must come last in a chain.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from sparse_optax import regularizers
    >>> params = {"kernel": jnp.array([[3.0, 4.0], [0.6, 0.8]]), "bias": jnp.ones(2)}
    >>> tx = optax.chain(optax.sgd(0.0), regularizers.gsef(k=1, strength=1.0))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[1.5, 2. ],
           [0. , 0. ]], dtype=float32)
  """
  if groups not in transforms.GROUPS:
    raise ValueError(f"gsef: groups must be one of {transforms.GROUPS}, got {groups!r}.")
  if validation.is_scalar(k):
    _static_int(k, "gsef")
  if validation.is_scalar(strength):
    _nonnegative(strength, "gsef", "strength")

  def init_fn(params):
    _resolve_gsef(k, strength, params, groups, axis, "gsef")
    return optax.EmptyState()

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError(
          "gsef needs the parameters: call update(updates, state, params). It "
          "applies the prox to params + updates, so it must be the last "
          "transformation of the chain, e.g. optax.chain(optax.sgd(lr), "
          "sparse_optax.regularizers.gsef(k, strength)).")
    flat_updates, treedef = jax.tree_util.tree_flatten(updates)
    flat_params = treedef.flatten_up_to(params)
    plan = _resolve_gsef(k, strength, params, groups, axis, "gsef")
    new_updates = []
    for step, u, p in zip(plan, flat_updates, flat_params):
      if step is None:
        new_updates.append(u)
        continue
      leaf_k, leaf_strength, axes = step
      target = (p + u).astype(p.dtype)
      prox = _group_sparse_envelope_prox(target, leaf_k, leaf_strength, axes)
      new_updates.append((prox - p).astype(u.dtype))
    return jax.tree_util.tree_unflatten(treedef, new_updates), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def tree_keep_top_groups(params, k, *, groups: str = "in", axis=None):
  """:func:`keep_top_groups` on each selected leaf: GSEF's final zeroing.

  Args:
    params: a pytree of arrays.
    k: as for :func:`gsef` (a number selects every leaf with ``ndim >= 2``).
    groups: ``"in"`` or ``"out"``, as for :func:`gsef`.
    axis: the axes reduced inside one group; overrides ``groups``.

  Returns:
    ``params`` with all but k groups of each selected leaf zeroed.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax import regularizers
    >>> params = {"kernel": jnp.array([[1.0, 1.0], [3.0, 0.0]]), "bias": jnp.ones(2)}
    >>> regularizers.tree_keep_top_groups(params, 1)["kernel"]
    Array([[0., 0.],
           [3., 0.]], dtype=float32)
  """
  plan = _resolve_gsef(k, None, params, groups, axis, "tree_keep_top_groups")
  leaves, treedef = jax.tree_util.tree_flatten(params)
  kept = [leaf if step is None else _keep_top_groups(jnp.asarray(leaf), step[0], step[2])
          for step, leaf in zip(plan, leaves)]
  return jax.tree_util.tree_unflatten(treedef, kept)


# --------------------------------------------------------------------------
# ℓ1/ℓ2.


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
  return _l1_over_l2(x, _axes(x, axis, "l1_over_l2_penalty"))


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
  flags = transforms.per_leaf(selected, params, name="tree_l1_over_l2_penalty", what="selected")
  total = jnp.zeros([], jnp.result_type(*[leaf for _, leaf in flat], jnp.float32)
                    if flat else jnp.float32)
  for (path, leaf), flag in zip(flat, flags):
    if not flag or np.size(leaf) == 0:
      continue
    axes = _leaf_axes(leaf, groups, axis, path, "tree_l1_over_l2_penalty")
    total = total + l1_over_l2_penalty(leaf, axis=axes)
  return total


# --------------------------------------------------------------------------
# HALO.


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
  flags = transforms.per_leaf(selected, params, name="halo_scales", what="selected")
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
  _nonnegative(xi, "halo_penalty", "xi")
  _nonnegative(psi, "halo_penalty", "psi")
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
  _nonnegative(xi, "halo_optimal_scales", "xi")
  if np.ndim(psi) != 0 or (not isinstance(psi, jax.core.Tracer) and float(psi) <= 0):
    raise ValueError(f"halo_optimal_scales: psi must be a positive scalar, got {psi!r}.")
  flags = transforms.per_leaf(selected, params, name="halo_optimal_scales", what="selected")
  leaves, treedef = jax.tree_util.tree_flatten(params)
  scales = [jnp.cbrt(2 * xi * jnp.abs(leaf) / psi).astype(jnp.result_type(leaf)) if flag else None
            for leaf, flag in zip(leaves, flags)]
  return jax.tree_util.tree_unflatten(treedef, scales)


# --------------------------------------------------------------------------
# Magnitude pruning.


def _selected_leaves(params, selected, mask, fn_name):
  flags = transforms.per_leaf(selected, params, name=fn_name, what="selected")
  leaves, treedef = jax.tree_util.tree_flatten(params)
  masks = (transforms.per_leaf(mask, params, name=fn_name, what="mask",
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
    >>> from sparse_optax import regularizers
    >>> params = {"w": jnp.array([[0.1, -3.0], [2.0, 0.2]]), "b": jnp.zeros(2)}
    >>> regularizers.magnitude_mask(params, 0.5)["w"]
    Array([[False,  True],
           [ True, False]], dtype=bool)
  """
  _fraction(fraction, "magnitude_mask")
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
    >>> from sparse_optax import regularizers
    >>> params = {"w": jnp.array([[0.1, -3.0], [2.0, 0.2]])}
    >>> regularizers.prune_by_magnitude(params, threshold=0.5)["w"]
    Array([[ 0., -3.],
           [ 2.,  0.]], dtype=float32)
  """
  if (fraction is None) == (threshold is None):
    raise ValueError("prune_by_magnitude: give exactly one of fraction= and threshold=.")
  if fraction is not None:
    new_mask = magnitude_mask(params, fraction, mask, selected=selected)
  else:
    _nonnegative(threshold, "prune_by_magnitude", "threshold")
    leaves, treedef, alive = _selected_leaves(params, selected, mask, "prune_by_magnitude")
    new_mask = jax.tree_util.tree_unflatten(treedef, [
        None if a is None else a & (jnp.abs(leaf) > threshold)
        for leaf, a in zip(leaves, alive)])
  return lottery.rewind(params, new_mask)
