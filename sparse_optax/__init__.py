"""sparse_optax: structured sparsity for JAX by projection onto convex balls.

Barlaud & Guyard (ICPR 2020) train networks whose weight matrices are
projected, after each gradient step, onto an ℓ1, ℓ2,1 or bilevel ℓ1,1 ball;
whole neurons and filters vanish. This package brings the projections to JAX
(:mod:`sparse_optax.projections`) as Optax transformations::

  tx = optax.chain(optax.adam(1e-3), sparse_optax.project_l11(eta=400.0))

the lottery stage as one transformation (:func:`sparse_optax.lottery_ticket`)
or as pure functions (:mod:`sparse_optax.lottery`), the paper's networks in Flax
NNX (:mod:`sparse_optax.models`), honest MACC and memory figures
(:mod:`sparse_optax.metrics`) and physical removal of dead units
(:func:`sparse_optax.compact`), for the paper's networks and for any NNX model,
whose removable units :mod:`sparse_optax.structure` traces.
"""

from sparse_optax import lottery
from sparse_optax import metrics
from sparse_optax import models
from sparse_optax import projections
from sparse_optax import compaction
from sparse_optax import pruning
from sparse_optax import regularizers
from sparse_optax import structure
from sparse_optax.compaction import compact
from sparse_optax.lottery import LotteryTicketState
from sparse_optax.lottery import lottery_ticket
from sparse_optax.transforms import ProjectionState
from sparse_optax.transforms import apply_mask
from sparse_optax.transforms import project_bilevel_l1inf
from sparse_optax.transforms import project_l1
from sparse_optax.transforms import project_l11
from sparse_optax.transforms import project_l1inf
from sparse_optax.transforms import project_l21
from sparse_optax.transforms import project_weighted_l1

__version__ = "0.1.0"

__all__ = (
    "LotteryTicketState",
    "ProjectionState",
    "apply_mask",
    "compact",
    "compaction",
    "lottery",
    "lottery_ticket",
    "metrics",
    "models",
    "project_bilevel_l1inf",
    "project_l1",
    "project_l11",
    "project_l1inf",
    "project_l21",
    "project_weighted_l1",
    "projections",
    "pruning",
    "regularizers",
    "structure",
)
