"""Projections onto the sparsity-inducing balls of Barlaud & Guyard (ICPR 2020).

Pure array functions: one array in, one array of the same shape and dtype out.
Each takes ``(x, radius, ...)``, works under ``jax.jit``, ``jax.vmap`` and
``jax.grad``, returns ``x`` unchanged when it is already inside the ball and
zeros for radius 0. None of them knows about pytrees, layers or Flax.

For a Flax kernel the group axes follow NumPy reductions: ``axis`` lists the
axes reduced inside one group, the other axes index the groups.

The upper-case names (``L11_BALL``, ...) are the same projections in
warm-startable form (:class:`warm_start.WarmStart`): a transformation that
projects at every step passes each call's search state to the next.
"""

from sparse_optax.projections import validation
from sparse_optax.projections import warm_start
from sparse_optax.projections._groups import L11_BALL
from sparse_optax.projections._groups import L21_BALL
from sparse_optax.projections._groups import group_norms
from sparse_optax.projections._groups import l11_ball
from sparse_optax.projections._groups import l21_ball
from sparse_optax.projections._l1 import L1_BALL
from sparse_optax.projections._l1 import WEIGHTED_L1_BALL
from sparse_optax.projections._l1 import l1_ball
from sparse_optax.projections._l1 import weighted_l1_ball
from sparse_optax.projections._l1inf import BILEVEL_L1INF_BALL
from sparse_optax.projections._l1inf import L1INF_BALL
from sparse_optax.projections._l1inf import bilevel_l1inf_ball
from sparse_optax.projections._l1inf import l1inf_ball

__all__ = (
    "BILEVEL_L1INF_BALL",
    "L11_BALL",
    "L1INF_BALL",
    "L1_BALL",
    "L21_BALL",
    "WEIGHTED_L1_BALL",
    "bilevel_l1inf_ball",
    "group_norms",
    "l11_ball",
    "l1_ball",
    "l1inf_ball",
    "l21_ball",
    "weighted_l1_ball",
)
