"""The epochs on the devices against a step-by-step loop from the host."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import sparse_optax
from experiments import data, steps
from sparse_optax import models


def _model_and_optimizer():
  # Small enough for one branch of the threshold search: the model is not the point.
  rngs = nnx.Rngs(0)
  model = models.LayerStack([("flatten", models.Flatten()),
                             ("fc1", models.linear(28 * 28, 24, rngs=rngs)),
                             ("relu", models.ReLU()), ("fc2", models.linear(24, 10, rngs=rngs))])
  tx = optax.chain(optax.adam(1e-2), sparse_optax.project_l11(3.0))
  return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


def _conv_model_and_optimizer():
  rngs = nnx.Rngs(0)
  model = models.LayerStack([
      ("conv", models.conv(1, 4, 5, rngs=rngs)), ("pool", models.MaxPool(2)),
      ("relu", models.ReLU()), ("flatten", models.Flatten()),
      ("fc", models.linear(12 * 12 * 4, 10, rngs=rngs))])
  tx = optax.chain(optax.adam(1e-2), sparse_optax.project_l11(3.0))
  return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


@pytest.mark.parametrize("make", [_model_and_optimizer, _conv_model_and_optimizer])
def test_compiled_steps_equal_a_step_by_step_loop_over_the_same_batches(tiny, make):
  """Scanned (dense), or one call per step (convolutions on a CPU): the same."""
  dataset = data.load("mnist", str(tiny), verify=False)
  on_devices = steps.to_devices(dataset, steps.data_mesh(jax.devices()[:1]), 32)
  order = steps.epoch_order(3, 2, len(dataset.train_images), 32)[:5]

  model, optimizer = make()
  reference_losses = []
  for index in np.asarray(order):
    x = data.normalise(dataset.train_images[index], dataset.mean, dataset.std)
    reference_losses.append(steps.train_step(steps.TrainState(model, optimizer), x,
                                             dataset.train_labels[index]))

  trained = make()
  reported = []  # the progress bar's view: steps done, and whether they had run
  losses = steps.train_steps(steps.TrainState(*trained), on_devices, order,
                             lambda done, loss: reported.append((done, loss.is_ready())))
  assert [done for done, _ in reported][-1] == 5 and all(ready for _, ready in reported)

  np.testing.assert_allclose(losses, np.stack(reference_losses), rtol=1e-5)
  for ours, reference in zip(jax.tree.leaves(steps.params_of(trained[0])),
                             jax.tree.leaves(steps.params_of(model))):
    # Float32 rounding differs between the compiled steps and numpy's
    # standardisation: a few weights move by ~4e-6 after the projection.
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=2e-5)
    np.testing.assert_array_equal(np.asarray(ours) == 0, np.asarray(reference) == 0)


def test_convolutional_models_take_one_call_per_step_on_a_cpu():
  convolutional = 1 if jax.default_backend() == "cpu" else steps.CHUNK_STEPS
  assert steps.steps_per_call(_conv_model_and_optimizer()[0]) == convolutional
  assert steps.steps_per_call(_model_and_optimizer()[0]) == steps.CHUNK_STEPS


def test_epoch_order_is_a_permutation_drawn_from_seed_and_epoch():
  order = np.asarray(steps.epoch_order(0, 1, 100, 32))
  assert order.shape == (3, 32)  # the last incomplete batch is dropped
  assert len(set(order.ravel())) == 96 and order.max() < 100
  np.testing.assert_array_equal(order, steps.epoch_order(0, 1, 100, 32))
  assert not np.array_equal(order, steps.epoch_order(0, 2, 100, 32))
  assert not np.array_equal(order, steps.epoch_order(1, 1, 100, 32))


def test_evaluation_counts_only_the_real_test_images(tiny):
  dataset = data.load("mnist", str(tiny), verify=False)  # 64 test images: two padded batches of 48
  on_devices = steps.to_devices(dataset, steps.data_mesh(jax.devices()[:1]), 48)
  model, _ = _model_and_optimizer()
  x = data.normalise(dataset.test_images, dataset.mean, dataset.std)
  expected = np.mean(np.asarray(jax.numpy.argmax(model(x), -1)) == dataset.test_labels)
  assert steps.evaluate(model, on_devices, 48, len(dataset.test_images)) == expected
