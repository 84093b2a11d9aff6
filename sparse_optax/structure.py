"""Which units of any Flax NNX model can be removed, traced from its forward pass.

:func:`analyze` traces ``model(x)`` (in inference mode, for one example) with
:func:`jax.make_jaxpr` and follows every tensor axis through the operations,
in the manner of DepGraph (Fang et al., CVPR 2023): the slices that must go
together form one *unit*. Through a residual addition the channels of both
branches and of the sum are one unit; through a flattening, a channel and
every feature it becomes; through attention, a head's query, key, value and
output slices. A unit is removable when

* one of its slices is a slice of a parameter (or of a batch statistic),
* no slice of it is needed: changing it cannot change the model's output.
  A slice is not needed when every path from it to the output passes a
  multiplication by an exact zero (a zero row of a kernel, a zero scale), or
  when its value is exactly 0 for every input and it only enters sums;
* it touches neither the model's input nor its output, nor an axis whose size
  the code fixes (a reduction or mean over units, a slice or split, padding,
  the spatial or token axes), so that removing it leaves the code valid.

Unlike the analysis of :class:`~sparse_optax.models.LayerStack` in
:mod:`sparse_optax.metrics`, a unit whose value is a non-zero constant is kept
(its value is not folded into a bias), and the model's input features are
kept (the compacted model takes the same input).

The operations followed (:data:`ELEMENTWISE`, :data:`STRUCTURAL`, plus
``dot_general``, ``conv_general_dilated`` and calls of nested functions) cover
dense, convolutional (depthwise included), residual, pooling, batch-norm,
layer-norm, activation, concatenation and attention layers. Any other
operation (a sort, a gather, a loop, a custom call) raises a ``ValueError``
naming it and the layer it follows: the analysis never guesses.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

ELEMENTWISE = frozenset("""
    abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp conj
    convert_element_type copy copy_p cos cosh digamma div eq erf erf_inv erfc exp
    exp2 expm1 floor ge gt imag integer_pow is_finite le lgamma log log1p logistic
    lt max min mul ne neg nextafter not or pow real reduce_precision rem round
    rsqrt select_n sign sin sinh sqrt square stop_gradient sub tan tanh xor
    """.split())
STRUCTURAL = frozenset("""
    argmax argmin broadcast_in_dim concatenate iota pad reduce_and reduce_max
    reduce_min reduce_or reduce_prod reduce_sum reduce_window_max reduce_window_min
    reduce_window_sum reshape slice split squeeze stack transpose
    """.split())
CONTRACTIONS = frozenset(("dot_general", "conv_general_dilated"))
_VIEWS = frozenset(("convert_element_type", "copy", "copy_p", "reduce_precision"))
_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr",
          "core_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
          "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr",
          "remat": "jaxpr", "remat2": "jaxpr", "checkpoint": "jaxpr"}


class _Units:
  """Union-find over the indices of every tensor axis, with flags per unit."""

  def __init__(self):
    self.parent: list[int] = []
    self.pinned: list[bool] = []

  def new(self, size: int, *, pinned: bool = False) -> np.ndarray:
    start = len(self.parent)
    self.parent.extend(range(start, start + size))
    self.pinned.extend([pinned] * size)
    return np.arange(start, start + size)

  def find(self, node: int) -> int:
    root = node
    while self.parent[root] != root:
      root = self.parent[root]
    while self.parent[node] != root:
      self.parent[node], node = root, self.parent[node]
    return root

  def union(self, a: np.ndarray, b: np.ndarray):
    for x, y in zip(np.asarray(a).tolist(), np.asarray(b).tolist()):
      rx, ry = self.find(x), self.find(y)
      if rx != ry:
        self.parent[ry] = rx
        self.pinned[rx] = self.pinned[rx] or self.pinned[ry]

  def pin(self, nodes: np.ndarray):
    for x in np.asarray(nodes).tolist():
      self.pinned[self.find(x)] = True

  def roots(self, nodes: np.ndarray) -> np.ndarray:
    return np.array([self.find(x) for x in np.asarray(nodes).tolist()], dtype=np.int64)


@dataclasses.dataclass(eq=False)
class _Tensor:
  value: np.ndarray
  dep: np.ndarray  # True where the value depends on the model's input
  axes: list[np.ndarray]  # unit ids of each axis' indices
  origin: str  # the layer that produced it, for messages and reports
  leaf: int | None = None  # index of the state leaf it is, if it is one
  view: int | None = None  # the state leaf it is a copy of (a cast, a reshape)
  needed: np.ndarray | None = None

  @property
  def nonzero(self) -> np.ndarray:
    """True where the value may be non-zero for some input."""
    return self.dep | (self.value != 0)


@dataclasses.dataclass(frozen=True)
class Contraction:
  """One ``dot_general`` or convolution of the forward pass, for one example.

  Attributes:
    layer: the module whose parameter it multiplies (a dotted path), or, for
      a product of two activations (attention scores and values), the
      innermost module that holds the layers of both.
    leaf: index of that parameter among the state leaves, or None.
    maccs_dense: multiply-accumulates as the model stands.
    maccs_effective: those that remain once the removable units are gone.
  """

  layer: str
  leaf: int | None
  maccs_dense: int
  maccs_effective: int


@dataclasses.dataclass(frozen=True)
class Analysis:
  """The traced structure of a model: see :func:`analyze`.

  Attributes:
    paths: the path of each state leaf, in ``nnx.state(model)`` order.
    leaves: the leaves themselves (NumPy arrays).
    kept: for each leaf, one boolean mask per axis: the indices it keeps.
    roles: for each leaf used as the parameter of a contraction, the axes it
      contracts (its inputs) and the axes it keeps (its outputs).
    free: for each leaf, one boolean per axis: True when its units are not
      pinned (zeroing a slice along that axis can let the unit go).
    contractions: every contraction of the forward pass, in order.
    layers: the modules that hold state or contract, in forward order.
    modules: the model's submodules by dotted path.
  """

  paths: tuple[tuple, ...]
  leaves: tuple[np.ndarray, ...]
  kept: tuple[tuple[np.ndarray, ...], ...]
  roles: dict[int, tuple[tuple[int, ...], tuple[int, ...]]]
  free: tuple[tuple[bool, ...], ...]
  contractions: tuple[Contraction, ...]
  layers: tuple[str, ...]
  modules: dict[str, Any]

  def layer_of(self, leaf: int) -> str:
    """The dotted path of the module that holds state leaf ``leaf``."""
    return layer_name(self.paths[leaf])


def dotted(path) -> str:
  """``("block", 0, "conv")`` → ``"block.0.conv"`` (keys of any jax path)."""
  names = []
  for key in path:
    name = getattr(key, "key", getattr(key, "name", getattr(key, "idx", key)))
    names.append(str(name))
  return ".".join(names)


def layer_name(path) -> str:
  """The dotted path of the module that holds the leaf at ``path``.

  ``("blocks", 0, "conv2", "kernel")`` → ``"blocks.0.conv2"``; the ``value``
  key of a Flax variable, if the path has it, is not part of the name.
  """
  names = dotted(path).split(".")
  if names and names[-1] == "value":
    names = names[:-1]
  return ".".join(names[:-1])


def _common_prefix(names: list[str]) -> str:
  parts = [n.split(".") for n in names if n]
  if not parts:
    return ""
  common = []
  for pieces in zip(*parts):
    if len(set(pieces)) != 1:
      break
    common.append(pieces[0])
  return ".".join(common)


def _unbroadcast(mask: np.ndarray, shape) -> np.ndarray:
  """``mask`` reduced (any) onto an operand that was broadcast to its shape."""
  if len(shape) < mask.ndim:
    mask = mask.reshape(-1, *mask.shape[mask.ndim - len(shape):]).any(axis=0)
  axes = tuple(k for k, (m, s) in enumerate(zip(mask.shape, shape)) if s == 1 and m != 1)
  return mask.any(axis=axes, keepdims=True) if axes else mask


def _float(mask) -> jax.Array:
  return jnp.asarray(mask, jnp.float32)


def _reaches(fn: Callable, masks: list) -> np.ndarray:
  return np.asarray(fn(*[_float(m) for m in masks])) > 0


def _pulls(fn: Callable, masks: list, needed: np.ndarray, which: int) -> np.ndarray:
  """Which entries of operand ``which`` of the linear ``fn`` reach a needed output."""
  args = [_float(m) for m in masks]

  def of_one(arg):
    return fn(*args[:which], arg, *args[which + 1:])

  _, pull = jax.vjp(of_one, args[which])
  return np.asarray(pull(_float(needed))[0]) > 0


def _surrogate(name: str, params: dict) -> Callable:
  """A linear function on float masks with the operation's data movement."""
  if name in ("reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or"):
    return lambda m: jnp.sum(m, axis=tuple(params["axes"]))
  if name in ("argmax", "argmin"):
    return lambda m: jnp.sum(m, axis=tuple(params["axes"]))
  if name in ("reduce_window_max", "reduce_window_min", "reduce_window_sum"):
    keys = ("window_dimensions", "window_strides", "padding", "base_dilation", "window_dilation")
    return lambda m: lax.reduce_window(m, 0.0, lax.add, *(params[k] for k in keys))
  if name == "pad":
    return lambda m, _: lax.pad(m, 0.0, params["padding_config"])
  primitive = getattr(lax, f"{name}_p")
  if name in CONTRACTIONS:
    params = dict(params, preferred_element_type=jnp.float32)
  return lambda *masks: primitive.bind(*masks, **params)


class _Tracer:
  """Walks a jaxpr once forward (values, input dependence, units) and once back."""

  def __init__(self, paths):
    self.units = _Units()
    self.paths = paths
    self.tape: list[tuple[str, dict, list[_Tensor], list[_Tensor]]] = []
    self.contractions: list[tuple[str, int | None, dict, list[_Tensor], _Tensor]] = []
    self.roles: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}

  # -- building tensors ---------------------------------------------------------

  def tensor(self, value, dep, origin, *, pinned=False, leaf=None) -> _Tensor:
    value = np.asarray(value)
    axes = [self.units.new(size, pinned=pinned) for size in value.shape]
    return _Tensor(value, np.broadcast_to(np.asarray(dep, bool), value.shape).copy(),
                   axes, origin, leaf, leaf)

  def literal(self, value) -> _Tensor:
    return self.tensor(value, False, "")

  # -- forward ------------------------------------------------------------------

  def run(self, jaxpr, consts, args: list[_Tensor]) -> list[_Tensor]:
    env: dict[Any, _Tensor] = {}

    def read(var) -> _Tensor:
      if hasattr(var, "val") and not hasattr(var, "count"):  # a Literal
        return self.literal(var.val)
      return env[var]

    for var, const in zip(jaxpr.constvars, consts):
      env[var] = self.literal(const)
    for var, arg in zip(jaxpr.invars, args):
      env[var] = arg
    for eqn in jaxpr.eqns:
      ins = [read(v) for v in eqn.invars]
      outs = self.equation(eqn, ins)
      for var, out in zip(eqn.outvars, outs):
        env[var] = out
    return [read(v) for v in jaxpr.outvars]

  def equation(self, eqn, ins: list[_Tensor]) -> list[_Tensor]:
    name, params = eqn.primitive.name, eqn.params
    origin = _common_prefix([t.origin for t in ins])
    if name in _CALLS:
      inner = params[_CALLS[name]]
      consts = getattr(inner, "consts", ())
      return self.run(getattr(inner, "jaxpr", inner), consts, ins)
    if name not in ELEMENTWISE | STRUCTURAL | CONTRACTIONS:
      where = f" after layer `{origin}`" if origin else " before the first layer"
      raise ValueError(
          f"sparse_optax.structure: cannot follow the operation `{name}`{where}; the "
          "analysis follows dense, convolution, attention, normalisation, pooling, "
          "reshaping and elementwise operations only (see sparse_optax.structure).")
    values = eqn.primitive.bind(*[t.value for t in ins], **params)
    values = values if eqn.primitive.multiple_results else [values]
    outs = [self.tensor(v, False, origin) for v in values]
    if name in _VIEWS or (name == "reshape" and params.get("dimensions") is None):
      outs[0].view = ins[0].view
    if name in ELEMENTWISE:
      self.elementwise(name, ins, outs[0])
    elif name in CONTRACTIONS:
      self.contraction(name, params, ins, outs[0])
    else:
      self.structural(name, params, ins, outs)
    self.tape.append((name, params, ins, outs))
    return outs

  def elementwise(self, name, ins, out):
    for t in ins:
      if t.value.ndim == out.value.ndim:
        for a, b in zip(t.axes, out.axes):
          if len(a) == len(b):
            self.units.union(a, b)
    deps = [np.broadcast_to(t.dep, out.value.shape) for t in ins]
    out.dep = np.logical_or.reduce(deps) if deps else out.dep
    if name == "mul":  # a factor that is exactly 0 for every input makes the product so
      for t in ins:
        out.dep &= np.broadcast_to(t.nonzero, out.value.shape)

  def structural(self, name, params, ins, outs):
    source, out = ins[0], outs[0]
    fn = _surrogate(name, params)
    if name == "iota":
      self.units.pin(np.concatenate(out.axes) if out.axes else np.array([], int))
      return
    pin = self.units.pin
    if name == "split":  # the pieces' sizes are fixed in the code: the axis stays
      axis, start = params["axis"], 0
      for piece in outs:
        size = piece.value.shape[axis]
        piece.dep = np.take(source.dep, np.arange(start, start + size), axis=axis)
        start += size
        for k, (a, b) in enumerate(zip(source.axes, piece.axes)):
          if k == axis:
            pin(np.concatenate([a, b]))
          else:
            self.units.union(a, b)
      return
    out.dep = _reaches(fn, [t.dep for t in ins])
    if name == "stack":  # the new axis indexes the operands
      axis = params["axis"]
      pin(out.axes[axis])
      rest = [a for k, a in enumerate(out.axes) if k != axis]
      for t in ins:
        for a, b in zip(t.axes, rest):
          self.units.union(a, b)
      return
    if name in ("broadcast_in_dim",):
      for k, d in enumerate(params["broadcast_dimensions"]):
        if source.value.shape[k] == out.value.shape[d]:
          self.units.union(source.axes[k], out.axes[d])
    elif name == "transpose":
      for k, d in enumerate(params["permutation"]):
        self.units.union(source.axes[d], out.axes[k])
    elif name == "squeeze":
      dims = {d % source.value.ndim for d in params["dimensions"]}
      kept = [a for d, a in enumerate(source.axes) if d not in dims]
      for a, b in zip(kept, out.axes):
        self.units.union(a, b)
    elif name == "reshape":
      if params.get("dimensions") is not None:
        pin(np.concatenate(source.axes + out.axes))
      else:
        self.reshape(source, out)
    elif name == "concatenate":
      d = params["dimension"]
      offset = 0
      for t in ins:
        for k, (a, b) in enumerate(zip(t.axes, out.axes)):
          if k == d:
            self.units.union(a, b[offset:offset + len(a)])
          else:
            self.units.union(a, b)
        offset += t.value.shape[d]
    elif name in ("pad", "slice"):
      if name == "pad":
        changed = [cfg != (0, 0, 0) for cfg in params["padding_config"]]
      else:
        strides = params["strides"] or (1,) * source.value.ndim
        changed = [(s, l, st) != (0, n, 1) for s, l, st, n in zip(
            params["start_indices"], params["limit_indices"], strides, source.value.shape)]
      for k, (a, b) in enumerate(zip(source.axes, out.axes)):
        if changed[k]:
          pin(np.concatenate([a, b]))
        else:
          self.units.union(a, b)
    elif name.startswith("reduce_window"):
      for k, (a, b) in enumerate(zip(source.axes, out.axes)):
        unchanged = (params["window_dimensions"][k] == 1 and params["window_strides"][k] == 1
                     and tuple(params["padding"][k]) == (0, 0)
                     and params["base_dilation"][k] == 1 and params["window_dilation"][k] == 1)
        if unchanged:
          self.units.union(a, b)
        else:
          pin(np.concatenate([a, b]))
    else:  # reductions: the reduced axes' size is part of the result
      axes = set(params["axes"])
      rest = [a for k, a in enumerate(source.axes) if k not in axes]
      for a, b in zip(rest, out.axes):
        self.units.union(a, b)
      for k in axes:
        pin(source.axes[k])

  def reshape(self, source, out):
    """Couples the axes of a reshape block by block; a merge keeps its minor axis."""
    shape_in, shape_out = source.value.shape, out.value.shape
    i = j = 0
    while i < len(shape_in) or j < len(shape_out):
      start_i, start_j = i, j
      size_in = shape_in[i] if i < len(shape_in) else 1
      size_out = shape_out[j] if j < len(shape_out) else 1
      i, j = i + 1, j + 1
      while size_in != size_out:
        if size_in < size_out:
          size_in *= shape_in[i]
          i += 1
        else:
          size_out *= shape_out[j]
          j += 1
      block_in = [source.axes[k] for k in range(start_i, min(i, len(shape_in)))]
      block_out = [out.axes[k] for k in range(start_j, min(j, len(shape_out)))]
      big_in = [a for a in block_in if len(a) > 1]
      big_out = [a for a in block_out if len(a) > 1]
      if len(big_in) == 1 and len(big_out) == 1:
        self.units.union(big_in[0], big_out[0])
      elif len(big_out) == 1 and big_in:  # a merge, e.g. flattening NHWC: keep C
        minor = big_in[-1]
        self.units.union(minor[np.arange(len(big_out[0])) % len(minor)], big_out[0])
        self.units.pin(np.concatenate(big_in[:-1]))
      elif len(big_in) == 1 and big_out:  # a split: keep the minor axis
        minor = big_out[-1]
        self.units.union(big_in[0], minor[np.arange(len(big_in[0])) % len(minor)])
        self.units.pin(np.concatenate(big_out[:-1]))
      elif big_in or big_out:
        self.units.pin(np.concatenate(big_in + big_out))

  def contraction(self, name, params, ins, out):
    lhs, rhs = ins
    fn = _surrogate(name, params)
    out.dep = (_reaches(fn, [lhs.dep, rhs.nonzero]) | _reaches(fn, [lhs.nonzero, rhs.dep]))
    union, pin = self.units.union, self.units.pin
    if name == "dot_general":
      (lc, rc), (lb, rb) = params["dimension_numbers"]
      for a, b in zip(lc, rc):
        union(lhs.axes[a], rhs.axes[b])
      for k, (a, b) in enumerate(zip(lb, rb)):
        union(lhs.axes[a], rhs.axes[b])
        union(lhs.axes[a], out.axes[k])
      lfree = [k for k in range(lhs.value.ndim) if k not in lc and k not in lb]
      rfree = [k for k in range(rhs.value.ndim) if k not in rc and k not in rb]
      free = [lhs.axes[k] for k in lfree] + [rhs.axes[k] for k in rfree]
      for a, b in zip(free, out.axes[len(lb):]):
        union(a, b)
      if lhs.view is None and rhs.view is None:
        # A product of two activations (attention's scores and values): code
        # such as a 1/sqrt(head_dim) scale or a shape check may read the
        # sizes of the contracted and free axes; only the batch (head) axes go.
        pin(np.concatenate([lhs.axes[k] for k in (*lc, *lfree)]
                           + [rhs.axes[k] for k in (*rc, *rfree)] + [np.array([], int)]))
      param_axes = (rc, rfree) if rhs.view is not None else (lc, lfree)
    else:
      lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
      if params["batch_group_count"] != 1:
        raise ValueError("sparse_optax.structure: cannot follow a convolution with "
                         f"batch_group_count > 1 after layer `{out.origin}`.")
      union(lhs.axes[lhs_spec[0]], out.axes[out_spec[0]])
      union(rhs.axes[rhs_spec[0]], out.axes[out_spec[1]])
      groups = params["feature_group_count"]
      channels_in = lhs.value.shape[lhs_spec[1]]
      if groups == 1:
        union(lhs.axes[lhs_spec[1]], rhs.axes[rhs_spec[1]])
      elif groups == channels_in and rhs.value.shape[rhs_spec[1]] == 1:  # depthwise
        channels_out = out.value.shape[out_spec[1]]
        per_channel = channels_out // channels_in
        union(lhs.axes[lhs_spec[1]][np.arange(channels_out) // per_channel],
              out.axes[out_spec[1]])
        pin(rhs.axes[rhs_spec[1]])
      else:
        pin(np.concatenate([lhs.axes[lhs_spec[1]], rhs.axes[rhs_spec[1]],
                            out.axes[out_spec[1]]]))
      for k in lhs_spec[2:]:
        pin(lhs.axes[k])
      for k in rhs_spec[2:]:  # the taps: the code fixes the kernel size
        pin(rhs.axes[k])
      for k in out_spec[2:]:
        pin(out.axes[k])
      param_axes = ((rhs_spec[1],), (rhs_spec[0],))
    leaf = rhs.view if rhs.view is not None else lhs.view
    if leaf is not None:
      self.roles[leaf] = tuple(tuple(int(a) for a in axes) for axes in param_axes)
      out.origin = layer_name(self.paths[leaf])
    self.contractions.append((name, leaf, dict(params), [lhs, rhs], out))

  # -- backward -----------------------------------------------------------------

  def backward(self, outputs: list[_Tensor]):
    for t in outputs:
      t.needed = np.ones(t.value.shape, bool)
    for name, params, ins, outs in reversed(self.tape):
      needed = [o.needed if o.needed is not None else np.zeros(o.value.shape, bool)
                for o in outs]
      for t, pulled in zip(ins, self.pull(name, params, ins, outs, needed)):
        pulled = np.broadcast_to(pulled, t.value.shape) if pulled.ndim else (
            np.full(t.value.shape, bool(pulled)))
        t.needed = pulled if t.needed is None else t.needed | pulled

  def pull(self, name, params, ins, outs, needed) -> list[np.ndarray]:
    out_needed = needed[0]
    if name in ELEMENTWISE:
      pulled = []
      for k, t in enumerate(ins):
        mask = out_needed
        if name == "mul":
          for other in ins[:k] + ins[k + 1:]:
            mask = mask & np.broadcast_to(other.nonzero, mask.shape)
        pulled.append(_unbroadcast(mask, t.value.shape))
      return pulled
    if name == "iota":
      return []
    fn = _surrogate(name, params)
    if name in CONTRACTIONS:
      lhs, rhs = ins
      constant_zero = [~t.nonzero for t in ins]
      ones = [np.ones(t.value.shape, bool) for t in ins]
      return [_pulls(fn, [ones[0], rhs.nonzero], out_needed, 0) & ~constant_zero[0],
              _pulls(fn, [lhs.nonzero, ones[1]], out_needed, 1) & ~constant_zero[1]]
    if name == "split":
      return [np.concatenate(needed, axis=params["axis"])]
    masks = [np.ones(t.value.shape, bool) for t in ins]
    first = _pulls(fn, masks, out_needed, 0)
    if name in ("concatenate", "stack"):
      return [_pulls(fn, masks, out_needed, k) for k in range(len(ins))]
    return [first] + [np.asarray(out_needed.any())] * (len(ins) - 1)


def _trace(model: nnx.Module, sample_input):
  model = nnx.clone(model)
  model.eval()
  graphdef, state = nnx.split(model)
  flat, treedef = jax.tree_util.tree_flatten_with_path(state)
  paths = tuple(path for path, _ in flat)
  leaves = [leaf for _, leaf in flat]
  shape = (1, *np.shape(sample_input)[1:])
  dtype = getattr(sample_input, "dtype", jnp.float32)

  def forward(leaves, x):
    return nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, leaves))(x)

  closed = jax.make_jaxpr(forward)(leaves, jax.ShapeDtypeStruct(shape, dtype))
  return model, paths, leaves, closed, shape, dtype


def analyze(model: nnx.Module, sample_input) -> Analysis:
  """Traces ``model`` and finds the units that can be removed.

  Args:
    model: any ``nnx.Module`` called on one array. It is cloned and put in
      inference mode (``model.eval()``); the original is not changed.
    sample_input: an array (or ``jax.ShapeDtypeStruct``) with the shape of a
      batch; only its shape and dtype are used, for one example.

  Returns:
    An :class:`Analysis`.

  Raises:
    ValueError: the forward pass uses an operation the analysis cannot follow.

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from sparse_optax import structure
    >>> model = nnx.Sequential(nnx.Linear(4, 3, rngs=nnx.Rngs(0)), nnx.relu,
    ...                        nnx.Linear(3, 2, rngs=nnx.Rngs(1)))
    >>> model.layers[2].kernel[...] = model.layers[2].kernel[...].at[0].set(0.0)
    >>> analysis = structure.analyze(model, jnp.zeros((1, 4)))
    >>> [c.maccs_effective for c in analysis.contractions]
    [8, 4]
  """
  clone, paths, leaves, closed, _, _ = _trace(model, sample_input)
  tracer = _Tracer(paths)
  leaf_tensors = [
      _Tensor(leaf, np.zeros((), bool), [], "")  # random keys: nothing flows from them
      if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
      else tracer.tensor(np.asarray(leaf), False, layer_name(path), leaf=k)
      for k, (path, leaf) in enumerate(zip(paths, leaves))]
  x_shape = closed.in_avals[-1].shape
  x = tracer.tensor(np.zeros(x_shape, closed.in_avals[-1].dtype), True, "", pinned=True)
  outputs = tracer.run(closed.jaxpr, closed.consts, leaf_tensors + [x])
  used = {id(t) for _, _, ins, _ in tracer.tape for t in ins}
  # The outputs stay; so does a leaf the forward pass never reads (a head used
  # only in training, say): nothing here says what its axes mean.
  for t in outputs + [t for t in leaf_tensors if id(t) not in used]:
    tracer.units.pin(np.concatenate(t.axes) if t.axes else np.array([], int))
  tracer.backward(outputs)

  # A unit is removable when it holds a parameter slice and no slice of it is needed.
  units = tracer.units
  size = len(units.parent)
  needed = np.zeros(size, bool)
  holds_leaf = np.zeros(size, bool)
  tensors = {id(t): t for _, _, ins, outs in tracer.tape for t in ins + outs}
  tensors.update({id(t): t for t in leaf_tensors + [x] + outputs})
  for t in tensors.values():
    need = t.needed if t.needed is not None else np.zeros(t.value.shape, bool)
    for k, ids in enumerate(t.axes):
      other = tuple(a for a in range(need.ndim) if a != k)
      used = need.any(axis=other) if other else need
      roots = units.roots(ids)
      np.logical_or.at(needed, roots, used)
      if t.leaf is not None:
        holds_leaf[roots] = True
  pinned = np.array(units.pinned)
  removable = holds_leaf & ~needed & ~pinned

  def kept_of(t: _Tensor) -> tuple[np.ndarray, ...]:
    return tuple(~removable[units.roots(ids)] for ids in t.axes)

  kept = tuple(kept_of(t) if t.leaf is not None else tuple(np.ones(s, bool) for s in np.shape(
      leaf)) for t, leaf in zip(leaf_tensors, leaves))
  contractions = []
  for name, leaf, params, (lhs, rhs), out in tracer.contractions:
    dense = _maccs(name, params, lhs.value.shape, rhs.value.shape, out.value.shape)
    effective = _maccs(name, params, *(tuple(int(m.sum()) for m in kept_of(t))
                                       for t in (lhs, rhs, out)))
    layer = (layer_name(paths[leaf]) if leaf is not None
             else _common_prefix([lhs.origin, rhs.origin]))
    contractions.append(Contraction(layer, leaf, dense, effective))
  layers = []
  for name, _, ins, outs in tracer.tape:
    for t in ins:
      if t.leaf is not None and layer_name(paths[t.leaf]) not in layers:
        layers.append(layer_name(paths[t.leaf]))
  for c in contractions:
    if c.layer not in layers:
      layers.append(c.layer)
  free = tuple(tuple(not pinned[units.roots(ids)].any() for ids in t.axes)
               for t in leaf_tensors)
  modules = {".".join(str(k) for k in path): module for path, module in nnx.iter_modules(clone)}
  return Analysis(paths=paths, leaves=tuple(leaves), kept=kept,
                  roles=dict(tracer.roles), free=free, contractions=tuple(contractions),
                  layers=tuple(layers), modules=modules)


def _maccs(name, params, lhs_shape, rhs_shape, out_shape) -> int:
  """Multiply-accumulates of one contraction, from (possibly reduced) axis sizes.

  A convolution counts every tap at every output position, padding included
  (the paper's count), except for an input dilated by ``lhs_dilation`` (a
  transposed convolution): there only the products with real inputs count,
  not those with the zeros inserted between them.
  """
  if name == "dot_general":
    (lc, _), _ = params["dimension_numbers"]
    return math.prod(out_shape) * math.prod(lhs_shape[k] for k in lc)
  _, rhs_spec, _ = params["dimension_numbers"]
  if all(d == 1 for d in params["lhs_dilation"]):
    return math.prod(out_shape) * math.prod(rhs_shape[k] for k in rhs_spec[1:])
  products = _surrogate(name, params)(jnp.ones(lhs_shape, jnp.float32),
                                      jnp.ones(rhs_shape, jnp.float32))
  return int(round(float(jnp.sum(products))))


def param_paths(model: nnx.Module) -> set[str]:
  """The dotted paths of the model's ``nnx.Param`` leaves (not statistics, not keys)."""
  flat, _ = jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))
  return {dotted(path) for path, _ in flat}


def groups_of(model: nnx.Module, sample_input) -> dict:
  """For each kernel, the groups whose zeroing lets :func:`sparse_optax.compact` remove a unit.

  A kernel's group is a slice along one of the axes it contracts (an input
  feature, an input channel, an attention head of an output projection).
  It is given when zeroing such slices of this kernel alone removes their
  units: checked by tracing the model with every other slice zeroed, then
  the rest. A unit that other layers also read (the channels of a residual
  stream, read by every block) gives no group, nor does a unit that is
  pinned (the model's input, a layer-normed stream): zeroing it in one
  kernel only thins that kernel.

  Args:
    model: any ``nnx.Module`` called on one array.
    sample_input: an array with the shape of a batch.

  Returns:
    A nested dict with the structure of ``nnx.state(model, nnx.Param)``
    whose leaves are the axes reduced inside one group (a tuple of ints, as
    ``axis`` of :mod:`sparse_optax.projections`) or ``None``. It is accepted
    as ``groups=`` by every ``project_*`` transformation, which leaves the
    ``None`` leaves alone.

  Example:
    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> from sparse_optax import structure
    >>> model = nnx.Sequential(nnx.Linear(4, 3, rngs=nnx.Rngs(0)), nnx.relu,
    ...                        nnx.Linear(3, 2, rngs=nnx.Rngs(1)))
    >>> structure.groups_of(model, jnp.zeros((1, 4)))
    {'layers': {0: {'bias': None, 'kernel': None}, 2: {'bias': None, 'kernel': (1,)}}}
  """
  analysis = analyze(model, sample_input)
  by_path = {}
  for leaf, (inputs, _) in analysis.roles.items():
    free = [a for a in inputs if analysis.free[leaf][a]]
    if free and _removable_alone(model, sample_input, leaf, free[0]):
      ndim = np.ndim(analysis.leaves[leaf])
      by_path[dotted(analysis.paths[leaf])] = tuple(a for a in range(ndim) if a != free[0])
  pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  flat, treedef = jax.tree_util.tree_flatten_with_path(pure)
  return jax.tree_util.tree_unflatten(
      treedef, [by_path.get(dotted(path) + ".value", by_path.get(dotted(path)))
                for path, _ in flat])


def _removable_alone(model, sample_input, leaf: int, axis: int) -> bool:
  """Whether zeroing slices of leaf ``leaf`` along ``axis`` removes their units.

  Every other slice is zeroed, then the others: zeroing them all at once
  could cut the whole network and make every unit removable.
  """
  graphdef, state = nnx.split(nnx.clone(model))
  flat, treedef = jax.tree_util.tree_flatten_with_path(state)
  leaves = [value for _, value in flat]
  size = np.shape(leaves[leaf])[axis]
  for parity in (0, 1):
    chosen = np.arange(parity, size, 2)
    if chosen.size == 0:
      continue
    index = [slice(None)] * np.ndim(leaves[leaf])
    index[axis] = chosen
    zeroed = list(leaves)
    zeroed[leaf] = jnp.asarray(leaves[leaf]).at[tuple(index)].set(0)
    trial = nnx.merge(graphdef, jax.tree_util.tree_unflatten(treedef, zeroed))
    if analyze(trial, sample_input).kept[leaf][axis][chosen].any():
      return False
  return True
