"""Honest size and compute of a sparse network: MACCs, dead units, memory.

:func:`report` takes any Flax NNX model called on one array. A
:class:`~sparse_optax.models.LayerStack` (the paper's networks) is read layer
by layer, as below; any other model is traced with :mod:`sparse_optax.structure`
and reported per module that holds parameters or contracts (a dense layer, a
convolution, a normalisation, an attention block for its score and value
products), with the same fields.

For a :class:`~sparse_optax.models.LayerStack`, everything is read off its
layers and the shapes a sample input takes through them:

``params``
  Number of parameters of the layer (kernel and bias; batch-norm scale and
  bias; running statistics are not parameters).
``nonzero``
  How many of them are not exactly 0.
``dead_inputs`` / ``dead_outputs``
  Input and output units (features of a dense layer, channels of a
  convolution or batch norm) that can be removed without changing the
  network's function, found by propagating, until nothing changes:

  * a unit whose whole fan-in from live units is zero outputs a constant;
    that constant passes through ReLU, batch norm, pooling and flattening and
    is folded into the biases of the next weighted layer. (Into a padded
    convolution only when it is 0: the zero padding would make a non-zero
    constant vary at the borders, so such a unit stays.)
  * a unit whose whole fan-out into needed units is zero is not needed, and
    neither is what only feeds it.

  A unit is kept when a kept unit depends on it and its value cannot be
  folded into a bias; the network's outputs are always kept. Flattening maps
  each feature to its channel (NHWC order); a channel stays while one of its
  features is kept.
``maccs_dense`` / ``maccs_effective``
  Multiply-accumulates per example (one multiply-add is one MACC): ``in *
  out`` for a dense layer, ``kh * kw * in * out * H_out * W_out`` for a
  convolution, 0 for batch norm (it folds into the convolution), pooling and
  activations. ``maccs_effective`` counts only kept inputs and outputs: it is
  what :func:`sparse_optax.compact` leaves, exactly.
``entropy_bits_per_weight``
  Shannon entropy of the layer's parameters quantised to multiples of
  ``quantization_step`` (default :data:`QUANTIZATION_STEP` = 2⁻¹⁶ ≈ 1.5e-5,
  for weights of order 1e-2 to 1e-1), as the paper estimates memory.
``bytes_dense``
  float32 storage: 4 bytes per parameter.
``bytes_sparse``
  CSR storage of the kernel seen as a ``(fan_in, fan_out)`` matrix (float32
  values and int32 column indices per non-zero, one int32 row pointer per
  row plus one), and the bias dense.
``bytes_entropy``
  The paper's estimate: ``entropy_bits_per_weight * params / 8``.

The totals sum the layers (a unit removed between two layers counts once as a
dead output and once as a dead input); the total entropy is the one implied by
the summed bytes.

For any other model, the traced analysis differs in two ways, both
conservative (see :mod:`sparse_optax.structure`): a unit whose value is a
non-zero constant is kept, not folded into a bias, and the model's input
features are kept. ``maccs_dense`` counts every ``dot_general`` and
convolution of the forward pass for one example, attention's score and value
products included; ``dead_inputs`` / ``dead_outputs`` count the removable
entries along the axes a kernel contracts and along those it produces (for a
normalisation layer, its removable units).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from flax import nnx

from sparse_optax import models
from sparse_optax import structure

QUANTIZATION_STEP = 2.0 ** -16

_UNCHANGED = (models.ReLU, nnx.Dropout)


@dataclasses.dataclass(frozen=True)
class Flow:
  """What is known of one tensor's units between two layers.

  Attributes:
    shape: the tensor's shape for the sample input.
    constant: units whose value does not depend on the input.
    value: that value, for the constant units (0 elsewhere).
    kept: units the compacted network keeps.
  """

  shape: tuple[int, ...]
  constant: np.ndarray
  value: np.ndarray
  kept: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class LayerReport:
  name: str
  kind: str
  params: int
  nonzero: int
  dead_inputs: int
  dead_outputs: int
  maccs_dense: int
  maccs_effective: int
  entropy_bits_per_weight: float
  bytes_dense: int
  bytes_sparse: int
  bytes_entropy: float


@dataclasses.dataclass(frozen=True)
class Report:
  """Per-layer figures and their total, see the module docstring."""

  layers: tuple[LayerReport, ...]
  total: LayerReport
  quantization_step: float

  def as_dict(self) -> dict[str, Any]:
    return {"layers": [dataclasses.asdict(layer) for layer in self.layers],
            "total": dataclasses.asdict(self.total),
            "quantization_step": self.quantization_step}


def _array(param) -> np.ndarray:
  return np.asarray(param[...], np.float64)


def _is_weighted(layer) -> bool:
  return isinstance(layer, (nnx.Linear, nnx.Conv))


def connectivity(layer) -> np.ndarray:
  """``(in, out)`` booleans: does input unit i reach output unit j at all."""
  kernel = _array(layer.kernel)
  if kernel.ndim > 2:
    return np.any(kernel != 0, axis=tuple(range(kernel.ndim - 2)))
  return kernel != 0


def summed_kernel(layer) -> np.ndarray:
  """``(in, out)``: what a spatially constant input unit adds to each output."""
  kernel = _array(layer.kernel)
  return kernel.sum(axis=tuple(range(kernel.ndim - 2))) if kernel.ndim > 2 else kernel


def _zero_padded(layer) -> bool:
  if not isinstance(layer, nnx.Conv):
    return False
  padding = layer.padding
  if isinstance(padding, str):
    return padding.upper() != "VALID" and any(k > 1 for k in layer.kernel_size)
  return any(lo or hi for lo, hi in padding)


def foldable(layer, flow: Flow) -> np.ndarray:
  """The constant input units whose contribution can be folded into the bias."""
  if _zero_padded(layer):
    return flow.constant & (flow.value == 0)
  return flow.constant


def bias_of(layer, size) -> np.ndarray:
  """The bias of a layer as a NumPy array, zeros when it has none."""
  return _array(layer.bias) if getattr(layer, "bias", None) is not None else np.zeros(size)


def _forward(layer, flow: Flow, out_shape) -> Flow:
  """Which output units are constant, and their values."""
  if _is_weighted(layer):
    folded = foldable(layer, flow)
    reach = connectivity(layer)
    constant = ~np.any(reach[~folded], axis=0)
    value = bias_of(layer, reach.shape[1]) + flow.value[folded] @ summed_kernel(layer)[folded]
    return Flow(out_shape, constant, np.where(constant, value, 0.0))
  if isinstance(layer, nnx.BatchNorm):
    scale = _array(layer.scale) / np.sqrt(_array(layer.var) + layer.epsilon)
    value = (flow.value - _array(layer.mean)) * scale + _array(layer.bias)
    return Flow(out_shape, flow.constant, np.where(flow.constant, value, 0.0))
  if isinstance(layer, models.ReLU):
    return Flow(out_shape, flow.constant, np.maximum(flow.value, 0.0))
  if isinstance(layer, models.Flatten) and len(flow.shape) > 2:
    channel = np.arange(out_shape[-1]) % flow.shape[-1]
    return Flow(out_shape, flow.constant[channel], flow.value[channel])
  if isinstance(layer, models.Select):
    index = np.asarray(layer.indices)
    return Flow(out_shape, flow.constant[index], flow.value[index])
  if isinstance(layer, (models.MaxPool, models.GlobalMaxPool, models.Flatten) + _UNCHANGED):
    return Flow(out_shape, flow.constant, flow.value)
  raise TypeError(f"no unit analysis for layer type {type(layer).__name__}")


def _needed_inputs(layer, flow_in: Flow, needed_out: np.ndarray) -> np.ndarray:
  """Which input units the needed output units depend on."""
  if _is_weighted(layer):
    live = ~foldable(layer, flow_in)
    return live & np.any(connectivity(layer)[:, needed_out], axis=1)
  if isinstance(layer, models.Flatten) and len(flow_in.shape) > 2:
    channels = flow_in.shape[-1]
    return needed_out.reshape(-1, channels).any(axis=0)
  if isinstance(layer, models.Select):
    needed = np.zeros(flow_in.shape[-1], bool)
    needed[np.asarray(layer.indices)[needed_out]] = True
    return needed
  return needed_out


def unit_flows(model: models.LayerStack, sample_input) -> list[Flow]:
  """The flows of the tensors before, between and after the model's layers."""
  if not isinstance(model, models.LayerStack):
    raise TypeError(
        "metrics need a sparse_optax.models.LayerStack (the paper's models, a "
        f"compacted model or your own stack), got {type(model).__name__}.")
  x = jax.ShapeDtypeStruct(np.shape(sample_input), getattr(sample_input, "dtype", np.float32))
  units = x.shape[-1]
  flows = [Flow(tuple(x.shape), np.zeros(units, bool), np.zeros(units))]
  for _, layer in model.named_layers():
    if isinstance(layer, (nnx.Dropout, nnx.BatchNorm, models.ReLU)):
      out = x  # shape-preserving; not run, so no RNG is drawn and no statistic moves
    else:
      out = jax.eval_shape(layer, x)
    flows.append(_forward(layer, flows[-1], tuple(out.shape)))
    x = out

  # The outputs are the network's answer; going back, a unit is kept when a
  # kept unit depends on it and its value cannot be folded into a bias.
  needed = np.ones(flows[-1].shape[-1], bool)
  kept = [needed]
  for (_, layer), flow_in in zip(reversed(model.named_layers()), reversed(flows[:-1])):
    needed = _needed_inputs(layer, flow_in, needed)
    kept.append(needed)
  kept.reverse()
  return [dataclasses.replace(flow, kept=k) for flow, k in zip(flows, kept)]


def entropy_bits(values: np.ndarray, step: float = QUANTIZATION_STEP) -> float:
  """Shannon entropy (bits per value) of ``values`` quantised to ``step``.

  Example:
    >>> import numpy as np
    >>> entropy_bits(np.array([0.0, 0.0, 0.5, 0.5]))
    1.0
  """
  values = np.asarray(values, np.float64).ravel()
  if values.size == 0:
    return 0.0
  _, counts = np.unique(np.round(values / step), return_counts=True)
  p = counts / values.size
  return float(-np.sum(p * np.log2(p)) + 0.0)


def quantize(params, step: float = QUANTIZATION_STEP):
  """``params`` rounded to the nearest multiple of ``step``, leaf by leaf.

  The network whose memory :func:`report` estimates: a weight below
  ``step / 2`` in magnitude becomes an exact zero, so rounding the weights
  before evaluating a model makes its accuracy, non-zeros, MACCs and memory
  describe one network. Ties round to even, as in :func:`entropy_bits`.

  Args:
    params: a pytree of floating arrays (e.g. ``nnx.state(model, nnx.Param)``).
    step: the quantisation step, > 0.

  Returns:
    ``params``' structure, shapes and dtypes, every value a multiple of ``step``.

  Example:
    >>> import jax.numpy as jnp
    >>> quantize({"w": jnp.array([0.3, 1e-6, -0.7])}, step=0.5)["w"]
    Array([ 0.5,  0. , -0.5], dtype=float32)
  """
  if not step > 0:
    raise ValueError(f"quantize: step must be > 0, got {step}.")
  return jax.tree.map(lambda p: (jax.numpy.round(p / step) * step).astype(p.dtype), params)


def csr_bytes(kernel: np.ndarray) -> int:
  """Bytes of the kernel in CSR over its ``(fan_in, fan_out)`` matrix view."""
  rows = math.prod(kernel.shape[:-1]) if kernel.ndim > 1 else 1
  return 8 * int(np.count_nonzero(kernel)) + 4 * (rows + 1)


def _layer_report(name, layer, flow_in: Flow, flow_out: Flow, step) -> LayerReport:
  arrays = [_array(v) for v in jax.tree.leaves(nnx.state(layer, nnx.Param))]
  values = np.concatenate([a.ravel() for a in arrays])
  params = int(values.size)
  if _is_weighted(layer):
    kernel = _array(layer.kernel)
    fan_in, fan_out = kernel.shape[-2:]
    spatial = math.prod(flow_out.shape[1:-1])
    taps = math.prod(kernel.shape[:-2])
    kept_in, kept_out = int(flow_in.kept.sum()), int(flow_out.kept.sum())
    maccs_dense = taps * fan_in * fan_out * spatial
    maccs_effective = taps * kept_in * kept_out * spatial
    dead_in, dead_out = fan_in - kept_in, fan_out - kept_out
    sparse = csr_bytes(kernel) + 4 * (params - kernel.size)
    kind = "conv" if isinstance(layer, nnx.Conv) else "dense"
  else:  # batch norm: per-channel, folds into the convolution before it
    maccs_dense = maccs_effective = 0
    dead_in = dead_out = int((~flow_out.kept).sum())
    sparse = 4 * params
    kind = "batch_norm"
  entropy = entropy_bits(values, step)
  return LayerReport(
      name=name, kind=kind, params=params, nonzero=int(np.count_nonzero(values)),
      dead_inputs=dead_in, dead_outputs=dead_out, maccs_dense=maccs_dense,
      maccs_effective=maccs_effective, entropy_bits_per_weight=entropy,
      bytes_dense=4 * params, bytes_sparse=sparse, bytes_entropy=entropy * params / 8)


def report(model: nnx.Module, sample_input, *,
           quantization_step: float = QUANTIZATION_STEP) -> Report:
  """Per-layer and total parameters, dead units, MACCs and memory.

  Args:
    model: any ``nnx.Module`` called on one array: a
      :class:`~sparse_optax.models.LayerStack` (the paper's models, or the
      output of :func:`sparse_optax.compact`) or a network of your own
      (traced, see the module docstring).
    sample_input: an array (or ``jax.ShapeDtypeStruct``) with the shape of a
      batch; only its shape is used.
    quantization_step: the step of the entropy estimate.

  Returns:
    A :class:`Report`; the definitions are in this module's docstring.

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from sparse_optax import metrics, models
    >>> metrics.report(models.LeNet300_100(rngs=nnx.Rngs(0)), jnp.zeros((1, 784))).total.maccs_dense
    266200
  """
  if not isinstance(model, models.LayerStack):
    return _total(_traced_layers(model, sample_input, quantization_step), quantization_step)
  flows = unit_flows(model, sample_input)
  layers = tuple(
      _layer_report(name, layer, flow_in, flow_out, quantization_step)
      for (name, layer), flow_in, flow_out in zip(model.named_layers(), flows[:-1], flows[1:])
      if _is_weighted(layer) or isinstance(layer, nnx.BatchNorm))
  return _total(layers, quantization_step)


def _total(layers: tuple[LayerReport, ...], quantization_step: float) -> Report:
  summed = {field.name: sum(getattr(layer, field.name) for layer in layers)
            for field in dataclasses.fields(LayerReport)
            if field.name not in ("name", "kind", "entropy_bits_per_weight")}
  entropy = 8 * summed["bytes_entropy"] / max(summed["params"], 1)
  total = LayerReport(name="total", kind="total", entropy_bits_per_weight=entropy, **summed)
  return Report(layers=layers, total=total, quantization_step=quantization_step)


_KINDS = ((nnx.Conv, "conv"), (nnx.Linear, "dense"), (nnx.LinearGeneral, "dense"),
          (nnx.BatchNorm, "batch_norm"), (nnx.LayerNorm, "layer_norm"),
          (nnx.MultiHeadAttention, "attention"))


def _kind(module) -> str:
  for cls, kind in _KINDS:
    if isinstance(module, cls):
      return kind
  return type(module).__name__.lower() if module is not None else "model"


def _traced_layers(model, sample_input, step) -> tuple[LayerReport, ...]:
  """One report per module that holds parameters or contracts, traced."""
  analysis = structure.analyze(model, sample_input)
  param_paths = structure.param_paths(model)
  rows = []
  for layer in analysis.layers:
    leaves = [k for k, path in enumerate(analysis.paths)
              if analysis.layer_of(k) == layer and structure.dotted(path) in param_paths]
    arrays = [np.asarray(analysis.leaves[k], np.float64) for k in leaves]
    values = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
    contractions = [c for c in analysis.contractions if c.layer == layer]
    kernel = next((k for k in leaves if k in analysis.roles), None)
    if kernel is not None:
      shape, kept = np.shape(analysis.leaves[kernel]), analysis.kept[kernel]
      dead_in, dead_out = (
          math.prod(shape[a] for a in axes) - math.prod(int(kept[a].sum()) for a in axes)
          for axes in analysis.roles[kernel])
    elif leaves:  # per-unit parameters (a normalisation): its removable units
      dead_in = dead_out = int((~analysis.kept[leaves[0]][-1]).sum()) if arrays[0].ndim else 0
    else:
      dead_in = dead_out = 0
    entropy = entropy_bits(values, step)
    rows.append(LayerReport(
        name=layer or "(model)", kind=_kind(analysis.modules.get(layer)),
        params=int(values.size), nonzero=int(np.count_nonzero(values)),
        dead_inputs=dead_in, dead_outputs=dead_out,
        maccs_dense=sum(c.maccs_dense for c in contractions),
        maccs_effective=sum(c.maccs_effective for c in contractions),
        entropy_bits_per_weight=entropy, bytes_dense=4 * int(values.size),
        bytes_sparse=sum(csr_bytes(a) if a.ndim >= 2 else 4 * a.size for a in arrays),
        bytes_entropy=entropy * values.size / 8))
  return tuple(rows)
