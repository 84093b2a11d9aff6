r"""Optax transformations that keep selected parameters inside a ball.

Chained after an optimizer, a projecting transformation turns its update into

.. math::

  u \leftarrow \operatorname{proj}_{\eta}(w + u) - w,

so that after :func:`optax.apply_updates` each selected parameter *is* the
projection of the plain step (Barlaud & Guyard, ICPR 2020, Algorithm 1):
:math:`V = W - \gamma \nabla L(W)`, :math:`W = \operatorname{proj}(V)`. Entries
the projection sends to zero come out exactly 0.0. The transformation needs the
parameters and must be the last of the chain::

  tx = optax.chain(optax.adam(1e-3), sparse_optax.project_l11(eta=400.0))

The order cannot be checked from inside the chain: placed first, the
projection's output is rescaled by the optimizer after it and the parameters
leave the ball without an error. :func:`sparse_optax.lottery_ticket` and the
experiment runner build their chains in the right order.

Which leaves, and how they group:

* ``eta`` a number: every leaf with ``ndim >= 2`` (kernels) gets that radius,
  biases and scales are left alone, as in the paper.
* ``eta`` a pytree with the structure of the parameters: its numbers are
  per-leaf radii, ``None`` leaves a leaf alone.
* ``eta`` a callable ``(path, leaf) -> number | None``, ``path`` as given by
  :func:`jax.tree_util.tree_map_with_path`: e.g. skip the first and last
  layers.
* ``groups="in"`` (default): one group per input feature, i.e. axis -2 of a
  Flax kernel ``(in, out)`` or ``(kh, kw, in, out)`` is kept and every other
  axis is reduced inside a group; zeroing a group removes an input neuron or
  channel. ``groups="out"``: one group per output neuron or filter (the last
  axis). ``groups="heads"``: one group per attention head of Flax's
  ``nnx.MultiHeadAttention`` kernels (axis 1 of ``query``, ``key``, ``value``
  ``(in, heads, head_dim)``, axis 0 of ``out`` ``(heads, head_dim, out)``);
  zeroing a head of ``value`` or ``out`` removes it, of ``query`` or ``key``
  only makes its scores constant. On other kernels "in" and "out" name the
  same axes, which may not be units: an ``nnx.Embed`` table
  ``(vocabulary, features)`` is grouped by token under ``"in"``, a depthwise
  kernel ``(kh, kw, 1, channels)`` needs ``"out"``.
* ``groups`` may also be a pytree (or a callable ``(path, leaf)``) giving
  each leaf a name, the tuple of axes reduced inside one of its groups, or
  ``None`` (the leaf is not projected):
  :func:`sparse_optax.structure.groups_of` returns exactly the groups whose
  zeroing lets :func:`sparse_optax.compact` remove a unit. An explicit
  ``axis=`` (the axes reduced inside a group, as in
  :mod:`sparse_optax.projections`) overrides ``groups``.
* ``every=k``: project on every k-th step only (``k = 1`` is Algorithm 1).
* ``freeze_dead=True``: a group the projection sends to zero stays exactly
  zero for the rest of training (its later updates are masked). With Adam,
  whose steps have about the same size for every weight, a zeroed group
  otherwise grows back at every step and the projection has to remove it
  again; frozen, it is removed for good.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from sparse_optax import projections
from sparse_optax.selection import (LeafPlan, check_groups, group_axes, leaf_plans, map_planned, masked,
                                    per_leaf, restructured)
from sparse_optax.projections import validation
from sparse_optax.projections.warm_start import WarmStart

Eta = Any  # a number, a pytree of numbers/None matching params, or a callable


class ProjectionState(NamedTuple):
  """State of a projecting transformation; its trees have the parameters' structure.

  Attributes:
    count: the number of updates so far.
    searches: for each projected leaf, where its threshold search ended at the
      last projection; ``None`` for the leaves left alone. Consecutive steps
      project nearby points, so the next search starts there and needs fewer
      passes. The leaves that are not ``None`` are the projected ones.
    alive: with ``freeze_dead``, for each projected leaf a boolean array of its
      shape, False on the groups the projection has zeroed (frozen since);
      ``None`` for the other leaves, and the whole field ``None`` without
      ``freeze_dead``.
  """

  count: jax.Array
  searches: Any
  alive: Any = None


def _check_radius(radius, path, name):
  if radius is None:
    return
  if not validation.is_scalar(radius):
    raise ValueError(
        f"{name}: eta for {jax.tree_util.keystr(path)} must be a number or None, "
        f"got {radius!r}.")
  if not isinstance(radius, jax.core.Tracer) and not float(radius) >= 0:
    where = f" for {jax.tree_util.keystr(path)}" if path else ""
    raise ValueError(f"{name}: eta must be a number >= 0, got {radius}{where}.")


def _check_every(every, name):
  if isinstance(every, jax.core.Tracer):
    return
  if isinstance(every, bool) or int(every) != every or every < 1:
    raise ValueError(f"{name}: every must be a positive integer, got {every!r}.")


def _surviving(projected, axis):
  """True on the entries of groups with a non-zero entry (entrywise without groups)."""
  nonzero = projected != 0
  if axis is None:
    return nonzero
  return jnp.broadcast_to(jnp.any(nonzero, axis=axis, keepdims=True), projected.shape)


class _Projected(NamedTuple):
  """One leaf after a step: its update, its search state and its surviving groups."""

  update: Any
  search: Any
  alive: Any


def _check_keep(keep, path, name):
  if keep is None:
    return
  where = f" for {jax.tree_util.keystr(path)}" if path else ""
  if not validation.is_scalar(keep):
    raise ValueError(f"{name}: keep{where} must be a number in [0, 1] or None, got {keep!r}.")
  validation.fraction(keep, f"{name}{where}", "keep")


def _projecting_transform(name: str, projection: WarmStart, eta: Eta, *, every, freeze_dead,
                          grouped: bool, groups: str = "in", axis=None, weights=None,
                          keep: Eta = None, **options) -> optax.GradientTransformationExtraArgs:
  """What every ``project_*`` shares: resolve the leaves, project ``params + updates``.

  With ``keep`` instead of ``eta``, each leaf's radius is the one under which
  ``round(keep × groups)`` of its groups survive: the projection then takes
  that count, ``by_rank`` (see :func:`sparse_optax.projections.keep_radius`).
  """
  if grouped and isinstance(groups, str):
    check_groups(groups, name)
  if (eta is None) == (keep is None):
    raise ValueError(f"{name}: give eta (a radius) or keep (a fraction of the groups to "
                     f"keep){', not both' if keep is not None else ''}.")
  _check_every(every, name)
  if not isinstance(freeze_dead, bool):
    raise TypeError(f"{name}: freeze_dead must be True or False, got {freeze_dead!r}.")
  if validation.is_scalar(eta):
    _check_radius(eta, (), name)
  if validation.is_scalar(keep):
    _check_keep(keep, (), name)
  by_rank = keep is not None

  def resolve(path, leaf, spec, leaf_weights, group) -> LeafPlan | None:
    (_check_keep if by_rank else _check_radius)(spec, path, name)
    if spec is None or np.size(leaf) == 0 or (grouped and group is None and axis is None):
      return None
    where = f"{name} ({jax.tree_util.keystr(path)})"
    validation.float_array(leaf, where)
    kwargs = dict(options)
    if grouped:
      axes = group_axes(np.shape(leaf), group, axis, path, name)
      kwargs["axis"] = validation.group_axes(axes, np.ndim(leaf), where)
    if weights is not None:
      if leaf_weights is None:
        raise ValueError(f"{name}: no weights for {jax.tree_util.keystr(path)}.")
      kwargs["weights"] = validation.weights(leaf_weights, np.shape(leaf), name)
    if not by_rank:
      return LeafPlan(spec, kwargs)
    kwargs["by_rank"] = True
    count = (projections.group_count(np.shape(leaf), kwargs["axis"]) if grouped
             else int(np.size(leaf)))
    return LeafPlan(projections.kept_count(spec, count), kwargs)

  def plan(params):
    count = len(jax.tree.leaves(params))
    specs = per_leaf(keep if by_rank else eta, params, name=name,
                     what="keep" if by_rank else "eta")
    leaf_weights = (per_leaf(weights, params, name=name, what="weights",
                             default=lambda leaf: True)
                    if weights is not None else [None] * count)
    leaf_groups = ([groups] * count if isinstance(groups, str) or not grouped else
                   per_leaf(groups, params, name=name, what="groups",
                            is_leaf=lambda v: v is None or isinstance(v, (str, tuple))))
    return leaf_plans(params, resolve, specs, leaf_weights, leaf_groups)

  nothing = lambda *_: None

  def init_fn(params):
    plans = plan(params)
    searches = map_planned(lambda leaf_plan, leaf: projection.cold(leaf, **leaf_plan.options),
                           plans, params, unplanned=nothing)
    alive = (map_planned(lambda _, leaf: jnp.ones(np.shape(leaf), bool), plans, params,
                         unplanned=nothing) if freeze_dead else None)
    return ProjectionState(count=jnp.zeros([], jnp.int32), searches=searches, alive=alive)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    validation.require_params(
        params, name, "it projects params + updates, so it must be the last transformation "
        f"of the chain, e.g. optax.chain(optax.adam(lr), sparse_optax.{name}(eta)).")
    count = optax.safe_int32_increment(state.count)
    plans = plan(params)

    def step(leaf_plan, u, p, search, leaf_alive):
      if leaf_alive is not None:  # frozen groups get no update, so they stay at 0
        u = jnp.where(leaf_alive, u, jnp.zeros_like(u))
      search = restructured(search, projection.cold(p, **leaf_plan.options))

      def projected():
        target = (p + u).astype(p.dtype)
        result, new_search = projection.project(target, leaf_plan.amount, search,
                                                **leaf_plan.options)
        new_alive = leaf_alive
        if leaf_alive is not None:
          new_alive = leaf_alive & _surviving(result, leaf_plan.options.get("axis"))
        return _Projected((result - p).astype(u.dtype), new_search, new_alive)

      if isinstance(every, int) and every == 1:
        return projected()
      # Not optax.conditionally_transform: with freeze_dead the mask above
      # must also apply on the steps that do not project.
      return lax.cond(count % every == 0, projected,
                      lambda: _Projected(u, search, leaf_alive))

    alive = state.alive if freeze_dead else map_planned(nothing, plans, unplanned=nothing)
    results = map_planned(step, plans, updates, params, state.searches, alive,
                          unplanned=lambda u, *_: _Projected(u, None, None))
    field = lambda i: jax.tree.map(lambda r: r[i], results,
                                   is_leaf=lambda v: isinstance(v, _Projected))
    new_state = ProjectionState(count=count, searches=field(1),
                                alive=field(2) if freeze_dead else None)
    return field(0), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def project_l1(eta: Eta = None, *, keep: Eta = None, every: int = 1, freeze_dead: bool = False,
               method: str = "auto") -> optax.GradientTransformationExtraArgs:
  r"""Projects each selected leaf onto the ℓ1 ball (the paper's "PGL1").

  .. math::

    w \leftarrow \underset{p:\ \|\operatorname{vec} p\|_1 \le \eta}
    {\operatorname{argmin}} \|p - (w + u)\|_2

  Unstructured: the zeros scatter over the matrix. See
  :func:`sparse_optax.projections.l1_ball`.

  Args:
    eta: the radius. A number (every leaf with ``ndim >= 2``), a pytree with
      the parameters' structure (``None`` skips a leaf) or a callable
      ``(path, leaf) -> number | None``. A negative number raises; a traced
      negative radius acts as 0.
    keep: instead of ``eta``, the fraction of groups (entries, for
      ``project_l1``) to keep: at each projection every selected leaf gets the
      radius under which exactly ``round(keep × its groups)`` survive (ties
      aside; :func:`sparse_optax.projections.keep_radius`), with the
      threshold read off its norms. A number, a pytree or a callable, as
      ``eta``; with ``freeze_dead`` a frozen group counts as removed.
    every: project on every ``every``-th update only (1 = every step).
    freeze_dead: keep every entry the projection zeroes at exactly 0 for the
      rest of training (each entry is its own group here).
    method: ``"auto"`` (default), ``"newton"`` or ``"sort"``, see
      :func:`sparse_optax.projections.l1_ball`.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`; its ``update`` needs
    ``params`` and it must come last in a chain: a transformation after it
    (an optimizer, a learning-rate scale) would move the parameters off the
    ball, and nothing inside ``optax.chain`` can tell the order.

  Example:
    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[3.0, -1.0], [0.5, 2.0]])}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_l1(eta=2.0))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[1.5, 0. ],
           [0. , 0.5]], dtype=float32)
  """
  validation.method(method, "project_l1")
  return _projecting_transform("project_l1", projections.warm.l1_ball, eta, every=every,
                               freeze_dead=freeze_dead, grouped=False, keep=keep, method=method)


def project_weighted_l1(eta: Eta, weights, *, every: int = 1, freeze_dead: bool = False,
                        method: str = "auto") -> optax.GradientTransformationExtraArgs:
  r"""Projects each selected leaf onto the weighted ℓ1 ball.

  .. math::

    w \leftarrow \underset{p:\ \sum_i \omega_i |p_i| \le \eta}
    {\operatorname{argmin}} \|p - (w + u)\|_2

  See :func:`sparse_optax.projections.weighted_l1_ball`.

  Args:
    eta: the radius. A number (every leaf with ``ndim >= 2``), a pytree with
      the parameters' structure (``None`` skips a leaf) or a callable
      ``(path, leaf) -> number | None``. A negative number raises; a traced
      negative radius acts as 0.
    weights: the :math:`\omega`, a pytree with the parameters' structure
      (``None`` where a leaf is not projected) or a callable
      ``(path, leaf) -> array``; each array has its leaf's shape. A weight of
      0 leaves its entry unconstrained.
    every: project on every ``every``-th update only (1 = every step).
    freeze_dead: keep every entry the projection zeroes at exactly 0 for the
      rest of training (each entry is its own group here).
    method: ``"auto"`` (default), ``"newton"`` or ``"sort"``, see
      :func:`sparse_optax.projections.l1_ball`.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`; its ``update`` needs
    ``params`` and it must come last in a chain: a transformation after it
    (an optimizer, a learning-rate scale) would move the parameters off the
    ball, and nothing inside ``optax.chain`` can tell the order.

  Example:
    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[3.0, 3.0], [1.0, 1.0]])}
    >>> weights = {"kernel": jnp.array([[1.0, 0.0], [1.0, 1.0]])}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_weighted_l1(2.0, weights))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[2., 3.],
           [0., 0.]], dtype=float32)
  """
  validation.method(method, "project_weighted_l1")
  return _projecting_transform("project_weighted_l1", projections.warm.weighted_l1_ball, eta,
                               every=every, freeze_dead=freeze_dead, grouped=False,
                               weights=weights, method=method)


def project_l21(eta: Eta = None, *, keep: Eta = None, groups: str = "in", axis=None, every: int = 1,
                freeze_dead: bool = False, method: str = "auto"
                ) -> optax.GradientTransformationExtraArgs:
  r"""Projects each selected leaf onto the ℓ2,1 (group-lasso) ball ("PGL21").

  .. math::

    w \leftarrow \underset{p:\ \sum_g \|p_g\|_2 \le \eta}
    {\operatorname{argmin}} \|p - (w + u)\|_2

  Whole groups vanish; the surviving ones are shrunk, not thinned. See
  :func:`sparse_optax.projections.l21_ball`.

  Args:
    eta: the radius. A number (every leaf with ``ndim >= 2``), a pytree with
      the parameters' structure (``None`` skips a leaf) or a callable
      ``(path, leaf) -> number | None``. A negative number raises; a traced
      negative radius acts as 0.
    keep: instead of ``eta``, the fraction of groups (entries, for
      ``project_l1``) to keep: at each projection every selected leaf gets the
      radius under which exactly ``round(keep × its groups)`` survive (ties
      aside; :func:`sparse_optax.projections.keep_radius`), with the
      threshold read off its norms. A number, a pytree or a callable, as
      ``eta``; with ``freeze_dead`` a frozen group counts as removed.
    groups: ``"in"`` (one group per input feature: axis -2 of a Flax kernel
      is kept), ``"out"`` (one group per output neuron or filter),
      ``"heads"`` (one group per attention head), or a pytree or callable of
      per-leaf groups (a name, the axes reduced inside
      a group, or ``None``), e.g. from
      :func:`sparse_optax.structure.groups_of`.
    axis: the axes reduced inside one group, for every selected leaf;
      overrides ``groups``.
    every: project on every ``every``-th update only (1 = every step).
    freeze_dead: keep every group the projection zeroes at exactly 0 for the
      rest of training.
    method: the search for the ℓ1 thresholds, ``"auto"``, ``"newton"`` or
      ``"sort"``; see :func:`sparse_optax.projections.l1_ball`.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`; its ``update`` needs
    ``params`` and it must come last in a chain: a transformation after it
    (an optimizer, a learning-rate scale) would move the parameters off the
    ball, and nothing inside ``optax.chain`` can tell the order.

  Example:
    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[3.0, 4.0], [0.6, 0.8]])}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_l21(eta=2.5))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[1.5, 2. ],
           [0. , 0. ]], dtype=float32)
  """
  validation.method(method, "project_l21")
  return _projecting_transform("project_l21", projections.warm.l21_ball, eta, every=every,
                               freeze_dead=freeze_dead, grouped=True, groups=groups, axis=axis,
                               keep=keep, method=method)


def project_l11(eta: Eta = None, *, keep: Eta = None, groups: str = "in", axis=None, every: int = 1,
                freeze_dead: bool = False, method: str = "auto"
                ) -> optax.GradientTransformationExtraArgs:
  r"""Applies the bilevel ℓ1,1 projection to each selected leaf ("PGL11", the paper's method).

  .. math::

    t = \operatorname{proj}_{\ell_1}\big((\|v_g\|_1)_g, \eta\big), \quad
    w_g \leftarrow \operatorname{proj}_{\ell_1}(v_g, t_g), \quad v = w + u

  Whole groups vanish (Barlaud & Guyard, ICPR 2020, Algorithm 3) and the
  surviving ones are thinned. Every step after Adam (Algorithm 1) keeps the
  total inside the ball but seldom keeps a group at zero: Adam's next step
  regrows it. ``freeze_dead=True`` or :func:`sparse_optax.lottery_ticket`
  remove groups for good. See :func:`sparse_optax.projections.l11_ball`.

  Args:
    eta: the radius. A number (every leaf with ``ndim >= 2``), a pytree with
      the parameters' structure (``None`` skips a leaf) or a callable
      ``(path, leaf) -> number | None``. A negative number raises; a traced
      negative radius acts as 0.
    keep: instead of ``eta``, the fraction of groups (entries, for
      ``project_l1``) to keep: at each projection every selected leaf gets the
      radius under which exactly ``round(keep × its groups)`` survive (ties
      aside; :func:`sparse_optax.projections.keep_radius`), with the
      threshold read off its norms. A number, a pytree or a callable, as
      ``eta``; with ``freeze_dead`` a frozen group counts as removed.
    groups: ``"in"`` (one group per input feature: axis -2 of a Flax kernel
      is kept), ``"out"`` (one group per output neuron or filter),
      ``"heads"`` (one group per attention head), or a pytree or callable of
      per-leaf groups (a name, the axes reduced inside
      a group, or ``None``), e.g. from
      :func:`sparse_optax.structure.groups_of`.
    axis: the axes reduced inside one group, for every selected leaf;
      overrides ``groups``.
    every: project on every ``every``-th update only (1 = every step).
    freeze_dead: keep every group the projection zeroes at exactly 0 for the
      rest of training; entries zeroed inside a surviving group are not
      frozen.
    method: the search for the ℓ1 thresholds, ``"auto"``, ``"newton"`` or
      ``"sort"``; see :func:`sparse_optax.projections.l1_ball`.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`; its ``update`` needs
    ``params`` and it must come last in a chain: a transformation after it
    (an optimizer, a learning-rate scale) would move the parameters off the
    ball, and nothing inside ``optax.chain`` can tell the order.

  Example:
    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[3.0, 1.0], [0.5, 0.5]]), "bias": jnp.ones(2)}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_l11(eta=2.0))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[2., 0.],
           [0., 0.]], dtype=float32)
  """
  validation.method(method, "project_l11")
  return _projecting_transform("project_l11", projections.warm.l11_ball, eta, every=every,
                               freeze_dead=freeze_dead, grouped=True, groups=groups, axis=axis,
                               keep=keep, method=method)


def project_l1inf(eta: Eta, *, groups: str = "in", axis=None, every: int = 1,
                  freeze_dead: bool = False) -> optax.GradientTransformationExtraArgs:
  r"""Projects each selected leaf onto the ℓ1,∞ ball (exact Euclidean projection).

  .. math::

    w \leftarrow \underset{p:\ \sum_g \max_i |p_{gi}| \le \eta}
    {\operatorname{argmin}} \|p - (w + u)\|_2

  See :func:`sparse_optax.projections.l1inf_ball`.

  Args:
    eta: the radius. A number (every leaf with ``ndim >= 2``), a pytree with
      the parameters' structure (``None`` skips a leaf) or a callable
      ``(path, leaf) -> number | None``. A negative number raises; a traced
      negative radius acts as 0.
    groups: ``"in"`` (one group per input feature: axis -2 of a Flax kernel
      is kept), ``"out"`` (one group per output neuron or filter),
      ``"heads"`` (one group per attention head), or a pytree or callable of
      per-leaf groups (a name, the axes reduced inside
      a group, or ``None``), e.g. from
      :func:`sparse_optax.structure.groups_of`.
    axis: the axes reduced inside one group, for every selected leaf;
      overrides ``groups``.
    every: project on every ``every``-th update only (1 = every step).
    freeze_dead: keep every group the projection zeroes at exactly 0 for the
      rest of training.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`; its ``update`` needs
    ``params`` and it must come last in a chain: a transformation after it
    (an optimizer, a learning-rate scale) would move the parameters off the
    ball, and nothing inside ``optax.chain`` can tell the order.

  Example:
    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[4.0, 4.0], [3.0, 0.0]])}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_l1inf(eta=4.0))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[3., 3.],
           [1., 0.]], dtype=float32)
  """
  return _projecting_transform("project_l1inf", projections.warm.l1inf_ball, eta, every=every,
                               freeze_dead=freeze_dead, grouped=True, groups=groups, axis=axis)


def project_bilevel_l1inf(eta: Eta = None, *, keep: Eta = None, groups: str = "in", axis=None, every: int = 1,
                          freeze_dead: bool = False, method: str = "auto"
                          ) -> optax.GradientTransformationExtraArgs:
  r"""Applies the bilevel ℓ1,∞ projection to each selected leaf (linear time).

  .. math::

    m = \operatorname{proj}_{\ell_1}\big((\max_i |v_{gi}|)_g, \eta\big), \quad
    w_{gi} \leftarrow \operatorname{sign}(v_{gi}) \min(|v_{gi}|, m_g), \quad v = w + u

  See :func:`sparse_optax.projections.bilevel_l1inf_ball`.

  Args:
    eta: the radius. A number (every leaf with ``ndim >= 2``), a pytree with
      the parameters' structure (``None`` skips a leaf) or a callable
      ``(path, leaf) -> number | None``. A negative number raises; a traced
      negative radius acts as 0.
    keep: instead of ``eta``, the fraction of groups (entries, for
      ``project_l1``) to keep: at each projection every selected leaf gets the
      radius under which exactly ``round(keep × its groups)`` survive (ties
      aside; :func:`sparse_optax.projections.keep_radius`), with the
      threshold read off its norms. A number, a pytree or a callable, as
      ``eta``; with ``freeze_dead`` a frozen group counts as removed.
    groups: ``"in"`` (one group per input feature: axis -2 of a Flax kernel
      is kept), ``"out"`` (one group per output neuron or filter),
      ``"heads"`` (one group per attention head), or a pytree or callable of
      per-leaf groups (a name, the axes reduced inside
      a group, or ``None``), e.g. from
      :func:`sparse_optax.structure.groups_of`.
    axis: the axes reduced inside one group, for every selected leaf;
      overrides ``groups``.
    every: project on every ``every``-th update only (1 = every step).
    freeze_dead: keep every group the projection zeroes at exactly 0 for the
      rest of training.
    method: the search for the ℓ1 thresholds, ``"auto"``, ``"newton"`` or
      ``"sort"``; see :func:`sparse_optax.projections.l1_ball`.

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`; its ``update`` needs
    ``params`` and it must come last in a chain: a transformation after it
    (an optimizer, a learning-rate scale) would move the parameters off the
    ball, and nothing inside ``optax.chain`` can tell the order.

  Example:
    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[4.0, 4.0], [3.0, 0.0]])}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_bilevel_l1inf(eta=4.0))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[2.5, 2.5],
           [1.5, 0. ]], dtype=float32)
  """
  validation.method(method, "project_bilevel_l1inf")
  return _projecting_transform("project_bilevel_l1inf", projections.warm.bilevel_l1inf_ball, eta,
                               every=every, freeze_dead=freeze_dead, grouped=True,
                               groups=groups, axis=axis, keep=keep, method=method)


def apply_mask(mask) -> optax.GradientTransformation:
  """Zeroes the updates wherever ``mask`` is False.

  Placed last in a chain, it keeps masked parameters exactly at their value
  whatever comes before it (Adam's moments, momentum, weight decay): this is
  the retraining stage of the lottery (Algorithm 4).

  Args:
    mask: a pytree with the parameters' structure whose leaves are boolean
      arrays (True = trainable) of their leaf's shape, or ``None`` to leave a
      leaf unmasked.

  Returns:
    An :class:`optax.GradientTransformation` with an empty state.

  Example:
    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"w": jnp.array([1.0, 2.0])}
    >>> tx = optax.chain(optax.sgd(0.1), sparse_optax.apply_mask({"w": jnp.array([True, False])}))
    >>> updates, _ = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    >>> updates["w"]
    Array([-0.1,  0. ], dtype=float32)
  """
  def init_fn(params):
    per_leaf(mask, params, name="apply_mask", what="mask", default=lambda leaf: True)
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    masks = per_leaf(mask, updates, name="apply_mask", what="mask", default=lambda leaf: True)
    treedef = jax.tree.structure(updates)
    return masked(updates, jax.tree_util.tree_unflatten(treedef, masks)), state

  return optax.GradientTransformation(init_fn, update_fn)
