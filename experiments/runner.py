"""One experiment of the paper: train, project, measure, checkpoint, resume.

:func:`run` reads top to bottom: the settings and the data; the model, the
method's optimizer and its checkpointed state; the epochs; the method's last
step; the figures of the network that is evaluated. The methods are in
:mod:`experiments.methods`, the settings in :mod:`experiments.config`.

The settings are saved as ``OUT/config.json`` when a run starts, and a
checkpoint (orbax) after every epoch; ``resume=True`` refuses settings that
differ from the saved ones, continues from the last checkpoint and ends with
the same figures as an uninterrupted run with the same seed (data order,
dropout and initialisation all derive from it). Inside
:func:`experiments.interrupt.deferred`, a signal stops the run between two
steps, never inside a compilation or a checkpoint write.
The result is ``OUT/result.json``, written atomically, with the paper's
figures and two pictures of the constrained weights. Its figures describe
the final weights rounded to :data:`sparse_optax.metrics.QUANTIZATION_STEP`,
the network whose accuracy is reported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments import comparators
from experiments import config as config_lib
from experiments import data as data_lib
from experiments import hosts
from experiments import interrupt
from experiments import methods
from experiments import plots
from experiments import provenance
from experiments import steps
from experiments.checkpoints import Checkpoints, like, load_into, saved_epoch
from experiments.config import ConfigError, RunConfig
from experiments.progress import Progress
from sparse_optax import lottery, metrics


def validate(config: RunConfig) -> None:
  """Raises :class:`~experiments.config.ConfigError` for settings that cannot run."""
  config_lib.validate(config, methods.of(config))


def read_result(run_dir) -> dict:
  """The ``result.json`` of a finished run."""
  return json.loads((pathlib.Path(run_dir) / "result.json").read_text())


def _write_json(path: pathlib.Path, content) -> None:
  """Writes JSON atomically (a killed run never leaves half a file), from
  process 0 only when several processes train together."""
  if not hosts.writes_files():
    return
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(json.dumps(content, indent=2, sort_keys=True))
  os.replace(tmp, path)


def _sample_input(dataset: data_lib.Dataset) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct((1,) + dataset.train_images.shape[1:], jnp.float32)


def _subset(dataset: data_lib.Dataset, config: RunConfig):
  """``(dataset, held_out)``: the first examples of each split when the config
  asks for fewer, and the last ``validation_examples`` training examples
  taken out as ``(images, labels)`` (None without a validation split)."""
  train_images = dataset.train_images[:config.train_examples]
  train_labels = dataset.train_labels[:config.train_examples]
  held_out = None
  if config.validation_examples:
    cut = len(train_images) - config.validation_examples
    held_out = train_images[cut:], train_labels[cut:]
    train_images, train_labels = train_images[:cut], train_labels[:cut]
  return dataclasses.replace(
      dataset, train_images=train_images, train_labels=train_labels,
      test_images=dataset.test_images[:config.test_examples],
      test_labels=dataset.test_labels[:config.test_examples]), held_out


def figures(model, sample) -> dict:
  """The paper's figures of a model (MACCs, memory, sparsity) from its report."""
  report = metrics.report(model, sample)
  total = report.total
  weighted = [layer for layer in report.layers if layer.kind in ("dense", "conv")]
  return {
      "maccs_dense": total.maccs_dense,
      "maccs_effective": total.maccs_effective,
      "memory_kb": total.bytes_entropy / 1000,
      "bytes_sparse": total.bytes_sparse,
      "bytes_dense": total.bytes_dense,
      "nonzero_fraction": total.nonzero / total.params,
      # Every unit removed: the network's input features no live weight reads
      # (the first weighted layer's dead inputs) and every layer's dead outputs.
      "neurons_removed": weighted[0].dead_inputs + sum(layer.dead_outputs for layer in weighted),
      "layers_report": [dataclasses.asdict(layer) for layer in report.layers],
      "quantization_step": report.quantization_step,
  }


def _output_folder(config: RunConfig, resume: bool, progress: Progress) -> pathlib.Path | None:
  """Checks ``config.out`` against ``resume``; None when the run had finished."""
  out = pathlib.Path(config.out)
  if out.exists() and not out.is_dir():
    raise ConfigError(f"--out {out} is a file; give a folder")
  if resume:
    config_lib.check_same_settings(out, config)
  if (out / "result.json").exists():
    if resume:
      return None
    raise ConfigError(f"{out} already holds a finished run; choose another --out")
  if (out / "checkpoints").exists() and not resume:
    raise ConfigError(f"{out} holds an interrupted run; pass --resume to continue it")
  if resume and saved_epoch(out) is None:
    progress.line(f"nothing to resume in {out}: starting a new run")
  return out


class _Training:
  """What a run changes as it trains: the model, its optimizer, HALO's scales,
  the initial weights and the mask; saved and restored by name."""

  def __init__(self, config: RunConfig, method: methods.Method, steps_per_epoch: int):
    self.config, self.method, self.steps_per_epoch = config, method, steps_per_epoch
    self.model = config_lib.MODELS[config.model](rngs=nnx.Rngs(config.seed))
    self.layers = layers = config_lib.constrained_layers(self.model, config)
    self.initial = steps.params_of(self.model)
    self.all_true = jax.tree.map(lambda p: jnp.ones(p.shape, bool), self.initial)
    self.mask = self.all_true
    self.scales = self.scales_optimizer = None
    if method.halo_scales:
      self.scales = steps.Scales(comparators.halo_initial_scales(self.initial, layers))
      self.scales_optimizer = nnx.Optimizer(self.scales, comparators.HALO_SCALES_OPTIMIZER,
                                            wrt=nnx.Param)
    self.penalty = None if method.penalty is None else method.penalty(config, layers)
    self.optimizer = self._optimizer("train")

  def _optimizer(self, phase: str) -> nnx.Optimizer:
    transformation = self.method.optimizer(self.config, phase, self.layers, self.mask,
                                           self.steps_per_epoch)
    return nnx.Optimizer(self.model, transformation, wrt=nnx.Param)

  @property
  def state(self) -> steps.TrainState:
    """What a training step changes, and its loss: over the current optimizer."""
    return steps.TrainState(self.model, self.optimizer, self.scales, self.scales_optimizer,
                            self.penalty)

  def start_round(self, phase: str) -> None:
    """Magnitude pruning: the next round's mask, the rewound weights, a new optimizer."""
    survivors = self.method.next_mask(self.config, int(phase.removeprefix("round")),
                                      steps.params_of(self.model), self.mask, self.layers)
    self.mask = jax.tree.map(lambda m, t: t if m is None else m, survivors, self.all_true,
                             is_leaf=lambda m: m is None)
    nnx.update(self.model, lottery.rewind(self.initial, self.mask))
    self.optimizer = self._optimizer(phase)

  def states(self) -> dict:
    saved = {"model": nnx.state(self.model, nnx.Not(nnx.RngKey)),
             "optimizer": nnx.state(self.optimizer),
             "initial": self.initial, "mask": self.mask}
    if self.scales is not None:
      saved |= {"scales": nnx.state(self.scales),
                "scales_optimizer": nnx.state(self.scales_optimizer)}
    return saved

  def restore(self, saved: dict, phase: str) -> None:
    load_into(self.model, saved["model"], nnx.Not(nnx.RngKey))
    self.initial = like(self.initial, saved["initial"])
    self.mask = like(self.mask, saved["mask"])
    self.optimizer = self._optimizer(phase)
    load_into(self.optimizer, saved["optimizer"])
    if self.scales is not None:
      load_into(self.scales, saved["scales"])
      load_into(self.scales_optimizer, saved["scales_optimizer"])


def run(config: RunConfig, *, resume: bool = False, progress: Progress | None = None,
        dataset: data_lib.Dataset | None = None,
        after_epoch: Callable[[int], None] | None = None) -> dict:
  """Runs (or resumes) one experiment and returns its result.

  Args:
    config: the settings.
    resume: continue from the last checkpoint in ``config.out`` (or return the
      result if the run had finished).
    progress: where to report progress (default: the terminal).
    dataset: an already loaded dataset (the sweep shares one).
    after_epoch: called with the epoch number after each checkpoint (tests
      use it to interrupt a run).

  Returns:
    The content of ``result.json``.
  """
  validate(config)
  method = methods.of(config)
  progress = progress or Progress()
  out = _output_folder(config, resume, progress)
  if out is None:
    return read_result(config.out)
  out.mkdir(parents=True, exist_ok=True)
  _write_json(out / config_lib.CONFIG_FILE, config_lib.settings(config))

  dataset, held_out = _subset(dataset or data_lib.load(config.dataset, config.data_dir,
                                                        verify=config.verify_data), config)
  devices = config_lib.devices_of(config)
  on_devices = steps.to_devices(dataset, steps.data_mesh(devices), config.batch_size)
  validation = None if held_out is None else (
      steps.with_test_split(on_devices, *held_out, config.batch_size), len(held_out[1]))
  sample = _sample_input(dataset)
  epoch_data = steps.EpochData(on_devices, len(dataset.train_images), len(dataset.test_images),
                               sample, validation)
  training = _Training(config, method, len(dataset.train_images) // config.batch_size)
  layers = training.layers
  total_epochs = sum(epochs for _, epochs in method.phases(config))
  history: list[dict] = []

  checkpoints = Checkpoints(out / "checkpoints")
  try:
    latest = checkpoints.latest() if resume else None
    if latest is not None:
      training.restore(checkpoints.restore(latest), method.phase_of(config, latest))
      history = json.loads((out / "history.json").read_text())[:latest]
      progress.line(f"resuming {out} after epoch {latest}")
    # The time left is read from this process's epochs: a resumed run's earlier
    # epochs ran on another load, machine or version of the code.
    resumed_epochs = len(history)
    for epoch in range(len(history) + 1, total_epochs + 1):
      phase = method.phase_of(config, epoch)
      if method.next_mask is not None and phase != method.phase_of(config, max(epoch - 1, 1)):
        training.start_round(phase)
      history.append(steps.train_epoch(
          training.state, epoch_data, config, epoch=epoch, total_epochs=total_epochs,
          phase=phase, progress=progress,
          earlier_seconds=[h.get("steady_seconds", h["seconds"])
                           for h in history[resumed_epochs:]]))
      checkpoints.save(epoch, steps.replicate(training.states(), on_devices.mesh))
      _write_json(out / "history.json", history)
      if after_epoch is not None:
        after_epoch(epoch)
      interrupt.raise_if_requested()
  finally:
    checkpoints.close()

  model = training.model
  accuracy_before_pruning = accuracy_before_rounding = history[-1]["accuracy"]
  if method.final_zeroing is not None:  # the method's own last step: exact zeros
    nnx.update(model, method.final_zeroing(config, steps.params_of(model), layers))
    accuracy_before_rounding = steps.evaluate(model, on_devices, config.batch_size,
                                              len(dataset.test_images))
  # The network that is measured is the one that is evaluated: weights on the
  # memory estimate's quantisation grid, those below half a step exact zeros.
  nnx.update(model, metrics.quantize(steps.params_of(model)))
  result = {
      **dataclasses.asdict(config),
      "settings": config_lib.settings(config),
      "code_version": provenance.code_version(),
      "command": config_lib.command(config),
      "invocation": provenance.command_line(),
      "layers": list(layers),
      "accuracy": steps.evaluate(model, on_devices, config.batch_size, len(dataset.test_images)),
      "accuracy_before_pruning": accuracy_before_pruning,
      "accuracy_before_rounding": accuracy_before_rounding,
      "epochs_total": len(history),
      **figures(model, sample),
      "seconds": sum(h["seconds"] for h in history),
      "data_source": dataset.source,
      "data_files": [{"path": path, "sha256": digest} for path, digest in dataset.files],
      "train_examples": len(dataset.train_images),
      "test_examples": len(dataset.test_images),
      "history": history,
      "plots": _draw(model, layers, config, method, out),
      "devices": len(devices),
      "platform": {"jax": jax.__version__, "device": str(devices[0]),
                   "platform": devices[0].platform, "python": platform.python_version()},
  }
  if validation is not None:
    result["validation_accuracy"] = steps.evaluate(model, validation[0], config.batch_size,
                                                   validation[1])
  _write_json(out / "result.json", result)
  return json.loads(json.dumps(result))  # as a resumed run reads it back


def _module(model, name: str):
  """The submodule at a dotted path, e.g. ``blocks.0.conv2``."""
  for part in name.split("."):
    model = model[int(part)] if part.isdigit() else getattr(model, part)
  return model


def _draw(model, layers, config: RunConfig, method: methods.Method,
          out: pathlib.Path) -> list[str]:
  shown = layers if method.constrains else config_lib.weighted_layers(config.model, model)
  kernels = {name: np.asarray(_module(model, name).kernel[...]) for name in shown}
  label = f"{config.model} {config.dataset} {config.method} eta={config.eta} {config.schedule}"
  pictures = out / "weights.png", out / "distribution.png"
  if hosts.writes_files():
    plots.weight_matrices_png(kernels, pictures[0], title=label)
    plots.weight_distributions_png(kernels, pictures[1], title=label)
  return [str(path) for path in pictures]
