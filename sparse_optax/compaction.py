"""Physical removal of dead neurons and channels: a smaller dense model.

Any Flax NNX model called on one array is compacted from its traced
structure (:mod:`sparse_optax.structure`): every parameter and batch
statistic loses the slices of its removable units, the sizes Flax's own
layers keep as attributes (``in_features``, ``num_heads``, …) follow, and
the result is the same module with smaller arrays. Before it is returned, it
is run beside the original on a random input; a difference (a module of
your own that fixes a size in its code) is an error, never a silent change.

:func:`compact` rebuilds a :class:`~sparse_optax.models.LayerStack` keeping
only the units :mod:`sparse_optax.metrics` finds kept: smaller kernels,
biases, batch-norm statistics, with the constant outputs of removed units
folded into the next layer's bias. In inference mode (``model.eval()``) the
new model computes the same function, with exactly the effective MACCs of the
old one as its dense MACCs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sparse_optax import metrics
from sparse_optax import models
from sparse_optax import structure

_ZEROS = nnx.initializers.zeros


def _weighted(layer, flow_in: metrics.Flow, flow_out: metrics.Flow):
  """The layer restricted to kept units, with folded constants in its bias."""
  kernel = np.asarray(layer.kernel[...])
  folded = metrics.foldable(layer, flow_in)
  bias = metrics.bias_of(layer, kernel.shape[-1]) + (
      flow_in.value[folded] @ metrics.summed_kernel(layer)[folded])
  kernel = kernel[..., flow_in.kept, :][..., flow_out.kept]
  bias = bias[flow_out.kept]
  fan_in, fan_out = kernel.shape[-2:]
  rngs = nnx.Rngs(0)
  if isinstance(layer, nnx.Conv):
    new = nnx.Conv(fan_in, fan_out, layer.kernel_size, strides=layer.strides,
                   padding=layer.padding, kernel_init=_ZEROS, bias_init=_ZEROS, rngs=rngs)
  else:
    new = nnx.Linear(fan_in, fan_out, kernel_init=_ZEROS, bias_init=_ZEROS, rngs=rngs)
  new.kernel[...] = jnp.asarray(kernel, layer.kernel[...].dtype)
  new.bias[...] = jnp.asarray(bias, layer.kernel[...].dtype)
  return new


def _batch_norm(layer: nnx.BatchNorm, kept: np.ndarray) -> nnx.BatchNorm:
  new = nnx.BatchNorm(int(kept.sum()), momentum=layer.momentum, epsilon=layer.epsilon,
                      use_running_average=layer.use_running_average, rngs=nnx.Rngs(0))
  for name in ("scale", "bias", "mean", "var"):
    getattr(new, name)[...] = getattr(layer, name)[...][kept]
  return new


def _select_if_needed(name: str, flow: metrics.Flow, source_units: np.ndarray):
  """A Select layer when some units that reach this point are not kept."""
  if np.array_equal(flow.kept, source_units):
    return []
  # Positions of the kept units among those the previous layers still produce.
  position = np.cumsum(source_units) - 1
  return [(f"{name}_select", models.Select(position[flow.kept]))]


def compact(model: nnx.Module, sample_input) -> nnx.Module:
  """A new, smaller model without the dead neurons and channels of ``model``.

  Args:
    model: any ``nnx.Module`` called on one array, e.g. after projection.
    sample_input: an array with the shape of an input batch (only its shape
      and dtype are used).

  Returns:
    For a :class:`~sparse_optax.models.LayerStack`, a
    :class:`~sparse_optax.models.LayerStack` with the same layer names (plus
    ``*_select`` layers where a flattened feature or an input is dropped);
    for any other model, a module of the same class and structure with
    smaller arrays. Its outputs equal ``model``'s in inference mode, and
    ``metrics.report(compacted, x).total.maccs_dense`` equals
    ``metrics.report(model, x).total.maccs_effective``.

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from sparse_optax import compact, metrics, models
    >>> model = models.LeNet300_100(rngs=nnx.Rngs(0))
    >>> model.fc2.kernel[...] = model.fc2.kernel[...].at[:, 50:].set(0.0)
    >>> small = compact(model, jnp.zeros((1, 784)))
    >>> small.fc2.kernel.shape, metrics.report(small, jnp.zeros((1, 784))).total.maccs_dense
    ((300, 50), 250700)
  """
  if not isinstance(model, models.LayerStack):
    return _compact_traced(model, sample_input)
  flows = metrics.unit_flows(model, sample_input)
  layers: list[tuple[str, nnx.Module]] = list(
      _select_if_needed("input", flows[0], np.ones_like(flows[0].kept)))
  # `alive[i]`: the units of tensor i that the compacted layers still produce.
  produced = flows[0].kept
  for (name, layer), flow_in, flow_out in zip(model.named_layers(), flows[:-1], flows[1:]):
    if isinstance(layer, (nnx.Linear, nnx.Conv)):
      layers.append((name, _weighted(layer, flow_in, flow_out)))
      produced = flow_out.kept
    elif isinstance(layer, nnx.BatchNorm):
      layers.append((name, _batch_norm(layer, flow_out.kept)))
    elif isinstance(layer, models.Flatten) and len(flow_in.shape) > 2:
      layers.append((name, nnx.clone(layer)))
      channels = flow_in.shape[-1]
      produced_features = np.tile(produced, flow_out.shape[-1] // channels)
      layers += _select_if_needed(name, flow_out, produced_features)
      produced = flow_out.kept
    elif isinstance(layer, models.Select):
      index = np.asarray(layer.indices)[flow_out.kept]
      position = np.cumsum(produced) - 1
      layers.append((name, models.Select(position[index])))
      produced = flow_out.kept
    else:
      layers.append((name, nnx.clone(layer)))
  return models.LayerStack(layers)


def _resize(module: nnx.Module):
  """Sets the sizes Flax's layers keep as attributes from their (sliced) arrays."""
  if isinstance(module, nnx.LinearGeneral):
    batch, inputs = len(module.batch_axis), len(module.in_features)
    shape = module.kernel.shape
    module.in_features = tuple(shape[batch:batch + inputs])
    module.out_features = tuple(shape[batch + inputs:])
  elif isinstance(module, nnx.Linear):
    module.in_features, module.out_features = module.kernel.shape
  elif isinstance(module, nnx.ConvTranspose):
    module.in_features, module.out_features = module.kernel.shape[-2:]
  elif isinstance(module, nnx.Conv):
    per_group_in, out = module.kernel.shape[-2:]
    if 1 < module.feature_group_count == module.in_features and per_group_in == 1:  # depthwise
      multiplier = module.out_features // module.in_features
      module.feature_group_count = out // multiplier
    module.in_features = per_group_in * module.feature_group_count
    module.out_features = out
  elif isinstance(module, nnx.MultiHeadAttention):
    module.in_features, module.num_heads, module.head_dim = module.query.kernel.shape
    module.num_kv_heads = module.key.kernel.shape[1]
    module.qkv_features = module.num_heads * module.head_dim
    module.out_features = module.out.kernel.shape[-1]
  elif isinstance(module, (nnx.BatchNorm, nnx.LayerNorm, nnx.RMSNorm, nnx.GroupNorm)):
    arrays = [v for v in (getattr(module, n, None) for n in ("scale", "bias", "mean"))
              if v is not None]
    if arrays:
      module.num_features = arrays[0].shape[-1]


def _same_outputs(model: nnx.Module, small: nnx.Module, sample_input):
  """Runs both models in inference mode on a random input; raises if they differ."""
  shape = (2, *np.shape(sample_input)[1:])
  dtype = getattr(sample_input, "dtype", jnp.float32)
  probe = (jax.random.normal(jax.random.key(0), shape, dtype)
           if jnp.issubdtype(dtype, jnp.floating) else jnp.asarray(sample_input))
  before, after = nnx.clone(model), nnx.clone(small)
  before.eval()
  after.eval()
  try:
    expected, got = before(probe), after(probe)
  except Exception as error:  # noqa: BLE001 - re-raised with what to do
    raise ValueError(
        f"compact: the compacted {type(model).__name__} fails on an input of shape "
        f"{shape}: {error}. A module probably fixes a size in its code; read sizes "
        "from the arrays' shapes instead.") from error
  for e, g in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
    e, g = np.asarray(e, np.float64), np.asarray(g, np.float64)
    scale = max(float(np.max(np.abs(e), initial=0.0)), 1.0)
    if e.shape != g.shape or not np.allclose(g, e, rtol=1e-4, atol=1e-5 * scale):
      difference = (float(np.max(np.abs(g - e))) if e.shape == g.shape
                    else f"shape {g.shape} for {e.shape}")
      raise ValueError(
          f"compact: the compacted {type(model).__name__} computes another function "
          f"(largest difference {difference}). A module probably fixes a size in "
          "its code; read sizes from the arrays' shapes instead.")


def _compact_traced(model: nnx.Module, sample_input) -> nnx.Module:
  analysis = structure.analyze(model, sample_input)
  graphdef, state = nnx.split(nnx.clone(model))
  flat, treedef = jax.tree_util.tree_flatten_with_path(state)
  leaves = []
  for (_, leaf), kept in zip(flat, analysis.kept):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) or all(k.all() for k in kept):
      leaves.append(leaf)
      continue
    array = np.asarray(leaf)
    for axis, mask in enumerate(kept):
      array = np.compress(mask, array, axis=axis)
    leaves.append(jnp.asarray(array, leaf.dtype))
  small = nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, leaves))
  for _, module in nnx.iter_modules(small):
    _resize(module)
  _same_outputs(model, small, sample_input)
  return small
