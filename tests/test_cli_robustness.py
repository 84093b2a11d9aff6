"""``python -m experiments`` as a user drives it: bad invocations and interruptions.

Every case runs the real entry point in a subprocess and checks the exit
status, a one-line message, the absence of any traceback, and that nothing
already on disk changed.
"""

import hashlib
import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time

import pytest

import fake_data

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUICK = ["--model", "lenet300", "--dataset", "mnist", "--batch-size", "32", "--no-verify",
         "--lr-schedule", "cosine", "--quiet"]


def cli(args, *, wait=True, **kwargs):
  command = [sys.executable, "-m", "experiments", *map(str, args)]
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  if not wait:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
  return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                        **kwargs)


def digests(folder):
  return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(pathlib.Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def idx(tmp_path_factory):
  folder = tmp_path_factory.mktemp("idx")
  fake_data.idx_dataset(folder, train=320, test=64)
  return folder


@pytest.fixture(scope="module")
def finished(idx, tmp_path_factory):
  out = tmp_path_factory.mktemp("runs") / "finished"
  done = cli(["run", *QUICK, "--method", "pgl11", "--eta", "60", "--epochs", "1",
              "--data-dir", idx, "--out", out])
  assert done.returncode == 0, done.stderr
  return out


def bad_invocations(idx, finished, tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("not a folder")
  same = [*QUICK, "--method", "pgl11", "--epochs", "1", "--data-dir", idx, "--out", finished]
  return [
      (["run", *same, "--eta", "100", "--resume"], 2, "--eta 60.0 (now 100.0)"),
      (["run", *[a if a != "lenet300" else "lfc4" for a in same], "--eta", "60", "--resume"], 2,
       "--model lenet300 (now lfc4)"),
      (["run", *same, "--eta", "60"], 2, "already holds a finished run"),
      (["run", *QUICK, "--data-dir", "/no/such/dir", "--out", tmp_path / "x"], 3,
       "--data-dir /no/such/dir: no such directory"),
      (["run", *QUICK, "--data-dir", idx, "--out", a_file], 2, "is a file; give a folder"),
      (["run", *QUICK, "--method", "adam", "--eta", "5", "--data-dir", idx, "--out",
        tmp_path / "y"], 2, "--method adam takes no --eta"),
      (["run", *QUICK, "--epochs", "0", "--data-dir", idx, "--out", tmp_path / "z"], 2,
       "--epochs must be >= 1"),
      (["run", *QUICK, "--method", "pgl11", "--eta", "1", "--layers", "fc9", "--data-dir", idx,
        "--out", tmp_path / "w"], 2, "fc9"),
      (["run", *QUICK, "--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
      (["sweep", *QUICK, "--seed", "0,x"], 2, "expected comma-separated ints"),
  ]


def test_bad_invocations_say_one_line_and_change_nothing(idx, finished, tmp_path):
  before = digests(finished)
  for args, status, message in bad_invocations(idx, finished, tmp_path):
    done = cli(args)
    where = shlex.join(map(str, args))
    assert done.returncode == status, (where, done.stderr)
    assert message in done.stderr, (where, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1, (where, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, where
  assert digests(finished) == before
  assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_help_is_plain_text_with_defaults():
  for command in ("run", "sweep", "demo"):
    done = cli([command, "--help"])
    assert done.returncode == 0 and "``" not in done.stdout
    assert "(default: " in done.stdout
  assert "(default: 0.001)" in cli(["run", "--help"]).stdout


def interrupt_when(process, ready, signum):
  """Sends ``signum`` once ``ready()`` holds, and returns the finished process."""
  deadline = time.monotonic() + 240
  while not ready() and process.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)
  process.send_signal(signum)
  out, err = process.communicate(timeout=240)
  return process.returncode, out, err


def test_interrupted_anywhere_then_resumed_gives_the_uninterrupted_result(idx, tmp_path):
  args = [*QUICK, "--method", "pgl11", "--eta", "60", "--schedule", "lottery", "--epochs", "2",
          "--retrain-epochs", "2", "--data-dir", idx]
  whole = cli(["run", *args, "--out", tmp_path / "whole"])
  assert whole.returncode == 0, whole.stderr
  reference = json.loads((tmp_path / "whole" / "result.json").read_text())
  started = time.monotonic()
  moments = {
      "while the modules load": lambda out: time.monotonic() - started > 0.3,
      "before the first epoch ends": lambda out: (out / "config.json").exists(),
      "after the first checkpoint": lambda out: (out / "checkpoints" / "1").exists(),
      "in the retraining": lambda out: (out / "checkpoints" / "3").exists(),
  }
  interrupted = []
  for i, (moment, ready) in enumerate(moments.items()):
    out = tmp_path / f"cut{i}"
    signum = signal.SIGTERM if moment == "in the retraining" else signal.SIGINT
    started = time.monotonic()
    process = cli(["run", *args, "--out", out], wait=False)
    status, _, err = interrupt_when(process, lambda: ready(out), signum)
    if status == 0:  # the run finished before the signal: nothing to check here
      continue
    interrupted.append(moment)
    assert status == 128 + signum, (moment, err)
    assert "Traceback" not in err and "Segmentation" not in err, (moment, err)
    hint = err.strip().splitlines()[-1]
    assert hint.startswith(f"interrupted ({signal.Signals(signum).name}): "), (moment, hint)
    command = hint.split("continue with: ", 1)[1]
    assert command.endswith("--resume")
    resumed = subprocess.run(shlex.split(command.replace("python", shlex.quote(sys.executable), 1)),
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, (moment, resumed.stderr)
    result = json.loads((out / "result.json").read_text())
    for field in ("accuracy", "maccs_effective", "memory_kb", "nonzero_fraction"):
      assert result[field] == reference[field], (moment, field)
    assert [h["loss"] for h in result["history"]] == [h["loss"] for h in reference["history"]]
  # Only the last moment can race with the end of a run that short.
  assert len(interrupted) >= 3, interrupted
