"""The committed report: every setting under ``results/`` as the paper's tables.

``python -m experiments.report [RESULTS]`` reads every ``result.json`` below
``RESULTS/<dataset>/<model>/<setting>/``, groups the seeds of each setting and
writes ``RESULTS/REPORT.md``: one table per (dataset, model) in the paper's
format (memory kB, k-MACCs, accuracy; mean ± standard deviation over seeds),
the accuracy lost against Adam at each MACC level, the paper's figures beside
them, and the exact command that produced every row. It also draws the
accuracy-vs-MACCs and accuracy-vs-memory Pareto plots of every method.
Hand-written discussion is kept in ``RESULTS/discussion.md`` and appended.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from flax import nnx  # noqa: E402

from experiments import plots  # noqa: E402
from experiments import runner  # noqa: E402

MODEL_NAMES = {"lfc4": "LFC4", "lenet300": "LeNet-300-100", "net4": "Net4",
               "simplenet": "SimpleNet"}
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10"}
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
# The offline stand-in: the paper ran these networks on MNIST only.
STAND_IN = {("fashion_mnist", "lenet300"): "mnist", ("fashion_mnist", "net4"): "mnist"}
METHOD_ORDER = list(runner.METHODS)


def load_settings(results: pathlib.Path) -> dict:
  """``{(dataset, model): [setting, ...]}``, a setting being its seeds' results."""
  settings: dict = {}
  for folder in sorted({p.parent.parent for p in results.glob("*/*/*/*/result.json")}):
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]
    dataset, model = runs[0]["dataset"], runs[0]["model"]
    settings.setdefault((dataset, model), []).append({"folder": folder, "runs": runs})
  for members in settings.values():
    members.sort(key=_order)
  return settings


def _order(setting) -> tuple:
  first = setting["runs"][0]
  return (METHOD_ORDER.index(first["method"]), first["schedule"] != "lottery",
          first["eta"] or 0.0, setting["folder"].name)


def label(run: dict) -> str:
  """``PGL11 η=400 (fc5=40)``: the method, its radius and per-layer radii."""
  if run["method"] == "adam":
    return "Adam"
  if run["eta"] is None:
    return run["method"].upper()
  text = f"{run['method'].upper()} η={run['eta']:g}"
  if run.get("layer_eta"):
    text += " (" + ", ".join(f"{name}={radius:g}" for name, radius in run["layer_eta"]) + ")"
  return text


def command(setting) -> str:
  """The ``python -m experiments sweep`` line that reproduces every seed of a setting."""
  run = setting["runs"][0]
  seeds = ",".join(str(r["seed"]) for r in sorted(setting["runs"], key=lambda r: r["seed"]))
  parts = ["python -m experiments sweep", f"--model {run['model']}", f"--dataset {run['dataset']}",
           f"--method {run['method']}"]
  if run["eta"] is not None:
    parts.append(f"--eta {run['eta']:g}")
  if run.get("layer_eta"):
    parts.append("--layer-eta " + ",".join(f"{n}={r:g}" for n, r in run["layer_eta"]))
  if run["method"] != "adam" and _layers_flag_needed(run):
    parts.append("--layers " + ",".join(run["layers"]))
  if run["method"] in runner.PROJECTIONS:
    parts.append(f"--schedule {run['schedule']}")
  if run.get("freeze_dead"):
    parts.append("--freeze-dead")
  if run.get("rewind_to_epoch"):
    parts.append(f"--rewind-to-epoch {run['rewind_to_epoch']}")
  elif run["method"] != "adam":
    parts.append(f"--keep {run.get('keep', 0.1):g}")
  parts.append(f"--epochs {run['epochs']}")
  if len(runner.phases(_config_of(run))) > 1:
    parts.append(f"--retrain-epochs {run['retrain_epochs']}")
  parts.append(f"--lr {run['lr']:g}")
  if run.get("lr_schedule", "constant") != "constant":
    parts.append(f"--lr-schedule {run['lr_schedule']}")
  if run["batch_size"] != 128:
    parts.append(f"--batch-size {run['batch_size']}")
  if run.get("data_dir"):
    parts.append(f"--data-dir {run['data_dir']}")
  if not run.get("verify_data", True):
    parts.append("--no-verify")
  parts += [f"--seed {seeds}", f"--out {setting['folder'].as_posix()}"]
  return " ".join(parts)


def _config_of(run: dict) -> runner.RunConfig:
  """The settings of a run (its ``layers`` as the default would choose them)."""
  fields = {f.name: run[f.name] for f in dataclasses.fields(runner.RunConfig) if f.name in run}
  fields["layers"] = None
  fields["layer_eta"] = tuple(map(tuple, run.get("layer_eta", ())))
  return runner.RunConfig(**fields)


def _layers_flag_needed(run: dict) -> bool:
  defaults = _config_of(run)
  model = nnx.eval_shape(lambda: runner.MODELS[run["model"]](rngs=nnx.Rngs(0)))
  return list(runner.constrained_layers(model, defaults)) != list(run["layers"])


def summary(setting) -> dict:
  """Means and standard deviations over the seeds of one setting."""
  runs = setting["runs"]
  values = {"memory_kb": [r["memory_kb"] for r in runs],
            "kmaccs": [r["maccs_effective"] / 1e3 for r in runs],
            "accuracy": [100 * r["accuracy"] for r in runs]}
  first = runs[0]
  out = {"label": label(first), "method": first["method"], "seeds": len(runs),
         "schedule": runner.schedule_label(first),
         "epochs": first.get("epochs_total") or sum(e for _, e in runner.phases(_config_of(first)))}
  for key, vals in values.items():
    out[key] = statistics.fmean(vals)
    out[key + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
  return out


def _cell(mean: float, std: float, digits: int = 2) -> str:
  return f"{mean:,.{digits}f} ± {std:,.{digits}f}"


def table(dataset: str, model: str, members: list, root: pathlib.Path) -> list[str]:
  """One section of the report: the measured table, the paper's and the commands."""
  rows = [summary(s) for s in members]
  adams = [r for r in rows if r["method"] == "adam"]
  title = f"## {MODEL_NAMES[model]} on {DATASET_NAMES[dataset]}"
  lines = [title, "",
           "| # | Method | Schedule | Epochs | Memory (kB) | k-MACCs | Accuracy (%) "
           "| Δ acc vs Adam (pts) | MACCs / Adam | Seeds |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for i, row in enumerate(rows, start=1):
    # Against Adam trained as many epochs, where there is such a run.
    adam = next((a for a in adams if a["epochs"] == row["epochs"]), adams[0] if adams else None)
    delta = "" if adam is None or row is adam else f"{row['accuracy'] - adam['accuracy']:+.2f}"
    ratio = "" if adam is None else f"{row['kmaccs'] / adam['kmaccs']:.3f}"
    lines.append(
        f"| {i} | {row['label']} | {row['schedule']} | {row['epochs']} "
        f"| {_cell(row['memory_kb'], row['memory_kb_std'])} "
        f"| {_cell(row['kmaccs'], row['kmaccs_std'], 1)} "
        f"| {_cell(row['accuracy'], row['accuracy_std'])} | {delta} | {ratio} | {row['seeds']} |")
  paper_dataset = STAND_IN.get((dataset, model), dataset)
  if (paper_dataset, model) in PAPER:
    where = DATASET_NAMES[paper_dataset]
    note = (f" ({where}: the paper has no {DATASET_NAMES[dataset]} run of this network; "
            "not comparable, shown for scale)" if paper_dataset != dataset else "")
    lines += ["", f"The paper's figures{note}:", "",
              "| Method | Memory (kB) | k-MACCs | Accuracy (%) |", "|---|---|---|---|"]
    lines += [f"| {name} | {kb:g} | {kmaccs:g} | {acc:g} |"
              for name, kb, kmaccs, acc in PAPER[(paper_dataset, model)]]
  lines += ["", "Commands (one per row; `--seed` lists the seeds averaged):", ""]
  lines += [f"{i}. `{command(s)}`" for i, s in enumerate(members, start=1)]
  pictures = [(i, picture) for i, s in enumerate(members, start=1)
              for picture in sorted(s["folder"].glob("*_seed0/weights.png"))]
  if pictures:
    lines += ["", "Constrained weight matrices, seed 0 (white rows: removed inputs): " + ", ".join(
        f"[row {i}]({picture.relative_to(root).as_posix()})" for i, picture in pictures)]
  return lines


def pareto_plots(settings: dict, out: pathlib.Path) -> list[pathlib.Path]:
  """Accuracy against k-MACCs and against memory, one panel per network."""
  written = []
  for key, axis_label, name in (("kmaccs", "effective k-MACCs", "pareto_maccs.png"),
                                ("memory_kb", "entropy memory (kB)", "pareto_memory.png")):
    fig, axes = plt.subplots(1, len(settings), figsize=(6 * len(settings), 4.5), squeeze=False)
    for ax, ((dataset, model), members) in zip(axes[0], sorted(settings.items())):
      ax.set_prop_cycle(color=plt.cm.tab20.colors)  # more methods than tab10 has colours
      by_method: dict = {}
      for row in map(summary, members):
        by_method.setdefault((row["method"], row["schedule"]), []).append(row)
      for (method, schedule), rows in by_method.items():
        name_ = "Adam" if method == "adam" else (
            f"{method.upper()} {schedule}" if method in runner.PROJECTIONS else method.upper())
        ax.errorbar([r[key] for r in rows], [r["accuracy"] for r in rows],
                    xerr=[r[key + "_std"] for r in rows], yerr=[r["accuracy_std"] for r in rows],
                    marker=_marker(method, schedule), linestyle="none", capsize=3,
                    label=name_)
      ax.set_xscale("log")
      ax.set_xlabel(axis_label)
      ax.set_ylabel("test accuracy (%)")
      ax.set_title(f"{MODEL_NAMES[model]}, {DATASET_NAMES[dataset]}")
      ax.grid(True, which="both", alpha=0.3)
      ax.legend(fontsize=8)
    written.append(plots.save(fig, out / name))
  return written


def _marker(method: str, schedule: str) -> str:
  if method in runner.PROJECTIONS:
    return "o" if schedule == "lottery" else "s"
  return "*" if method == "adam" else "^"


def write_report(results: pathlib.Path) -> pathlib.Path:
  settings = load_settings(results)
  lines = ["# sparse_optax: the paper's tables, measured", "",
           "Generated by `python -m experiments.report results` from every `result.json` "
           "below `results/`. Mean ± standard deviation over the seeds; memory is the "
           "entropy of the weights (quantisation step 2⁻¹⁶) × weights / 8; k-MACCs are "
           "effective (dead neurons and inputs removed). "
           "Δ acc is against the Adam run with the same number of epochs where there is "
           "one, else against the first Adam row.", ""]
  for (dataset, model), members in sorted(settings.items(), key=lambda kv: kv[0][1]):
    lines += table(dataset, model, members, results) + [""]
  pictures = pareto_plots(settings, results) if settings else []
  lines += ["## Pareto plots", ""] + [f"![{p.stem}]({p.name})" for p in pictures] + [""]
  discussion = results / "discussion.md"
  if discussion.exists():
    lines += [discussion.read_text()]
  report = results / "REPORT.md"
  report.write_text("\n".join(lines))
  return report


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  results = pathlib.Path(argv[0] if argv else "results")
  if not results.is_dir():
    print(f"error: {results} is not a folder of results", file=sys.stderr)
    return 2
  print(write_report(results))
  return 0


if __name__ == "__main__":
  sys.exit(main())
