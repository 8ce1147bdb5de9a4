"""`mmgnn train --model mkgformer_re / mkgformer_ner`: the released recipe under the user's
settings, one-line misuse errors, and a tiny run end to end (a saved 2-layer BERT with
MiniLM's tokenizer, a 6-sentence MNRE / Twitter folder) writing its run folder."""

from __future__ import annotations

import json

import pytest

from mmgnn.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

MNRE_ROW = ("{'token': ['Alice', 'lives', 'in', 'Paris'], 'h': {'name': 'Alice', 'pos': [0, 1]}, "
            "'t': {'name': 'Paris', 'pos': [3, 4]}, 'img_id': 'x.jpg', 'relation': 'REL'}\n")
TWEET = "IMGID:1\nAlice\tB-PER\nlives\tO\nin\tO\nParis\tB-LOC\n\n"


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mmgnn: error: "), err
    return err


def test_dry_run_applies_the_released_recipe(tmp_path, capsys):
    assert main(["train", "--model", "mkgformer_ner", "--dataset", "Twitter2017",
                 "--train.lr", "1e-4", "--examples", "8", "--out", str(tmp_path / "r"),
                 "--dry_run"]) == 0
    run = json.loads(capsys.readouterr().out)
    train = run["train"]
    assert (train["lr"], train["batch_size"], train["epochs"], train["warmup_ratio"],
            train["optimizer"]) == (1e-4, 16, 30, 0.01, "adamw")
    assert run["examples"] == 8 and run["model"] == {"name": "mkgformer_ner"}
    assert not (tmp_path / "r").exists()


def test_misuse_is_one_line(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["train", "--model", "mkgformer_re", "--model.crf_over", "word",
                 "--out", out]) == 2
    assert "model mkgformer_re takes no argument 'crf_over'" in _error(capsys)
    assert main(["train", "--model", "mkgformer_re", "--data.modalities", "text",
                 "--out", out]) == 2
    assert "take --data.dataset and --data.root" in _error(capsys)
    assert main(["train", "--model", "mkgformer_re", "--resume", "--out", out]) == 2
    _error(capsys)


@pytest.fixture(scope="module")
def tiny_text_model(tmp_path_factory):
    """A saved 2-layer BERT of width 32 with MiniLM's tokenizer (a folder --model.text reads)."""
    from tests.models.text_task_helpers import tiny_encoder

    _, tokenizer, text_model = tiny_encoder(vision=False)
    folder = tmp_path_factory.mktemp("tiny-bert")
    text_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("model", ["mkgformer_re", "mkgformer_ner"])
def test_tiny_run_end_to_end(tmp_path, capsys, tiny_text_model, model):
    data = tmp_path / "data"
    data.mkdir()
    names = (("mnre_train.txt", "mnre_val.txt", "mnre_test.txt") if model == "mkgformer_re"
             else ("train.txt", "valid.txt", "test.txt"))
    for name in names:
        rows = MNRE_ROW + MNRE_ROW.replace("'REL'", "'None'")
        (data / name).write_text((rows if model == "mkgformer_re" else TWEET) * 3)
    out = tmp_path / "run"
    assert main(["train", "--model", model, "--model.text", str(tiny_text_model),
                 "--model.vision", "random", "--model.image_size", "16",
                 "--model.patch_size", "8", "--dataset", str(data), "--epochs", "2",
                 "--examples", "4", "--train.batch_size", "2", "--out", str(out),
                 "--quiet"]) == 0
    assert "test P " in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 2 and results["examples_seen"] == 8
    assert results["train"]["batch_size"] == 2 and results["model"]["name"] == model
    assert json.loads((out / "metrics.json").read_text())["final"]["test"]["f1"] == \
        results["test"]["f1"]
    assert {"config.json", "best.pt", "checkpoint.pt"} <= {p.name for p in out.iterdir()}
