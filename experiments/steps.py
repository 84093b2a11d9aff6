"""The training and evaluation steps, compiled to run on the devices.

The data lives on the devices once (:func:`to_devices`); an epoch is a few
compiled calls, each a ``lax.scan`` over :data:`CHUNK_STEPS` steps of
shuffled batches, the order drawn on the device from ``(seed, epoch)``.
Every batch is sharded over the ``("data",)`` axis of the mesh, the
parameters and the optimizer state replicated, so ``jit`` splits each step
over the devices and sums the gradients across them. Between two calls the
progress bar redraws and an interruption can stop the run.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from experiments import data as data_lib
from experiments import interrupt
from experiments.progress import duration
from sparse_optax import metrics

# Steps per compiled call: the host dispatches one call and reads one loss per
# chunk, a cost spread over 64 steps; the bar and Ctrl-C act between chunks.
CHUNK_STEPS = 64


class Scales(nnx.Module):
  """HALO's trainable per-weight scales, ``{layer: array}``."""

  def __init__(self, values: dict):
    self.values = nnx.data({name: nnx.Param(value) for name, value in values.items()})


class TrainState(nnx.Module):
  """What a training step changes, and the loss it minimises.

  Attributes:
    model: the network.
    optimizer: its ``nnx.Optimizer``.
    scales: HALO's learnt scales (:class:`Scales`), or None.
    scales_optimizer: their optimizer, or None.
    penalty: ``penalty(params, scales) -> scalar`` added to the cross-entropy
      (the regularising comparators), or None.
  """

  def __init__(self, model, optimizer, scales=None, scales_optimizer=None, penalty=None):
    self.model, self.optimizer = model, optimizer
    self.scales, self.scales_optimizer = scales, scales_optimizer
    self.penalty = penalty


def params_of(model):
  """The model's parameters as a pure pytree."""
  return nnx.as_pure(nnx.state(model, nnx.Param))


def data_mesh(devices) -> Mesh:
  """A one-axis ``("data",)`` mesh over ``devices``."""
  return Mesh(np.asarray(devices), ("data",))


@dataclasses.dataclass(frozen=True)
class DeviceData:
  """A dataset on the devices: uint8 images and labels replicated, the test
  split padded to whole batches with ``test_valid`` marking real examples."""

  train_images: jax.Array
  train_labels: jax.Array
  test_images: jax.Array
  test_labels: jax.Array
  test_valid: jax.Array
  mean: jax.Array
  std: jax.Array
  mesh: Mesh


jax.tree_util.register_dataclass(
    DeviceData, data_fields=["train_images", "train_labels", "test_images", "test_labels",
                             "test_valid", "mean", "std"], meta_fields=["mesh"])


def to_devices(dataset: data_lib.Dataset, mesh: Mesh, batch_size: int) -> DeviceData:
  """Copies ``dataset`` to every device of ``mesh`` (once per run)."""
  pad = -len(dataset.test_images) % batch_size
  test_images = np.concatenate([dataset.test_images,
                                np.zeros((pad,) + dataset.test_images.shape[1:], np.uint8)])
  test_labels = np.concatenate([dataset.test_labels, np.zeros(pad, dataset.test_labels.dtype)])
  valid = np.arange(len(test_labels)) < len(dataset.test_labels)
  put = functools.partial(_replicated, mesh)
  return DeviceData(put(dataset.train_images), put(dataset.train_labels.astype(np.int32)),
                    put(test_images), put(test_labels.astype(np.int32)), put(valid),
                    put(np.asarray(dataset.mean, np.float32)),
                    put(np.asarray(dataset.std, np.float32)), mesh)


def with_test_split(data: DeviceData, images: np.ndarray, labels: np.ndarray,
                    batch_size: int) -> DeviceData:
  """``data`` with another split to evaluate on (a validation split); the
  training arrays already on the devices are shared, not copied."""
  held_out = data_lib.Dataset("held out", images[:0], labels[:0], images, labels, "",
                              np.zeros(1), np.ones(1))
  other = to_devices(held_out, data.mesh, batch_size)
  return dataclasses.replace(data, test_images=other.test_images, test_labels=other.test_labels,
                             test_valid=other.test_valid)


def _replicated(mesh: Mesh, array: np.ndarray) -> jax.Array:
  """``array`` on every device of ``mesh``, from each process's own copy."""
  sharding = NamedSharding(mesh, PartitionSpec())
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def replicate(tree, mesh: Mesh):
  """``tree``'s arrays on every device of ``mesh`` (of every process)."""
  sharding = NamedSharding(mesh, PartitionSpec())
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)

  def put(leaf):
    if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
      return leaf
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      data = _replicated(mesh, np.asarray(jax.random.key_data(leaf)))
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    return _replicated(mesh, np.asarray(leaf))

  return jax.tree.map(put, tree)


def _update(state: TrainState, x, y):
  """One step on the cross-entropy (plus the penalty, minimised in the scales
  too when there are some); returns the cross-entropy."""
  def loss_fn(model, scales):
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
    if state.penalty is None:
      return cross_entropy, cross_entropy
    values = None if scales is None else {k: v[...] for k, v in scales.values.items()}
    return cross_entropy + state.penalty(params_of(model), values), cross_entropy

  if state.scales is None:
    (_, loss), grads = nnx.value_and_grad(loss_fn, has_aux=True)(state.model, None)
  else:
    (_, loss), (grads, scale_grads) = nnx.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True)(state.model, state.scales)
    state.scales_optimizer.update(state.scales, scale_grads)
  state.optimizer.update(state.model, grads)
  return loss


train_step = nnx.jit(_update)
train_step.__doc__ = """One jitted step on one batch from the host (the reference the
scanned epochs are tested against); see :func:`train_chunk`."""


def epoch_order(seed: int, epoch: int, examples: int, batch_size: int) -> jax.Array:
  """The epoch's batches as example indices, ``(steps, batch_size)``: a
  permutation drawn from ``(seed, epoch)``, the last incomplete batch dropped."""
  return _epoch_order(jnp.asarray(seed, jnp.uint32), jnp.asarray(epoch, jnp.uint32),
                      examples, batch_size)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _epoch_order(seed, epoch, examples, batch_size):
  key = jax.random.fold_in(jax.random.key(seed), epoch)
  steps = examples // batch_size
  return jax.random.permutation(key, examples)[:steps * batch_size].reshape(steps, batch_size)


def _batch(data: DeviceData, images, labels, index):
  """Standardised images and labels of ``index``, sharded over the data axis."""
  sharded = NamedSharding(data.mesh, PartitionSpec("data"))
  x = (images[index].astype(jnp.float32) - data.mean) / data.std
  return (jax.lax.with_sharding_constraint(x, sharded),
          jax.lax.with_sharding_constraint(labels[index], sharded))


def _step(graphdef, treedef, data: DeviceData, leaves, index):
  """One step on the batch ``index``; the variables travel as their leaves:
  nnx may rebuild a tuple inside the optimizer state as a State, a change of
  structure scan would refuse."""
  replicated = NamedSharding(data.mesh, PartitionSpec())
  state = nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))
  x, y = _batch(data, data.train_images, data.train_labels, index)
  loss = _update(state, x, y)
  leaves = jax.tree.leaves(nnx.state(state))
  return jax.lax.with_sharding_constraint((leaves, loss), replicated)


@functools.partial(jax.jit, static_argnames="graphdef")
def train_chunk(graphdef, variables, order, data: DeviceData):
  """``len(order)`` steps, scanned: ``order`` holds one batch of indices per step.

  Args:
    graphdef: ``nnx.split(state)[0]`` of a :class:`TrainState`.
    variables: the matching variables, replicated.
    order: ``(steps, batch_size)`` indices into the training split.
    data: the dataset on the devices.

  Returns:
    The new variables and the cross-entropy of every step.
  """
  treedef = jax.tree.structure(variables)
  step = functools.partial(_step, graphdef, treedef, data)
  leaves, losses = jax.lax.scan(step, jax.tree.leaves(variables), order)
  return jax.tree.unflatten(treedef, leaves), losses


@functools.partial(jax.jit, static_argnames="graphdef")
def train_one(graphdef, variables, order, data: DeviceData):
  """:func:`train_chunk` for ``order`` of one step, without the loop."""
  treedef = jax.tree.structure(variables)
  leaves, loss = _step(graphdef, treedef, data, jax.tree.leaves(variables), order[0])
  return jax.tree.unflatten(treedef, leaves), loss[None]


def steps_per_call(model) -> int:
  """Steps per compiled call: :data:`CHUNK_STEPS`, or 1 for convolutions on a CPU.

  XLA:CPU runs a convolution inside a loop several times slower than the
  same convolution in a call of its own (measured with jax 0.10: Net4 3.2x,
  the residual CNN 13x slower scanned; dense models 1.3x faster scanned), so
  on a CPU a model with a convolution takes one call per step.
  """
  convolutional = any(isinstance(m, nnx.Conv) for _, m in nnx.iter_modules(model))
  return 1 if convolutional and jax.default_backend() == "cpu" else CHUNK_STEPS


@functools.partial(jax.jit, static_argnames=("graphdef", "batch_size"))
def _correct(graphdef, state, data: DeviceData, batch_size: int):
  model = nnx.merge(graphdef, state)
  batches = data.test_images.shape[0] // batch_size
  order = jnp.arange(batches * batch_size).reshape(batches, batch_size)

  def count(index):
    x, y = _batch(data, data.test_images, data.test_labels, index)
    return jnp.sum((jnp.argmax(model(x), axis=-1) == y) & data.test_valid[index])

  total = jnp.sum(jax.lax.map(count, order))
  return jax.lax.with_sharding_constraint(total, NamedSharding(data.mesh, PartitionSpec()))


def evaluate(model, data: DeviceData, batch_size: int, examples: int) -> float:
  """Accuracy on the ``examples`` real test images, in evaluation mode (no
  dropout, running batch statistics): one compiled call."""
  model.eval()
  graphdef, state = nnx.split(model)
  correct = _correct(graphdef, replicate(state, data.mesh), data, batch_size)
  model.train()
  return int(correct) / examples


def train_steps(state: TrainState, data: DeviceData, order, after_chunk=None) -> jax.Array:
  """Trains ``state`` on the batches of ``order``, :func:`steps_per_call`
  steps per compiled call; returns the cross-entropy of every step.

  Args:
    state: updated in place once all the steps are done.
    data: the dataset on the devices.
    order: ``(steps, batch_size)`` indices into the training split.
    after_chunk: called with the steps done and the last loss after each call.
  """
  chunk = steps_per_call(state.model)
  train = train_one if chunk == 1 else train_chunk
  graphdef, variables = nnx.split(state)
  variables = replicate(variables, data.mesh)
  steps = order.shape[0]
  losses = []
  for first in range(0, steps, chunk):
    variables, chunk_losses = train(graphdef, variables, order[first:first + chunk], data)
    losses.append(chunk_losses)
    if after_chunk is not None:
      # Dispatch returns before the steps run: the progress bar times the
      # steps themselves, so it waits for them.
      after_chunk(min(first + chunk, steps), chunk_losses[-1].block_until_ready())
    interrupt.raise_if_requested()
  nnx.update(state, variables)
  return jnp.concatenate(losses) if losses else jnp.zeros(0)


@dataclasses.dataclass(frozen=True)
class EpochData:
  """What an epoch reads besides the state.

  Attributes:
    on_devices: the dataset on the devices.
    train_examples: the size of the training split.
    test_examples: the number of real test images.
    sample: one input's shape and dtype, for the metrics.
    validation: ``(DeviceData, examples)`` of a held-out split, or None.
  """

  on_devices: DeviceData
  train_examples: int
  test_examples: int
  sample: jax.ShapeDtypeStruct
  validation: tuple | None = None


def train_epoch(state: TrainState, data: EpochData, config, *, epoch: int, total_epochs: int,
                phase: str, progress, earlier_seconds: list[float]) -> dict:
  """One epoch over the training split, then the test accuracy and the
  sparsity; returns the epoch's record and says it on ``progress``.

  Args:
    state: the model, its optimizer and the loss, trained in place.
    data: the splits; with a validation split the record also carries its
      accuracy as ``validation_accuracy``.
    config: the run's settings (seed, batch size).
    epoch: this epoch's number, from 1, out of ``total_epochs``.
    phase: its phase ("train", "retrain", a pruning round).
    progress: where the bar and the epoch's line go.
    earlier_seconds: the steady-state seconds of the epochs before, for the
      time left.
  """
  start = time.perf_counter()
  model = state.model
  order = epoch_order(config.seed, epoch, data.train_examples, config.batch_size)
  steps = order.shape[0]
  bar = progress.epoch(f"epoch {epoch}/{total_epochs} ({phase})", steps, config.batch_size)
  losses = train_steps(state, data.on_devices, order, bar.update)
  mean_loss = float(jnp.mean(losses)) if losses.size else float("nan")
  steady = bar.steady_seconds()
  throughput = bar.close()
  accuracy = evaluate(model, data.on_devices, config.batch_size, data.test_examples)
  seconds = time.perf_counter() - start
  report = metrics.report(model, data.sample).total
  record = {"epoch": epoch, "phase": phase, "loss": mean_loss, "accuracy": accuracy,
            "maccs_effective": report.maccs_effective,
            "nonzero_fraction": report.nonzero / report.params,
            "examples_per_second": throughput, "seconds": seconds, "steady_seconds": steady}
  held_out = ""
  if data.validation is not None:
    record["validation_accuracy"] = evaluate(model, data.validation[0], config.batch_size,
                                             data.validation[1])
    held_out = f" (validation {100 * record['validation_accuracy']:.2f} %)"
  progress.line(
      f"epoch {epoch}/{total_epochs} ({phase}): loss {mean_loss:.4f}, accuracy "
      f"{100 * accuracy:.2f} %{held_out}, {report.maccs_effective / 1e3:,.1f} k-MACCs effective, "
      f"{100 * record['nonzero_fraction']:.1f} % non-zero, {throughput:,.0f} img/s, {seconds:.1f} s"
      # The time left from steady-state steps: the first epoch's compilation
      # would otherwise count in every epoch to come.
      + (f", about {duration(statistics.fmean(earlier_seconds + [steady]) * (total_epochs - epoch))} "
         "left" if epoch < total_epochs else ""))
  return record
