"""Projections that resume their threshold search where the last call ended.

Projecting after every training step solves a sequence of nearby problems:
the thresholds of one step are an excellent first guess for the next. Each
projection module exposes a :class:`WarmStart` pair used by
:mod:`sparse_optax.transforms`; the public functions are the cold calls.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
from jax import flatten_util


class WarmStart(NamedTuple):
  """How to project from, and return, the search state of a previous call.

  Attributes:
    cold: ``cold(x, **options) -> state``, the state that means "no previous
      call" (its result equals the public function's).
    project: ``project(x, radius, state, **options) -> (projection, state)``,
      jitted; any state is safe, a good one saves passes over ``x``.
  """

  cold: Callable[..., Any]
  project: Callable[..., Any]


def ball(project_from: Callable, cold: Callable, static_argnames: tuple[str, ...], *,
         vector: bool = False) -> tuple[WarmStart, Callable]:
  """A ball's :class:`WarmStart` pair and its jitted cold call, from one function.

  Args:
    project_from: ``project_from(x, radius, start, *operands, **static) ->
      (projection, state)``; ``start=None`` is the cold search.
    cold: the pair's ``cold``.
    static_argnames: the keyword options that select a program (axes, method).
    vector: the cold call takes ``x`` and its operands as pytrees, each one
      vector (as the ℓ1 balls do); otherwise one array.

  Returns:
    ``(pair, call)``: ``call(x, radius, *operands, **static)`` is the jitted
    projection from a cold start, what the public function computes.
  """
  def cold_call(x, radius, *operands, **static):
    if not vector:
      return project_from(x, radius, None, *operands, **static)[0]
    flat, unravel = flatten_util.ravel_pytree(x)
    operands = [flatten_util.ravel_pytree(operand)[0] for operand in operands]
    return unravel(project_from(flat, radius, None, *operands, **static)[0])

  pair = WarmStart(cold=cold, project=jax.jit(project_from, static_argnames=static_argnames))
  return pair, jax.jit(cold_call, static_argnames=static_argnames)


def kept_shape(shape, axis):
  """The shape of a per-group quantity: reduced axes kept with size 1."""
  return tuple(1 if ax in axis else n for ax, n in enumerate(shape))
