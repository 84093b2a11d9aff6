"""Training throughput: the runner's epoch against a minimal scanned loop.

For each model (LeNet-300-100, LFC4, Net4) and optimizer (Adam alone, Adam
then ``project_l11`` every step), one epoch of random images is trained two
ways, in interleaved rounds after a warm-up, on every device JAX sees:

* the runner's: :func:`experiments.steps.train_steps`, the code every run
  uses (compiled chunks of :data:`~experiments.steps.CHUNK_STEPS` steps, the
  batch sharded over a ``("data",)`` mesh);
* a minimal loop written here: the whole epoch as one ``jax.jit`` of
  ``lax.scan`` over a functional step (``optax`` state, ``nnx.merge``), the
  same batches, the same sharding.

The table gives images per second (median over rounds) and their ratio. Run
from the repository root, on one device and on 8 simulated CPU devices::

    python -m experiments.benchmarks.train
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m experiments.benchmarks.train
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import sparse_optax
from experiments import config as config_lib
from experiments import data as data_lib
from experiments import steps
from experiments.tables import markdown
from experiments.benchmarks.timing import machine_line

MODELS = ("lenet300", "lfc4", "net4")
# Radii that leave most of each network alive, so the projection does real work.
ETA = {"lenet300": 400.0, "lfc4": 400.0, "net4": 40.0}
BATCH_SIZE = 128


def random_dataset(examples: int, seed: int = 0) -> data_lib.Dataset:
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (examples, 28, 28, 1), dtype=np.uint8)
  labels = rng.integers(0, 10, examples).astype(np.int32)
  return data_lib.Dataset("mnist", images, labels, images[:BATCH_SIZE], labels[:BATCH_SIZE],
                          "random", np.asarray([127.5], np.float32), np.asarray([73.9], np.float32))


def transformation(model_name: str, projected: bool) -> optax.GradientTransformation:
  adam = optax.adam(1e-3)
  return optax.chain(adam, sparse_optax.project_l11(ETA[model_name])) if projected else adam


def runner_epoch(model_name, projected, data, order):
  """The runner's code path; returns a function that trains one epoch."""
  model = config_lib.MODELS[model_name](rngs=nnx.Rngs(0))
  state = steps.TrainState(model, nnx.Optimizer(model, transformation(model_name, projected),
                                                wrt=nnx.Param))
  return lambda: steps.train_steps(state, data, order)


def minimal_epoch(model_name, projected, data, order):
  """The whole epoch as one compiled scan of a functional step."""
  model = config_lib.MODELS[model_name](rngs=nnx.Rngs(0))
  graphdef, params, others = nnx.split(model, nnx.Param, ...)
  tx = transformation(model_name, projected)
  carry = steps.replicate((params, others, tx.init(params)), data.mesh)
  batch = jax.sharding.NamedSharding(data.mesh, jax.sharding.PartitionSpec("data"))

  @jax.jit
  def epoch(carry, order):
    def step(carry, index):
      params, others, opt_state = carry
      x = (data.train_images[index].astype(jnp.float32) - data.mean) / data.std
      x = jax.lax.with_sharding_constraint(x, batch)
      y = jax.lax.with_sharding_constraint(data.train_labels[index], batch)
      model = nnx.merge(graphdef, params, others)
      loss, grads = nnx.value_and_grad(
          lambda model: optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean())(model)
      updates, opt_state = tx.update(grads, opt_state, params)
      params = optax.apply_updates(params, updates)
      return (params, nnx.state(model, nnx.Not(nnx.Param)), opt_state), loss
    return jax.lax.scan(step, carry, order)

  def run():
    nonlocal carry
    carry, losses = epoch(carry, order)
    return losses
  return run


def throughputs(functions: dict, examples: int, rounds: int) -> dict:
  """Images per second of each function, median over interleaved rounds."""
  for fn in functions.values():
    jax.block_until_ready(fn())  # compile and warm up
  seconds = {name: [] for name in functions}
  for _ in range(rounds):
    for name, fn in functions.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      seconds[name].append(time.perf_counter() - start)
  return {name: examples / statistics.median(t) for name, t in seconds.items()}


def measure(models=MODELS, examples=8192, rounds=5) -> dict:
  """Images/s of the runner and of the minimal loop for each model and optimizer."""
  devices = jax.devices()
  if BATCH_SIZE % len(devices):
    raise ValueError(f"batch {BATCH_SIZE} does not split over {len(devices)} devices")
  data = steps.to_devices(random_dataset(examples), steps.data_mesh(devices), BATCH_SIZE)
  order = steps.epoch_order(0, 1, examples, BATCH_SIZE)
  rows = []
  for model_name in models:
    for projected in (False, True):
      measured = throughputs({"runner": runner_epoch(model_name, projected, data, order),
                              "minimal": minimal_epoch(model_name, projected, data, order)},
                             order.size, rounds)
      rows.append({"model": model_name,
                   "optimizer": "adam + project_l11" if projected else "adam", **measured})
      print(f"{model_name} {rows[-1]['optimizer']}: "
            f"{measured['runner'] / measured['minimal']:.2f}x", file=sys.stderr, flush=True)
  return {"rows": rows, "devices": len(devices), "examples": examples, "rounds": rounds,
          "batch": BATCH_SIZE}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--examples", type=int, default=8192,
                      help="training images per epoch (default: 8192, 64 batches of 128)")
  parser.add_argument("--rounds", type=int, default=5, help="timed epochs per variant (default: 5)")
  parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from "
                      + ", ".join(MODELS))
  args = parser.parse_args(argv)
  try:
    m = measure(args.models.split(","), args.examples, args.rounds)
  except ValueError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(f"# Training throughput\n\n{machine_line()}; {m['devices']} device(s); batch "
        f"{BATCH_SIZE} sharded over them; {args.examples} random images per epoch; median of "
        f"{args.rounds} interleaved epochs after warm-up.\n")
  print(markdown(["model", "optimizer", "runner (img/s)", "minimal scan (img/s)",
                  "runner / minimal"],
                 [[r["model"], r["optimizer"], f"{r['runner']:,.0f}", f"{r['minimal']:,.0f}",
                   f"{r['runner'] / r['minimal']:.2f}x"] for r in m["rows"]]))
  return 0


if __name__ == "__main__":
  sys.exit(main())
