"""Data-parallel training on 8 simulated CPU devices matches one device."""

import json
import os
import pathlib
import subprocess
import sys

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
