"""The networks of Barlaud & Guyard (ICPR 2020) in Flax NNX.

Every model is a :class:`LayerStack`: named layers applied in order. Weighted
layers use Flax's own modules and layouts (``Linear`` kernel ``(in, out)``,
``Conv`` kernel ``(kh, kw, in, out)``), so the projecting transformations'
default grouping (one group per input feature or channel) applies as is, and
parameter paths name the layers (``("conv2", "kernel")``), so a callable
``eta`` can pick layers the way the paper does.

The weights start as PyTorch's defaults (the paper's framework), so that the
paper's radii ``eta`` mean the same thing here: uniform in
``±1/sqrt(fan_in)`` for ``Linear`` and for Net4's convolutions, Glorot uniform
with the ReLU gain for SimpleNet's convolutions, as its reference code does.
Images are NHWC; the fully connected models take flat vectors or images.

Call ``model.eval()`` for inference (dropout off, batch-norm running
statistics) and ``model.train()`` to train.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def torch_uniform(fan_in_axes: Sequence[int]):
  """PyTorch's default initialiser: uniform in ±1/sqrt(fan_in)."""

  def init(key, shape, dtype=jnp.float32):
    fan_in = math.prod(shape[ax] for ax in fan_in_axes)
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _torch_bias(fan_in: int):
  bound = 1.0 / math.sqrt(fan_in)
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def linear(fan_in: int, fan_out: int, *, rngs: nnx.Rngs) -> nnx.Linear:
  """A ``Linear`` layer initialised as ``torch.nn.Linear``."""
  return nnx.Linear(fan_in, fan_out, kernel_init=torch_uniform((0,)),
                    bias_init=_torch_bias(fan_in), rngs=rngs)


def conv(cin: int, cout: int, size: int, *, padding="VALID", kernel_init=None,
         rngs: nnx.Rngs) -> nnx.Conv:
  """A ``Conv`` layer initialised as ``torch.nn.Conv2d`` (unless told otherwise)."""
  fan_in = cin * size * size
  return nnx.Conv(cin, cout, (size, size), padding=padding,
                  kernel_init=kernel_init or torch_uniform((0, 1, 2)),
                  bias_init=_torch_bias(fan_in), rngs=rngs)


class ReLU(nnx.Module):
  def __call__(self, x):
    return jax.nn.relu(x)


class MaxPool(nnx.Module):
  """Max pooling over non-overlapping ``window x window`` patches (no padding)."""

  def __init__(self, window: int = 2):
    self.window = window

  def __call__(self, x):
    return nnx.max_pool(x, (self.window, self.window), strides=(self.window, self.window))


class GlobalMaxPool(nnx.Module):
  """Max over the spatial axes of an NHWC batch: ``(N, H, W, C) -> (N, C)``."""

  def __call__(self, x):
    return jnp.max(x, axis=(1, 2))


class Flatten(nnx.Module):
  """``(N, ...) -> (N, features)``, in NHWC order; flat input passes through."""

  def __call__(self, x):
    return x.reshape(x.shape[0], -1)


class Select(nnx.Module):
  """Keeps the given indices of the last axis (written by :func:`sparse_optax.compact`)."""

  def __init__(self, indices: Sequence[int]):
    self.indices = tuple(int(i) for i in indices)

  def __call__(self, x):
    return jnp.take(x, jnp.asarray(self.indices, jnp.int32), axis=-1)


class LayerStack(nnx.Module):
  """Named layers applied in order; the common shape of the paper's networks.

  Args:
    layers: ``(name, module)`` pairs. Names become attributes, so parameter
      paths read ``("fc1", "kernel")``.
  """

  def __init__(self, layers: Sequence[tuple[str, nnx.Module]]):
    names = tuple(name for name, _ in layers)
    if len(set(names)) != len(names):
      raise ValueError(f"layer names must be unique, got {names}")
    for name, layer in layers:
      setattr(self, name, layer)
    self.order = names

  def named_layers(self) -> list[tuple[str, nnx.Module]]:
    return [(name, getattr(self, name)) for name in self.order]

  def __call__(self, x):
    for name in self.order:
      x = getattr(self, name)(x)
    return x


class Net4(LayerStack):
  """Two convolutions and two dense layers, for 28x28x1 images (480 500 MACCs).

  conv 1→10 5x5, max-pool 2, ReLU; conv 10→20 5x5, channel dropout 0.5,
  max-pool 2, ReLU; flatten (320); dense 320→50, ReLU, dropout 0.5; dense
  50→10. The paper projects only ``conv2`` and ``fc1``.

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from sparse_optax.models import Net4
    >>> Net4(rngs=nnx.Rngs(0))(jnp.zeros((2, 28, 28, 1))).shape
    (2, 10)
  """

  def __init__(self, *, num_classes: int = 10, rngs: nnx.Rngs):
    super().__init__([
        ("conv1", conv(1, 10, 5, rngs=rngs)),
        ("pool1", MaxPool(2)),
        ("relu1", ReLU()),
        ("conv2", conv(10, 20, 5, rngs=rngs)),
        ("drop2", nnx.Dropout(0.5, broadcast_dims=(1, 2), rngs=rngs)),
        ("pool2", MaxPool(2)),
        ("relu2", ReLU()),
        ("flatten", Flatten()),
        ("fc1", linear(320, 50, rngs=rngs)),
        ("relu3", ReLU()),
        ("drop3", nnx.Dropout(0.5, rngs=rngs)),
        ("fc2", linear(50, num_classes, rngs=rngs)),
    ])


def _mlp(widths: Sequence[int], rngs: nnx.Rngs) -> list[tuple[str, nnx.Module]]:
  layers: list[tuple[str, nnx.Module]] = [("flatten", Flatten())]
  for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
    layers.append((f"fc{i}", linear(fan_in, fan_out, rngs=rngs)))
    if i < len(widths) - 1:
      layers.append((f"relu{i}", ReLU()))
  return layers


class LeNet300_100(LayerStack):
  """LeNet-300-100: 784→300→100→10 with ReLU (266 200 MACCs).

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from sparse_optax.models import LeNet300_100
    >>> LeNet300_100(rngs=nnx.Rngs(0))(jnp.zeros((2, 784))).shape
    (2, 10)
  """

  def __init__(self, *, num_classes: int = 10, rngs: nnx.Rngs):
    super().__init__(_mlp((784, 300, 100, num_classes), rngs))


class LFC4(LayerStack):
  """The paper's LFC4: 784→768→768→768→768→10 with ReLU (2 379 264 MACCs).

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from sparse_optax.models import LFC4
    >>> LFC4(rngs=nnx.Rngs(0))(jnp.zeros((2, 28, 28, 1))).shape
    (2, 10)
  """

  def __init__(self, *, num_classes: int = 10, rngs: nnx.Rngs):
    super().__init__(_mlp((784, 768, 768, 768, 768, num_classes), rngs))


# SimpleNet's 13 convolution blocks: (out channels, kernel size, then pool).
SIMPLENET_BLOCKS = (
    (64, 3, False), (128, 3, False), (128, 3, False), (128, 3, True),
    (128, 3, False), (128, 3, False), (256, 3, True),
    (256, 3, False), (256, 3, True),
    (512, 3, True),
    (2048, 1, False), (256, 1, True),
    (256, 3, False),
)


class SimpleNet(LayerStack):
  """SimpleNet for 32x32x3 images (CIFAR-10), 5.5 M parameters.

  13 blocks of convolution (3x3 with padding 1, or 1x1 without), batch norm
  (momentum 0.95, i.e. PyTorch's 0.05; epsilon 1e-5) and ReLU; after blocks
  4, 7, 9, 10 and 12 a 2x2 max-pool and channel dropout 0.1; then a global
  max-pool, channel dropout 0.1 and a dense 256→10. After Hasanpour et al.
  (2016), Coderx7/SimpleNet_Pytorch ``models/simplenet.py`` (2019).

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from sparse_optax.models import SimpleNet
    >>> model = nnx.eval_shape(lambda: SimpleNet(rngs=nnx.Rngs(0)))  # shapes only
    >>> model.conv11.kernel.shape, model.fc.kernel.shape
    ((1, 1, 512, 2048), (256, 10))
  """

  def __init__(self, *, num_classes: int = 10, in_channels: int = 3, rngs: nnx.Rngs):
    glorot_relu = jax.nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")
    layers: list[tuple[str, nnx.Module]] = []
    cin = in_channels
    for i, (cout, size, pool) in enumerate(SIMPLENET_BLOCKS, start=1):
      layers += [
          (f"conv{i}", conv(cin, cout, size, padding="SAME" if size > 1 else "VALID",
                            kernel_init=glorot_relu, rngs=rngs)),
          (f"bn{i}", nnx.BatchNorm(cout, momentum=0.95, epsilon=1e-5, rngs=rngs)),
          (f"relu{i}", ReLU()),
      ]
      if pool:
        layers += [(f"pool{i}", MaxPool(2)),
                   (f"drop{i}", nnx.Dropout(0.1, broadcast_dims=(1, 2), rngs=rngs))]
      cin = cout
    layers += [("global_pool", GlobalMaxPool()),
               ("drop_out", nnx.Dropout(0.1, rngs=rngs)),
               ("fc", linear(cin, num_classes, rngs=rngs))]
    super().__init__(layers)


# PyTorch's batch-norm momentum (0.1 there, 1 - 0.1 in Flax's convention):
# Flax's default 0.99 leaves the running statistics near their start for the
# first few hundred steps, and evaluation with them wrong.
BATCH_NORM_MOMENTUM = 0.9


class ResidualBlock(nnx.Module):
  """conv 3x3, batch norm, ReLU, conv 3x3, batch norm, plus the shortcut, ReLU.

  The shortcut is the identity, or a strided 1x1 convolution with batch norm
  where the width or the resolution changes (He et al., CVPR 2016). The
  ``hidden`` channels between the two convolutions are the block's own units.
  """

  def __init__(self, channels_in: int, hidden: int, channels_out: int, *, stride: int = 1,
               rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(channels_in, hidden, (3, 3), strides=stride, use_bias=False,
                          rngs=rngs)
    self.bn1 = nnx.BatchNorm(hidden, momentum=BATCH_NORM_MOMENTUM, rngs=rngs)
    self.conv2 = nnx.Conv(hidden, channels_out, (3, 3), use_bias=False, rngs=rngs)
    self.bn2 = nnx.BatchNorm(channels_out, momentum=BATCH_NORM_MOMENTUM, rngs=rngs)
    if stride != 1 or channels_in != channels_out:
      self.shortcut = nnx.Conv(channels_in, channels_out, (1, 1), strides=stride,
                               use_bias=False, rngs=rngs)
      self.shortcut_bn = nnx.BatchNorm(channels_out, momentum=BATCH_NORM_MOMENTUM, rngs=rngs)
    else:
      self.shortcut = self.shortcut_bn = None

  def __call__(self, x):
    y = nnx.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    if self.shortcut is not None:
      x = self.shortcut_bn(self.shortcut(x))
    return nnx.relu(x + y)


class ResNet(nnx.Module):
  """A small residual CNN for 28x28x1 images, beyond the paper.

  A strided 3x3 stem (→ 14x14), then ``blocks_per_stage`` residual blocks per
  width in ``widths``, each stage after the first halving the resolution,
  global average pooling and a dense classifier. The defaults (widths 16
  and 32, two blocks each) make 4 blocks and 3.44 M MACCs per image.

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from sparse_optax.models import ResNet
    >>> ResNet(rngs=nnx.Rngs(0))(jnp.zeros((2, 28, 28, 1))).shape
    (2, 10)
  """

  def __init__(self, *, widths: Sequence[int] = (16, 32), blocks_per_stage: int = 2,
               num_classes: int = 10, in_channels: int = 1, rngs: nnx.Rngs):
    self.stem = nnx.Conv(in_channels, widths[0], (3, 3), strides=2, use_bias=False, rngs=rngs)
    self.stem_bn = nnx.BatchNorm(widths[0], momentum=BATCH_NORM_MOMENTUM, rngs=rngs)
    blocks = []
    channels = widths[0]
    for stage, width in enumerate(widths):
      for index in range(blocks_per_stage):
        stride = 2 if stage > 0 and index == 0 else 1
        blocks.append(ResidualBlock(channels, width, width, stride=stride, rngs=rngs))
        channels = width
    self.blocks = nnx.List(blocks)
    self.head = nnx.Linear(channels, num_classes, rngs=rngs)

  def __call__(self, x):
    x = nnx.relu(self.stem_bn(self.stem(x)))
    for block in self.blocks:
      x = block(x)
    return self.head(x.mean(axis=(1, 2)))


class EncoderBlock(nnx.Module):
  """Pre-norm transformer block: x + attention(LN x), then x + MLP(LN x)."""

  def __init__(self, width: int, heads: int, hidden: int, *, rngs: nnx.Rngs):
    self.norm1 = nnx.LayerNorm(width, rngs=rngs)
    self.attention = nnx.MultiHeadAttention(num_heads=heads, in_features=width,
                                            decode=False, rngs=rngs)
    self.norm2 = nnx.LayerNorm(width, rngs=rngs)
    self.fc1 = nnx.Linear(width, hidden, rngs=rngs)
    self.fc2 = nnx.Linear(hidden, width, rngs=rngs)

  def __call__(self, x):
    x = x + self.attention(self.norm1(x))
    return x + self.fc2(nnx.gelu(self.fc1(self.norm2(x))))


class VisionTransformer(nnx.Module):
  """A small vision transformer for 28x28x1 images, beyond the paper.

  Non-overlapping ``patch x patch`` patches embedded by a strided
  convolution, a learned position embedding, ``depth`` pre-norm encoder
  blocks (multi-head attention and an MLP), a final LayerNorm, the mean over
  tokens and a dense classifier. The defaults (patch 4: 49 tokens; width 64,
  4 heads, MLP 128, depth 2) make 3.88 M MACCs per image, attention's score
  and value products included.

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from sparse_optax.models import VisionTransformer
    >>> VisionTransformer(rngs=nnx.Rngs(0))(jnp.zeros((2, 28, 28, 1))).shape
    (2, 10)
  """

  def __init__(self, *, image_size: int = 28, patch: int = 4, width: int = 64,
               heads: int = 4, hidden: int = 128, depth: int = 2, num_classes: int = 10,
               in_channels: int = 1, rngs: nnx.Rngs):
    tokens = (image_size // patch) ** 2
    self.embed = nnx.Conv(in_channels, width, (patch, patch), strides=patch,
                          padding="VALID", rngs=rngs)
    self.position = nnx.Param(0.02 * jax.random.normal(rngs.params(), (1, tokens, width)))
    self.blocks = nnx.List([EncoderBlock(width, heads, hidden, rngs=rngs)
                            for _ in range(depth)])
    self.norm = nnx.LayerNorm(width, rngs=rngs)
    self.head = nnx.Linear(width, num_classes, rngs=rngs)

  def __call__(self, x):
    x = self.embed(x)
    x = x.reshape(x.shape[0], -1, x.shape[-1]) + self.position[...]
    for block in self.blocks:
      x = block(x)
    return self.head(self.norm(x).mean(axis=1))
