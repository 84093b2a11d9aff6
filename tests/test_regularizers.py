"""The literature's comparators: k-support prox and GSEF, ℓ1/ℓ2, HALO, magnitude pruning.

References are independent of the library: cvxpy on the convex programs
(the prox through Moreau's identity and the dual norm, the norm through its
variational form), plain float64 NumPy enumerations written from the papers,
hand-derived gradients and central finite differences.
"""

import cvxpy as cp
import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sparse_optax
from sparse_optax import lottery
from sparse_optax import regularizers as reg

# --------------------------------------------------------------------------
# Independent references.

CLARABEL = dict(solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)


def cvx_ksupport_prox(v, k, lam):
  """v − prox of the conjugate: f*(u) = (1/2λ) Σ_{i≤k} (u²)↓_i (the dual norm squared)."""
  u = cp.Variable(v.size)
  objective = 0.5 * cp.sum_squares(u - v) + cp.sum_largest(cp.square(u), k) / (2 * lam)
  cp.Problem(cp.Minimize(objective)).solve(**CLARABEL)
  return v - u.value


def cvx_ksupport_squared(w, k):
  """‖w‖²_(k) = min Σ w_i²/θ_i over 0 ≤ θ ≤ 1, Σθ ≤ k."""
  theta = cp.Variable(w.size)
  terms = [cp.quad_over_lin(w[i], theta[i]) for i in range(w.size)]
  problem = cp.Problem(cp.Minimize(cp.sum(cp.hstack(terms))), [theta <= 1, cp.sum(theta) <= k])
  problem.solve(**CLARABEL)
  return problem.value


def two_index_prox(v, k, lam):
  """Argyriou et al. (2012) Algorithm 1: enumerate r < k ≤ ℓ, keep the consistent pair.

  With z = |v| sorted decreasingly (1-indexed, z_0 = ∞, z_{n+1} = 0), entries
  1..r shrink to z/(1+λ), r+1..ℓ become z − λ/τ, the rest 0, where
  τ = (k − r + (ℓ − r)λ) / Σ_{r<i≤ℓ} z_i; the pair is valid when
  τ z_r − λ ≥ 1 ≥ τ z_{r+1} − λ and τ z_ℓ − λ ≥ 0 ≥ τ z_{ℓ+1} − λ.
  """
  v = np.asarray(v, np.float64)
  n = v.size
  if k >= n or lam == 0:
    return v / (1 + lam)
  order = np.argsort(-np.abs(v))
  z = np.abs(v)[order]
  padded = np.concatenate([[np.inf], z, [0.0]])
  tol = 1e-12
  for r in range(k):
    for ell in range(k, n + 1):
      total = z[r:ell].sum()
      if total <= 0:
        continue
      tau = (k - r + (ell - r) * lam) / total
      if (tau * padded[r] - lam >= 1 - tol and tau * padded[r + 1] - lam <= 1 + tol
          and tau * padded[ell] - lam >= -tol and tau * padded[ell + 1] - lam <= tol):
        out = np.empty(n)
        out[order] = np.concatenate([z[:r] / (1 + lam), z[r:ell] - lam / tau,
                                     np.zeros(n - ell)])
        return np.sign(v) * out
  return v / (1 + lam)  # at most k non-zeros: every θ_i = 1


def squared_l1_prox(v, lam):
  """prox of (λ/2)‖·‖₁²: soft threshold γ = λ‖p‖₁, by enumerating the support size."""
  v = np.asarray(v, np.float64)
  z = np.sort(np.abs(v))[::-1]
  for s in range(1, v.size + 1):
    gamma = lam * z[:s].sum() / (1 + lam * s)
    if z[s - 1] > gamma and (s == v.size or z[s] <= gamma):
      return np.sign(v) * np.maximum(np.abs(v) - gamma, 0)
  return np.zeros_like(v)


def numpy_l1_over_l2(x, axis):
  l1 = np.abs(x).sum(axis=axis)
  l2 = np.sqrt((x ** 2).sum(axis=axis))
  return float(np.sum(np.where(l2 > 0, l1 / np.where(l2 > 0, l2, 1), 0)))


# --------------------------------------------------------------------------
# The k-support norm and its prox.


CVX_CASES = [(7, 2, 1.0), (6, 1, 2.0), (8, 5, 0.5), (9, 3, 0.1)]


@pytest.mark.parametrize("n,k,lam", CVX_CASES)
def test_ksupport_prox_matches_convex_solver(x64, n, k, lam):
  rng = np.random.default_rng(n * 100 + k)
  v = rng.standard_normal(n) * rng.uniform(0.5, 3.0)
  got = np.asarray(reg.ksupport_prox(jnp.asarray(v), k, lam))
  solver = cvx_ksupport_prox(v, k, lam)
  # A conic solver's prox is good to ~1e-5 (its gap is ~1e-9, the objective
  # is 1-strongly convex); the objective tells which point is better.
  np.testing.assert_allclose(got, solver, atol=5e-5)
  objective = lambda w: 0.5 * np.sum((w - v) ** 2) + lam * float(reg.sparse_envelope(jnp.asarray(w), k))
  assert objective(got) <= objective(solver) + 1e-12
  for direction in rng.standard_normal((20, n)):
    assert objective(got) <= objective(got + 1e-4 * direction) + 1e-12


@pytest.mark.parametrize("n,k", [(7, 2), (9, 3), (8, 5)])
def test_ksupport_norm_matches_convex_solver(x64, n, k):
  rng = np.random.default_rng(n + 10 * k)
  w = rng.standard_normal(n)
  w[rng.random(n) < 0.2] = 0.0
  got = float(reg.ksupport_norm(jnp.asarray(w), k)) ** 2
  np.testing.assert_allclose(got, cvx_ksupport_squared(w, k), rtol=1e-6, atol=1e-8)
  np.testing.assert_allclose(float(reg.sparse_envelope(jnp.asarray(w), k)), got / 2, rtol=1e-12)


# A few lengths only: every (length, k) pair compiles the prox once.
vectors = hnp.arrays(
    np.float64, st.sampled_from([1, 2, 3, 4, 6]),
    elements=st.one_of(st.just(0.0), st.floats(-10, 10, allow_subnormal=False),
                       st.sampled_from([1.0, -1.0, 2.0])))
strengths = st.sampled_from([0.0, 1e-3, 0.3, 1.0, 4.0, 100.0])


@hypothesis.given(v=vectors, k=st.integers(1, 8), lam=strengths)
def test_ksupport_prox_matches_two_index_search(v, k, lam):
  with jax.enable_x64(True):
    got = np.asarray(reg.ksupport_prox(jnp.asarray(v), k, lam))
    np.testing.assert_allclose(got, two_index_prox(v, k, lam), atol=1e-9 * max(1, np.abs(v).max()))


@hypothesis.given(v=vectors, lam=strengths)
def test_k1_is_the_prox_of_half_squared_l1(v, lam):
  with jax.enable_x64(True):
    got = np.asarray(reg.ksupport_prox(jnp.asarray(v), 1, lam))
    np.testing.assert_allclose(got, squared_l1_prox(v, lam), atol=1e-9 * max(1, np.abs(v).max()))


@hypothesis.given(v=vectors, lam=strengths, extra=st.integers(0, 3))
def test_k_at_least_n_is_plain_shrinkage(v, lam, extra):
  with jax.enable_x64(True):
    got = np.asarray(reg.ksupport_prox(jnp.asarray(v), v.size + extra, lam))
    np.testing.assert_allclose(got, v / (1 + lam), rtol=1e-14, atol=0)


@hypothesis.given(v=vectors, k=st.integers(1, 8), lam=strengths, scale=st.floats(0.01, 100),
                  seed=st.integers(0, 2**16))
def test_ksupport_prox_equivariance_and_nonexpansiveness(v, k, lam, scale, seed):
  with jax.enable_x64(True):
    rng = np.random.default_rng(seed)
    prox = lambda u: np.asarray(reg.ksupport_prox(jnp.asarray(u), k, lam))
    p = prox(v)
    tol = 1e-9 * max(1, np.abs(v).max())
    perm, signs = rng.permutation(v.size), rng.choice([-1.0, 1.0], v.size)
    np.testing.assert_allclose(prox(signs * v[perm]), signs * p[perm], atol=tol)
    np.testing.assert_allclose(prox(scale * v), scale * p, atol=tol * scale)
    other = v + rng.standard_normal(v.size)
    assert np.linalg.norm(prox(other) - p) <= np.linalg.norm(other - v) * (1 + 1e-12) + tol
    assert np.all(np.abs(p) <= np.abs(v) + tol) and np.all(p * v >= -tol)


@hypothesis.given(v=vectors, k=st.integers(1, 8))
def test_sparse_envelope_is_the_convex_envelope(v, k):
  """½‖v‖² ≤ s_k(v) ≤ ½‖v‖₁², equal to ½‖v‖² on k-sparse vectors and ½‖v‖₁² for k=1."""
  with jax.enable_x64(True):
    value = float(reg.sparse_envelope(jnp.asarray(v), k))
    l2, l1 = 0.5 * np.sum(v ** 2), 0.5 * np.sum(np.abs(v)) ** 2
    assert l2 * (1 - 1e-12) - 1e-12 <= value <= l1 * (1 + 1e-12) + 1e-12
    if np.count_nonzero(v) <= k:
      np.testing.assert_allclose(value, l2, rtol=1e-12, atol=1e-12)
    if k == 1:
      np.testing.assert_allclose(value, l1, rtol=1e-12, atol=1e-12)


def test_ksupport_prox_under_jit_vmap_and_grad():
  rng = np.random.default_rng(0)
  batch = jnp.asarray(rng.standard_normal((5, 12)), jnp.float32)
  strengths = jnp.asarray([0.0, 0.1, 1.0, 3.0, 10.0], jnp.float32)
  jitted = jax.jit(reg.ksupport_prox, static_argnames="k")
  mapped = jax.vmap(lambda v, s: jitted(v, 3, s))(batch, strengths)
  for row, v, s in zip(mapped, batch, strengths):
    np.testing.assert_allclose(row, two_index_prox(np.asarray(v, np.float64), 3, float(s)),
                               rtol=1e-5, atol=1e-6)
  assert mapped.dtype == jnp.float32
  grad = jax.grad(lambda v: jnp.sum(reg.ksupport_prox(v, 3, 1.0) ** 2))(batch[0])
  assert np.all(np.isfinite(grad))
  zero = reg.ksupport_prox(jnp.zeros(4, jnp.bfloat16), 2, 1.0)
  assert zero.dtype == jnp.bfloat16
  np.testing.assert_array_equal(zero, np.zeros(4))


def test_bad_static_input_raises():
  v = jnp.ones(4)
  with pytest.raises(ValueError, match="k must be >= 1"):
    reg.ksupport_prox(v, 0, 1.0)
  with pytest.raises(TypeError, match="k must be an int"):
    reg.ksupport_prox(v, 2.0, 1.0)
  with pytest.raises(TypeError, match="k must be an int"):
    reg.ksupport_prox(v, True, 1.0)
  with pytest.raises(ValueError, match="strength must be >= 0"):
    reg.ksupport_prox(v, 2, -1.0)
  with pytest.raises(TypeError, match="real floating"):
    reg.ksupport_prox(jnp.ones(4, jnp.int32), 2, 1.0)
  with pytest.raises(TypeError, match="static"):
    jax.jit(lambda k: reg.ksupport_prox(v, k, 1.0))(2)
  with pytest.raises(ValueError, match="out of range"):
    reg.group_sparse_envelope_prox(jnp.ones((2, 3)), 1, 1.0, axis=2)
  with pytest.raises(ValueError, match="exactly one"):
    reg.prune_by_magnitude({"w": jnp.ones((2, 2))})
  with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
    reg.magnitude_mask({"w": jnp.ones((2, 2))}, 1.5)


# --------------------------------------------------------------------------
# GSEF.


@pytest.mark.parametrize("shape,axis,k,lam", [
    ((8, 5), -1, 2, 0.5), ((8, 5), 0, 1, 2.0), ((3, 3, 4, 6), (0, 1, 3), 3, 0.05),
    ((6, 4), -1, 6, 1.0)])
def test_group_prox_is_the_vector_prox_of_the_group_norms(x64, shape, axis, k, lam):
  rng = np.random.default_rng(len(shape) + k)
  x = rng.standard_normal(shape)
  axes = (axis,) if isinstance(axis, int) else axis
  # Zero one whole group: it must stay zero, without NaN.
  kept_axes = [ax for ax in range(len(shape)) if ax not in [a % len(shape) for a in axes]]
  index = [slice(None)] * len(shape)
  index[kept_axes[0]] = 1
  x[tuple(index)] = 0.0
  norms = np.sqrt((x ** 2).sum(axis=axes, keepdims=True))
  t = two_index_prox(norms.ravel(), k, lam).reshape(norms.shape)
  want = x * np.where(norms > 0, t / np.where(norms > 0, norms, 1), 0)
  got = np.asarray(reg.group_sparse_envelope_prox(jnp.asarray(x), k, lam, axis=axis))
  np.testing.assert_allclose(got, want, atol=1e-12)
  assert np.all(got[tuple(index)] == 0.0)
  np.testing.assert_allclose(float(reg.group_sparse_envelope(jnp.asarray(x), k, axis=axis)),
                             float(reg.sparse_envelope(jnp.asarray(norms), k)), rtol=1e-12)


def test_keep_top_groups():
  x = jnp.asarray([[1.0, 1.0], [3.0, 0.0], [0.0, -2.0], [1.0, -1.0], [0.0, 0.0]])
  np.testing.assert_array_equal(reg.keep_top_groups(x, 2), [[0, 0], [3, 0], [0, -2], [0, 0], [0, 0]])
  # Rows 0 and 3 tie (norm √2): the lower index wins.
  np.testing.assert_array_equal(reg.keep_top_groups(x, 3)[:, 0], [1, 3, 0, 0, 0])
  np.testing.assert_array_equal(reg.keep_top_groups(x, 5), x)
  np.testing.assert_array_equal(reg.keep_top_groups(x, 0), np.zeros((5, 2)))
  # Columns as groups (axis=0): the column of norm √11 stays.
  np.testing.assert_array_equal(reg.keep_top_groups(x, 1, axis=0)[:, 1], 0.0)
  rng = np.random.default_rng(0)
  conv = jnp.asarray(rng.standard_normal((3, 3, 6, 4)), jnp.float32)
  kept = np.asarray(reg.keep_top_groups(conv, 2, axis=(0, 1, 3)))
  norms = np.linalg.norm(np.asarray(conv).transpose(2, 0, 1, 3).reshape(6, -1), axis=1)
  alive = np.abs(kept).transpose(2, 0, 1, 3).reshape(6, -1).sum(axis=1) > 0
  np.testing.assert_array_equal(np.flatnonzero(alive), np.sort(np.argsort(-norms)[:2]))


def make_params(seed=0):
  rng = np.random.default_rng(seed)
  return {"conv": {"kernel": jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.float32),
                   "bias": jnp.asarray(rng.standard_normal(4), jnp.float32)},
          "dense": {"kernel": jnp.asarray(rng.standard_normal((8, 5)), jnp.float32),
                    "bias": jnp.zeros(5, jnp.float32)}}


def test_gsef_chain_is_a_step_then_the_group_prox():
  params = make_params()
  grads = jax.tree.map(lambda p: jnp.ones_like(p), params)
  k = {"conv": {"kernel": 1, "bias": None}, "dense": {"kernel": 3, "bias": None}}
  tx = optax.chain(optax.sgd(0.1), reg.gsef(k, 0.5))
  new = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
  stepped = jax.tree.map(lambda p: p - 0.1, params)
  # Default groups="in": one group per input feature, axis -2 kept.
  np.testing.assert_allclose(new["conv"]["kernel"], reg.group_sparse_envelope_prox(
      stepped["conv"]["kernel"], 1, 0.5, axis=(0, 1, 3)), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(new["dense"]["kernel"], reg.group_sparse_envelope_prox(
      stepped["dense"]["kernel"], 3, 0.5, axis=-1), rtol=1e-6, atol=1e-6)
  for layer in ("conv", "dense"):
    np.testing.assert_array_equal(new[layer]["bias"], stepped[layer]["bias"])
  # groups="out" and a callable selecting the dense kernel only.
  only_dense = lambda path, leaf: 2 if path[0].key == "dense" and leaf.ndim == 2 else None
  tx = optax.chain(optax.sgd(0.1), reg.gsef(only_dense, 0.5, groups="out"))
  new = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])
  np.testing.assert_allclose(new["conv"]["kernel"], stepped["conv"]["kernel"], rtol=1e-6)
  np.testing.assert_allclose(new["dense"]["kernel"], reg.group_sparse_envelope_prox(
      stepped["dense"]["kernel"], 2, 0.5, axis=0), rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match="needs the parameters"):
    tx.update(grads, tx.init(params))
  with pytest.raises(ValueError, match="groups must be one of"):
    reg.gsef(2, 0.5, groups="rows")
  with pytest.raises(ValueError, match="does not match"):
    reg.gsef({"dense": 2}, 0.5).init(params)
  trimmed = reg.tree_keep_top_groups(params, k)
  np.testing.assert_array_equal(trimmed["dense"]["kernel"],
                                reg.keep_top_groups(params["dense"]["kernel"], 3))
  np.testing.assert_array_equal(trimmed["dense"]["bias"], params["dense"]["bias"])


# --------------------------------------------------------------------------
# The planted problem: y depends on the first 4 of 24 input features.

STEPS, LR = 100, 0.1


def planted(seed=0):
  rng = np.random.default_rng(seed)
  signal = rng.uniform(1.0, 2.0, (4, 3)) * rng.choice([-1, 1], (4, 3))
  x = jnp.asarray(rng.standard_normal((256, 24)), jnp.float32)
  y = x[:, :4] @ signal + 0.05 * rng.standard_normal((256, 3))
  init = {"kernel": jnp.asarray(0.1 * rng.standard_normal((24, 3)), jnp.float32),
          "bias": jnp.zeros(3, jnp.float32)}
  mse = lambda p: jnp.mean((x @ p["kernel"] + p["bias"] - y) ** 2)
  return init, mse


def train(loss, params, tx, steps=STEPS):
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    updates, state = tx.update(jax.grad(loss)(params), state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(steps):
    params, state = step(params, state)
  return params


def adam():
  return optax.adam(optax.linear_schedule(LR, 0.0, STEPS))


@pytest.fixture(scope="module")
def plain_adam():
  init, mse = planted()
  return train(mse, init, adam())


def small_fraction(kernel, tol=1e-3):
  return float(np.mean(np.abs(np.asarray(kernel)) < tol))


def test_gsef_finds_the_planted_groups(plain_adam):
  init, mse = planted()
  trained = train(mse, init, optax.chain(adam(), reg.gsef(4, 0.002)))
  norms = np.linalg.norm(np.asarray(trained["kernel"]), axis=1)
  adam_norms = np.linalg.norm(np.asarray(plain_adam["kernel"]), axis=1)
  assert np.all(adam_norms > 0)  # plain Adam removes no group
  assert np.sum(norms == 0) > 15 and np.all(norms[:4] > 1.0)
  final = reg.tree_keep_top_groups(trained, 4)
  final_norms = np.linalg.norm(np.asarray(final["kernel"]), axis=1)
  np.testing.assert_array_equal(np.flatnonzero(final_norms), [0, 1, 2, 3])
  assert float(mse(final)) < 0.1


def test_l1_over_l2_value_and_gradient(x64):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((5, 4))
  x[2] = 0.0
  for axis in (-1, 0, None):
    np_axis = axis if axis is not None else (0, 1)
    np.testing.assert_allclose(float(reg.l1_over_l2_penalty(jnp.asarray(x), axis=axis)),
                               numpy_l1_over_l2(x, np_axis), rtol=1e-12)
  grad = np.asarray(jax.grad(lambda v: reg.l1_over_l2_penalty(v, axis=-1))(jnp.asarray(x)))
  assert np.all(np.isfinite(grad)) and np.all(grad[2] == 0.0)
  h = 1e-6
  for i, j in [(0, 0), (1, 3), (4, 2)]:
    bump = np.zeros_like(x)
    bump[i, j] = h
    numeric = (numpy_l1_over_l2(x + bump, -1) - numpy_l1_over_l2(x - bump, -1)) / (2 * h)
    np.testing.assert_allclose(grad[i, j], numeric, rtol=1e-6, atol=1e-8)
  # Scale invariance: the gradient is orthogonal to each group.
  np.testing.assert_allclose((grad * x).sum(axis=1), 0.0, atol=1e-12)


def test_l1_over_l2_at_zero_is_finite():
  zero = jnp.zeros((3, 4))
  assert float(reg.l1_over_l2_penalty(zero)) == 0.0
  assert float(reg.l1_over_l2_penalty(zero, axis=None)) == 0.0
  grad = jax.grad(reg.l1_over_l2_penalty)(zero)
  np.testing.assert_array_equal(grad, np.zeros((3, 4)))
  params = make_params()
  total = reg.tree_l1_over_l2_penalty(params)
  want = (numpy_l1_over_l2(np.asarray(params["conv"]["kernel"]), (0, 1, 2))
          + numpy_l1_over_l2(np.asarray(params["dense"]["kernel"]), 0))
  np.testing.assert_allclose(float(total), want, rtol=1e-5)
  grads = jax.jit(jax.grad(reg.tree_l1_over_l2_penalty))(params)
  assert float(jnp.abs(grads["conv"]["bias"]).sum()) == 0.0


def test_l1_over_l2_sparsifies_more_than_adam(plain_adam):
  init, mse = planted()
  trained = train(lambda p: mse(p) + 0.03 * reg.tree_l1_over_l2_penalty(p), init, adam())
  assert small_fraction(trained["kernel"]) > small_fraction(plain_adam["kernel"]) + 0.4
  assert float(mse(trained)) < 0.01


# --------------------------------------------------------------------------
# HALO.


def test_halo_penalty_and_gradients_by_hand(x64):
  rng = np.random.default_rng(0)
  w = rng.standard_normal((3, 4))
  lam = rng.uniform(0.3, 2.0, (3, 4)) * rng.choice([-1, 1], (3, 4))
  params = {"w": jnp.asarray(w), "b": jnp.asarray(rng.standard_normal(4))}
  scales = {"w": jnp.asarray(lam), "b": None}
  xi, psi = 0.7, 0.2
  value = float(reg.halo_penalty(params, scales, xi, psi))
  np.testing.assert_allclose(value, xi * np.sum(np.abs(w) / lam ** 2) + psi * np.sum(np.abs(lam)),
                             rtol=1e-12)
  g_params, g_scales = jax.grad(reg.halo_penalty, argnums=(0, 1))(params, scales, xi, psi)
  np.testing.assert_allclose(g_params["w"], xi * np.sign(w) / lam ** 2, rtol=1e-12)
  np.testing.assert_allclose(g_params["b"], 0.0)
  np.testing.assert_allclose(g_scales["w"], -2 * xi * np.abs(w) / lam ** 3 + psi * np.sign(lam),
                             rtol=1e-12)
  assert g_scales["b"] is None
  init = reg.halo_scales(params, 0.5)
  assert init["b"] is None and init["w"].shape == (3, 4) and np.all(init["w"] == 0.5)
  with pytest.raises(ValueError, match="structure"):
    reg.halo_penalty(params, {"w": jnp.asarray(lam)}, xi, psi)
  with pytest.raises(ValueError, match="one scale per weight"):
    reg.halo_penalty(params, {"w": jnp.ones(3), "b": None}, xi, psi)
  with pytest.raises(ValueError, match="positive"):
    reg.halo_scales(params, 0.0)


def test_halo_scales_descend_to_the_closed_form(x64):
  rng = np.random.default_rng(1)
  w = rng.uniform(0.1, 3.0, (4, 5)) * rng.choice([-1, 1], (4, 5))
  params = {"w": jnp.asarray(w)}
  xi, psi = 1.0, 2.0
  best = np.asarray(reg.halo_optimal_scales(params, xi, psi)["w"])
  np.testing.assert_allclose(best, np.cbrt(2 * xi * np.abs(w) / psi), rtol=1e-12)
  scales = reg.halo_scales(params, 1.0)
  opt = optax.sgd(0.02)
  state = opt.init(scales)
  grad = jax.jit(jax.grad(lambda s: reg.halo_penalty(params, s, xi, psi)))
  distance = np.abs(1.0 - best)
  for _ in range(300):
    updates, state = opt.update(grad(scales), state)
    scales = optax.apply_updates(scales, updates)
    now = np.abs(np.asarray(scales["w"]) - best)
    assert np.all(now <= distance + 1e-12)
    distance = now
  np.testing.assert_allclose(scales["w"], best, atol=1e-6)


def test_halo_sparsifies_more_than_adam(plain_adam):
  init, mse = planted()

  def loss(both):
    params, scales = both
    return mse(params) + reg.halo_penalty(params, scales, 1e-3, 1e-3)

  trained, _ = train(loss, (init, reg.halo_scales(init)), adam())
  assert small_fraction(trained["kernel"]) > small_fraction(plain_adam["kernel"]) + 0.3
  # HALO ends with global magnitude pruning: keep 12 of 72 weights, the planted ones.
  pruned = reg.prune_by_magnitude(trained, fraction=60 / 72)
  alive = np.asarray(pruned["kernel"]) != 0
  np.testing.assert_array_equal(alive, np.arange(24)[:, None] < np.full((24, 3), 4))
  np.testing.assert_array_equal(pruned["bias"], trained["bias"])
  assert float(mse(pruned)) < 0.01


# --------------------------------------------------------------------------
# Magnitude pruning.


def test_magnitude_mask_rounds_remove_the_exact_count():
  rng = np.random.default_rng(0)
  params = {"a": jnp.asarray(rng.standard_normal((10, 7)), jnp.float32),
            "b": jnp.asarray(rng.standard_normal((3, 3, 2, 5)), jnp.float32),
            "bias": jnp.asarray(rng.standard_normal(5), jnp.float32)}
  magnitudes = np.concatenate([np.abs(np.asarray(params["a"])).ravel(),
                               np.abs(np.asarray(params["b"])).ravel()])
  alive = np.ones(magnitudes.size, bool)
  mask = None
  for _ in range(4):
    new = reg.magnitude_mask(params, 0.2, mask)
    assert new["bias"] is None
    flat = np.concatenate([np.asarray(new["a"]).ravel(), np.asarray(new["b"]).ravel()])
    removed = alive & ~flat
    assert not np.any(flat & ~alive)  # pruned entries stay pruned
    assert removed.sum() == int(np.floor(0.2 * alive.sum() + 0.5))
    # Globally the smallest of the survivors.
    assert magnitudes[removed].max() <= magnitudes[flat].min()
    alive, mask = flat, new
  assert alive.sum() == 160 - 32 - 26 - 20 - 16
  # A jitted round agrees.
  jitted = jax.jit(reg.magnitude_mask)(params, 0.2, mask)
  round_5 = reg.magnitude_mask(params, 0.2, mask)
  for leaf in ("a", "b"):
    np.testing.assert_array_equal(jitted[leaf], round_5[leaf])


def test_magnitude_mask_selection_and_ties():
  params = {"first": jnp.ones((2, 3)), "second": jnp.ones((2, 2)), "bias": jnp.ones(3)}
  mask = reg.magnitude_mask(params, 0.5)
  # 10 equal weights: the first 5 in flattened order go.
  np.testing.assert_array_equal(mask["first"], [[False, False, False], [False, False, True]])
  np.testing.assert_array_equal(mask["second"], np.ones((2, 2), bool))
  only_second = reg.magnitude_mask(params, 0.5, selected={"first": None, "second": True,
                                                          "bias": None})
  assert only_second["first"] is None and only_second["bias"] is None
  np.testing.assert_array_equal(only_second["second"], [[False, False], [True, True]])
  with_bias = reg.magnitude_mask(params, 0.0, selected=lambda path, leaf: True)
  assert with_bias["bias"].shape == (3,) and bool(with_bias["bias"].all())
  pruned = reg.prune_by_magnitude({"w": jnp.asarray([[0.1, -0.5], [0.5, 2.0]])}, threshold=0.5)
  np.testing.assert_array_equal(pruned["w"], [[0.0, 0.0], [0.0, 2.0]])
  previous = {"w": jnp.asarray([[True, True], [True, False]])}
  pruned = reg.prune_by_magnitude({"w": jnp.asarray([[0.1, -0.5], [0.5, 2.0]])},
                                  fraction=1 / 3, mask=previous)
  np.testing.assert_array_equal(pruned["w"], [[0.0, -0.5], [0.5, 0.0]])


def test_iterative_magnitude_pruning_keeps_the_planted_weights(plain_adam):
  init, mse = planted()
  mask = None
  params = init
  for _ in range(3):  # Frankle & Carbin: 20 % per round, rewind, retrain
    tx = adam() if mask is None else lottery.retrain_optimizer(adam(), mask)
    trained = train(mse, params, tx)
    mask = reg.magnitude_mask(trained, 0.2, mask)
    params = lottery.rewind(init, mask)
  kept = np.asarray(mask["kernel"])
  assert kept.sum() == 72 - 14 - 12 - 9
  assert np.all(kept[:4])
  final = train(mse, params, lottery.retrain_optimizer(adam(), mask))
  assert np.all(np.asarray(final["kernel"])[~kept] == 0.0)
  assert small_fraction(final["kernel"]) > small_fraction(plain_adam["kernel"]) + 0.3
  assert float(mse(final)) < 0.01
  assert sparse_optax.regularizers is reg
