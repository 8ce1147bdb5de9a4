"""The command line, end to end on the real Nations graph."""

import json

import pytest
import torch

from mmgnn.cli import main
from mmgnn.data import load_dataset
from mmgnn.eval import evaluate
from mmgnn.models import build_model
from mmgnn.train import TrainConfig, load_checkpoint


def _train(tmp_path, data_root, model, *extra):
    out = tmp_path / model
    argv = ["train", "--dataset", "Nations", "--root", str(data_root), "--model", model,
            "--dim", "8", "--epochs", "2", "--eval-every", "1", "--batch-size", "256",
            "--out", str(out), "--quiet", *extra]
    assert main(argv) == 0
    return out


def test_help_of_every_command(capsys):
    for argv in (["--help"], ["train", "--help"], ["evaluate", "--help"], ["export", "--help"],
                 ["datasets", "--help"], ["features", "--help"], ["robustness", "--help"],
                 ["pretrain", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    assert "--resume" in capsys.readouterr().out


def test_help_examples_keep_one_command_per_line():
    from mmgnn.cli import EXAMPLES

    for line in EXAMPLES.splitlines()[1:]:  # a lost "\\" joins two lines into one
        assert line.startswith(("  mmgnn ", "      --")), line
        assert "      --" not in line.strip() and line.count("mmgnn ") <= 1, line


def test_train_evaluate_resume(tmp_path, data_root, capsys):
    out = _train(tmp_path, data_root, "distmult", "--regime", "1vsall", "--reciprocal")
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["final"]) == {"valid", "test"}
    assert metrics["final"]["test"]["both"]["count"] == 2 * 201
    assert (out / "training.png").exists() and (out / "best.pt").exists()
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "test", "--quiet"]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "eval_test.json").read_text())
    assert saved["both"]["mrr"] == pytest.approx(metrics["final"]["test"]["both"]["mrr"])
    assert f"{saved['both']['mrr']:.4f}" in printed
    with pytest.raises(SystemExit, match="already holds a run"):
        _train(tmp_path, data_root, "distmult")
    # Resuming a finished run trains no further and keeps the history.
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 2


def test_train_errors_are_clear(tmp_path, data_root):
    with pytest.raises(SystemExit, match="does not fit regime"):
        main(["train", "--dataset", "Nations", "--root", str(data_root), "--regime", "kvsall",
              "--loss", "margin", "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="unknown model"):
        main(["train", "--dataset", "Nations", "--root", str(data_root), "--model", "transx",
              "--out", str(tmp_path / "y"), "--quiet"])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        main(["train", "--dataset", "Nations", "--arg", "p_norm", "--out", str(tmp_path / "z")])
    with pytest.raises(SystemExit, match="config.json"):
        main(["evaluate", str(tmp_path / "nothing")])


@pytest.mark.parametrize("model,extra", [("transe", ["--arg", "p_norm=1"]), ("rotate", []),
                                         ("complex", ["--reciprocal", "--regime", "1vsall"])])
def test_export_reproduces_scores(tmp_path, data_root, model, extra):
    out = _train(tmp_path, data_root, model, *extra)
    file = tmp_path / f"{model}.pt"
    assert main(["export", str(out), "--out", str(file)]) == 0
    payload = torch.load(file)
    kg = load_dataset("Nations", root=data_root, add_side_info=False)
    assert payload["model"] == model
    assert payload["entity_names"] == kg.entity_names
    assert payload["relation_names"] == kg.relation_names
    ent, rel = payload["entity"], payload["relation"]
    assert ent.shape == (kg.num_entities, 8) and rel.shape[0] == kg.num_relations
    # Score the test triples from the exported tensors alone, with the paper's formula.
    h, r, t = kg.test.t()
    if model == "transe":
        assert payload["p"] == 1 and not ent.is_complex()
        ref = -(ent[h] + rel[r] - ent[t]).abs().sum(-1)
    elif model == "rotate":
        assert ent.is_complex() and payload["p"] == 1
        torch.testing.assert_close(rel.abs(), torch.ones_like(rel.abs()))
        ref = payload["margin"] - (ent[h] * rel[r] - ent[t]).abs().sum(-1)
    else:
        assert ent.is_complex() and payload["p"] is None
        assert payload["relation_inverse"].shape == rel.shape
        ref = (ent[h] * rel[r] * ent[t].conj()).real.sum(-1)
    saved = json.loads((out / "config.json").read_text())
    trained = build_model(TrainConfig.from_dict(saved["train"]), kg)
    trained.load_state_dict(load_checkpoint(out / "best.pt")["model"])
    trained.eval()
    with torch.no_grad():
        got = trained.score_hrt(trained.encode(), h, r, t)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    assert evaluate(trained, kg, "test", progress=False).mrr > 0


def test_features_train_multimodal_and_robustness(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.setenv("MMGNN_FEATURE_CACHE", str(tmp_path / "cache"))
    argv = ["features", "--dataset", "Nations", "--root", str(data_root), "--modality",
            "numeric", "--arg", "normalization=zscore", "--out", str(tmp_path / "n.pt"),
            "--quiet"]
    assert main(argv) == 0
    assert "(14, 2)" in capsys.readouterr().out
    assert main(argv) == 0
    assert "read from the cache" in capsys.readouterr().out
    saved = torch.load(tmp_path / "n.pt")
    assert saved["x"].shape == (14, 2) and len(saved["entity_names"]) == 14
    out = _train(tmp_path, data_root, "multimodal", "--modalities", "numeric",
                 "--modality-arg", "numeric.with_mask=true", "--arg", "decoder=distmult")
    assert json.loads((out / "config.json").read_text())["train"]["modality_args"] == {
        "numeric": {"with_mask": True}}
    capsys.readouterr()
    assert main(["robustness", str(out), "--rates", "0,0.5,1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "robustness.json").read_text())
    # Nations: 13 of 14 entities have numeric attributes; round(6.5) = 7 (half up).
    assert [(r["setting"], r["rate"], r["affected"]) for r in report["rows"]] == [
        ("missing:numeric", 0.0, 0), ("missing:numeric", 0.5, 7), ("missing:numeric", 1.0, 13),
        ("noise:numeric", 0.0, 0), ("noise:numeric", 0.5, 7), ("noise:numeric", 1.0, 13)]
    assert f"{report['rows'][2]['mrr']:.4f}" in printed
    assert (out / "robustness.png").stat().st_size > 1000
    assert main(["evaluate", str(out), "--quiet"]) == 0  # rebuilds the features from the cache
    with pytest.raises(SystemExit, match="--rates must be numbers in"):
        main(["robustness", str(out), "--rates", "0,2"])
    with pytest.raises(SystemExit, match="names modalities the model does not use"):
        main(["robustness", str(out), "--settings", "TMR", "--quiet"])
    plain = _train(tmp_path, data_root, "distmult")
    with pytest.raises(SystemExit, match="uses no modality features"):
        main(["robustness", str(plain), "--quiet"])
    with pytest.raises(SystemExit, match="MODALITY.KEY=VALUE"):
        main(["train", "--dataset", "Nations", "--modality-arg", "pooling=cls",
              "--out", str(tmp_path / "bad")])


def test_train_imf_evaluate_and_robustness(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.setenv("MMGNN_FEATURE_CACHE", str(tmp_path / "cache"))
    out = _train(tmp_path, data_root, "imf", "--modalities", "numeric", "--reciprocal",
                 "--regime", "kvsall", "--label-smoothing", "0.1", "--label-smoothing-form",
                 "released", "--arg", "decision=mean")
    train = json.loads((out / "config.json").read_text())["train"]
    assert train["label_smoothing_form"] == "released" and train["model_args"] == {
        "decision": "mean"}
    assert main(["evaluate", str(out), "--quiet"]) == 0
    assert main(["robustness", str(out), "--rates", "0,1", "--quiet"]) == 0
    rows = json.loads((out / "robustness.json").read_text())["rows"]
    assert [r["affected"] for r in rows] == [0, 13, 0, 13]
    with pytest.raises(ValueError, match="several branches"):
        main(["export", str(out), "--out", str(tmp_path / "imf.pt")])


TIME_FIELDS = ("minutes", "seconds")


def _without_times(value):
    """A metrics.json value without its time fields, the only ones two runs may differ in."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in TIME_FIELDS}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _strict_json(path):
    """The file parsed as RFC 8259 JSON: NaN / Infinity are errors, not numbers."""
    def reject(constant):
        raise ValueError(f"{path}: non-finite constant {constant} is not JSON")
    return json.loads(path.read_text(), parse_constant=reject)


def _tensors_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


def _same_run(a, b) -> bool:
    """Bit-identical: metrics.json apart from time fields, and every checkpoint tensor."""
    if _without_times(_strict_json(a / "metrics.json")) != _without_times(
            _strict_json(b / "metrics.json")):
        return False
    for name in ("checkpoint.pt", "best.pt"):
        sa, sb = load_checkpoint(a / name), load_checkpoint(b / name)
        if not _tensors_equal(sa["model"], sb["model"]):
            return False
    ca, cb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    return torch.equal(ca["torch_rng"], cb["torch_rng"]) and torch.equal(
        ca["generator"], cb["generator"])


# Random initial weights (the global stream), batch order and negatives (the trainer's own).
# Dropout's draws from the global stream: tests/train/test_loop.py.
SEEDED = ("distmult", "--num-negatives", "4", "--epochs", "3")


def test_same_seed_gives_a_bit_identical_run(tmp_path, data_root):
    a = _train(tmp_path / "a", data_root, *SEEDED, "--seed", "3")
    b = _train(tmp_path / "b", data_root, *SEEDED, "--seed", "3")
    assert _same_run(a, b)
    other = _train(tmp_path / "c", data_root, *SEEDED, "--seed", "4")
    assert not _same_run(a, other)
    # The Python API, seeded as documented, gives the command line's run.
    from mmgnn.train import fit, seed_everything

    config = TrainConfig.from_dict(json.loads((a / "config.json").read_text())["train"])
    kg = load_dataset("Nations", root=data_root, add_side_info=False)
    seed_everything(config.seed)
    fit(build_model(config, kg), kg, config, out_dir=tmp_path / "api", progress=False)
    api = load_checkpoint(tmp_path / "api" / "checkpoint.pt")
    assert _tensors_equal(api["model"], load_checkpoint(a / "checkpoint.pt")["model"])


def test_resume_without_checkpoint_starts_over(tmp_path, data_root, capsys):
    """Killed while writing its first checkpoint: config.json and a partial .tmp are left."""
    done = _train(tmp_path / "done", data_root, *SEEDED)
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.json").write_text((done / "config.json").read_text())
    (killed / ".checkpoint.pt.k1ll3d_x.tmp").write_bytes(b"")
    capsys.readouterr()
    assert main(["train", "--out", str(killed), "--resume", "--quiet"]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "from the beginning" in line]
    assert len(said) == 1 and "no checkpoint.pt" in said[0]
    assert not list(killed.glob(".*.tmp"))
    assert _same_run(done, killed)


@pytest.mark.parametrize("missing", ["nan", "none"])
def test_modality_arg_words_reach_the_modality(tmp_path, data_root, monkeypatch, missing):
    """``none`` / ``nan`` are the words PrecomputedModality(missing=...) expects, not None
    and float('nan')."""
    monkeypatch.setenv("MMGNN_FEATURE_CACHE", str(tmp_path / "cache"))
    names = load_dataset("Nations", root=data_root, add_side_info=False).entity_names
    x = torch.arange(len(names) * 3, dtype=torch.float32).view(-1, 3)
    x[5] = float("nan") if missing == "nan" else x[5]
    torch.save({"x": x, "entity_names": list(names)}, tmp_path / "f.pt")
    out = _train(tmp_path, data_root, "multimodal", "--modalities", "precomputed",
                 "--modality-arg", f"precomputed.path={tmp_path / 'f.pt'}",
                 "--modality-arg", f"precomputed.missing={missing}", "--arg", "decoder=distmult")
    saved = json.loads((out / "config.json").read_text())["train"]["modality_args"]
    assert saved["precomputed"]["missing"] == missing
    from mmgnn.cli import _load_run

    kg = _load_run(str(out), None)[2]
    expected = torch.ones(len(names), dtype=torch.bool)
    expected[5] = missing == "none"
    assert torch.equal(kg.masks["precomputed"], expected)


def test_malformed_dataset_is_one_line_with_exit_code_2(tmp_path, data_root, capsys):
    """A data file that breaks its format ends in one line naming the file and the line."""
    folder = tmp_path / "Broken"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_bytes((data_root / "Nations-literal" / f"{split}.txt")
                                             .read_bytes())
    lines = (folder / "valid.txt").read_text().split("\n")
    lines[2] = lines[2] + " "  # an edge space: 'b ' would be a new entity next to 'b'
    (folder / "valid.txt").write_text("\n".join(lines))
    assert main(["train", "--dataset", str(folder), "--model", "distmult", "--dim", "4",
                 "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("mmgnn: error: ") and f"{folder / 'valid.txt'} line 3" in err
