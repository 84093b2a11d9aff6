"""Terminal output of a run: a progress bar per epoch and one summary line.

On a terminal the bar redraws in place with the time left in the epoch; in a
log (not a TTY) only the summary lines appear, each with the time left in the
run; quiet mode prints nothing.
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


def duration(seconds: float) -> str:
  """``42 s``, ``7 min``, ``2 h 05 min``: a time left, as precise as it is useful."""
  seconds = max(float(seconds), 0.0)
  if seconds < 90:
    return f"{seconds:.0f} s"
  minutes = round(seconds / 60)
  if minutes < 90:
    return f"{minutes} min"
  return f"{minutes // 60} h {minutes % 60:02d} min"


class EpochBar:
  """``label [#####.....] 120/469 loss 0.3521 2345 img/s, 12 s left``, redrawn in place."""

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
    elapsed = max(now - self.start, 1e-9)
    rate = step * self.examples_per_step / elapsed
    left = elapsed / max(step, 1) * (self.steps - step)
    self.progress.stream.write(
        f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {step}/{self.steps} "
        f"loss {float(loss):.4f} {rate:,.0f} img/s, {duration(left)} left\033[K")
    self.progress.stream.flush()

  def close(self) -> float:
    """Ends the bar; returns the epoch's throughput in examples per second."""
    elapsed = time.perf_counter() - self.start
    if self.progress.live:
      self.progress.stream.write("\r\033[K")
      self.progress.stream.flush()
    return self.steps * self.examples_per_step / max(elapsed, 1e-9)
