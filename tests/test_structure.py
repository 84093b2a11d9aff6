"""The traced structure of any NNX model: units, MACCs, compaction, groups.

Every MACC figure below is counted by hand from the layer shapes, not by the
library, and every compacted model is run beside the original.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import sparse_optax
from sparse_optax import metrics
from sparse_optax import models
from sparse_optax import structure


def assert_same_function(model, small, x):
  model.eval()
  small.eval()
  np.testing.assert_allclose(small(x), model(x), rtol=1e-5, atol=1e-5)


def zero_inputs(layer, units, axis=-2):
  kernel = layer.kernel[...]
  index = [slice(None)] * kernel.ndim
  index[axis] = np.asarray(units)
  layer.kernel[...] = kernel.at[tuple(index)].set(0.0)


class ResidualBlock(nnx.Module):

  def __init__(self, channels, hidden, *, rngs):
    self.conv1 = nnx.Conv(channels, hidden, (3, 3), use_bias=False, rngs=rngs)
    self.bn1 = nnx.BatchNorm(hidden, rngs=rngs)
    self.conv2 = nnx.Conv(hidden, channels, (3, 3), use_bias=False, rngs=rngs)
    self.bn2 = nnx.BatchNorm(channels, rngs=rngs)

  def __call__(self, x):
    y = nnx.relu(self.bn1(self.conv1(x)))
    return nnx.relu(x + self.bn2(self.conv2(y)))


class ResidualCNN(nnx.Module):

  def __init__(self, *, rngs):
    self.stem = nnx.Conv(1, 8, (3, 3), rngs=rngs)
    self.blocks = nnx.List([ResidualBlock(8, 12, rngs=rngs) for _ in range(2)])
    self.head = nnx.Linear(8, 10, rngs=rngs)

  def __call__(self, x):
    x = nnx.relu(self.stem(x))
    for block in self.blocks:
      x = block(x)
    return self.head(x.mean(axis=(1, 2)))


def randomize_statistics(model, key=0):
  """Batch norms with non-trivial running statistics, so that they matter."""
  keys = iter(jax.random.split(jax.random.key(key), 64))
  for _, module in nnx.iter_modules(model):
    if isinstance(module, nnx.BatchNorm):
      n = module.mean.shape[-1]
      module.mean[...] = jax.random.normal(next(keys), (n,))
      module.var[...] = jax.random.uniform(next(keys), (n,), minval=0.5, maxval=2.0)
      module.bias[...] = jax.random.normal(next(keys), (n,))


def test_residual_cnn_removes_the_inner_channels_whose_fan_out_is_zero():
  model = ResidualCNN(rngs=nnx.Rngs(0))
  randomize_statistics(model)
  zero_inputs(model.blocks[0].conv2, [0, 3, 5])
  x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
  spatial = 8 * 8  # SAME padding keeps 8x8
  dense = (9 * 1 * 8 + 2 * (9 * 8 * 12 + 9 * 12 * 8)) * spatial + 8 * 10
  effective = dense - 2 * 9 * 8 * 3 * spatial

  report = metrics.report(model, x)
  assert report.total.maccs_dense == dense
  assert report.total.maccs_effective == effective
  rows = {row.name: row for row in report.layers}
  assert rows["blocks.0.conv1"].dead_outputs == 3
  assert rows["blocks.0.conv2"].dead_inputs == 3
  assert rows["blocks.0.bn1"].dead_outputs == 3
  assert rows["blocks.1.conv1"].dead_outputs == 0

  small = sparse_optax.compact(model, x)
  assert small.blocks[0].conv1.kernel.shape == (3, 3, 8, 9)
  assert small.blocks[0].bn1.mean.shape == (9,)
  assert metrics.report(small, x).total.maccs_dense == effective
  assert_same_function(model, small, x)


def test_the_residual_stream_goes_only_when_every_reader_drops_it():
  model = ResidualCNN(rngs=nnx.Rngs(0))
  x = jnp.zeros((1, 8, 8, 1))
  zero_inputs(model.blocks[0].conv1, [2])
  zero_inputs(model.blocks[1].conv1, [2])
  assert metrics.report(model, x).total.maccs_effective == metrics.report(model, x).total.maccs_dense
  zero_inputs(model.head, [2])
  report = metrics.report(model, x)
  # channel 2 leaves the stem, both blocks' convolutions and batch norms, the head
  lost = (9 * 1 * 1 + 2 * (9 * 1 * 12 + 9 * 12 * 1)) * 64 + 10
  assert report.total.maccs_effective == report.total.maccs_dense - lost
  small = sparse_optax.compact(model, x)
  assert small.stem.kernel.shape == (3, 3, 1, 7)
  assert small.head.kernel.shape == (7, 10)
  assert_same_function(model, small, jax.random.normal(jax.random.key(2), (2, 8, 8, 1)))


class Attention(nnx.Module):

  def __init__(self, *, rngs):
    self.norm = nnx.LayerNorm(8, rngs=rngs)
    self.attention = nnx.MultiHeadAttention(num_heads=4, in_features=8, qkv_features=16,
                                            decode=False, rngs=rngs)
    self.head = nnx.Linear(8, 3, rngs=rngs)

  def __call__(self, tokens):
    tokens = tokens + self.attention(self.norm(tokens))
    return self.head(tokens.mean(axis=1))


def test_attention_heads_go_with_their_output_slices():
  model = Attention(rngs=nnx.Rngs(0))
  zero_inputs(model.attention.out, [2], axis=0)  # out kernel (heads, head_dim, out)
  x = jax.random.normal(jax.random.key(3), (2, 5, 8))
  tokens, width, heads, head_dim = 5, 8, 4, 4

  def count(h):
    projections = 3 * tokens * width * h * head_dim + tokens * h * head_dim * width
    products = 2 * h * tokens * tokens * head_dim
    return projections + products + width * 3

  report = metrics.report(model, x)
  assert report.total.maccs_dense == count(heads)
  assert report.total.maccs_effective == count(heads - 1)
  rows = {row.name: row for row in report.layers}
  assert rows["attention"].kind == "attention"
  assert rows["attention"].maccs_dense == 2 * heads * tokens * tokens * head_dim
  assert rows["attention.query"].dead_outputs == head_dim
  small = sparse_optax.compact(model, x)
  assert small.attention.num_heads == 3
  assert small.attention.query.kernel.shape == (8, 3, 4)
  assert metrics.report(small, x).total.maccs_dense == count(heads - 1)
  assert_same_function(model, small, x)


def test_a_zero_query_does_not_remove_its_head():
  """Zero queries make the scores constant, not the head's output."""
  model = Attention(rngs=nnx.Rngs(0))
  zero_inputs(model.attention.query, [1], axis=1)
  report = metrics.report(model, jnp.zeros((1, 5, 8)))
  assert report.total.maccs_effective == report.total.maccs_dense


class Concatenated(nnx.Module):

  def __init__(self, *, rngs):
    self.left = nnx.Linear(6, 4, rngs=rngs)
    self.right = nnx.Linear(6, 5, rngs=rngs)
    self.out = nnx.Linear(9, 3, rngs=rngs)

  def __call__(self, x):
    return self.out(jnp.concatenate([nnx.relu(self.left(x)), nnx.tanh(self.right(x))], -1))


def test_concatenation_maps_each_branch_to_its_own_features():
  model = Concatenated(rngs=nnx.Rngs(0))
  zero_inputs(model.out, [1, 4 + 2])
  x = jax.random.normal(jax.random.key(4), (3, 6))
  report = metrics.report(model, x)
  assert report.total.maccs_dense == 6 * 4 + 6 * 5 + 9 * 3
  assert report.total.maccs_effective == 6 * 3 + 6 * 4 + 7 * 3
  small = sparse_optax.compact(model, x)
  assert small.left.kernel.shape == (6, 3) and small.right.kernel.shape == (6, 4)
  assert_same_function(model, small, x)


class Depthwise(nnx.Module):

  def __init__(self, *, rngs):
    self.expand = nnx.Conv(3, 4, (1, 1), rngs=rngs)
    self.depthwise = nnx.Conv(4, 4, (3, 3), feature_group_count=4, rngs=rngs)
    self.project = nnx.Conv(4, 5, (1, 1), rngs=rngs)

  def __call__(self, x):
    x = self.depthwise(nnx.relu(self.expand(x)))
    return self.project(nnx.relu(x)).mean(axis=(1, 2))


def test_a_depthwise_channel_goes_with_its_input_and_output():
  model = Depthwise(rngs=nnx.Rngs(0))
  zero_inputs(model.project, [1])
  x = jax.random.normal(jax.random.key(5), (2, 6, 6, 3))
  spatial = 36
  report = metrics.report(model, x)
  assert report.total.maccs_dense == (3 * 4 + 9 * 4 + 4 * 5) * spatial
  assert report.total.maccs_effective == (3 * 3 + 9 * 3 + 3 * 5) * spatial
  small = sparse_optax.compact(model, x)
  assert small.depthwise.kernel.shape == (3, 3, 1, 3)
  assert small.depthwise.feature_group_count == 3
  assert_same_function(model, small, x)


class Normalised(nnx.Module):

  def __init__(self, norm: bool, *, rngs):
    self.fc1 = nnx.Linear(6, 8, rngs=rngs)
    self.norm = nnx.LayerNorm(8, rngs=rngs) if norm else None
    self.fc2 = nnx.Linear(8, 3, rngs=rngs)

  def __call__(self, x):
    h = self.fc1(x)
    return self.fc2(nnx.relu(self.norm(h) if self.norm is not None else h))


@pytest.mark.parametrize("norm", [False, True])
def test_a_layer_norm_keeps_every_unit_it_normalises(norm):
  model = Normalised(norm, rngs=nnx.Rngs(0))
  zero_inputs(model.fc2, [0, 1, 2, 3])
  report = metrics.report(model, jnp.zeros((1, 6)))
  removed = 0 if norm else 4
  assert report.total.maccs_effective == 6 * (8 - removed) + (8 - removed) * 3


def test_a_unit_that_is_zero_for_every_input_goes():
  model = Normalised(False, rngs=nnx.Rngs(0))
  zero_inputs(model.fc1, [5], axis=-1)
  model.fc1.bias[...] = model.fc1.bias[...].at[5].set(0.0)
  x = jax.random.normal(jax.random.key(6), (2, 6))
  assert metrics.report(model, x).total.maccs_effective == 6 * 7 + 7 * 3
  assert_same_function(model, sparse_optax.compact(model, x), x)


def test_a_constant_non_zero_unit_is_kept():
  model = Normalised(False, rngs=nnx.Rngs(0))
  zero_inputs(model.fc1, [5], axis=-1)
  model.fc1.bias[...] = model.fc1.bias[...].at[5].set(0.5)
  report = metrics.report(model, jnp.zeros((1, 6)))
  assert report.total.maccs_effective == report.total.maccs_dense


@pytest.mark.slow
@pytest.mark.parametrize("shape,kind", [((1, 784), "lenet"), ((1, 28, 28, 1), "net4")])
def test_the_trace_agrees_with_the_layer_stack_analysis(shape, kind):
  """Fan-out zeros, where both analyses apply, give the same effective MACCs."""
  if kind == "lenet":
    model = models.LeNet300_100(rngs=nnx.Rngs(0))
    zero_inputs(model.fc2, np.arange(0, 300, 7))
    zero_inputs(model.fc3, np.arange(0, 100, 3))
  else:
    model = models.Net4(rngs=nnx.Rngs(0))
    zero_inputs(model.conv2, [1, 4, 8])
    dead_channels = np.array([3, 11])  # flattened features f with f % 20 in them
    zero_inputs(model.fc1, np.flatnonzero(np.isin(np.arange(320) % 20, dead_channels)))
  x = jnp.zeros(shape)
  analysis = structure.analyze(model, x)
  stack = metrics.report(model, x).total
  assert sum(c.maccs_dense for c in analysis.contractions) == stack.maccs_dense
  assert sum(c.maccs_effective for c in analysis.contractions) == stack.maccs_effective


def test_an_operation_it_cannot_follow_is_an_error_naming_it():

  class Sorted(nnx.Module):

    def __init__(self, *, rngs):
      self.fc = nnx.Linear(4, 4, rngs=rngs)

    def __call__(self, x):
      return jnp.sort(self.fc(x), axis=-1)

  with pytest.raises(ValueError, match=r"`sort` after layer `fc`"):
    metrics.report(Sorted(rngs=nnx.Rngs(0)), jnp.zeros((1, 4)))


def test_compact_refuses_a_module_that_fixes_a_size_in_its_code():

  class FixedWidth(nnx.Module):

    def __init__(self, *, rngs):
      self.fc1 = nnx.Linear(4, 6, rngs=rngs)
      self.fc2 = nnx.Linear(6, 2, rngs=rngs)
      self.width = 6

    def __call__(self, x):
      h = nnx.relu(self.fc1(x)).reshape(x.shape[0], self.width)
      return self.fc2(h)

  model = FixedWidth(rngs=nnx.Rngs(0))
  zero_inputs(model.fc2, [0])
  with pytest.raises(ValueError, match="fixes a size in its code"):
    sparse_optax.compact(model, jnp.zeros((1, 4)))


def test_groups_of_names_exactly_the_removable_groups():
  groups = structure.groups_of(ResidualCNN(rngs=nnx.Rngs(0)), jnp.zeros((1, 8, 8, 1)))
  assert groups["stem"]["kernel"] is None  # its inputs are the model's input
  assert groups["blocks"][0]["conv2"]["kernel"] == (0, 1, 3)  # the block's inner channels
  # the residual stream is read by every block and the head: one reader alone
  # cannot remove a channel of it
  assert groups["blocks"][0]["conv1"]["kernel"] is None
  assert groups["head"]["kernel"] is None
  assert groups["blocks"][0]["bn1"]["scale"] is None
  attention = structure.groups_of(Attention(rngs=nnx.Rngs(0)), jnp.zeros((1, 5, 8)))
  assert attention["attention"]["out"]["kernel"] == (1, 2)  # one group per head
  assert attention["attention"]["query"]["kernel"] is None  # reads the normalised stream
  assert attention["head"]["kernel"] is None


def test_keep_with_groups_of_removes_exactly_the_kept_fraction():
  model = ResidualCNN(rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(7), (4, 8, 8, 1))
  groups = structure.groups_of(model, x)
  tx = optax.chain(optax.adam(1e-2), sparse_optax.project_l21(keep=0.5, groups=groups))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  labels = jnp.arange(4)

  @nnx.jit
  def step(model, optimizer, x):
    loss = lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), labels).mean()
    optimizer.update(model, nnx.grad(loss)(model))

  for _ in range(3):
    step(model, optimizer, x)
  inner = model.blocks[1].conv2.kernel[...]
  alive = np.flatnonzero(np.abs(np.asarray(inner)).sum(axis=(0, 1, 3)) > 0)
  assert alive.size == 6  # round(0.5 * 12)
  assert np.count_nonzero(np.abs(np.asarray(model.stem.kernel[...])).sum(axis=(0, 1, 2))) == 8
  small = sparse_optax.compact(model, x)
  assert small.blocks[1].conv1.kernel.shape[-1] == 6
  assert_same_function(model, small, x)


def test_a_none_group_leaves_the_leaf_alone():
  params = {"a": jnp.ones((3, 4)), "b": jnp.ones((3, 4))}
  tx = sparse_optax.project_l21(1.0, groups={"a": None, "b": (1,)})
  state = tx.init(params)
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(new["a"], params["a"])
  np.testing.assert_allclose(np.linalg.norm(np.asarray(new["b"]), axis=1).sum(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("shape,groups,kept_axis", [
    ((8, 4, 2), "in", 1),   # LinearGeneral query (in, heads, head_dim): heads
    ((4, 6, 8), "in", 1),   # LinearGeneral output (heads, head_dim, out): head dimension
    ((10, 6), "in", 0),     # Embed (vocabulary, features): tokens
    ((3, 3, 1, 6), "out", 3),  # depthwise (kh, kw, 1, channels): channels
])
def test_named_groups_on_other_kernels(shape, groups, kept_axis):
  """What "in" and "out" mean for attention, embedding and depthwise kernels."""
  x = jax.random.normal(jax.random.key(8), shape)
  tx = sparse_optax.project_l21(0.5, groups=groups)
  updates, _ = tx.update({"k": jnp.zeros(shape)}, tx.init({"k": x}), {"k": x})
  new = np.asarray(x + updates["k"])
  other = tuple(a for a in range(len(shape)) if a != kept_axis)
  norms = np.sqrt((np.asarray(new, np.float64) ** 2).sum(axis=other))
  assert norms.sum() == pytest.approx(0.5, rel=1e-5)
  assert (norms == 0).any()  # whole groups along kept_axis vanish


def test_heads_group_the_attention_kernels_by_head():
  rng = np.random.default_rng(9)
  params = {"attention": {"query": {"kernel": jnp.asarray(rng.normal(size=(8, 4, 6)))},
                          "out": {"kernel": jnp.asarray(rng.normal(size=(4, 6, 8)))}}}
  tx = sparse_optax.project_l21(2.0, groups="heads")
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  for name, heads_axis in (("query", 1), ("out", 0)):
    kernel = np.asarray(new["attention"][name]["kernel"], np.float64)
    other = tuple(a for a in range(3) if a != heads_axis)
    norms = np.sqrt((kernel ** 2).sum(axis=other))
    assert norms.sum() == pytest.approx(2.0, rel=1e-5) and (norms == 0).any()
  with pytest.raises(ValueError, match="groups='heads' needs the 3-d kernel"):
    sparse_optax.project_l21(2.0, groups="heads").init({"fc": {"kernel": jnp.ones((3, 4))}})


class TwoConvolutions(nnx.Module):

  def __init__(self, *, rngs):
    self.conv1 = nnx.Conv(2, 3, (3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(3, 2, (3, 3), rngs=rngs)

  def __call__(self, x):
    return self.conv2(nnx.relu(self.conv1(x)))


def test_a_row_of_zero_taps_is_not_a_unit():
  model = TwoConvolutions(rngs=nnx.Rngs(0))
  model.conv1.kernel[...] = model.conv1.kernel[...].at[1].set(0.0)  # the middle row of taps
  x = jax.random.normal(jax.random.key(10), (2, 6, 6, 2))
  report = metrics.report(model, x)
  assert report.total.maccs_dense == report.total.maccs_effective == 9 * (2 * 3 + 3 * 2) * 36
  assert_same_function(model, sparse_optax.compact(model, x), x)


def test_a_head_dimension_stays_whatever_its_weights():
  """Flax's attention checks that query and value agree and scales by their size."""
  model = Attention(rngs=nnx.Rngs(0))
  zero_inputs(model.attention.out, [1], axis=1)  # one head dimension of every head
  x = jax.random.normal(jax.random.key(11), (2, 5, 8))
  report = metrics.report(model, x)
  assert report.total.maccs_effective == report.total.maccs_dense
  assert_same_function(model, sparse_optax.compact(model, x), x)


def test_a_transposed_convolution_counts_only_products_with_real_inputs():
  model = nnx.ConvTranspose(4, 3, (2, 2), strides=(2, 2), rngs=nnx.Rngs(0))
  report = metrics.report(model, jnp.ones((1, 4, 4, 4)))
  assert report.total.maccs_dense == 16 * 4 * 4 * 3  # each input position, 2x2 taps, 4 -> 3


def test_a_parameter_the_forward_pass_never_reads_is_kept():

  class WithAuxiliary(nnx.Module):

    def __init__(self, *, rngs):
      self.fc1 = nnx.Linear(4, 6, rngs=rngs)
      self.fc2 = nnx.Linear(6, 2, rngs=rngs)
      self.auxiliary = nnx.Linear(6, 3, rngs=rngs)  # used in training only, say

    def __call__(self, x):
      return self.fc2(nnx.relu(self.fc1(x)))

  model = WithAuxiliary(rngs=nnx.Rngs(0))
  zero_inputs(model.fc2, [0])
  small = sparse_optax.compact(model, jnp.ones((1, 4)))
  assert small.auxiliary.kernel.shape == (6, 3)
  assert small.fc1.kernel.shape == (4, 5)


def test_split_stack_and_rematerialisation_are_followed():

  class Branches(nnx.Module):

    def __init__(self, *, rngs):
      self.fc1 = nnx.Linear(4, 6, rngs=rngs)
      self.fc2 = nnx.Linear(3, 2, rngs=rngs)

    @nnx.remat
    def __call__(self, x):
      left, right = jnp.split(nnx.relu(self.fc1(x)), 2, axis=-1)
      return jnp.stack([self.fc2(left), self.fc2(right)], axis=-1).sum(-1)

  model = Branches(rngs=nnx.Rngs(0))
  zero_inputs(model.fc2, [0])  # would remove unit 0 of each half: the split fixes the sizes
  x = jax.random.normal(jax.random.key(12), (2, 4))
  report = metrics.report(model, x)
  assert report.total.maccs_dense == 4 * 6 + 2 * 3 * 2
  assert report.total.maccs_effective == report.total.maccs_dense
  assert_same_function(model, sparse_optax.compact(model, x), x)
