r"""The literature's comparators: HALO, GSEF, ℓ1/ℓ2, and magnitude pruning.

Pure functions over arrays and pytrees, plus one Optax transformation (GSEF's
proximal step), so that the methods the paper is measured against run in the
same training loop as the projections. One module per method:

* :mod:`~sparse_optax.regularizers.halo` (Seto et al. 2020): a differentiable
  penalty with per-weight trainable scales, added to the loss;
  :func:`halo_penalty`, :func:`halo_scales`, :func:`halo_optimal_scales`; ends
  with global magnitude pruning, :func:`prune_by_magnitude`.
* :mod:`~sparse_optax.regularizers.gsef` (Refael et al. 2022): a proximal step
  on the sparse envelope of the group norms, :func:`gsef`, built on the exact
  k-support prox :func:`ksupport_prox`; ends by keeping the k largest groups,
  :func:`keep_top_groups`.
* :mod:`~sparse_optax.regularizers.l1_over_l2` (Berthelier et al. 2020): a
  scale-invariant penalty added to the loss, :func:`l1_over_l2_penalty`,
  :func:`tree_l1_over_l2_penalty`.
* Magnitude pruning and the lottery ticket (Frankle & Carbin 2019) live in
  :mod:`sparse_optax.pruning`, beside :mod:`sparse_optax.lottery`; its
  functions are re-exported here.

Groups follow :mod:`sparse_optax.projections`: ``axis`` lists the axes reduced
inside one group, the other axes index the groups; the pytree functions take
``groups="in"``/``"out"`` like the projecting transformations. Their leaf
selection is :mod:`sparse_optax.selection`'s and their static checks are
:mod:`sparse_optax.projections.validation`'s, as everywhere in the library.
"""

from sparse_optax.pruning import magnitude_mask
from sparse_optax.pruning import prune_by_magnitude
from sparse_optax.regularizers.gsef import group_sparse_envelope
from sparse_optax.regularizers.gsef import group_sparse_envelope_prox
from sparse_optax.regularizers.gsef import gsef
from sparse_optax.regularizers.gsef import keep_top_groups
from sparse_optax.regularizers.gsef import ksupport_norm
from sparse_optax.regularizers.gsef import ksupport_prox
from sparse_optax.regularizers.gsef import sparse_envelope
from sparse_optax.regularizers.gsef import tree_keep_top_groups
from sparse_optax.regularizers.halo import halo_optimal_scales
from sparse_optax.regularizers.halo import halo_penalty
from sparse_optax.regularizers.halo import halo_scales
from sparse_optax.regularizers.l1_over_l2 import l1_over_l2_penalty
from sparse_optax.regularizers.l1_over_l2 import tree_l1_over_l2_penalty

__all__ = (
    "group_sparse_envelope",
    "group_sparse_envelope_prox",
    "gsef",
    "halo_optimal_scales",
    "halo_penalty",
    "halo_scales",
    "keep_top_groups",
    "ksupport_norm",
    "ksupport_prox",
    "l1_over_l2_penalty",
    "magnitude_mask",
    "prune_by_magnitude",
    "sparse_envelope",
    "tree_keep_top_groups",
    "tree_l1_over_l2_penalty",
)
