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
  """``label [#####.....] 120/469 loss 0.3521 2345 img/s, 12 s left``, redrawn in place.

  The first chunk of steps includes the compilation, so rates and times left
  are measured from the end of it: until then the bar says "compiling".
  """

  WIDTH = 24

  def __init__(self, progress: Progress, label: str, steps: int, examples_per_step: int):
    self.progress = progress
    self.label = label
    self.steps = steps
    self.examples_per_step = examples_per_step
    self.start = time.perf_counter()
    self.last_draw = 0.0
    self.first = None  # (time, step) when the first chunk ended
    self.last = None   # (time, step) of the latest update
    if self.progress.live:
      self.progress.stream.write(f"\r{label} compiling or starting…\033[K")
      self.progress.stream.flush()

  def update(self, step: int, loss) -> None:
    """Redraws after ``step`` steps; ``loss`` is only read when drawing."""
    now = time.perf_counter()
    self.first = self.first or (now, step)
    self.last = (now, step)
    if not self.progress.live:
      return
    if step < self.steps and now - self.last_draw < 0.2:
      return
    self.last_draw = now
    filled = int(self.WIDTH * step / max(self.steps, 1))
    seconds_per_step = self.seconds_per_step()
    speed = (f"{self.examples_per_step / seconds_per_step:,.0f} img/s, "
             f"{duration(seconds_per_step * (self.steps - step))} left"
             if seconds_per_step else "compiled")
    self.progress.stream.write(
        f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {step}/{self.steps} "
        f"loss {float(loss):.4f} {speed}\033[K")
    self.progress.stream.flush()

  def seconds_per_step(self) -> float | None:
    """Seconds per step after the first chunk; None until a second update."""
    if self.first is None or self.last[1] <= self.first[1]:
      return None
    return (self.last[0] - self.first[0]) / (self.last[1] - self.first[1])

  def steady_seconds(self) -> float:
    """What the whole epoch would take without its first chunk's compilation."""
    per_step = self.seconds_per_step()
    if per_step is None:  # one chunk: nothing to tell it from
      return time.perf_counter() - self.start
    return per_step * self.steps

  def close(self) -> float:
    """Ends the bar; returns the epoch's throughput in examples per second."""
    elapsed = time.perf_counter() - self.start
    if self.progress.live:
      self.progress.stream.write("\r\033[K")
      self.progress.stream.flush()
    return self.steps * self.examples_per_step / max(elapsed, 1e-9)
