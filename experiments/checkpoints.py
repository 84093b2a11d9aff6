"""Orbax checkpoints of a run: named ``nnx`` states, one checkpoint per epoch.

A checkpoint is a dict of pure pytrees (``nnx.to_pure_dict``), saved by name,
so it is restored by name: ``{"model": ..., "optimizer": ..., "initial": ...,
"mask": ...}`` and, for HALO, the scales and their optimizer.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx

from sparse_optax import selection


class Checkpoints:
  """The checkpoints of one run, the last two kept."""

  def __init__(self, directory: pathlib.Path):
    self.manager = ocp.CheckpointManager(
        directory.resolve(), options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))

  def latest(self) -> int | None:
    return self.manager.latest_step()

  def save(self, epoch: int, states: dict) -> None:
    """Saves ``{name: nnx.State or pure pytree}``, and waits for the write."""
    pure = {name: nnx.to_pure_dict(state) if isinstance(state, nnx.State) else state
            for name, state in states.items()}
    self.manager.save(epoch, args=ocp.args.StandardSave(pure))
    self.manager.wait_until_finished()

  def restore(self, epoch: int) -> dict:
    """``{name: pure pytree}`` as saved at ``epoch``."""
    return self.manager.restore(epoch, args=ocp.args.StandardRestore())

  def close(self) -> None:
    self.manager.close()


def like(template, pure):
  """``pure`` (restored by name) in the structure and dtypes of ``template``,
  an ``nnx.State`` or a pytree of arrays; ``template`` is left as it was."""
  state = nnx.State(jax.tree.map(lambda leaf: leaf, template))
  nnx.replace_by_pure_dict(state, pure)
  # A restored tuple inside an optimizer state may come back a list.
  return jax.tree.map(lambda t, v: jnp.asarray(v, t.dtype), template,
                      selection.restructured(state, template))


def load_into(module: nnx.Module, pure, *filters) -> None:
  """Sets ``module``'s state (restricted to ``filters``) from a restored pure pytree."""
  nnx.update(module, like(nnx.state(module, *filters), pure))


def saved_epoch(out) -> int | None:
  """The last epoch checkpointed in ``out``, or ``None``."""
  folder = pathlib.Path(out) / "checkpoints"
  epochs = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
  return max(epochs, default=None)
