"""Euclidean projections onto the ℓ1 ball and the weighted ℓ1 ball."""

from __future__ import annotations

import functools

import jax
from jax import flatten_util
from jax import lax
import jax.numpy as jnp

from sparse_optax.projections import validation
from sparse_optax.projections import _threshold
from sparse_optax.projections import warm_start


def simplex_magnitudes(a, radius, start=None, method="auto", signs_of=None):
  r"""``(p, θ)``: the projection of the vector ``a`` onto :math:`\{p \ge 0,\ \sum p = r\}`.

  ``a`` may hold any real values (``-inf`` included); the solution is
  :math:`p = (a - \tau)_+`. The search runs on :math:`b = a - \beta` for a
  lower bound :math:`\beta` of :math:`\tau`, the tightest at hand, so that
  :math:`b` is rounded no coarser than :math:`p`: :math:`\beta = 0` when
  :math:`r \ge \max a` and :math:`\sum a_+ \ge r` (then :math:`b = a`
  exactly), else the larger of :math:`\max a - r` (the largest entry alone
  holds at most :math:`r`; :math:`b` is then formed as
  :math:`(a - \max a) + r`, so the largest entry sits at exactly :math:`r`
  even when :math:`\max a \gg r`: float32 at 1e9 with :math:`r = 1` still
  returns a vertex) and :math:`(\sum a - r)/n` (all entries active at most).
  ``θ = τ − β`` is the search state a warm start resumes. With ``signs_of``,
  ``p`` takes the signs of that array (``+`` at its zeros), in the same pass.
  Non-finite input follows :data:`~sparse_optax.projections.validation.NON_FINITE`.
  """
  top = jnp.max(a)
  positive_total = jnp.sum(jnp.maximum(a, 0))
  unshifted = (radius >= top) & (positive_total >= radius)
  factor = validation.non_finite_factor(positive_total, radius, a.dtype)
  return shifted_simplex_magnitudes(a, radius, top, jnp.sum(a), unshifted, start, method,
                                    signs_of, factor)


def shifted_simplex_magnitudes(a, radius, top, total, unshifted, start, method, signs_of,
                               factor):
  """:func:`simplex_magnitudes` given ``top = max a``, ``total = Σ a``, whether
  ``β = 0``, and the non-finite ``factor`` (1 or NaN) the result is multiplied by."""

  def solve(b):
    theta = _threshold.l1_threshold(b, radius, (0,), method, start)
    kept = b - theta
    if signs_of is not None:
      kept = jnp.where(signs_of < 0, -kept, kept)
    # `where`, not `maximum`: at b == θ the derivative is the dropped side's,
    # 0, where `maximum` would split it in halves. A NaN compares false and
    # stays NaN. The factor joins the same output loop.
    return jnp.where(b <= theta, 0, kept) * factor, theta

  def shifted():
    mean_bound = (total - radius) / a.size
    b = jnp.where(top - radius >= mean_bound, (a - top) + radius, a - mean_bound)
    return solve(jnp.maximum(b, 0))

  # A branch, not a select: the common case reads `a` as it is.
  return lax.cond(unshifted, lambda: solve(a), shifted)


def _l1_ball_from(x, radius, start, method="auto", by_rank=False):
  dtype = validation.compute_dtype(x.dtype)
  flat = x.reshape(-1).astype(dtype)
  a = jnp.abs(flat)
  if by_rank:
    # `radius` is the number of entries to keep: the threshold is the next
    # largest magnitude (see keep_radius), read off, not searched.
    theta = _threshold.rank_threshold(a, radius).reshape(1)
    projected = jnp.where(theta > 0, _threshold.soft_threshold(flat, theta), flat)
    projected = validation.poison_non_finite(projected, jnp.sum(a), 0)
    return projected.reshape(x.shape).astype(x.dtype), theta
  r = jnp.maximum(jnp.asarray(radius, dtype), 0)
  top, total = jnp.max(a), jnp.sum(a)

  def project():
    # Outside the ball Σ a > r, so no shift is needed when r >= max a. A
    # non-finite sum or radius always comes this way (the comparison fails).
    return shifted_simplex_magnitudes(a, r, top, total, r >= top, start, method, flat,
                                      validation.non_finite_factor(total, r, dtype))

  # Inside the ball (boundary included) the result is x itself, and so is the
  # derivative: the identity, also at entries that are exactly 0. No search.
  projected, theta = lax.cond(total <= r, lambda: (flat, jnp.zeros((1,), dtype)), project)
  return projected.reshape(x.shape).astype(x.dtype), theta


def _scalar_cold(x, *_, **__):
  """Cold search state of one threshold over a whole vector."""
  return jnp.full((1,), jnp.nan, validation.compute_dtype(x.dtype))


L1_BALL, _l1_ball = warm_start.ball(_l1_ball_from, _scalar_cold, ("method", "by_rank"), vector=True)


def l1_ball(x, radius, *, method: str = "auto"):
  r"""Euclidean projection of ``x`` onto the ℓ1 ball of the given radius.

  .. math::

    \underset{p}{\operatorname{argmin}} \ \tfrac12 \|p - x\|_2^2
    \quad \text{subject to} \quad \|p\|_1 \le r

  The solution is a soft threshold, :math:`p = \operatorname{sign}(x)
  (|x| - \theta)_+`, with :math:`\theta \ge 0` the root of
  :math:`\sum_i (|x_i| - \theta)_+ = r` (0 when ``x`` is inside the ball).
  Outside the ball the result lies on the sphere, :math:`\|p\|_1 = r`, even
  when :math:`\|x\|_1 \gg r` in float32 (see :func:`simplex`).

  ``x`` is one vector: an array of any shape, or any pytree of arrays, as in
  ``optax.projections``; use :func:`l11_ball` or :func:`l21_ball` for one
  constraint per group. The function is jit-, vmap- and grad-compatible. Where
  the projection is not differentiable the derivative is one-sided: inside the
  ball and on its boundary it is the identity (also at entries equal to 0), an
  entry exactly at the threshold counts as dropped.

  Args:
    x: real floating array of any shape, or a pytree of them.
    radius: scalar radius :math:`r \ge 0`. A Python number below 0 raises; a
      traced radius below 0 behaves as 0.
    method: ``"newton"`` (Michelot's fixed point safeguarded by bisection: a
      few streaming passes, the fastest measured on CPU), ``"sort"``
      (sort-and-threshold, Duchi et al. 2008, O(n log n); the fastest measured
      on a GPU) or ``"auto"`` (default: the faster of the two on JAX's
      default backend).

  Returns:
    The projection, with ``x``'s structure, shapes and dtypes. ``x`` itself
    when it is already inside the ball, zeros when ``radius`` is 0.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import l1_ball
    >>> l1_ball(jnp.array([3.0, -2.0, 0.5]), 3.0)
    Array([ 2., -1.,  0.], dtype=float32)
    >>> l1_ball({"w": jnp.array([3.0, -2.0]), "b": jnp.array([0.5])}, 3.0)
    {'b': Array([0.], dtype=float32), 'w': Array([ 2., -1.], dtype=float32)}

  References:
    Duchi, Shalev-Shwartz, Singer & Chandra, "Efficient projections onto the
    ℓ1-ball for learning in high dimensions", ICML 2008. Condat, "Fast
    projection onto the simplex and the ℓ1 ball", Math. Program. 2016.
  """
  return validation.vector_call(_l1_ball, x, radius, "l1_ball", solver=method)


@functools.partial(jax.jit, static_argnames="method")
def _l1_sphere(tree, radius, method):
  flat, unravel = flatten_util.ravel_pytree(tree)
  dtype = validation.compute_dtype(flat.dtype)
  v = flat.astype(dtype)
  r = jnp.maximum(jnp.asarray(radius, dtype), 0)
  # A zero entry that the sphere makes nonzero takes the positive sign.
  return unravel(simplex_magnitudes(jnp.abs(v), r, None, method, v)[0].astype(flat.dtype))


def l1_sphere(x, radius, *, method: str = "auto"):
  r"""Euclidean projection of ``x`` onto the ℓ1 sphere :math:`\{p : \|p\|_1 = r\}`.

  :math:`p = s \odot \operatorname{simplex}(|x|, r)` with :math:`s` the signs
  of ``x`` (+1 for zero entries). Unlike :func:`l1_ball`, a point inside the
  ball moves out to the sphere (every entry grows by the same amount).
  ``x`` is one vector: an array or any pytree of arrays. Derivatives as in
  :func:`simplex`.

  Args:
    x: real floating array of any shape, or a pytree of them.
    radius: scalar radius :math:`r \ge 0` (a traced negative radius acts as 0).
    method: ``"auto"`` (default), ``"newton"`` or ``"sort"``, as in :func:`l1_ball`.

  Returns:
    A point of the sphere nearest to ``x``, with ``x``'s structure, shapes and
    dtypes.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import l1_sphere
    >>> l1_sphere(jnp.array([0.5, -0.25, 0.0]), 1.5)
    Array([ 0.75, -0.5 ,  0.25], dtype=float32)
  """
  return validation.vector_call(_l1_sphere, x, radius, "l1_sphere", solver=method)


@functools.partial(jax.jit, static_argnames="method")
def _simplex(tree, radius, method):
  flat, unravel = flatten_util.ravel_pytree(tree)
  dtype = validation.compute_dtype(flat.dtype)
  r = jnp.maximum(jnp.asarray(radius, dtype), 0)
  return unravel(simplex_magnitudes(flat.astype(dtype), r, None, method)[0].astype(flat.dtype))


def simplex(x, radius=1.0, *, method: str = "auto"):
  r"""Euclidean projection of ``x`` onto the simplex :math:`\{p \ge 0,\ \sum_i p_i = r\}`.

  The solution is :math:`p = (x - \theta)_+` with :math:`\theta` (of any sign)
  the root of :math:`\sum_i (x_i - \theta)_+ = r`. The search works relative to
  :math:`\max x`, so entries of ``-inf`` get 0 and float32 inputs of size 1e9
  still give a point of the simplex (a vertex). ``x`` is one vector: an array
  or any pytree of arrays.

  The Jacobian is :math:`\operatorname{diag}(s) - s s^\top / |s|` on the
  support :math:`s = [p > 0]`; an entry exactly at the threshold counts as
  outside the support.

  Args:
    x: real floating array of any shape, or a pytree of them.
    radius: scalar :math:`r \ge 0` (default 1: the probability simplex; a
      traced negative radius acts as 0).
    method: ``"auto"`` (default), ``"newton"`` or ``"sort"``, as in :func:`l1_ball`.

  Returns:
    The projection, with ``x``'s structure, shapes and dtypes.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import simplex
    >>> simplex(jnp.array([0.5, 2.0, -1.0]))
    Array([0., 1., 0.], dtype=float32)
    >>> simplex(jnp.array([1.0, 1.5, -1.0]), 1.5)
    Array([0.5, 1. , 0. ], dtype=float32)

  References:
    Held, Wolfe & Crowder, "Validation of subgradient optimization", Math.
    Program. 1974; Condat, Math. Program. 2016.
  """
  return validation.vector_call(_simplex, x, radius, "simplex", solver=method)


def _weighted_l1_ball_from(x, radius, start, weights, method="auto"):
  dtype = validation.compute_dtype(x.dtype)
  flat = x.reshape(-1).astype(dtype)
  w = jnp.maximum(jnp.asarray(weights).reshape(-1).astype(dtype), 0)
  r = jnp.maximum(jnp.asarray(radius, dtype), 0)
  a = jnp.abs(flat)
  theta = _threshold.weighted_l1_threshold(a, w, r, (0,), method, start)
  # Inside the ball θ is exactly 0: return x, whose derivative is the identity.
  projected = jnp.where(theta > 0, _threshold.soft_threshold(flat, theta, w), flat)
  # One more reduction, for the non-finite convention (unconstrained entries
  # never reach the search).
  projected = validation.poison_non_finite(projected, jnp.sum(a), r)
  return projected.reshape(x.shape).astype(x.dtype), theta


WEIGHTED_L1_BALL, _weighted_l1_ball = warm_start.ball(_weighted_l1_ball_from, _scalar_cold,
                                                      ("method",), vector=True)


def weighted_l1_ball(x, radius, weights, *, method: str = "auto"):
  r"""Euclidean projection of ``x`` onto the weighted ℓ1 ball.

  .. math::

    \underset{p}{\operatorname{argmin}} \ \tfrac12 \|p - x\|_2^2
    \quad \text{subject to} \quad \sum_i w_i |p_i| \le r

  The solution is :math:`p_i = \operatorname{sign}(x_i)(|x_i| - \theta w_i)_+`
  with :math:`\theta` the root of :math:`\sum_i w_i(|x_i| - \theta w_i)_+ = r`.
  An entry with weight 0 is not constrained and passes through unchanged.
  ``x`` is one vector (an array or a pytree); derivatives are one-sided as in
  :func:`l1_ball`, and the identity for unconstrained entries.

  Args:
    x: real floating array of any shape, or a pytree of them.
    radius: scalar radius :math:`r \ge 0` (a traced negative radius acts as 0).
    weights: non-negative weights: an array of ``x``'s shape, or a pytree of
      ``x``'s structure and shapes. Concrete weights with a negative entry
      raise; traced negative weights act as 0.
    method: ``"auto"`` (default), ``"newton"`` or ``"sort"``, as in :func:`l1_ball`.

  Returns:
    The projection, with ``x``'s structure, shapes and dtypes.

  Example:
    >>> import jax.numpy as jnp
    >>> from sparse_optax.projections import weighted_l1_ball
    >>> weighted_l1_ball(jnp.array([3.0, 3.0]), 2.0, jnp.array([1.0, 0.0]))
    Array([2., 3.], dtype=float32)

  References:
    Duchi et al., ICML 2008: the same derivation, with the breakpoints
    :math:`|x_i| / w_i` in place of :math:`|x_i|`.
  """
  validation.float_leaves(x, "weighted_l1_ball")
  weights = validation.tree_weights(weights, x, "weighted_l1_ball")
  return validation.vector_call(_weighted_l1_ball, x, radius, "weighted_l1_ball", weights,
                                solver=method)
