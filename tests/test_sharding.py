"""Data-parallel training on 8 simulated CPU devices matches one device."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).with_name("sharded_training.py")


@pytest.mark.slow
def test_eight_device_step_matches_one_device_and_keeps_sharding():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  run = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True,
                       text=True, timeout=300, check=True)
  result = json.loads(run.stdout.strip().splitlines()[-1])
  assert result["devices"] == 8 and result["shards"] == 8
  assert result["max_abs_diff"] < 1e-5
  assert result["sharding_kept"]
  assert result["dead_inputs"] > 0
  assert result["l11_norm"] <= 20.0 * (1 + 1e-5)


ROOT = pathlib.Path(__file__).resolve().parent.parent
EIGHT_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}


def _runner(args, out, *, wait=True):
  command = [sys.executable, "-m", "experiments", "run", *map(str, args), "--out", str(out)]
  env = dict(os.environ, PYTHONPATH=str(ROOT), **EIGHT_DEVICES)
  if not wait:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
  return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _lottery_on_bars(tmp_path, *, epochs):
  """Flags of a short ℓ1,1 lottery on generated bars, written to ``tmp_path``."""
  import fake_data
  fake_data.idx_dataset(tmp_path / "idx", train=320, test=64)
  return ["--model", "lenet300", "--dataset", "mnist", "--method", "pgl11", "--eta", "60",
          "--schedule", "lottery", "--epochs", epochs, "--retrain-epochs", epochs,
          "--batch-size", "32", "--no-verify", "--data-dir", tmp_path / "idx", "--quiet"]


@pytest.mark.slow
def test_the_runner_on_eight_devices_gives_the_one_device_result_and_resumes(tmp_path):
  args = _lottery_on_bars(tmp_path, epochs=2)
  results = {}
  for devices in (1, 8):
    done = _runner([*args, "--devices", devices], tmp_path / f"d{devices}")
    assert done.returncode == 0, done.stderr
    results[devices] = json.loads((tmp_path / f"d{devices}" / "result.json").read_text())
  one, eight = results[1], results[8]
  assert (one["devices"], eight["devices"]) == (1, 8)
  assert eight["platform"]["platform"] == "cpu"
  # The batch is split over the devices, so the sums of the gradients are
  # added in another order: the figures agree to float32 rounding, the mask exactly.
  assert eight["accuracy"] == one["accuracy"]
  assert eight["maccs_effective"] == one["maccs_effective"]
  assert [l["nonzero"] for l in eight["layers_report"]] == [l["nonzero"] for l in one["layers_report"]]
  np.testing.assert_allclose([h["loss"] for h in eight["history"]],
                             [h["loss"] for h in one["history"]], rtol=1e-5)
  np.testing.assert_allclose(eight["memory_kb"], one["memory_kb"], rtol=1e-4)

  out = tmp_path / "cut"
  process = _runner([*args, "--devices", 8], out, wait=False)
  deadline = time.monotonic() + 300
  while not (out / "checkpoints" / "1").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
  process.send_signal(signal.SIGINT)
  _, err = process.communicate(timeout=300)
  assert process.returncode == 130, err
  resumed = _runner([*args, "--devices", 8, "--resume"], out)
  assert resumed.returncode == 0, resumed.stderr
  again = json.loads((out / "result.json").read_text())
  for field in ("accuracy", "maccs_effective", "memory_kb", "nonzero_fraction", "devices"):
    assert again[field] == eight[field], field
  assert [h["loss"] for h in again["history"]] == [h["loss"] for h in eight["history"]]


@pytest.mark.slow
def test_a_batch_that_does_not_split_over_the_devices_is_one_line(tmp_path):
  done = _runner(["--model", "lenet300", "--dataset", "mnist", "--batch-size", "36",
                  "--devices", "8"], tmp_path / "run")
  assert done.returncode == 2
  assert done.stderr.strip() == ("error: --batch-size 36 does not split evenly over 8 devices")
  more = _runner(["--model", "lenet300", "--dataset", "mnist", "--devices", "9"], tmp_path / "run")
  assert more.returncode == 2 and "--devices must be in [1, 8]" in more.stderr
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_processes_on_this_host_train_as_one(tmp_path):
  import socket
  args = _lottery_on_bars(tmp_path, epochs=1)
  single = _runner([*args, "--devices", "1"], tmp_path / "single")
  assert single.returncode == 0, single.stderr
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  processes = []
  for process_id in (0, 1):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
               JAX_PROCESS_ID=str(process_id))
    processes.append(subprocess.Popen(
        [sys.executable, "-m", "experiments", "run", "--distributed", *map(str, args),
         "--out", str(tmp_path / "two")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  for process in processes:
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
  one = json.loads((tmp_path / "single" / "result.json").read_text())
  two = json.loads((tmp_path / "two" / "result.json").read_text())
  assert two["devices"] == 2
  assert two["accuracy"] == one["accuracy"] and two["maccs_effective"] == one["maccs_effective"]
  assert [l["nonzero"] for l in two["layers_report"]] == [l["nonzero"] for l in one["layers_report"]]
  np.testing.assert_allclose([h["loss"] for h in two["history"]],
                             [h["loss"] for h in one["history"]], rtol=1e-5)
