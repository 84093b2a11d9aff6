"""Which leaves of a parameter tree a transformation touches, how they group, what survives.

The Optax transformations, the lottery, magnitude pruning and the
regularizers all select leaves the same way (a number, a pytree or a
callable ``(path, leaf)``: :func:`per_leaf`), group a kernel the same way
(:func:`group_axes`) and mask the same way (:func:`masked`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sparse_optax.projections import validation

# The named groupings of a kernel: one group per input feature or channel
# (axis -2 kept), per output neuron or filter (the last axis kept), or per
# attention head (see group_axes).
GROUPS = ("in", "out", "heads")
# nnx.MultiHeadAttention's projections and the axis of their kernels that
# indexes the heads: (in, heads, head_dim) and (heads, head_dim, out).
HEAD_AXES = {"query": 1, "key": 1, "value": 1, "out": 0}


def is_kernel(leaf) -> bool:
  """The default selection: weight matrices and conv kernels, not biases."""
  return np.ndim(leaf) >= 2


def per_leaf(spec, params, *, name: str, what: str, default=is_kernel,
             is_leaf=lambda v: v is None) -> list:
  """Resolves ``spec`` into one value per leaf of ``params`` (None = skip).

  ``spec`` is a scalar (applied to every leaf for which ``default(leaf)``), a
  callable ``(path, leaf) -> value | None``, or a pytree with the structure of
  ``params`` whose ``None`` leaves skip. A spec leaf may stand for a wrapped
  parameter (e.g. a Flax ``Variable`` around the array): its path need only
  be a prefix of the parameter's.
  """
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  if validation.is_scalar(spec) or isinstance(spec, bool):
    return [spec if default(leaf) else None for _, leaf in flat]
  if callable(spec):
    return [spec(path, leaf) for path, leaf in flat]
  spec_flat, _ = jax.tree_util.tree_flatten_with_path(spec, is_leaf=is_leaf)
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


class LeafPlan(NamedTuple):
  """What a transformation does to one selected leaf.

  Attributes:
    amount: the number resolved for the leaf (a radius, a count of groups).
    options: the keyword arguments of the leaf's function (its group axes...).
  """

  amount: Any
  options: dict


def _is_plan(value) -> bool:
  return value is None or isinstance(value, LeafPlan)


def leaf_plans(params, resolve: Callable[..., LeafPlan | None], *values: list):
  """``resolve(path, leaf, *its values)`` on every leaf, in ``params``' structure.

  Args:
    params: the parameters.
    resolve: returns the leaf's :class:`LeafPlan`, or None to leave it alone.
    *values: lists with one value per leaf, as :func:`per_leaf` returns them.
  """
  treedef = jax.tree.structure(params)
  return jax.tree_util.tree_map_with_path(
      resolve, params, *(jax.tree.unflatten(treedef, column) for column in values))


def map_planned(fn: Callable, plans, *trees, unplanned: Callable = lambda leaf, *_: leaf):
  """``fn(plan, *leaves)`` where a leaf has a plan, ``unplanned(*leaves)`` elsewhere.

  ``trees`` have ``plans``' structure down to its leaves; theirs may be whole
  subtrees there (a search state), or None.
  """
  return jax.tree.map(
      lambda plan, *leaves: unplanned(*leaves) if plan is None else fn(plan, *leaves),
      plans, *trees, is_leaf=_is_plan)


def check_groups(groups, name: str) -> None:
  """Refuses a grouping that is not one of :data:`GROUPS`."""
  if groups not in GROUPS:
    raise ValueError(f"{name}: groups must be one of {GROUPS}, got {groups!r}.")


def _module_name(path) -> str:
  names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
  if names and names[-1] == "value":
    names = names[:-1]
  return names[-2] if len(names) >= 2 else ""


def group_axes(leaf_shape, groups, axis, path, name) -> tuple[int, ...] | int:
  """The axes reduced inside one group of a leaf (``groups``: a name or those axes).

  ``"in"`` keeps axis -2, ``"out"`` the last axis; ``"heads"`` keeps the
  heads axis of the kernels of Flax's ``nnx.MultiHeadAttention`` (axis 1 of
  ``query``, ``key`` and ``value``, axis 0 of ``out``) and refuses others.
  """
  if axis is not None:
    if isinstance(axis, jax.core.Tracer):
      raise TypeError(
          f"{name}: axis must be static; with optax.inject_hyperparams pass "
          "static_args=('axis', 'every', 'freeze_dead').")
    return axis
  if isinstance(groups, tuple):
    return groups
  if groups not in GROUPS:
    raise ValueError(f"{name}: groups must be one of {GROUPS}, a tuple of axes or None, "
                     f"got {groups!r} for {jax.tree_util.keystr(path)}.")
  ndim = len(leaf_shape)
  if ndim < 2:
    raise ValueError(
        f"{name}: the leaf {jax.tree_util.keystr(path)} has shape "
        f"{tuple(leaf_shape)}: groups={groups!r} needs a kernel with at least 2 "
        "dimensions. Give it eta=None, or an explicit axis=.")
  if groups == "heads":
    module = _module_name(path)
    if module not in HEAD_AXES or ndim != 3:
      raise ValueError(
          f"{name}: groups='heads' needs the 3-d kernel of an attention projection "
          f"named {', '.join(HEAD_AXES)}, got {jax.tree_util.keystr(path)} of shape "
          f"{tuple(leaf_shape)}. Give this leaf groups=None, or an explicit axis.")
    kept = HEAD_AXES[module]
  else:
    kept = ndim - 2 if groups == "in" else ndim - 1
  return tuple(ax for ax in range(ndim) if ax != kept)


def leaf_axes(leaf, groups, axis, path, fn_name):
  """The group axes of one pytree leaf, from ``groups="in"``/``"out"`` or ``axis``."""
  check_groups(groups, fn_name)
  axes = group_axes(np.shape(leaf), groups, axis, path, fn_name)
  return validation.group_axes(axes, np.ndim(leaf), f"{fn_name} ({jax.tree_util.keystr(path)})")


def masked(tree, mask):
  """``tree`` with zeros where ``mask`` is False; a ``None`` mask leaf leaves its leaf."""
  return jax.tree.map(lambda m, t: t if m is None else jnp.where(m, t, jnp.zeros_like(t)),
                      mask, tree, is_leaf=lambda m: m is None)


def restructured(tree, like):
  """``tree``'s leaves in the structure of ``like``.

  Flax NNX hands a state back with its tuples turned into dicts of the same
  leaves (an optimizer state kept by ``nnx.Optimizer``, a restored
  checkpoint); this puts them back in the structure the code built.

  Example:
    >>> restructured({0: 1.0, 1: 2.0}, (0.0, 0.0))
    (1.0, 2.0)
  """
  return jax.tree.unflatten(jax.tree.structure(like), jax.tree.leaves(tree))
