"""``mmgnn reproduce``: a recipe's seeds run as ``mmgnn train`` runs, their figure checked
against the one the recipe states, baselines at equal epochs and equal CPU time, finished
seeds read back instead of rerun, and the README table written from the results."""

import json
from pathlib import Path

import pytest
import yaml

from mmgnn.cli import main


def _recipe(folder: Path, name: str, toy: Path, model: dict, expect=None, baselines=None,
            tolerance=0.0) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"dataset": str(toy)},
        "model": model,
        "train": {"epochs": 50, "batch_size": 256, "lr": 0.01, "num_negatives": 4,
                  "negative_filter": "train", "eval_every": 0},
        "reproduce": {"system": name.upper(), "features": "structure", "paper": {"mrr": 0.5},
                      "cpu": {"overrides": {"train.epochs": 2}, "seeds": [0, 1],
                              "metric": "mrr", "expect": expect, "tolerance": tolerance},
                      "baselines": baselines or {}}}))
    return path


@pytest.fixture
def recipes(tmp_path, toy_folder):
    base = _recipe(tmp_path, "transe-toy", toy_folder, {"name": "transe", "dim": 16})
    system = _recipe(tmp_path, "distmult-toy", toy_folder, {"name": "distmult", "dim": 16},
                     baselines={"base": str(base)})
    return tmp_path, system, base


def _reproduce(tmp_path, *args) -> int:
    return main(["reproduce", *map(str, args), "--out", str(tmp_path / "runs"), "--results",
                 str(tmp_path / "results"), "--quiet"])


def test_seeds_baselines_and_table(recipes, capsys):
    tmp_path, system, base = recipes
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- reproduce:start -->\nold\n<!-- reproduce:end -->\ntail\n")
    assert _reproduce(tmp_path, system, "--table", "--readme", readme) == 0
    rep = json.loads((tmp_path / "results" / "distmult-toy.json").read_text())
    # Two seeds, each the recipe with its CPU override (2 epochs) and its own seed.
    assert [r["seed"] for r in rep["rows"]] == [0, 1]
    values = []
    for row in rep["rows"]:
        folder = Path(row["folder"])
        config = json.loads((folder / "config.json").read_text())
        assert (config["train"]["epochs"], config["train"]["seed"]) == (2, row["seed"])
        values.append(json.loads((folder / "metrics.json").read_text())
                      ["final"]["test"]["both"]["mrr"])
    assert rep["mean"] == pytest.approx(sum(values) / 2)
    assert rep["std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    assert values[0] != values[1]  # the seeds differ
    assert rep["ok"] is None  # no figure stated yet
    # The baseline at equal epochs (its own recipe) and at the system's CPU time.
    eq = rep["baselines"]["base"]
    ep_config = json.loads((Path(eq["epochs"]["rows"][0]["folder"]) / "config.json").read_text())
    assert (ep_config["train"]["epochs"], ep_config["train"]["max_minutes"]) == (2, None)
    cpu_config = json.loads((Path(eq["cpu"]["rows"][0]["folder"]) / "config.json").read_text())
    assert cpu_config["train"]["budget_clock"] == "cpu"
    assert cpu_config["train"]["max_minutes"] == pytest.approx(rep["train_minutes"], abs=1e-3)
    table = readme.read_text()
    assert "old" not in table and table.endswith("<!-- reproduce:end -->\ntail\n")
    assert "| DISTMULT-TOY | toy | structure | 0.5 |" in table and "2 seeds, 2 ep" in table


def test_finished_seeds_are_read_not_rerun(recipes):
    tmp_path, system, base = recipes
    assert _reproduce(tmp_path, base) == 0
    metrics = tmp_path / "runs" / "transe-toy" / "seed0" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    assert _reproduce(tmp_path, base) == 0
    assert metrics.stat().st_mtime_ns == before


def test_figure_outside_tolerance_fails(recipes, tmp_path, toy_folder, capsys):
    path = _recipe(tmp_path, "wrong", toy_folder, {"name": "transe", "dim": 16}, expect=0.99,
                   tolerance=0.01)
    assert _reproduce(tmp_path, path) == 1
    assert "OUTSIDE the stated figure" in capsys.readouterr().out
    rep = json.loads((tmp_path / "results" / "wrong.json").read_text())
    right = _recipe(tmp_path, "right", toy_folder, {"name": "transe", "dim": 16},
                    expect=round(rep["mean"], 4), tolerance=0.001)
    assert _reproduce(tmp_path, right) == 0  # the same seeds give the same figure


def test_train_ignores_the_reproduce_section(recipes, capsys):
    tmp_path, system, _ = recipes
    assert main(["train", "--config", str(system), "--out", str(tmp_path / "r"),
                 "--dry_run"]) == 0
    assert "reproduce" not in json.loads(capsys.readouterr().out)


def test_misuse_is_one_line(tmp_path, capsys):
    plain = tmp_path / "plain.yaml"
    plain.write_text("data: {dataset: Nations}\n")
    assert _reproduce(tmp_path, plain) == 2
    assert "no `reproduce:` section" in capsys.readouterr().err
    assert _reproduce(tmp_path, tmp_path / "missing.yaml") == 2
    assert _reproduce(tmp_path) == 2
