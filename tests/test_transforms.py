"""The projecting Optax transformations and apply_mask."""

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state

import sparse_optax
from sparse_optax import projections

import numpy_reference

FACTORIES = {
    "project_l1": (sparse_optax.project_l1, projections.l1_ball, "l1_ball"),
    "project_l21": (sparse_optax.project_l21, projections.l21_ball, "l21_ball"),
    "project_l11": (sparse_optax.project_l11, projections.l11_ball, "l11_ball"),
    "project_l1inf": (sparse_optax.project_l1inf, projections.l1inf_ball, "l1inf_ball"),
    "project_bilevel_l1inf": (sparse_optax.project_bilevel_l1inf,
                              projections.bilevel_l1inf_ball, "bilevel_l1inf_ball"),
}
# Default grouping: one group per input feature, i.e. every axis but -2 is reduced.
IN_GROUPS = {2: (1,), 4: (0, 1, 3)}


def make_params(seed=0):
  rng = np.random.default_rng(seed)
  return {
      "conv": {"kernel": jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.float32),
               "bias": jnp.asarray(rng.standard_normal(4), jnp.float32)},
      "dense": {"kernel": jnp.asarray(rng.standard_normal((8, 5)), jnp.float32),
                "bias": jnp.zeros(5, jnp.float32)},
  }


def random_grads(params, seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)


def manual_project(name, leaf, radius):
  _, projection, _ = FACTORIES[name]
  if name == "project_l1":
    return projection(leaf, radius)
  return projection(leaf, radius, axis=IN_GROUPS[leaf.ndim])


@pytest.mark.parametrize("name", FACTORIES)
def test_chain_equals_manual_step_then_projection(name):
  factory, _, _ = FACTORIES[name]
  eta = 3.0
  params = make_params()
  tx = optax.chain(optax.adam(0.1), factory(eta))
  adam = optax.adam(0.1)
  state, adam_state = tx.init(params), adam.init(params)
  manual = params
  for step in range(3):
    grads = random_grads(params, step)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    # The same step by hand: Adam, apply, project the kernels.
    adam_updates, adam_state = adam.update(random_grads(manual, step), adam_state, manual)
    stepped = optax.apply_updates(manual, adam_updates)
    manual = jax.tree.map(lambda p: manual_project(name, p, eta) if p.ndim >= 2 else p, stepped)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(manual)):
      np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def mlp_loss(params, x, y):
  h = jax.nn.relu(x @ params["hidden"]["kernel"] + params["hidden"]["bias"])
  return jnp.mean((h @ params["out"]["kernel"] + params["out"]["bias"] - y) ** 2)


def mlp_problem(seed=0):
  rng = np.random.default_rng(seed)
  params = {"hidden": {"kernel": jnp.asarray(rng.standard_normal((12, 16)) * 0.3, jnp.float32),
                       "bias": jnp.zeros(16, jnp.float32)},
            "out": {"kernel": jnp.asarray(rng.standard_normal((16, 3)) * 0.3, jnp.float32),
                    "bias": jnp.zeros(3, jnp.float32)}}
  x = jnp.asarray(rng.standard_normal((64, 12)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((64, 3)), jnp.float32)
  return params, x, y


@pytest.mark.parametrize("name", FACTORIES)
def test_every_step_is_feasible_and_biases_follow_plain_adam(name):
  factory, _, ref_name = FACTORIES[name]
  eta = 2.0
  params, x, y = mlp_problem()
  tx = optax.chain(optax.adam(0.05), factory(eta))
  adam = optax.adam(0.05)
  state, adam_state = tx.init(params), adam.init(params)
  # Both eagerly, op by op, so that "exactly" can mean bit for bit.
  for _ in range(15):
    grads = jax.grad(mlp_loss)(params, x, y)
    updates, state = tx.update(grads, state, params)
    adam_updates, adam_state = adam.update(grads, adam_state, params)
    for layer in ("hidden", "out"):
      np.testing.assert_array_equal(updates[layer]["bias"], adam_updates[layer]["bias"])
    params = optax.apply_updates(params, updates)
    for layer in ("hidden", "out"):
      kernel = np.asarray(params[layer]["kernel"])
      assert numpy_reference.ball_norm(ref_name, kernel, axis=-1) <= eta * (1 + 1e-5)


def train_planted(make_tx, steps=400):
  """y depends on the first 4 of 24 input features: the kernel after training
  with ``make_tx(eta)``, eta 0.8 times the signal's ℓ1,1 norm."""
  rng = np.random.default_rng(0)
  signal = rng.uniform(1.0, 2.0, (4, 3)) * rng.choice([-1, 1], (4, 3))
  x = jnp.asarray(rng.standard_normal((256, 24)), jnp.float32)
  y = x[:, :4] @ signal + 0.05 * rng.standard_normal((256, 3))
  loss = lambda p: jnp.mean((x @ p["kernel"] - y) ** 2)
  params = {"kernel": jnp.zeros((24, 3), jnp.float32)}
  tx = make_tx(0.8 * float(np.abs(signal).sum()))
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(steps):
    params, state = step(params, state)
  return np.asarray(params["kernel"])


def test_planted_features_are_found_by_l11():
  # The ℓ1,1 constraint on the kernel (groups = input features) must zero the
  # 20 noise rows exactly. Algorithm 1 as written: a gradient step, then the
  # projection.
  kernel = train_planted(lambda eta: optax.chain(optax.sgd(0.1), sparse_optax.project_l11(eta)))
  assert np.all(kernel[4:] == 0.0)
  assert np.all(np.abs(kernel[:4]).sum(axis=1) > 0.1)


def test_eta_forms_select_leaves():
  params = make_params()
  grads = random_grads(params, 1)
  # A pytree: only the dense kernel, None elsewhere.
  eta_tree = {"conv": {"kernel": None, "bias": None}, "dense": {"kernel": 1.0, "bias": None}}
  tx = optax.chain(optax.sgd(0.1), sparse_optax.project_l11(eta_tree))
  new = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
  sgd = optax.sgd(0.1)
  plain = optax.apply_updates(params, sgd.update(grads, sgd.init(params))[0])
  np.testing.assert_array_equal(new["conv"]["kernel"], plain["conv"]["kernel"])
  assert float(jnp.abs(new["dense"]["kernel"]).sum()) <= 1.0 + 1e-5
  # A callable on paths: skip the first layer, as the paper does for Net4.
  skip_conv = lambda path, leaf: None if path[0].key == "conv" or leaf.ndim < 2 else 1.0
  tx = optax.chain(optax.sgd(0.1), sparse_optax.project_l11(skip_conv))
  again = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
  for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(new)):
    np.testing.assert_array_equal(a, b)


def test_groups_out_and_explicit_axis():
  params = {"kernel": jnp.asarray(np.random.default_rng(2).standard_normal((6, 4)), jnp.float32)}
  zero = jax.tree.map(jnp.zeros_like, params)
  out = sparse_optax.lottery.project_once(params, sparse_optax.project_l11(2.0, groups="out"))
  np.testing.assert_allclose(out["kernel"], projections.l11_ball(params["kernel"], 2.0, axis=0))
  explicit = sparse_optax.project_l11(2.0, axis=0)
  updates, _ = explicit.update(zero, explicit.init(params), params)
  np.testing.assert_allclose(optax.apply_updates(params, updates)["kernel"], out["kernel"])
  dead_outputs = np.sum(~np.asarray(out["kernel"]).any(axis=0))
  assert dead_outputs > 0


def test_every_k_projects_only_on_kth_steps():
  params = {"kernel": jnp.full((4, 4), 1.0)}
  tx = optax.chain(optax.sgd(-0.5), sparse_optax.project_l1(2.0, every=3))
  state = tx.init(params)
  grads = {"kernel": jnp.ones((4, 4))}
  norms = []
  for _ in range(6):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    norms.append(float(jnp.abs(params["kernel"]).sum()))
  # Steps 1, 2 grow by 8 each; step 3 projects; steps 4, 5 grow; step 6 projects.
  np.testing.assert_allclose(norms, [24.0, 32.0, 2.0, 10.0, 18.0, 2.0], rtol=1e-6)


def test_zeros_are_exact_after_apply_updates():
  params = make_params()
  grads = random_grads(params, 3)
  tx = optax.chain(optax.adam(0.3), sparse_optax.project_l11(1.0))
  new = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
  adam = optax.adam(0.3)
  stepped = optax.apply_updates(params, adam.update(grads, adam.init(params))[0])
  expected = np.asarray(projections.l11_ball(stepped["dense"]["kernel"], 1.0))
  kernel = np.asarray(new["dense"]["kernel"])
  assert np.sum(expected == 0) > kernel.size // 2
  np.testing.assert_array_equal(kernel == 0.0, expected == 0.0)
  np.testing.assert_allclose(kernel, expected, rtol=1e-6, atol=1e-7)


def test_inject_hyperparams_changes_eta_during_training():
  params = {"kernel": jnp.asarray(np.random.default_rng(4).standard_normal((6, 5)), jnp.float32)}
  tx = optax.inject_hyperparams(sparse_optax.project_l11)(eta=5.0)
  state = tx.init(params)
  zero = jax.tree.map(jnp.zeros_like, params)
  step = jax.jit(tx.update)
  updates, state = step(zero, state, params)
  assert float(jnp.abs(optax.apply_updates(params, updates)["kernel"]).sum()) == pytest.approx(5.0, rel=1e-5)
  state.hyperparams["eta"] = jnp.asarray(2.0)
  updates, state = step(zero, state, params)
  assert float(jnp.abs(optax.apply_updates(params, updates)["kernel"]).sum()) == pytest.approx(2.0, rel=1e-5)


def test_multisteps_projects_after_accumulating():
  params = {"kernel": jnp.ones((3, 3))}
  tx = optax.MultiSteps(optax.chain(optax.sgd(-1.0), sparse_optax.project_l11(1.0)), every_k_schedule=2)
  state = tx.init(params)
  grads = {"kernel": jnp.ones((3, 3))}
  first, state = tx.update(grads, state, params)
  np.testing.assert_array_equal(first["kernel"], 0.0)  # still accumulating
  second, state = tx.update(grads, state, params)
  new = optax.apply_updates(params, second)
  assert float(jnp.abs(new["kernel"]).sum()) == pytest.approx(1.0, rel=1e-5)


def test_optax_masked_projects_only_the_masked_subset():
  params = make_params()
  mask = {"conv": {"kernel": False, "bias": False}, "dense": {"kernel": True, "bias": False}}
  tx = optax.chain(optax.sgd(0.0), optax.masked(sparse_optax.project_l11(1.0), mask))
  new = optax.apply_updates(params, tx.update(random_grads(params, 0), tx.init(params), params)[0])
  np.testing.assert_array_equal(new["conv"]["kernel"], params["conv"]["kernel"])
  np.testing.assert_allclose(new["dense"]["kernel"], projections.l11_ball(params["dense"]["kernel"], 1.0))


class TinyMLP(nnx.Module):
  def __init__(self, rngs):
    self.hidden = nnx.Linear(12, 16, rngs=rngs)
    self.out = nnx.Linear(16, 3, rngs=rngs)

  def __call__(self, x):
    return self.out(jax.nn.relu(self.hidden(x)))


def test_flax_nnx_optimizer():
  model = TinyMLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.chain(optax.adam(1e-2), sparse_optax.project_l11(3.0)),
                            wrt=nnx.Param)
  _, x, y = mlp_problem()

  @nnx.jit
  def train_step(model, optimizer):
    grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    optimizer.update(model, grads)

  for _ in range(5):
    train_step(model, optimizer)
  for layer in (model.hidden, model.out):
    assert float(jnp.abs(layer.kernel[...]).sum()) <= 3.0 * (1 + 1e-5)
    assert float(jnp.abs(layer.bias[...]).sum()) > 0  # biases trained, not projected


def test_flax_linen_train_state():
  module = flax.linen.Dense(4)
  x = jnp.ones((2, 10))
  variables = module.init(jax.random.key(0), x)
  state = train_state.TrainState.create(
      apply_fn=module.apply, params=variables["params"],
      tx=optax.chain(optax.sgd(0.1), sparse_optax.project_l21(0.5)))
  grads = jax.grad(lambda p: jnp.sum(module.apply({"params": p}, x) ** 2))(state.params)
  state = state.apply_gradients(grads=grads)
  assert float(jnp.linalg.norm(state.params["kernel"], axis=-1).sum()) <= 0.5 * (1 + 1e-5)


def test_apply_mask_freezes_entries_through_adamw_and_momentum():
  params = make_params()
  mask = jax.tree.map(lambda p: jnp.asarray(np.random.default_rng(1).uniform(size=p.shape) < 0.5), params)
  mask["conv"]["bias"] = None  # unmasked leaf
  tx = optax.chain(optax.adamw(0.1, weight_decay=0.5), optax.trace(0.9),
                   sparse_optax.apply_mask(mask))
  state = tx.init(params)
  start = params
  for step in range(5):
    updates, state = tx.update(random_grads(params, step), state, params)
    params = optax.apply_updates(params, updates)
  masks = jax.tree.leaves(mask, is_leaf=lambda m: m is None)
  for m, p0, p in zip(masks, jax.tree.leaves(start), jax.tree.leaves(params)):
    m = np.ones(np.shape(p), bool) if m is None else np.asarray(m)
    np.testing.assert_array_equal(np.asarray(p)[~m], np.asarray(p0)[~m])
    assert np.all(np.asarray(p)[m] != np.asarray(p0)[m])


# Bad input.

def test_params_none_says_to_chain_last():
  tx = sparse_optax.project_l11(1.0)
  params = make_params()
  with pytest.raises(ValueError, match="needs the parameters.*last"):
    tx.update(params, tx.init(params))


def test_eta_pytree_must_match_params():
  params = make_params()
  with pytest.raises(ValueError, match="eta pytree does not match"):
    sparse_optax.project_l11({"dense": {"kernel": 1.0}}).init(params)


@pytest.mark.parametrize("eta", [-1.0, {"conv": {"kernel": None, "bias": None},
                                         "dense": {"kernel": -2.0, "bias": None}}])
def test_negative_radius(eta):
  with pytest.raises(ValueError, match="eta must be a number >= 0"):
    sparse_optax.project_l11(eta).init(make_params())


def test_radius_messages_name_the_leaf_only_when_there_is_one():
  with pytest.raises(ValueError, match=r"^project_l11: eta must be a number >= 0, got -1.0\.$"):
    sparse_optax.project_l11(-1.0)
  with pytest.raises(ValueError, match=r"got nan for \['dense'\]\['kernel'\]\.$"):
    sparse_optax.project_l21({"conv": {"kernel": None, "bias": None},
                              "dense": {"kernel": float("nan"), "bias": None}}).init(make_params())


def test_leaf_that_cannot_be_grouped():
  params = make_params()
  eta = {"conv": {"kernel": None, "bias": 1.0}, "dense": {"kernel": None, "bias": None}}
  with pytest.raises(ValueError, match=r"\['conv'\]\['bias'\].*at least 2"):
    sparse_optax.project_l11(eta).init(params)
  with pytest.raises(ValueError, match="out of range"):
    tx = sparse_optax.project_l11(1.0, axis=3)
    tx.update(params, tx.init(params), params)


@pytest.mark.parametrize("kwargs,message", [
    ({"groups": "rows"}, "groups must be one of"), ({"every": 0}, "every must be a positive"),
    ({"every": 1.5}, "every must be a positive")])
def test_bad_options(kwargs, message):
  with pytest.raises(ValueError, match=message):
    sparse_optax.project_l11(1.0, **kwargs)


def zero_groups(kernel, axis=1):
  return set(np.flatnonzero(~np.asarray(kernel).any(axis=axis)).tolist())


@pytest.mark.parametrize("name", FACTORIES)
def test_freeze_dead_never_revives_a_zeroed_group(name):
  factory, _, _ = FACTORIES[name]
  params = {"kernel": jnp.asarray(np.random.default_rng(5).standard_normal((40, 6)), jnp.float32),
            "bias": jnp.zeros(6, jnp.float32)}
  tx = optax.chain(optax.adam(0.05), factory(6.0, freeze_dead=True))
  state = tx.init(params)
  step = jax.jit(tx.update)
  dead, grew = set(), 0
  for i in range(200):
    updates, state = step(random_grads(params, i), state, params)
    params = optax.apply_updates(params, updates)
    if name == "project_l1":  # unstructured: each entry is its own group
      now = set(np.flatnonzero(np.asarray(params["kernel"]).ravel() == 0).tolist())
    else:
      now = zero_groups(params["kernel"])
    assert dead <= now
    grew += len(now - dead)
    dead = now
  assert grew > 0
  alive = np.asarray(state[1].alive["kernel"])
  if name != "project_l1":
    np.testing.assert_array_equal(alive, np.asarray(params["kernel"]).any(axis=1, keepdims=True)
                                  .repeat(6, axis=1))
  assert state[1].alive["bias"] is None


def test_freeze_dead_keeps_entries_zeroed_inside_a_surviving_group_trainable():
  params = {"kernel": jnp.array([[3.0, 0.2], [0.1, 0.1]])}
  tx = optax.chain(optax.sgd(1.0), sparse_optax.project_l11(2.0, freeze_dead=True))
  state = tx.init(params)
  updates, state = tx.update({"kernel": jnp.zeros((2, 2))}, state, params)
  params = optax.apply_updates(params, updates)
  np.testing.assert_allclose(params["kernel"], [[2.0, 0.0], [0.0, 0.0]])
  np.testing.assert_array_equal(state[1].alive["kernel"], [[True, True], [False, False]])
  # A gradient pushing every entry: the zero inside row 0 moves, row 1 stays at 0.
  updates, state = tx.update({"kernel": jnp.full((2, 2), -0.1)}, state, params)
  params = optax.apply_updates(params, updates)
  kernel = np.asarray(params["kernel"])
  assert kernel[0, 1] != 0.0 and np.all(kernel[1] == 0.0)


def test_freeze_dead_with_every_k_masks_the_steps_between_projections():
  params = {"kernel": jnp.array([[3.0, 1.0], [0.5, 0.5]])}
  tx = optax.chain(optax.sgd(-0.1), sparse_optax.project_l11(2.0, every=2, freeze_dead=True))
  state = tx.init(params)
  grads = {"kernel": jnp.ones((2, 2))}
  rows = []
  for _ in range(5):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    rows.append(np.asarray(params["kernel"])[1].copy())
  assert np.all(rows[0] != 0)  # step 1 does not project
  for row in rows[1:]:  # step 2 zeroes row 1; steps 3, 4 and 5 keep it there
    np.testing.assert_array_equal(row, 0.0)


def test_planted_features_are_found_by_l11_with_adam_and_freeze_dead():
  # With Adam, whose steps have about the same size for every weight, a zeroed
  # noise row grows back at the next step unless it is frozen.
  kernels = {freeze: train_planted(lambda eta, freeze=freeze: optax.chain(
      optax.adam(0.1), sparse_optax.project_l11(eta, freeze_dead=freeze)))
             for freeze in (False, True)}
  frozen = kernels[True]
  assert np.sum(~frozen[4:].any(axis=1)) >= 18
  assert np.all(np.abs(frozen[:4]).sum(axis=1) > 0.1)
  assert np.sum(~kernels[False][4:].any(axis=1)) < np.sum(~frozen[4:].any(axis=1))


def test_freeze_dead_must_be_a_bool():
  with pytest.raises(TypeError, match="freeze_dead must be True or False"):
    sparse_optax.project_l11(1.0, freeze_dead="yes")
