"""`mmgnn pretrain` (K3M) and `mmgnn train --model k3m --task classification` on the real
K3M-sample, end to end with tiny settings."""

from __future__ import annotations

import json

import pytest
import torch

from mmgnn.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# a budget of ~0 stops each run after its first step (and its epoch-end evaluation)
BUDGET = ["--train.max_minutes", "0.0001", "--train.budget_clock", "cpu"]


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mmgnn: error: "), err
    return err


def test_pretrain_then_classify(data_root, tmp_path, capsys):
    pre = tmp_path / "pre"
    assert main(["pretrain", "--root", str(data_root), "--epochs", "2", "--train.batch_size",
                 "32", "--model.fusion", "mean", "--lp", "margin", "--out", str(pre),
                 "--quiet", *BUDGET]) == 0
    out = capsys.readouterr().out
    assert "masked object modelling skipped" in out and "pretrained 1 epochs (1 steps" in out
    metrics = json.loads((pre / "metrics.json").read_text())
    assert metrics["steps"] == 1 and metrics["epochs"] == 1
    assert {"mlm", "pv", "lp"} <= set(metrics["history"][0])
    assert (pre / "encoder.pt").is_file()
    assert main(["pretrain", "--root", str(data_root), "--out", str(pre), "--quiet"]) == 2
    assert "already holds a run" in _error(capsys)

    cls = tmp_path / "cls"
    assert main(["train", "--model", "k3m", "--task", "classification", "--root",
                 str(data_root), "--init", str(pre / "encoder.pt"), "--epochs", "2",
                 "--out", str(cls), "--quiet", *BUDGET]) == 0
    results = json.loads((cls / "results.json").read_text())
    assert results["epochs"] == 1 and results["steps"] == 1
    assert 0 <= results["test_accuracy"] <= 1 and results["test_items"] == 94
    config = json.loads((cls / "config.json").read_text())
    assert config["train"]["lr"] == 3e-3 and config["model"]["fusion"] == "mean"


def test_k3m_errors(data_root, tmp_path, capsys):
    assert main(["train", "--model", "transe", "--task", "classification", "--dataset",
                 "K3M-sample", "--out", str(tmp_path / "a")]) == 2
    assert "needs --model k3m" in _error(capsys)
    assert main(["pretrain", "--dataset", "FB15k-237", "--out", str(tmp_path / "b")]) == 2
    assert "K3M reads product files" in _error(capsys)
    assert main(["pretrain", "--root", str(data_root), "--model.depth", "3",
                 "--out", str(tmp_path / "c"), "--quiet"]) == 2
    assert "model k3m takes no argument 'depth'" in _error(capsys)
    assert main(["pretrain", "--root", str(data_root), "--epochs", "0",
                 "--out", str(tmp_path / "d")]) == 2
    assert "epochs must be a positive integer" in _error(capsys)
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_pretrain_is_seeded_before_the_model_is_built(data_root, tmp_path, capsys):
    """Same seed, same encoder.pt bit for bit (the initial weights included); a run killed
    before its first checkpoint starts over on --resume and gives the same encoder."""
    def pretrain(name: str, seed: int) -> dict:
        assert main(["pretrain", "--root", str(data_root), "--epochs", "2", "--batch-size",
                     "16", "--seed", str(seed), *BUDGET, "--out", str(tmp_path / name),
                     "--quiet"]) == 0
        return torch.load(tmp_path / name / "encoder.pt", weights_only=False)["model"]

    def same(a: dict, b: dict) -> bool:
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    a, b, other = pretrain("a", 5), pretrain("b", 5), pretrain("c", 6)
    assert same(a, b) and not same(a, other)
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.json").write_text((tmp_path / "a" / "config.json").read_text())
    capsys.readouterr()
    assert main(["pretrain", "--out", str(killed), "--resume", "--quiet"]) == 0
    assert "starting the run from the beginning" in capsys.readouterr().out
    assert same(a, torch.load(killed / "encoder.pt", weights_only=False)["model"])


@pytest.mark.parametrize("command", ["pretrain", "classify"])
def test_a_k3m_run_failing_before_its_first_checkpoint_leaves_nothing(data_root, tmp_path,
                                                                       monkeypatch, command):
    """As for link prediction: no folder, or no config.json in a folder that existed, for a
    later --resume or evaluate to trip on."""
    import mmgnn.recipes.k3m as recipes

    def crash(*args, **kwargs):
        raise RuntimeError("killed during the first epoch")

    monkeypatch.setattr(recipes, "pretrain" if command == "pretrain"
                        else "finetune_classification", crash)
    argv = (["pretrain"] if command == "pretrain" else
            ["train", "--model", "k3m", "--task", "classification"])
    for out in (tmp_path / "fresh", tmp_path / "existing"):
        if out.name == "existing":
            out.mkdir()
            (out / "notes.txt").write_text("mine")
        with pytest.raises(RuntimeError, match="first epoch"):
            main([*argv, "--root", str(data_root), "--out", str(out), "--quiet"])
        if out.name == "fresh":
            assert not out.exists()
        else:
            assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_reproduce_seed_runs_both_stages_of_the_config(data_root, tmp_path, monkeypatch):
    """``recipes.k3m.reproduce_seed`` on ``configs/k3m-sample.yaml``: pretraining with the
    config's model and its ``reproduce.pretrain`` recipe, classification from that encoder,
    the figure in metrics.json ``final.test.accuracy``; a finished seed is read, not rerun."""
    from pathlib import Path

    from mmgnn.recipes import k3m

    monkeypatch.setenv("MMGNN_DATA", str(data_root))
    config = Path(__file__).resolve().parents[1] / "configs" / "k3m-sample.yaml"
    tiny = {"pretrain.train.epochs": 1, "pretrain.train.batch_size": 250,
            "train.epochs": 1, "train.batch_size": 149, "model.streams": ["knowledge"]}
    row = k3m.reproduce_seed(config, tmp_path / "seed3", 3, overrides=tiny)
    assert row["seed"] == 3 and row["pretrain_steps"] == 2 and row["pretrain_epochs"] == 1
    assert {"pv", "lp"} <= set(row["pretrain_losses"]) and "mlm" not in row["pretrain_losses"]
    pre = json.loads((tmp_path / "seed3/pretrain/config.json").read_text())
    assert pre["lp"] == "margin" and pre["train"]["seed"] == 3
    assert pre["train"]["lr"] == 1e-4 and pre["train"]["warmup_ratio"] == 0.1
    assert pre["model"]["streams"] == ["knowledge"] and pre["model"]["fusion"] == "mean"
    metrics = json.loads((tmp_path / "seed3/classification/metrics.json").read_text())
    assert metrics["final"]["test"]["accuracy"] == row["test_accuracy"]
    assert metrics["final"]["test"]["items"] == 94 and row["steps"] == 1
    calls = []
    monkeypatch.setattr(k3m, "pretrain_run", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(k3m, "classification_run", lambda *a, **k: calls.append(a))
    assert k3m.reproduce_seed(config, tmp_path / "seed3", 3, overrides=tiny) == row
    assert not calls
