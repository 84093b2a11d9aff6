"""The methods a run trains with, one record each.

A :class:`Method` says what ``--eta`` means for it, its phases, the optimizer
of each phase, what it adds to the loss, how it ends and how tables name its
recipe. The projections follow Barlaud & Guyard (ICPR 2020):

* ``every-step`` (Algorithm 1): Adam, then the projection, at every step;
  with ``freeze_dead`` a group the projection zeroes stays zero.
* ``lottery`` (Algorithm 4), one :func:`sparse_optax.lottery_ticket`
  transformation: Adam for ``epochs``; at the last update of that phase
  project once, keep the zero pattern as a mask, rewind the surviving weights
  to their initial values (or to those after ``rewind_to_epoch`` epochs);
  retrain with masked Adam for ``retrain_epochs``. The accuracy logged for
  the last training epoch is that of the rewound network.

The literature's other sparsifiers are described in
:mod:`experiments.comparators`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import optax

import sparse_optax
from experiments import comparators
from experiments import config as config_lib
from experiments.config import ConfigError, RunConfig, comparator_keep, keep_of, kernel_selector
from experiments.config import radius_of
from sparse_optax import lottery
from sparse_optax import structure


@dataclasses.dataclass(frozen=True)
class Method:
  """One method of training.

  Attributes:
    name: its ``--method`` name.
    eta: what ``--eta`` means for it, or None when it takes none.
    optimizer: ``(config, phase, layers, mask, steps_per_epoch) ->
      GradientTransformation`` for a phase of a run.
    label: ``(run) -> str``, its recipe in tables; ``run`` holds a run's
      settings (a result or a table row).
    projection: whether it is one of the paper's projections.
    keeps: a projection that also takes ``--keep`` (a fraction of groups to
      keep) instead of ``--eta``.
    constrains: whether it constrains layers (all but Adam).
    penalty: ``(config, layers) -> penalty(params, scales)`` added to the
      loss, or None.
    halo_scales: whether it trains HALO's per-weight scales beside the weights.
    final_zeroing: ``(config, params, layers) -> params`` with what it shrank
      set to exact zeros, or None when it ends without such a step.
    rounds: ``(config) -> int``, how many pruning rounds follow the training
      phase, each from a new mask and the rewound weights (magnitude pruning).
    next_mask: ``(config, round, params, mask, layers) -> mask`` after a round.
  """

  name: str
  eta: str | None
  optimizer: Callable
  label: Callable[[dict], str]
  projection: bool = False
  keeps: bool = False
  constrains: bool = True
  penalty: Callable | None = None
  halo_scales: bool = False
  final_zeroing: Callable | None = None
  rounds: Callable[[RunConfig], int] | None = None
  next_mask: Callable | None = None

  def phases(self, config: RunConfig) -> list[tuple[str, int]]:
    """``(phase, epochs)``: "train" then, for the lottery, "retrain", for
    magnitude pruning "round1", "round2", ..."""
    if self.rounds is not None:
      return [("train", config.epochs)] + [
          (f"round{i}", config.retrain_epochs) for i in range(1, self.rounds(config) + 1)]
    if self.projection and config.schedule == "lottery":
      return [("train", config.epochs), ("retrain", config.retrain_epochs)]
    return [("train", config.epochs)]

  def phase_of(self, config: RunConfig, epoch: int) -> str:
    """The phase that epoch ``epoch`` (1-based) belongs to."""
    end = 0
    for phase, epochs in self.phases(config):
      end += epochs
      if epoch <= end:
        return phase
    raise ValueError(f"epoch {epoch} is past the last phase")


def learning_rate(config: RunConfig, phase_steps: int) -> optax.ScalarOrSchedule:
  """``lr``, constant or decayed to 0 over the ``phase_steps`` steps of a phase."""
  if config.lr_schedule == "cosine":
    return optax.cosine_decay_schedule(config.lr, max(phase_steps, 1))
  return config.lr


def _adam(config: RunConfig, epochs: int, steps_per_epoch: int) -> optax.GradientTransformation:
  return optax.adam(learning_rate(config, epochs * steps_per_epoch))


def _adam_optimizer(config, phase, layers, mask, steps_per_epoch):
  del phase, layers, mask
  return _adam(config, config.epochs, steps_per_epoch)


def _projection(factory) -> Callable:
  """The optimizer of a projection: Adam then ``factory``'s projection, every
  step or as the lottery."""
  def optimizer(config, phase, layers, mask, steps_per_epoch):
    del phase, mask
    selected = kernel_selector(layers)
    layer = lambda path: structure.layer_name(path)
    grouped = {} if factory is sparse_optax.project_l1 else {
        "groups": config_lib.group_axes_of(config.model)}
    if config.keep is not None or config.layer_keep:
      keep = lambda path, leaf: keep_of(config, layer(path)) if selected(path, leaf) else None
      project = functools.partial(factory, None, keep=keep, **grouped)
    else:
      radius = lambda path, leaf: radius_of(config, layer(path)) if selected(path, leaf) else None
      project = functools.partial(factory, radius, **grouped)
    if config.schedule == "lottery":
      return sparse_optax.lottery_ticket(
          _adam(config, config.epochs, steps_per_epoch), project(),
          prune_at=config.epochs * steps_per_epoch,
          rewind_to=config.rewind_to_epoch * steps_per_epoch,
          retrain_optimizer=_adam(config, config.retrain_epochs, steps_per_epoch))
    return optax.chain(_adam(config, config.epochs, steps_per_epoch),
                       project(freeze_dead=config.freeze_dead))
  return optimizer


def _projection_label(run: dict) -> str:
  if run.get("freeze_dead"):
    return f"{run['schedule']}, freeze dead"
  if run.get("rewind_to_epoch"):
    return f"{run['schedule']}, rewind to epoch {run['rewind_to_epoch']}"
  return run["schedule"]


_keep = comparator_keep


def _gsef_optimizer(config, phase, layers, mask, steps_per_epoch):
  del phase, mask
  rate = learning_rate(config, config.epochs * steps_per_epoch)
  return optax.chain(optax.adam(rate),
                     comparators.gsef_step(config.eta, comparator_keep(config), layers, rate))


def _magnitude_optimizer(config, phase, layers, mask, steps_per_epoch):
  del layers
  if phase == "train":
    return _adam(config, config.epochs, steps_per_epoch)
  return lottery.retrain_optimizer(_adam(config, config.retrain_epochs, steps_per_epoch), mask)


def _pruned_to_keep(config, params, layers):
  return comparators.prune_globally(comparator_keep(config), params, kernel_selector(layers))


_PROJECTION_FACTORIES = {
    "pgl1": sparse_optax.project_l1, "pgl21": sparse_optax.project_l21,
    "pgl11": sparse_optax.project_l11, "pgl1inf": sparse_optax.project_l1inf,
    "bilevel_l1inf": sparse_optax.project_bilevel_l1inf}
_RADIUS = "the radius of the ball"
_STRENGTH = "its strength"

METHODS = {
    "adam": Method("adam", None, _adam_optimizer, lambda run: "-", constrains=False),
    **{name: Method(name, _RADIUS, _projection(factory), _projection_label, projection=True,
                    keeps=name != "pgl1inf")
       for name, factory in _PROJECTION_FACTORIES.items()},
    "halo": Method(
        "halo", _STRENGTH, _adam_optimizer, lambda run: f"penalty, prune to {_keep(run):g}",
        penalty=lambda config, layers: comparators.halo_penalty(config.eta, layers),
        halo_scales=True, final_zeroing=_pruned_to_keep),
    "gsef": Method(
        "gsef", _STRENGTH, _gsef_optimizer, lambda run: f"prox, top groups to {_keep(run):g}",
        final_zeroing=lambda config, params, layers: comparators.keep_top_groups(
            comparator_keep(config), params, layers)),
    "l1_over_l2": Method(
        "l1_over_l2", _STRENGTH, _adam_optimizer,
        lambda run: f"penalty, prune to {_keep(run):g}",
        penalty=lambda config, layers: comparators.l1_over_l2_penalty(config.eta, layers),
        final_zeroing=_pruned_to_keep),
    "magnitude": Method(
        "magnitude", None, _magnitude_optimizer,
        lambda run: f"{comparators.magnitude_rounds(_keep(run))} rounds, keep {_keep(run):g}",
        rounds=lambda config: comparators.magnitude_rounds(comparator_keep(config)),
        next_mask=lambda config, round_index, params, mask, layers: comparators.next_mask(
            comparator_keep(config), round_index, params, mask, kernel_selector(layers))),
}
PROJECTIONS = tuple(name for name, method in METHODS.items() if method.projection)


def of(config: RunConfig) -> Method:
  """The method ``config.method`` names."""
  if config.method not in METHODS:
    raise ConfigError(f"--method {config.method!r} is not one of: {', '.join(METHODS)}")
  return METHODS[config.method]


def label(run: dict) -> str:
  """How a run trains, for tables: the projections' schedule, or the
  comparator's recipe."""
  return METHODS[run["method"]].label(run)
