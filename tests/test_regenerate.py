"""The regeneration of the paper's MNIST tables: recipes chosen on validation accuracy."""

import json
import pathlib
import signal

import pytest

from experiments import comparators, interrupt, regenerate, runner
from experiments.progress import Progress


def fake_run(config, dataset, progress):
  # Validation accuracy peaks at rate 3e-3, then at batch 64: one recipe wins.
  score = 0.9 + (config.lr == 3e-3) * 0.05 + (config.batch_size == 64) * 0.01
  return {"validation_accuracy": score, "maccs_effective": 1000.0, "memory_kb": 2.0}


def test_each_row_gets_the_recipe_with_the_best_validation_accuracy(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(regenerate, "_run", fake_run)
  chosen = regenerate.select("net4", None, "data", Progress(), regenerate.TABLES["net4"][2])
  assert set(chosen) == {"adam", "pgl1_eta80", "pgl11_eta40", "pgl11_eta25"}
  assert all(recipe == {"epochs": 10, "lr": 3e-3, "batch_size": 128}
             for recipe in chosen.values())
  table = (tmp_path / "results/selection/mnist_net4.md").read_text()
  assert table.count("| chosen |") == 4 and "| pgl11_eta25 | e10_lr0.003_b128 | 95.00 |" in table
  assert json.loads((tmp_path / "results/selection/mnist_net4.json").read_text()) == chosen


def test_some_rows_alone_leave_the_selection_table_unwritten(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(regenerate, "_run", fake_run)
  chosen = regenerate.select("net4", None, "data", Progress(), [("adam", None)])
  assert list(chosen) == ["adam"]
  assert not (tmp_path / "results/selection").exists()


@pytest.mark.parametrize("argv,message", [
    (["--tables", "net5"], "--tables: no table 'net5'; one of lenet300, lfc4, net4, fashion_lfc4, "
     "fashion_lenet300_comparators, fashion_lfc4_comparators, lenet300_beyond, lfc4_beyond, "
     "fashion_lfc4_beyond"),
    (["--tables", "net4", "--rows", "pgl1_eta200"], "--rows: no row 'pgl1_eta200' in net4"),
])
def test_unknown_tables_and_rows_are_one_line_errors(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_:
    regenerate.main(["--data-dir", "missing", *argv])
  assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_mnist_tables_need_the_mnist_files(capsys):
  with pytest.raises(SystemExit) as exit_:
    regenerate.main(["--tables", "fashion_lfc4,net4"])
  assert exit_.value.code == 2
  assert "--data-dir: the MNIST tables need the folder of MNIST's IDX files" in capsys.readouterr().err


def test_an_interruption_says_how_to_continue(tmp_path, monkeypatch, capsys):
  def stopped(config, dataset, progress):
    raise interrupt.Interrupted(signal.SIGTERM)
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(regenerate.data_lib, "load", lambda name, data_dir: None)
  monkeypatch.setattr(regenerate, "_run", stopped)
  argv = ["--data-dir", "mnist", "--tables", "net4", "--rows", "adam"]
  assert regenerate.main(argv) == 128 + signal.SIGTERM
  assert ("interrupted (SIGTERM): finished runs and the interrupted run's finished epochs are "
          "kept; continue with: python -m experiments.regenerate " + " ".join(argv)
          ) in capsys.readouterr().err


def test_table_iv_is_fashion_mnist_lfc4_on_every_layer_with_one_radius(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  configs = []
  monkeypatch.setattr(regenerate, "_run", lambda config, *args: configs.append(config)
                      or fake_run(config, *args))
  chosen = regenerate.select("fashion_lfc4", None, "mnist-files", Progress(),
                             regenerate.TABLES["fashion_lfc4"][2])
  assert set(chosen) == {"adam", "pgl1_eta400", "pgl11_eta400"}
  assert {(c.dataset, c.model, c.data_dir, c.layers, c.layer_eta) for c in configs} == {
      ("fashion_mnist", "lfc4", None, None, ())}
  assert {c.schedule for c in configs if c.method != "adam"} == {"lottery"}
  assert (tmp_path / "results/selection/fashion_mnist_lfc4.md").read_text().startswith(
      "# Recipes for lfc4 on Fashion-MNIST, chosen on validation accuracy")


def fake_comparator_run(config, dataset, progress):
  # Validation accuracy peaks at the middle strength of each method's candidates.
  score = 0.8 + 0.1 * (config.eta in (1e-4, 1.0))
  return {"validation_accuracy": score, "maccs_effective": 1000.0, "memory_kb": 2.0}


@pytest.mark.parametrize("table", list(regenerate.COMPARATOR_TABLES))
def test_each_comparator_gets_its_best_validation_strength_at_its_budget(table, tmp_path,
                                                                         monkeypatch):
  monkeypatch.chdir(tmp_path)
  configs = []
  monkeypatch.setattr(regenerate, "_run", lambda config, *args: configs.append(config)
                      or fake_comparator_run(config, *args))
  rows = regenerate.COMPARATOR_TABLES[table][2]
  chosen = regenerate.select_strengths(table, None, Progress(), rows)
  with_strengths = {row.name for row in rows if row.strengths}
  assert chosen == {name: 1.0 if name.startswith("gsef") else 1e-4 for name in with_strengths}
  # Only the rows with a strength train on the validation split, at their own budget.
  assert {c.method for c in configs} == {"halo", "l1_over_l2", "gsef"}
  assert all(c.validation_examples == 10_000 and c.seed == 0 for c in configs)
  by_name = {row.name: row for row in rows}
  assert all(c.keep == by_name[pathlib.Path(c.out).parent.name].settings["keep"]
             for c in configs)
  dataset, model, _ = regenerate.COMPARATOR_TABLES[table]
  written = (tmp_path / f"results/selection/{dataset}_{model}_comparators.md").read_text()
  assert written.count("| chosen |") == len(with_strengths)


@pytest.mark.parametrize("table", list(regenerate.COMPARATOR_TABLES))
def test_every_comparator_row_trains_alike_for_sixteen_epochs(table):
  for row in regenerate.COMPARATOR_TABLES[table][2]:
    for strength in row.strengths or (None,):
      config = regenerate.comparator_config(table, row, strength, seed=0, out="unused",
                                            validation=False)
      runner.validate(config)
      assert (config.lr, config.lr_schedule, config.batch_size) == (1e-3, "cosine", 128)
      if config.method == "magnitude":
        total = config.epochs + comparators.magnitude_rounds(config.keep) * config.retrain_epochs
      elif config.schedule == "lottery":
        total = config.epochs + config.retrain_epochs
      else:
        total = config.epochs
      assert total == 16, row.name


def test_final_comparator_runs_use_the_chosen_strength_and_three_seeds(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  swept = []
  monkeypatch.setattr(regenerate.sweep_lib, "sweep",
                      lambda base, methods, etas, seeds, out, progress: swept.append(
                          (base.method, etas, seeds, str(out))))
  table = "fashion_lenet300_comparators"
  rows = regenerate.COMPARATOR_TABLES[table][2]
  regenerate.final_comparators(table, {"halo_keep0.1": 3e-4}, None, Progress(), rows[:4])
  assert swept == [
      ("adam", (None,), (0, 1, 2), "results/fashion_mnist/lenet300/comparators/adam"),
      ("pgl11", (1000.0,), (0, 1, 2), "results/fashion_mnist/lenet300/comparators/pgl11_eta1000"),
      ("bilevel_l1inf", (10.0,), (0, 1, 2),
       "results/fashion_mnist/lenet300/comparators/bilevel_l1inf_eta10"),
      ("halo", (3e-4,), (0, 1, 2), "results/fashion_mnist/lenet300/comparators/halo_keep0.1"),
  ]


def fake_variant_run(config, dataset, progress):
  # Freezing dead groups prunes most and costs accuracy; projecting the
  # classifier costs more. Only the frozen variants fit the paper's 131 kB.
  frozen, classifier = config.freeze_dead, config.layers is None
  return {"validation_accuracy": 0.89 - 0.01 * frozen - 0.02 * classifier,
          "maccs_effective": 200e3, "memory_kb": 120.0 if frozen else 160.0}


def test_a_beyond_row_gets_its_most_accurate_variant_within_the_papers_budget(tmp_path,
                                                                             monkeypatch):
  monkeypatch.chdir(tmp_path)
  configs = []
  monkeypatch.setattr(regenerate, "_run", lambda config, *args: configs.append(config)
                      or fake_variant_run(config, *args))
  table = "fashion_lfc4_beyond"
  chosen = regenerate.select_variants(table, None, None, Progress(),
                                      regenerate.BEYOND_TABLES[table][2])
  # The most accurate variant (160 kB > 1.1 x 131 kB) is passed over.
  assert chosen == {"pgl11_eta400": "every-step_fc1-4_freeze-dead"}
  assert {(c.method, c.eta, c.schedule, c.validation_examples, c.seed) for c in configs} == {
      ("pgl11", 400.0, "every-step", 10_000, 0)}
  written = (tmp_path / "results/selection/fashion_mnist_lfc4_beyond.md").read_text()
  assert "| pgl11_eta400 | every-step_fc1-4 | 89.00 | 200.0 | 160.0 | over the paper's k-MACCs " \
         "or memory |" in written
  assert "| pgl11_eta400 | every-step_fc1-4_freeze-dead | 88.00 | 200.0 | 120.0 | chosen |" in written


def test_a_beyond_row_with_no_variant_within_budget_gets_the_most_accurate(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(regenerate, "_run", lambda config, *args: dict(
      fake_variant_run(config, *args), memory_kb=500.0))
  table = "fashion_lfc4_beyond"
  chosen = regenerate.select_variants(table, None, None, Progress(),
                                      regenerate.BEYOND_TABLES[table][2])
  assert chosen == {"pgl11_eta400": "every-step_fc1-4"}


def test_final_beyond_runs_use_the_chosen_variant_and_three_seeds(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  swept = []
  monkeypatch.setattr(regenerate.sweep_lib, "sweep",
                      lambda base, methods, etas, seeds, out, progress: swept.append(
                          (base, etas, seeds, str(out))))
  table = "fashion_lfc4_beyond"
  regenerate.final_beyond(table, {"pgl11_eta400": "every-step_fc1-4_freeze-dead"}, None, None,
                          Progress(), regenerate.BEYOND_TABLES[table][2])
  [(base, etas, seeds, out)] = swept
  assert (etas, seeds, out) == ((400.0,), (0, 1, 2), "results/fashion_mnist/lfc4/beyond/pgl11_eta400")
  assert (base.method, base.schedule, base.layers, base.freeze_dead, base.lr, base.epochs,
          base.validation_examples) == ("pgl11", "every-step", ("fc1", "fc2", "fc3", "fc4"),
                                        True, 3e-3, 16, 0)
  runner.validate(base)


@pytest.mark.parametrize("table", list(regenerate.BEYOND_TABLES))
def test_every_beyond_variant_keeps_the_papers_method_and_radius(table, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  configs = []
  monkeypatch.setattr(regenerate, "_run", lambda config, *args: configs.append(config)
                      or fake_variant_run(config, *args))
  dataset, model, rows = regenerate.BEYOND_TABLES[table]
  regenerate.select_variants(table, None, "mnist-files", Progress(), rows)
  assert len(configs) == sum(len(row.variants) for row in rows)
  for config in configs:
    runner.validate(config)
    row = next(r for r in rows if pathlib.Path(config.out).parent.name == r.name)
    assert (config.method, config.eta) == (row.settings["method"], row.settings["eta"])
    assert (config.dataset, config.model, config.schedule) == (dataset, model, "every-step")
    assert config.data_dir == ("mnist-files" if dataset == "mnist" else None)
