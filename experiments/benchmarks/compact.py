"""Does removing dead neurons pay? Inference, masked-dense vs compacted.

LFC4 (784-768-768-768-768-10) is projected once with the bilevel ℓ1,1 ball
(``project_l11``, every kernel) so that most neurons die; the masked dense
model (zeros in full matrices) and the model :func:`sparse_optax.compact`
rebuilds are then timed on the same batch (1024, float32, jitted, inference
mode), in interleaved rounds, medians after warm-up. The speed-up is printed
next to the MACC ratio. With ``--runs``, the trained networks of finished
runs (their last checkpoint, rounded as the runner rounds them) are timed
the same way, in images per second. Run from the repository root::

    python -m experiments.benchmarks.compact
    python -m experiments.benchmarks.compact --runs runs/modern/resnet/*/seed0
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import sparse_optax
from experiments import config as config_lib
from experiments import data as data_lib
from experiments.checkpoints import Checkpoints, load_into
from experiments.tables import markdown
from experiments.benchmarks.timing import machine_line, medians_ms
from sparse_optax import metrics, models


def projected_lfc4(eta: float, seed: int = 0) -> models.LFC4:
  model = models.LFC4(rngs=nnx.Rngs(seed))
  params = nnx.as_pure(nnx.state(model, nnx.Param))
  nnx.update(model, sparse_optax.lottery.project_once(params, sparse_optax.project_l11(eta)))
  model.eval()
  return model


def forward(model):
  graphdef, state = nnx.split(model)

  @jax.jit
  def run(state, x):
    return nnx.merge(graphdef, state)(x)

  return lambda x: run(state, x)


def trained_model(run: pathlib.Path):
  """The network a finished run measured: its last checkpoint, rounded."""
  result = json.loads((run / "result.json").read_text())
  model = config_lib.MODELS[result["model"]](rngs=nnx.Rngs(0))
  checkpoints = Checkpoints(run / "checkpoints")
  saved = checkpoints.restore(checkpoints.latest())
  checkpoints.close()
  load_into(model, saved["model"], nnx.Not(nnx.RngKey))
  nnx.update(model, metrics.quantize(nnx.state(model, nnx.Param)))
  model.eval()
  return result, model


def time_runs(runs, batch: int, repeats: int) -> int:
  rows = []
  for run in runs:
    result, model = trained_model(pathlib.Path(run))
    shape = (batch, *data_lib.IMAGE_SHAPES[result["dataset"]])
    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)
    small = sparse_optax.compact(model, x)
    small.eval()
    error = float(jnp.max(jnp.abs(forward(model)(x) - forward(small)(x))))
    report = metrics.report(model, x).total
    times = medians_ms({"dense": forward(model), "compacted": forward(small)},
                       lambda name: (x,), repeats)
    rows.append([
        str(run), f"{100 * result['accuracy']:.2f}", f"{report.maccs_dense:,}",
        f"{report.maccs_effective:,}", f"{1 - report.maccs_effective / report.maccs_dense:.1%}",
        f"{1e3 * batch / times['dense']:,.0f}", f"{1e3 * batch / times['compacted']:,.0f}",
        f"{times['dense'] / times['compacted']:.2f}x", f"{error:.1e}"])
  print(f"# Trained networks, dense against compacted\n\n{machine_line()}; inference on a "
        f"batch of {batch}, median of {repeats} interleaved jitted calls.\n")
  print(markdown(["run", "accuracy %", "MACCs dense", "MACCs effective", "MACCs removed",
                  "dense img/s", "compacted img/s", "speed-up", "max |difference|"], rows))
  return 0


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--etas", default="400,100,30",
                      help="comma-separated radii of the ℓ1,1 projection")
  parser.add_argument("--runs", nargs="*", default=None,
                      help="finished run folders whose trained networks to time instead")
  parser.add_argument("--batch", type=int, default=1024)
  parser.add_argument("--repeats", type=int, default=50)
  args = parser.parse_args(argv)
  if args.runs:
    return time_runs(args.runs, args.batch, args.repeats)

  x = jnp.asarray(np.random.default_rng(0).standard_normal((args.batch, 784)), jnp.float32)
  rows = []
  for eta in (float(v) for v in args.etas.split(",")):
    model = projected_lfc4(eta)
    small = sparse_optax.compact(model, x)
    small.eval()
    dense_out, small_out = forward(model)(x), forward(small)(x)
    error = float(jnp.max(jnp.abs(dense_out - small_out)))
    report = metrics.report(model, x)
    widths = [small.fc1.kernel.shape[0]] + [getattr(small, f"fc{i}").kernel.shape[1]
                                             for i in range(1, 6)]
    times = medians_ms({"masked dense": forward(model), "compacted": forward(small)},
                       lambda name: (x,), args.repeats)
    rows.append([
        f"{eta:g}", "-".join(map(str, widths)),
        f"{report.total.maccs_dense:,}", f"{report.total.maccs_effective:,}",
        f"{report.total.maccs_dense / report.total.maccs_effective:.1f}x",
        f"{times['masked dense']:.3f}", f"{times['compacted']:.3f}",
        f"{times['masked dense'] / times['compacted']:.1f}x", f"{error:.1e}",
    ])

  print(f"# Compaction benchmark\n\n{machine_line()}; LFC4 at initialisation, projected once "
        f"with project_l11(eta) on every kernel; inference on a batch of {args.batch}, "
        f"median of {args.repeats} interleaved jitted calls, in ms.\n")
  print(markdown(["eta", "compacted widths", "MACCs dense", "MACCs effective", "MACC ratio",
                  "masked dense ms", "compacted ms", "speed-up", "max |difference|"], rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
