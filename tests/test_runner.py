"""The experiment runner end to end: results, resume, sweeps, the CLI."""

import dataclasses
import hashlib
import io
import json
import pathlib
import re
import shlex
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

import sparse_optax
from experiments import cli, data, methods, runner, sweep
from experiments import config as config_lib
from experiments import progress as progress_lib
from experiments.progress import Progress

import fake_data


RESULT_FIELDS = ("model", "dataset", "method", "eta", "schedule", "epochs", "seed", "accuracy",
                 "maccs_dense", "maccs_effective", "memory_kb", "bytes_sparse",
                 "nonzero_fraction", "neurons_removed", "seconds", "data_source")
QUIET = Progress(quiet=True)


def config(tiny, out, **changes):
  base = runner.RunConfig(model="lenet300", dataset="mnist", method="pgl11", eta=60.0,
                          schedule="lottery", epochs=1, retrain_epochs=1, batch_size=32,
                          out=str(out), data_dir=str(tiny), verify_data=False)
  return dataclasses.replace(base, **changes)


def test_run_writes_every_field_and_the_pictures(tiny, tmp_path):
  result = runner.run(config(tiny, tmp_path / "run"), progress=QUIET)
  saved = json.loads((tmp_path / "run" / "result.json").read_text())
  assert saved == json.loads(json.dumps(result))
  assert all(field in saved for field in RESULT_FIELDS)
  assert saved["maccs_dense"] == 266_200 and saved["maccs_effective"] < 266_200
  assert 0 < saved["nonzero_fraction"] < 1 and saved["accuracy"] > 0.3  # the bars are learnt
  assert [h["phase"] for h in saved["history"]] == ["train", "retrain"]
  assert "--data-dir" in saved["data_source"]
  for path in saved["plots"]:
    assert pathlib.Path(path).read_bytes()[:4] == b"\x89PNG"
  assert not list((tmp_path / "run").glob(".*.tmp"))


@pytest.mark.slow
def test_layer_eta_replaces_eta_for_its_layers_and_constrains_them(tiny, tmp_path):
  settings = config(tiny, tmp_path / "run", layers=("fc1",), layer_eta=(("fc3", 0.0),),
                    schedule="every-step")
  result = runner.run(settings, progress=QUIET)
  assert result["layers"] == ["fc1", "fc3"]
  by_name = {layer["name"]: layer for layer in result["layers_report"]}
  assert by_name["fc3"]["nonzero"] == 10  # radius 0 leaves only the bias
  assert 10 < by_name["fc1"]["nonzero"] < 784 * 300  # eta = 60 thins fc1
  # Not constrained: only the final rounding to 2⁻¹⁶ zeroes its tiniest weights.
  assert 0.999 * (300 * 100 + 100) < by_name["fc2"]["nonzero"] <= 300 * 100 + 100


def test_cosine_rate_decays_to_zero_over_each_phase_of_the_lottery(tiny, tmp_path):
  settings = config(tiny, tmp_path, lr=0.01, lr_schedule="cosine", epochs=2, retrain_epochs=3)
  # One transformation for both phases: updates 1-19 dense, update 20 the prune,
  # then 30 retraining updates with a fresh Adam.
  optimizer = methods.of(settings).optimizer(settings, "train", ("fc1",), None, 10)
  params = {"w": np.zeros(3, np.float32)}
  state = optimizer.init(params)
  update = jax.jit(optimizer.update)
  steps = []
  for _ in range(10 * (2 + 3) + 1):  # unit gradients: Adam's step is the rate
    updates, state = update({"w": np.ones(3, np.float32)}, state, params)
    steps.append(-float(updates["w"][0]))
  np.testing.assert_allclose(steps[0], 0.01, rtol=1e-4)
  np.testing.assert_allclose(steps[10], 0.005, rtol=1e-3)  # half way: half the rate
  assert steps[19] == 0.0  # the prune: back to the initial (zero) parameters
  np.testing.assert_allclose(steps[20], 0.01, rtol=1e-4)  # retraining restarts from lr
  np.testing.assert_allclose(steps[20 + 15], 0.005, rtol=1e-3)
  assert steps[20 + 30] == 0.0


def test_lottery_runs_through_lottery_ticket_with_late_rewinding(tiny, tmp_path):
  settings = config(tiny, tmp_path / "late", epochs=2, retrain_epochs=1, rewind_to_epoch=1)
  optimizer = methods.of(settings).optimizer(settings, "train", ("fc1", "fc2", "fc3"), None, 10)
  params = {"fc1": {"kernel": np.ones((3, 2), np.float32), "bias": np.ones(2, np.float32)}}
  assert isinstance(optimizer.init(params), sparse_optax.LotteryTicketState)
  result = runner.run(settings, progress=QUIET)
  assert [h["phase"] for h in result["history"]] == ["train", "train", "retrain"]
  assert result["rewind_to_epoch"] == 1 and 0 < result["nonzero_fraction"] < 1


@pytest.mark.slow
def test_freeze_dead_every_step_keeps_zeroed_groups(tiny, tmp_path):
  settings = config(tiny, tmp_path / "frozen", schedule="every-step", epochs=2, eta=20.0,
                    freeze_dead=True)
  result = runner.run(settings, progress=QUIET)
  fc1 = next(layer for layer in result["layers_report"] if layer["name"] == "fc1")
  assert result["freeze_dead"] and fc1["dead_inputs"] > 0


class Kill(Exception):
  """Stands for Ctrl-C or a kill at the end of an epoch."""


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["every-step", "lottery"])
def test_interrupted_and_resumed_equals_uninterrupted(tiny, tmp_path, schedule):
  # 2 epochs; the lottery's cut falls between its training and retraining,
  # whose cosine rate restarts from lr.
  settings = (dict(schedule=schedule, epochs=2) if schedule == "every-step"
              else dict(schedule=schedule, epochs=1, lr_schedule="cosine"))
  whole = runner.run(config(tiny, tmp_path / "whole", **settings), progress=QUIET)

  def kill_after_first(epoch):
    if epoch == 1:
      raise Kill

  cut = config(tiny, tmp_path / "cut", **settings)
  with pytest.raises(Kill):
    runner.run(cut, progress=QUIET, after_epoch=kill_after_first)
  assert not (tmp_path / "cut" / "result.json").exists()
  with pytest.raises(runner.ConfigError, match="--resume"):
    runner.run(cut, progress=QUIET)
  resumed = runner.run(cut, resume=True, progress=QUIET)
  for field in ("accuracy", "maccs_effective", "memory_kb", "bytes_sparse", "nonzero_fraction",
                "neurons_removed"):
    assert resumed[field] == whole[field], field
  assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in whole["history"]]
  assert runner.run(cut, resume=True, progress=QUIET) == resumed  # finished: read back


@pytest.mark.slow
def test_a_resumed_run_says_the_time_left_from_its_own_epochs(tiny, tmp_path):
  settings = config(tiny, tmp_path / "run", method="adam", eta=None, schedule="every-step",
                    epochs=3)

  def kill_after_first(epoch):
    if epoch == 1:
      raise Kill

  with pytest.raises(Kill):
    runner.run(settings, progress=QUIET, after_epoch=kill_after_first)
  # The first epoch ran an hour under another load: it must not count.
  history_file = tmp_path / "run" / "history.json"
  history = json.loads(history_file.read_text())
  history_file.write_text(json.dumps([dict(h, steady_seconds=3600.0) for h in history]))
  said = io.StringIO()
  runner.run(settings, resume=True, progress=Progress(stream=said))
  second = next(line for line in said.getvalue().splitlines() if line.startswith("epoch 2/3"))
  assert re.search(r"about \d+(\.\d+)? s left", second), second


@pytest.mark.slow
def test_sweep_tables_plots_and_resuming_finished_points(tiny, tmp_path):
  base = config(tiny, tmp_path, schedule="every-step")
  report = sweep.sweep(base, ("adam", "pgl11"), (30.0, 120.0), (0,), tmp_path / "grid",
                       progress=QUIET)
  assert [row["method"] for row in report["rows"]] == ["adam", "pgl11", "pgl11"]
  table = pathlib.Path(report["markdown"]).read_text()
  assert "| PGL11 η=30 | every-step |" in table and "| ADAM | - |" in table
  assert "Memory (kB) | k-MACCs | Accuracy (%)" in table
  csv = pathlib.Path(report["csv"]).read_text().splitlines()
  assert len(csv) == 4 and csv[0].startswith("model,dataset,method")
  for path in report["plots"]:
    assert pathlib.Path(path).read_bytes()[:4] == b"\x89PNG"
  lines = []
  again = sweep.sweep(base, ("adam", "pgl11"), (30.0, 120.0), (0,), tmp_path / "grid",
                      progress=Progress(stream=type("S", (), {"write": lines.append,
                                                              "flush": lambda self: None})()))
  assert again["rows"] == report["rows"]
  assert sum("(done)" in line for line in lines) == 3


@pytest.mark.slow
def test_simplenet_runs_on_tfds_mock_cifar10(tmp_path):
  settings = runner.RunConfig(model="simplenet", dataset="cifar10", method="pgl11", eta=500.0,
                              epochs=1, batch_size=4, out=str(tmp_path / "simplenet"))
  with tfds.testing.mock_data(num_examples=8):
    result = runner.run(settings, progress=QUIET)
  assert result["maccs_dense"] == 631_507_456 and result["data_source"] == "tensorflow-datasets"
  assert result["layers"] == [f"conv{i}" for i in range(2, 14)]


def run_cli(args, capsys):
  code = cli.main(args)
  captured = capsys.readouterr()
  return code, captured.out, captured.err


@pytest.mark.parametrize("args,message", [
    (["run", "--model", "resnet50", "--dataset", "mnist"], "invalid choice: 'resnet50'"),
    (["run", "--model", "lfc4", "--dataset", "svhn"], "invalid choice: 'svhn'"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl7"], "invalid choice: 'pgl7'"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11", "--eta", "-5"],
     "--eta must be a number >= 0"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11", "--eta", "inf"],
     "--eta inf constrains nothing"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11"], "needs --eta"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11", "--eta", "9",
      "--keep", "0.5"], "--keep and --eta exclude each other"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl1inf", "--keep", "0.5"],
     "--method pgl1inf takes --eta, not --keep"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11", "--keep", "1.5"],
     "--keep must be in [0, 1]"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--layer-keep", "fc5=0.5"],
     "--layer-keep needs a projection --method"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--lr", "-0.1"],
     "--lr must be a number > 0, got -0.1"),
    (["run", "--model", "simplenet", "--dataset", "mnist"], "takes cifar10 images"),
    (["sweep", "--model", "lfc4", "--dataset", "mnist", "--eta", "1,x"], "comma-separated floats"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11", "--eta", "9",
      "--layer-eta", "fc5"], "expected NAME=RADIUS pairs"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11", "--eta", "9",
      "--layer-eta", "fc9=3"], "--layer-eta: fc9 not among fc1, fc2"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--layer-eta", "fc5=3"],
     "--layer-eta needs a projection --method"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11", "--eta", "9",
      "--freeze-dead", "--schedule", "lottery"], "--freeze-dead needs a projection --method with"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11", "--eta", "9",
      "--rewind-to-epoch", "2"], "--rewind-to-epoch needs a projection --method with --schedule lottery"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11", "--eta", "9",
      "--schedule", "lottery", "--epochs", "3", "--rewind-to-epoch", "3"],
     "--rewind-to-epoch must be in [0, --epochs) = [0, 3)"),
    (["run", "--model", "lfc4", "--dataset", "mnist", "--method", "pgl11", "--eta", "9",
      "--schedule", "lottery", "--retrain-epochs", "0"], "needs --retrain-epochs >= 1"),
])
def test_bad_flags_end_in_one_line(args, message, capsys):
  try:
    code = cli.main(args)
  except SystemExit as exit:  # argparse's own errors
    code = exit.code
  err = capsys.readouterr().err
  assert code == 2
  assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_data_is_one_message(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(data, "_load_tfds", lambda name, data_dir: (_ for _ in ()).throw(
      ConnectionError("no network")))
  code, _, err = run_cli(["run", "--model", "lfc4", "--dataset", "mnist",
                          "--out", str(tmp_path / "o"), "--quiet"], capsys)
  assert code == 3 and "No source could provide mnist" in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_run_prints_the_summary_and_paths(tiny, tmp_path, capsys):
  code, out, _ = run_cli(["run", "--model", "lenet300", "--dataset", "mnist", "--method", "pgl11",
                          "--eta", "60", "--epochs", "1", "--batch-size", "32", "--data-dir",
                          str(tiny), "--no-verify", "--out", str(tmp_path / "cli"), "--quiet"], capsys)
  assert code == 0
  assert "accuracy" in out and "k-MACCs" in out and "weights.png" in out


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST.is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed (.ci/run installs it)")
@pytest.mark.slow
def test_real_fashion_mnist_smoke_run(tmp_path):
  # A few hundred steps on the real data: 200 steps of training, then the
  # projection, mask and rewind, then 200 steps of masked retraining.
  settings = runner.RunConfig(model="lenet300", dataset="fashion_mnist", method="pgl11", eta=300.0,
                              schedule="lottery", epochs=1, retrain_epochs=1, batch_size=128,
                              train_examples=25_600, test_examples=2_000, out=str(tmp_path / "f"))
  result = runner.run(settings, progress=QUIET)
  assert "dataset-fashion-mnist" in result["data_source"]
  assert result["accuracy"] > 0.75
  assert result["maccs_effective"] < 0.6 * result["maccs_dense"]


REAL_MNIST = fake_data.REAL_MNIST


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason="../shared/data/mnist is not beside the checkout")
def test_real_mnist_smoke_run_records_the_files_it_read(tmp_path):
  settings = runner.RunConfig(model="lenet300", dataset="mnist", method="pgl11", eta=300.0,
                              schedule="lottery", epochs=1, retrain_epochs=1, batch_size=128,
                              train_examples=12_800, test_examples=2_000, out=str(tmp_path / "m"),
                              data_dir=str(REAL_MNIST))
  result = runner.run(settings, progress=QUIET)
  assert [pathlib.Path(f["path"]).name for f in result["data_files"]] == [
      "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
      "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
  for record in result["data_files"]:
    assert record["sha256"] == hashlib.sha256(pathlib.Path(record["path"]).read_bytes()).hexdigest()
  assert result["accuracy"] > 0.85
  assert result["maccs_effective"] < result["maccs_dense"]


def test_interrupted_sweep_gives_the_same_command_and_a_run_its_resume():
  argv = ["sweep", "--model", "lenet300", "--dataset", "mnist", "--seed", "0,1", "--out", "x y"]
  hint = cli._continue_hint(cli.parser().parse_args(argv), argv)
  assert hint.endswith("continue with the same command: python -m experiments sweep --model "
                       "lenet300 --dataset mnist --seed 0,1 --out 'x y'")
  argv = ["run", "--model", "lenet300", "--dataset", "mnist", "--out", "/no/such/run"]
  hint = cli._continue_hint(cli.parser().parse_args(argv), argv)
  assert hint == ("no epoch of /no/such/run had finished, nothing is saved; continue with: "
                  "python -m experiments run --model lenet300 --dataset mnist --out /no/such/run "
                  "--resume")


@pytest.mark.parametrize("seconds,text", [(0.4, "0 s"), (89, "89 s"), (91, "2 min"),
                                          (3600, "60 min"), (5400, "1 h 30 min"),
                                          (7260, "2 h 01 min")])
def test_time_left_is_said_as_precisely_as_useful(seconds, text):
  assert progress_lib.duration(seconds) == text


def test_progress_bar_says_the_time_left_from_steady_steps(monkeypatch):
  stream = io.StringIO()
  stream.isatty = lambda: True
  clock = iter([0.0, 30.0, 32.0, 32.0, 32.0])  # start; first chunk (compiling) ends at 30 s
  monkeypatch.setattr(progress_lib.time, "perf_counter", lambda: next(clock))
  bar = Progress(stream=stream).epoch("epoch 1/3", steps=10, examples_per_step=32)
  assert "compiling" in stream.getvalue()
  bar.update(4, 0.5)  # the first chunk: 30 s, mostly compilation
  assert "4/10 loss 0.5000 compiled" in stream.getvalue()
  bar.update(6, 0.4)  # 2 more steps in 2 s: 1 s a step, 4 steps left
  assert "6/10 loss 0.4000 32 img/s, 4 s left" in stream.getvalue()
  assert bar.steady_seconds() == 10.0  # not 30 s of compilation in every epoch


@pytest.mark.slow
def test_cli_through_tensorflow_datasets_mock_data(tmp_path, capsys):
  # The tfds source, reached the way a user without --data-dir reaches it.
  with tfds.testing.mock_data(num_examples=64):
    code, out, err = run_cli(["run", "--model", "lenet300", "--dataset", "mnist", "--epochs", "1",
                              "--batch-size", "16", "--out", str(tmp_path / "tfds"), "--quiet"],
                             capsys)
  assert code == 0, err
  assert json.loads((tmp_path / "tfds" / "result.json").read_text())["data_source"] == \
      "tensorflow-datasets"


def test_what_tensorflow_datasets_imports_to_prepare_a_dataset_is_installed():
  import importlib_resources  # noqa: F401  (tfds imports it undeclared when preparing)


def test_the_measured_network_is_the_evaluated_one(tiny, tmp_path, monkeypatch):
  # A step of 1 rounds every weight of the small network to 0: if the
  # figures and the accuracy describe the rounded network, nothing is left.
  quantize = sparse_optax.metrics.quantize
  monkeypatch.setattr(runner.metrics, "quantize", lambda params: quantize(params, step=1.0))
  result = runner.run(config(tiny, tmp_path / "run", method="adam", eta=None, schedule="every-step"),
                      progress=QUIET)
  assert result["nonzero_fraction"] == 0 and result["maccs_effective"] == 0
  assert result["accuracy_before_rounding"] > 0.3  # the bars were learnt
  assert result["accuracy"] < 0.3  # a constant network: one class of ten


def test_result_records_its_code_settings_and_the_command_that_reruns_it(tiny, tmp_path):
  settings = config(tiny, tmp_path / "run", layer_eta=(("fc3", 5.0),), freeze_dead=False,
                    lr_schedule="cosine")
  result = runner.run(settings, progress=QUIET)
  assert len(result["code_version"]["commit"]) == 40 and isinstance(result["code_version"]["dirty"], bool)
  assert result["settings"] == json.loads(json.dumps(config_lib.settings(settings)))
  # The command, parsed by the command line itself, gives the same settings.
  words = shlex.split(result["command"])
  assert words[:4] == ["python", "-m", "experiments", "run"]
  args = cli.parser().parse_args(words[3:])
  assert cli._config(args) == settings


def test_validation_split_is_held_out_and_measured(tiny, tmp_path):
  result = runner.run(config(tiny, tmp_path / "run", validation_examples=64), progress=QUIET)
  assert result["train_examples"] == 320 - 64
  assert all(0 <= h["validation_accuracy"] <= 1 for h in result["history"])
  assert 0 <= result["validation_accuracy"] <= 1
  # 64 validation images: the accuracy is a multiple of 1/64.
  assert round(result["validation_accuracy"] * 64, 6) == int(round(result["validation_accuracy"] * 64))
  with pytest.raises(config_lib.ConfigError, match="leaves no training image"):
    runner.run(config(tiny, tmp_path / "bad", train_examples=64, validation_examples=64),
               progress=QUIET)


@pytest.mark.slow
def test_reproduce_agrees_with_itself_and_exits_1_when_figures_differ(tiny, tmp_path, capsys):
  runner.run(config(tiny, tmp_path / "run"), progress=QUIET)
  assert cli.main(["reproduce", str(tmp_path / "run"), "--quiet"]) == 0
  out = capsys.readouterr().out
  assert "| accuracy (%) |" in out and out.strip().endswith("agrees")
  # A copy whose committed accuracy is 1 point higher than what the code gives.
  copy = tmp_path / "copy"
  copy.mkdir()
  saved = json.loads((tmp_path / "run" / "result.json").read_text())
  saved["accuracy"] = min(1.0, saved["accuracy"] + 0.01) if saved["accuracy"] < 0.99 else saved["accuracy"] - 0.01
  (copy / "result.json").write_text(json.dumps(saved))
  assert cli.main(["reproduce", str(copy), "--quiet"]) == 1
  assert capsys.readouterr().out.strip().endswith("differs")


def test_neurons_removed_counts_inputs_and_every_dead_unit(tiny, tmp_path):
  result = runner.run(config(tiny, tmp_path / "run", eta=20.0), progress=QUIET)
  layers = {layer["name"]: layer for layer in result["layers_report"]}
  assert result["neurons_removed"] == layers["fc1"]["dead_inputs"] + sum(
      layers[name]["dead_outputs"] for name in ("fc1", "fc2", "fc3"))
  assert layers["fc1"]["dead_inputs"] > 0  # a 20-radius lottery leaves few pixels read


def test_sweep_with_changed_settings_is_refused_before_anything_is_said_done(tiny, tmp_path):
  base = config(tiny, tmp_path / "unused", method="adam", eta=None, schedule="every-step")
  sweep.sweep(base, ("adam",), (None,), (0,), tmp_path / "grid", progress=QUIET)
  said = io.StringIO()
  with pytest.raises(config_lib.ConfigError, match="was started with other settings"):
    sweep.sweep(dataclasses.replace(base, lr=0.002), ("adam",), (None,), (0,), tmp_path / "grid",
                progress=Progress(stream=said))
  assert "(done)" not in said.getvalue()


def test_missing_experiment_packages_are_one_line(tmp_path):
  code = ("import runpy, sys; sys.modules['orbax'] = None; sys.modules['orbax.checkpoint'] = None; "
          "sys.argv = ['experiments', 'run', '--help']; runpy.run_module('experiments', run_name='__main__')")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        cwd=pathlib.Path(__file__).parents[1])
  assert done.returncode == 2
  assert done.stderr.strip().splitlines() == [
      "error: python -m experiments needs orbax.checkpoint, one of the 'experiments' extra's "
      "packages: pip install 'sparse_optax[experiments]'"]


@pytest.mark.slow
@pytest.mark.parametrize("model,layers,kept", [
    ("resnet", [f"blocks.{i}.conv2" for i in range(4)], {"blocks.0.conv1": 8}),
    ("vit", ["blocks.0.attention.out", "blocks.0.fc2", "blocks.1.attention.out", "blocks.1.fc2"],
     {"blocks.0.attention.query": 2 * 16, "blocks.0.fc1": 64}),
])
def test_networks_beyond_the_paper_keep_their_removable_groups(tiny, tmp_path, model, layers,
                                                                kept):
  """--keep on the groups compaction removes: inner channels, heads, MLP units."""
  settings = config(tiny, tmp_path / model, model=model, eta=None, keep=0.5,
                    schedule="every-step", freeze_dead=True, epochs=1)
  result = runner.run(settings, progress=QUIET)
  assert result["layers"] == layers
  by_name = {layer["name"]: layer for layer in result["layers_report"]}
  for name, outputs in kept.items():  # half the units, counted as output entries
    assert by_name[name]["dead_outputs"] == outputs
  assert result["maccs_effective"] < result["maccs_dense"]
