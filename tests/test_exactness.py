"""Differential tests: every path of every projection against exact float64 references.

Each search has fast paths that switch on size: streamed reductions and a
sampled warm start above ``STREAMED_SIZE`` entries, samples only for groups of
at least ``SAMPLED_GROUP`` entries, rows finished on a gathered copy once few
move, warm starts from the previous call. The shapes below are read from those
constants, so moving a threshold moves the tested sizes: each path is compared,
just below and just above its threshold, with :mod:`experiments.benchmarks.exact` (sorting,
float64) and :mod:`numpy_reference` (bisection, float64), which share no code
with the library or with each other.

The transformations are followed along an Adam trajectory: after every step
the parameters must equal the exact projection of ``params + Adam's update``,
with the same groups at zero.

The default run takes the two shapes around each threshold; ``pytest -m
slow`` runs the whole grid.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparse_optax
from experiments.benchmarks import exact
from sparse_optax import projections
from sparse_optax.projections import _threshold

import numpy_reference

STREAMED = _threshold.STREAMED_SIZE
# The shortest group that gets a sampled warm start.
SAMPLED_GROUP = 2 * _threshold.SAMPLE_EVERY * _threshold.SAMPLE_BLOCK


def shapes_around_thresholds():
  """(label, shape): groups are rows; each threshold from both sides."""
  rows = STREAMED // SAMPLED_GROUP
  return [
      ("small, long rows", (rows - 1, SAMPLED_GROUP)),
      ("streamed, sampled rows", (rows, SAMPLED_GROUP)),
      ("streamed, rows one short of a sample", (STREAMED // (SAMPLED_GROUP - 1) + 1,
                                                SAMPLED_GROUP - 1)),
      ("one row", (1, STREAMED)),
      ("one column", (STREAMED, 1)),
      ("few wide rows", (3, STREAMED // 2)),
      ("many short rows", (STREAMED // 4 + 1, 4)),
  ]


DEFAULT_SHAPES = shapes_around_thresholds()[:2]
SLOW_SHAPES = shapes_around_thresholds()[2:]
FRACTIONS = (0.01, 0.3, 0.8, 0.95, 0.99)
KINDS = ("gaussian", "uniform", "ties", "zero rows", "wide")


def sample(kind, shape, seed=0):
  rng = np.random.default_rng(seed)
  if kind == "uniform":
    return rng.uniform(-1, 1, shape)
  x = rng.standard_normal(shape)
  if kind == "ties":
    return np.round(x * 4) / 4
  if kind == "zero rows":
    x[rng.uniform(size=shape[0]) < 0.3] = 0.0
  elif kind == "wide":
    x = np.sign(x) * 10.0 ** rng.uniform(-6, 6, shape)
  return x


GROUP_BALLS = ("l21_ball", "l11_ball", "l1inf_ball", "bilevel_l1inf_ball")
VECTOR_SETS = ("l1_ball", "weighted_l1_ball", "simplex", "l1_sphere", "l2_ball", "linf_ball")
SEARCHED = ("l1_ball", "weighted_l1_ball", "simplex", "l1_sphere", "l21_ball", "l11_ball",
            "bilevel_l1inf_ball")
WARM = {name: getattr(projections.warm, name) for name in projections.warm.__all__}


def weights_of(x):
  """Positive weights, a tenth of them 0 (unconstrained entries)."""
  w = np.random.default_rng(5).uniform(0.2, 2.0, np.shape(x))
  w.flat[::10] = 0.0
  return w


def ball_norm(name, x, w=None):
  if name in ("simplex", "l1_sphere"):
    return float(np.abs(x).sum())
  return numpy_reference.ball_norm(name, x, axis=-1, weights=w)


def radii(name, x, fractions):
  """Radii from the fractions of the ball's norm; for the simplex and the ℓ1
  sphere also below and above max |x|, where the search shifts differently."""
  norm = ball_norm(name, x, weights_of(x))
  chosen = [f * norm for f in fractions]
  if name in ("simplex", "l1_sphere"):
    top = float(np.abs(x).max())
    chosen += [0.3 * top, 3.0 * top, 2.0 * norm]
  return chosen


def paths(name, w):
  """The calls that must all give the exact projection of ``name``."""
  fn = getattr(projections, name)
  extra = (w,) if name == "weighted_l1_ball" else ()
  calls = {"default": lambda x, r: fn(x, r, *extra)}
  if name in SEARCHED:
    calls["newton"] = lambda x, r: fn(x, r, *extra, method="newton")
    calls["sort"] = lambda x, r: fn(x, r, *extra, method="sort")
  if name not in WARM:
    return calls
  warm = WARM[name]
  options = ({"weights": w} if name == "weighted_l1_ball" else {} if name == "l1_ball"
             else {"axis": (1,)})

  def warm_from(factor):
    def call(x, r):
      # The state of a nearby problem (radius off by `factor`): what a
      # transformation carries from one step to the next.
      _, state = warm.project(x, r * factor, warm.cold(x, **options), **options)
      return warm.project(x, r, state, **options)[0]
    return call

  calls["warm from a smaller radius"] = warm_from(0.5)
  calls["warm from a larger radius"] = warm_from(1.5)
  calls["warm from a zero radius"] = warm_from(0.0)
  return calls


def check_against_reference(name, x, r, got, rtol, w):
  expected = exact.projection(name, x, r, w)
  scale = max(float(np.max(np.abs(x))), r if name in ("simplex", "l1_sphere") else 0, 1e-300)
  got = np.asarray(got, np.float64)
  np.testing.assert_allclose(got, expected, rtol=0, atol=rtol * scale)
  if name in ("simplex", "l1_sphere"):
    assert abs(np.abs(got).sum() - r) <= rtol * scale * np.sqrt(got.size)
  else:
    # Feasible (the bilevel balls too).
    assert ball_norm(name, got, w) <= r * (1 + rtol) + rtol * scale


def run_grid(name, shapes, kinds, fractions, dtype):
  rtol = 1e-9 if dtype == np.float64 else 2e-5
  for label, shape in shapes:
    for kind in kinds:
      x = sample(kind, shape).astype(dtype)
      w = weights_of(x).astype(dtype)
      for path, call in paths(name, jnp.asarray(w)).items():
        for r in radii(name, x, fractions):
          got = call(jnp.asarray(x), r)
          try:
            check_against_reference(name, x, r, got, rtol, w)
          except AssertionError as error:
            raise AssertionError(f"{name} {path}, {label} {shape}, {kind}, r = {r:.6g} "
                                 f"(norm {ball_norm(name, x, w):.6g}): {error}") from None


def vector_shapes():
  """One vector around the streamed size (its sample plan switches there too)."""
  return [("small vector", (STREAMED - 1,)), ("streamed vector", (STREAMED,))]


def shapes_for(name, slow):
  if name in VECTOR_SETS:
    return vector_shapes() + ([("one entry", (1,)), ("matrix", (3, STREAMED // 2))] if slow else [])
  return DEFAULT_SHAPES + (SLOW_SHAPES if slow else [])


@pytest.mark.parametrize("name", VECTOR_SETS + GROUP_BALLS)
def test_every_path_around_the_thresholds(name, x64):
  run_grid(name, shapes_for(name, slow=False), ("gaussian", "zero rows"), (0.01, 0.8, 0.99),
           np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", VECTOR_SETS + GROUP_BALLS)
def test_every_path_on_the_whole_grid(name, dtype, x64):
  run_grid(name, shapes_for(name, slow=True), KINDS, FRACTIONS, dtype)


def test_the_two_references_agree(x64):
  rng = np.random.default_rng(3)
  for shape in [(7, 5), (1, 40), (40, 1), (12, 33)]:
    x = rng.standard_normal(shape)
    w = weights_of(x)
    for name in VECTOR_SETS + GROUP_BALLS:
      for r in radii(name, x, (0.05, 0.5, 0.97)):
        if name == "weighted_l1_ball":
          other = numpy_reference.weighted_l1_ball(x, r, w)
        elif name in VECTOR_SETS:
          other = getattr(numpy_reference, name)(x, r)
        else:
          other = getattr(numpy_reference, name)(x, r, -1)
        assert exact.deviation(name, x, r, np.reshape(other, x.shape), w) < 1e-9, (name, shape, r)


# ---------------------------------------------------------------------------
# The transformations along a training trajectory.

def _weighted_factory(eta):
  return sparse_optax.project_weighted_l1(
      eta, lambda path, leaf: jnp.asarray(weights_of(leaf), leaf.dtype))


TRANSFORMS = {
    "project_l1": ("l1_ball", sparse_optax.project_l1),
    "project_weighted_l1": ("weighted_l1_ball", _weighted_factory),
    "project_l21": ("l21_ball", sparse_optax.project_l21),
    "project_l11": ("l11_ball", sparse_optax.project_l11),
    "project_l1inf": ("l1inf_ball", sparse_optax.project_l1inf),
    "project_bilevel_l1inf": ("bilevel_l1inf_ball", sparse_optax.project_bilevel_l1inf),
}


def follow_trajectory(transform, shape, steps, eta_fraction, dtype, seed=0, lr=3e-3):
  """Adam + ``transform`` on one kernel; yields (target, params) after each step.

  ``target`` is ``params + Adam's update`` from an Adam run beside the chain
  on the same gradients (Adam's state does not depend on the parameters), so
  the parameters must be its exact projection.
  """
  name, factory = TRANSFORMS[transform]
  key, grads_key = jax.random.split(jax.random.key(seed))
  params = {"kernel": 0.05 * jax.random.normal(key, shape, dtype)}
  eta = eta_fraction * ball_norm(name, np.asarray(params["kernel"], np.float64),
                                 weights_of(params["kernel"]))
  chain = optax.chain(optax.adam(lr), factory(eta))
  adam = optax.adam(lr)

  @jax.jit
  def step(params, chain_state, adam_state, t):
    grads = {"kernel": 1e-3 * jax.random.normal(jax.random.fold_in(grads_key, t), shape, dtype)}
    adam_updates, adam_state = adam.update(grads, adam_state, params)
    target = optax.apply_updates(params, adam_updates)
    updates, chain_state = chain.update(grads, chain_state, params)
    return optax.apply_updates(params, updates), chain_state, adam_state, target

  chain_state, adam_state = chain.init(params), adam.init(params)
  for t in range(steps):
    params, chain_state, adam_state, target = step(params, chain_state, adam_state, t)
    yield eta, np.asarray(target["kernel"], np.float64), np.asarray(params["kernel"], np.float64)


def check_step(name, eta, target, got, t, rtol):
  expected = exact.projection(name, target, eta, weights_of(target))
  scale = float(np.max(np.abs(target)))
  deviation = float(np.max(np.abs(got - expected)))
  assert deviation <= rtol * scale, f"step {t}: max |params − exact| = {deviation:.2e}"
  if name not in ("l1_ball", "weighted_l1_ball"):
    # Which groups are zero; a group whose exact budget is within rounding of
    # 0 may go either way.
    zero_got, zero_expected = ~got.any(axis=1), ~expected.any(axis=1)
    undecided = np.abs(expected).max(axis=1) <= rtol * scale
    differ = (zero_got != zero_expected) & ~undecided
    assert not differ.any(), f"step {t}: zero groups differ at rows {np.flatnonzero(differ)[:8]}"


def trajectory_shape():
  """A kernel whose rows are sampled and whose size is streamed."""
  return (2 * (STREAMED // SAMPLED_GROUP), SAMPLED_GROUP)


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_transformations_stay_exact_along_adam(transform, x64):
  name = TRANSFORMS[transform][0]
  trajectory = follow_trajectory(transform, trajectory_shape(), 100, 0.1, jnp.float64)
  for t, (eta, target, got) in enumerate(trajectory):
    check_step(name, eta, target, got, t, rtol=1e-10)


# LFC4's kernel at three radii in both precisions; a short-row and a long-row
# kernel below the streamed size.
LONG_RUNS = ([((784, 768), fraction, dtype) for fraction in (0.01, 0.3, 0.9)
              for dtype in (jnp.float64, jnp.float32)]
             + [((64, 300), 0.3, jnp.float64), ((300, 64), 0.3, jnp.float64)])


@pytest.mark.slow
@pytest.mark.parametrize("shape,eta_fraction,dtype", LONG_RUNS)
@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_transformations_stay_exact_along_long_adam_runs(transform, shape, eta_fraction, dtype,
                                                         x64):
  # float32: the ℓ1,∞ levels share one multiplier, whose rounding (that of
  # sums over whole groups) is divided by each group's count of clipped
  # entries; 2e-5 of the largest entry bounds it on these inputs.
  rtol = 1e-10 if dtype == jnp.float64 else 2e-5
  name = TRANSFORMS[transform][0]
  for t, (eta, target, got) in enumerate(follow_trajectory(transform, shape, 150, eta_fraction,
                                                           dtype)):
    check_step(name, eta, target, got, t, rtol)
