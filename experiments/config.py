"""The settings of one experiment: :class:`RunConfig`, its checks, its tables.

Every setting is a field of :class:`RunConfig` with its default and its help,
written once: the command line (:mod:`experiments.cli`) is generated from
these fields.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import shlex

import jax
import numpy as np
from flax import nnx

from experiments import data as data_lib
from sparse_optax import models
from sparse_optax import structure

MODELS = {"net4": models.Net4, "lenet300": models.LeNet300_100, "lfc4": models.LFC4,
          "simplenet": models.SimpleNet, "resnet": models.ResNet,
          "vit": models.VisionTransformer}
MODEL_DATASETS = {"net4": ("mnist", "fashion_mnist"), "lenet300": ("mnist", "fashion_mnist"),
                  "lfc4": ("mnist", "fashion_mnist"), "simplenet": ("cifar10",),
                  "resnet": ("mnist", "fashion_mnist"), "vit": ("mnist", "fashion_mnist")}
SCHEDULES = ("every-step", "lottery")
LR_SCHEDULES = ("constant", "cosine")
# The paper constrains Net4's conv2 and fc1 only (the first and last layers are
# the most sensitive); for the fully connected nets every kernel; for
# SimpleNet every kernel but the first convolution and the classifier.
DEFAULT_LAYERS = {"net4": ("conv2", "fc1")}

# The fraction the comparators keep when --keep is not given.
COMPARATOR_KEEP = 0.1

# The settings a run started with, compared when it resumes.
CONFIG_FILE = "config.json"


class ConfigError(ValueError):
  """A bad combination of settings, said in one line."""


def setting(default, help: str, **flag):
  """A :class:`RunConfig` field: its default, and its command-line help."""
  return dataclasses.field(default=default, metadata={"help": help, **flag})


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Everything that defines a run; ``out`` says where it is written."""

  model: str = setting(dataclasses.MISSING,
                       "net4 (Table I), lfc4 (II, IV), lenet300 (III), simplenet (V); "
                       "beyond the paper, resnet and vit (projected on the groups that "
                       "compaction removes)")
  dataset: str = setting(dataclasses.MISSING, "the images to train on")
  method: str = setting("adam", "adam alone, a projection (pgl1, pgl21, pgl11, pgl1inf, "
                        "bilevel_l1inf) after adam, or a comparator (halo, gsef, l1_over_l2, "
                        "magnitude)", grid=True)
  eta: float | None = setting(None, "radius of the ball (projections); strength of halo, "
                              "l1_over_l2, and of gsef relative to the learning rate", grid=True)
  layers: tuple[str, ...] | None = setting(
      None, "comma-separated layer names to constrain (default: as in the paper)")
  # A classifier's small kernel can sit inside the shared ball, and the first
  # layer may deserve a larger one.
  layer_eta: tuple[tuple[str, float], ...] = setting(
      (), "per-layer radii replacing --eta, e.g. fc5=40,fc1=800 (those layers are constrained too)")
  keep: float | None = setting(
      None, "projections (pgl1, pgl21, pgl11, bilevel_l1inf), instead of --eta: the fraction of "
      "each constrained layer's groups kept at every projection (of its weights, for pgl1); "
      "halo, l1_over_l2, magnitude: fraction of the constrained weights kept by the final "
      f"pruning; gsef: fraction of each layer's groups kept (comparators: {COMPARATOR_KEEP})")
  layer_keep: tuple[tuple[str, float], ...] = setting(
      (), "per-layer --keep for the projections, e.g. fc1=0.2,fc5=1 (those layers are "
      "constrained too)")
  schedule: str = setting("every-step", "every-step (Algorithm 1) or lottery (Algorithm 4)")
  epochs: int = setting(10, "epochs of training (the lottery's first phase)")
  retrain_epochs: int = setting(10, "epochs of the lottery's retraining, or of each magnitude "
                                "pruning round")
  lr: float = setting(1e-3, "Adam's learning rate")
  lr_schedule: str = setting("constant", "cosine: decay to 0 over each phase (the lottery's "
                             "retraining starts again from --lr)")
  rewind_to_epoch: int = setting(0, "lottery: rewind to the weights after this many epochs "
                                 "(late rewinding) instead of the initial ones")
  freeze_dead: bool = setting(False, "every-step: a group the projection zeroes stays zero")
  batch_size: int = setting(128, "examples per step")
  seed: int = setting(0, "initialisation, shuffling and dropout", grid=True)
  devices: int | None = setting(None, "train on the first N devices, each batch split over "
                                "them (default: every device)")
  out: str = setting("runs/run", "output folder")
  data_dir: str | None = setting(None, "folder with IDX files or CIFAR-10 python batches")
  verify_data: bool = setting(True, "use MNIST files whose MD5 differs from the original "
                              "release's", flag="--no-verify")
  train_examples: int | None = setting(None, "use only the first N training images")
  validation_examples: int = setting(
      0, "hold out the last N training images (after --train-examples) as a validation "
      "split: not trained on, its accuracy recorded every epoch and at the end")
  test_examples: int | None = setting(None, "use only the first N test images")


def comparator_keep(config) -> float:
  """A comparator's --keep: the given one, or :data:`COMPARATOR_KEEP`."""
  keep = config.keep if isinstance(config, RunConfig) else config.get("keep")
  return COMPARATOR_KEEP if keep is None else keep


def keep_of(config: RunConfig, layer: str) -> float | None:
  """A projection's fraction kept in ``layer``: its ``layer_keep`` entry, else ``keep``."""
  return dict(config.layer_keep).get(layer, config.keep)


def validate(config: RunConfig, method) -> None:
  """Raises :class:`ConfigError` for settings that cannot run.

  Args:
    config: the settings.
    method: the :class:`experiments.methods.Method` that ``config.method`` names.
  """
  def choose(value, choices, flag):
    if value not in choices:
      raise ConfigError(f"--{flag} {value!r} is not one of: {', '.join(choices)}")

  choose(config.model, MODELS, "model")
  choose(config.dataset, data_lib.DATASETS, "dataset")
  choose(config.schedule, SCHEDULES, "schedule")
  choose(config.lr_schedule, LR_SCHEDULES, "lr-schedule")
  if config.dataset not in MODEL_DATASETS[config.model]:
    raise ConfigError(f"--model {config.model} takes {' or '.join(MODEL_DATASETS[config.model])} "
                      f"images, not {config.dataset}")
  if method.eta is None and config.eta is not None:
    raise ConfigError(f"--method {config.method} takes no --eta")
  targets = config.keep is not None or bool(config.layer_keep)
  if method.projection and targets:
    if config.eta is not None or config.layer_eta:
      raise ConfigError("--keep and --eta exclude each other: a projection takes a radius or "
                        "a fraction of groups to keep")
    if not method.keeps:
      raise ConfigError(f"--method {config.method} takes --eta, not --keep")
  elif method.eta is not None:
    if config.eta is None:
      raise ConfigError(f"--method {config.method} needs --eta ({method.eta})"
                        + (" or --keep" if method.projection else ""))
    if not config.eta >= 0:
      raise ConfigError(f"--eta must be a number >= 0, got {config.eta}")
    if config.eta == float("inf"):
      raise ConfigError("--eta inf constrains nothing; give a finite radius")
  if config.layer_eta and not method.projection:
    raise ConfigError("--layer-eta needs a projection --method")
  if config.layer_keep and not method.projection:
    raise ConfigError("--layer-keep needs a projection --method")
  for name in ("epochs", "batch_size"):
    if getattr(config, name) < 1:
      raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}")
  lottery = method.projection and config.schedule == "lottery"
  if config.freeze_dead and not (method.projection and config.schedule == "every-step"):
    raise ConfigError("--freeze-dead needs a projection --method with --schedule every-step")
  if config.rewind_to_epoch and not lottery:
    raise ConfigError("--rewind-to-epoch needs a projection --method with --schedule lottery")
  if not 0 <= config.rewind_to_epoch < config.epochs:
    raise ConfigError(f"--rewind-to-epoch must be in [0, --epochs) = [0, {config.epochs}), "
                      f"got {config.rewind_to_epoch}")
  if lottery and config.retrain_epochs < 1:
    raise ConfigError("--schedule lottery needs --retrain-epochs >= 1")
  if config.keep is not None and not (0 <= config.keep <= 1 if method.projection
                                      else 0 < config.keep <= 1):
    raise ConfigError(f"--keep must be in {'[0, 1]' if method.projection else '(0, 1]'}, "
                      f"got {config.keep}")
  for name, radius in config.layer_eta:
    if not 0 <= radius < float("inf"):
      raise ConfigError(f"--layer-eta {name}={radius}: the radius must be a number >= 0")
  for name, fraction in config.layer_keep:
    if not 0 <= fraction <= 1:
      raise ConfigError(f"--layer-keep {name}={fraction}: the fraction must be in [0, 1]")
  if config.retrain_epochs < 0:
    raise ConfigError(f"--retrain-epochs must be >= 0, got {config.retrain_epochs}")
  if not 0 < config.lr < float("inf"):
    raise ConfigError(f"--lr must be a number > 0, got {config.lr}")
  devices = devices_of(config)
  if config.batch_size % len(devices):
    raise ConfigError(f"--batch-size {config.batch_size} does not split evenly over "
                      f"{len(devices)} devices")
  for name in ("train_examples", "test_examples"):
    value = getattr(config, name)
    if value is not None and value < 1:
      raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
  if config.validation_examples < 0:
    raise ConfigError(f"--validation-examples must be >= 0, got {config.validation_examples}")
  if config.train_examples is not None and config.validation_examples >= config.train_examples:
    raise ConfigError(f"--validation-examples {config.validation_examples} leaves no training "
                      f"image of --train-examples {config.train_examples}")
  # Layer names are checked on the model's shapes, before any data is loaded.
  constrained_layers(None, config)


def devices_of(config: RunConfig) -> list:
  """The devices a run trains on: the first ``config.devices``, or all."""
  available = jax.devices()
  if config.devices is None:
    return available
  if not 1 <= config.devices <= len(available):
    raise ConfigError(f"--devices must be in [1, {len(available)}] (the devices JAX sees), "
                      f"got {config.devices}")
  return available[:config.devices]


@functools.cache
def removable_groups(model_name: str) -> dict[str, tuple[int, ...]]:
  """For a model that is not a layer stack: its layers with groups compaction
  removes, and those groups (:func:`sparse_optax.structure.groups_of`)."""
  dataset = MODEL_DATASETS[model_name][0]
  sample = jax.ShapeDtypeStruct((1, *data_lib.IMAGE_SHAPES[dataset]), np.float32)
  groups = structure.groups_of(MODELS[model_name](rngs=nnx.Rngs(0)), sample)
  flat, _ = jax.tree_util.tree_flatten_with_path(groups, is_leaf=lambda v: isinstance(v, tuple))
  return {structure.layer_name(path): axes for path, axes in flat if axes is not None}


def group_axes_of(model_name: str):
  """``groups=`` for the projections: the removable groups, or the default."""
  if issubclass(MODELS[model_name], models.LayerStack):
    return "in"
  layers = removable_groups(model_name)
  return lambda path, leaf: layers.get(structure.layer_name(path))


def weighted_layers(model_name: str, model=None) -> list[str]:
  """The layers a method may constrain, in order."""
  if not issubclass(MODELS[model_name], models.LayerStack):
    return list(removable_groups(model_name))
  model = model if model is not None else nnx.eval_shape(
      lambda: MODELS[model_name](rngs=nnx.Rngs(0)))
  return [name for name, layer in model.named_layers() if isinstance(layer, (nnx.Linear, nnx.Conv))]


def constrained_layers(model: models.LayerStack, config: RunConfig) -> tuple[str, ...]:
  """Names of the weighted layers the method constrains."""
  weighted = weighted_layers(config.model, model)
  named = [("--layers", name) for name in config.layers or ()]
  named += [("--layer-eta", name) for name, _ in config.layer_eta]
  named += [("--layer-keep", name) for name, _ in config.layer_keep]
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
  extra = tuple(name for name, _ in (*config.layer_eta, *config.layer_keep) if name not in chosen)
  return tuple(name for name in weighted if name in chosen + extra)


def kernel_selector(layers):
  """``(path, leaf) -> bool``: the kernels of the constrained layers."""
  return lambda path, leaf: structure.layer_name(path) in layers and np.ndim(leaf) >= 2


def radius_of(config: RunConfig, layer: str) -> float:
  """The radius of ``layer``'s ball: its ``layer_eta`` entry, else ``eta``."""
  return dict(config.layer_eta).get(layer, config.eta)


def flag_of(name: str) -> str:
  """The command-line flag of a :class:`RunConfig` field."""
  field = {f.name: f for f in dataclasses.fields(RunConfig)}[name]
  return field.metadata.get("flag", "--" + name.replace("_", "-"))


def command(config: RunConfig, *, verb: str = "run", seeds=None) -> str:
  """``python -m experiments run ...`` that reruns ``config``: its required
  fields and every field that differs from its default, in field order.

  With ``verb="sweep"`` and ``seeds``, the sweep that runs ``config`` for
  each of those seeds.
  """
  words = ["python", "-m", "experiments", verb]
  for field in dataclasses.fields(RunConfig):
    value = getattr(config, field.name)
    flag = flag_of(field.name)
    if field.name == "seed" and seeds is not None:
      words += [flag, ",".join(str(seed) for seed in seeds)]
      continue
    if field.default is not dataclasses.MISSING and value == field.default:
      continue
    if isinstance(value, bool):
      words.append(flag)  # a switch: present exactly when it differs from the default
    elif field.name in ("layer_eta", "layer_keep"):
      words += [flag, ",".join(f"{name}={radius:g}" for name, radius in value)]
    elif isinstance(value, tuple):
      words += [flag, ",".join(map(str, value))]
    elif value is not None:
      words += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
  return shlex.join(words)


def from_settings(saved: dict, **overrides) -> RunConfig:
  """The :class:`RunConfig` of saved settings (a ``result.json`` or ``config.json``).

  Keys that are not settings are ignored; settings the file predates take
  their defaults; JSON's lists become the tuples the fields hold.
  """
  if "layer_keep" not in saved and saved.get("keep") == COMPARATOR_KEEP:
    # Saved before --keep also meant a projection's target: 0.1 was then every
    # run's default, which is what None means now.
    saved = dict(saved, keep=None)
  fields = {}
  for field in dataclasses.fields(RunConfig):
    if field.name not in saved:
      continue
    value = saved[field.name]
    if field.name in ("layer_eta", "layer_keep"):
      value = tuple((name, float(radius)) for name, radius in value)
    elif isinstance(value, list):
      value = tuple(value)
    fields[field.name] = value
  return RunConfig(**(fields | overrides))


def settings(config: RunConfig) -> dict:
  """The settings that define a run (all but ``out``), as JSON reads them back."""
  return json.loads(json.dumps({k: v for k, v in dataclasses.asdict(config).items() if k != "out"}))


def check_same_settings(out: pathlib.Path, config: RunConfig) -> None:
  """Refuses to resume ``out`` with settings other than those it started with."""
  path = out / CONFIG_FILE
  if not path.is_file():
    return
  saved = settings(from_settings(json.loads(path.read_text()), out=config.out))
  now = settings(config)
  differing = [f"--{name.replace('_', '-')} {saved.get(name)} (now {value})"
               for name, value in now.items() if saved.get(name) != value]
  if differing:
    raise ConfigError(f"{out} was started with other settings: {'; '.join(differing)}. "
                      "Resume with the saved settings, or choose another --out")
