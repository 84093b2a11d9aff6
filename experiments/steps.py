"""The compiled training and evaluation steps, and one epoch of them."""

from __future__ import annotations

import functools
import statistics
import time

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments import data as data_lib
from experiments import interrupt
from experiments.progress import duration
from sparse_optax import metrics


class Scales(nnx.Module):
  """HALO's trainable per-weight scales, ``{layer: array}``."""

  def __init__(self, values: dict):
    self.values = nnx.data({name: nnx.Param(value) for name, value in values.items()})


def params_of(model):
  """The model's parameters as a pure pytree."""
  return nnx.as_pure(nnx.state(model, nnx.Param))


@functools.partial(nnx.jit, static_argnames=("penalty",))
def train_step(model, optimizer, x, y, penalty=None, scales=None, scales_optimizer=None):
  """One step on the cross-entropy (plus ``penalty(params, scales)``,
  minimised in the scales too when they are given); returns the cross-entropy."""
  def loss_fn(model, scales):
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
    if penalty is None:
      return cross_entropy, cross_entropy
    values = None if scales is None else {k: v[...] for k, v in scales.values.items()}
    return cross_entropy + penalty(params_of(model), values), cross_entropy

  if scales is None:
    (_, loss), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, None)
  else:
    (_, loss), (grads, scale_grads) = nnx.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True)(model, scales)
    scales_optimizer.update(scales, scale_grads)
  optimizer.update(model, grads)
  return loss


@nnx.jit
def predict(model, x):
  return jnp.argmax(model(x), axis=-1)


def evaluate(model, dataset: data_lib.Dataset, batch_size: int) -> float:
  """Accuracy on the test split, in evaluation mode (no dropout)."""
  model.eval()
  correct = 0
  for x, y, valid in data_lib.batches(dataset.test_images, dataset.test_labels, batch_size,
                                      mean=dataset.mean, std=dataset.std):
    correct += int(np.sum((np.asarray(predict(model, x)) == y) & valid))
  model.train()
  return correct / len(dataset.test_images)


def train_epoch(model, step, dataset, config, epoch, total_epochs, phase, sample,
                progress, earlier_seconds) -> dict:
  """One epoch of ``step(x, y)``, then the test accuracy and the sparsity;
  returns the epoch's record and says it on ``progress``."""
  start = time.perf_counter()
  steps = len(dataset.train_images) // config.batch_size
  bar = progress.epoch(f"epoch {epoch}/{total_epochs} ({phase})", steps, config.batch_size)
  losses = []
  batches = data_lib.batches(dataset.train_images, dataset.train_labels, config.batch_size,
                             mean=dataset.mean, std=dataset.std, seed=config.seed, epoch=epoch)
  for count, (x, y, _) in enumerate(batches, start=1):
    losses.append(step(x, y))
    bar.update(count, losses[-1])
    interrupt.raise_if_requested()
  mean_loss = float(jnp.mean(jnp.stack(losses))) if losses else float("nan")
  throughput = bar.close()
  accuracy = evaluate(model, dataset, config.batch_size)
  seconds = time.perf_counter() - start
  report = metrics.report(model, sample).total
  record = {"epoch": epoch, "phase": phase, "loss": mean_loss, "accuracy": accuracy,
            "maccs_effective": report.maccs_effective,
            "nonzero_fraction": report.nonzero / report.params,
            "examples_per_second": throughput, "seconds": seconds}
  progress.line(
      f"epoch {epoch}/{total_epochs} ({phase}): loss {mean_loss:.4f}, accuracy "
      f"{100 * accuracy:.2f} %, {report.maccs_effective / 1e3:,.1f} k-MACCs effective, "
      f"{100 * record['nonzero_fraction']:.1f} % non-zero, {throughput:,.0f} img/s, {seconds:.1f} s"
      + (f", about {duration(statistics.fmean(earlier_seconds + [seconds]) * (total_epochs - epoch))} "
         "left" if epoch < total_epochs else ""))
  return record
