"""The benchmarks: medians measured side by side, each with its deviation from the exact result.

Run from the repository root, e.g. ``python -m experiments.benchmarks.projections``.
"""
