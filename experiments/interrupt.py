"""Ctrl-C and SIGTERM, turned into an exception at the next safe point.

A ``KeyboardInterrupt`` raised while XLA compiles or runs, or while orbax
writes a checkpoint, can crash the interpreter. Inside :func:`deferred` the
signal only sets a flag; the training loop calls :func:`raise_if_requested`
between steps, where stopping is safe. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
  """The run was stopped by ``signum``; the shell's exit status is 128 + signum."""

  def __init__(self, signum: int):
    super().__init__(signal.Signals(signum).name)
    self.signum = signum
    self.exit_status = 128 + signum


_pending: int | None = None


def _request(signum, frame):
  global _pending
  if _pending is not None:
    raise Interrupted(signum)
  _pending = signum


@contextlib.contextmanager
def deferred():
  """Within, SIGINT and SIGTERM wait for :func:`raise_if_requested` (main thread only)."""
  global _pending
  if (threading.current_thread() is not threading.main_thread()
      or signal.getsignal(signal.SIGINT) is _request):  # already deferred: nested
    yield
    return
  previous = {signum: signal.signal(signum, _request) for signum in SIGNALS}
  try:
    yield
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
    _pending = None


def raise_if_requested() -> None:
  """Raises :class:`Interrupted` if a signal arrived since :func:`deferred` began."""
  if _pending is not None:
    raise Interrupted(_pending)
