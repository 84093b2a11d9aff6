"""Experiments, benchmarks and the command-line runner of sparse_optax.

Only this package touches the terminal, files and datasets; run its scripts
from the repository root as modules. Three rooms:

* ``experiments`` itself, the runner: ``python -m experiments run|sweep|reproduce``
  (settings in ``config``, methods in ``methods``, the compiled steps in
  ``steps``, checkpoints, data, progress);
* ``experiments.report``: ``python -m experiments.report results``, the
  tables, plots and verdicts of every result;
* ``experiments.benchmarks``: timings side by side with their deviation from
  the exact result, e.g. ``python -m experiments.benchmarks.projections``.
"""
