"""Side-by-side timing: interleaved rounds, medians, Markdown tables."""

from __future__ import annotations

import statistics
import time

import jax


def medians_ms(contenders: dict, args_of, repeats: int) -> dict:
  """Median wall time in ms of each ``fn(*args_of(name))``, measured round-robin.

  Every contender is warmed up twice (compilation included), then the calls
  are interleaved, one of each per round, so all of them see the same machine
  load; every call ends with ``jax.block_until_ready``.
  """
  for name, fn in contenders.items():
    for _ in range(2):
      jax.block_until_ready(fn(*args_of(name)))
  times = {name: [] for name in contenders}
  for _ in range(repeats):
    for name, fn in contenders.items():
      args = args_of(name)
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(time.perf_counter() - start)
  return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def machine_line() -> str:
  """One line naming the software and the device the numbers come from."""
  import platform

  import optax

  device = jax.devices()[0]
  return (f"jax {jax.__version__}, optax {optax.__version__}, {device.platform} "
          f"({device.device_kind}), {platform.machine()}, Python {platform.python_version()}")
