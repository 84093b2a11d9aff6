r"""GSEF (Refael et al. 2022): the k-support norm, its sparse envelope, the exact
proximal step, and the group version as an Optax transformation.

The sparse envelope :math:`s_k` is the convex envelope of
:math:`\tfrac12\|x\|^2` on k-sparse vectors, half the squared k-support norm.
GSEF applies its proximal step to the vector of group norms after each
optimizer step, and ends by keeping the k largest groups.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sparse_optax import selection
from sparse_optax.projections import validation
from sparse_optax.projections import group_norms


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
  k = validation.static_int(k, "sparse_envelope")
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
  k = validation.static_int(k, "ksupport_prox")
  validation.nonnegative(strength, "ksupport_prox", "strength")
  flat = v.ravel().astype(validation.compute_dtype(v.dtype))
  if flat.size == 0:
    return v
  if flat.size <= k:
    lam = jnp.maximum(jnp.asarray(strength, flat.dtype), 0)
    return (flat / (1 + lam)).reshape(v.shape).astype(v.dtype)
  return _ksupport_prox(flat, k, strength).reshape(v.shape).astype(v.dtype)


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
  axes = validation.array_axes(x, axis, "group_sparse_envelope")
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
  k = validation.static_int(k, "group_sparse_envelope_prox")
  validation.nonnegative(strength, "group_sparse_envelope_prox", "strength")
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
  k = validation.static_int(k, "keep_top_groups", minimum=0)
  axes = validation.group_axes(axis, x.ndim, "keep_top_groups")
  if x.size == 0:
    return x
  return _keep_top_groups(x, k, axes)


def _resolve_gsef(k, strength, params, groups, axis, name):
  """Per leaf: a LeafPlan (k, with the strength and group axes as options), or None."""
  def resolve(path, leaf, leaf_k, leaf_strength):
    if leaf_k is None or np.size(leaf) == 0:
      return None
    where = f"{name} ({jax.tree_util.keystr(path)})"
    validation.float_array(leaf, where)
    leaf_k = validation.static_int(leaf_k, where)
    if strength is not None:
      if leaf_strength is None:
        raise ValueError(f"{name}: no strength for {jax.tree_util.keystr(path)}, which has k={leaf_k}.")
      validation.nonnegative(leaf_strength, where, "strength")
    return selection.LeafPlan(leaf_k, {"strength": leaf_strength,
                                       "axes": selection.leaf_axes(leaf, groups, axis, path, name)})

  ks = selection.per_leaf(k, params, name=name, what="k")
  strengths = (selection.per_leaf(strength, params, name=name, what="strength",
                                   default=lambda leaf: True)
               if strength is not None else [None] * len(ks))
  return selection.leaf_plans(params, resolve, ks, strengths)


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
  selection.check_groups(groups, "gsef")
  if validation.is_scalar(k):
    validation.static_int(k, "gsef")
  if validation.is_scalar(strength):
    validation.nonnegative(strength, "gsef", "strength")

  def init_fn(params):
    _resolve_gsef(k, strength, params, groups, axis, "gsef")
    return optax.EmptyState()

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    validation.require_params(
        params, "gsef", "it applies the prox to params + updates, so it must be the last "
        "transformation of the chain, e.g. optax.chain(optax.sgd(lr), "
        "sparse_optax.regularizers.gsef(k, strength)).")

    def prox_update(plan, u, p):
      target = (p + u).astype(p.dtype)
      prox = _group_sparse_envelope_prox(target, plan.amount, plan.options["strength"],
                                         plan.options["axes"])
      return (prox - p).astype(u.dtype)

    plans = _resolve_gsef(k, strength, params, groups, axis, "gsef")
    return selection.map_planned(prox_update, plans, updates, params), state

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
  plans = _resolve_gsef(k, None, params, groups, axis, "tree_keep_top_groups")
  return selection.map_planned(
      lambda plan, leaf: _keep_top_groups(jnp.asarray(leaf), plan.amount, plan.options["axes"]),
      plans, params)
