"""The lottery stage (Algorithm 4) as pure functions over pytrees."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sparse_optax
from sparse_optax import lottery, projections

from test_transforms import mlp_loss, mlp_problem


def train(params, tx, x, y, steps, after_step=lambda params: None):
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(mlp_loss)(params, x, y), state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(steps):
    params, state = step(params, state)
    after_step(params)
  return params


def test_algorithm_4_keeps_pruned_weights_exactly_zero():
  init, x, y = mlp_problem()
  trained = train(init, optax.adam(0.02), x, y, 50)
  projected = lottery.project_once(trained, sparse_optax.project_l11(4.0))
  mask = lottery.survivors(projected)
  assert mask["hidden"]["bias"] is None and mask["out"]["bias"] is None
  hidden_mask = np.asarray(mask["hidden"]["kernel"])
  assert 0 < hidden_mask.sum() < hidden_mask.size
  assert np.any(~hidden_mask.any(axis=1))  # whole input features removed

  rewound = lottery.rewind(init, mask)
  for layer in ("hidden", "out"):
    np.testing.assert_array_equal(
        rewound[layer]["kernel"], np.where(mask[layer]["kernel"], init[layer]["kernel"], 0.0))
    np.testing.assert_array_equal(rewound[layer]["bias"], init[layer]["bias"])

  def check(params):
    for layer in ("hidden", "out"):
      pruned = ~np.asarray(mask[layer]["kernel"])
      assert np.all(np.asarray(params[layer]["kernel"])[pruned] == 0.0)

  tx = lottery.retrain_optimizer(optax.adamw(0.02, weight_decay=0.1), mask)
  retrained = train(rewound, tx, x, y, 40, after_step=check)
  surviving = np.asarray(mask["hidden"]["kernel"])
  assert np.all(np.asarray(retrained["hidden"]["kernel"])[surviving]
                != np.asarray(rewound["hidden"]["kernel"])[surviving])
  assert mlp_loss(retrained, x, y) < mlp_loss(rewound, x, y)


def test_project_once_is_the_projection_of_each_kernel():
  params, _, _ = mlp_problem(1)
  projected = lottery.project_once(params, sparse_optax.project_l11(2.0))
  for layer in ("hidden", "out"):
    np.testing.assert_allclose(projected[layer]["kernel"],
                               projections.l11_ball(params[layer]["kernel"], 2.0), rtol=1e-6)
    np.testing.assert_array_equal(projected[layer]["bias"], params[layer]["bias"])


def test_survivors_selection_forms():
  params = {"a": jnp.array([[0.0, 1.0]]), "b": jnp.array([[2.0, 0.0]]), "c": jnp.zeros(3)}
  only_a = lottery.survivors(params, {"a": True, "b": None, "c": None})
  assert only_a["b"] is None and only_a["c"] is None
  np.testing.assert_array_equal(only_a["a"], [[False, True]])
  by_path = lottery.survivors(params, lambda path, leaf: path[0].key != "a")
  assert by_path["a"] is None
  np.testing.assert_array_equal(by_path["c"], [False, False, False])
