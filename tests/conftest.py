"""Shared test settings: the compilation cache, the hypothesis profile, a float64 fixture, tiny IDX data."""

import os
import pathlib

# Most of the suite's time is XLA compiling small programs: a persistent
# cache makes every run after the first reuse them (the command-line tests'
# subprocesses too, through the environment). Set before jax is imported.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(pathlib.Path(__file__).resolve().parents[1] / ".cache" / "jax-tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
# The tests run in several processes (pytest -n): on an accelerator none may
# take most of its memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import hypothesis  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

import fake_data  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])

hypothesis.settings.register_profile(
    "default", max_examples=40, deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.register_profile(
    "thorough", max_examples=1000, deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def x64():
  """Runs the test body with float64 enabled, then restores the default."""
  with jax.enable_x64(True):
    yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A folder of IDX files: 320 training and 64 test images of generated bars."""
  folder = tmp_path_factory.mktemp("idx")
  fake_data.idx_dataset(folder, train=320, test=64)
  return folder
