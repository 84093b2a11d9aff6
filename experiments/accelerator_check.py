"""One command that proves a GPU or TPU run end to end, beside the host CPU.

Run from the repository root::

    python -m experiments.accelerator_check --out check/ --data-dir .data/mnist
    python -m experiments.accelerator_check --quick --out check/   # CPU, ~2 minutes

Each section runs in a process of its own, once on the accelerator JAX finds
and once on the host CPU (``JAX_PLATFORMS``), so every figure has its ratio;
``check/REPORT.md`` is rewritten after every section, so a run cut short
still leaves what it measured. The sections:

* ``platform``: versions, the devices;
* ``tests``: the projection, transform and lottery test files, on the
  accelerator only;
* ``projections``: the ℓ1 ball by each search (and optax's sort) at growing
  sizes, the group balls, and one pass of the threshold search written two
  ways; every time beside its largest deviation from the exact float64
  projection (:mod:`experiments.benchmarks.exact`);
* ``step``: a jitted LFC4 training step, Adam against Adam + each projection,
  with the deviation of the projected kernels after it;
* ``train``: the runner's images/s against a minimal scanned loop;
* ``runs``: two short trainings through the runner (LFC4 lottery, LeNet-300-100
  every step), accuracy and MACCs.

Without ``--data-dir`` (or with ``--quick``) the runs read small generated IDX
files, and say so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from experiments.tables import markdown

# The tests come last: they take what time is left.
SECTIONS = ("platform", "projections", "step", "train", "runs", "tests")
# Seconds each section may take per platform (full, quick); past it the
# section is stopped and the report says so.
# Quick takes about 90 s on 2 CPU cores; its limits leave room for a slower machine.
LIMITS = {"platform": (60, 60), "tests": (240, 120), "projections": (150, 120),
          "step": (120, 120), "train": (150, 120), "runs": (200, 120)}
# The whole check stops starting sections past this (full, quick), seconds.
BUDGET = (480, 480)
TEST_FILES = ("tests/test_projections.py", "tests/test_projections_autodiff.py",
              "tests/test_projections_errors.py", "tests/test_projections_peers.py",
              "tests/test_projections_properties.py", "tests/test_transforms.py",
              "tests/test_lottery.py")
QUICK_TEST_FILES = ("tests/test_projections_errors.py",)
L1_SIZES = {False: (10_000, 100_000, 1_000_000, 10_000_000), True: (10_000, 100_000)}
GROUP_SHAPES = {False: ((784, 768), (4096, 1024)), True: ((256, 256),)}
RADIUS_FRACTION = 0.1
# The figures the issue of record asks of a GPU.
TARGETS = ("LFC4 step with project_l11 <= 1.1x Adam's step",
           "l1_ball at n = 1e7 >= 10x faster than optax's projection_l1_ball",
           "runner images/s >= 0.9x a minimal scanned loop")


# --------------------------------------------------------------------------
# The sections, each run in a child process on one platform.


def section_platform(quick, data_dir):
  import platform as host

  import flax
  import jax
  import optax

  from experiments import provenance

  devices = jax.devices()
  return {"code": provenance.code_version(), "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
          "python": host.python_version(), "machine": host.machine(),
          "cpus": os.cpu_count(), "backend": jax.default_backend(),
          "devices": [f"{d.platform}:{d.id} {d.device_kind}" for d in devices]}


def section_tests(quick, data_dir):
  files = QUICK_TEST_FILES if quick else TEST_FILES
  command = [sys.executable, "-m", "pytest", "-v", "-p", "no:randomly", *files]
  try:
    import xdist  # noqa: F401  (pytest-xdist: one worker per few cores)
    workers = 1 if quick else max(1, min(12, (os.cpu_count() or 2) - 2))
    if workers > 1:
      command += ["-n", str(workers)]
  except ImportError:
    workers = 1
  env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
  limit = int(os.environ.get("CHECK_LIMIT_S", LIMITS["tests"][quick])) - 15
  start = time.time()
  try:
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=limit)
    output, finished = done.stdout + done.stderr, True
  except subprocess.TimeoutExpired as stopped:
    output = (stopped.stdout or b"").decode() if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
    finished = False
  # One progress line per test, with or without xdist: "... PASSED [ 12%]" or
  # "[gw3] [ 12%] PASSED tests/...".
  progress = [line for line in output.splitlines() if re.search(r"\[\s*\d+%\]", line)]
  outcomes = ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS")
  counts = {outcome: sum(bool(re.search(rf"\b{outcome}\b", line)) for line in progress)
            for outcome in outcomes}
  failures = sorted(set(re.findall(r"(?:FAILED|ERROR) (tests/\S+)", output)))[:20]
  summary = [line for line in output.splitlines() if re.match(r"=+ .*(passed|failed|error)", line)]
  return {"files": list(files), "workers": workers, "counts": counts, "finished": finished,
          "seconds": time.time() - start, "failures": failures,
          "summary": summary[-1].strip("= ") if summary else "",
          "tail": output.splitlines()[-15:] if counts["FAILED"] or counts["ERROR"] else []}


def section_projections(quick, data_dir):
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax

  from experiments.benchmarks import exact
  from experiments.benchmarks.projections import FLOOR, gaussian, group_norm, pass_table
  from experiments.benchmarks.timing import medians_ms
  from sparse_optax import projections

  repeats = 3 if quick else 10
  l1 = {m: jax.jit(lambda x, r, m=m: projections.l1_ball(x, r, method=m))
        for m in ("auto", "newton", "sort")}
  l1["optax"] = jax.jit(optax.projections.projection_l1_ball)
  l1_rows = []
  for n in L1_SIZES[quick]:
    x = gaussian((n,))
    r = RADIUS_FRACTION * float(jnp.abs(x).sum())
    contenders = {"floor": jax.jit(lambda x, r: jnp.abs(x).sum()), **l1}
    ms = medians_ms(contenders, lambda name: (x, r), _repeats_for(contenders, (x, r), repeats))
    deviations = {name: exact.deviation("l1_ball", x, r, fn(x, r)) for name, fn in l1.items()}
    l1_rows.append({"n": n, "ms": ms, "deviation": deviations})

  group_rows = []
  for shape in GROUP_SHAPES[quick]:
    x = gaussian(shape, seed=1)
    contenders = {"floor": (jax.jit(lambda x, r: jnp.abs(x).sum()), None)}
    for name in ("l21_ball", "l11_ball", "bilevel_l1inf_ball"):
      for method in ("newton", "sort"):
        fn = getattr(projections, name)
        contenders[f"{name} {method}"] = (
            jax.jit(lambda x, r, fn=fn, method=method: fn(x, r, method=method)), name)
    contenders["l1inf_ball"] = (jax.jit(projections.l1inf_ball), "l1inf_ball")
    radii = {label: RADIUS_FRACTION * group_norm(ball, x) if ball else 0.0
             for label, (_, ball) in contenders.items()}
    fns = {label: fn for label, (fn, _) in contenders.items()}
    ms = medians_ms(fns, lambda label: (x, radii[label]),
                    _repeats_for(fns, (x, radii["l11_ball newton"]), repeats))
    deviations = {label: exact.deviation(ball, x, radii[label], fn(x, radii[label]))
                  for label, (fn, ball) in contenders.items() if ball}
    group_rows.append({"shape": list(shape), "ms": ms, "deviation": deviations})

  passes = pass_table(GROUP_SHAPES[quick][-1], repeats)
  return {"l1": l1_rows, "groups": group_rows, "passes": {"shape": list(GROUP_SHAPES[quick][-1]),
                                                          "ms": passes, "floor": FLOOR},
          "radius_fraction": RADIUS_FRACTION, "float": "float32 Gaussian",
          "auto": _auto_methods(), "repeats": repeats}


def _auto_methods():
  from sparse_optax.projections import _threshold

  return dict(_threshold.AUTO_METHODS)


def _repeats_for(contenders, args, repeats, budget_s=4.0):
  """Fewer rounds where one round is slow (a sort of 1e7 floats on a CPU)."""
  import jax

  slowest = 0.0
  for fn in contenders.values():
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    slowest = max(slowest, time.perf_counter() - start)
  return max(3, min(repeats, int(budget_s / max(slowest * len(contenders), 1e-9))))


def section_step(quick, data_dir):
  from experiments.benchmarks import step as bench_step

  # Quick: LeNet-300-100's widths, which compile in a fraction of LFC4's time.
  return bench_step.measure(repeats=5 if quick else 20, train_steps=3 if quick else 30,
                            layers=(784, 300, 100, 10) if quick else bench_step.LAYERS)


def section_train(quick, data_dir):
  from experiments.benchmarks import train as bench_train

  models = ("lenet300",) if quick else bench_train.MODELS
  return bench_train.measure(models, examples=1024 if quick else 8192, rounds=2 if quick else 3)


RUNS = {
    "LFC4, PGL11 eta=400, lottery": dict(
        model="lfc4", method="pgl11", eta=400.0, schedule="lottery", epochs=2, retrain_epochs=2),
    "LeNet-300-100, PGL11 eta=400, every step": dict(
        model="lenet300", method="pgl11", eta=400.0, schedule="every-step", epochs=2),
}


def section_runs(quick, data_dir):
  from experiments import cli
  from experiments import data as data_lib

  results = {}
  with tempfile.TemporaryDirectory() as work:
    flags = []
    if quick or not data_dir:
      data_dir = os.path.join(work, "idx")
      data_lib.write_synthetic_idx(data_dir, train=2048, test=512)
      flags = ["--no-verify"]
    for label, settings in RUNS.items():
      settings = dict(settings, epochs=1, retrain_epochs=1) if quick else settings
      out = os.path.join(work, settings["model"])
      argv = ["run", "--dataset", "mnist", "--data-dir", data_dir, "--out", out, "--quiet",
              *flags]
      for key, value in settings.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
      status = cli.main(argv)
      result = json.loads(pathlib.Path(out, "result.json").read_text()) if status == 0 else {}
      results[label] = {key: result.get(key) for key in (
          "accuracy", "maccs_dense", "maccs_effective", "memory_kb", "neurons_removed",
          "seconds", "train_examples", "data_source")}
      results[label]["status"] = status
      results[label]["command"] = "python -m experiments " + " ".join(
          a if a not in (data_dir, out) else ("DATA" if a == data_dir else "OUT") for a in argv)
  results["synthetic"] = bool(flags)
  return results


# --------------------------------------------------------------------------
# The parent: one child per section and platform, the report after each.


def _child(section, platform, quick, data_dir, limit):
  if limit < 10:
    return {"error": "not started: the check's time budget was spent"}
  """Runs one section in a fresh process on ``platform``; its dict, or an error."""
  env = dict(os.environ, PYTHONUNBUFFERED="1", CHECK_LIMIT_S=str(limit))
  # The CPU by name; the accelerator as JAX picks it by itself (its platform
  # name, "gpu", is not always a valid JAX_PLATFORMS value).
  if platform == "cpu":
    env["JAX_PLATFORMS"] = "cpu"
  else:
    env.pop("JAX_PLATFORMS", None)
  root = str(pathlib.Path(__file__).resolve().parents[1])
  env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
  with tempfile.NamedTemporaryFile(suffix=".json") as handle:
    command = [sys.executable, "-m", "experiments.accelerator_check", "--section", section,
               "--json", handle.name] + (["--quick"] if quick else [])
    if data_dir:
      command += ["--data-dir", data_dir]
    start = time.time()
    try:
      done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=limit,
                            cwd=root)
    except subprocess.TimeoutExpired:
      return {"error": f"stopped after {limit} s (the section's limit)"}
    if done.returncode != 0:
      lines = (done.stderr or done.stdout).strip().splitlines()
      return {"error": f"exit {done.returncode}: " + " | ".join(lines[-6:])}
    result = json.loads(pathlib.Path(handle.name).read_text())
    result["wall_s"] = time.time() - start
    return result


def _accelerator_platform():
  """The platform JAX picks by itself here, asked of a fresh process."""
  done = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"],
                        capture_output=True, text=True, timeout=120)
  return done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout else "cpu"


def _fmt(value, digits=3):
  return "—" if value is None else f"{value:.{digits}f}"


def _ratio(cpu, accelerator):
  return "—" if not cpu or not accelerator else f"{cpu / accelerator:.1f}x"


def render(results, accelerator, quick, started):
  """REPORT.md from what the sections returned so far."""
  acc, cpu = results.get(accelerator, {}), results.get("cpu", {})
  two = accelerator != "cpu"
  name = lambda platform: "host CPU" if platform == "cpu" else platform.upper()
  out = [f"# Accelerator check{' (quick)' if quick else ''}\n",
         f"{started:%Y-%m-%d %H:%M} UTC. Each figure on the {name(accelerator)}"
         + (" and on the host CPU, with their ratio (CPU / accelerator)." if two else
            "; no accelerator was found, so everything ran on the CPU.") + "\n"]
  for platform in dict.fromkeys([accelerator, "cpu"]):
    p = results.get(platform, {}).get("platform")
    if p and "error" not in p:
      if platform == accelerator and "code" in p:
        from experiments import provenance
        out.append(f"- code: {provenance.describe(p['code'])}")
      out.append(f"- {name(platform)}: jax {p['jax']}, flax {p['flax']}, optax {p['optax']}, "
                 f"Python {p['python']} on {p['machine']} ({p['cpus']} cores); devices: "
                 + ", ".join(p["devices"]))
  out.append("")
  tests = acc.get("tests")
  if tests:
    out.append(f"## Tests on the {name(accelerator)}\n")
    if "error" in tests:
      out.append(f"Not run: {tests['error']}\n")
    else:
      c = tests["counts"]
      out.append(f"`pytest -v {' '.join(tests['files'])}` ({tests['workers']} worker(s), "
                 f"{tests['seconds']:.0f} s{'' if tests['finished'] else ', stopped at the limit'}): "
                 f"**{c['PASSED']} passed, {c['FAILED']} failed, {c['ERROR']} errors, "
                 f"{c['SKIPPED']} skipped**. {tests['summary']}\n")
      if tests["failures"]:
        out.append("Failed: " + ", ".join(f"`{f}`" for f in tests["failures"]) + "\n")
  out += _render_projections(acc.get("projections"), cpu.get("projections"), two, name(accelerator))
  out += _render_step(acc.get("step"), cpu.get("step"), two, name(accelerator))
  out += _render_train(acc.get("train"), cpu.get("train"), two, name(accelerator))
  out += _render_runs(acc.get("runs"), cpu.get("runs"), two, name(accelerator))
  out += _render_targets(acc, two)
  return "\n".join(out) + "\n"


def _error_lines(title, *parts):
  return [f"{title}: {p['error']}\n" for p in parts if p and "error" in p]


def _render_projections(acc, cpu, two, acc_name):
  if not acc:
    return []
  out = ["## Projections\n"]
  errors = _error_lines(f"Not measured on the {acc_name}", acc) + _error_lines(
      "Not measured on the host CPU", cpu)
  if "error" in acc:
    return out + errors
  cpu = cpu if cpu and "error" not in cpu else None
  out.append(f"{acc['float']}, radius = {acc['radius_fraction']:g} × the input's norm in that "
             f"ball; median ms of interleaved calls after warm-up; `dev` is the largest "
             f"|result − exact float64 projection|. `auto` runs {acc['auto']}.\n")
  header = ["n", "search", f"{acc_name} ms", f"{acc_name} dev"]
  if two:
    header += ["CPU ms", "CPU dev", "CPU / accel."]
  rows = []
  for i, row in enumerate(acc["l1"]):
    other = cpu["l1"][i] if cpu and i < len(cpu["l1"]) else None
    for label in row["ms"]:
      cells = [f"{row['n']:.0e}", label, _fmt(row["ms"][label]),
               f"{row['deviation'].get(label, 0):.1e}" if label != "floor" else "—"]
      if two:
        cells += [_fmt(other and other["ms"].get(label)),
                  f"{other['deviation'].get(label, 0):.1e}" if other and label != "floor" else "—",
                  _ratio(other and other["ms"].get(label), row["ms"][label])]
      rows.append(cells)
  out += ["### ℓ1 ball\n", markdown(header, rows), ""]
  winners = [f"n = {row['n']:.0e}: " + min(("newton", "sort"), key=lambda m: row["ms"][m])
             for row in acc["l1"]]
  out.append(f"Faster search on the {acc_name}: " + "; ".join(winners) + ".\n")
  rows = []
  for i, row in enumerate(acc["groups"]):
    other = cpu["groups"][i] if cpu and i < len(cpu["groups"]) else None
    for label in row["ms"]:
      cells = [f"{row['shape'][0]}×{row['shape'][1]}", label, _fmt(row["ms"][label]),
               f"{row['deviation'][label]:.1e}" if label in row["deviation"] else "—"]
      if two:
        cells += [_fmt(other and other["ms"].get(label)),
                  f"{other['deviation'][label]:.1e}" if other and label in other["deviation"] else "—",
                  _ratio(other and other["ms"].get(label), row["ms"][label])]
      rows.append(cells)
  out += ["### Group balls (groups = rows)\n", markdown(["shape"] + header[1:], rows), ""]
  passes = acc["passes"]
  rows = [[label, _fmt(ms), f"{ms / passes['ms'][passes['floor']]:.2f}x"]
          + ([_fmt(cpu["passes"]["ms"].get(label)),
              f"{cpu['passes']['ms'][label] / cpu['passes']['ms'][passes['floor']]:.2f}x"]
             if two and cpu else []) for label, ms in passes["ms"].items()]
  out += [f"### One pass of the threshold search, {passes['shape'][0]}×{passes['shape'][1]}\n",
          markdown(["pass", f"{acc_name} ms", "/ floor"] + (["CPU ms", "/ floor"] if two and cpu else []),
                 rows), ""]
  return out + errors


def _render_step(acc, cpu, two, acc_name):
  if not acc:
    return []
  widths = "-".join(map(str, acc.get("layers", ())))
  out = [f"## Training step (MLP {widths}, batch {acc.get('batch')})\n"]
  if "error" in acc:
    return out + _error_lines(f"Not measured on the {acc_name}", acc)
  cpu = cpu if cpu and "error" not in cpu else None
  out.append(f"Median ms of {acc['repeats']} interleaved jitted steps after {acc['train_steps']} "
             "steps of training; `dev`: the largest |kernel − exact projection of (params + "
             "Adam's update)| after one more step.\n")
  base = acc["ms"]["adam"]
  rows = []
  for label, ms in acc["ms"].items():
    cells = [label, _fmt(ms), f"{ms / base:.2f}x", f"{acc['deviation'].get(label, 0):.1e}"]
    if two:
      c = cpu and cpu["ms"].get(label)
      cells += [_fmt(c), f"{c / cpu['ms']['adam']:.2f}x" if c else "—", _ratio(c, ms)]
    rows.append(cells)
  header = ["step", f"{acc_name} ms", "/ adam", "dev"] + (["CPU ms", "/ adam", "CPU / accel."] if two else [])
  return out + [markdown(header, rows), ""] + _error_lines("Not measured on the host CPU", cpu)


def _render_train(acc, cpu, two, acc_name):
  if not acc:
    return []
  out = ["## Training throughput (images/s)\n"]
  if "error" in acc:
    return out + _error_lines(f"Not measured on the {acc_name}", acc)
  cpu = cpu if cpu and "error" not in cpu else None
  out.append(f"{acc['examples']} random images per epoch, batch {acc['batch']}, median of "
             f"{acc['rounds']} interleaved epochs after warm-up.\n")
  rows = []
  for i, row in enumerate(acc["rows"]):
    other = cpu["rows"][i] if cpu and i < len(cpu["rows"]) else None
    cells = [row["model"], row["optimizer"], f"{row['runner']:,.0f}", f"{row['minimal']:,.0f}",
             f"{row['runner'] / row['minimal']:.2f}x"]
    if two:
      cells += [f"{other['runner']:,.0f}" if other else "—",
                _ratio(row["runner"], other and other["runner"])]
    rows.append(cells)
  header = ["model", "optimizer", f"runner {acc_name}", f"minimal {acc_name}", "runner / minimal"]
  header += ["runner CPU", "accel. / CPU"] if two else []
  return out + [markdown(header, rows), ""] + _error_lines("Not measured on the host CPU", cpu)


def _render_runs(acc, cpu, two, acc_name):
  if not acc:
    return []
  out = ["## Short trainings through the runner\n"]
  if "error" in acc:
    return out + _error_lines(f"Not run on the {acc_name}", acc)
  cpu = cpu if cpu and "error" not in cpu else None
  out.append(("Generated IDX images (not MNIST): the figures prove the path, not the method."
              if acc.get("synthetic") else "MNIST, the full training and test sets.") + "\n")
  rows = []
  for label, r in acc.items():
    if not isinstance(r, dict):
      continue
    other = cpu.get(label) if cpu else None
    cells = [label, f"{100 * r['accuracy']:.2f} %" if r.get("accuracy") is not None else f"exit {r['status']}",
             f"{r['maccs_effective'] / 1e3:.1f} k" if r.get("maccs_effective") else "—",
             _fmt(r.get("seconds"), 1)]
    if two:
      cells += [f"{100 * other['accuracy']:.2f} %" if other and other.get("accuracy") is not None else "—",
                _fmt(other and other.get("seconds"), 1),
                _ratio(other and other.get("seconds"), r.get("seconds"))]
    rows.append(cells)
  header = ["run", f"accuracy {acc_name}", "k-MACCs", "train s"]
  header += ["accuracy CPU", "train s CPU", "CPU / accel."] if two else []
  commands = [f"- `{r['command']}`" for r in acc.values() if isinstance(r, dict)]
  return out + [markdown(header, rows), "", "Commands:\n", *commands, ""] + _error_lines(
      "Not run on the host CPU", cpu)


def _render_targets(acc, two):
  step, proj, train = acc.get("step"), acc.get("projections"), acc.get("train")
  if not two or not (step or proj or train):
    return []
  rows = []
  if step and "error" not in step:
    v = step["ms"]["adam + project_l11"] / step["ms"]["adam"]
    rows.append([TARGETS[0], f"{v:.2f}x", "yes" if v <= 1.1 else "NO"])
  if proj and "error" not in proj:
    big = [row for row in proj["l1"] if row["n"] == 10_000_000]
    if big:
      v = big[0]["ms"]["optax"] / big[0]["ms"]["auto"]
      rows.append([TARGETS[1], f"{v:.1f}x", "yes" if v >= 10 else "NO"])
  if train and "error" not in train:
    v = min(row["runner"] / row["minimal"] for row in train["rows"])
    rows.append([TARGETS[2], f"{v:.2f}x (lowest)", "yes" if v >= 0.9 else "NO"])
  return ["## Targets\n", markdown(["target", "measured", "met"], rows), ""]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", help="folder for REPORT.md and check.json")
  parser.add_argument("--quick", action="store_true",
                      help="small sizes and generated data: about 2 minutes on a CPU")
  parser.add_argument("--data-dir", help="MNIST IDX files for the short trainings")
  parser.add_argument("--budget", type=float,
                      help="seconds after which no section starts (default: "
                           f"{BUDGET[0]}, quick {BUDGET[1]})")
  parser.add_argument("--sections", default=",".join(SECTIONS),
                      help="comma-separated, from " + ", ".join(SECTIONS))
  parser.add_argument("--no-cpu", action="store_true",
                      help="the accelerator only, without the host CPU's figures")
  parser.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
  parser.add_argument("--json", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)

  if args.section:  # a child: one section on the platform JAX_PLATFORMS names
    result = globals()[f"section_{args.section}"](args.quick, args.data_dir)
    pathlib.Path(args.json).write_text(json.dumps(result))
    return 0
  if not args.out:
    parser.error("--out is required")
  sections = [s for s in args.sections.split(",") if s]
  unknown = sorted(set(sections) - set(SECTIONS))
  if unknown:
    parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
  if args.data_dir and not pathlib.Path(args.data_dir).is_dir():
    parser.error(f"--data-dir {args.data_dir} is not a folder")

  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  started = datetime.datetime.now(datetime.timezone.utc)
  accelerator = _accelerator_platform()
  platforms = list(dict.fromkeys([accelerator] + ([] if args.no_cpu else ["cpu"])))
  print(f"accelerator check: {accelerator}{' and the host CPU' if accelerator != 'cpu' else ''}, "
        f"sections {', '.join(sections)}", flush=True)
  results = {p: {} for p in platforms}
  clock = time.time()
  for section in sections:
    for platform in platforms:
      if section == "tests" and platform != accelerator:
        continue
      budget = args.budget if args.budget is not None else BUDGET[args.quick]
      limit = int(min(LIMITS[section][args.quick], budget - (time.time() - clock)))
      t = time.time()
      results[platform][section] = _child(section, platform, args.quick, args.data_dir, limit)
      state = results[platform][section].get("error", "done")
      print(f"  {section:<12} {platform:<5} {time.time() - t:6.1f} s  {state}", flush=True)
      (out / "check.json").write_text(json.dumps(results, indent=1))
      (out / "REPORT.md").write_text(render(results, accelerator, args.quick, started))
  print(f"total {time.time() - clock:.0f} s; report: {out / 'REPORT.md'}\n", flush=True)
  print((out / "REPORT.md").read_text())
  failed = [f"{p}/{s}" for p, r in results.items() for s, v in r.items() if "error" in v]
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
