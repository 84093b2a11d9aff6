"""The literature's sparsifiers as runner methods: schedules, exact zeros, resume."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import comparators, methods, runner, sweep
from experiments.progress import Progress


QUIET = Progress(quiet=True)
KERNELS = 784 * 300 + 300 * 100 + 100 * 10  # LeNet-300-100's constrained weights
BIASES = 300 + 100 + 10


def config(tiny, out, **changes):
  base = runner.RunConfig(model="lenet300", dataset="mnist", epochs=1, retrain_epochs=1,
                          batch_size=32, out=str(out), data_dir=str(tiny), verify_data=False)
  return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.05, 0.01])
def test_magnitude_rounds_reach_keep_exactly_at_20_percent_a_round(keep):
  rounds = comparators.magnitude_rounds(keep)
  fractions = [comparators.round_fraction(keep, i) for i in range(1, rounds + 1)]
  assert all(f == 0.2 for f in fractions[:-1]) and 0 < fractions[-1] <= 0.2
  assert math.isclose(math.prod(1 - f for f in fractions), keep, rel_tol=1e-12)
  assert 0.8 ** rounds <= keep < 0.8 ** (rounds - 1)


def test_gsef_keeps_a_share_of_each_layers_input_groups():
  assert comparators.groups_kept(0.1, (784, 300)) == 79
  assert comparators.groups_kept(0.1, (5, 5, 10, 20)) == 1  # conv: input channels
  assert comparators.groups_kept(0.001, (100, 10)) == 1


def kernel_nonzeros(result) -> int:
  # Biases are trained, never pruned, and not exactly zero after Adam.
  return sum(layer["nonzero"] for layer in result["layers_report"]) - BIASES


@pytest.mark.slow
@pytest.mark.parametrize("method,eta", [("halo", 1e-4), ("l1_over_l2", 1e-3), ("magnitude", None)])
def test_pruning_methods_end_with_keep_of_the_weights(tiny, tmp_path, method, eta):
  result = runner.run(config(tiny, tmp_path / method, method=method, eta=eta, keep=0.1),
                      progress=QUIET)
  rounds = comparators.magnitude_rounds(0.1) if method == "magnitude" else 1
  assert abs(kernel_nonzeros(result) - 0.1 * KERNELS) <= rounds  # half-up rounding per round
  assert result["epochs_total"] == 1 + (rounds if method == "magnitude" else 0)
  assert 0 < result["accuracy"] <= 1 and 0 < result["accuracy_before_pruning"] <= 1
  assert result["maccs_effective"] <= result["maccs_dense"]


@pytest.mark.slow
def test_gsef_ends_with_k_groups_per_layer(tiny, tmp_path):
  result = runner.run(config(tiny, tmp_path / "gsef", method="gsef", eta=1e-3, keep=0.1),
                      progress=QUIET)
  by_name = {layer["name"]: layer for layer in result["layers_report"]}
  # A removed input group of fc2 (fc3) is a dead output of fc1 (fc2); fc1's
  # removed groups are input pixels.
  assert 784 - by_name["fc1"]["dead_inputs"] <= comparators.groups_kept(0.1, (784, 300))
  assert 300 - by_name["fc2"]["dead_inputs"] <= comparators.groups_kept(0.1, (300, 100))
  assert 100 - by_name["fc3"]["dead_inputs"] <= comparators.groups_kept(0.1, (100, 10))
  assert result["maccs_effective"] < 0.05 * result["maccs_dense"]


@pytest.mark.slow
def test_gsef_prox_alone_zeroes_groups_that_adam_keeps(tiny, tmp_path):
  adam = runner.run(config(tiny, tmp_path / "adam", epochs=2), progress=QUIET)
  gsef = runner.run(config(tiny, tmp_path / "gsef", method="gsef", eta=50.0, keep=0.1, epochs=2),
                    progress=QUIET)
  # The last epoch's record is taken before GSEF's final top-k zeroing.
  assert adam["history"][-1]["nonzero_fraction"] == 1.0
  assert gsef["history"][-1]["nonzero_fraction"] < 0.9


class Kill(Exception):
  pass


@pytest.mark.slow
@pytest.mark.parametrize("method,eta", [("halo", 1e-4), ("magnitude", None)])
def test_interrupted_and_resumed_equals_uninterrupted(tiny, tmp_path, method, eta):
  settings = dict(method=method, eta=eta, keep=0.5, lr_schedule="cosine", epochs=2)
  whole = runner.run(config(tiny, tmp_path / "whole", **settings), progress=QUIET)

  def kill_after_second(epoch):  # halo: mid-training; magnitude: after the first round
    if epoch == 2 + (method == "magnitude"):
      raise Kill

  cut = config(tiny, tmp_path / "cut", **settings)
  with pytest.raises(Kill):
    runner.run(cut, progress=QUIET, after_epoch=kill_after_second)
  resumed = runner.run(cut, resume=True, progress=QUIET)
  for field in ("accuracy", "accuracy_before_pruning", "maccs_effective", "memory_kb",
                "nonzero_fraction", "neurons_removed"):
    assert resumed[field] == whole[field], field
  assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in whole["history"]]


def test_magnitude_in_a_sweep_has_no_radius(tiny, tmp_path):
  base = config(tiny, tmp_path, keep=0.5)
  configs = sweep.grid(base, ("adam", "magnitude", "halo"), (1e-4,), (0,), tmp_path)
  assert [(c.method, c.eta) for c in configs] == [("adam", None), ("magnitude", None),
                                                  ("halo", 1e-4)]
  assert [sweep.run_name(c) for c in configs] == ["adam_seed0", "magnitude_seed0",
                                                  "halo_eta0.0001_seed0"]


@pytest.mark.parametrize("argv,message", [
    (["--method", "halo"], "needs --eta (its strength)"),
    (["--method", "magnitude", "--keep", "0"], "--keep must be in (0, 1]"),
    (["--method", "gsef", "--eta", "1", "--layer-eta", "fc1=2"], "--layer-eta needs a projection"),
])
def test_bad_comparator_flags(argv, message, capsys):
  from experiments import cli
  code = cli.main(["run", "--model", "lenet300", "--dataset", "mnist", *argv])
  assert code == 2 and message in capsys.readouterr().err


def test_halo_scales_move_and_penalty_is_the_library_one(tiny):
  params = {"fc1": {"kernel": np.full((2, 3), 0.5, np.float32), "bias": np.zeros(3, np.float32)}}
  scales = comparators.halo_initial_scales(params, ("fc1",))
  penalty = comparators.halo_penalty(0.01, ("fc1",))
  # ξ Σ|w|/λ² + ψ Σ|λ| with ξ = ψ = 0.01, λ = 1: 0.01 * (6 * 0.5 + 6).
  np.testing.assert_allclose(penalty(params, scales), 0.01 * (3.0 + 6.0), rtol=1e-6)
  assert methods.METHODS["magnitude"].penalty is None


def test_gsef_strength_follows_the_learning_rate():
  rate = optax.cosine_decay_schedule(1e-3, 10)
  step = comparators.gsef_step(2.0, 0.5, ("fc1",), rate)
  params = {"fc1": {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}}
  state = step.init(params)
  update = jax.jit(step.update)
  for count in range(6):  # the state holds the strength its last update used
    _, state = update(jax.tree.map(jnp.zeros_like, params), state, params)
    np.testing.assert_allclose(state.hyperparams["strength"], 2.0 * rate(count), rtol=1e-6)
