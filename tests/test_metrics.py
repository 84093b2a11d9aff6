"""Dead units, effective MACCs, memory and entropy, on planted networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import sparse_optax
from sparse_optax import metrics, models

X = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))


def planted():
  """conv(SAME)-bn-relu-pool, conv(VALID)-relu, flatten, dense-relu, dense.

  Input 8x8x3 -> conv1 8x8x6 -> pool 4x4x6 -> conv2 2x2x8 -> 32 -> fc1 12 -> fc2 5,
  with these units made removable:
    conv1 out 2: zero fan-in (a constant, carried through batch norm, ReLU and
      pooling, folded into conv2's bias);
    conv1 out 4: zero fan-out into conv2;
    conv2 out 5: zero fan-in from live channels (its only weights come from
      the constant channel 2), so it is constant too, folded into fc1;
    conv2 out 7: every one of its 4 flattened features has zero fan-out;
    fc1 in 0 (channel 0 at position (0, 0)): zero fan-out, a lone feature;
    fc1 out 3: zero fan-in from live features (only from conv2's channel 5);
    fc1 out 9: zero fan-out into fc2.
  """
  rngs = nnx.Rngs(0)
  model = models.LayerStack([
      ("conv1", models.conv(3, 6, 3, padding="SAME", rngs=rngs)),
      ("bn1", nnx.BatchNorm(6, rngs=rngs)),
      ("relu1", models.ReLU()),
      ("pool1", models.MaxPool(2)),
      ("conv2", models.conv(6, 8, 3, rngs=rngs)),
      ("relu2", models.ReLU()),
      ("flatten", models.Flatten()),
      ("fc1", models.linear(32, 12, rngs=rngs)),
      ("relu3", models.ReLU()),
      ("fc2", models.linear(12, 5, rngs=rngs)),
  ])
  rng = np.random.default_rng(0)
  for name in ("scale", "bias", "mean"):
    model.bn1.__getattribute__(name)[...] = jnp.asarray(rng.normal(0.5, 0.5, 6), jnp.float32)
  model.bn1.var[...] = jnp.asarray(rng.uniform(0.5, 2.0, 6), jnp.float32)
  model.conv1.bias[...] = model.conv1.bias[...].at[2].set(0.8)  # a non-zero constant
  model.conv1.kernel[...] = model.conv1.kernel[...].at[..., 2].set(0.0)
  model.conv2.kernel[...] = model.conv2.kernel[...].at[:, :, 4, :].set(0.0)
  live = [0, 1, 3, 4, 5]
  model.conv2.kernel[...] = model.conv2.kernel[...].at[:, :, live, 5].set(0.0)
  fc1 = model.fc1.kernel[...]
  channel = np.arange(32) % 8
  fc1 = fc1.at[channel == 7, :].set(0.0).at[0, :].set(0.0)
  fc1 = fc1.at[channel != 5, 3].set(0.0)
  model.fc1.kernel[...] = fc1
  model.fc2.kernel[...] = model.fc2.kernel[...].at[9, :].set(0.0)
  model.eval()
  return model


# Counted by hand: kept conv1 channels {0,1,3,5}, conv2 channels {0,1,2,3,4,6},
# fc1 inputs 6 * 4 - 1 = 23, fc1 outputs 12 - 2 = 10.
EFFECTIVE = {"conv1": 9 * 3 * 4 * 64, "conv2": 9 * 4 * 6 * 4, "fc1": 23 * 10, "fc2": 10 * 5}
DENSE = {"conv1": 9 * 3 * 6 * 64, "conv2": 9 * 6 * 8 * 4, "fc1": 32 * 12, "fc2": 12 * 5}


@pytest.mark.slow
def test_planted_dead_units_and_effective_maccs():
  report = metrics.report(planted(), X)
  by_name = {layer.name: layer for layer in report.layers}
  assert {k: by_name[k].maccs_effective for k in EFFECTIVE} == EFFECTIVE
  assert {k: by_name[k].maccs_dense for k in DENSE} == DENSE
  assert report.total.maccs_effective == sum(EFFECTIVE.values()) == 8056
  assert (by_name["conv1"].dead_inputs, by_name["conv1"].dead_outputs) == (0, 2)
  assert (by_name["bn1"].dead_outputs, by_name["bn1"].maccs_dense) == (2, 0)
  assert (by_name["conv2"].dead_inputs, by_name["conv2"].dead_outputs) == (2, 2)
  assert (by_name["fc1"].dead_inputs, by_name["fc1"].dead_outputs) == (9, 2)
  assert (by_name["fc2"].dead_inputs, by_name["fc2"].dead_outputs) == (2, 0)


def test_compact_keeps_the_function_and_has_the_effective_maccs():
  model = planted()
  small = sparse_optax.compact(model, X)
  assert small.conv1.kernel.shape == (3, 3, 3, 4)
  assert small.bn1.mean.shape == (4,)
  assert small.conv2.kernel.shape == (3, 3, 4, 6)
  assert small.fc1.kernel.shape == (23, 10)
  assert small.fc2.kernel.shape == (10, 5)
  assert "flatten_select" in small.order
  x = jax.random.normal(jax.random.key(1), (16, 8, 8, 3))
  np.testing.assert_allclose(small(x), model(x), rtol=1e-5, atol=1e-5)
  again = metrics.report(small, X)
  assert again.total.maccs_dense == metrics.report(model, X).total.maccs_effective
  assert again.total.maccs_effective == again.total.maccs_dense  # nothing left to remove


def test_a_nonzero_constant_into_a_padded_conv_stays():
  # Zero padding would make a constant channel vary at the borders: it cannot
  # be folded, so it is kept; a constant 0 can be dropped.
  rngs = nnx.Rngs(1)
  model = models.LayerStack([
      ("conv_a", models.conv(2, 3, 3, padding="SAME", rngs=rngs)),
      ("relu", models.ReLU()),
      ("conv_b", models.conv(3, 2, 3, padding="SAME", rngs=rngs)),
  ])
  model.conv_a.kernel[...] = model.conv_a.kernel[...].at[..., 1].set(0.0).at[..., 2].set(0.0)
  model.conv_a.bias[...] = jnp.array([0.1, 0.7, -0.5])
  x = jax.random.normal(jax.random.key(2), (2, 6, 6, 2))
  report = metrics.report(model, x)
  assert report.layers[0].dead_outputs == 1  # only channel 2 (ReLU makes it 0)
  small = sparse_optax.compact(model, x)
  assert small.conv_a.kernel.shape == (3, 3, 2, 2)
  np.testing.assert_allclose(small(x), model(x), rtol=1e-5, atol=1e-6)


def test_dead_network_inputs_are_selected_away():
  model = models.LeNet300_100(rngs=nnx.Rngs(0))
  model.fc1.kernel[...] = model.fc1.kernel[...].at[:100].set(0.0)  # 100 unused pixels
  x = jax.random.normal(jax.random.key(3), (5, 784))
  report = metrics.report(model, x)
  assert report.layers[0].dead_inputs == 100
  assert report.total.maccs_effective == 684 * 300 + 300 * 100 + 100 * 10
  small = sparse_optax.compact(model, x)
  assert small.order[0] == "input_select" and small.fc1.kernel.shape == (684, 300)
  np.testing.assert_allclose(small(x), model(x), rtol=1e-5, atol=1e-5)
  images = x.reshape(5, 28, 28, 1)  # the flatten feature view gives the same cut
  np.testing.assert_allclose(sparse_optax.compact(model, images)(images), model(images),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_projected_lfc4_compacts_exactly():
  model = models.LFC4(rngs=nnx.Rngs(0))
  params = nnx.state(model, nnx.Param)
  projected = sparse_optax.lottery.project_once(nnx.as_pure(params), sparse_optax.project_l11(30.0))
  nnx.update(model, projected)
  x = jax.random.normal(jax.random.key(4), (8, 784))
  report = metrics.report(model, x)
  assert report.total.maccs_effective < report.total.maccs_dense / 4
  small = sparse_optax.compact(model, x)
  assert metrics.report(small, x).total.maccs_dense == report.total.maccs_effective
  np.testing.assert_allclose(small(x), model(x), rtol=1e-4, atol=1e-5)


def test_entropy_of_known_distributions():
  assert metrics.entropy_bits(np.r_[np.zeros(50), np.full(50, 0.3)]) == pytest.approx(1.0)
  assert metrics.entropy_bits(np.repeat([0.0, 0.1, 0.2, 0.3], 25)) == pytest.approx(2.0)
  assert metrics.entropy_bits(np.r_[np.zeros(75), np.full(25, 1.0)]) == pytest.approx(
      -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)))
  assert metrics.entropy_bits(np.full(10, 0.5)) == 0.0
  # Values closer than the step share a symbol.
  step = metrics.QUANTIZATION_STEP
  assert metrics.entropy_bits(np.array([0.0, 0.1 * step])) == 0.0


def test_memory_fields():
  rngs = nnx.Rngs(0)
  model = models.LayerStack([("fc", models.linear(4, 3, rngs=rngs))])
  kernel = np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.25]])
  model.fc.kernel[...] = jnp.asarray(kernel, jnp.float32)
  model.fc.bias[...] = jnp.zeros(3)
  layer = metrics.report(model, jnp.zeros((1, 4))).layers[0]
  assert (layer.params, layer.nonzero, layer.bytes_dense) == (15, 4, 60)
  assert layer.bytes_sparse == 8 * 4 + 4 * (4 + 1) + 4 * 3  # CSR values+columns, row pointers, bias
  p = np.array([11, 3, 1]) / 15  # kernel and bias: 11 zeros, three 0.5, one 0.25
  assert layer.entropy_bits_per_weight == pytest.approx(-(p * np.log2(p)).sum())
  assert layer.bytes_entropy == pytest.approx(layer.entropy_bits_per_weight * 15 / 8)
  assert layer.dead_inputs == 1 and layer.dead_outputs == 0  # input 1 reaches nothing


def test_report_traces_any_other_module():
  layer = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
  layer.kernel[...] = layer.kernel[...].at[1].set(0.0)
  report = metrics.report(layer, jnp.zeros((1, 3)))
  assert [row.name for row in report.layers] == ["(model)"]
  # the input feature stays: the traced model keeps its input
  assert (report.total.maccs_dense, report.total.maccs_effective) == (6, 6)
  assert (report.total.params, report.total.nonzero) == (8, 4)  # Flax biases start at 0


@pytest.mark.parametrize("step", [2.0 ** -16, 0.25])
def test_quantize_rounds_to_the_nearest_multiple_and_keeps_the_entropy(step):
  rng = np.random.default_rng(0)
  params = {"kernel": jnp.asarray(rng.normal(0, 0.05, (30, 20)), jnp.float32),
            "bias": jnp.asarray(rng.normal(0, 1e-5, 20), jnp.float32)}
  rounded = metrics.quantize(params, step)
  for name, leaf in params.items():
    expected = np.round(np.asarray(leaf, np.float64) / step) * step
    np.testing.assert_allclose(np.asarray(rounded[name], np.float64), expected, rtol=1e-6, atol=0)
    assert rounded[name].dtype == leaf.dtype
    assert metrics.entropy_bits(np.asarray(rounded[name]), step) == pytest.approx(
        metrics.entropy_bits(np.asarray(leaf), step))
  assert np.count_nonzero(rounded["bias"]) < np.count_nonzero(params["bias"])  # below step / 2 go


def test_quantize_refuses_a_step_that_is_not_positive():
  with pytest.raises(ValueError, match="step must be > 0"):
    metrics.quantize({"w": jnp.ones(2)}, 0.0)
