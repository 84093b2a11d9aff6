"""The regeneration of the paper's MNIST tables: recipes chosen on validation accuracy."""

import json
import signal

import pytest

from experiments import interrupt, regenerate
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
    (["--tables", "net5"], "--tables: no table 'net5'; one of lenet300, lfc4, net4, fashion_lfc4"),
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
