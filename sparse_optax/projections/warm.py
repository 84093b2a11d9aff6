"""The projections in warm-startable form, for callers that project repeatedly.

Each name is a :class:`~sparse_optax.projections.warm_start.WarmStart` pair
``(cold, project)`` of the public function of the same name:
``state = l11_ball.cold(x, axis=...)`` starts a search and
``y, state = l11_ball.project(x, radius, state, axis=...)`` projects and
returns the state the next call starts from. A transformation that projects
after every training step (:mod:`sparse_optax.transforms`) passes each call's
state to the next; any state gives the exact projection, a good one saves
passes over ``x``.

Example:
  >>> import jax.numpy as jnp
  >>> from sparse_optax.projections import warm
  >>> x = jnp.array([[3.0, 0.0], [1.0, 1.0]])
  >>> state = warm.l11_ball.cold(x, axis=(1,))
  >>> y, state = warm.l11_ball.project(x, 2.0, state, axis=(1,))
  >>> y
  Array([[1.5 , 0.  ],
         [0.25, 0.25]], dtype=float32)
"""

from sparse_optax.projections._groups import L11_BALL as l11_ball
from sparse_optax.projections._groups import L21_BALL as l21_ball
from sparse_optax.projections._l1 import L1_BALL as l1_ball
from sparse_optax.projections._l1 import WEIGHTED_L1_BALL as weighted_l1_ball
from sparse_optax.projections._l1inf import BILEVEL_L1INF_BALL as bilevel_l1inf_ball
from sparse_optax.projections._l1inf import L1INF_BALL as l1inf_ball

__all__ = ("bilevel_l1inf_ball", "l11_ball", "l1_ball", "l1inf_ball", "l21_ball",
           "weighted_l1_ball")
