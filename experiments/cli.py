"""python -m experiments {run,sweep,reproduce,demo}: the paper's experiments from a shell.

Bad flags end with one line on stderr and exit status 2; a dataset that no
source can provide, with one message and status 3; Ctrl-C (SIGINT) or SIGTERM
at the next step, with what is saved, the command that continues, and status
130 or 143. Never a traceback for those.
"""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import shlex
import signal
import sys

from experiments import config as config_lib
from experiments import data as data_lib
from experiments import hosts
from experiments import interrupt
from experiments import methods
from experiments import reproduce as reproduce_lib
from experiments import runner
from experiments import sweep as sweep_lib
from experiments.checkpoints import saved_epoch
from experiments.config import ConfigError, RunConfig
from experiments.progress import Progress

# The main job: Table III's network on Fashion-MNIST, Adam against the l1,1
# lottery, about a minute of training on 2 CPU cores. A first sweep here
# (10 + 10 epochs, seed 0) gave Adam 88.8 % at 266 k-MACCs and PGL11
# 86.9 / 88.4 / 89.2 % at eta = 500 / 1000 / 2000 with 81 / 143 / 202 k-MACCs.
DEMO = dict(model="lenet300", dataset="fashion_mnist", schedule="lottery", epochs=10)
DEMO_METHODS = ("adam", "pgl11")
DEMO_ETA = 1000.0


class _HelpWithDefaults(argparse.HelpFormatter):
  """Appends each option's default to its help, when it has one worth saying."""

  def _get_help_string(self, action):
    text = action.help or ""
    default = action.default
    worth_saying = not (default is None or default is argparse.SUPPRESS
                        or (isinstance(default, tuple) and default in ((), (None,))))
    if action.option_strings and action.nargs != 0 and worth_saying:
      shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
      text += f" (default: {shown})".replace("%", "%%")
    return text


class OneLineParser(argparse.ArgumentParser):
  """argparse, with errors said in one line (no usage dump) and defaults in --help."""

  def __init__(self, *args, **kwargs):
    kwargs.setdefault("formatter_class", _HelpWithDefaults)
    super().__init__(*args, **kwargs)

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message}\n")


def csv_of(kind):
  """An argparse type: comma-separated values of ``kind``, as a tuple."""
  def parse(text):
    try:
      return tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}")
  return parse


def _layer_radii(text):
  pairs = []
  for item in (v for v in text.split(",") if v.strip()):
    name, sep, radius = item.partition("=")
    try:
      pairs.append((name.strip(), float(radius)))
    except ValueError:
      sep = ""
    if not sep or not name.strip():
      raise argparse.ArgumentTypeError(f"expected NAME=RADIUS pairs, got {item!r}")
  return tuple(pairs)


# The flags whose values are names from a table, and those with their own syntax.
CHOICES = {"model": list(config_lib.MODELS), "dataset": list(data_lib.DATASETS),
           "method": list(methods.METHODS), "schedule": list(config_lib.SCHEDULES),
           "lr_schedule": list(config_lib.LR_SCHEDULES)}
PARSERS = {"layers": csv_of(str), "layer_eta": _layer_radii, "layer_keep": _layer_radii}
_TYPES = {"str": str, "int": int, "float": float}


def _add_run_flags(parser, *, grid: bool):
  """One flag per :class:`RunConfig` field, its default and help from the field;
  with ``grid``, the fields a sweep varies take comma-separated values."""
  for field in dataclasses.fields(RunConfig):
    name, flag = field.name, field.metadata.get("flag", "--" + field.name.replace("_", "-"))
    kwargs = {"dest": name, "help": field.metadata["help"]}
    if field.default is dataclasses.MISSING:
      kwargs["required"] = True
    else:
      kwargs["default"] = field.default
    kind = _TYPES.get(str(field.type).split(" ")[0].split("[")[0])
    if name == "out":
      kwargs.update(default=None, help="output folder (default: runs/MODEL_DATASET_METHOD_SCHEDULE)")
    elif isinstance(field.default, bool):
      kwargs["action"] = "store_false" if field.default else "store_true"
    elif grid and field.metadata.get("grid"):
      kwargs.update(type=csv_of(kind), default=(field.default,))
      if name in CHOICES:
        kwargs["help"] += f"; comma-separated, from {', '.join(CHOICES[name])}"
      else:
        kwargs["help"] += "; comma-separated"
    else:
      kwargs["type"] = PARSERS.get(name, kind)
      if name in CHOICES:
        kwargs["choices"] = CHOICES[name]
    parser.add_argument(flag, **kwargs)
  parser.add_argument("--quiet", action="store_true", help="print nothing but the result")
  parser.add_argument("--distributed", action="store_true",
                      help="one of several processes (hosts) training together: join them "
                           "with jax.distributed.initialize(), coordinator from the "
                           "environment (see the README)")


def parser() -> argparse.ArgumentParser:
  top = OneLineParser(prog="python -m experiments", description=__doc__.splitlines()[0])
  commands = top.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
  run = commands.add_parser("run", help="one experiment")
  _add_run_flags(run, grid=False)
  run.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out (refused if its settings differ; "
                        "starts a new run when there is nothing to resume)")
  grid = commands.add_parser(
      "sweep", help="a grid of methods, radii and seeds (finished points are kept, an "
                    "interrupted one resumes when the same command runs again)")
  _add_run_flags(grid, grid=True)
  again = commands.add_parser(
      "reproduce", help="re-run a committed run from its result.json and compare the figures "
                        "(exit 0 when they agree)")
  again.add_argument("result_dir", help="the run's folder, with its result.json")
  again.add_argument("--seed", type=int, help="another seed than the committed run's")
  again.add_argument("--data-dir", help="where the data is on this machine, if elsewhere")
  again.add_argument("--out", help="keep the new run in this folder (default: a temporary "
                                   "one, removed after)")
  again.add_argument("--quiet", action="store_true", help="print nothing but the comparison")
  demo = commands.add_parser(
      "demo", help="LeNet-300-100 on Fashion-MNIST: Adam vs the l1,1 lottery (a few minutes)")
  demo.add_argument("--out", default="runs/demo", help="output folder")
  demo.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: "
                                       "Debian's dataset-fashion-mnist, then tensorflow-datasets)")
  demo.add_argument("--quiet", action="store_true", help="print nothing but the result")
  demo.add_argument("--epochs", type=int, default=DEMO["epochs"],
                    help="epochs of training, and as many of the lottery's retraining")
  demo.add_argument("--train-examples", type=int, help="use only the first N training images")
  demo.add_argument("--test-examples", type=int, help="use only the first N test images")
  return top


def _config(args, **overrides) -> RunConfig:
  fields = {field.name: getattr(args, field.name) for field in dataclasses.fields(RunConfig)}
  return RunConfig(**(fields | overrides))


def _default_out(args) -> str:
  methods = args.method if isinstance(args.method, str) else "-".join(args.method)
  return f"runs/{args.model}_{args.dataset}_{methods}_{args.schedule}"


def _summary(result: dict) -> str:
  target = (f"keep={result['keep']:g}" if result.get("eta") is None and result.get("keep") is not None
            and result["method"] in methods.PROJECTIONS else f"eta={result['eta']}")
  return (f"{result['model']} {result['dataset']} {result['method']} {target} "
          f"{result['schedule']}: accuracy {100 * result['accuracy']:.2f} %, "
          f"{result['maccs_effective'] / 1e3:,.1f} k-MACCs (of {result['maccs_dense'] / 1e3:,.1f}), "
          f"{result['memory_kb']:,.1f} kB, {result['neurons_removed']} neurons removed")


def _continue_hint(args, argv) -> str:
  """What an interruption saved, and the command that carries on from there."""
  command = "python -m experiments " + shlex.join(argv)
  if args.command == "reproduce":
    return "nothing is kept of an interrupted re-run; start it again"
  if args.command == "run":
    out = args.out or _default_out(args)
    epoch = saved_epoch(out)
    saved = (f"epochs 1-{epoch} of {out} are saved" if epoch else
             f"no epoch of {out} had finished, nothing is saved")
    if "--resume" not in argv:
      command += " --resume"
    return f"{saved}; continue with: {command}"
  return f"finished runs are kept; continue with the same command: {command}"


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parser().parse_args(argv)
  if getattr(args, "distributed", False):
    hosts.initialize()
  progress = Progress(quiet=args.quiet or not hosts.writes_files())
  try:
    with interrupt.deferred():
      interrupt.raise_if_requested()  # a signal while the modules loaded
      return _main(args, progress)
  except ConfigError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  except (data_lib.DataUnavailable, data_lib.ChecksumMismatch) as error:
    print(f"error: {error}", file=sys.stderr)
    return 3
  except KeyboardInterrupt as stop:
    status = stop.exit_status if isinstance(stop, interrupt.Interrupted) else 130
    print(f"\ninterrupted ({signal.Signals(status - 128).name}): {_continue_hint(args, argv)}",
          file=sys.stderr)
    return status


def _main(args, progress) -> int:
  """Runs the chosen command; errors and interruptions are said by :func:`main`."""
  print = builtins.print if hosts.writes_files() else (lambda *args, **kwargs: None)
  if args.command == "run":
    config = _config(args, out=args.out or _default_out(args))
    result = runner.run(config, resume=args.resume, progress=progress)
    print(_summary(result))
    print(f"result: {config.out}/result.json; plots: {', '.join(result['plots'])}")
  elif args.command == "reproduce":
    comparison = reproduce_lib.reproduce(args.result_dir, seed=args.seed, data_dir=args.data_dir,
                                         out=args.out, progress=progress)
    print(comparison.report())
    return 0 if comparison.agrees else 1
  elif args.command == "sweep":
    base = _config(args, method=args.method[0], eta=args.eta[0], seed=args.seed[0])
    report = sweep_lib.sweep(base, args.method, args.eta, args.seed,
                             args.out or _default_out(args), progress=progress)
    print(sweep_lib.markdown_table(report["rows"]))
    print(f"table: {report['markdown']}; csv: {report['csv']}; plots: {', '.join(report['plots'])}")
  else:
    base = RunConfig(**{**DEMO, "epochs": args.epochs, "retrain_epochs": args.epochs},
                            data_dir=args.data_dir, train_examples=args.train_examples,
                            test_examples=args.test_examples)
    report = sweep_lib.sweep(base, DEMO_METHODS, (DEMO_ETA,), (0,), args.out, progress=progress)
    print("\nLeNet-300-100 on Fashion-MNIST: Adam vs PGL11 lottery "
          f"(eta={DEMO_ETA:g}, {args.epochs}+{args.epochs} epochs)\n")
    print(sweep_lib.markdown_table(report["rows"]))
    pictures = [p for row in report["rows"] for p in runner_plots(row["run"])]
    print(f"\ntable: {report['markdown']}\nplots: {', '.join(report['plots'] + pictures)}")
  return 0


def runner_plots(run_dir: str) -> list[str]:
  return [f"{run_dir}/weights.png", f"{run_dir}/distribution.png"]
