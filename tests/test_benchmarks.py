"""The benchmark scripts run end to end on small settings (numbers not asserted)."""

import re

import pytest

from experiments.benchmarks import (commits, compact, interrupt_latency, projection_passes,
                                    projections, step, train)


@pytest.mark.slow
def test_projection_benchmark_prints_its_tables(capsys):
  assert projections.main(["--quick", "--repeats", "1"]) == 0
  out = capsys.readouterr().out
  assert "| 1e+04 |" in out and "| 256x256 | l11_ball |" in out and "max deviation" in out
  # Every timed projection row carries its deviation from the exact projection.
  for line in out.splitlines():
    if line.startswith("| 256x256 | l") or line.startswith("| 1e+04 | l1_ball"):
      assert re.fullmatch(r"\d\.\de[-+]\d\d", line.rstrip(" |").split("|")[-1].strip()), line
  assert "## Group balls, float64 uniform[0, 1], beside the authors' C++" in out
  assert "| count (min/max/ceil) |" in out


@pytest.mark.slow
def test_step_benchmark_prints_its_table(capsys):
  assert step.main(["--layers", "64,32,10", "--repeats", "1", "--train-steps", "1",
                          "--eta", "5"]) == 0
  out = capsys.readouterr().out
  assert "| adam + project_l11 |" in out and "project_l11 / adam after 1 steps" in out


@pytest.mark.slow
def test_compaction_benchmark_prints_its_table(capsys):
  assert compact.main(["--etas", "30", "--batch", "8", "--repeats", "1"]) == 0
  assert "| 30 |" in capsys.readouterr().out


@pytest.mark.slow
def test_training_benchmark_prints_its_table(capsys):
  assert train.main(["--examples", "256", "--rounds", "1", "--models", "lenet300"]) == 0
  out = capsys.readouterr().out
  assert "| lenet300 | adam + project_l11 |" in out and "runner / minimal" in out


@pytest.mark.slow
def test_pass_count_prints_its_table(capsys):
  assert projection_passes.main(["--quick"]) == 0
  out = capsys.readouterr().out
  assert "| l11_ball | 256x1024 | 0.1 |" in out and "resumed after a small step" in out


@pytest.mark.slow
def test_commit_comparison_prints_its_table(capsys):
  assert commits.main(["--against", "HEAD", "--rounds", "1", "--cases", "784x768"]) == 0
  out = capsys.readouterr().out
  assert "| l11_ball 784x768 |" in out and "| HEAD ms | dev | ratio |" in out


@pytest.mark.slow
def test_interrupt_latency_stops_a_run_with_status_130(tiny, capsys):
  # 320 training images: two steps an epoch, so the third epoch is still
  # running when the signal comes after the bar's second update.
  assert interrupt_latency.main(["--data-dir", str(tiny), "--models", "lenet300",
                                 "--repeats", "1", "--timeout", "300", "--no-verify"]) == 0
  out = capsys.readouterr().out
  assert re.search(r"\| lenet300 \| \d+\.\d\d \| \d+\.\d\d \| 130 \|", out), out
