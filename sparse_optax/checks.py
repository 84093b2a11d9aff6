"""Static checks shared by the regularizers and magnitude pruning.

Each runs in Python while JAX traces, so a bad call fails at once with one
line that says what to change.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from sparse_optax import transforms
from sparse_optax.projections import validation


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


fraction = validation.fraction


def axes(x, axis, fn_name):
  """``axis`` normalised; ``None`` means every axis (the whole array is one group)."""
  if axis is None:
    return tuple(range(x.ndim))
  return validation.group_axes(axis, x.ndim, fn_name)


def leaf_axes(leaf, groups, axis, path, fn_name):
  """The group axes of one pytree leaf, from ``groups="in"``/``"out"`` or ``axis``."""
  if groups not in transforms.GROUPS:
    raise ValueError(f"{fn_name}: groups must be one of {transforms.GROUPS}, got {groups!r}.")
  axes = transforms.group_axes(np.shape(leaf), groups, axis, path, fn_name)
  return validation.group_axes(axes, np.ndim(leaf), f"{fn_name} ({jax.tree_util.keystr(path)})")
