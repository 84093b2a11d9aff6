"""Shared test settings: the hypothesis profile and a float64 fixture."""

import os

import hypothesis
import jax
import pytest

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
