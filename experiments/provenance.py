"""Which code produced a result: the git commit, whether the tree was dirty, the command."""

from __future__ import annotations

import os
import pathlib
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A copy of the checkout without its .git folder (a device machine's) names
# its commit here.
COMMIT_VARIABLE = "SPARSE_OPTAX_COMMIT"


def _git(*args) -> str | None:
  try:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
  except (OSError, subprocess.TimeoutExpired):
    return None
  return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> dict:
  """``{"commit", "dirty", "package"}`` of the code this process loaded.

  Read once, when this module is first imported (the experiments import it
  before they start), so that files edited while a long run trains do not
  change what the run says it ran. ``commit`` is None outside a git checkout;
  ``dirty`` is True when tracked files differed from the commit (untracked
  files are not counted), None when it cannot be told.
  """
  return dict(_AT_IMPORT)


def _read_code_version() -> dict:
  from importlib import metadata

  try:
    package = metadata.version("sparse_optax")
  except metadata.PackageNotFoundError:
    package = None
  commit = _git("rev-parse", "HEAD")
  if commit is None:
    return {"commit": os.environ.get(COMMIT_VARIABLE), "dirty": None, "package": package}
  status = _git("status", "--porcelain", "--untracked-files=no")
  return {"commit": commit, "dirty": None if status is None else bool(status), "package": package}


def command_line() -> str | None:
  """The command as typed, ``python -m experiments ...`` (a sweep's, say);
  None when Python was started some other way (a test, a notebook)."""
  if not sys.argv or pathlib.Path(sys.argv[0]).parent.name != "experiments":
    return None
  module = pathlib.Path(sys.argv[0]).stem
  name = "experiments" if module == "__main__" else f"experiments.{module}"
  return f"python -m {name} " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def describe(version: dict) -> str:
  """``abc1234`` or ``abc1234 + uncommitted changes``, for reports."""
  commit = version.get("commit")
  if not commit:
    return f"no git commit (package {version.get('package')})"
  return commit[:7] + (" + uncommitted changes" if version.get("dirty") else "")


_AT_IMPORT = _read_code_version()
