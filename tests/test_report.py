"""The committed report: tables from result.json files, commands that reproduce them."""

import dataclasses
import json
import pathlib
import shlex
import statistics

import pytest
from flax import nnx

from experiments import cli, report, runner


def fake_result(out, seed, accuracy, maccs, memory_kb, **config):
  settings = runner.RunConfig(**{"model": "lenet300", "dataset": "fashion_mnist", "seed": seed,
                                 "out": str(out), **config})
  result = dataclasses.asdict(settings) | {
      "layers": ["fc1", "fc2", "fc3"], "accuracy": accuracy, "maccs_effective": maccs,
      "maccs_dense": 266_200, "memory_kb": memory_kb}
  out.mkdir(parents=True)
  (out / "result.json").write_text(json.dumps(result))
  return settings


@pytest.fixture
def results(tmp_path):
  root = tmp_path / "results"
  net = root / "fashion_mnist" / "lenet300"
  for seed, acc in enumerate((0.88, 0.89, 0.90)):
    fake_result(net / "adam" / f"adam_seed{seed}", seed, acc, 266_200, 460.0 + seed,
                lr_schedule="cosine")
    (net / "adam" / f"adam_seed{seed}" / "weights.png").write_bytes(b"\x89PNG")
  lottery = dict(method="pgl11", eta=1000.0, schedule="lottery", layer_eta=(("fc3", 40.0),),
                 epochs=8, retrain_epochs=6, lr_schedule="cosine")
  for seed, (acc, maccs) in enumerate(((0.86, 140_000), (0.87, 150_000))):
    fake_result(net / "pgl11_eta1000" / f"pgl11_eta1000_seed{seed}", seed, acc, maccs, 90.0,
                **lottery)
  for seed in range(2):
    fake_result(net / "adam_14epochs" / f"adam_seed{seed}", seed, 0.80, 266_200, 460.0,
                epochs=14, lr_schedule="cosine")
  return root


def test_table_means_deltas_and_the_paper_beside(results):
  text = report.write_report(results).read_text()
  assert "## LeNet-300-100 on Fashion-MNIST" in text and "on MNIST" not in text.split("##")[1]
  adam_acc = statistics.fmean((88.0, 89.0, 90.0))
  assert f"| {adam_acc:.2f} ± {statistics.stdev((88.0, 89.0, 90.0)):.2f} |" in text
  pgl11_acc = statistics.fmean((86.0, 87.0))
  row = next(line for line in text.splitlines() if line.startswith("| 3 |"))
  assert "PGL11 η=1000 (fc3=40)" in row and "| lottery |" in row
  assert f"| {pgl11_acc - 80.0:+.2f} |" in row  # against Adam with as many epochs (8 + 6)
  longer_adam = next(line for line in text.splitlines() if line.startswith("| 2 |"))
  assert "| Adam | - | 14 |" in longer_adam and "| 80.00 ± 0.00 |  |" in longer_adam
  assert f"| {145.0 / 266.2:.3f} |" in row and "| 145.0 ± 7.1 |" in row
  # LeNet-300-100 ran on MNIST in the paper: shown, and said not comparable.
  assert "MNIST: the paper has no Fashion-MNIST run of this network" in text
  assert "| PGL11 η=400 | 83 | 150 | 97.8 |" in text
  assert "[row 1](fashion_mnist/lenet300/adam/adam_seed0/weights.png)" in text
  for name in ("pareto_maccs.png", "pareto_memory.png"):
    assert (results / name).read_bytes()[:4] == b"\x89PNG"


def test_each_command_reproduces_its_runs(results):
  for members in report.load_settings(results).values():
    for setting in members:
      argv = shlex.split(report.command(setting))[3:]  # after "python -m experiments"
      args = cli.parser().parse_args(argv)
      for run in setting["runs"]:
        rebuilt = cli._config(args, method=args.method[0], eta=args.eta[0], seed=run["seed"],
                              out=f"{args.out}/{pathlib.Path(run['out']).name}")
        flags = json.loads(json.dumps(dataclasses.asdict(rebuilt)))
        assert flags.pop("layers") is None  # the paper's default layers, as the run's
        assert flags == {key: run[key] for key in flags}
        model = nnx.eval_shape(lambda: runner.MODELS[run["model"]](rngs=nnx.Rngs(0)))
        assert list(runner.constrained_layers(model, rebuilt)) == run["layers"]
      assert args.seed == tuple(sorted(r["seed"] for r in setting["runs"]))


def test_discussion_is_appended(results):
  (results / "discussion.md").write_text("## What we saw\n\nhand-written\n")
  assert report.write_report(results).read_text().rstrip().endswith("hand-written")


def test_not_a_folder_is_one_line(tmp_path, capsys):
  assert report.main([str(tmp_path / "missing")]) == 2
  assert "is not a folder of results" in capsys.readouterr().err
