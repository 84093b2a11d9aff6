"""The paper's networks: layouts, sizes, exact dense MACCs, modes."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import sparse_optax
from sparse_optax import metrics, models

# name: (constructor, input batch, exact dense MACCs, parameter count), both
# counted by hand from the layer list in ANCHORS.md.
SIMPLENET_CONVS = [(3, 64, 3, 32), (64, 128, 3, 32), (128, 128, 3, 32), (128, 128, 3, 32),
                   (128, 128, 3, 16), (128, 128, 3, 16), (128, 256, 3, 16),
                   (256, 256, 3, 8), (256, 256, 3, 8), (256, 512, 3, 4),
                   (512, 2048, 1, 2), (2048, 256, 1, 2), (256, 256, 3, 1)]
SIMPLENET_MACCS = sum(k * k * cin * cout * side * side for cin, cout, k, side in SIMPLENET_CONVS) + 2560
SIMPLENET_PARAMS = (sum(k * k * cin * cout + cout + 2 * cout for cin, cout, k, _ in SIMPLENET_CONVS)
                    + 2570)
MODELS = {
    "net4": (models.Net4, (2, 28, 28, 1), 24 * 24 * 10 * 25 + 8 * 8 * 20 * 250 + 320 * 50 + 50 * 10,
             260 + 5020 + 16050 + 510),
    "lenet300": (models.LeNet300_100, (2, 784), 784 * 300 + 300 * 100 + 100 * 10,
                 785 * 300 + 301 * 100 + 101 * 10),
    "lfc4": (models.LFC4, (2, 784), 784 * 768 + 3 * 768 * 768 + 768 * 10,
             785 * 768 + 3 * 769 * 768 + 769 * 10),
    "simplenet": (models.SimpleNet, (2, 32, 32, 3), SIMPLENET_MACCS, SIMPLENET_PARAMS),
}


def test_dense_maccs_are_the_papers():
  # ANCHORS.md: Net4 480.5 k, LeNet-300-100 266.2 k, LFC4 2379.264 k, SimpleNet 631.5 M.
  assert MODELS["net4"][2] == 480_500
  assert MODELS["lenet300"][2] == 266_200
  assert MODELS["lfc4"][2] == 2_379_264
  assert SIMPLENET_MACCS == 631_507_456
  assert 5.4e6 < SIMPLENET_PARAMS < 5.6e6


# SimpleNet's report traces a 5.5 M-parameter network: the slow CI step checks it.
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name == "simplenet"
                                  else name for name in MODELS])
def test_report_counts_the_exact_dense_maccs_and_params(name):
  build, shape, maccs, params = MODELS[name]
  model = build(rngs=nnx.Rngs(0))
  report = metrics.report(model, jnp.zeros(shape))
  assert report.total.maccs_dense == maccs
  assert report.total.maccs_effective == maccs  # nothing is dead at initialisation
  assert report.total.params == params


@pytest.mark.parametrize("name", ["net4", "lenet300", "lfc4"])
def test_outputs_and_kernel_layouts(name):
  build, shape, _, _ = MODELS[name]
  model = build(rngs=nnx.Rngs(1))
  model.eval()
  x = jax.random.normal(jax.random.key(0), shape)
  assert model(x).shape == (shape[0], 10)
  for layer_name, layer in model.named_layers():
    if isinstance(layer, nnx.Linear):
      fan_in = layer.kernel.shape[0]
      assert layer.kernel.shape == (fan_in, layer.out_features)
      assert float(jnp.max(jnp.abs(layer.kernel[...]))) <= 1 / np.sqrt(fan_in)
    if isinstance(layer, nnx.Conv):
      assert layer.kernel.shape[:2] == layer.kernel_size and layer.kernel.ndim == 4


def test_fully_connected_models_take_flat_vectors_or_images():
  model = models.LFC4(rngs=nnx.Rngs(0))
  model.eval()
  x = jax.random.normal(jax.random.key(1), (3, 28, 28, 1))
  np.testing.assert_allclose(model(x), model(x.reshape(3, 784)), rtol=1e-6)


def test_dropout_only_in_training_mode():
  model = models.Net4(rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(2), (4, 28, 28, 1))
  model.eval()
  np.testing.assert_array_equal(model(x), model(x))
  model.train()
  assert not np.allclose(model(x), model(x))


@pytest.mark.slow
def test_simplenet_trains_a_step_with_batch_norm_statistics():
  model = models.SimpleNet(rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.chain(optax.adam(1e-3), sparse_optax.project_l11(50.0)),
                            wrt=nnx.Param)
  x = jax.random.normal(jax.random.key(3), (4, 32, 32, 3))
  y = jnp.array([0, 1, 2, 3])

  @nnx.jit
  def step(model, optimizer):
    loss = lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
    optimizer.update(model, nnx.grad(loss)(model))

  mean_before = np.asarray(model.bn1.mean[...]).copy()
  step(model, optimizer)
  assert not np.allclose(model.bn1.mean[...], mean_before)
  assert float(jnp.abs(model.conv2.kernel[...]).sum()) <= 50.0 * (1 + 1e-5)


@pytest.mark.slow
def test_paper_net4_setting_projects_conv2_and_fc1_only():
  model = models.Net4(rngs=nnx.Rngs(0))
  eta = lambda path, leaf: 40.0 if path[0].key in ("conv2", "fc1") and leaf.ndim >= 2 else None
  optimizer = nnx.Optimizer(model, optax.chain(optax.adam(1e-3), sparse_optax.project_l11(eta)),
                            wrt=nnx.Param)
  before = {name: np.asarray(getattr(model, name).kernel[...]).copy() for name in ("conv1", "fc2")}
  x = jax.random.normal(jax.random.key(4), (8, 28, 28, 1))
  y = jnp.arange(8) % 10
  model.eval()  # deterministic gradients
  grads = nnx.grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean())(model)
  optimizer.update(model, grads)
  assert float(jnp.abs(model.conv2.kernel[...]).sum()) <= 40.0 * (1 + 1e-5)
  assert float(jnp.abs(model.fc1.kernel[...]).sum()) <= 40.0 * (1 + 1e-5)
  for name in ("conv1", "fc2"):
    # Adam's first step moves each weight by lr * g / (|g| + eps) and no projection follows.
    g = np.asarray(getattr(grads, name).kernel[...])
    expected = before[name] - 1e-3 * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(getattr(model, name).kernel[...], expected, atol=1e-6)
