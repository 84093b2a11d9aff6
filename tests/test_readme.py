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


# The README's measured figures, as fields of the committed rows
# (experiments.report.prose): each must read in the README as the rows give it.
S = "fashion_mnist/lenet300/schedules/pgl11_eta400"
README_FIGURES = [
    f"every step removes {{{{{S}/every-step dead_inputs fc1}}}} of fc1's 784 input groups "
    f"({{{{{S}/every-step accuracy_mean}}}} %, {{{{{S}/every-step kmaccs}}}} k-MACCs); with "
    f"`freeze_dead=True`, {{{{{S}/every-step_freeze-dead dead_inputs fc1}}}} of them and "
    f"{{{{{S}/every-step_freeze-dead dead_inputs fc2}}}} of fc1's 300 neurons "
    f"({{{{{S}/every-step_freeze-dead accuracy_mean}}}} %, "
    f"{{{{{S}/every-step_freeze-dead kmaccs}}}} k-MACCs); the lottery, "
    f"{{{{{S}/lottery dead_inputs fc1}}}} ({{{{{S}/lottery accuracy_mean}}}} %, "
    f"{{{{{S}/lottery kmaccs}}}} k-MACCs).",
    "PGL11 η=400 reaches {{mnist/lenet300/protocol/pgl11_eta400 accuracy}} % at "
    "{{mnist/lenet300/protocol/pgl11_eta400 kmaccs}} k-MACCs and "
    "{{mnist/lenet300/protocol/pgl11_eta400 memory}} kB",
    "PGL11 η=400 misses on accuracy, {{mnist/lfc4/protocol/pgl11_eta400 accuracy}} %",
    "beyond the paper every step with fc1–fc4 projected reaches "
    "{{mnist/lfc4/beyond/pgl11_eta400 accuracy}} % at {{mnist/lfc4/beyond/pgl11_eta400 kmaccs}} "
    "k-MACCs and {{mnist/lfc4/beyond/pgl11_eta400 memory}} kB.",
    "Beyond the paper, LeNet-300-100's PGL21 η=50 projected every step with dead groups frozen "
    "reaches {{mnist/lenet300/beyond/pgl21_eta50 accuracy}} % at "
    "{{mnist/lenet300/beyond/pgl21_eta50 kmaccs}} k-MACCs and "
    "{{mnist/lenet300/beyond/pgl21_eta50 memory}} kB",
    "On Net4, Adam is met ({{mnist/net4/protocol/adam accuracy}} %) and the three projected rows "
    "miss on accuracy: PGL1 η=80 reaches {{mnist/net4/protocol/pgl1_eta80 accuracy}} % against "
    "99.01 %, PGL11 η=40 {{mnist/net4/protocol/pgl11_eta40 accuracy}} % against 98.03 %.",
    "On Table IV, PGL11 η=400 reaches {{fashion_mnist/lfc4/protocol/pgl11_eta400 accuracy}} % at "
    "{{fashion_mnist/lfc4/protocol/pgl11_eta400 kmaccs}} k-MACCs and "
    "{{fashion_mnist/lfc4/protocol/pgl11_eta400 memory}} kB, against the paper's 87.5 %",
    "projected every step with dead groups frozen (beyond the paper), "
    "{{fashion_mnist/lfc4/beyond/pgl11_eta400 accuracy}} % at "
    "{{fashion_mnist/lfc4/beyond/pgl11_eta400 kmaccs}} k-MACCs and "
    "{{fashion_mnist/lfc4/beyond/pgl11_eta400 memory}} kB",
    "HALO (ξ = ψ = 1e-4) keeps {{fashion_mnist/lenet300/comparators/halo_keep0.1 nonzero}} % of "
    "LeNet-300-100's weights at {{fashion_mnist/lenet300/comparators/halo_keep0.1 accuracy}} %, "
    "GSEF (top 70 % of the groups) reaches {{fashion_mnist/lenet300/comparators/gsef_keep0.7 accuracy}} "
    "% at {{fashion_mnist/lenet300/comparators/gsef_keep0.7 maccs_vs fashion_mnist/lenet300/comparators/adam}}"
    " Adam's MACCs, and PGL11 η=1000 {{fashion_mnist/lenet300/comparators/pgl11_eta1000 accuracy}} % at "
    "{{fashion_mnist/lenet300/comparators/pgl11_eta1000 maccs_vs fashion_mnist/lenet300/comparators/adam}}.",
    "on both networks ({{fashion_mnist/resnet/pgl11_keep0.4_every_step_freeze points_vs "
    "fashion_mnist/resnet/adam}} and {{fashion_mnist/vit/pgl11_keep0.4_every_step_freeze "
    "points_vs fashion_mnist/vit/adam}} points); the lottery {{fashion_mnist/resnet/"
    "pgl11_keep0.4_lottery points_vs fashion_mnist/resnet/adam}} and {{fashion_mnist/vit/"
    "pgl11_keep0.4_lottery points_vs fashion_mnist/vit/adam}} points",
] + [
    f"| {name} | {method} | {{{{{row} accuracy}}}} | {{{{{row} kmaccs}}}} | "
    + ("–" if folder == "adam" else f"{{{{{row} maccs_vs fashion_mnist/{net}/adam}}}}")
    + f" | {{{{{row} memory}}}} |"
    for net, name in (("resnet", "ResNet"), ("vit", "ViT"))
    for folder, method in (("adam", "Adam"),
                           ("pgl11_keep0.4_every_step_freeze", "every step + freeze_dead"),
                           ("pgl11_keep0.4_lottery", "lottery"))
    for row in [f"fashion_mnist/{net}/{folder}"]
]


def test_the_readme_figures_are_the_committed_rows():
  from experiments import report
  from experiments.report import prose
  results = ROOT / "results"
  settings = {s["folder"].relative_to(results).as_posix(): s["runs"]
              for members in report.load_settings(results).values() for s in members}
  readme = " ".join((ROOT / "README.md").read_text().split())
  for template in README_FIGURES:
    assert " ".join(prose.render(template, settings).split()) in readme
  counts = report.verdict_counts(report.load_settings(results))
  assert (f"Counted over the {counts['rows']} MNIST rows on 3 seeds: {counts['protocol']} "
          f"reached under the paper's protocol so far ({counts['regenerated']} rows run under "
          f"it), {counts['beyond']} with a recipe chosen on validation.") in readme
