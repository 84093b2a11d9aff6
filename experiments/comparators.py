"""The literature's sparsifiers as runner methods, on the projections' footing.

Each method trains with Adam on the same data, layers and epochs as the
projections, then ends as its paper does, with the step that turns what it
shrank into exact zeros, so its sparsity is real and counted:

* ``halo`` (Seto et al. 2020): loss + ξ Σ|w|/λ² + ψ Σ|λ| with ξ = ψ = ``eta``,
  the per-weight scales λ trained by their own SGD (rate 0.1, momentum 0.9,
  as in the reference code); then global magnitude
  pruning to the ``keep`` fraction of the constrained weights, no fine-tuning.
* ``l1_over_l2`` (Berthelier et al. 2020): loss + ``eta`` Σ_g ‖w_g‖₁/‖w_g‖₂,
  one group per output neuron or filter; then the same global pruning.
* ``gsef`` (Refael et al. 2022): after each Adam step, the proximal step of
  the sparse envelope of the group norms (one group per input feature, as the
  projections) at strength ``eta`` × the learning rate of that step (proximal
  gradient descent on loss + ``eta`` × the envelope), k = ⌈``keep`` ×
  groups⌉ per layer; then all but the k largest groups are zeroed.
* ``magnitude`` (Frankle & Carbin 2019): train, then rounds of "remove 20 % of
  the surviving constrained weights by global magnitude, rewind to the initial
  values, retrain ``retrain_epochs``" until ``keep`` of them remain (the last
  round removes what is left to reach it exactly).
"""

from __future__ import annotations

import math
from typing import Callable

import jax.numpy as jnp
import numpy as np
import optax

from sparse_optax import pruning
from sparse_optax import regularizers
from sparse_optax import structure

COMPARATORS = ("halo", "gsef", "l1_over_l2", "magnitude")
PRUNING_PER_ROUND = 0.2
# HALO's scales train by their own SGD with momentum, at the reference code's
# default rate and momentum, whatever optimizer trains the weights.
HALO_SCALES_OPTIMIZER = optax.sgd(0.1, momentum=0.9)
# HALO's scales sit in a denominator; the floor keeps a scale pushed through 0
# by Adam from dividing by zero (the reference code has no such guard).
HALO_SCALE_FLOOR = 1e-3


def magnitude_rounds(keep: float) -> int:
  """How many 20 % rounds bring the surviving fraction down to ``keep``."""
  if keep >= 1:
    return 0
  return max(1, math.ceil(math.log(keep) / math.log(1 - PRUNING_PER_ROUND) - 1e-9))


def round_fraction(keep: float, round_index: int) -> float:
  """The share of survivors removed in round ``round_index`` (1-based): 20 %, and
  in the last round whatever reaches ``keep`` exactly."""
  rounds = magnitude_rounds(keep)
  if round_index < rounds:
    return PRUNING_PER_ROUND
  return 1 - keep / (1 - PRUNING_PER_ROUND) ** (rounds - 1)


def groups_kept(keep: float, kernel_shape) -> int:
  """GSEF's k for one kernel: ⌈keep × input features⌉, at least 1."""
  return max(1, math.ceil(keep * kernel_shape[-2]))


def kernels(params, layers) -> dict:
  """``{layer: kernel}`` of the constrained layers."""
  return {name: params[name]["kernel"] for name in layers}


def l1_over_l2_penalty(eta: float, layers) -> Callable:
  """``penalty(params, scales)``: ``eta`` × Σ_g ‖w_g‖₁/‖w_g‖₂, a group per output."""
  def penalty(params, scales):
    del scales
    return eta * regularizers.tree_l1_over_l2_penalty(kernels(params, layers), groups="out")
  return penalty


def halo_penalty(eta: float, layers) -> Callable:
  """``penalty(params, scales)``: HALO's, ξ = ψ = ``eta``, the scales floored."""
  def penalty(params, scales):
    floored = {name: jnp.maximum(jnp.abs(s), HALO_SCALE_FLOOR) for name, s in scales.items()}
    return regularizers.halo_penalty(kernels(params, layers), floored, eta, eta)
  return penalty


def halo_initial_scales(params, layers) -> dict:
  """One scale per constrained weight, 1 as in the reference code."""
  return regularizers.halo_scales(kernels(params, layers))


def gsef_step(eta: float, keep: float, layers, learning_rate) -> optax.GradientTransformation:
  """GSEF's proximal step, chained after Adam: at step t its strength is
  ``eta`` × the learning rate at t, the step size of proximal gradient descent
  on loss + ``eta`` × the sparse envelope of the group norms."""
  strength = (lambda count: eta * learning_rate(count)) if callable(learning_rate) else (
      eta * learning_rate)
  return optax.inject_hyperparams(regularizers.gsef, static_args=("k",))(
      k=_group_counts(keep, layers), strength=strength)


def _group_counts(keep: float, layers) -> Callable:
  return lambda path, leaf: (groups_kept(keep, np.shape(leaf))
                             if structure.layer_name(path) in layers and np.ndim(leaf) >= 2
                             else None)


def prune_globally(keep: float, params, selected):
  """HALO's and ℓ1/ℓ2's last step: all but the ``keep`` fraction of the
  selected weights with the largest magnitudes set to zero."""
  return pruning.prune_by_magnitude(params, fraction=1 - keep, selected=selected)


def keep_top_groups(keep: float, params, layers):
  """GSEF's last step: all but the k largest groups of each layer zeroed."""
  return regularizers.tree_keep_top_groups(params, _group_counts(keep, layers))


def next_mask(keep: float, round_index: int, params, mask, selected):
  """Magnitude pruning's mask after round ``round_index``."""
  return pruning.magnitude_mask(params, round_fraction(keep, round_index), mask,
                                     selected=selected)
