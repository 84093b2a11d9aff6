"""The benchmark scripts run end to end on small settings (numbers not asserted)."""

import pytest

from experiments import bench_compact, bench_projections, bench_step, bench_train, projection_passes


@pytest.mark.slow
def test_projection_benchmark_prints_its_tables(capsys):
  assert bench_projections.main(["--quick", "--repeats", "1"]) == 0
  out = capsys.readouterr().out
  assert "| 1e+04 |" in out and "| 256x256 |" in out and "l11_ball / floor" in out
  assert "## Group balls, float64 uniform[0, 1], beside the authors' C++" in out
  assert "| count (min/max/ceil) |" in out


@pytest.mark.slow
def test_step_benchmark_prints_its_table(capsys):
  assert bench_step.main(["--layers", "64,32,10", "--repeats", "1", "--train-steps", "1",
                          "--eta", "5"]) == 0
  out = capsys.readouterr().out
  assert "| adam + project_l11 |" in out and "project_l11 / adam after 1 steps" in out


@pytest.mark.slow
def test_compaction_benchmark_prints_its_table(capsys):
  assert bench_compact.main(["--etas", "30", "--batch", "8", "--repeats", "1"]) == 0
  assert "| 30 |" in capsys.readouterr().out


@pytest.mark.slow
def test_training_benchmark_prints_its_table(capsys):
  assert bench_train.main(["--examples", "256", "--rounds", "1", "--models", "lenet300"]) == 0
  out = capsys.readouterr().out
  assert "| lenet300 | adam + project_l11 |" in out and "runner / minimal" in out


@pytest.mark.slow
def test_pass_count_prints_its_table(capsys):
  assert projection_passes.main(["--quick"]) == 0
  out = capsys.readouterr().out
  assert "| l11_ball | 256x1024 | 0.1 |" in out and "resumed after a small step" in out
