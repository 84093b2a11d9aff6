"""Terminal output of a run: a progress bar per epoch and one summary line.

On a terminal the bar redraws in place; in a log (not a TTY) only the summary
lines appear; quiet mode prints nothing.
"""

from __future__ import annotations

import sys
import time


class Progress:
  """Writes progress to ``stream`` unless ``quiet``."""

  def __init__(self, *, quiet: bool = False, stream=None):
    self.quiet = quiet
    self.stream = stream or sys.stdout
    self.live = not quiet and getattr(self.stream, "isatty", lambda: False)()

  def line(self, text: str) -> None:
    if not self.quiet:
      print(text, file=self.stream, flush=True)

  def epoch(self, label: str, steps: int, examples_per_step: int) -> "EpochBar":
    return EpochBar(self, label, steps, examples_per_step)


class EpochBar:
  """``label [#####.....] 120/469 loss 0.3521 2345 img/s``, redrawn in place."""

  WIDTH = 24

  def __init__(self, progress: Progress, label: str, steps: int, examples_per_step: int):
    self.progress = progress
    self.label = label
    self.steps = steps
    self.examples_per_step = examples_per_step
    self.start = time.perf_counter()
    self.last_draw = 0.0

  def update(self, step: int, loss) -> None:
    """Redraws after ``step`` steps; ``loss`` is only read when drawing."""
    if not self.progress.live:
      return
    now = time.perf_counter()
    if step < self.steps and now - self.last_draw < 0.2:
      return
    self.last_draw = now
    filled = int(self.WIDTH * step / max(self.steps, 1))
    rate = step * self.examples_per_step / max(now - self.start, 1e-9)
    self.progress.stream.write(
        f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {step}/{self.steps} "
        f"loss {float(loss):.4f} {rate:,.0f} img/s")
    self.progress.stream.flush()

  def close(self) -> float:
    """Ends the bar; returns the epoch's throughput in examples per second."""
    elapsed = time.perf_counter() - self.start
    if self.progress.live:
      self.progress.stream.write("\r\033[K")
      self.progress.stream.flush()
    return self.steps * self.examples_per_step / max(elapsed, 1e-9)
