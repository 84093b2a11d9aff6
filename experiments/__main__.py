"""Entry point of ``python -m experiments``.

Signals are deferred before the heavy imports, so a Ctrl-C while JAX loads is
answered like one during training: one message, no traceback.
"""

import sys

from experiments import interrupt

with interrupt.deferred():
  from experiments.cli import main

  status = main()
sys.exit(status)
