"""Exact float64 projections in NumPy, by sorting: what the benchmarks compare with.

Written from the maths, independently of :mod:`sparse_optax.projections`, and
fast enough for the benchmark sizes (a sort per group, then closed forms): a
timing is never printed without the distance of its result from these.

The group balls take a 2-D array whose rows are the groups; the vector sets
take any array as one vector. Everything is float64.
"""

from __future__ import annotations

import numpy as np


def row_thresholds(a, radii):
  """θ_g ≥ 0 with Σ_i (a_gi − θ_g)₊ = r_g for every row (0 inside, ∞ for r ≤ 0).

  Sort each row in decreasing order, s_1 ≥ s_2 ≥ …; with k active entries the
  threshold is (Σ_{i≤k} s_i − r) / k, and k is the number of sorted entries
  still above their own candidate (Duchi et al., ICML 2008).
  """
  a = np.asarray(a, np.float64)
  radii = np.broadcast_to(np.asarray(radii, np.float64), a.shape[:1])
  s = -np.sort(-a, axis=1)
  candidates = (np.cumsum(s, axis=1) - radii[:, None]) / np.arange(1, a.shape[1] + 1)
  count = np.maximum((s > candidates).sum(axis=1), 1)
  theta = np.maximum(candidates[np.arange(len(a)), count - 1], 0)
  theta = np.where(a.sum(axis=1) <= radii, 0.0, theta)
  return np.where(radii > 0, theta, np.inf)


def _shrink(x, theta):
  """sign(x) (|x| − θ)₊ row by row (θ = ∞ gives 0)."""
  return np.sign(x) * np.maximum(np.abs(x) - theta[:, None], 0)


def l1_ball(x, r):
  x = np.asarray(x, np.float64).reshape(1, -1)
  return _shrink(x, row_thresholds(np.abs(x), r))


def l21_ball(x, r):
  x = np.asarray(x, np.float64)
  norms = np.linalg.norm(x, axis=1)
  budgets = l1_ball(norms, r)[0]
  return x * np.divide(budgets, norms, out=np.zeros_like(norms), where=norms > 0)[:, None]


def l11_ball(x, r):
  x = np.asarray(x, np.float64)
  a = np.abs(x)
  budgets = l1_ball(a.sum(axis=1), r)[0]
  return _shrink(x, row_thresholds(a, budgets))


def bilevel_l1inf_ball(x, r):
  x = np.asarray(x, np.float64)
  budgets = l1_ball(np.abs(x).max(axis=1), r)[0]
  return np.sign(x) * np.minimum(np.abs(x), budgets[:, None])


def l1inf_levels(a, r):
  r"""Levels μ_g of the exact ℓ1,∞ projection of the rows ``a ≥ 0``.

  A group clipped at μ loses the mass m_g(μ) = Σ_i (a_gi − μ)₊, which on the
  sorted row is c_k − kμ for μ between s_{k+1} and s_k (c_k the partial
  sums). The levels share one multiplier λ: m_g(μ_g) = λ, or μ_g = 0 when the
  whole row weighs less than λ, and Σ_g μ_g = r. The pieces that hold the
  solution are found by bisection on λ; λ then follows in closed form from
  Σ_g (c_{k_g} − λ) / k_g = r over the groups left alive.
  """
  a = np.asarray(a, np.float64)
  if np.sum(a.max(axis=1)) <= r:
    return a.max(axis=1)
  if r <= 0:
    return np.zeros(len(a))
  s = -np.sort(-a, axis=1)
  k = np.arange(1, a.shape[1] + 1)
  c = np.cumsum(s, axis=1)
  # m_g at each sorted entry, non-decreasing along the row.
  knots = c - k * s

  def pieces(lam):
    count = np.maximum((knots <= lam).sum(axis=1), 1)
    c_k = c[np.arange(len(a)), count - 1]
    alive = c[:, -1] > lam
    return count, c_k, alive

  def levels(lam):
    count, c_k, alive = pieces(lam)
    return np.where(alive, (c_k - lam) / count, 0.0)

  lo, hi = 0.0, float(c[:, -1].max())
  for _ in range(100):
    mid = 0.5 * (lo + hi)
    if levels(mid).sum() >= r:
      lo = mid
    else:
      hi = mid
  count, c_k, alive = pieces(lo)
  lam = (np.sum(np.where(alive, c_k / count, 0)) - r) / np.sum(np.where(alive, 1 / count, 0))
  return levels(max(lam, 0.0))


def l1inf_ball(x, r):
  x = np.asarray(x, np.float64)
  mu = l1inf_levels(np.abs(x), r)
  return np.sign(x) * np.minimum(np.abs(x), mu[:, None])


def weighted_l1_ball(x, r, w):
  """Σ w |p| ≤ r: the breakpoints |x|/w sorted; weight 0 leaves an entry free."""
  x = np.asarray(x, np.float64).ravel()
  w = np.asarray(w, np.float64).ravel()
  a = np.abs(x)
  constrained = w > 0
  if np.sum(w * a) <= r:
    return x.copy()
  if r <= 0:
    return np.where(constrained, 0.0, x)
  ratio = a[constrained] / w[constrained]
  order = np.argsort(-ratio)
  wa, ww = (w * a)[constrained][order], (w * w)[constrained][order]
  candidates = (np.cumsum(wa) - r) / np.cumsum(ww)
  count = max(int((ratio[order] > candidates).sum()), 1)
  theta = max(candidates[count - 1], 0.0)
  return np.where(constrained, np.sign(x) * np.maximum(a - theta * w, 0), x)


def simplex(x, r):
  """p ≥ 0, Σ p = r: the threshold τ (of any sign) read off the sorted entries."""
  x = np.asarray(x, np.float64).ravel()
  s = -np.sort(-x)
  candidates = (np.cumsum(s) - r) / np.arange(1, x.size + 1)
  count = max(int((s > candidates).sum()), 1)
  return np.maximum(x - candidates[count - 1], 0)


def l1_sphere(x, r):
  x = np.asarray(x, np.float64).ravel()
  return np.where(x < 0, -1.0, 1.0) * simplex(np.abs(x), r)


def l2_ball(x, r):
  x = np.asarray(x, np.float64).ravel()
  n = np.linalg.norm(x)
  return x if n <= r else x * (r / n)


def linf_ball(x, r):
  return np.clip(np.asarray(x, np.float64).ravel(), -r, r)


# The sets that treat x as one vector, and those whose groups are rows.
VECTOR_SETS = {"l1_ball", "weighted_l1_ball", "simplex", "l1_sphere", "l2_ball", "linf_ball"}

BALLS = {
    "l1_ball": lambda x, r: l1_ball(x, r).reshape(np.shape(x)),
    "l21_ball": l21_ball,
    "l11_ball": l11_ball,
    "l1inf_ball": l1inf_ball,
    "bilevel_l1inf_ball": bilevel_l1inf_ball,
}


BALLS.update({"simplex": simplex, "l1_sphere": l1_sphere, "l2_ball": l2_ball,
              "linf_ball": linf_ball})


def projection(name, x, r, weights=None):
  """The exact projection of ``x`` (rows as groups, or one vector) in float64."""
  x = np.asarray(x, np.float64)
  if name == "weighted_l1_ball":
    return weighted_l1_ball(x, r, weights).reshape(x.shape)
  if name in VECTOR_SETS:
    return BALLS[name](x.ravel(), r).reshape(x.shape)
  return BALLS[name](x.reshape(1, -1) if x.ndim == 1 else x, r).reshape(x.shape)


def deviation(name, x, r, got, weights=None) -> float:
  """max |got − exact| of the set ``name`` at ``(x, r)``, rows as groups."""
  exact = projection(name, x, r, weights)
  return float(np.max(np.abs(np.asarray(got, np.float64) - exact), initial=0.0))
