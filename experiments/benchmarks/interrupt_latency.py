"""How long a run takes to stop after Ctrl-C, once it has compiled.

Starts ``python -m experiments run`` on a pseudo-terminal (so the progress bar
is drawn), waits until the bar shows steps past the first compiled call, sends
SIGINT and times until the process has exited. The run stops between two
compiled calls: the latency is about one call's steps (64 for dense models,
one for convolutional ones on a CPU) plus the shutdown.

    python -m experiments.benchmarks.interrupt_latency --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from experiments.benchmarks.timing import machine_line
from experiments.tables import markdown

MODELS = ("lenet300", "lfc4", "net4")
# A step count after the bar's first compiled call: "... 128/468 loss".
STEPS_SHOWN = re.compile(rb"\] (\d+)/(\d+) loss")


def _read_until_steps(fd: int, process: subprocess.Popen, timeout: float) -> bytes:
  """Reads the terminal until the bar shows a second update (steps measured)."""
  seen, updates = b"", 0
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and process.poll() is None:
    ready, _, _ = select.select([fd], [], [], 0.1)
    if not ready:
      continue
    try:
      chunk = os.read(fd, 4096)
    except OSError:
      break
    seen += chunk
    updates += len(STEPS_SHOWN.findall(chunk))
    if updates >= 2:
      return seen
  raise RuntimeError(f"the run showed no steps within {timeout:.0f} s: {seen[-400:]!r}")


def latency(model: str, data_dir: str, wait: float, timeout: float,
            verify: bool = True) -> tuple[float, int]:
  """Seconds from SIGINT to exit, and the exit status."""
  with tempfile.TemporaryDirectory() as out:
    command = [sys.executable, "-m", "experiments", "run", "--model", model, "--dataset",
               "mnist", "--data-dir", data_dir, "--method", "pgl11", "--eta", "400",
               "--schedule", "every-step", "--epochs", "3", "--out", out]
    command += [] if verify else ["--no-verify"]
    controller, terminal = pty.openpty()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=terminal,
                               stderr=terminal, close_fds=True)
    os.close(terminal)
    try:
      _read_until_steps(controller, process, timeout)
      time.sleep(wait)
      sent = time.perf_counter()
      process.send_signal(signal.SIGINT)
      status = process.wait(timeout=timeout)
      return time.perf_counter() - sent, status
    finally:
      if process.poll() is None:
        process.kill()
      os.close(controller)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m experiments.benchmarks.interrupt_latency",
                                   description=__doc__.split("\n\n")[0])
  parser.add_argument("--data-dir", required=True, help="the MNIST IDX files")
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--no-verify", action="store_true",
                      help="use IDX files that are not the original MNIST (tests)")
  parser.add_argument("--timeout", type=float, default=600.0,
                      help="seconds to wait for the first steps, and for the exit")
  args = parser.parse_args(argv)
  rows = []
  for model in args.models.split(","):
    # Signals at different points of a compiled call.
    measured = [latency(model, args.data_dir, wait=0.3 * i, timeout=args.timeout,
                        verify=not args.no_verify)
                for i in range(args.repeats)]
    seconds = [s for s, _ in measured]
    rows.append([model, f"{statistics.median(seconds):.2f}", f"{max(seconds):.2f}",
                 ", ".join(sorted({str(status) for _, status in measured}))])
    print(f"{model}: {', '.join(f'{s:.2f} s' for s in seconds)}", flush=True)
  print()
  print(machine_line())
  print(markdown(["model", "median s", "max s", "exit status"], rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
