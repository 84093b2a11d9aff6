"""Shared test settings: the hypothesis profile, a float64 fixture, tiny IDX data."""

import os

import hypothesis
import jax
import pytest

import fake_data

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
