"""Which schedule removes groups: Algorithm 1, Algorithm 1 with frozen dead
groups, and the lottery (Algorithm 4) rewound to the start or late.

``python -m experiments.schedules --model lenet300 --dataset fashion_mnist
--method pgl11 --eta 400 --epochs 8 --rewind-to-epoch 1 --seed 0,1,2``
trains the four schedules with the same total number of epochs:

* ``every-step``: the projection after every Adam step, ``2 * epochs`` epochs;
* ``every-step, freeze dead``: the same, a group once zeroed stays zero;
* ``lottery``: ``epochs`` of Adam, prune, rewind to the initial weights,
  ``epochs`` of masked retraining;
* ``lottery, rewind to epoch K``: the same, rewound to the weights after
  ``K`` epochs.

Each schedule is a sweep folder ``OUT/<schedule>`` (finished runs are read
back, interrupted ones resumed), so ``python -m experiments.report`` shows
them as rows. The script prints one table (accuracy, k-MACCs, memory and the
input groups removed in each constrained layer, mean ± std over seeds),
writes it to ``OUT/schedules.md`` and draws ``OUT/schedules_pareto.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments import cli  # noqa: E402
from experiments import config as config_lib  # noqa: E402
from experiments import methods  # noqa: E402
from experiments import plots  # noqa: E402
from experiments import runner  # noqa: E402
from experiments import sweep as sweep_lib  # noqa: E402
from experiments import tables  # noqa: E402
from experiments.progress import Progress  # noqa: E402


def variants(base: config_lib.RunConfig, rewind_to_epoch: int) -> dict[str, config_lib.RunConfig]:
  """The four schedules, named by their folders, with equal total epochs."""
  every_step = dataclasses.replace(base, schedule="every-step",
                                   epochs=base.epochs + base.retrain_epochs)
  lottery = dataclasses.replace(base, schedule="lottery")
  return {
      "every-step": every_step,
      "every-step_freeze-dead": dataclasses.replace(every_step, freeze_dead=True),
      "lottery": lottery,
      f"lottery_rewind{rewind_to_epoch}": dataclasses.replace(
          lottery, rewind_to_epoch=rewind_to_epoch),
  }


def removed_inputs(result: dict) -> dict[str, int]:
  """Input groups (rows of a kernel) removed in each constrained layer."""
  return {layer["name"]: layer["dead_inputs"] for layer in result["layers_report"]
          if layer["name"] in result["layers"]}


def table(results: dict[str, list[dict]]) -> str:
  """Markdown: one row per schedule, figures as mean ± std over seeds."""
  layers = next(iter(results.values()))[0]["layers"]
  rows = []
  for runs in results.values():
    removed = [removed_inputs(r) for r in runs]
    rows.append([methods.label(runs[0]), runs[0]["epochs_total"],
                 tables.mean_std(100 * r["accuracy"] for r in runs),
                 tables.mean_std((r["maccs_effective"] / 1e3 for r in runs), 1),
                 tables.mean_std((r["memory_kb"] for r in runs), 1),
                 *(tables.mean_std((d[name] for d in removed), 1) for name in layers), len(runs)])
  return tables.markdown(["Schedule", "Epochs", "Accuracy (%)", "k-MACCs", "Memory (kB)",
                          *(f"{name} inputs removed" for name in layers), "Seeds"], rows)


def pareto_plot(results: dict[str, list[dict]], path: pathlib.Path, title: str) -> pathlib.Path:
  """Accuracy against k-MACCs, one colour per schedule, every seed a point."""
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  for colour, runs in zip(plt.get_cmap("tab10").colors, results.values()):
    ax.scatter([r["maccs_effective"] / 1e3 for r in runs], [100 * r["accuracy"] for r in runs],
               color=colour, label=methods.label(runs[0]))
  ax.set_xlabel("k-MACCs (effective)")
  ax.set_ylabel("accuracy (%)")
  ax.legend(fontsize="small")
  return plots.save(fig, path, title)


def parser() -> argparse.ArgumentParser:
  top = cli.OneLineParser(prog="python -m experiments.schedules",
                          description=__doc__.splitlines()[0])
  top.add_argument("--model", required=True, choices=list(config_lib.MODELS))
  top.add_argument("--dataset", required=True)
  top.add_argument("--method", default="pgl11", choices=list(methods.PROJECTIONS))
  top.add_argument("--eta", type=float, required=True, help="radius of the ball")
  top.add_argument("--epochs", type=int, default=8,
                   help="epochs of each lottery phase; every-step trains twice as long")
  top.add_argument("--rewind-to-epoch", type=int, default=1, help="the late-rewinding lottery's K")
  top.add_argument("--lr", type=float, default=1e-3)
  top.add_argument("--lr-schedule", default="cosine", choices=list(config_lib.LR_SCHEDULES))
  top.add_argument("--seed", type=cli.csv_of(int), default=(0, 1, 2), help="comma-separated")
  top.add_argument("--data-dir")
  top.add_argument("--out", help="default: results/<dataset>/<model>/schedules/<method>_eta<eta>")
  top.add_argument("--quiet", action="store_true")
  return top


def main(argv=None) -> int:
  args = parser().parse_args(argv)
  out = pathlib.Path(args.out or f"results/{args.dataset}/{args.model}/"
                                 f"schedules/{args.method}_eta{args.eta:g}")
  base = config_lib.RunConfig(model=args.model, dataset=args.dataset, method=args.method,
                          eta=args.eta, epochs=args.epochs, retrain_epochs=args.epochs,
                          lr=args.lr, lr_schedule=args.lr_schedule, data_dir=args.data_dir)
  progress = Progress(quiet=args.quiet)
  results = {}
  try:
    for name, config in variants(base, args.rewind_to_epoch).items():
      report = sweep_lib.sweep(config, (args.method,), (args.eta,), args.seed, out / name,
                               progress=progress)
      results[name] = [runner.read_result(row["run"]) for row in report["rows"]]
  except runner.ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("\ninterrupted; finished runs are kept: run the same command again to continue",
          file=sys.stderr)
    return 130
  text = table(results)
  (out / "schedules.md").write_text(text + "\n")
  picture = pareto_plot(results, out / "schedules_pareto.png",
                        f"{args.model} {args.dataset} {args.method} η={args.eta:g}")
  print(text)
  print(f"table: {out / 'schedules.md'}; plot: {picture}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
