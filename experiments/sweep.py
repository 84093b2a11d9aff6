"""A grid of runs (methods x radii x seeds) and its tables and plots.

Each point is a run in ``OUT/<method>_eta<eta>_seed<seed>``; finished points
are read back, interrupted ones resumed. The grid's figures go to
``sweep.csv``, ``sweep.md`` (the paper's table format, mean ± standard
deviation over seeds) and two plots, accuracy and k-MACCs against eta (the
paper's Figs. 3-5 and 7).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import pathlib
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments import config as config_lib  # noqa: E402
from experiments import data as data_lib  # noqa: E402
from experiments import hosts  # noqa: E402
from experiments import methods as methods_lib  # noqa: E402
from experiments import plots  # noqa: E402
from experiments import runner  # noqa: E402
from experiments import tables  # noqa: E402
from experiments.progress import Progress  # noqa: E402

CSV_FIELDS = ("model", "dataset", "method", "schedule", "eta", "layer_eta", "layers", "seed",
              "epochs", "retrain_epochs", "rewind_to_epoch", "freeze_dead", "epochs_total", "lr", "lr_schedule", "batch_size", "keep",
              "accuracy_before_pruning",
              "accuracy", "maccs_dense", "maccs_effective", "memory_kb", "bytes_sparse",
              "nonzero_fraction", "neurons_removed", "seconds", "data_source", "run")


def run_name(config: runner.RunConfig) -> str:
  if config.eta is None:
    return f"{config.method}_seed{config.seed}"
  return f"{config.method}_eta{config.eta:g}_seed{config.seed}"


def grid(base: runner.RunConfig, methods, etas, seeds, out) -> list[runner.RunConfig]:
  """Every (method, eta, seed) point; Adam, which has no radius, once per seed."""
  configs, seen = [], set()
  for method, eta, seed in itertools.product(methods, etas, seeds):
    record = methods_lib.METHODS.get(method)  # an unknown name fails validation below
    eta = None if record is not None and record.eta is None else eta
    if (method, eta, seed) in seen:
      continue
    seen.add((method, eta, seed))
    config = dataclasses.replace(base, method=method, eta=eta, seed=seed)
    configs.append(dataclasses.replace(config, out=str(pathlib.Path(out) / run_name(config))))
  return configs


def sweep(base: runner.RunConfig, methods, etas, seeds, out, *,
          progress: Progress | None = None) -> dict:
  """Runs the grid (resuming what was started) and writes its tables and plots.

  Returns:
    ``{"rows": [...], "csv": path, "markdown": path, "plots": [paths]}``.
  """
  progress = progress or Progress()
  out = pathlib.Path(out)
  configs = grid(base, methods, etas, seeds, out)
  for config in configs:
    runner.validate(config)
  out.mkdir(parents=True, exist_ok=True)
  dataset = None
  rows = []
  for config in configs:
    # Every point's saved settings first: a changed command is refused before
    # any point is said to be done.
    config_lib.check_same_settings(pathlib.Path(config.out), config)
  for i, config in enumerate(configs, start=1):
    finished = pathlib.Path(config.out, "result.json").exists()
    progress.line(f"[{i}/{len(configs)}] {run_name(config)}" + (" (done)" if finished else ""))
    if not finished and dataset is None:
      dataset = data_lib.load(config.dataset, config.data_dir, verify=config.verify_data)
    result = runner.run(config, resume=pathlib.Path(config.out).exists(), progress=progress,
                        dataset=dataset)
    rows.append(csv_row(result, config.out))
  csv_path, markdown_path = out / "sweep.csv", out / "sweep.md"
  if not hosts.writes_files():
    return {"rows": rows, "csv": str(csv_path), "markdown": str(markdown_path), "plots": []}
  with open(csv_path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
  markdown_path.write_text(markdown_table(rows) + "\n")
  return {"rows": rows, "csv": str(csv_path), "markdown": str(markdown_path),
          "plots": [str(p) for p in _plots(rows, out)]}


def csv_row(result: dict, run_dir: str) -> dict:
  """A run's ``sweep.csv`` row: its settings and figures, lists joined by commas."""
  row = {field: result.get(field) for field in CSV_FIELDS if field != "run"}
  row["layer_eta"] = ",".join(f"{name}={radius:g}" for name, radius in result.get("layer_eta", ()))
  row["layers"] = ",".join(result.get("layers", ()))
  return row | {"run": run_dir}


def groups(rows):
  """Rows grouped by setting (method, eta, schedule), seeds together."""
  grouped: dict = {}
  for row in rows:
    grouped.setdefault((row["method"], row["eta"], row["schedule"]), []).append(row)
  return grouped


def markdown_table(rows) -> str:
  """The paper's table: Memory (kB), k-MACCs and Accuracy (%), mean ± std over seeds."""
  lines = []
  for (method, eta, _), members in groups(rows).items():
    name = method.upper() if eta is None else f"{method.upper()} η={eta:g}"
    if members[0].get("layer_eta"):
      name += f" ({members[0]['layer_eta']})"
    lines.append([name, methods_lib.label(members[0]),
                  tables.mean_std(r["memory_kb"] for r in members),
                  tables.mean_std(r["maccs_effective"] / 1e3 for r in members),
                  tables.mean_std(100 * r["accuracy"] for r in members), len(members)])
  return tables.markdown(
      ["Method", "Schedule", "Memory (kB)", "k-MACCs", "Accuracy (%)", "Seeds"], lines)


def _plots(rows, out: pathlib.Path) -> list[pathlib.Path]:
  written = []
  for key, label, name in (("accuracy", "accuracy (%)", "accuracy_vs_eta.png"),
                           ("maccs_effective", "k-MACCs (effective)", "maccs_vs_eta.png")):
    scale = 100 if key == "accuracy" else 1e-3
    fig, ax = plt.subplots(figsize=(6, 4))
    by_method: dict = {}
    for (method, eta, _), members in groups(rows).items():
      by_method.setdefault(method, []).append(
          (eta, statistics.fmean(scale * r[key] for r in members)))
    for method, points in by_method.items():
      if points[0][0] is None:  # no radius: a level line
        ax.axhline(points[0][1], color="gray", linestyle="--", label=method.upper())
        continue
      points.sort()
      ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=method.upper())
    ax.set_xscale("log")
    ax.set_xlabel("η (radius)")
    ax.set_ylabel(label)
    ax.legend()
    written.append(plots.save(fig, out / name))
  return written
