"""The projection benchmark runs end to end (its numbers are not asserted)."""

from experiments import bench_projections


def test_quick_benchmark_prints_its_tables(capsys):
  assert bench_projections.main(["--quick", "--repeats", "1"]) == 0
  out = capsys.readouterr().out
  assert "| 1e+04 |" in out and "| 256x256 |" in out and "l11 / l1" in out
