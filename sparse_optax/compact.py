"""Physical removal of dead neurons and channels: a smaller dense model.

:func:`compact` rebuilds a :class:`~sparse_optax.models.LayerStack` keeping
only the units :mod:`sparse_optax.metrics` finds kept: smaller kernels,
biases, batch-norm statistics, with the constant outputs of removed units
folded into the next layer's bias. In inference mode (``model.eval()``) the
new model computes the same function, with exactly the effective MACCs of the
old one as its dense MACCs.
"""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp
from flax import nnx

from sparse_optax import metrics
from sparse_optax import models

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


def compact(model: models.LayerStack, sample_input) -> models.LayerStack:
  """A new, smaller model without the dead neurons and channels of ``model``.

  Args:
    model: a :class:`~sparse_optax.models.LayerStack`, e.g. after projection.
    sample_input: an array with the shape of an input batch (only its shape
      is used).

  Returns:
    A :class:`~sparse_optax.models.LayerStack` with the same layer names (plus
    ``*_select`` layers where a flattened feature or an input is dropped).
    Its outputs equal ``model``'s in inference mode, and
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
