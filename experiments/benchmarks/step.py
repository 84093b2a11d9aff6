"""Cost of projecting every step: a jitted LFC4-sized training step, with and without.

The step is the whole of Algorithm 1 on an MLP 784-768-768-768-768-10 (the
paper's LFC4), batch 128, float32: forward, backward, Adam, the projection of
all five kernels, ``apply_updates``. Every variant is timed in interleaved
rounds, median after warm-up, and compared with Adam alone, at the first step
and after some steps of training. Run from the repository root::

    python -m experiments.benchmarks.step
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sparse_optax
from experiments.benchmarks import exact
from experiments.tables import markdown
from experiments.benchmarks.timing import machine_line, medians_ms

LAYERS = (784, 768, 768, 768, 768, 10)
ETA = 400.0


def init_mlp(key, sizes=LAYERS):
  params = {}
  for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
    key, sub = jax.random.split(key)
    bound = 1 / np.sqrt(fan_in)
    params[f"dense{i}"] = {
        "kernel": jax.random.uniform(sub, (fan_in, fan_out), jnp.float32, -bound, bound),
        "bias": jnp.zeros(fan_out, jnp.float32),
    }
  return params


def loss(params, x, y):
  h = x
  for i in range(len(params)):
    layer = params[f"dense{i}"]
    h = h @ layer["kernel"] + layer["bias"]
    if i < len(params) - 1:
      h = jax.nn.relu(h)
  return optax.softmax_cross_entropy_with_integer_labels(h, y).mean()


def make_step(tx):
  @jax.jit
  def step(params, opt_state, x, y):
    grads = jax.grad(loss)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  return step


# The exact float64 projection each variant should leave every kernel at
# (groups = rows of a Dense kernel (in, out): one per input feature).
EXACT_BALL = {
    "adam + project_l1 (newton)": "l1_ball",
    "adam + project_l1 (sort)": "l1_ball",
    "adam + project_l21": "l21_ball",
    "adam + project_l11": "l11_ball",
    "adam + project_l11 (sort)": "l11_ball",
    "adam + project_l1inf": "l1inf_ball",
    "adam + project_bilevel_l1inf": "bilevel_l1inf_ball",
}


def variants(lr=1e-3, eta=ETA):
  adam = lambda: optax.adam(lr)
  return {
      "adam": adam(),
      "adam + project_l1 (newton)": optax.chain(adam(), sparse_optax.project_l1(eta, method="newton")),
      "adam + project_l1 (sort)": optax.chain(adam(), sparse_optax.project_l1(eta, method="sort")),
      "adam + project_l21": optax.chain(adam(), sparse_optax.project_l21(eta)),
      "adam + project_l11": optax.chain(adam(), sparse_optax.project_l11(eta)),
      "adam + project_l11 (sort)": optax.chain(adam(), sparse_optax.project_l11(eta, method="sort")),
      "adam + project_l1inf": optax.chain(adam(), sparse_optax.project_l1inf(eta)),
      "adam + project_bilevel_l1inf": optax.chain(adam(), sparse_optax.project_bilevel_l1inf(eta)),
  }


def step_deviation(name, step, params, opt_state, x, y, lr=1e-3, eta=ETA):
  """Largest |kernel − exact projection of (params + Adam's update)| after one step.

  Adam's update is recomputed from the chain's own Adam state, so the target
  is exactly the point the projection was given.
  """
  ball = EXACT_BALL.get(name)
  if ball is None:
    return 0.0
  new_params, _ = step(params, opt_state, x, y)
  grads = jax.grad(loss)(params, x, y)
  adam_updates, _ = optax.adam(lr).update(grads, opt_state[0], params)
  targets = optax.apply_updates(params, adam_updates)
  return max(exact.deviation(ball, targets[layer]["kernel"], eta, new_params[layer]["kernel"])
             for layer in params)


def measure(repeats=30, batch=128, eta=ETA, train_steps=50, layers=LAYERS):
  """Medians (ms) at the first step and after ``train_steps``, and the deviations."""
  params = init_mlp(jax.random.key(0), layers)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, layers[0])), jnp.float32)
  y = jnp.asarray(rng.integers(0, layers[-1], batch))
  txs = variants(eta=eta)
  steps = {name: make_step(tx) for name, tx in txs.items()}
  # Two points of training for every variant: the first step (dense random
  # weights: the projections' worst case) and after `train_steps` steps of
  # training with that variant (the weights are as sparse as the constraint
  # makes them, which is where a long run spends its time).
  first = {name: (params, tx.init(params)) for name, tx in txs.items()}
  trained = {}
  for name in txs:
    p, s = first[name]
    for _ in range(train_steps):
      p, s = steps[name](p, s, x, y)
    trained[name] = (p, s)
  at_first = medians_ms(steps, lambda name: (*first[name], x, y), repeats)
  medians = medians_ms(steps, lambda name: (*trained[name], x, y), repeats)
  deviation = {name: step_deviation(name, steps[name], *trained[name], x, y, eta=eta)
               for name in txs}
  return {"ms": medians, "first_ms": at_first, "deviation": deviation, "repeats": repeats,
          "train_steps": train_steps, "batch": batch, "eta": eta, "layers": list(layers)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=30)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--eta", type=float, default=ETA)
  parser.add_argument("--train-steps", type=int, default=50,
                      help="steps of training before the steady-state timing")
  parser.add_argument("--layers", default=",".join(map(str, LAYERS)),
                      help="comma-separated layer widths, input first")
  args = parser.parse_args(argv)
  sizes = tuple(int(v) for v in args.layers.split(","))
  m = measure(args.repeats, args.batch, args.eta, args.train_steps, sizes)
  medians, at_first = m["ms"], m["first_ms"]
  base, base_first = medians["adam"], at_first["adam"]
  print(f"# Training-step benchmark\n\n{machine_line()}; MLP {'-'.join(map(str, sizes))}, "
        f"batch {args.batch}, float32, eta = {args.eta:g} on every kernel; "
        f"median of {args.repeats} interleaved jitted steps after warm-up, in ms. "
        "`max deviation`: the largest |kernel − exact float64 projection of (params + "
        "Adam's update)| after one more step.\n")
  print(markdown(
      ["step", f"after {args.train_steps} steps", "/ adam", "first step", "/ adam",
       "max deviation"],
      [[name, f"{medians[name]:.2f}", f"{medians[name] / base:.2f}x",
        f"{at_first[name]:.2f}", f"{at_first[name] / base_first:.2f}x",
        f"{m['deviation'][name]:.1e}"] for name in medians]))
  print(f"\nproject_l11 / adam after {args.train_steps} steps: "
        f"{medians['adam + project_l11'] / base:.2f}x "
        f"(targets: <= 1.15 on LFC4, <= 1.3 on LeNet-300-100 `--layers 784,300,100,10`).")
  return 0


if __name__ == "__main__":
  sys.exit(main())
