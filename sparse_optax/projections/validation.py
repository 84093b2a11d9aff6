"""Trace-time validation of the static inputs of the projections.

Every check here runs in Python while JAX traces, so a bad call fails at once
with a message that says what to change, instead of deep inside XLA.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

METHODS = ("auto", "newton", "sort")


def float_array(x, fn_name: str) -> jax.Array:
  """Returns ``x`` as a JAX array, raising ``TypeError`` unless it is real floating."""
  dtype = jnp.result_type(x)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(
        f"{fn_name} projects real floating-point arrays, got dtype {dtype}. "
        "Cast the input first, e.g. x.astype(jnp.float32)."
    )
  return jnp.asarray(x)


def float_leaves(tree, fn_name: str) -> list:
  """The leaves of a pytree, raising ``TypeError`` unless all are real floating."""
  leaves = jax.tree.leaves(tree)
  for leaf in leaves:
    float_array(leaf, fn_name)
  return leaves


def single_array(x, fn_name: str) -> jax.Array:
  """``x`` as one real floating array; a list, tuple, dict or other pytree raises.

  The group balls constrain one matrix at a time: stacking a sequence into one
  array would silently change which entries form a group.
  """
  if not isinstance(x, (jax.Array, np.ndarray, np.generic, numbers.Number)):
    raise TypeError(
        f"{fn_name} projects one array, got a {type(x).__name__}. To project "
        f"every array of a pytree, use jax.tree.map(lambda v: {fn_name}(v, r), tree)."
    )
  return float_array(x, fn_name)


def compute_dtype(dtype) -> np.dtype:
  """The dtype the maths runs in: float32 for 16-bit floats, else ``dtype``.

  Half-precision sums over thousands of entries lose the threshold entirely, so
  16-bit inputs are accumulated in float32 and cast back.
  """
  if jnp.finfo(dtype).bits < 32:
    return np.dtype(jnp.float32)
  return np.dtype(dtype)


def is_scalar(value) -> bool:
  """A Python or NumPy number, or a 0-d array (traced or not); not a bool."""
  if isinstance(value, bool):
    return False
  return isinstance(value, numbers.Number) or (
      isinstance(value, (jax.Array, np.ndarray, np.generic)) and np.ndim(value) == 0)


def _is_concrete(value) -> bool:
  return not isinstance(value, jax.core.Tracer)


def radius(value, fn_name: str, name: str = "radius") -> jax.Array:
  """Checks a radius: a scalar; if known at trace time, a number >= 0 (not NaN).

  A traced radius is not checked: a negative one acts as 0, a NaN one gives
  NaN out (:data:`NON_FINITE`).
  """
  if np.ndim(value) != 0:
    raise ValueError(
        f"{fn_name}: {name} must be a scalar, got shape {np.shape(value)}. "
        "To project a batch with one radius each, use jax.vmap."
    )
  if isinstance(value, numbers.Number) or _is_concrete(value):
    if not isinstance(value, numbers.Number):
      dtype = jnp.result_type(value)
      if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{fn_name}: {name} must be real, got dtype {dtype}.")
    number = float(np.real(np.asarray(value)))
    if np.isnan(number):
      raise ValueError(f"{fn_name}: {name} is NaN; give a number >= 0.")
    if number < 0:
      raise ValueError(
          f"{fn_name}: {name} must be >= 0, got {value}. A radius of 0 "
          "projects onto the origin; a traced negative radius behaves as 0."
      )
  return value


# One convention for values that are not numbers, shared by every projection.
NON_FINITE = """\
A NaN or infinite entry of ``x`` makes the whole result NaN, since every entry
depends on it through the shared threshold or norm; the ℓ∞ box alone works
entry by entry (NaN stays in its entry, ±∞ is clipped), and the simplex takes
``-inf`` as a valid entry (it gets 0). A traced NaN radius gives NaN
everywhere; a concrete one raises. An infinite radius leaves ``x`` unchanged
(the ℓ1 sphere and the simplex, which have no point at infinity, give NaN).
"""


def non_finite_factor(total, r, dtype=None):
  """1, or NaN when ``total`` (a sum over x) is not finite or ``r`` is NaN.

  A projection multiplies its output by it (exact for 1): a product, not a
  select, which XLA's CPU backend vectorises inside the output loop (a select
  there made ``l21_ball`` at 4096×1024 1.9× slower). ``total`` is a reduction
  the projection computes anyway, so the check reads no entry twice.
  """
  valid = jnp.isfinite(total) & ~jnp.isnan(r)
  return jnp.where(valid, 1, jnp.nan).astype(dtype or jnp.result_type(total))


def poison_non_finite(result, total, r):
  """``result``, or NaN everywhere when ``total`` or ``r`` is not a number (:data:`NON_FINITE`)."""
  return result * non_finite_factor(total, r, result.dtype)


def fraction(value, fn_name: str, name: str = "fraction"):
  """A scalar; when known at trace time, a number in [0, 1]."""
  if np.ndim(value) != 0:
    raise ValueError(f"{fn_name}: {name} must be a scalar, got shape {np.shape(value)}.")
  if _is_concrete(value) and not 0 <= float(value) <= 1:
    raise ValueError(f"{fn_name}: {name} must be in [0, 1], got {value}.")
  return value


def method(value: str, fn_name: str) -> str:
  if value not in METHODS:
    raise ValueError(
        f"{fn_name}: method must be one of {METHODS}, got {value!r}."
    )
  return value


def group_axes(axis: int | Sequence[int], ndim: int, fn_name: str) -> tuple[int, ...]:
  """Normalises ``axis`` (reduced inside one group) to sorted non-negative ints."""
  axes = (axis,) if isinstance(axis, (numbers.Integral, np.integer)) else axis
  try:
    axes = tuple(axes)
  except TypeError:
    raise TypeError(
        f"{fn_name}: axis must be an int or a tuple of ints, got {axis!r}."
    ) from None
  normalised = []
  for ax in axes:
    if not isinstance(ax, (numbers.Integral, np.integer)) or isinstance(ax, bool):
      raise TypeError(
          f"{fn_name}: axis must be an int or a tuple of ints, got {axis!r}."
      )
    if not -ndim <= ax < ndim:
      raise ValueError(
          f"{fn_name}: axis {ax} is out of range for an array of {ndim} "
          f"dimension(s); valid axes are {-ndim}..{ndim - 1}."
      )
    normalised.append(int(ax) % ndim)
  if len(set(normalised)) != len(normalised):
    raise ValueError(f"{fn_name}: axis {axis!r} names the same axis twice.")
  return tuple(sorted(normalised))


def weights(value, shape: tuple[int, ...], fn_name: str) -> jax.Array:
  """Checks weights: same shape as x, real, and non-negative when concrete."""
  if np.shape(value) != tuple(shape):
    raise ValueError(
        f"{fn_name}: weights must have the shape of x, {tuple(shape)}, got "
        f"{np.shape(value)}."
    )
  dtype = jnp.result_type(value)
  if jnp.issubdtype(dtype, jnp.complexfloating):
    raise TypeError(f"{fn_name}: weights must be real, got dtype {dtype}.")
  if _is_concrete(value) and np.any(np.asarray(value) < 0):
    raise ValueError(
        f"{fn_name}: weights must be >= 0 (a weight of 0 leaves its entry "
        "unconstrained); got negative entries."
    )
  return jnp.asarray(value)


def tree_weights(value, tree, fn_name: str):
  """Checks weights for a pytree ``x``: the same structure, leaf by leaf as :func:`weights`.

  When ``x`` is one array, ``value`` may be anything array-like of its shape.
  """
  if jax.tree_util.treedef_is_leaf(jax.tree.structure(tree)):
    return weights(value, np.shape(tree), fn_name)
  if jax.tree.structure(value) != jax.tree.structure(tree):
    raise ValueError(
        f"{fn_name}: weights must have the pytree structure of x, "
        f"{jax.tree.structure(tree)}, got {jax.tree.structure(value)}."
    )
  return jax.tree.map(lambda w, leaf: weights(w, np.shape(leaf), fn_name), value, tree)



def vector_call(core, tree, r, fn_name: str, *args, solver: str | None = None):
  """Checks what the vector projections share, then ``core(tree, r, *args[, solver])``.

  ``solver`` is the ``method`` argument of those that have one. An empty
  pytree (no entries) comes back as it is.
  """
  leaves = float_leaves(tree, fn_name)
  radius(r, fn_name)
  if solver is not None:
    method(solver, fn_name)
  if sum(np.size(leaf) for leaf in leaves) == 0:
    return tree
  return core(tree, r, *args) if solver is None else core(tree, r, *args, method=solver)


def static_int(k, fn_name: str, minimum: int = 1) -> int:
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


def nonnegative(value, fn_name: str, what: str):
  """A scalar; when known at trace time, not negative."""
  if np.ndim(value) != 0:
    raise ValueError(f"{fn_name}: {what} must be a scalar, got shape {np.shape(value)}.")
  if not isinstance(value, jax.core.Tracer) and float(value) < 0:
    raise ValueError(f"{fn_name}: {what} must be >= 0, got {value}.")
  return value


def array_axes(x, axis, fn_name):
  """``axis`` normalised; ``None`` means every axis (the whole array is one group)."""
  if axis is None:
    return tuple(range(x.ndim))
  return group_axes(axis, x.ndim, fn_name)


def require_params(params, name: str, why: str) -> None:
  """The error of a transformation whose ``update`` was called without the parameters."""
  if params is None:
    raise ValueError(f"{name} needs the parameters: call update(updates, state, params); {why}")
