"""A data-parallel training step with a projecting transform on 8 CPU devices.

Run by tests/test_sharding.py in a subprocess, because the device count is
fixed when JAX starts: XLA_FLAGS=--xla_force_host_platform_device_count=8.
Prints one JSON line with what the test asserts.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

import sparse_optax


def loss(params, x, y):
  h = jax.nn.relu(x @ params["hidden"]["kernel"] + params["hidden"]["bias"])
  logits = h @ params["out"]["kernel"] + params["out"]["bias"]
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def main():
  rng = np.random.default_rng(0)
  params = {
      "hidden": {"kernel": jnp.asarray(rng.standard_normal((64, 32)) * 0.2, jnp.float32),
                 "bias": jnp.zeros(32, jnp.float32)},
      "out": {"kernel": jnp.asarray(rng.standard_normal((32, 10)) * 0.2, jnp.float32),
              "bias": jnp.zeros(10, jnp.float32)},
  }
  x = jnp.asarray(rng.standard_normal((128, 64)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, 128))
  tx = optax.chain(optax.adam(0.05), sparse_optax.project_l11(eta=20.0))

  @jax.jit
  def step(params, opt_state, x, y):
    grads = jax.grad(loss)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  def run(params, x, y):
    opt_state = tx.init(params)
    for _ in range(5):
      params, opt_state = step(params, opt_state, x, y)
    return params

  single = run(params, x, y)

  mesh = jax.make_mesh((8,), ("data",))
  # Kernels split over their input features (FSDP-style), biases replicated,
  # the batch split over examples: XLA's SPMD partitioner does the rest.
  specs = {"hidden": {"kernel": P("data", None), "bias": P()},
           "out": {"kernel": P("data", None), "bias": P()}}
  shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs,
                           is_leaf=lambda s: isinstance(s, P))
  sharded_params = jax.device_put(params, shardings)
  sharded_x = jax.device_put(x, NamedSharding(mesh, P("data", None)))
  sharded_y = jax.device_put(y, NamedSharding(mesh, P("data")))
  sharded = run(sharded_params, sharded_x, sharded_y)

  diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in
             zip(jax.tree.leaves(single), jax.tree.leaves(sharded)))
  kept = all(leaf.sharding.is_equivalent_to(s, leaf.ndim) for leaf, s in
             zip(jax.tree.leaves(sharded), jax.tree.leaves(shardings)))
  kernel = np.asarray(sharded["hidden"]["kernel"])
  print(json.dumps({
      "devices": jax.device_count(),
      "max_abs_diff": diff,
      "sharding_kept": kept,
      "shards": len(sharded["hidden"]["kernel"].addressable_shards),
      "dead_inputs": int(np.sum(~kernel.any(axis=1))),
      "l11_norm": float(np.abs(kernel).sum()),
  }))


if __name__ == "__main__":
  main()
