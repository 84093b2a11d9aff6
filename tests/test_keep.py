"""A sparsity target instead of a radius: keep= on the transformations, keep_radius."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparse_optax
from experiments.benchmarks import exact
from sparse_optax import projections

BALLS = {"project_l1": "l1_ball", "project_l21": "l21_ball", "project_l11": "l11_ball",
         "project_bilevel_l1inf": "bilevel_l1inf_ball"}


def survivors(name, kernel):
  """Groups (rows) with a non-zero entry; entries for the ℓ1 ball."""
  kernel = np.asarray(kernel)
  return int((kernel != 0).sum()) if name == "project_l1" else int(kernel.any(axis=1).sum())


def numpy_keep_radius(x, keep, ball):
  """η* = Σ_{g ≤ k} (n_(g) − n_(k+1)) from the sorted norms, in float64."""
  x = np.asarray(x, np.float64)
  values = {"l1_ball": np.abs(x).ravel(), "l21_ball": np.linalg.norm(x, axis=1),
            "l11_ball": np.abs(x).sum(axis=1), "bilevel_l1inf_ball": np.abs(x).max(axis=1)}[ball]
  n = np.sort(values)[::-1]
  k = int(round(keep * n.size))
  next_largest = n[k] if k < n.size else 0.0
  return float(np.sum(n[:k] - next_largest))


@pytest.mark.parametrize("ball", list(BALLS.values()))
@pytest.mark.parametrize("keep", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_keep_radius_is_the_closed_form(ball, keep, x64):
  x = np.random.default_rng(0).standard_normal((40, 12))
  got = float(projections.keep_radius(jnp.asarray(x), keep, ball=ball))
  np.testing.assert_allclose(got, numpy_keep_radius(x, keep, ball), rtol=1e-12)


@pytest.mark.parametrize("transform", list(BALLS))
@pytest.mark.parametrize("keep", [0.05, 0.25, 0.5])
@pytest.mark.parametrize("shape", [(60, 20), (300, 256)])  # the second is streamed
def test_exactly_k_groups_survive_and_it_is_the_projection_at_that_radius(transform, keep, shape,
                                                                         x64):
  ball = BALLS[transform]
  x = np.random.default_rng(1).standard_normal(shape)
  params = {"kernel": jnp.asarray(x)}
  tx = optax.chain(optax.sgd(0.0), getattr(sparse_optax, transform)(keep=keep))
  updates, _ = tx.update(params, tx.init(params), params)
  got = np.asarray(optax.apply_updates(params, updates)["kernel"])
  groups = x.size if transform == "project_l1" else shape[0]
  assert survivors(transform, got) == round(keep * groups)
  eta = numpy_keep_radius(x, keep, ball)
  np.testing.assert_allclose(got, exact.projection(ball, x, eta), rtol=0, atol=1e-9)


def test_keep_one_leaves_the_parameters_and_zero_removes_everything():
  params = {"kernel": jax.random.normal(jax.random.key(0), (8, 5))}
  for keep, expected in [(1.0, params["kernel"]), (0.0, jnp.zeros((8, 5)))]:
    tx = optax.chain(optax.sgd(0.0), sparse_optax.project_l11(keep=keep))
    updates, _ = tx.update(params, tx.init(params), params)
    np.testing.assert_array_equal(optax.apply_updates(params, updates)["kernel"], expected)


@pytest.mark.parametrize("transform", ["project_l21", "project_l11", "project_bilevel_l1inf"])
def test_with_freeze_dead_never_more_than_k_groups_survive(transform):
  key = jax.random.key(2)
  params = {"kernel": jax.random.normal(key, (50, 16))}
  tx = optax.chain(optax.adam(0.05), getattr(sparse_optax, transform)(keep=0.2, freeze_dead=True))
  state = tx.init(params)
  step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(
      *tx.update(g, s, p)))
  dead = np.zeros(50, bool)
  for t in range(60):
    grads = {"kernel": jax.random.normal(jax.random.fold_in(key, t), (50, 16))}
    params, state = step(params, state, grads)
    alive = np.asarray(params["kernel"]).any(axis=1)
    assert alive.sum() <= 10
    assert not (alive & dead).any()  # a frozen group stays removed
    dead |= ~alive


def test_keep_takes_per_leaf_values_and_callables():
  params = {"a": jax.random.normal(jax.random.key(3), (20, 4)),
            "b": jax.random.normal(jax.random.key(4), (10, 4)), "bias": jnp.ones(4)}
  by_tree = sparse_optax.project_l21(keep={"a": 0.5, "b": None, "bias": None})
  by_path = sparse_optax.project_l21(keep=lambda path, leaf: 0.3 if leaf.shape[0] == 10 else None)
  for tx, counts in [(by_tree, (10, 10)), (by_path, (20, 3))]:
    chain = optax.chain(optax.sgd(0.0), tx)
    new = optax.apply_updates(params, chain.update(params, chain.init(params), params)[0])
    assert (survivors("project_l21", new["a"]), survivors("project_l21", new["b"])) == counts
    np.testing.assert_array_equal(new["bias"], params["bias"])


def test_keep_as_an_injected_hyperparameter():
  params = {"kernel": jax.random.normal(jax.random.key(5), (40, 8))}
  tx = optax.chain(optax.sgd(0.0), optax.inject_hyperparams(sparse_optax.project_l11)(keep=0.5))
  state = tx.init(params)
  state[1].hyperparams["keep"] = jnp.asarray(0.25)
  updates, _ = jax.jit(tx.update)(params, state, params)
  assert survivors("project_l11", optax.apply_updates(params, updates)["kernel"]) == 10


def test_keep_inside_the_lottery():
  params = {"kernel": jax.random.normal(jax.random.key(6), (30, 6))}
  tx = sparse_optax.lottery_ticket(optax.adam(0.01), sparse_optax.project_l11(keep=0.2),
                                   prune_at=3)
  state = tx.init(params)
  for t in range(6):
    grads = {"kernel": jax.random.normal(jax.random.fold_in(jax.random.key(7), t), (30, 6))}
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  assert survivors("project_l11", params["kernel"]) == 6


@pytest.mark.parametrize("bad,message", [
    (dict(eta=1.0, keep=0.5), "give eta .* or keep .*, not both"),
    (dict(), r"give eta \(a radius\) or keep"),
    (dict(keep=1.5), r"keep must be in \[0, 1\], got 1.5"),
    (dict(keep=[0.5]), "the keep pytree does not match the parameters"),
])
def test_keep_errors(bad, message):
  params = {"kernel": jnp.ones((4, 3))}
  with pytest.raises(ValueError, match=message):
    sparse_optax.project_l21(**bad).init(params)


def test_ties_keep_fewer_not_more():
  x = jnp.asarray([[2.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.5, 0.0]])
  tx = optax.chain(optax.sgd(0.0), sparse_optax.project_l21(keep=0.5))
  new = optax.apply_updates({"k": x}, tx.update({"k": x}, tx.init({"k": x}), {"k": x})[0])["k"]
  assert survivors("project_l21", new) == 1  # the 2nd and 3rd largest tie
