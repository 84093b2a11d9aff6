"""Training across hosts with JAX's own multi-process runtime.

``python -m experiments run --distributed ...`` is started once per host (or
per process); :func:`initialize` joins them with
``jax.distributed.initialize()``. On a cluster JAX finds the coordinator and
the process ids itself (Slurm, Open MPI, Kubernetes, Cloud TPU); elsewhere
they come from the environment: ``JAX_COORDINATOR_ADDRESS`` (host:port of
process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. Every process reads
the whole dataset, which is small, and holds it replicated; each batch is
split over the devices of all processes. Only process 0 writes files other
than checkpoints; orbax writes those with every process taking part.
"""

from __future__ import annotations

import os

import jax


def initialize() -> None:
  """Joins this process to the others, before any other JAX call."""
  # Cross-process collectives between CPU devices go through gloo; GPUs and
  # TPUs use their own.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  given = {name: int(os.environ[variable])
           for name, variable in (("num_processes", "JAX_NUM_PROCESSES"),
                                  ("process_id", "JAX_PROCESS_ID"))
           if variable in os.environ}
  jax.distributed.initialize(**given)


def writes_files() -> bool:
  """Whether this process writes results, plots and the report (process 0)."""
  return jax.process_index() == 0
