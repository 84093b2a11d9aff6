"""Experiments, benchmarks and the command-line runner of sparse_optax.

Only this package touches the terminal, files and datasets; run its scripts
from the repository root as modules, e.g. ``python -m experiments.bench_projections``.
"""
