"""The lottery stage (Algorithm 4) as pure functions over pytrees."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

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


INNER_OPTIMIZERS = {
    "adam": lambda: optax.adam(0.02),
    "adamw": lambda: optax.adamw(0.02, weight_decay=1e-2),
    "sgd_momentum": lambda: optax.sgd(0.05, momentum=0.9),
}
PRUNE_AT = 30


def trajectory(params, tx, x, y, steps):
  """Every parameter pytree along ``steps`` jitted updates (the start first)."""
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(mlp_loss)(params, x, y), state, params)
    return optax.apply_updates(params, updates), state

  path = [params]
  for _ in range(steps):
    params, state = step(params, state)
    path.append(params)
  return path, state


def manual_lottery(inner, projection, init, x, y, *, retrain_steps, rewind_to=0):
  """Algorithm 4 by hand with the pure functions: train, project, mask, rewind, retrain."""
  dense, _ = trajectory(init, inner, x, y, PRUNE_AT)
  mask = lottery.survivors(lottery.project_once(dense[-1], projection))
  rewound = lottery.rewind(dense[rewind_to], mask)
  retrained, _ = trajectory(rewound, lottery.retrain_optimizer(inner, mask), x, y, retrain_steps)
  return mask, retrained


def assert_trees_close(got, want, **tolerance):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, **tolerance)


@pytest.mark.parametrize("inner_name", INNER_OPTIMIZERS)
@pytest.mark.parametrize("rewind_to", [0, 7])
def test_lottery_ticket_equals_the_manual_sequence(inner_name, rewind_to):
  init, x, y = mlp_problem()
  projection = sparse_optax.project_l11(4.0)
  mask, manual = manual_lottery(INNER_OPTIMIZERS[inner_name](), projection, init, x, y,
                                retrain_steps=20, rewind_to=rewind_to)
  tx = sparse_optax.lottery_ticket(INNER_OPTIMIZERS[inner_name](), projection,
                                   prune_at=PRUNE_AT, rewind_to=rewind_to)
  path, state = trajectory(init, tx, x, y, PRUNE_AT + 20)
  assert not np.all(np.asarray(mask["hidden"]["kernel"]))  # something was pruned
  for layer in ("hidden", "out"):
    np.testing.assert_array_equal(state.mask[layer]["kernel"], mask[layer]["kernel"])
    assert state.mask[layer]["bias"] is None
  # Right after the prune: the rewound parameters; then each retraining step.
  for got, want in zip(path[PRUNE_AT:], manual):
    assert_trees_close(got, want, rtol=2e-5, atol=2e-6)
    for layer in ("hidden", "out"):
      pruned = ~np.asarray(mask[layer]["kernel"])
      assert np.all(np.asarray(got[layer]["kernel"])[pruned] == 0.0)


def test_pruned_entries_stay_exactly_zero_through_adamw():
  init, x, y = mlp_problem(2)
  tx = sparse_optax.lottery_ticket(optax.adamw(0.05, weight_decay=1e-2),
                                   sparse_optax.project_l11(3.0), prune_at=10)
  path, state = trajectory(init, tx, x, y, 10 + 50)
  pruned = ~np.asarray(state.mask["hidden"]["kernel"])
  assert 0 < pruned.sum() < pruned.size
  for params in path[10:]:
    assert np.all(np.asarray(params["hidden"]["kernel"])[pruned] == 0.0)
  moved = np.asarray(path[-1]["hidden"]["kernel"]) != np.asarray(path[10]["hidden"]["kernel"])
  assert np.all(moved[~pruned])  # the survivors train


@pytest.mark.slow
def test_first_update_after_the_prune_is_a_fresh_optimizer_on_the_masked_gradient():
  init, x, y = mlp_problem(3)
  inner = optax.adam(0.03)
  tx = sparse_optax.lottery_ticket(inner, sparse_optax.project_l11(3.0), prune_at=15)
  path, state = trajectory(init, tx, x, y, 15)
  rewound = path[-1]
  grads = jax.grad(mlp_loss)(rewound, x, y)
  updates, _ = jax.jit(tx.update)(grads, state, rewound)
  masked_grads = lottery.rewind(grads, state.mask)  # zeros where pruned
  expected, _ = inner.update(masked_grads, inner.init(rewound), rewound)
  expected = lottery.rewind(expected, state.mask)
  assert_trees_close(updates, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_lottery_ticket_is_one_compilation_and_works_with_optax_wrappers():
  init, x, y = mlp_problem(4)
  traces = []
  tx = sparse_optax.lottery_ticket(
      optax.inject_hyperparams(optax.adam)(learning_rate=0.02),
      sparse_optax.project_l11(4.0), prune_at=5)
  state = tx.init(init)

  @jax.jit
  def step(params, state):
    traces.append(1)
    updates, state = tx.update(jax.grad(mlp_loss)(params, x, y), state, params)
    return optax.apply_updates(params, updates), state

  params = init
  for _ in range(12):
    params, state = step(params, state)
  assert len(traces) == 1
  assert float(state.inner.hyperparams["learning_rate"]) == pytest.approx(0.02)
  assert np.any(np.asarray(params["hidden"]["kernel"]) == 0.0)

  # optax.MultiSteps: the lottery sees one update every 2 micro-steps.
  multi = optax.MultiSteps(sparse_optax.lottery_ticket(
      optax.adam(0.02), sparse_optax.project_l11(4.0), prune_at=3), every_k_schedule=2)
  path, state = trajectory(init, multi, x, y, 8)
  assert int(state.inner_opt_state.count) == 4
  assert np.any(np.asarray(path[-1]["hidden"]["kernel"]) == 0.0)
  assert not np.any(np.asarray(path[5]["hidden"]["kernel"]) == 0.0)  # update 3 is micro-step 6


def test_lottery_ticket_with_a_flax_nnx_optimizer():
  from flax import nnx
  from test_transforms import TinyMLP

  model = TinyMLP(nnx.Rngs(0))
  initial = np.asarray(model.hidden.kernel[...])
  optimizer = nnx.Optimizer(
      model, sparse_optax.lottery_ticket(optax.adam(1e-2), sparse_optax.project_l11(3.0),
                                         prune_at=4), wrt=nnx.Param)
  _, x, y = mlp_problem()

  @nnx.jit
  def train_step(model, optimizer):
    grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    optimizer.update(model, grads)

  for _ in range(4):
    train_step(model, optimizer)
  kernel = np.asarray(model.hidden.kernel[...])
  kept = kernel != 0
  assert 0 < kept.sum() < kept.size
  np.testing.assert_allclose(kernel[kept], initial[kept], rtol=1e-5, atol=1e-6)
  train_step(model, optimizer)
  assert np.all(np.asarray(model.hidden.kernel[...])[~kept] == 0.0)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(prune_at=0), ValueError, "prune_at must be >= 1"),
    (dict(prune_at=5, rewind_to=5), ValueError, "rewind_to must be in [0, prune_at)"),
    (dict(prune_at=5, rewind_to=-1), ValueError, "rewind_to must be in [0, prune_at)"),
    (dict(prune_at=2.5), TypeError, "prune_at must be an int"),
])
def test_lottery_ticket_bad_schedule(kwargs, error, message):
  with pytest.raises(error, match=re.escape(message)):
    sparse_optax.lottery_ticket(optax.adam(1e-3), sparse_optax.project_l11(1.0), **kwargs)


def test_lottery_ticket_needs_a_projection_and_params():
  params, _, _ = mlp_problem()
  with pytest.raises(TypeError, match=r"one of the sparse_optax.project_\*"):
    sparse_optax.lottery_ticket(optax.adam(1e-3), optax.sgd(0.1), prune_at=3).init(params)
  with pytest.raises(TypeError, match="projection must be an optax transformation"):
    sparse_optax.lottery_ticket(optax.adam(1e-3), sparse_optax.projections.l11_ball, prune_at=3)
  tx = sparse_optax.lottery_ticket(optax.adam(1e-3), sparse_optax.project_l11(1.0), prune_at=3)
  with pytest.raises(ValueError, match=r"needs the parameters: call update\(updates, state, params\)"):
    tx.update(params, tx.init(params))
