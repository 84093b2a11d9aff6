"""The README's commands are the ones CI runs, and its example runs."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_blocks(language):
  text = (ROOT / "README.md").read_text()
  return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
  test_command = readme_blocks("bash")[0].strip()
  assert "pytest" in test_command
  ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
  assert test_command in ci_lines


def test_main_job_command_names_an_existing_script():
  main_command = readme_blocks("bash")[1].strip()
  module = ROOT / re.search(r"python -m (\S+)", main_command).group(1).replace(".", "/")
  assert module.with_suffix(".py").is_file() or (module / "__main__.py").is_file()


def run_block(index):
  namespace = {}
  exec(compile(readme_blocks("python")[index], f"README.md python block {index}", "exec"),
       namespace)
  return namespace


def test_projection_example_removes_rows():
  namespace = run_block(0)
  assert 0 < namespace["dead_inputs"] < 784
  assert namespace["batch"].shape == (2, 784, 300)


def test_optax_example_removes_the_noise_inputs():
  namespace = run_block(1)
  assert namespace["kept"].tolist() == [0, 1, 2, 3]


def test_every_other_python_block_runs_as_written():
  blocks = readme_blocks("python")
  assert len(blocks) >= 5
  for index in range(2, len(blocks)):
    run_block(index)
