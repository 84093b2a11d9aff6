"""Hand-written prose whose figures are read from the rows, never typed.

A template is Markdown in which every measured figure is a field::

    every step keeps {{fashion_mnist/lenet300/pgl11_eta1000 kmaccs}} k-MACCs,
    {{fashion_mnist/lenet300/pgl11_eta1000 points_vs fashion_mnist/lenet300/adam}}
    points against Adam

``{{SETTING FIGURE [ARGUMENT]}}`` names a setting (a folder of seed folders,
relative to the results) and one of :data:`FIGURES`; the figure is computed
over the setting's seeds when the report is written, so the prose cannot
disagree with the tables it sits beside.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Mapping

from experiments import tables

FIELD = re.compile(r"\{\{\s*(\S+)\s+(\S+)(?:\s+(\S+))?\s*\}\}")


def _accuracies(runs, key="accuracy") -> list[float]:
  return [100 * r[key] for r in runs]


def _kmaccs(runs) -> float:
  return statistics.fmean(r["maccs_effective"] / 1e3 for r in runs)


def _memory(runs) -> float:
  return statistics.fmean(r["memory_kb"] for r in runs)


def _layer(run, name) -> dict:
  for layer in run["layers_report"]:
    if layer["name"] == name:
      return layer
  raise ValueError(f"no layer {name!r}; the layers are "
                   + ", ".join(layer["name"] for layer in run["layers_report"]))


def _counts(counts) -> str:
  # The same count on every seed reads as that count.
  return f"{counts[0]:,}" if len(set(counts)) == 1 else tables.mean_std(counts, 1)


def _removed(key):
  def figure(runs, layer):
    return _counts([_layer(r, layer)[key] for r in runs])
  return figure


def _live_inputs(runs, layer):
  # A dense kernel has inputs × outputs MACCs and as many weights plus a bias per output.
  def inputs(run):
    found = _layer(run, layer)
    if found["kind"] != "dense":
      raise ValueError(f"live_inputs reads dense layers; {layer} is {found['kind']}")
    outputs = found["params"] - found["maccs_dense"]
    return found["maccs_dense"] // outputs - found["dead_inputs"]
  return _counts([inputs(r) for r in runs])


def _bits_per_weight(runs) -> str:
  # Entropy bits of the constrained layers over their non-zero weights.
  return f"{statistics.fmean(8 * sum(l['bytes_entropy'] for l in r['layers_report']) / sum(l['nonzero'] for l in r['layers_report']) for r in runs):.1f}"


def _same(runs, key) -> str:
  values = {run[key] for run in runs}
  if len(values) != 1:
    raise ValueError(f"the seeds differ in {key}: " + ", ".join(f"{v:g}" for v in sorted(values)))
  return f"{values.pop():g}"


def _versus(measure, text):
  def figure(runs, other):
    return text(measure(runs), measure(other))
  return figure


# FIGURE -> (takes an argument: None, "layer" or "setting", function).
FIGURES: dict[str, tuple[str | None, Callable]] = {
    # Test accuracy in %, mean ± std over the seeds (the mean alone for one seed).
    "accuracy": (None, lambda runs: tables.mean_std(_accuracies(runs), 2)),
    "accuracy_mean": (None, lambda runs: f"{statistics.fmean(_accuracies(runs)):.2f}"),
    # Each seed's accuracy, in the order of the seeds.
    "seed_accuracies": (None, lambda runs: ", ".join(
        f"{100 * r['accuracy']:.2f}" for r in sorted(runs, key=lambda r: r["seed"]))),
    # Before the method's last step (mask, global pruning, top groups).
    "accuracy_before": (None, lambda runs: tables.mean_std(
        _accuracies(runs, "accuracy_before_pruning"), 2)),
    "kmaccs": (None, lambda runs: f"{_kmaccs(runs):,.1f}"),
    "memory": (None, lambda runs: f"{_memory(runs):,.1f}"),
    "nonzero": (None, lambda runs: f"{100 * statistics.fmean(r['nonzero_fraction'] for r in runs):.1f}"),
    # Before the final weights were rounded to the quantisation step: the last epoch's.
    "kmaccs_before_rounding": (None, lambda runs: f"{statistics.fmean(r['history'][-1]['maccs_effective'] / 1e3 for r in runs):,.1f}"),
    # Non-zero weights, in thousands.
    "nonzeros": (None, lambda runs: f"{statistics.fmean(sum(l['nonzero'] for l in r['layers_report']) / 1e3 for r in runs):,.1f}"),
    "bits_per_weight": (None, _bits_per_weight),
    "epoch_seconds": (None, lambda runs: f"{statistics.fmean(r['seconds'] / r.get('epochs_total', r['epochs']) for r in runs):.0f}"),
    "seeds": (None, lambda runs: str(len(runs))),
    # The radius or strength the setting ran at (chosen on validation for the comparators).
    "eta": (None, lambda runs: _same(runs, "eta")),
    "epochs": (None, lambda runs: str(runs[0].get("epochs_total", runs[0]["epochs"]))),
    "dead_inputs": ("layer", _removed("dead_inputs")),
    "dead_outputs": ("layer", _removed("dead_outputs")),
    # Inputs of a dense layer still read: for a hidden layer, the neurons kept before it.
    "live_inputs": ("layer", _live_inputs),
    # Mean accuracy minus the other setting's, in points.
    "points_vs": ("setting", _versus(lambda runs: statistics.fmean(_accuracies(runs)),
                                     lambda mine, other: f"{mine - other:+.2f}")),
    "maccs_vs": ("setting", _versus(_kmaccs, lambda mine, other: f"{mine / other:.2f}×")),
    "memory_vs": ("setting", _versus(_memory, lambda mine, other: f"{mine / other:.2f}×")),
}


def render(template: str, settings: Mapping[str, list[dict]], source: str = "template") -> str:
  """``template`` with every ``{{SETTING FIGURE [ARGUMENT]}}`` replaced by the figure.

  Args:
    template: Markdown with fields.
    settings: the runs of each setting (one ``result.json`` per seed), keyed by
      the setting's folder relative to the results, in POSIX form.
    source: the template's name, for the error messages.

  Returns:
    The Markdown with every field filled.

  Raises:
    ValueError: a field names a setting that holds no result, an unknown
      figure, or a figure's argument is missing or wrong.

  >>> runs = {"m/adam": [{"accuracy": 0.98, "seed": 0}, {"accuracy": 0.99, "seed": 1}]}
  >>> render("Adam reaches {{m/adam accuracy}} %.", runs)
  'Adam reaches 98.50 ± 0.71 %.'
  """

  def fill(match: re.Match) -> str:
    folder, figure, argument = match.groups()
    where = f"{source}: {match.group(0)}"
    if folder not in settings:
      raise ValueError(f"{where}: no result.json below {folder}")
    if figure not in FIGURES:
      raise ValueError(f"{where}: unknown figure {figure!r}; one of " + ", ".join(FIGURES))
    kind, compute = FIGURES[figure]
    if (kind is None) != (argument is None):
      raise ValueError(f"{where}: {figure} takes " + (f"a {kind}" if kind else "no argument"))
    if kind is None:
      return compute(settings[folder])
    if kind == "setting":
      if argument not in settings:
        raise ValueError(f"{where}: no result.json below {argument}")
      return compute(settings[folder], settings[argument])
    try:
      return compute(settings[folder], argument)
    except ValueError as error:
      raise ValueError(f"{where}: {error}") from None

  return FIELD.sub(fill, template)
