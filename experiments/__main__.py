"""Entry point of ``python -m experiments``.

Signals are deferred before the heavy imports, so a Ctrl-C while JAX loads is
answered like one during training: one message, no traceback.
"""

import sys

from experiments import interrupt

with interrupt.deferred():
  try:
    from experiments.cli import main
  except ModuleNotFoundError as missing:
    # The library installs without the experiments' packages.
    print(f"error: python -m experiments needs {missing.name}, one of the 'experiments' extra's "
          "packages: pip install 'sparse_optax[experiments]'", file=sys.stderr)
    sys.exit(2)

  status = main()
sys.exit(status)
