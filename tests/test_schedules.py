"""The schedule comparison script: four schedules, equal epochs, one table."""

import pathlib

import pytest

from experiments import runner, schedules


@pytest.mark.slow
def test_four_schedules_with_equal_epochs_and_the_groups_they_remove(tiny, tmp_path, capsys):
  out = tmp_path / "schedules"
  argv = ["--model", "lenet300", "--dataset", "fashion_mnist", "--data-dir", str(tiny),
          "--eta", "30", "--epochs", "1", "--rewind-to-epoch", "0", "--seed", "0",
          "--out", str(out), "--quiet"]
  assert schedules.main(argv) == 0
  printed = capsys.readouterr().out
  results = {name: runner.read_result(next((out / name).glob("*_seed0")))
             for name in ("every-step", "every-step_freeze-dead", "lottery", "lottery_rewind0")}
  assert {r["epochs_total"] for r in results.values()} == {2}
  assert results["every-step_freeze-dead"]["freeze_dead"]
  removed = schedules.removed_inputs(results["every-step_freeze-dead"])
  assert set(removed) == {"fc1", "fc2", "fc3"}
  fc1 = next(l for l in results["every-step_freeze-dead"]["layers_report"] if l["name"] == "fc1")
  assert removed["fc1"] == fc1["dead_inputs"]
  row = next(line for line in printed.splitlines() if line.startswith("| every-step, freeze dead"))
  assert f"| {removed['fc1']:,.1f} |" in row  # one seed: the mean alone
  assert (out / "schedules.md").read_text().strip() in printed
  assert (out / "schedules_pareto.png").read_bytes()[:4] == b"\x89PNG"
  # Run again: every run is read back, nothing trains.
  assert schedules.main(argv) == 0
