"""The projections of two commits timed side by side, with their deviations.

Each commit's checkout runs in a worker process of its own (``git worktree``
in a temporary folder for the other commit); the parent asks both for one
round at a time, alternately and each first in every other round, so both see
the same machine load, and prints
the median of each and their ratio. Each result's largest deviation from the
exact float64 projection (:mod:`experiments.benchmarks.exact`) is printed beside it.
Run from the repository root::

    python -m experiments.benchmarks.commits --against dfca4fc
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from experiments.benchmarks import exact
from experiments.tables import markdown

ROOT = pathlib.Path(__file__).resolve().parents[2]
# (label, function name, shape, radius as a fraction of the ball's norm)
CASES = (
    ("l1_ball 1e6", "l1_ball", (1_000_000,), 0.1),
    ("l1_ball 4e6", "l1_ball", (4_000_000,), 0.1),
    ("l21_ball 4096x1024", "l21_ball", (4096, 1024), 0.1),
    ("l11_ball 4096x1024", "l11_ball", (4096, 1024), 0.1),
    ("l11_ball 784x768", "l11_ball", (784, 768), 0.1),
    ("l1inf_ball 4096x1024", "l1inf_ball", (4096, 1024), 0.1),
    ("l1inf_ball 128x1024, r = 0.95", "l1inf_ball", (128, 1024), 0.95),
    ("bilevel_l1inf_ball 4096x1024", "bilevel_l1inf_ball", (4096, 1024), 0.1),
)

# Runs inside each checkout: jit every case, write its results once, then one
# timed call of each case per line read from stdin.
WORKER = r"""
import json, sys, time
import numpy as np, jax, jax.numpy as jnp
from sparse_optax import projections
cases, out = json.loads(sys.argv[1]), sys.argv[2]
fns, inputs = [], []
for label, name, shape, radius in cases:
  x = jnp.asarray(np.random.default_rng(1).standard_normal(shape), jnp.float32)
  fns.append(jax.jit(lambda x, r, fn=getattr(projections, name): fn(x, r)))
  inputs.append((x, radius))
results = {}
for (label, *_), fn, (x, r) in zip(cases, fns, inputs):
  results[label] = np.asarray(jax.block_until_ready(fn(x, r)))
  jax.block_until_ready(fn(x, r))
np.savez(out, **results)
print("ready", flush=True)
for line in sys.stdin:
  times = {}
  for (label, *_), fn, (x, r) in zip(cases, fns, inputs):
    calls = []
    for _ in range(5):  # the median of five warm calls per round
      start = time.perf_counter()
      jax.block_until_ready(fn(x, r))
      calls.append(1e3 * (time.perf_counter() - start))
    times[label] = sorted(calls)[2]
  print(json.dumps(times), flush=True)
"""


def radius_of(name, x, fraction):
  rows = x.reshape(1, -1) if x.ndim == 1 else x
  norm = {"l1_ball": np.abs(rows).sum(), "l11_ball": np.abs(rows).sum(),
          "l21_ball": np.linalg.norm(rows, axis=1).sum(),
          "l1inf_ball": np.abs(rows).max(axis=1).sum(),
          "bilevel_l1inf_ball": np.abs(rows).max(axis=1).sum()}[name]
  return float(fraction * norm)


def start_worker(tree, cases, out):
  env = dict(os.environ, PYTHONPATH=str(tree))
  worker = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(cases), out], cwd=tree,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  if worker.stdout.readline().strip() != "ready":
    raise RuntimeError(f"the worker in {tree} did not start")
  return worker


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--against", required=True, help="the other commit (e.g. dfca4fc)")
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--cases", default="", help="only the cases whose label contains this")
  args = parser.parse_args(argv)
  cases = []
  for label, name, shape, fraction in CASES:
    if args.cases not in label:
      continue
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    cases.append((label, name, shape, radius_of(name, x.astype(np.float64), fraction)))
  with tempfile.TemporaryDirectory() as tmp:
    other = pathlib.Path(tmp, "other")
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(other), args.against],
                   cwd=ROOT, check=True)
    try:
      trees = {"this tree": ROOT, args.against: other}
      workers = {key: start_worker(tree, cases, os.path.join(tmp, f"{i}.npz"))
                 for i, (key, tree) in enumerate(trees.items())}
      times = {key: {label: [] for label, *_ in cases} for key in trees}
      for round_ in range(args.rounds):
        # Each checkout goes first in every other round, after a pause: XLA's
        # CPU threads of the worker that just ran keep spinning for a while and
        # would slow whichever runs next.
        order = list(workers.items())
        for key, worker in order if round_ % 2 == 0 else order[::-1]:
          time.sleep(0.05)
          worker.stdin.write("go\n")
          worker.stdin.flush()
          for label, ms in json.loads(worker.stdout.readline()).items():
            times[key][label].append(ms)
      for worker in workers.values():
        worker.stdin.close()
        worker.wait()
      results = {key: np.load(os.path.join(tmp, f"{i}.npz")) for i, key in enumerate(trees)}
      rows = []
      for label, name, shape, r in cases:
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        row = [label]
        medians = {key: statistics.median(times[key][label]) for key in trees}
        for key in trees:
          row += [f"{medians[key]:.3f}", f"{exact.deviation(name, x, r, results[key][label]):.1e}"]
        row.append(f"{medians['this tree'] / medians[args.against]:.2f}x")
        rows.append(row)
    finally:
      subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT)
  from experiments.benchmarks.timing import machine_line
  print(f"# This tree against {args.against}\n\n{machine_line()}; float32 Gaussian input; "
        f"median ms over {args.rounds} rounds of the median of 5 calls, the two checkouts "
        "alternating; `dev`: the largest "
        "|result − exact float64 projection|.\n")
  print(markdown(["case", "this tree ms", "dev", f"{args.against} ms", "dev", "ratio"], rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
