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
  channel. ``groups="out"``: one group per output neuron or filter. An explicit
  ``axis=`` (the axes reduced inside a group, as in
  :mod:`sparse_optax.projections`) overrides both.
* ``every=k``: project on every k-th step only (``k = 1`` is Algorithm 1).
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from sparse_optax import projections
from sparse_optax.projections import _checks
from sparse_optax.projections import _groups
from sparse_optax.projections import _l1
from sparse_optax.projections import _l1inf
from sparse_optax.projections._warm import WarmStart

Eta = Any  # a number, a pytree of numbers/None matching params, or a callable
GROUPS = ("in", "out")


class ProjectionState(NamedTuple):
  """State of a projecting transformation.

  Attributes:
    count: the number of updates so far.
    searches: per projected leaf, where its threshold search ended at the last
      projection (``None`` for the other leaves). Consecutive steps project
      nearby points, so the next search starts there and needs fewer passes.
  """

  count: jax.Array
  searches: Any


def is_kernel(leaf) -> bool:
  """The default selection: weight matrices and conv kernels, not biases."""
  return np.ndim(leaf) >= 2


def _is_scalar(value) -> bool:
  if isinstance(value, bool):
    return False
  return isinstance(value, numbers.Number) or (
      isinstance(value, (jax.Array, np.ndarray, np.generic)) and np.ndim(value) == 0)


def per_leaf(spec, params, *, name: str, what: str, default=is_kernel) -> list:
  """Resolves ``spec`` into one value per leaf of ``params`` (None = skip).

  ``spec`` is a scalar (applied to every leaf for which ``default(leaf)``), a
  callable ``(path, leaf) -> value | None``, or a pytree with the structure of
  ``params`` whose ``None`` leaves skip. A spec leaf may stand for a wrapped
  parameter (e.g. a Flax ``Variable`` around the array): its path need only
  be a prefix of the parameter's.
  """
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  if _is_scalar(spec) or isinstance(spec, bool):
    return [spec if default(leaf) else None for _, leaf in flat]
  if callable(spec):
    return [spec(path, leaf) for path, leaf in flat]
  spec_flat, _ = jax.tree_util.tree_flatten_with_path(spec, is_leaf=lambda v: v is None)
  keys = lambda path: tuple(str(k) for k in path)
  mismatched = [(spec_path, param_path) for (spec_path, _), (param_path, _) in zip(spec_flat, flat)
                if keys(spec_path) != keys(param_path)[:len(spec_path)]]
  if len(spec_flat) != len(flat) or mismatched:
    detail = (f"{len(spec_flat)} leaves for {len(flat)} parameters" if len(spec_flat) != len(flat)
              else f"{jax.tree_util.keystr(mismatched[0][0])} where the parameters have "
                   f"{jax.tree_util.keystr(mismatched[0][1])}")
    raise ValueError(
        f"{name}: the {what} pytree does not match the parameters ({detail}). Give a "
        f"number, a callable (path, leaf) -> value or None, or a pytree with the "
        f"parameters' structure (None leaves a leaf alone).")
  return [value for _, value in spec_flat]


def _check_radius(radius, path, name):
  if radius is None:
    return
  if not _is_scalar(radius):
    raise ValueError(
        f"{name}: eta for {jax.tree_util.keystr(path)} must be a number or None, "
        f"got {radius!r}.")
  if not isinstance(radius, jax.core.Tracer) and float(radius) < 0:
    raise ValueError(
        f"{name}: eta must be >= 0, got {radius} for {jax.tree_util.keystr(path)}.")


def _check_every(every, name):
  if isinstance(every, jax.core.Tracer):
    return
  if isinstance(every, bool) or int(every) != every or every < 1:
    raise ValueError(f"{name}: every must be a positive integer, got {every!r}.")


def group_axes(leaf_shape, groups: str, axis, path, name) -> tuple[int, ...] | int:
  """The axes reduced inside one group of a leaf."""
  if axis is not None:
    if isinstance(axis, jax.core.Tracer):
      raise TypeError(
          f"{name}: axis must be static; with optax.inject_hyperparams pass "
          "static_args=('axis', 'every').")
    return axis
  ndim = len(leaf_shape)
  if ndim < 2:
    raise ValueError(
        f"{name}: the leaf {jax.tree_util.keystr(path)} has shape "
        f"{tuple(leaf_shape)}: groups={groups!r} needs a kernel with at least 2 "
        "dimensions. Give it eta=None, or an explicit axis=.")
  kept = ndim - 2 if groups == "in" else ndim - 1
  return tuple(ax for ax in range(ndim) if ax != kept)


_FACTORY_ARGS = """
  Args:
    eta: the radius. A number (every leaf with ``ndim >= 2``), a pytree with
      the parameters' structure (``None`` skips a leaf) or a callable
      ``(path, leaf) -> number | None``. A negative number raises; a traced
      negative radius acts as 0.
    every: project on every ``every``-th update only (1 = every step).{extra}

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`; its ``update`` needs
    ``params`` and it must come last in a chain.
"""

_GROUP_ARGS = """
    groups: ``"in"`` (one group per input feature: axis -2 of a Flax kernel
      is kept) or ``"out"`` (one group per output neuron or filter).
    axis: the axes reduced inside one group, for every selected leaf;
      overrides ``groups``."""

_METHOD_ARG = """
    method: ``"newton"`` or ``"sort"``, see :func:`sparse_optax.projections.l1_ball`."""

_WEIGHTS_ARG = """
    weights: the :math:`\\omega`, a pytree with the parameters' structure
      (``None`` where a leaf is not projected) or a callable
      ``(path, leaf) -> array``; each array has its leaf's shape.""" + _METHOD_ARG


def _projecting_transform(name: str, projection: WarmStart, eta: Eta, *, every,
                          grouped: bool, groups: str = "in", axis=None, weights=None,
                          **options) -> optax.GradientTransformationExtraArgs:
  """The shared machinery: resolve leaves, project ``params + updates``."""
  if grouped and groups not in GROUPS:
    raise ValueError(f"{name}: groups must be one of {GROUPS}, got {groups!r}.")
  _check_every(every, name)
  if _is_scalar(eta):
    _check_radius(eta, (), name)

  def plan(params):
    """Per leaf: None to skip, else (radius, keyword arguments of the projection)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    radii = per_leaf(eta, params, name=name, what="eta")
    leaf_weights = (per_leaf(weights, params, name=name, what="weights",
                             default=lambda leaf: True)
                    if weights is not None else [None] * len(flat))
    steps = []
    for (path, leaf), radius, w in zip(flat, radii, leaf_weights):
      _check_radius(radius, path, name)
      if radius is None or np.size(leaf) == 0:
        steps.append(None)
        continue
      _checks.float_array(leaf, f"{name} ({jax.tree_util.keystr(path)})")
      kwargs = dict(options)
      if grouped:
        axes = group_axes(np.shape(leaf), groups, axis, path, name)
        kwargs["axis"] = _checks.group_axes(axes, np.ndim(leaf), f"{name} ({jax.tree_util.keystr(path)})")
      if weights is not None:
        if w is None:
          raise ValueError(f"{name}: no weights for {jax.tree_util.keystr(path)}.")
        kwargs["weights"] = _checks.weights(w, np.shape(leaf), name)
      steps.append((radius, kwargs))
    return steps

  def init_fn(params):
    searches = [None if step is None else projection.cold(leaf, **step[1])
                for step, leaf in zip(plan(params), jax.tree.leaves(params))]
    return ProjectionState(count=jnp.zeros([], jnp.int32), searches=searches)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError(
          f"{name} needs the parameters: call update(updates, state, params). "
          "It projects params + updates, so it must be the last "
          "transformation of the chain, e.g. optax.chain(optax.adam(lr), "
          f"sparse_optax.{name}(eta)).")
    count = optax.safe_int32_increment(state.count)
    flat_updates, treedef = jax.tree_util.tree_flatten(updates)
    flat_params = treedef.flatten_up_to(params)
    new_updates, searches = [], []
    for step, u, p, search in zip(plan(params), flat_updates, flat_params, state.searches):
      if step is None:
        new_updates.append(u)
        searches.append(None)
        continue
      radius, kwargs = step

      def projected(u=u, p=p, radius=radius, kwargs=kwargs, search=search):
        target = (p + u).astype(p.dtype)
        result, search = projection.project(target, radius, search, **kwargs)
        return (result - p).astype(u.dtype), search

      if isinstance(every, int) and every == 1:
        u, search = projected()
      else:
        u, search = lax.cond(count % every == 0, projected, lambda u=u, s=search: (u, s))
      new_updates.append(u)
      searches.append(search)
    new_state = ProjectionState(count=count, searches=searches)
    return jax.tree_util.tree_unflatten(treedef, new_updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def project_l1(eta: Eta, *, every: int = 1,
               method: str = "newton") -> optax.GradientTransformationExtraArgs:
  r"""Projects each selected leaf onto the ℓ1 ball (the paper's "PGL1").

  .. math::

    w \leftarrow \underset{p:\ \|\operatorname{vec} p\|_1 \le \eta}
    {\operatorname{argmin}} \|p - (w + u)\|_2

  Unstructured: the zeros scatter over the matrix.
{args}
  Example:
    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[3.0, -1.0], [0.5, 2.0]])}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_l1(eta=2.0))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[1.5, 0. ],
           [0. , 0.5]], dtype=float32)
  """
  _checks.method(method, "project_l1")
  return _projecting_transform("project_l1", _l1.L1_BALL, eta, every=every,
                               grouped=False, method=method)


project_l1.__doc__ = project_l1.__doc__.replace("{args}", _FACTORY_ARGS.format(extra=_METHOD_ARG))


def project_weighted_l1(eta: Eta, weights, *, every: int = 1,
                        method: str = "newton") -> optax.GradientTransformationExtraArgs:
  r"""Projects each selected leaf onto the weighted ℓ1 ball.

  .. math::

    w \leftarrow \underset{p:\ \sum_i \omega_i |p_i| \le \eta}
    {\operatorname{argmin}} \|p - (w + u)\|_2
{args}
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
  _checks.method(method, "project_weighted_l1")
  return _projecting_transform("project_weighted_l1", _l1.WEIGHTED_L1_BALL, eta,
                               every=every, grouped=False, weights=weights, method=method)


project_weighted_l1.__doc__ = project_weighted_l1.__doc__.replace(
    "{args}", _FACTORY_ARGS.format(extra=_WEIGHTS_ARG))


def _grouped_factory(name, projection, warm, summary, math, example):
  def factory(eta: Eta, *, groups: str = "in", axis=None,
              every: int = 1) -> optax.GradientTransformationExtraArgs:
    return _projecting_transform(name, warm, eta, every=every, grouped=True,
                                 groups=groups, axis=axis)

  factory.__name__ = factory.__qualname__ = name
  factory.__doc__ = (f"{summary}\n\n  .. math::\n\n    {math}\n\n"
                     f"  See :func:`sparse_optax.projections.{projection.__name__}`.\n"
                     + _FACTORY_ARGS.format(extra=_GROUP_ARGS) + f"\n  Example:\n{example}")
  return factory


project_l21 = _grouped_factory(
    "project_l21", projections.l21_ball, _groups.L21_BALL,
    "Projects each selected leaf onto the ℓ2,1 (group-lasso) ball (\"PGL21\").",
    r"w \leftarrow \underset{p:\ \sum_g \|p_g\|_2 \le \eta}{\operatorname{argmin}} \|p - (w + u)\|_2",
    """    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[3.0, 4.0], [0.6, 0.8]])}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_l21(eta=2.5))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[1.5, 2. ],
           [0. , 0. ]], dtype=float32)
""")

project_l11 = _grouped_factory(
    "project_l11", projections.l11_ball, _groups.L11_BALL,
    "Applies the bilevel ℓ1,1 projection to each selected leaf (\"PGL11\", the paper's method).",
    r"t = \operatorname{proj}_{\ell_1}((\|v_g\|_1)_g, \eta), \quad "
    r"w_g \leftarrow \operatorname{proj}_{\ell_1}(v_g, t_g), \quad v = w + u",
    """    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[3.0, 1.0], [0.5, 0.5]]), "bias": jnp.ones(2)}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_l11(eta=2.0))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[2., 0.],
           [0., 0.]], dtype=float32)
""")

project_l1inf = _grouped_factory(
    "project_l1inf", projections.l1inf_ball, _l1inf.L1INF_BALL,
    "Projects each selected leaf onto the ℓ1,∞ ball (exact Euclidean projection).",
    r"w \leftarrow \underset{p:\ \sum_g \max_i |p_{gi}| \le \eta}{\operatorname{argmin}} \|p - (w + u)\|_2",
    """    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[4.0, 4.0], [3.0, 0.0]])}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_l1inf(eta=4.0))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[3., 3.],
           [1., 0.]], dtype=float32)
""")

project_bilevel_l1inf = _grouped_factory(
    "project_bilevel_l1inf", projections.bilevel_l1inf_ball, _l1inf.BILEVEL_L1INF_BALL,
    "Applies the bilevel ℓ1,∞ projection to each selected leaf (linear time).",
    r"u = \operatorname{proj}_{\ell_1}((\max_i |v_{gi}|)_g, \eta), \quad "
    r"w_{gi} \leftarrow \operatorname{sign}(v_{gi}) \min(|v_{gi}|, u_g)",
    """    >>> import jax.numpy as jnp, optax, sparse_optax
    >>> params = {"kernel": jnp.array([[4.0, 4.0], [3.0, 0.0]])}
    >>> tx = optax.chain(optax.sgd(0.0), sparse_optax.project_bilevel_l1inf(eta=4.0))
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> optax.apply_updates(params, updates)["kernel"]
    Array([[2.5, 2.5],
           [1.5, 0. ]], dtype=float32)
""")


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
    flat, treedef = jax.tree_util.tree_flatten(updates)
    masks = per_leaf(mask, updates, name="apply_mask", what="mask", default=lambda leaf: True)
    masked = [u if m is None else jnp.where(m, u, jnp.zeros_like(u)) for m, u in zip(masks, flat)]
    return jax.tree_util.tree_unflatten(treedef, masked), state

  return optax.GradientTransformation(init_fn, update_fn)
