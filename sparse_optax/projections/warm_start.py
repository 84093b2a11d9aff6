"""Projections that resume their threshold search where the last call ended.

Projecting after every training step solves a sequence of nearby problems:
the thresholds of one step are an excellent first guess for the next. Each
projection module exposes a :class:`WarmStart` pair used by
:mod:`sparse_optax.transforms`; the public functions are the cold calls.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


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


def kept_shape(shape, axis):
  """The shape of a per-group quantity: reduced axes kept with size 1."""
  return tuple(1 if ax in axis else n for ax, n in enumerate(shape))
