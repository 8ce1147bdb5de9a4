"""Every config file in configs/ parses and validates (known model and dataset, keys that are
real constructor arguments, valid training settings) without loading any data."""

from pathlib import Path

import pytest
import yaml

from mmgnn.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.fixture
def no_data(monkeypatch):
    import mmgnn.data

    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(mmgnn.data, "load_dataset", refuse)


def test_there_is_a_config_per_system():
    names = {yaml.safe_load(p.read_text())["model"]["name"] for p in CONFIGS}
    assert {"complex", "transe", "rotate", "imf", "native", "gat_transe", "mkgformer",
            "multimodal", "k3m"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_validates_without_data(path, tmp_path, capsys, no_data):
    text = path.read_text()
    assert "Should give" in text or "Figure" in text  # the figure and where it was measured
    command = "pretrain" if "pretrain" in path.stem else "train"
    assert main([command, "--config", str(path), "--out", str(tmp_path / "r"),
                 "--dry_run"]) == 0, capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_readme_main_job_is_the_config(tmp_path, capsys, no_data):
    path = next(p for p in CONFIGS if p.stem == "complex-db15k")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r"),
                 "--dry_run"]) == 0
    import json

    run = json.loads(capsys.readouterr().out)
    assert run["model"] == {"name": "complex", "args": {"dim": 200, "init_std": 0.001,
                                                        "reciprocal": True}}
    train = run["train"]
    assert (train["regime"], train["optimizer"], train["lr"], train["n3"], train["batch_size"],
            train["epochs"], train["eval_every"]) == ("1vsall", "adagrad", 0.1, 0.05, 1000, 6, 2)
