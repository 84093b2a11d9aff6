"""Re-runs a committed run from its saved settings and compares the figures.

``python -m experiments reproduce RESULT_DIR [--seed S]`` reads
``RESULT_DIR/result.json``, runs the same settings (another seed with
``--seed``) into a temporary folder, and prints the committed and the new
figures side by side. The run agrees when the accuracy is within
:data:`ACCURACY_POINTS` points and the effective k-MACCs and the memory are
within :data:`RELATIVE` of the committed ones.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import tempfile

from experiments import config as config_lib
from experiments import provenance
from experiments import runner
from experiments.tables import markdown

ACCURACY_POINTS = 0.3
RELATIVE = 0.03


@dataclasses.dataclass(frozen=True)
class Comparison:
  """The committed and the new figures of one re-run."""

  committed: dict
  new: dict
  command: str

  def rows(self) -> list[list[str]]:
    acc = [100 * self.committed["accuracy"], 100 * self.new["accuracy"]]
    maccs = [self.committed["maccs_effective"] / 1e3, self.new["maccs_effective"] / 1e3]
    memory = [self.committed["memory_kb"], self.new["memory_kb"]]
    return [
        ["accuracy (%)", f"{acc[0]:.2f}", f"{acc[1]:.2f}", f"{acc[1] - acc[0]:+.2f} pts",
         f"≤ {ACCURACY_POINTS} pts"],
        ["k-MACCs", f"{maccs[0]:,.1f}", f"{maccs[1]:,.1f}", f"{_relative(*maccs):+.1%}",
         f"≤ {RELATIVE:.0%}"],
        ["memory (kB)", f"{memory[0]:,.2f}", f"{memory[1]:,.2f}", f"{_relative(*memory):+.1%}",
         f"≤ {RELATIVE:.0%}"],
    ]

  @property
  def agrees(self) -> bool:
    return (abs(self.new["accuracy"] - self.committed["accuracy"]) * 100 <= ACCURACY_POINTS
            and abs(_relative(self.committed["maccs_effective"], self.new["maccs_effective"]))
            <= RELATIVE
            and abs(_relative(self.committed["memory_kb"], self.new["memory_kb"])) <= RELATIVE)

  def report(self) -> str:
    made_by = self.committed.get("code_version")
    lines = [f"committed: {provenance.describe(made_by) if made_by else 'no code version recorded'}"
             f"; now: {provenance.describe(provenance.code_version())}",
             f"re-run: {self.command}", "",
             markdown(["figure", "committed", "re-run", "difference", "agrees at"], self.rows()),
             "", "agrees" if self.agrees else "differs"]
    return "\n".join(lines)


def _relative(committed: float, new: float) -> float:
  return (new - committed) / committed if committed else float(new != committed)


def saved_settings(run_dir: pathlib.Path, result: dict) -> dict:
  """The settings a run started with: ``result["settings"]``, else the run's
  ``config.json``, else (runs that predate both) the result's own fields,
  where ``devices`` is a count of devices and so is left to this machine."""
  if "settings" in result:
    return result["settings"]
  config_file = run_dir / config_lib.CONFIG_FILE
  if config_file.is_file():
    return json.loads(config_file.read_text())
  return {key: value for key, value in result.items() if key != "devices"}


def reproduce(result_dir, *, seed: int | None = None, data_dir: str | None = None,
              out: str | None = None, progress=None) -> Comparison:
  """Runs the settings of ``result_dir/result.json`` again and compares.

  Args:
    result_dir: a run's folder (with its ``result.json``).
    seed: another seed than the committed run's.
    data_dir: where the data is on this machine, when not where it was.
    out: the folder of the new run (default: a temporary one, removed after).
    progress: where the new run reports.
  """
  path = pathlib.Path(result_dir, "result.json")
  if not path.is_file():
    raise config_lib.ConfigError(f"{result_dir}: no result.json")
  committed = json.loads(path.read_text())
  overrides = {key: value for key, value in (("seed", seed), ("data_dir", data_dir))
               if value is not None}
  with tempfile.TemporaryDirectory() as tmp:
    config = config_lib.from_settings(saved_settings(path.parent, committed),
                                      out=out or str(pathlib.Path(tmp, "run")), **overrides)
    new = runner.run(config, progress=progress)
  return Comparison(committed, new, config_lib.command(dataclasses.replace(config, out="OUT")))
