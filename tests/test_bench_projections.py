"""The projection benchmark runs end to end (its numbers are not asserted)."""

import importlib.util
import pathlib

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "bench_projections.py"


def test_quick_benchmark_prints_its_tables(capsys):
  spec = importlib.util.spec_from_file_location("bench_projections", SCRIPT)
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  assert bench.main(["--quick", "--repeats", "1"]) == 0
  out = capsys.readouterr().out
  assert "| 1e+04 |" in out and "| 256x256 |" in out and "l11 / l1" in out
