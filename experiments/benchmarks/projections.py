"""Times the projections and prints Markdown tables of medians and ratios.

Everything is measured in one run, side by side: each function is jitted,
warmed up, then called ``--repeats`` times in interleaved rounds with
``block_until_ready``; the table shows the median. Run from the repository
root::

    python -m experiments.benchmarks.projections            # the full table
    python -m experiments.benchmarks.projections --quick    # small sizes only

The float64 group rows use the input of the authors' C++ measurements
(uniform[0, 1], radius 0.1 x the norm), whose figures are printed beside as
constants measured elsewhere.

The ratios the project tracks are printed under the tables.
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.benchmarks import exact
from experiments.tables import markdown
from experiments.benchmarks.timing import machine_line, medians_ms
from sparse_optax import projections
from sparse_optax.projections import _threshold

L1_SIZES = (10_000, 100_000, 1_000_000, 4_000_000)
GROUP_SHAPES = ((1000, 1000), (4096, 1024))
GROUP_NAMES = ("l1_ball", "l21_ball", "l11_ball", "l1inf_ball", "bilevel_l1inf_ball")
# The authors' C++ (MichelBarlaud/SAE-Supervised-Autoencoder-Omics, Projection/code),
# measured on this machine's kind, not by this script: single thread, -O3,
# float64, uniform[0, 1] input, radius 0.1 x the input's norm; ms.
CPP_MS = {
    (1000, 1000): {"l1_ball": 13.9, "l11_ball": 14.3, "l1inf_ball": 12.5,
                   "bilevel_l1inf_ball": 1.35},
    (4096, 1024): {"l1_ball": 62.9, "l11_ball": 61.2, "l1inf_ball": 51.6,
                   "bilevel_l1inf_ball": 5.8},
}
RADIUS_FRACTIONS = (1e-3, 1e-2, 1e-1, 0.5, 2.0)
FLOOR = "streaming floor `abs(x).sum()`"
NEWTON = "l1_ball newton"
NEWTON_WITH_SORTS = "l1_ball newton (beside the sorts)"
OPTAX = "optax projection_l1_ball"


def gaussian(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def l1_table(sizes, fraction, repeats):
  """Per size, the medians of every ℓ1 implementation and of the floor.

  Two interleaved groups: Newton beside the streaming floor, then Newton beside
  the sorts. A sort of 16 MB evicts the caches, so timing the floor in the
  same rounds as a sort would slow the floor down and flatter the ratio.
  """
  newton = jax.jit(lambda x, r: projections.l1_ball(x, r, method="newton"))
  against_floor = {
      FLOOR: jax.jit(lambda x, r: jnp.abs(x).sum()),
      NEWTON: newton,
  }
  against_sorts = {
      NEWTON_WITH_SORTS: newton,
      "l1_ball sort": jax.jit(lambda x, r: projections.l1_ball(x, r, method="sort")),
      OPTAX: jax.jit(optax.projections.projection_l1_ball),
  }
  rows = []
  for n in sizes:
    x = gaussian((n,))
    r = fraction * float(jnp.abs(x).sum())
    # Sorting 4e6 floats takes a second on a CPU: fewer repeats suffice.
    rounds = repeats if n < 4_000_000 else max(3, repeats // 4)
    row = medians_ms(against_floor, lambda name: (x, r), repeats)
    row.update(medians_ms(against_sorts, lambda name: (x, r), rounds))
    deviations = {name: exact.deviation("l1_ball", x, r, fn(x, r))
                  for name, fn in {**against_floor, **against_sorts}.items() if name != FLOOR}
    rows.append((row, deviations))
  return rows


def radius_table(n, fractions, repeats):
  """Medians of the Newton ℓ1 projection for several radii, beside the floor."""
  x = gaussian((n,))
  norm = float(jnp.abs(x).sum())
  fast = jax.jit(lambda x, r: projections.l1_ball(x, r, method="newton"))
  contenders = {"floor": jax.jit(lambda x, r: jnp.abs(x).sum())}
  contenders.update({f: fast for f in fractions})
  medians = medians_ms(contenders, lambda f: (x, 0.0 if f == "floor" else f * norm), repeats)
  floor = medians.pop("floor")
  return floor, [(f, ms, exact.deviation("l1_ball", x, f * norm, fast(x, f * norm)))
                 for f, ms in medians.items()]


def group_norm(name, x):
  a = jnp.abs(x)
  if name in ("l1inf_ball", "bilevel_l1inf_ball"):
    return float(jnp.max(a, axis=-1).sum())
  if name == "l21_ball":
    return float(jnp.linalg.norm(x, axis=-1).sum())
  return float(a.sum())


def group_table(shapes, fraction, repeats, sample=gaussian):
  """Per shape, the medians of every group ball and of the streaming floor."""
  rows = []
  for shape in shapes:
    x = sample(shape, seed=1)
    radii = {name: fraction * group_norm(name, x) for name in GROUP_NAMES}
    contenders = {FLOOR: jax.jit(lambda x, r: jnp.abs(x).sum())}
    contenders.update({name: jax.jit(getattr(projections, name)) for name in GROUP_NAMES})
    medians = medians_ms(contenders, lambda name: (x, radii.get(name, 0.0)), repeats)
    deviations = {name: exact.deviation(name, x, radii[name], contenders[name](x, radii[name]))
                  for name in GROUP_NAMES}
    rows.append((medians, deviations))
  return rows


def uniform(shape, seed=0):
  """float64 uniform[0, 1]: the input of the C++ figures (needs jax_enable_x64)."""
  return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float64)


def pass_table(shape, repeats):
  """Medians of one pass of the threshold search, written three ways, beside the floor.

  Per row at a threshold near the root: the excess and the count of active
  entries as the search writes them (min/max/ceil, each its own reduction),
  and both as one reduction of a compare-and-select.
  """
  a = jnp.abs(gaussian(shape, seed=2))
  theta = jnp.full(shape[:-1] + (1,), 1.4, a.dtype)
  axis = (a.ndim - 1,)

  def selected(a, t):
    active = a > t
    return (jnp.sum(jnp.where(active, a - t, 0), axis=-1), jnp.sum(active, axis=-1))

  contenders = {
      FLOOR: jax.jit(lambda a, t: jnp.abs(a).sum()),
      "excess (min/max)": jax.jit(lambda a, t: _threshold.excess(a, None, t, axis)),
      "count (min/max/ceil)": jax.jit(lambda a, t: _threshold.slope(a, None, t, axis)),
      "excess and count, one compare-and-select reduction": jax.jit(selected),
  }
  return medians_ms(contenders, lambda name: (a, theta), repeats)


def print_group_rows(shapes, rows):
  print(markdown(
      ["shape", "projection", "ms", "/ floor", "max deviation"],
      [[f"{s[0]}x{s[1]}", FLOOR, f"{row[FLOOR]:.3f}", "1.0x", "—"] for s, (row, _) in zip(shapes, rows)]
      + [[f"{s[0]}x{s[1]}", k, f"{row[k]:.3f}", f"{row[k] / row[FLOOR]:.1f}x", f"{dev[k]:.1e}"]
         for s, (row, dev) in zip(shapes, rows) for k in GROUP_NAMES]))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--fraction", type=float, default=0.1,
                      help="radius as a fraction of the input's norm in that ball")
  args = parser.parse_args(argv)
  sizes = L1_SIZES[:2] if args.quick else L1_SIZES
  shapes = ((256, 256),) if args.quick else GROUP_SHAPES
  repeats = 5 if args.quick else args.repeats

  print(f"# Projection benchmark\n\n{machine_line()}; "
        f"float32 Gaussian input; radius = {args.fraction:g} x the input's norm; "
        f"median of {repeats} interleaved calls after warm-up, in ms.\n")

  l1_rows = l1_table(sizes, args.fraction, repeats)
  print("## ℓ1 ball\n")
  print("`max deviation`: the largest |result − exact float64 projection| "
        "(`experiments/exact.py`) on the same input.\n")
  print(markdown(
      ["n", "projection", "ms", "/ floor", "max deviation"],
      [[f"{n:.0e}", name, f"{row[name]:.3f}", f"{row[name] / row[FLOOR]:.1f}x",
        f"{dev[name]:.1e}" if name in dev else "—"]
       for n, (row, dev) in zip(sizes, l1_rows) for name in row]))
  l1_rows = [row for row, _ in l1_rows]
  print("\n" + markdown(["n", "newton / floor", "optax / newton"],
                        [[f"{n:.0e}", f"{row[NEWTON] / row[FLOOR]:.1f}x",
                          f"{row[OPTAX] / row[NEWTON_WITH_SORTS]:.1f}x"]
                         for n, row in zip(sizes, l1_rows)]))

  n_radius = sizes[-2] if len(sizes) > 2 else sizes[-1]
  floor_ms, radius_rows = radius_table(n_radius, RADIUS_FRACTIONS, repeats)
  print(f"\n## ℓ1 ball, newton, n = {n_radius:.0e}: cost against the radius "
        f"(floor {floor_ms:.3f} ms)\n")
  print(markdown(["radius / ‖x‖₁", "ms", "/ floor", "max deviation"],
                 [[f"{f:g}", f"{ms:.3f}", f"{ms / floor_ms:.1f}x", f"{dev:.1e}"]
                  for f, ms, dev in radius_rows]))

  group_rows = group_table(shapes, args.fraction, repeats)
  print("\n## Group balls, float32 Gaussian (groups = rows, `axis=-1`)\n")
  print_group_rows(shapes, group_rows)

  passes = pass_table(shapes[-1], repeats)
  print(f"\n## One pass of the threshold search, {shapes[-1][0]}x{shapes[-1][1]} float32, "
        "groups = rows\n")
  print("Passes, not projections: no result to compare.\n")
  print(markdown(["pass", "ms", "/ floor"],
                 [[name, f"{ms:.3f}", f"{ms / passes[FLOOR]:.2f}x"] for name, ms in passes.items()]))

  with jax.enable_x64(True):
    float64_rows = group_table(shapes, args.fraction, repeats, sample=uniform)
  print("\n## Group balls, float64 uniform[0, 1], beside the authors' C++\n")
  print_group_rows(shapes, float64_rows)
  compared = [(s, row) for s, (row, _) in zip(shapes, float64_rows) if s in CPP_MS]
  if compared:
    print("\nThe C++ figures are constants measured elsewhere (single thread, -O3, the "
          "same input and radius), not by this run.\n")
    print(markdown(
        ["shape"] + [f"C++ {name} (ms)" for name in CPP_MS[compared[0][0]]]
        + [f"C++ / ours {name}" for name in CPP_MS[compared[0][0]]],
        [[f"{s[0]}x{s[1]}"] + [f"{ms:.2f}" for ms in CPP_MS[s].values()]
         + [f"{ms / row[name]:.1f}x" for name, ms in CPP_MS[s].items()]
         for s, row in compared]))

  if not args.quick:
    at_1e6, at_4e6 = l1_rows[sizes.index(1_000_000)], l1_rows[sizes.index(4_000_000)]
    large = group_rows[shapes.index((4096, 1024))][0]
    print("\n## Targets\n")
    checks = [
        ("optax / newton at n=1e6 >= 50", at_1e6[OPTAX] / at_1e6[NEWTON_WITH_SORTS], lambda v: v >= 50),
        ("newton / floor at n=1e6 <= 4", at_1e6[NEWTON] / at_1e6[FLOOR], lambda v: v <= 4),
        ("newton / floor at n=4e6 <= 5", at_4e6[NEWTON] / at_4e6[FLOOR], lambda v: v <= 5),
    ] + [
        (f"{name} / floor at 4096x1024 <= 6", large[name] / large[FLOOR], lambda v: v <= 6)
        for name in GROUP_NAMES[1:]
    ] + [
        (f"C++ / ours, {name}, float64 {s[0]}x{s[1]} >= 3", ms / row[name], lambda v: v >= 3)
        for s, row in compared for name, ms in CPP_MS[s].items()
    ]
    print(markdown(["target", "measured", "met"],
                   [[name, f"{v:.2f}", "yes" if ok(v) else "NO"] for name, v, ok in checks]))
  return 0


if __name__ == "__main__":
  sys.exit(main())
