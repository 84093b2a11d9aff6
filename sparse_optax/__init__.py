"""sparse_optax: structured sparsity for JAX by projection onto convex balls.

Barlaud & Guyard (ICPR 2020) train networks whose weight matrices are
projected, after each gradient step, onto an ℓ1, ℓ2,1 or bilevel ℓ1,1 ball;
whole neurons and filters vanish. This package brings the projections to JAX
(:mod:`sparse_optax.projections`).
"""

from sparse_optax import projections

__version__ = "0.1.0"

__all__ = ("projections",)
