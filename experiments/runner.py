"""One experiment of the paper: train, project, measure, checkpoint, resume.

Two schedules for the projections (Barlaud & Guyard, ICPR 2020):

* ``every-step`` (Algorithm 1): Adam, then the projection, at every step;
  with ``freeze_dead`` a group the projection zeroes stays zero.
* ``lottery`` (Algorithm 4), one :func:`sparse_optax.lottery_ticket`
  transformation: Adam for ``epochs``; at the last update of that phase
  project once, keep the zero pattern as a mask, rewind the surviving weights
  to their initial values (or to those after ``rewind_to_epoch`` epochs);
  retrain with masked Adam for ``retrain_epochs``. The accuracy logged for
  the last training epoch is that of the rewound network.

The literature's other sparsifiers (``halo``, ``gsef``, ``l1_over_l2``,
``magnitude``) run on the same footing; see :mod:`experiments.comparators`.

The settings are saved as ``OUT/config.json`` when a run starts, and a
checkpoint (orbax) after every epoch; ``resume=True`` refuses settings that
differ from the saved ones, continues from the last checkpoint and ends with
the same figures as an uninterrupted run with the same seed (data order,
dropout and initialisation all derive from it). Inside
:func:`experiments.interrupt.deferred`, a signal stops the run between two
steps, never inside a compilation or a checkpoint write.
The result is ``OUT/result.json``, written atomically, with the paper's
figures and two pictures of the constrained weights.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import platform
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx

import sparse_optax
from experiments import comparators
from experiments import data as data_lib
from experiments import interrupt
from experiments import plots
from experiments.progress import Progress
from experiments.progress import duration
from sparse_optax import lottery, metrics, models

MODELS = {"net4": models.Net4, "lenet300": models.LeNet300_100, "lfc4": models.LFC4,
          "simplenet": models.SimpleNet}
MODEL_DATASETS = {"net4": ("mnist", "fashion_mnist"), "lenet300": ("mnist", "fashion_mnist"),
                  "lfc4": ("mnist", "fashion_mnist"), "simplenet": ("cifar10",)}
PROJECTIONS = {"pgl1": sparse_optax.project_l1, "pgl21": sparse_optax.project_l21,
               "pgl11": sparse_optax.project_l11, "pgl1inf": sparse_optax.project_l1inf,
               "bilevel_l1inf": sparse_optax.project_bilevel_l1inf}
METHODS = ("adam", *PROJECTIONS, *comparators.COMPARATORS)
SCHEDULES = ("every-step", "lottery")
LR_SCHEDULES = ("constant", "cosine")
# The paper constrains Net4's conv2 and fc1 only (the first and last layers are
# the most sensitive); for the fully connected nets every kernel; for
# SimpleNet every kernel but the first convolution and the classifier.
DEFAULT_LAYERS = {"net4": ("conv2", "fc1")}


# The settings a run started with, compared by ``resume``.
CONFIG_FILE = "config.json"


class ConfigError(ValueError):
  """A bad combination of settings, said in one line."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
  model: str
  dataset: str
  method: str = "adam"
  eta: float | None = None
  layers: tuple[str, ...] | None = None
  # (layer name, radius) pairs that replace ``eta`` for those layers, which
  # are then constrained too: a classifier's small kernel can sit inside the
  # shared ball, and the first layer may deserve a larger one.
  layer_eta: tuple[tuple[str, float], ...] = ()
  # The comparators' final pruning keeps this fraction of the constrained
  # weights (halo, l1_over_l2, magnitude) or of each layer's groups (gsef).
  keep: float = 0.1
  schedule: str = "every-step"
  epochs: int = 10
  retrain_epochs: int = 10
  lr: float = 1e-3
  # "cosine" decays the rate to 0 over each phase (the lottery's retraining
  # starts again from ``lr``).
  lr_schedule: str = "constant"
  # The lottery rewinds to the weights after this many epochs (0: the initial ones).
  rewind_to_epoch: int = 0
  # Every-step projections: keep the groups a projection zeroes at zero.
  freeze_dead: bool = False
  batch_size: int = 128
  seed: int = 0
  out: str = "runs/run"
  data_dir: str | None = None
  # Check MNIST's files against the original release's MD5 sums.
  verify_data: bool = True
  train_examples: int | None = None
  test_examples: int | None = None


def validate(config: RunConfig) -> None:
  """Raises :class:`ConfigError` for settings that cannot run."""
  def choose(value, choices, flag):
    if value not in choices:
      raise ConfigError(f"--{flag} {value!r} is not one of: {', '.join(choices)}")

  choose(config.model, MODELS, "model")
  choose(config.dataset, data_lib.DATASETS, "dataset")
  choose(config.method, METHODS, "method")
  choose(config.schedule, SCHEDULES, "schedule")
  choose(config.lr_schedule, LR_SCHEDULES, "lr-schedule")
  if config.dataset not in MODEL_DATASETS[config.model]:
    raise ConfigError(f"--model {config.model} takes {' or '.join(MODEL_DATASETS[config.model])} "
                      f"images, not {config.dataset}")
  if config.method in ("adam", "magnitude") and config.eta is not None:
    raise ConfigError(f"--method {config.method} takes no --eta")
  if config.method not in ("adam", "magnitude"):
    if config.eta is None:
      what = "the radius of the ball" if config.method in PROJECTIONS else "its strength"
      raise ConfigError(f"--method {config.method} needs --eta ({what})")
    if not config.eta >= 0:
      raise ConfigError(f"--eta must be >= 0, got {config.eta}")
  if config.layer_eta and config.method not in PROJECTIONS:
    raise ConfigError("--layer-eta needs a projection --method")
  for name in ("epochs", "batch_size"):
    if getattr(config, name) < 1:
      raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}")
  lottery = config.method in PROJECTIONS and config.schedule == "lottery"
  if config.freeze_dead and not (config.method in PROJECTIONS and config.schedule == "every-step"):
    raise ConfigError("--freeze-dead needs a projection --method with --schedule every-step")
  if config.rewind_to_epoch and not lottery:
    raise ConfigError("--rewind-to-epoch needs a projection --method with --schedule lottery")
  if not 0 <= config.rewind_to_epoch < config.epochs:
    raise ConfigError(f"--rewind-to-epoch must be in [0, --epochs) = [0, {config.epochs}), "
                      f"got {config.rewind_to_epoch}")
  if lottery and config.retrain_epochs < 1:
    raise ConfigError("--schedule lottery needs --retrain-epochs >= 1")
  if not 0 < config.keep <= 1:
    raise ConfigError(f"--keep must be in (0, 1], got {config.keep}")
  for name, radius in config.layer_eta:
    if not radius >= 0:
      raise ConfigError(f"--layer-eta {name}={radius}: the radius must be >= 0")
  if config.retrain_epochs < 0 or not config.lr > 0:
    raise ConfigError("--retrain-epochs must be >= 0 and --lr > 0")
  for name in ("train_examples", "test_examples"):
    value = getattr(config, name)
    if value is not None and value < 1:
      raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
  # Layer names are checked on the model's shapes, before any data is loaded.
  constrained_layers(nnx.eval_shape(lambda: MODELS[config.model](rngs=nnx.Rngs(0))), config)


def constrained_layers(model: models.LayerStack, config: RunConfig) -> tuple[str, ...]:
  """Names of the weighted layers the projection constrains."""
  weighted = [name for name, layer in model.named_layers()
              if isinstance(layer, (nnx.Linear, nnx.Conv))]
  named = [("--layers", name) for name in config.layers or ()]
  named += [("--layer-eta", name) for name, _ in config.layer_eta]
  for flag, name in named:
    if name not in weighted:
      raise ConfigError(f"{flag}: {name} not among {', '.join(weighted)}")
  if config.layers is not None:
    chosen = tuple(config.layers)
  elif config.model in DEFAULT_LAYERS:
    chosen = DEFAULT_LAYERS[config.model]
  elif config.model == "simplenet":
    chosen = tuple(weighted[1:-1])
  else:
    chosen = tuple(weighted)
  extra = tuple(name for name, _ in config.layer_eta if name not in chosen)
  return tuple(name for name in weighted if name in chosen + extra)


def phases(config: RunConfig) -> list[tuple[str, int]]:
  """``(phase, epochs)``: "train" then, for the lottery, "retrain", for
  magnitude pruning "round1", "round2", ... Every phase after the first
  starts from a new mask and the rewound initial weights."""
  if config.method == "magnitude":
    return [("train", config.epochs)] + [
        (f"round{i}", config.retrain_epochs)
        for i in range(1, comparators.magnitude_rounds(config.keep) + 1)]
  if config.method in PROJECTIONS and config.schedule == "lottery":
    return [("train", config.epochs), ("retrain", config.retrain_epochs)]
  return [("train", config.epochs)]


def schedule_label(run: dict) -> str:
  """How a run trains, for tables: the projections' schedule, or the
  comparator's recipe. ``run`` holds a run's settings (a result or its row)."""
  method, keep = run["method"], run.get("keep") or RunConfig.keep
  if method == "adam":
    return "-"
  if method in PROJECTIONS:
    if run.get("freeze_dead"):
      return f"{run['schedule']}, freeze dead"
    if run.get("rewind_to_epoch"):
      return f"{run['schedule']}, rewind to epoch {run['rewind_to_epoch']}"
    return run["schedule"]
  if method == "magnitude":
    return f"{comparators.magnitude_rounds(keep)} rounds, keep {keep:g}"
  ending = "top groups" if method == "gsef" else "prune"
  return f"{'prox' if method == 'gsef' else 'penalty'}, {ending} to {keep:g}"


def phase_of(config: RunConfig, epoch: int) -> str:
  """The phase that epoch ``epoch`` (1-based) belongs to."""
  end = 0
  for phase, epochs in phases(config):
    end += epochs
    if epoch <= end:
      return phase
  raise ValueError(f"epoch {epoch} is past the last phase")


def radius_of(config: RunConfig, layer: str) -> float:
  """The radius of ``layer``'s ball: its ``layer_eta`` entry, else ``eta``."""
  return dict(config.layer_eta).get(layer, config.eta)


def _radius(config: RunConfig, layers) -> Callable:
  return lambda path, leaf: (radius_of(config, path[0].key)
                             if path[0].key in layers and np.ndim(leaf) >= 2 else None)


def learning_rate(config: RunConfig, phase_steps: int) -> optax.ScalarOrSchedule:
  """``lr``, constant or decayed to 0 over the ``phase_steps`` steps of a phase."""
  if config.lr_schedule == "cosine":
    return optax.cosine_decay_schedule(config.lr, max(phase_steps, 1))
  return config.lr


def one_optimizer(config: RunConfig) -> bool:
  """Whether one optimizer serves every phase (all but magnitude pruning's
  rounds, which each start from a new mask)."""
  return config.method != "magnitude"


def optimizer_for(config: RunConfig, phase: str, layers, mask=None, *,
                  steps_per_epoch: int = 1) -> optax.GradientTransformation:
  """Adam (with the projection, the lottery, or a pruning round's mask) for a phase of a run."""
  if config.method in PROJECTIONS and config.schedule == "lottery":
    train_steps = config.epochs * steps_per_epoch
    return sparse_optax.lottery_ticket(
        optax.adam(learning_rate(config, train_steps)),
        PROJECTIONS[config.method](_radius(config, layers)), prune_at=train_steps,
        rewind_to=config.rewind_to_epoch * steps_per_epoch,
        retrain_optimizer=optax.adam(
            learning_rate(config, config.retrain_epochs * steps_per_epoch)))
  phase_epochs = dict(phases(config))[phase]
  adam = optax.adam(learning_rate(config, phase_epochs * steps_per_epoch))
  if phase != "train":
    return lottery.retrain_optimizer(adam, mask)
  if config.method in PROJECTIONS and config.schedule == "every-step":
    return optax.chain(adam, PROJECTIONS[config.method](_radius(config, layers),
                                                        freeze_dead=config.freeze_dead))
  prox = comparators.proximal_step(config.method, config.eta, config.keep, layers)
  return adam if prox is None else optax.chain(adam, prox)


class Scales(nnx.Module):
  """HALO's trainable per-weight scales, ``{layer: array}``."""

  def __init__(self, values: dict):
    self.values = nnx.data({name: nnx.Param(value) for name, value in values.items()})


@functools.partial(nnx.jit, static_argnames=("penalty",))
def train_step(model, optimizer, x, y, penalty=None, scales=None, scales_optimizer=None):
  """One Adam step on the cross-entropy (plus ``penalty(params, scales)``,
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


def evaluate(model, dataset: data_lib.Dataset, images, labels, batch_size: int) -> float:
  model.eval()
  correct = 0
  for x, y, valid in data_lib.batches(images, labels, batch_size, mean=dataset.mean,
                                      std=dataset.std):
    correct += int(np.sum((np.asarray(predict(model, x)) == y) & valid))
  model.train()
  return correct / len(images)


def params_of(model):
  return nnx.as_pure(nnx.state(model, nnx.Param))


def read_result(run_dir) -> dict:
  """The ``result.json`` of a finished run."""
  return json.loads((pathlib.Path(run_dir) / "result.json").read_text())


def _write_json(path: pathlib.Path, content) -> None:
  """Writes JSON atomically: a killed run never leaves half a file."""
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(json.dumps(content, indent=2, sort_keys=True))
  os.replace(tmp, path)


class Checkpoints:
  """Orbax checkpoints of everything a run needs to continue, one per epoch."""

  def __init__(self, directory: pathlib.Path):
    self.manager = ocp.CheckpointManager(
        directory.resolve(), options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))

  def latest(self) -> int | None:
    return self.manager.latest_step()

  def save(self, epoch: int, state: dict) -> None:
    self.manager.save(epoch, args=ocp.args.StandardSave(state))
    self.manager.wait_until_finished()

  def restore(self, epoch: int, like: dict) -> dict:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self.manager.restore(epoch, args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    self.manager.close()


def _leaves(tree) -> list:
  return jax.tree.leaves(tree)


def _restore_into(target, leaves) -> Any:
  return jax.tree.unflatten(jax.tree.structure(target), leaves)


def _sample_input(dataset: data_lib.Dataset) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct((1,) + dataset.train_images.shape[1:], jnp.float32)


def _subset(dataset: data_lib.Dataset, config: RunConfig) -> data_lib.Dataset:
  """The first examples of each split, when the config asks for fewer."""
  return dataclasses.replace(
      dataset,
      train_images=dataset.train_images[:config.train_examples],
      train_labels=dataset.train_labels[:config.train_examples],
      test_images=dataset.test_images[:config.test_examples],
      test_labels=dataset.test_labels[:config.test_examples])


def figures(model, sample, layers) -> dict:
  """The paper's figures of a model (MACCs, memory, sparsity) from its report."""
  report = metrics.report(model, sample)
  total = report.total
  return {
      "maccs_dense": total.maccs_dense,
      "maccs_effective": total.maccs_effective,
      "memory_kb": total.bytes_entropy / 1000,
      "bytes_sparse": total.bytes_sparse,
      "bytes_dense": total.bytes_dense,
      "nonzero_fraction": total.nonzero / total.params,
      "neurons_removed": sum(layer.dead_outputs for layer in report.layers
                             if layer.kind in ("dense", "conv")),
      "layers_report": [dataclasses.asdict(layer) for layer in report.layers],
      "quantization_step": report.quantization_step,
  }


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
  progress = progress or Progress()
  out = pathlib.Path(config.out)
  if out.exists() and not out.is_dir():
    raise ConfigError(f"--out {out} is a file; give a folder")
  result_path = out / "result.json"
  if resume:
    _check_same_settings(out, config)
  if result_path.exists():
    if resume:
      return json.loads(result_path.read_text())
    raise ConfigError(f"{out} already holds a finished run; choose another --out")
  if (out / "checkpoints").exists() and not resume:
    raise ConfigError(f"{out} holds an interrupted run; pass --resume to continue it")
  if resume and saved_epoch(out) is None:
    progress.line(f"nothing to resume in {out}: starting a new run")
  out.mkdir(parents=True, exist_ok=True)
  _write_json(out / CONFIG_FILE, _settings(config))

  dataset = _subset(dataset or data_lib.load(config.dataset, config.data_dir, verify=config.verify_data), config)
  model = MODELS[config.model](rngs=nnx.Rngs(config.seed))
  layers = constrained_layers(model, config)
  selected = _selector(layers)
  sample = _sample_input(dataset)
  initial = params_of(model)
  all_true = jax.tree.map(lambda p: jnp.ones(p.shape, bool), initial)
  mask = all_true
  steps = len(dataset.train_images) // config.batch_size

  def phase_optimizer(phase, mask):
    return nnx.Optimizer(model, optimizer_for(config, phase, layers, mask, steps_per_epoch=steps),
                         wrt=nnx.Param)

  penalty = comparators.penalty(config.method, config.eta, layers)
  scales = scales_optimizer = None
  if config.method == "halo":
    scales = Scales(comparators.halo_initial_scales(initial, layers))
    scales_optimizer = nnx.Optimizer(scales, comparators.HALO_SCALES_OPTIMIZER, wrt=nnx.Param)

  def state_to_save():
    state = {"model": _leaves(nnx.state(model, nnx.Not(nnx.RngKey))),
             "optimizer": _leaves(nnx.state(optimizer)),
             "initial": _leaves(initial), "mask": _leaves(mask)}
    if scales is not None:
      state |= {"scales": _leaves(nnx.state(scales)),
                "scales_optimizer": _leaves(nnx.state(scales_optimizer))}
    return state

  phase = "train"
  optimizer = phase_optimizer(phase, mask)
  history: list[dict] = []
  first_epoch = 1

  checkpoints = Checkpoints(out / "checkpoints")
  try:
    latest = checkpoints.latest() if resume else None
    if latest is not None:
      phase = phase_of(config, latest)
      optimizer = phase_optimizer(phase, all_true)  # the saved state's structure
      saved = checkpoints.restore(latest, state_to_save())
      nnx.update(model, _restore_into(nnx.state(model, nnx.Not(nnx.RngKey)), saved["model"]))
      initial = _restore_into(initial, saved["initial"])
      mask = _restore_into(mask, saved["mask"])
      optimizer = phase_optimizer(phase, mask)
      nnx.update(optimizer, _restore_into(nnx.state(optimizer), saved["optimizer"]))
      if scales is not None:
        nnx.update(scales, _restore_into(nnx.state(scales), saved["scales"]))
        nnx.update(scales_optimizer,
                   _restore_into(nnx.state(scales_optimizer), saved["scales_optimizer"]))
      history = json.loads((out / "history.json").read_text())[:latest]
      first_epoch = latest + 1
      progress.line(f"resuming {out} after epoch {latest}")

    total_epochs = sum(epochs for _, epochs in phases(config))
    for epoch in range(first_epoch, total_epochs + 1):
      if phase_of(config, epoch) != phase and not one_optimizer(config):  # a new mask, rewind
        phase = phase_of(config, epoch)
        survivors = comparators.next_mask(config.keep, int(phase.removeprefix("round")),
                                          params_of(model), mask, selected)
        mask = jax.tree.map(lambda m, t: t if m is None else m, survivors, all_true,
                            is_leaf=lambda m: m is None)
        nnx.update(model, lottery.rewind(initial, mask))
        optimizer = phase_optimizer(phase, mask)
      phase = phase_of(config, epoch)
      step = lambda x, y: train_step(model, optimizer, x, y, penalty, scales, scales_optimizer)
      history.append(_train_epoch(model, step, dataset, config, epoch, total_epochs, phase,
                                  sample, progress, [h["seconds"] for h in history]))
      checkpoints.save(epoch, state_to_save())
      _write_json(out / "history.json", history)
      if after_epoch is not None:
        after_epoch(epoch)
      interrupt.raise_if_requested()
  finally:
    checkpoints.close()

  accuracy_before_pruning = accuracy_before_rounding = history[-1]["accuracy"]
  zeroed = comparators.final_zeroing(config.method, config.keep, params_of(model), layers,
                                     selected)
  if zeroed is not None:  # the comparator's own last step: shrunk weights to exact zeros
    nnx.update(model, zeroed)
    accuracy_before_rounding = evaluate(model, dataset, dataset.test_images,
                                        dataset.test_labels, config.batch_size)
  # The network that is measured is the one that is evaluated: weights on the
  # memory estimate's quantisation grid, those below half a step exact zeros.
  nnx.update(model, metrics.quantize(params_of(model)))
  accuracy = evaluate(model, dataset, dataset.test_images, dataset.test_labels,
                      config.batch_size)
  result = {
      **dataclasses.asdict(config),
      "layers": list(layers),
      "accuracy": accuracy,
      "accuracy_before_pruning": accuracy_before_pruning,
      "accuracy_before_rounding": accuracy_before_rounding,
      "epochs_total": len(history),
      **figures(model, sample, layers),
      "seconds": sum(h["seconds"] for h in history),
      "data_source": dataset.source,
      "data_files": [{"path": path, "sha256": digest} for path, digest in dataset.files],
      "train_examples": len(dataset.train_images),
      "test_examples": len(dataset.test_images),
      "history": history,
      "plots": _draw(model, layers, config, out),
      "platform": {"jax": jax.__version__, "device": str(jax.devices()[0]),
                   "python": platform.python_version()},
  }
  _write_json(result_path, result)
  return json.loads(result_path.read_text())  # as a resumed run reads it back


def _settings(config: RunConfig) -> dict:
  """The settings that define a run (all but ``out``), as JSON reads them back."""
  return json.loads(json.dumps({k: v for k, v in dataclasses.asdict(config).items() if k != "out"}))


def _check_same_settings(out: pathlib.Path, config: RunConfig) -> None:
  """Refuses to resume ``out`` with settings other than those it started with."""
  path = out / CONFIG_FILE
  if not path.is_file():
    return
  saved, now = json.loads(path.read_text()), _settings(config)
  differing = [f"--{name.replace('_', '-')} {saved.get(name)} (now {value})"
               for name, value in now.items() if saved.get(name) != value]
  if differing:
    raise ConfigError(f"{out} was started with other settings: {'; '.join(differing)}. "
                      "Resume with the saved settings, or choose another --out")


def saved_epoch(out) -> int | None:
  """The last epoch checkpointed in ``out``, or ``None``."""
  folder = pathlib.Path(out) / "checkpoints"
  epochs = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
  return max(epochs, default=None)


def _selector(layers) -> Callable:
  """``(path, leaf) -> bool``: the kernels of the constrained layers."""
  return lambda path, leaf: path[0].key in layers and np.ndim(leaf) >= 2


def _train_epoch(model, step, dataset, config, epoch, total_epochs, phase, sample,
                 progress, earlier_seconds) -> dict:
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
  accuracy = evaluate(model, dataset, dataset.test_images, dataset.test_labels, config.batch_size)
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


def _draw(model, layers, config: RunConfig, out: pathlib.Path) -> list[str]:
  shown = layers if config.method != "adam" else tuple(
      name for name, layer in model.named_layers() if isinstance(layer, (nnx.Linear, nnx.Conv)))
  kernels = {name: np.asarray(getattr(model, name).kernel[...]) for name in shown}
  label = f"{config.model} {config.dataset} {config.method} eta={config.eta} {config.schedule}"
  return [str(plots.weight_matrices_png(kernels, out / "weights.png", title=label)),
          str(plots.weight_distributions_png(kernels, out / "distribution.png", title=label))]
