"""The committed report: tables from result.json files, commands that reproduce them."""

import dataclasses
import json
import pathlib
import shlex
import shutil
import statistics

import pytest
from flax import nnx

from experiments import cli, report, runner
from experiments.report import prose
from experiments import config as config_lib


def fake_result(out, seed, accuracy, maccs, memory_kb, **config):
  settings = runner.RunConfig(**{"model": "lenet300", "dataset": "fashion_mnist", "seed": seed,
                                 "out": str(out), **config})
  result = dataclasses.asdict(settings) | {
      "layers": ["fc1", "fc2", "fc3"], "accuracy": accuracy, "maccs_effective": maccs,
      "maccs_dense": 266_200, "memory_kb": memory_kb, "train_examples": 60_000,
      "test_examples": 10_000, "data_source": "test data"}
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
  assert "| Adam | beyond | - | - | 14 |" in longer_adam and "| 80.00 ± 0.00 |  |" in longer_adam
  assert f"| {145.0 / 266.2:.3f} |" in row and "| 145.0 ± 7.1 |" in row
  assert "## LeNet-300-100 on Fashion-MNIST (not in the paper)" in text
  assert "| 3 | PGL11 η=1000 (fc3=40) | beyond | lottery | - |" in row  # default rate, batch
  assert "| not recorded: not yet regenerated |" in row
  assert report.training_note({"method": "pgl21", "model": "lenet300", "layers": ["fc1", "fc2"],
                               "lr": 0.003, "batch_size": 64, "eta": 50.0, "dataset": "mnist"}) \
      == "fc1, fc2 projected; lr 0.003; batch 64"
  assert "| PGL11 η=400 | 83 | 150 | 97.8 |" not in text  # the paper's MNIST rows: not here
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
        # result.json replaces the subset flags by the counts of images used.
        measured = ("train_examples", "test_examples")
        flags = {key: value for key, value in flags.items() if key not in measured}
        assert flags == {key: run[key] for key in flags}
        model = nnx.eval_shape(lambda: config_lib.MODELS[run["model"]](rngs=nnx.Rngs(0)))
        assert list(config_lib.constrained_layers(model, rebuilt)) == run["layers"]
      assert args.seed == tuple(sorted(r["seed"] for r in setting["runs"]))


def test_discussion_is_appended(results):
  (results / "discussion.md").write_text("## What we saw\n\nhand-written\n")
  assert report.write_report(results).read_text().rstrip().endswith("hand-written")


def test_discussion_figures_are_read_from_the_rows(results):
  (results / "discussion.md").write_text(
      "PGL11 reaches {{fashion_mnist/lenet300/pgl11_eta1000 accuracy}} % "
      "({{fashion_mnist/lenet300/pgl11_eta1000 seed_accuracies}}) at "
      "{{fashion_mnist/lenet300/pgl11_eta1000 kmaccs}} k-MACCs, "
      "{{ fashion_mnist/lenet300/pgl11_eta1000 maccs_vs fashion_mnist/lenet300/adam }} "
      "Adam's and {{fashion_mnist/lenet300/pgl11_eta1000 points_vs fashion_mnist/lenet300/adam}}"
      " points; {{fashion_mnist/lenet300/adam seeds}} Adam seeds.\n")
  text = report.write_report(results).read_text()
  pgl11, adam = (86.0, 87.0), (88.0, 89.0, 90.0)
  assert (f"PGL11 reaches {statistics.fmean(pgl11):.2f} ± {statistics.stdev(pgl11):.2f} % "
          f"(86.00, 87.00) at 145.0 k-MACCs, {145.0 / 266.2:.2f}× Adam's and "
          f"{statistics.fmean(pgl11) - statistics.fmean(adam):+.2f} points; 3 Adam seeds.") in text


def test_the_strength_a_setting_ran_at_is_its_seeds_common_eta():
  runs = {"net/halo": [{"seed": 0, "eta": 3e-4}, {"seed": 1, "eta": 3e-4}],
          "net/mixed": [{"seed": 0, "eta": 1e-4}, {"seed": 1, "eta": 3e-4}]}
  assert prose.render("ξ = {{net/halo eta}}", runs) == "ξ = 0.0003"
  with pytest.raises(ValueError, match="the seeds differ in eta: 0.0001, 0.0003"):
    prose.render("{{net/mixed eta}}", runs)


def test_discussion_layer_counts_from_the_layer_reports():
  def run(seed, dead):
    # fc1 of LeNet-300-100: 784 x 300 weights and 300 biases.
    return {"seed": seed, "layers_report": [
        {"name": "fc1", "kind": "dense", "params": 784 * 300 + 300, "maccs_dense": 784 * 300,
         "dead_inputs": dead, "dead_outputs": 7}]}
  runs = {"net/a": [run(0, 84), run(1, 86)]}
  text = "{{net/a live_inputs fc1}} pixels read, {{net/a dead_outputs fc1}} neurons removed"
  assert prose.render(text, runs) == "699.0 ± 1.4 pixels read, 7 neurons removed"
  with pytest.raises(ValueError, match="no layer 'fc9'; the layers are fc1"):
    prose.render("{{net/a dead_inputs fc9}}", runs)


@pytest.mark.parametrize("field,message", [
    ("{{fashion_mnist/lenet300/missing accuracy}}", "no result.json below"),
    ("{{fashion_mnist/lenet300/adam speed}}", "unknown figure 'speed'"),
    ("{{fashion_mnist/lenet300/adam points_vs}}", "points_vs takes a setting"),
    ("{{fashion_mnist/lenet300/adam kmaccs fc1}}", "kmaccs takes no argument"),
])
def test_a_wrong_discussion_field_names_itself(results, field, message):
  (results / "discussion.md").write_text(f"text {field}\n")
  with pytest.raises(ValueError, match=message) as error:
    report.write_report(results)
  assert field in str(error.value) and "discussion.md" in str(error.value)


def test_not_a_folder_is_one_line(tmp_path, capsys):
  assert report.main([str(tmp_path / "missing")]) == 2
  assert "is not a folder of results" in capsys.readouterr().err


@pytest.mark.parametrize("accuracy,kmaccs,memory_kb,verdict", [
    (97.80, 150.0, 83.0, "met"),                       # exactly the paper's figures
    (97.61, 153.0, 91.3, "met"),                       # inside every tolerance
    (97.90, 140.0, 80.0, "beats"),
    (97.59, 140.0, 80.0, "missed: accuracy -0.21 pts"),
    (98.00, 153.1, 91.4, "missed: k-MACCs 1.02×, memory 1.10×"),
])
def test_versus_paper_tolerances(accuracy, kmaccs, memory_kb, verdict):
  row = {"accuracy": accuracy, "kmaccs": kmaccs, "memory_kb": memory_kb, "seeds": 3}
  assert report.versus_paper(row, ("PGL11 η=400", 83, 150, 97.8)) == verdict
  fewer = report.versus_paper(dict(row, seeds=1), ("PGL11 η=400", 83, 150, 97.8))
  assert fewer == f"{verdict} (on 1 seed: not counted)" and not report.counts(fewer)


def test_mnist_section_is_the_papers_table_with_verdicts(tmp_path):
  root = tmp_path / "results"
  net = root / "mnist" / "lenet300" / "pgl11_eta400"
  for seed, acc in enumerate((0.979, 0.981)):
    fake_result(net / f"pgl11_eta400_seed{seed}", seed, acc, 140_000, 80.0, dataset="mnist",
                method="pgl11", eta=400.0, schedule="lottery", data_dir="../shared/data/mnist")
  text = report.write_report(root).read_text()
  assert "## LeNet-300-100 on MNIST (the paper's Table III)" in text
  row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
  assert row.endswith("| 2 | not recorded: not yet regenerated | beats (on 2 seeds: not counted) |")
  assert ("| PGL11 η=400 | 83 | 150 | 97.8 | not run | beats (on 2 seeds: not counted) (row 1) |"
          in text)
  assert "| PGL11 η=200 | 32 | 62 | 96.4 | not run | not run |" in text
  assert "--data-dir ../shared/data/mnist" in text
  assert "**MNIST, the paper's Tables I–III (14 rows):** 0 met or beaten under the paper's " \
      "protocol (0 of 14 rows run under it so far), 0 with any" in text


def test_protocol_rows_get_their_own_verdict_and_archived_runs_are_left_out(tmp_path):
  root = tmp_path / "results"
  version = {"commit": "a" * 40, "dirty": False, "package": "0.1.0"}
  for seed, acc in enumerate((0.979, 0.981, 0.980)):
    fake_result(root / "mnist" / "lenet300" / "protocol" / "pgl11_eta400" / f"s{seed}", seed, acc,
                140_000, 80.0, dataset="mnist", method="pgl11", eta=400.0, schedule="lottery")
    path = root / "mnist" / "lenet300" / "protocol" / "pgl11_eta400" / f"s{seed}" / "result.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"code_version": version}))
    fake_result(root / "archive" / "mnist" / "lenet300" / "old" / f"s{seed}", seed, 0.5, 1, 1.0,
                dataset="mnist", method="pgl11", eta=400.0, schedule="lottery")
  text = report.write_report(root).read_text()
  row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
  assert "| paper's |" in row and "| aaaaaaa |" in row and row.endswith("| beats |")
  assert "| 2 |" not in text  # the archived setting is not a row
  assert "| PGL11 η=400 | 83 | 150 | 97.8 | beats (row 1) | not run |" in text
  assert "1 met or beaten under the paper's protocol (1 of 14 rows run under it so far)" in text


def test_only_rows_chosen_on_validation_count_beyond_the_paper(tmp_path):
  root = tmp_path / "results"
  net = root / "mnist" / "lenet300"
  for folder in ("beyond/pgl11_eta400", "pgl11_eta400_by_hand"):
    for seed, acc in enumerate((0.979, 0.981, 0.980)):
      fake_result(net / folder / f"s{seed}", seed, acc, 140_000, 80.0, dataset="mnist",
                  method="pgl11", eta=400.0, schedule="every-step")
  text = report.write_report(root).read_text()
  rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
  assert rows["| 1"].endswith("| beats |")
  assert rows["| 2"].endswith("| beats (settings not chosen on validation: not counted) |")
  assert "| PGL11 η=400 | 83 | 150 | 97.8 | not run | beats (row 1) |" in text
  assert "1 with any of our recipes or schedules chosen on validation" in text
  # Without the row chosen on validation, the one set by hand reaches nothing.
  shutil.rmtree(net / "beyond")
  text = report.write_report(root).read_text()
  assert "0 with any of our recipes or schedules chosen on validation" in text


def test_the_best_verdict_shows_a_counted_miss_before_an_uncounted_reach():
  paper_row = ("PGL11 η=400", 83, 150, 97.8)
  beats = {"accuracy": 98.0, "kmaccs": 140.0, "memory_kb": 80.0, "seeds": 3}
  misses = dict(beats, accuracy=97.0)
  by_hand, on_validation = (dict(beats, chosen_on_validation=False),
                            dict(misses, chosen_on_validation=True))
  assert report.best_verdict([(1, by_hand), (2, on_validation)], paper_row) == (
      "missed: accuracy -0.80 pts (row 2)")
  assert report.best_verdict([(1, by_hand), (2, dict(beats, chosen_on_validation=True))],
                             paper_row) == "beats (row 2)"
  assert report.best_verdict([(1, by_hand)], paper_row) == (
      "beats (settings not chosen on validation: not counted) (row 1)")
