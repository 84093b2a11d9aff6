"""Counts the passes the threshold searches make over the whole input.

Every Newton step of the ℓ1 threshold (and every joint step of the exact
ℓ1,∞ levels) reads the input once for the count of active entries
(``_threshold.slope``) and, unless that count confirms the root, once more for
the excess (``_threshold.excess``). This script wraps both to count the calls
on full-size arrays (the sample searches and gathered rows are smaller and not
counted), for Gaussian inputs and several radii, and prints a Markdown table
(the ℓ1,∞ excess passes include the one of its first tangents).
The passes every projection adds besides the search (``|x|``, the inside
check, the output) are listed under it. Run from the repository root::

    python -m experiments.benchmarks.projection_passes
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

from experiments.tables import markdown
from sparse_optax.projections import _threshold
from sparse_optax import projections

FRACTIONS = (0.01, 0.1, 0.5)
CASES = (("l1_ball", (1_000_000,)), ("l1_ball", (4_000_000,)),
         ("l11_ball", (4096, 1024)), ("l1inf_ball", (4096, 1024)))
OTHER_PASSES = {
    "l1_ball": "|x| written, sum and max of |x|, the output",
    "l11_ball": "|x| written, the row norms, the output",
    "l1inf_ball": "|x| written, the row maxima, the count of the first tangents, the output",
}


@contextlib.contextmanager
def counting(size):
  """Counts the calls of ``slope`` and ``excess`` on arrays of ``size`` entries."""
  counts = {"slope": 0, "excess": 0}
  originals = {name: getattr(_threshold, name) for name in counts}

  def wrap(name):
    def counted(a, *args):
      if a.size == size:
        jax.debug.callback(lambda: counts.__setitem__(name, counts[name] + 1))
      return originals[name](a, *args)
    return counted

  for name in counts:
    setattr(_threshold, name, wrap(name))
  # The wrappers act when a function is traced: nothing may come from a cache.
  jax.clear_caches()
  try:
    yield counts
  finally:
    for name, fn in originals.items():
      setattr(_threshold, name, fn)


def ball_norm(name, x):
  if name == "l1inf_ball":
    return float(jnp.abs(x).max(axis=-1).sum())
  return float(jnp.abs(x).sum())


def passes(name, x, fraction):
  """``(count passes, excess passes)`` of one cold projection."""
  r = fraction * ball_norm(name, x)
  with counting(x.size) as counts:
    jax.block_until_ready(jax.jit(lambda x, r: getattr(projections, name)(x, r))(x, r))
  return counts["slope"], counts["excess"]


def warm_passes(shape, fraction, steps=5):
  """Passes of ``l11_ball`` resumed from the previous step's search, as in training."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  r = fraction * float(jnp.abs(x).sum())
  search = projections.warm.l11_ball.cold(x, axis=(1,))
  for _ in range(steps):
    x = x + 1e-3 * jnp.asarray(rng.standard_normal(shape), jnp.float32)
    with counting(x.size) as counts:
      project = jax.jit(lambda x, s: projections.warm.l11_ball.project(x, r, s, axis=(1,)))
      _, search = project(x, search)
      jax.block_until_ready(search)
  return counts["slope"], counts["excess"]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="one small case")
  args = parser.parse_args(argv)
  cases = ((("l1_ball", (100_000,)), ("l11_ball", (256, 1024))) if args.quick else CASES)
  rows = []
  for name, shape in cases:
    x = jnp.asarray(np.random.default_rng(1).standard_normal(shape), jnp.float32)
    for fraction in FRACTIONS:
      slopes, excesses = passes(name, x, fraction)
      rows.append([name, "x".join(map(str, shape)), f"{fraction:g}", str(slopes), str(excesses),
                   OTHER_PASSES[name]])
  warm_shape = (256, 1024) if args.quick else (768, 768)
  for fraction in FRACTIONS:
    slopes, excesses = warm_passes(warm_shape, fraction)
    rows.append(["l11_ball, resumed after a small step", "x".join(map(str, warm_shape)),
                 f"{fraction:g}", str(slopes), str(excesses), OTHER_PASSES["l11_ball"]])
  print("# Passes over the whole input\n\nGaussian float32 input, groups = rows; radius = "
        "fraction x the input's norm in that ball; cold searches unless stated.\n")
  print(markdown(["projection", "shape", "radius / norm", "count passes", "excess passes",
                  "other passes"], rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
