"""Projections onto the sparsity-inducing balls of Barlaud & Guyard (ICPR 2020).

Pure functions of ``(x, radius, ...)`` that work under ``jax.jit``,
``jax.vmap`` and ``jax.grad``. The balls return ``x`` unchanged when it is
already inside and zeros for radius 0; where a projection is not
differentiable, each docstring says which one-sided derivative it returns.

``l1_ball``, ``weighted_l1_ball``, ``l1_sphere``, ``simplex``, ``l2_ball`` and
``linf_ball`` treat ``x`` as one vector, an array or any pytree of arrays, as
``optax.projections`` does, and return its structure. The group balls
(``l21_ball``, ``l11_ball``, ``l1inf_ball``, ``bilevel_l1inf_ball``) take one
array and raise ``TypeError`` for anything else: stacking a sequence would
change which entries form a group. None of them knows about layers or Flax.

For a Flax kernel the group axes follow NumPy reductions: ``axis`` lists the
axes reduced inside one group, the other axes index the groups.

:mod:`sparse_optax.projections.warm` has the same projections in
warm-startable form (``warm.l11_ball``, … : :class:`warm_start.WarmStart`
pairs): a transformation that projects at every step passes each call's
search state to the next. The upper-case names (``L11_BALL``, ...) are the
same pairs under their earlier names.
"""

from sparse_optax.projections import validation
from sparse_optax.projections import warm
from sparse_optax.projections import warm_start
from sparse_optax.projections._groups import L11_BALL
from sparse_optax.projections._groups import L21_BALL
from sparse_optax.projections._groups import group_norms
from sparse_optax.projections._groups import l11_ball
from sparse_optax.projections._groups import l21_ball
from sparse_optax.projections._keep import group_count
from sparse_optax.projections._keep import keep_radius
from sparse_optax.projections._keep import kept_count
from sparse_optax.projections._l1 import L1_BALL
from sparse_optax.projections._l1 import WEIGHTED_L1_BALL
from sparse_optax.projections._l1 import l1_ball
from sparse_optax.projections._l1 import l1_sphere
from sparse_optax.projections._l1 import simplex
from sparse_optax.projections._l1 import weighted_l1_ball
from sparse_optax.projections._l2_linf import l2_ball
from sparse_optax.projections._l2_linf import linf_ball
from sparse_optax.projections._l1inf import BILEVEL_L1INF_BALL
from sparse_optax.projections._l1inf import L1INF_BALL
from sparse_optax.projections._l1inf import bilevel_l1inf_ball
from sparse_optax.projections._l1inf import l1inf_ball

__all__ = (
    "bilevel_l1inf_ball",
    "keep_radius",
    "l11_ball",
    "l1_ball",
    "l1_sphere",
    "l1inf_ball",
    "l21_ball",
    "l2_ball",
    "linf_ball",
    "simplex",
    "warm",
    "weighted_l1_ball",
)
