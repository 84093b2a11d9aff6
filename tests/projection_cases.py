"""One calling convention for every projection, so tests can loop over them."""

from __future__ import annotations

import contextlib

import jax
import numpy as np

from sparse_optax import projections

import numpy_reference

GROUPED = ("l21_ball", "l11_ball", "l1inf_ball", "bilevel_l1inf_ball")
# The balls that treat x as one vector (an array or a pytree).
VECTOR = ("l1_ball", "weighted_l1_ball", "l2_ball", "linf_ball")
ALL = VECTOR + GROUPED
# The Euclidean projections (the bilevel ones are feasible, not nearest).
EXACT = ("l1_ball", "weighted_l1_ball", "l2_ball", "linf_ball", "l21_ball", "l1inf_ball")
METHODS = ("newton", "sort")


def weights_for(x, seed=7):
  """Positive weights with a few zeros (unconstrained entries)."""
  rng = np.random.default_rng(seed)
  w = rng.uniform(0.1, 2.0, size=np.shape(x))
  w.flat[:: max(1, w.size // 3)] = 0.0
  return w


def project(name, x, radius, *, axis=-1, weights=None, method=None):
  fn = getattr(projections, name)
  kwargs = {} if method is None else {"method": method}
  if name in ("l1_ball", "l2_ball", "linf_ball"):
    return fn(x, radius, **kwargs)
  if name == "weighted_l1_ball":
    return fn(x, radius, weights, **kwargs)
  return fn(x, radius, axis=axis)


def reference(name, x, radius, *, axis=-1, weights=None):
  fn = getattr(numpy_reference, name)
  if name in ("l1_ball", "l2_ball", "linf_ball"):
    return fn(x, radius)
  if name == "weighted_l1_ball":
    return fn(x, radius, weights)
  return fn(x, radius, axis)


def norm(name, x, *, axis=-1, weights=None):
  return numpy_reference.ball_norm(name, x, axis=axis, weights=weights)


def precision(dtype):
  """`jax.enable_x64` for float64 cases, nothing otherwise."""
  return jax.enable_x64(True) if np.dtype(dtype) == np.float64 else contextlib.nullcontext()
