"""Independent float64 NumPy references for the projections.

Written from the maths, not from the library: thresholds come from a long
bisection finished by the exact active-set formula, and the exact ℓ1,∞ levels
from a nested bisection on the shared multiplier. Slow and plain on purpose.
"""

from __future__ import annotations

import numpy as np


def threshold(a, r, w=None, iters=200):
  """θ ≥ 0 with Σ w (a − θ w)_+ = r (0 inside, ∞ for r ≤ 0)."""
  a = np.asarray(a, np.float64).ravel()
  w = np.ones_like(a) if w is None else np.asarray(w, np.float64).ravel()
  if r <= 0:
    return np.inf
  if np.sum(w * a) <= r:
    return 0.0

  def mass(t):
    return np.sum(w * np.maximum(a - t * w, 0))

  lo, hi = 0.0, np.max(np.where(w > 0, a / np.where(w > 0, w, 1), 0))
  for _ in range(iters):
    mid = 0.5 * (lo + hi)
    if mass(mid) >= r:
      lo = mid
    else:
      hi = mid
  active = a > lo * w
  return (np.sum(w[active] * a[active]) - r) / np.sum(w[active] ** 2)


def l1_ball(x, r):
  x = np.asarray(x, np.float64)
  t = threshold(np.abs(x), r)
  return np.sign(x) * np.maximum(np.abs(x) - t, 0) if np.isfinite(t) else np.zeros_like(x)


def simplex(x, r):
  """Bisection on θ of any sign: Σ (x − θ)_+ = r, then the exact active-set formula."""
  x = np.asarray(x, np.float64).ravel()
  if r <= 0:
    return np.zeros_like(x)
  finite = x[np.isfinite(x)]
  lo, hi = finite.max() - r, finite.max()
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    if np.sum(np.maximum(x - mid, 0)) >= r:
      lo = mid
    else:
      hi = mid
  active = x > lo
  theta = (np.sum(x[active]) - r) / np.count_nonzero(active)
  return np.maximum(x - theta, 0)


def l1_sphere(x, r):
  x = np.asarray(x, np.float64)
  signs = np.where(x < 0, -1.0, 1.0)
  return signs * simplex(np.abs(x), r).reshape(x.shape)


def l2_ball(x, r):
  x = np.asarray(x, np.float64)
  n = np.linalg.norm(x.ravel())
  return x if n <= r else x * (r / n)


def linf_ball(x, r):
  return np.clip(np.asarray(x, np.float64), -r, r)


def weighted_l1_ball(x, r, w):
  x = np.asarray(x, np.float64)
  w = np.asarray(w, np.float64)
  t = threshold(np.abs(x), r, w)
  if not np.isfinite(t):
    return np.where(w > 0, 0.0, x)
  return np.sign(x) * np.where(w > 0, np.maximum(np.abs(x) - t * w, 0), np.abs(x))


def _groups(x, axis):
  """(rows, restore): rows[g] is group g flattened; restore undoes it."""
  x = np.asarray(x, np.float64)
  axis = tuple(sorted(ax % x.ndim for ax in (axis if isinstance(axis, tuple) else (axis,))))
  kept = [ax for ax in range(x.ndim) if ax not in axis]
  moved = np.transpose(x, kept + list(axis))
  rows = moved.reshape(-1, int(np.prod([x.shape[ax] for ax in axis], dtype=int)))

  def restore(new_rows):
    back = new_rows.reshape(moved.shape)
    return np.transpose(back, np.argsort(kept + list(axis)))

  return rows, restore


def l21_ball(x, r, axis=-1):
  rows, restore = _groups(x, axis)
  norms = np.linalg.norm(rows, axis=1)
  budgets = l1_ball(norms, r)
  scale = np.divide(budgets, norms, out=np.zeros_like(norms), where=norms > 0)
  return restore(rows * scale[:, None])


def l11_ball(x, r, axis=-1):
  rows, restore = _groups(x, axis)
  budgets = l1_ball(np.abs(rows).sum(axis=1), r)
  return restore(np.stack([l1_ball(row, t) for row, t in zip(rows, budgets)]))


def row_thresholds(a, radii, iters=100):
  """Vectorised :func:`threshold` over the rows of ``a`` (one radius per row)."""
  a = np.asarray(a, np.float64)
  radii = np.asarray(radii, np.float64)
  lo, hi = np.zeros(len(a)), a.max(axis=1)
  for _ in range(iters):
    mid = 0.5 * (lo + hi)
    above = np.maximum(a - mid[:, None], 0).sum(axis=1) >= radii
    lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
  active = a > lo[:, None]
  count = active.sum(axis=1)
  theta = (np.where(active, a, 0).sum(axis=1) - radii) / np.maximum(count, 1)
  theta = np.where(a.sum(axis=1) <= radii, 0.0, np.maximum(theta, 0))
  return np.where(radii > 0, theta, np.inf)


def l1inf_levels(rows, r, iters=80):
  """Levels μ_g of the exact ℓ1,∞ projection by bisection on the multiplier."""
  a = np.abs(rows)
  if np.sum(a.max(axis=1)) <= r:
    return a.max(axis=1)
  if r <= 0:
    return np.zeros(len(a))

  def levels(lam):
    # μ_g(λ) solves Σ_i (a_gi − μ)_+ = λ: an ℓ1 threshold at radius λ; a group
    # whose whole mass is below λ gets level 0.
    theta = row_thresholds(a, np.full(len(a), lam), iters=64)
    return np.where(a.sum(axis=1) <= lam, 0.0, theta)

  lo, hi = 0.0, float(a.sum(axis=1).max())
  for _ in range(iters):
    mid = 0.5 * (lo + hi)
    if levels(mid).sum() >= r:
      lo = mid
    else:
      hi = mid
  return levels(0.5 * (lo + hi))


def l1inf_ball(x, r, axis=-1):
  rows, restore = _groups(x, axis)
  mu = l1inf_levels(rows, r)
  return restore(np.sign(rows) * np.minimum(np.abs(rows), mu[:, None]))


def bilevel_l1inf_ball(x, r, axis=-1):
  rows, restore = _groups(x, axis)
  budgets = l1_ball(np.abs(rows).max(axis=1), r)
  return restore(np.sign(rows) * np.minimum(np.abs(rows), budgets[:, None]))


def ball_norm(name, x, axis=-1, weights=None):
  """The norm whose ball each projection targets (ℓ1,1 for the bilevel ℓ1,1)."""
  x = np.asarray(x, np.float64)
  if name == "l1_ball":
    return np.abs(x).sum()
  if name == "weighted_l1_ball":
    return np.sum(np.asarray(weights, np.float64) * np.abs(x))
  if name == "l2_ball":
    return np.linalg.norm(x.ravel())
  if name == "linf_ball":
    return np.abs(x).max(initial=0.0)
  rows, _ = _groups(x, axis)
  if name == "l21_ball":
    return np.linalg.norm(rows, axis=1).sum()
  if name == "l11_ball":
    return np.abs(rows).sum()
  if name in ("l1inf_ball", "bilevel_l1inf_ball"):
    return np.abs(rows).max(axis=1).sum()
  raise KeyError(name)
