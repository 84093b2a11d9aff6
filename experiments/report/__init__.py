"""The committed report: every setting under ``results/`` as the paper's tables.

``python -m experiments.report [RESULTS]`` reads every ``result.json`` below
``RESULTS`` (a setting is a folder of seed folders), groups the seeds of each setting and
writes ``RESULTS/REPORT.md``: one table per (dataset, model) in the paper's
format (memory kB, k-MACCs, accuracy; mean ± standard deviation over seeds),
the accuracy lost against Adam at each MACC level, the paper's figures beside
them, and the exact command that produced every row. It also draws the
accuracy-vs-MACCs and accuracy-vs-memory Pareto plots of every method.
Hand-written discussion is kept in ``RESULTS/discussion.md`` and appended, its
``{{SETTING FIGURE}}`` fields filled from the rows (:mod:`experiments.report.prose`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from flax import nnx  # noqa: E402

from experiments import config as config_lib  # noqa: E402
from experiments import data as data_lib  # noqa: E402
from experiments import methods  # noqa: E402
from experiments import plots  # noqa: E402
from experiments import provenance  # noqa: E402
from experiments.report import prose  # noqa: E402
from experiments import tables  # noqa: E402

MODEL_NAMES = {"lfc4": "LFC4", "lenet300": "LeNet-300-100", "net4": "Net4",
               "simplenet": "SimpleNet", "resnet": "ResNet", "vit": "Vision transformer"}
# (dataset, model) -> [(paper's label, memory kB, k-MACCs, accuracy %)], from
# the paper's Tables I-V (Barlaud & Guyard, ICPR 2020).
PAPER = {
    ("mnist", "net4"): [("Adam", 33.64, 480, 99.0), ("PGL1 η=80", 10.9, 477, 99.01),
                        ("PGL11 η=40", 3.7, 336, 98.03), ("PGL11 η=25", 2.1, 122, 97.4)],
    ("mnist", "lfc4"): [("Adam", 3989, 2379, 98.3), ("PGL1 η=200", 438, 1960, 98.29),
                        ("PGL11 η=200", 72, 150, 97.7), ("PGL11 η=400", 215, 480, 98.07),
                        ("PGL21 η=50", 1810, 1408, 98.05)],
    ("mnist", "lenet300"): [("Adam", 477, 266.2, 98.21), ("PGL1 η=200", 61, 189, 98.03),
                            ("PGL11 η=200", 32, 62, 96.4), ("PGL11 η=400", 83, 150, 97.8),
                            ("PGL21 η=50", 164, 257, 98.1)],
    ("fashion_mnist", "lfc4"): [("Adam", 3989, 2379, 89.9), ("PGL1 η=400", 567, 2114, 89.2),
                                ("PGL11 η=400", 131, 267, 87.5)],
    ("cifar10", "simplenet"): [("Adam", 9440, 631_510, 93.8),
                               ("PGL1 η=13000", 1450, 626_080, 91.12),
                               ("PGL11 η=14000", 860, 441_000, 91.0)],
}
# The report's sections in the paper's order, then the networks it has no table for.
SECTION_ORDER = [("mnist", "net4"), ("mnist", "lfc4"), ("mnist", "lenet300"),
                 ("fashion_mnist", "lfc4"), ("cifar10", "simplenet"),
                 ("fashion_mnist", "lenet300"), ("fashion_mnist", "net4"),
                 ("fashion_mnist", "resnet"), ("fashion_mnist", "vit")]
PAPER_TABLES = {("mnist", "net4"): "I", ("mnist", "lfc4"): "II", ("mnist", "lenet300"): "III",
                ("fashion_mnist", "lfc4"): "IV", ("cifar10", "simplenet"): "V"}
METHOD_ORDER = list(methods.METHODS)
# One colour per method in every plot; the marker tells the schedule.
METHOD_COLOURS = dict(zip(methods.METHODS, plt.cm.tab10.colors))
# A row meets the paper's when its mean accuracy is at most this many points
# below, and its k-MACCs and memory at most these factors above.
MET_ACCURACY_POINTS, MET_MACCS_FACTOR, MET_MEMORY_FACTOR = 0.2, 1.02, 1.1
# No verdict counts on fewer seeds.
VERDICT_SEEDS = 3
# Folders below the results that the report leaves out: runs a newer one
# replaced, and the runs that chose the recipes (tabled on their own).
SKIPPED_FOLDERS = ("archive", "selection")
# Rows under this folder name follow the paper's protocol: Algorithm 4, the
# paper's layers, one radius, the recipe chosen on validation data.
PROTOCOL_FOLDER = "protocol"
# Rows under this folder name go beyond the paper's protocol with a variant
# chosen on validation data. Only these and the protocol rows get a verdict
# that counts; every other row's settings were fixed by hand.
BEYOND_FOLDER = "beyond"


def load_settings(results: pathlib.Path) -> dict:
  """``{(dataset, model): [setting, ...]}``, a setting being its seeds' results."""
  settings: dict = {}
  found = {p.parent.parent for p in results.glob("**/result.json")
           if not set(p.relative_to(results).parts) & set(SKIPPED_FOLDERS)}
  for folder in sorted(found):
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]
    dataset, model = runs[0]["dataset"], runs[0]["model"]
    settings.setdefault((dataset, model), []).append({"folder": folder, "runs": runs})
  for members in settings.values():
    members.sort(key=_order)
  return settings


def _order(setting) -> tuple:
  first = setting["runs"][0]
  return (METHOD_ORDER.index(first["method"]), not _protocol(setting),
          first["schedule"] != "lottery", first["eta"] or 0.0, setting["folder"].name)


def _protocol(setting) -> bool:
  return PROTOCOL_FOLDER in setting["folder"].parts


def _chosen_on_validation(setting) -> bool:
  return bool({PROTOCOL_FOLDER, BEYOND_FOLDER} & set(setting["folder"].parts))


def code_of(runs) -> str:
  """The commits that produced a setting's seeds, or why none is known."""
  versions = {provenance.describe(r["code_version"]) for r in runs if r.get("code_version")}
  if len(versions) < len(runs) and not versions:
    return "not recorded: not yet regenerated"
  missing = sum(1 for r in runs if not r.get("code_version"))
  return ", ".join(sorted(versions)) + (f" ({missing} seed(s) not recorded)" if missing else "")


def label(run: dict) -> str:
  """``PGL11 η=400 (fc5=40)``: the method, its radius and per-layer radii."""
  if run["method"] == "adam":
    return "Adam"
  if run["eta"] is None and run.get("keep") is not None and run["method"] in methods.PROJECTIONS:
    text = f"{run['method'].upper()} keep={run['keep']:g}"
    if run.get("layer_keep"):
      text += " (" + ", ".join(f"{name}={fraction:g}" for name, fraction in run["layer_keep"]) + ")"
    return text
  if run["eta"] is None:
    return run["method"].upper()
  text = f"{run['method'].upper()} η={run['eta']:g}"
  if run.get("layer_eta"):
    text += " (" + ", ".join(f"{name}={radius:g}" for name, radius in run["layer_eta"]) + ")"
  return text


def command(setting) -> str:
  """The ``python -m experiments sweep`` line that reproduces every seed of a setting."""
  run = setting["runs"][0]
  seeds = sorted(r["seed"] for r in setting["runs"])
  # A run's own settings when it has them: its top level also holds figures
  # (devices, train_examples) under setting names.
  saved = run.get("settings") or {k: v for k, v in run.items()
                                   if k not in ("devices", "train_examples", "test_examples")}
  config = config_lib.from_settings(
      saved, out=setting["folder"].as_posix(),
      layers=tuple(run["layers"]) if run["method"] != "adam" and _layers_flag_needed(run) else None)
  return config_lib.command(config, verb="sweep", seeds=seeds)


def _config_of(run: dict) -> config_lib.RunConfig:
  """The settings of a run (its ``layers`` as the default would choose them)."""
  fields = {f.name: run[f.name] for f in dataclasses.fields(config_lib.RunConfig) if f.name in run}
  fields["layers"] = None
  fields["layer_eta"] = tuple(map(tuple, run.get("layer_eta", ())))
  return config_lib.RunConfig(**fields)


def _layers_flag_needed(run: dict) -> bool:
  defaults = _config_of(run)
  model = nnx.eval_shape(lambda: config_lib.MODELS[run["model"]](rngs=nnx.Rngs(0)))
  return list(config_lib.constrained_layers(model, defaults)) != list(run["layers"])


def training_note(run: dict) -> str:
  """What a row changed from the runner's defaults: projected layers, rate, batch."""
  notes = []
  if run["method"] != "adam" and _layers_flag_needed(run):
    notes.append(", ".join(run["layers"]) + " projected")
  if run["lr"] != config_lib.RunConfig.lr:
    notes.append(f"lr {run['lr']:g}")
  if run["batch_size"] != config_lib.RunConfig.batch_size:
    notes.append(f"batch {run['batch_size']}")
  return "; ".join(notes) or "-"


def summary(setting) -> dict:
  """Means and standard deviations over the seeds of one setting."""
  runs = setting["runs"]
  values = {"memory_kb": [r["memory_kb"] for r in runs],
            "kmaccs": [r["maccs_effective"] / 1e3 for r in runs],
            "accuracy": [100 * r["accuracy"] for r in runs]}
  first = runs[0]
  out = {"label": label(first), "method": first["method"], "seeds": len(runs),
         "schedule": methods.label(first), "training": training_note(first),
         "protocol": _protocol(setting), "chosen_on_validation": _chosen_on_validation(setting),
         "code": code_of(runs),
         "epochs": first.get("epochs_total") or sum(e for _, e in methods.of(_config_of(first)).phases(_config_of(first)))}
  for key, vals in values.items():
    out[key] = statistics.fmean(vals)
    out[key + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
  return out


def shortfalls(row: dict, paper_row) -> dict:
  """``{axis: how far off}`` for each of accuracy, k-MACCs and memory that misses the paper's.

  An axis misses at accuracy below the paper's − 0.2 points, k-MACCs above
  1.02× or memory above 1.1× the paper's.
  """
  _, kb, kmaccs, accuracy = paper_row
  misses = {}
  if row["accuracy"] < accuracy - MET_ACCURACY_POINTS:
    misses["accuracy"] = f"accuracy {row['accuracy'] - accuracy:+.2f} pts"
  if row["kmaccs"] > kmaccs * MET_MACCS_FACTOR:
    misses["kmaccs"] = f"k-MACCs {row['kmaccs'] / kmaccs:.2f}×"
  if row["memory_kb"] > kb * MET_MEMORY_FACTOR:
    misses["memory_kb"] = f"memory {row['memory_kb'] / kb:.2f}×"
  return misses


def versus_paper(row: dict, paper_row) -> str:
  """``met`` / ``beats`` / ``missed: ...`` against the paper's row of the same method and radius.

  Met: no axis misses (:func:`shortfalls`). Beats: met, and strictly better
  on one axis with no axis worse than the paper's own figure. A verdict on
  fewer than 3 seeds, or of a row whose settings were not chosen on
  validation data, is shown but not counted.
  """
  _, kb, kmaccs, accuracy = paper_row
  misses = shortfalls(row, paper_row)
  no_worse = row["accuracy"] >= accuracy and row["kmaccs"] <= kmaccs and row["memory_kb"] <= kb
  better = row["accuracy"] > accuracy or row["kmaccs"] < kmaccs or row["memory_kb"] < kb
  verdict = ("missed: " + ", ".join(misses.values()) if misses
             else "beats" if no_worse and better else "met")
  if row["seeds"] < VERDICT_SEEDS:
    return f"{verdict} (on {row['seeds']} seed{'s' * (row['seeds'] > 1)}: not counted)"
  if not row.get("chosen_on_validation", True):
    return f"{verdict} (settings not chosen on validation: not counted)"
  return verdict


def counts(verdict: str) -> bool:
  """Whether a verdict counts as the paper's figure reached."""
  return verdict in ("met", "beats")


def best_verdict(rows_and_numbers, paper_row) -> str:
  """The verdict of the best of some rows, with its row number.

  A counted verdict comes before one that is not, beats before met; where
  nothing is reached, the first counted row's misses are shown.
  """
  verdicts = [(versus_paper(row, paper_row), i) for i, row in rows_and_numbers]
  if not verdicts:
    return "not run"
  shown = ([(v, i) for v, i in verdicts if counts(v)]
           or [(v, i) for v, i in verdicts if "not counted" not in v] or verdicts)
  chosen = sorted(shown, key=lambda vi: vi[0] != "beats")[0]
  return f"{chosen[0]} (row {chosen[1]})"


def table(dataset: str, model: str, members: list, root: pathlib.Path) -> list[str]:
  """One section of the report: the measured table, the paper's and the commands."""
  rows = [summary(s) for s in members]
  adams = [r for r in rows if r["method"] == "adam"]
  paper = {name: figures for name, *figures in PAPER.get((dataset, model), [])}
  title = f"## {MODEL_NAMES[model]} on {data_lib.DISPLAY_NAMES[dataset]}" + (
      f" (the paper's Table {PAPER_TABLES[(dataset, model)]})"
      if (dataset, model) in PAPER_TABLES else " (not in the paper)")
  first = members[0]["runs"][0]
  lines = [title, "", f"Data: {data_lib.DISPLAY_NAMES[dataset]}, {first['train_examples']:,} training and "
                      f"{first['test_examples']:,} test images, from {first['data_source']}"
           + _files_note(first) + ".", ""]
  header = ["#", "Method", "Protocol", "Schedule", "Training", "Epochs", "Memory (kB)",
            "k-MACCs", "Accuracy (%)", "Δ acc vs Adam (pts)", "MACCs / Adam", "Seeds", "Code"]
  cells = []
  for i, row in enumerate(rows, start=1):
    # Against Adam of the same protocol trained as many epochs, where there is one.
    same = [a for a in adams if a["protocol"] == row["protocol"]] or adams
    adam = next((a for a in same if a["epochs"] == row["epochs"]), same[0] if same else None)
    delta = "" if adam is None or row is adam else f"{row['accuracy'] - adam['accuracy']:+.2f}"
    ratio = "" if adam is None else f"{row['kmaccs'] / adam['kmaccs']:.3f}"
    cells.append([i, row["label"], "paper's" if row["protocol"] else "beyond", row["schedule"],
                  row["training"], row["epochs"],
                  tables.cell(row["memory_kb"], row["memory_kb_std"]),
                  tables.cell(row["kmaccs"], row["kmaccs_std"], 1),
                  tables.cell(row["accuracy"], row["accuracy_std"]), delta, ratio, row["seeds"],
                  row["code"]]
                 + ([versus_paper(row, (row["label"], *paper[row["label"]]))
                     if row["label"] in paper else ""] if paper else []))
  lines.append(tables.markdown(header + (["vs paper"] if paper else []), cells))
  if paper:
    lines += ["", "The paper's figures and two verdicts for each: under the *paper's "
              "protocol* (Algorithm 4, the paper's projected layers, one radius, the recipe "
              "chosen on a validation split, see `results/selection/`) and *beyond the paper* "
              "(schedules and recipes of ours, the variant chosen on the same validation "
              "split). A row is met at accuracy ≥ the paper's − "
              f"{MET_ACCURACY_POINTS:g} points, k-MACCs ≤ {MET_MACCS_FACTOR:g}× and memory ≤ "
              f"{MET_MEMORY_FACTOR:g}× the paper's; beaten when also better on one axis and "
              f"worse on none; no verdict counts on fewer than {VERDICT_SEEDS} seeds, nor for a "
              "row whose settings were fixed by hand rather than chosen on validation.", ""]
    numbered = list(enumerate(rows, start=1))
    lines.append(tables.markdown(
        ["Method", "Memory (kB)", "k-MACCs", "Accuracy (%)", "paper's protocol",
         "beyond the paper"],
        [[name, f"{kb:g}", f"{kmaccs:g}", f"{acc:g}",
          best_verdict([(i, r) for i, r in numbered if r["label"] == name and r["protocol"]],
                       (name, kb, kmaccs, acc)),
          best_verdict([(i, r) for i, r in numbered if r["label"] == name and not r["protocol"]],
                       (name, kb, kmaccs, acc))]
         for name, (kb, kmaccs, acc) in paper.items()]))
  lines += ["", "Commands (one per row; `--seed` lists the seeds averaged):", ""]
  lines += [f"{i}. `{command(s)}`" for i, s in enumerate(members, start=1)]
  pictures = [(i, picture) for i, s in enumerate(members, start=1)
              for picture in sorted(s["folder"].glob("*_seed0/weights.png"))]
  if pictures:
    lines += ["", "Constrained weight matrices, seed 0 (white rows: removed inputs): " + ", ".join(
        f"[row {i}]({picture.relative_to(root).as_posix()})" for i, picture in pictures)]
  return lines


def _files_note(run: dict) -> str:
  files = run.get("data_files") or []
  if not files:
    return ""
  return " (SHA-256 of the files read: " + ", ".join(
      f"`{pathlib.Path(f['path']).name}` {f['sha256'][:12]}…" for f in files) + ")"


VARIANT_MARKERS = ("o", "s", "D", "P", "v", "X", "<", ">", "h", "p")


def pareto_plots(settings: dict, out: pathlib.Path) -> list[pathlib.Path]:
  """Accuracy against k-MACCs and against memory, one panel per network.

  One colour per method in every panel; within a method each variant
  (schedule, recipe) has its own marker; the paper's rows are black crosses.
  The legend sits beside each panel, outside the data.
  """
  written = []
  for key, axis_label, name in (("kmaccs", "effective k-MACCs", "pareto_maccs.png"),
                                ("memory_kb", "entropy memory (kB)", "pareto_memory.png")):
    columns = min(2, len(settings))
    rows = -(-len(settings) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(9.5 * columns, 4.8 * rows), squeeze=False)
    for ax in axes.flat[len(settings):]:
      ax.set_visible(False)
    for ax, ((dataset, model), members) in zip(axes.flat, sorted(settings.items(),
                                                                 key=_section_rank)):
      by_variant: dict = {}
      for row in map(summary, members):
        variant = (row["method"], row["schedule"], row["training"], row["protocol"])
        by_variant.setdefault(variant, []).append(row)
      markers: dict = {}
      for (method, schedule, training, protocol), rows_ in by_variant.items():
        marker = VARIANT_MARKERS[markers.setdefault(method, 0) % len(VARIANT_MARKERS)]
        markers[method] += 1
        parts = [rows_[0]["label"].split(" η=")[0] if method != "adam" else "Adam",
                 schedule if schedule != "-" else "", training if training != "-" else "",
                 "paper's protocol" if protocol else ""]
        ax.errorbar([r[key] for r in rows_], [r["accuracy"] for r in rows_],
                    xerr=[r[key + "_std"] for r in rows_],
                    yerr=[r["accuracy_std"] for r in rows_], marker=marker, linestyle="none",
                    capsize=3, color=METHOD_COLOURS[method],
                    label=", ".join(p for p in parts if p))
      paper = PAPER.get((dataset, model), [])
      if paper:
        index = 1 if key == "kmaccs" else 0
        ax.scatter([p[1 + index] for p in paper], [p[3] for p in paper], marker="x", s=60,
                   color="black", zorder=5, label="the paper (Tables I-V)")
        for p in paper:
          ax.annotate(p[0], (p[1 + index], p[3]), fontsize=6, xytext=(3, 3),
                      textcoords="offset points")
      ax.set_xscale("log")
      # Labels at 1, 2 and 5 of each decade: some in every panel, none colliding.
      ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
      ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
      ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
      ax.set_xlabel(axis_label)
      ax.set_ylabel("test accuracy (%)")
      ax.set_title(f"{MODEL_NAMES[model]}, {data_lib.DISPLAY_NAMES[dataset]}")
      ax.grid(True, which="both", alpha=0.3)
      ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    written.append(plots.save(fig, out / name))
  return written


def _section_rank(item) -> tuple:
  key = item[0]
  return (SECTION_ORDER.index(key) if key in SECTION_ORDER else len(SECTION_ORDER), key)


def verdict_counts(settings: dict, tables_=(("mnist", "net4"), ("mnist", "lfc4"),
                                             ("mnist", "lenet300"))) -> dict:
  """How many of the paper's rows are reached, under its protocol and beyond it."""
  total = reached_protocol = reached_beyond = regenerated = 0
  for key in tables_:
    rows = [summary(s) for s in settings.get(key, [])]
    for name, kb, kmaccs, acc in PAPER[key]:
      total += 1
      mine = [r for r in rows if r["label"] == name]
      verdicts = {protocol: [versus_paper(r, (name, kb, kmaccs, acc)) for r in mine
                             if r["protocol"] == protocol] for protocol in (True, False)}
      reached_protocol += any(map(counts, verdicts[True]))
      reached_beyond += any(map(counts, verdicts[False] + verdicts[True]))
      regenerated += bool(verdicts[True])
  return {"rows": total, "protocol": reached_protocol, "beyond": reached_beyond,
          "regenerated": regenerated}


def verdict_summary(settings: dict) -> list[str]:
  c = verdict_counts(settings)
  return [f"**MNIST, the paper's Tables I–III ({c['rows']} rows):** {c['protocol']} met or "
          f"beaten under the paper's protocol ({c['regenerated']} of {c['rows']} rows run under "
          f"it so far), {c['beyond']} with any of our recipes or schedules chosen on validation "
          f"(protocol rows included), each on {VERDICT_SEEDS} seeds or more."]


def write_report(results: pathlib.Path) -> pathlib.Path:
  settings = load_settings(results)
  lines = ["# sparse_optax: the paper's tables, measured", "",
           "Generated by `python -m experiments.report results` from every `result.json` "
           "below `results/`. Mean ± standard deviation over the seeds; memory is the "
           "entropy of the weights (quantisation step 2⁻¹⁶) × weights / 8; k-MACCs are "
           "effective (dead neurons and inputs removed). "
           "Δ acc is against the Adam run with the same number of epochs where there is "
           "one, else against the first Adam row. Training gives what a row changed "
           f"from the runner's defaults (Adam at lr {config_lib.RunConfig.lr:g}, batch "
           f"{config_lib.RunConfig.batch_size}, the paper's projected layers).", ""]
  lines += verdict_summary(settings) + [""]
  for (dataset, model), members in sorted(settings.items(), key=_section_rank):
    lines += table(dataset, model, members, results) + [""]
  pictures = pareto_plots(settings, results) if settings else []
  lines += ["## Pareto plots", ""] + [f"![{p.stem}]({p.name})" for p in pictures] + [""]
  discussion = results / "discussion.md"
  if discussion.exists():
    by_folder = {s["folder"].relative_to(results).as_posix(): s["runs"]
                 for members in settings.values() for s in members}
    lines += [prose.render(discussion.read_text(), by_folder, source=str(discussion))]
  report = results / "REPORT.md"
  report.write_text("\n".join(lines))
  return report


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m experiments.report",
      description="Writes RESULTS/REPORT.md and its plots from every result.json below RESULTS.")
  parser.add_argument("results", nargs="?", default="results", type=pathlib.Path)
  results = parser.parse_args(argv).results
  if not results.is_dir():
    print(f"error: {results} is not a folder of results", file=sys.stderr)
    return 2
  try:
    print(write_report(results))
  except ValueError as error:  # a discussion field that names no row or figure
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0

