r"""The soft threshold of the (weighted) ℓ1 ball.

Every projection in this package reduces to one scalar equation per group:
given magnitudes :math:`a \ge 0`, weights :math:`w \ge 0` and a radius
:math:`r > 0`, find the threshold :math:`\theta \ge 0` with

.. math::

  f(\theta) = \sum_i w_i \, (a_i - \theta w_i)_+ = r,

or :math:`\theta = 0` when :math:`f(0) \le r` (the point is inside the ball).
The unweighted case is :math:`w = 1`. :math:`f` is convex, piecewise linear
and decreasing, which gives two exact algorithms:

* ``"sort"``: sort the breakpoints :math:`a_i / w_i` and read the threshold
  off cumulative sums (Duchi et al., ICML 2008; O(n log n)).
* ``"newton"``: Newton's method on :math:`f`, which for :math:`w = 1` is
  Michelot's fixed point (1986; Condat, Math. Prog. 2016). From any start one
  Newton step lands at or below the root (the tangent of a convex function
  lies under it), and from below the iterates rise monotonically and stop
  exactly once the active set no longer changes. Each step reads the input
  twice, once for the count of active entries and once for their excess (the
  step that only confirms the root skips the second); a sample of whole
  blocks warm-starts large groups. A bisection on the bit pattern of
  :math:`\theta` takes over after ``NEWTON_STEPS`` steps, so the number of
  passes is bounded (and NaN never hangs).

Arrays here carry the group layout explicitly: ``axis`` lists the axes reduced
inside one group and every result keeps them with size 1 (``keepdims``).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

# Newton steps before the bisection safeguard takes over. Measured on normal,
# uniform, exponential and Cauchy data of 1e6 entries with radii from 1e-4 to
# 0.9 of the norm, Newton needed at most 14 passes from a cold start.
NEWTON_STEPS = 24
# Groups are warm-started from a sample of their longest reduced axis: blocks
# of SAMPLE_BLOCK consecutive entries (a 64-byte cache line of float32), one
# block in SAMPLE_EVERY or fewer, at most SAMPLE_SIZE entries. Solving the
# sample costs a fraction of a pass and saves passes: on 4096 rows of 1024
# Gaussian entries, 4 to 5 full passes instead of 5 to 8 from 0.
SAMPLE_BLOCK = 16
SAMPLE_EVERY = 16
SAMPLE_SIZE = 4096
# Arrays of at least this many entries are read by vectorised reductions, one
# per sum (see `_streamed`), and their long groups are warm-started from a
# sample; below it a pass costs less than either.
STREAMED_SIZE = 1 << 16


def soft_threshold(x, theta, weights=None):
  """``sign(x) (|x| - θ w)_+``; entries with weight 0 pass through unchanged."""
  a = jnp.abs(x)
  if weights is None:
    return jnp.sign(x) * jnp.maximum(a - theta, 0)
  # θ is ∞ for a zero radius, and ∞ · 0 would poison unconstrained entries,
  # which pass through as x itself (derivative 1, also at x = 0).
  constrained = weights > 0
  shrunk = jnp.maximum(a - theta * jnp.where(constrained, weights, 0), 0)
  return jnp.where(constrained, jnp.sign(x) * shrunk, x)


def _sum(v, axis):
  return jnp.sum(v, axis=axis, keepdims=True)


# Counts summed in the input's float type are exact up to 2**24 in float32;
# a longer float32 group counts in integers instead.
FLOAT32_EXACT_COUNT = 1 << 24


def group_size(a, axis):
  return math.prod(a.shape[ax] for ax in axis)


def _streamed(a):
  """Whether ``a`` is large enough for the vectorised two-reduction passes.

  Below ``STREAMED_SIZE`` entries a pass costs less than launching the
  operations around it, and one fused reduction of a compare-and-select,
  which XLA makes of both sums at once, is quicker.
  """
  return a.size >= STREAMED_SIZE


def excess(a, w, theta, axis):
  """``f(θ) = Σ w (a − θ w)₊`` per group: the function whose root is the threshold.

  ``(a − θw)₊`` is written ``a − min(a, θw)`` (the same rounding): min/max,
  no compare-and-select and no broadcast constant, so XLA's CPU backend makes
  it one vectorised streaming reduction, several times faster than a
  reduction of a select (``experiments/benchmarks/projections.py``).
  """
  if not _streamed(a):
    level = theta if w is None else theta * w
    return _sum(jnp.where(a > level, a - level if w is None else w * (a - level), 0), axis)
  # The barrier makes this θ a value of its own: XLA would otherwise share its
  # broadcast with the one beside it (in `slope`) and write it out in full.
  theta = lax.optimization_barrier(theta)
  if w is None:
    return _sum(a - jnp.minimum(a, theta), axis)
  return _sum(w * (a - jnp.minimum(a, theta * w)), axis)


def exceeds(high, low):
  """``[high > low]`` as 0/1 floats: ``min(ceil(max(high, low) − low), 1)``.

  The rounded difference is positive exactly when ``high > low``, and
  min/max/ceil keep a reduction of it vectorised on XLA's CPU backend, as in
  :func:`excess` (``ceil`` first: XLA turns ``min(max(·, 0), 1)`` into a
  clamp, which it does not vectorise). Where the CPU flushes subnormal results
  to zero, an entry less than the smallest normal number above ``low`` reads
  as not above it, in :func:`excess` too; the threshold then moves by at most
  that number times the group size over the count, under 1e-30 in float32.
  """
  return jnp.minimum(jnp.ceil(jnp.maximum(high, low) - low), 1)


def slope(a, w, theta, axis):
  """``q(θ) = Σ w² [a > θ w]`` per group: ``-q`` is the right derivative of ``f``."""
  if not _streamed(a) or (w is None and a.dtype == jnp.float32
                          and group_size(a, axis) >= FLOAT32_EXACT_COUNT):
    if w is None:
      return _sum(a > theta, axis).astype(a.dtype)
    return _sum(jnp.where(a > theta * w, w * w, 0), axis)
  if w is None:
    return _sum(exceeds(a, theta), axis)
  return _sum(w * w * exceeds(a, theta * w), axis)


def excess_and_slope(a, w, theta, axis):
  """``(f, q)`` at ``theta``: a Newton step from there lands at ``θ + (f − r) / q``."""
  return excess(a, w, theta, axis), slope(a, w, theta, axis)


def _newton_step(theta, f, q, r):
  # q == 0 only happens from a start above every breakpoint; restarting at
  # zero is then a valid lower bound.
  step = jnp.where(q > 0, theta + (f - r) / jnp.where(q > 0, q, 1), 0)
  return jnp.maximum(step, 0)


def _float_bits(theta):
  int_type = jnp.int64 if theta.dtype == jnp.float64 else jnp.int32
  return lax.bitcast_convert_type(theta, int_type)


def _bits_float(bits, dtype):
  return lax.bitcast_convert_type(bits, dtype)


def _bisect(a, w, r, axis, lo, f_lo, q_lo, unresolved):
  """Bisection on the bit pattern of θ ≥ 0 until ``[lo, hi]`` holds no float.

  Non-negative floats order like their bit patterns, so at most (bits - 1)
  halvings leave adjacent floats; no breakpoint lies strictly between them and
  the Newton step from ``lo`` is then exact.
  """
  dtype = a.dtype
  hi_bits = jnp.full_like(_float_bits(lo), _float_bits(jnp.asarray(jnp.inf, dtype)))
  max_steps = jnp.finfo(dtype).bits + 2

  def open_(state):
    it, lo, _, _, hi_bits = state
    return (it < max_steps) & jnp.any(unresolved & (hi_bits - _float_bits(lo) > 1))

  def halve(state):
    it, lo, f_lo, q_lo, hi_bits = state
    lo_bits = _float_bits(lo)
    todo = unresolved & (hi_bits - lo_bits > 1)
    mid = _bits_float(lo_bits + (hi_bits - lo_bits) // 2, dtype)
    f, q = excess_and_slope(a, w, mid, axis)
    below_root = f >= r
    take_lo = todo & below_root
    lo = jnp.where(take_lo, mid, lo)
    f_lo = jnp.where(take_lo, f, f_lo)
    q_lo = jnp.where(take_lo, q, q_lo)
    hi_bits = jnp.where(todo & ~below_root, _float_bits(mid), hi_bits)
    return it + 1, lo, f_lo, q_lo, hi_bits

  _, lo, f_lo, q_lo, _ = lax.while_loop(
      open_, halve, (0, lo, f_lo, q_lo, hi_bits))
  return _newton_step(lo, f_lo, q_lo, r)


def rank_threshold(a, count):
  """The threshold that leaves exactly ``count`` entries of ``a ≥ 0`` above it.

  The (count+1)-th largest entry (0 when ``count`` reaches the number of
  positive entries), found by bisection on the bit pattern of non-negative
  floats: at most (bits − 1) counting passes, no sort. With ties at that
  value, fewer entries stay above it. ``count`` may be traced. Not
  differentiable (a rank is piecewise constant).
  """
  a = lax.stop_gradient(a)
  count = jnp.asarray(count, jnp.int32)
  above = lambda t: jnp.sum(a > t, dtype=jnp.int32)
  lo = jnp.zeros((), _float_bits(a.ravel()[0]).dtype)
  hi = _float_bits(jnp.max(a))

  def more(bounds):
    lo, hi = bounds
    return hi - lo > 1

  def halve(bounds):
    lo, hi = bounds
    mid = lo + (hi - lo) // 2
    few = above(_bits_float(mid, a.dtype)) <= count
    return jnp.where(few, lo, mid), jnp.where(few, mid, hi)

  # The answer is the smallest t with at most `count` entries above it; 0
  # itself when the positive entries are already few enough.
  _, hi = lax.while_loop(more, halve, (lo, hi))
  return jnp.where(above(jnp.zeros((), a.dtype)) <= count, 0, _bits_float(hi, a.dtype))


def _newton_iterations(a, w, r, axis, theta, max_steps, settle=0):
  """Newton from ``theta``; returns (θ, last evaluated θ with its sums, moving).

  Stops after ``max_steps`` passes or once at most ``settle`` groups move.
  """
  # A start known at compile time (0) would fold into the sums and be written
  # out in full; the barrier keeps it a value.
  theta = lax.optimization_barrier(theta)
  f, q = excess_and_slope(a, w, theta, axis)
  # The first step is taken unconditionally: it turns any start into a lower
  # bound of the root. From there on the iterates rise, and a group stops once
  # its count of active entries no longer changes (the step it just took
  # stayed on one linear piece of f, so it landed on the root) or a step does
  # not rise (rounding has the last word). The count comes first: the pass
  # that only confirms the root skips the sum.
  first = _newton_step(theta, f, q, r)
  moving = ((first > 0) | (theta > 0)) & (r > 0)

  def more(state):
    return (state[0] < max_steps) & (jnp.sum(state[-1]) > settle)

  def newton(theta, lo, f_lo, q_lo, f, q, moving):
    lo = jnp.where(moving, theta, lo)
    f_lo = jnp.where(moving, f, f_lo)
    q_lo = jnp.where(moving, q, q_lo)
    new = _newton_step(theta, f, q, r)
    rising = moving & (new > theta)
    return jnp.where(rising, new, theta), lo, f_lo, q_lo, rising

  def step(state):
    it, q_prev, theta, lo, f_lo, q_lo, moving = state
    if not _streamed(a):
      f, q = excess_and_slope(a, w, theta, axis)
      return it + 1, q, *newton(theta, lo, f_lo, q_lo, f, q, moving & (q != q_prev))
    q = slope(a, w, theta, axis)
    moving = moving & (q != q_prev)
    # Once at most `settle` groups move, they finish elsewhere (on a gathered
    # copy) and the whole-array excess is not needed.
    return it + 1, q, *lax.cond(
        jnp.sum(moving) > settle,
        lambda: newton(theta, lo, f_lo, q_lo, excess(a, w, theta, axis), q, moving),
        lambda: (theta, lo, f_lo, q_lo, moving))

  zeros = jnp.zeros_like(first)
  _, _, theta, lo, f_lo, q_lo, moving = lax.while_loop(
      more, step, (0, jnp.broadcast_to(q, first.shape), first, zeros, zeros, zeros, moving))
  return theta, lo, f_lo, q_lo, moving


def sample_plan(shape, axis):
  """``(axis, every)`` of the warm-start sample of these groups, or None.

  The sample is whole blocks of ``SAMPLE_BLOCK`` consecutive entries (whole
  cache lines) along the longest reduced axis: one block in ``every``, at
  least ``SAMPLE_EVERY``, and at most ``SAMPLE_SIZE`` entries per group.
  Groups too short for two blocks have none, and so do arrays under
  ``STREAMED_SIZE`` entries, whose passes cost less than a search on a
  sample.
  """
  longest = max(axis, key=lambda ax: shape[ax], default=None)
  if (longest is None or shape[longest] < 2 * SAMPLE_EVERY * SAMPLE_BLOCK
      or math.prod(shape) < STREAMED_SIZE):
    return None
  blocks = shape[longest] // SAMPLE_BLOCK
  return longest, max(SAMPLE_EVERY, blocks // (SAMPLE_SIZE // SAMPLE_BLOCK))


def sample_blocks(v, plan):
  """The entries of ``v`` that :func:`sample_plan`'s ``plan`` keeps."""
  axis, every = plan
  blocks = v.shape[axis] // SAMPLE_BLOCK
  v = lax.slice_in_dim(v, 0, blocks * SAMPLE_BLOCK, axis=axis)
  v = v.reshape(v.shape[:axis] + (blocks, SAMPLE_BLOCK) + v.shape[axis + 1:])
  v = lax.slice_in_dim(v, 0, None, every, axis=axis)
  return v.reshape(v.shape[:axis] + (-1,) + v.shape[axis + 2:])


def _sample_start(a, w, r, axis):
  """A warm start solved on a sample (radius scaled by its fraction), or 0."""
  plan = sample_plan(a.shape, axis)
  if plan is None:
    return jnp.zeros((), a.dtype)
  sample = sample_blocks(a, plan)
  sample_w = None if w is None else sample_blocks(w, plan)
  fraction = sample.shape[plan[0]] / a.shape[plan[0]]
  theta, *_ = _newton_iterations(
      sample, sample_w, r * fraction, axis, jnp.zeros((), a.dtype), NEWTON_STEPS)
  return theta


def _settle_size(shape, axis):
  """How many still-moving groups are worth gathering out of a batch, or 0.

  Groups stop at different passes, yet every pass reads them all. Once few
  remain (a static bound: an eighth of the groups), the last passes run on a
  gathered copy of just those rows. Only for contiguous groups (trailing
  reduced axes), where the row view is free.
  """
  kept = [n for ax, n in enumerate(shape) if ax not in axis]
  trailing = tuple(range(len(shape) - len(axis), len(shape)))
  if tuple(axis) != trailing or math.prod(kept) < 64 or math.prod(shape) < 1 << 15:
    return 0
  return math.prod(kept) // 8


def _finish_moving_rows(a, w, r, axis, theta, moving, size):
  """Finishes the search of the (at most ``size``) moving groups on their rows."""
  groups = math.prod(theta.shape)
  rows = lambda v: jnp.broadcast_to(v, a.shape).reshape(groups, -1)
  per_group = lambda v: jnp.broadcast_to(v, theta.shape).reshape(groups, 1)
  index = jnp.nonzero(moving.reshape(groups), size=size, fill_value=groups)[0]
  take = lambda v: v.at[index].get(mode="fill", fill_value=0)
  sub_theta = _newton_threshold(
      take(rows(a)), None if w is None else take(rows(w)), take(per_group(r)), (1,),
      take(per_group(theta)), settle=False)
  return per_group(theta).at[index].set(sub_theta, mode="drop").reshape(theta.shape)


def _newton_threshold(a, w, r, axis, start, settle=True):
  if start is None:
    start = _sample_start(a, w, r, axis)
  else:
    # NaN marks a cold start (no previous search): then the sample's guess.
    # An infinite start (the threshold of a group whose radius was 0) would
    # reach the sums as ∞ − ∞; 0 is a lower bound of every root.
    start = lax.cond(jnp.any(jnp.isnan(start)),
                     lambda: jnp.broadcast_to(_sample_start(a, w, r, axis), start.shape),
                     lambda: jnp.where(jnp.isinf(start), 0, start))
  size = _settle_size(a.shape, axis) if settle else 0
  theta, lo, f_lo, q_lo, unresolved = _newton_iterations(
      a, w, r, axis, start, NEWTON_STEPS, settle=size)

  def safeguard():
    return jnp.where(unresolved, _bisect(a, w, r, axis, lo, f_lo, q_lo, unresolved), theta)

  if not size:
    return safeguard()
  return lax.cond(jnp.sum(unresolved) <= size,
                  lambda: _finish_moving_rows(a, w, r, axis, theta, unresolved, size),
                  safeguard)


def _rows(v, axis):
  """Moves the reduced axes last and flattens to ``(groups, members)``."""
  kept = [ax for ax in range(v.ndim) if ax not in axis]
  moved = jnp.transpose(v, kept + list(axis))
  return moved.reshape(-1, math.prod(v.shape[ax] for ax in axis))


def _sort_threshold(a, w, r, axis):
  keep_shape = tuple(1 if ax in axis else n for ax, n in enumerate(a.shape))
  rows = _rows(a, axis)
  r_rows = jnp.broadcast_to(r, keep_shape).reshape(-1, 1)
  if w is None:
    values = -jnp.sort(-rows, axis=-1)
    numer = jnp.cumsum(values, axis=-1)
    denom = jnp.arange(1, rows.shape[-1] + 1, dtype=a.dtype)
    breakpoints = values
    unconstrained = 0
  else:
    w_rows = _rows(w, axis)
    ratio = jnp.where(w_rows > 0, rows / jnp.where(w_rows > 0, w_rows, 1), jnp.inf)
    neg_ratio, wa, ww = lax.sort((-ratio, w_rows * rows, w_rows * w_rows),
                                 dimension=-1, num_keys=1)
    breakpoints = -neg_ratio
    numer = jnp.cumsum(wa, axis=-1)
    denom = jnp.cumsum(ww, axis=-1)
    unconstrained = jnp.sum(w_rows == 0, axis=-1, keepdims=True)
  # Candidate thresholds, one per size of the active set; the true one is the
  # last whose breakpoint is not below it (the test is monotone). Outside the
  # ball the largest finite breakpoint is always active, but when the radius
  # is below the rounding of its own candidate the test can miss it: hence
  # the lower bound on the count.
  candidates = (numer - r_rows) / denom
  count = jnp.sum(breakpoints >= candidates, axis=-1, keepdims=True)
  count = jnp.maximum(count, jnp.minimum(unconstrained + 1, rows.shape[-1]))
  theta = jnp.take_along_axis(candidates, count - 1, axis=-1)
  return jnp.maximum(theta, 0).reshape(keep_shape)


# The search ``method="auto"`` runs on each backend (``default``: every
# backend not named), chosen from side-by-side timings on it
# (``python -m experiments.accelerator_check``, results/accelerator/). On a
# CPU a sort of 1e6 floats costs ~150 passes and Newton ~3. On an H200 a sort
# costs about one launch and every Newton step a round trip of the loop's
# predicate to the host: the sort is faster for every group ball measured
# and for the ℓ1 ball up to 1e6 entries (at 1e7, 0.88 against 0.79 ms).
AUTO_METHODS = {"cpu": "newton", "gpu": "sort", "default": "newton"}


def auto_method() -> str:
  """What ``method="auto"`` runs: the entry of JAX's default backend.

  Read when the computation is traced, so the compiled program is exactly
  that of the method chosen. (``lax.platform_dependent`` would also follow
  arrays placed on another backend, but leaves a branch in the program.)
  """
  return AUTO_METHODS.get(jax.default_backend(), AUTO_METHODS["default"])


def _solve(a, w, r, axis, method, start):
  if method == "auto":
    method = auto_method()
  if method == "sort":
    theta = _sort_threshold(a, w, r, axis)
  else:
    theta = _newton_threshold(a, w, r, axis, start)
  # A radius of 0 (or below) keeps nothing that is constrained.
  return jnp.where(r > 0, theta, jnp.inf)


def l1_threshold(a, radius, axis, method="auto", start=None):
  r"""θ with Σ (a − θ)₊ = radius per group, 0 inside the ball, ∞ for radius 0.

  Args:
    a: non-negative magnitudes.
    radius: non-negative radius, broadcastable to the kept shape.
    axis: tuple of axes reduced inside one group.
    method: ``"newton"``, ``"sort"`` or ``"auto"`` (the faster of the two on
      JAX's default backend, :func:`auto_method`).
    start: optional first guess for ``"newton"`` (kept shape), e.g. the
      threshold of a previous, nearby problem; any value is safe (the first
      Newton step from it is a lower bound). ``None`` or NaN: a guess from a
      strided sample.

  Returns:
    θ with the reduced axes kept as size 1.
  """
  return _threshold(a, None, radius, axis, method, start)


def weighted_l1_threshold(a, weights, radius, axis, method="auto", start=None):
  r"""θ with Σ w (a − θ w)₊ = radius per group (see :func:`l1_threshold`)."""
  return _threshold(a, weights, radius, axis, method, start)


def _threshold(a, w, radius, axis, method, start):
  weighted, warm = w is not None, start is not None
  return _differentiable_threshold(
      a, w if weighted else jnp.ones((), a.dtype), radius,
      start if warm else jnp.zeros((), a.dtype), axis, method, weighted, warm)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5, 6, 7))
def _differentiable_threshold(a, w, radius, start, axis, method, weighted, warm):
  return _solve(a, w if weighted else None, radius, axis, method, start if warm else None)


@_differentiable_threshold.defjvp
def _differentiable_threshold_jvp(axis, method, weighted, warm, primals, tangents):
  a, w, r, _ = primals
  da, dw, dr, _ = tangents
  theta = _differentiable_threshold(*primals, axis, method, weighted, warm)
  # Implicit differentiation of Σ_active w (a − θ w) = r; the start is only a
  # guess and has no influence on the root.
  active = a > theta * w
  q = _sum(jnp.where(active, w * w, 0), axis)
  ds = _sum(jnp.where(active, w * da + (a - 2 * theta * w) * dw, 0), axis)
  projecting = (theta > 0) & (q > 0)
  dtheta = jnp.where(projecting, (ds - dr) / jnp.where(projecting, q, 1), 0)
  return theta, dtheta
