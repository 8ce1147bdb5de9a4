"""The command line: misuse is one line and exit code 2 before any data loads, --help is
torch-free, config files with dotted overrides, every model on its own defaults, and runs
end to end on the real Nations graph and the shipped toy graph."""

import json
import subprocess
import sys

import pytest
import torch

from mmgnn.cli import main
from mmgnn.models.registry import MODELS
from mmgnn.train import load_checkpoint
from mmgnn.train.config import TrainConfig


def _train(tmp_path, data_root, model, *extra):
    out = tmp_path / model
    argv = ["train", "--dataset", "Nations", "--root", str(data_root), "--model", model,
            "--model.dim", "8", "--epochs", "2", "--eval-every", "1", "--batch-size", "256",
            "--out", str(out), "--quiet", *extra]
    assert main(argv) == 0
    return out


@pytest.fixture
def no_data(monkeypatch):
    """Fails the test if anything loads a dataset."""
    import mmgnn.data

    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded")

    monkeypatch.setattr(mmgnn.data, "load_dataset", refuse)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mmgnn: error: "), err
    assert "Traceback" not in err
    return err


MISUSE = [
    (["--model", "transee"], "did you mean 'transe'"),
    (["--dim", "-5"], "dim must be a positive integer"),
    (["--model.dim", "x"], "dim"),
    (["--batch-size", "0"], "batch_size must be a positive integer"),
    (["--train.batch_size", "0"], "batch_size must be a positive integer"),
    (["--model.p_norm", "x"], "p_norm"),
    (["--model.bogus", "1"], "takes no argument 'bogus'"),
    (["--model.p_nrom", "1"], "did you mean 'p_norm'"),
    (["--epochs", "0"], "epochs must be a positive integer"),
    (["--epochs", "-1"], "epochs must be a positive integer"),
    (["--eval-every", "-1"], "eval_every must be an integer >= 0"),
    (["--patience", "-1"], "patience must be an integer >= 0"),
    (["--train.regime", "kvsall", "--train.loss", "margin"], "does not fit regime"),
    (["--model", "imf", "--train.regime", "negative"], "imf trains with regime"),
    (["--model", "imf", "--model.reciprocal", "false"], "needs reciprocal"),
    (["--no-such-option", "1"], "unrecognized"),
    (["--dataset", "NoSuchSet"], "unknown dataset 'NoSuchSet'"),
    (["--sampler", "mmrns", "--train.sampler_args.pre_sampel", "8"], "did you mean 'pre_sample'"),
    (["--sampler", "mmrns", "--train.sampler_args.pre_sample", "x"], "pre_sample"),
    (["--sampler", "bernoulli", "--train.sampler_args.lr", "1"], "takes no argument 'lr'"),
]


@pytest.mark.parametrize("extra,message", MISUSE, ids=[" ".join(m[0]) for m in MISUSE])
def test_misuse_is_one_line_exit_2_before_data_loads(tmp_path, capsys, no_data, extra, message):
    argv = ["train", "--dataset", "Nations", "--root", str(tmp_path / "absent"),
            "--out", str(tmp_path / "run"), *extra]
    assert main(argv) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


NPROC_MISUSE = [
    (["train", "--dataset", "Nations", "--model", "transee"], "did you mean 'transe'"),
    (["train", "--model", "transe"], "train needs --dataset"),
    (["pretrain", "--model.bogus", "1"], "bogus"),
    (["train", "--model", "mkgformer_re", "--dataset", "MNRE", "--train.epochs", "0"],
     "epochs must be a positive integer"),
]


@pytest.mark.parametrize("argv,message", NPROC_MISUSE, ids=[m[1] for m in NPROC_MISUSE])
def test_nproc_misuse_is_one_line_before_any_rank_starts(tmp_path, capsys, no_data,
                                                         monkeypatch, argv, message):
    import mmgnn.train.distributed as distributed

    monkeypatch.setattr(distributed, "launch",
                        lambda *a, **k: pytest.fail("ranks started for a misuse"))
    assert main([*argv, "--nproc", "2", "--out", str(tmp_path / "run")]) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_missing_dataset_and_resume_misuse(tmp_path, capsys, no_data):
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    assert "train needs --dataset" in _one_error_line(capsys)
    assert main(["train", "--out", str(tmp_path / "run"), "--resume"]) == 2
    assert "nothing to resume" in _one_error_line(capsys)
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--epochs", "3"]) == 2
    assert "--train.epochs would be ignored" in _one_error_line(capsys)
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "config.json not found" in _one_error_line(capsys)


def test_debug_shows_the_traceback(tmp_path, no_data):
    with pytest.raises(KeyError, match="transee"):
        main(["train", "--dataset", "Nations", "--model", "transee", "--debug",
              "--out", str(tmp_path / "run")])


def test_help_lists_models_and_defaults(capsys):
    for argv in (["--help"], ["train", "--help"], ["pretrain", "--help"], ["evaluate", "--help"],
                 ["export", "--help"], ["datasets", "--help"], ["features", "--help"],
                 ["robustness", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    printed = " ".join(capsys.readouterr().out.split())  # help wraps its lines
    for name in MODELS.names():
        assert name in printed
    for line in ("--train.epochs", "(>= 1). (type: int, default: 100)", "--train.batch_size",
                 "default: 1024", "--train.lr", "default: 0.001", "--data.dataset", "--config",
                 "--resume"):
        assert line in printed, line


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]])
def test_help_imports_no_torch(argv):
    """What makes --help fast: neither torch nor a model is imported."""
    code = (f"import sys\nfrom mmgnn.cli import main\ntry:\n    main({argv!r})\nexcept "
            "SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'transformers', 'torch_geometric') or m.startswith('mmgnn.models.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "['mmgnn.models.registry']"


def test_config_file_with_dotted_overrides(tmp_path, capsys, no_data):
    config = tmp_path / "c.yaml"
    config.write_text("data: {dataset: Nations}\nmodel: {name: complex, dim: 200, init_std: "
                      "0.001, reciprocal: true}\ntrain: {regime: 1vsall, lr: 0.1, epochs: 6}\n")
    assert main(["train", "--config", str(config), "--train.lr", "0.05", "--model.dim", "100",
                 "--data.dataset", "FB15k-237", "--out", str(tmp_path / "r"), "--dry_run"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["data"]["dataset"] == "FB15k-237"
    assert run["model"] == {"name": "complex", "args": {"dim": 100, "init_std": 0.001,
                                                        "reciprocal": True}}
    assert (run["train"]["lr"], run["train"]["epochs"], run["train"]["regime"]) == (0.05, 6,
                                                                                     "1vsall")
    assert run["train"]["batch_size"] == TrainConfig.batch_size  # the rest: the defaults


def test_model_defaults_are_applied_under_the_users_and_said_once(tmp_path, capsys, no_data):
    assert main(["train", "--dataset", "DB15K", "--model", "imf", "--out", str(tmp_path / "r"),
                 "--dry_run"]) == 0
    said, *rest = capsys.readouterr().out.splitlines()
    assert said.startswith("mmgnn: imf trains with regime=kvsall") and "reciprocal=True" in said
    run = json.loads("\n".join(rest))
    assert run["train"]["regime"] == "kvsall" and run["model"]["args"]["reciprocal"] is True
    assert main(["train", "--dataset", "DB15K", "--model", "imf", "--train.regime", "1vsall",
                 "--out", str(tmp_path / "r"), "--dry_run"]) == 0
    said, *rest = capsys.readouterr().out.splitlines()
    assert "regime=" not in said and json.loads("\n".join(rest))["train"]["regime"] == "1vsall"
    assert main(["train", "--dataset", "DB15K", "--model", "native", "--out",
                 str(tmp_path / "r"), "--dry_run"]) == 0
    said, *rest = capsys.readouterr().out.splitlines()
    assert "modalities=['text']" in said
    assert json.loads("\n".join(rest))["data"]["modalities"] == ["text"]


@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_trains_on_its_own_defaults(tmp_path, toy_folder, monkeypatch, capsys,
                                                model):
    """``mmgnn train --dataset toy --model M``: one epoch on the shipped toy graph (its texts
    and numeric attributes attached by the test helper, as a dataset card would)."""
    import mmgnn.data
    from tests.helpers import load_toy_kg

    monkeypatch.setenv("MMGNN_FEATURE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(mmgnn.data, "load_dataset", lambda *a, **k: load_toy_kg(toy_folder))
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(toy_folder), "--model", model, "--epochs", "1",
                 "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert (out / "best.pt").is_file() and (out / "metrics.json").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(out), "--quiet"]) == 0


def test_failed_train_leaves_nothing_evaluate_trips_on(tmp_path, data_root, monkeypatch,
                                                        capsys):
    import mmgnn.train.loop

    def broken(*args, **kwargs):
        raise RuntimeError("killed before the first checkpoint")

    monkeypatch.setattr(mmgnn.train.loop, "fit", broken)
    with pytest.raises(RuntimeError, match="first checkpoint"):
        _train(tmp_path, data_root, "distmult")
    assert not (tmp_path / "distmult").exists()
    (tmp_path / "half").mkdir()  # a run killed (SIGKILL) before its first checkpoint
    (tmp_path / "half" / "config.json").write_text("{}")
    assert main(["evaluate", str(tmp_path / "half")]) == 2
    assert "best.pt not found" in _one_error_line(capsys)


def test_train_evaluate_resume(tmp_path, data_root, capsys):
    out = _train(tmp_path, data_root, "distmult", "--train.regime", "1vsall", "--reciprocal")
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["final"]) == {"valid", "test"}
    assert metrics["final"]["test"]["both"]["count"] == 2 * 201
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == {"name": "distmult", "args": {"dim": 8, "reciprocal": True}}
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "test", "--quiet"]) == 0
    printed = capsys.readouterr().out
    evaluated = json.loads((out / "eval_test.json").read_text())
    assert evaluated["both"]["mrr"] == pytest.approx(metrics["final"]["test"]["both"]["mrr"])
    assert f"{evaluated['both']['mrr']:.4f}" in printed
    assert main(["train", "--dataset", "Nations", "--out", str(out)]) == 2
    assert "already holds a run" in _one_error_line(capsys)
    # Resuming a finished run trains no further and keeps the history.
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 2


def test_export_reproduces_scores(tmp_path, data_root):
    out = _train(tmp_path, data_root, "transe", "--model.p_norm", "1")
    file = tmp_path / "transe.pt"
    assert main(["export", str(out), "--out", str(file)]) == 0
    payload = torch.load(file)
    ent, rel = payload["entity"], payload["relation"]
    from mmgnn.data import load_dataset

    kg = load_dataset("Nations", root=data_root, add_side_info=False)
    assert payload["model"] == "transe" and payload["p"] == 1
    assert ent.shape == (kg.num_entities, 8) and rel.shape[0] == kg.num_relations
    h, r, t = kg.test.t()
    from mmgnn.models import build_model

    model = build_model("transe", kg, dim=8, p_norm=1)
    model.load_state_dict(load_checkpoint(out / "best.pt")["model"])
    model.eval()
    with torch.no_grad():
        got = model(h, r, t)
    torch.testing.assert_close(got, -(ent[h] + rel[r] - ent[t]).abs().sum(-1), rtol=1e-4,
                               atol=1e-4)


def test_features_multimodal_and_robustness(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.setenv("MMGNN_FEATURE_CACHE", str(tmp_path / "cache"))
    argv = ["features", "--dataset", "Nations", "--root", str(data_root), "--modality",
            "numeric", "--modality.normalization", "zscore", "--out", str(tmp_path / "n.pt"),
            "--quiet"]
    assert main(argv) == 0
    assert "(14, 2)" in capsys.readouterr().out
    assert main(argv) == 0
    assert "read from the cache" in capsys.readouterr().out
    assert main(argv[:-3] + ["--modality.normalisation", "zscore"]) == 2
    assert "did you mean 'normalization'" in _one_error_line(capsys)
    out = _train(tmp_path, data_root, "multimodal", "--data.modalities", "numeric",
                 "--data.modality_args.numeric.with_mask", "true", "--model.decoder", "distmult")
    assert json.loads((out / "config.json").read_text())["data"]["modality_args"] == {
        "numeric": {"with_mask": True}}
    capsys.readouterr()
    assert main(["robustness", str(out), "--rates", "0,0.5,1", "--quiet"]) == 0
    report = json.loads((out / "robustness.json").read_text())
    # Nations: 13 of 14 entities have numeric attributes; round(6.5) = 7 (half up).
    assert [(r["setting"], r["rate"], r["affected"]) for r in report["rows"]] == [
        ("missing:numeric", 0.0, 0), ("missing:numeric", 0.5, 7), ("missing:numeric", 1.0, 13),
        ("noise:numeric", 0.0, 0), ("noise:numeric", 0.5, 7), ("noise:numeric", 1.0, 13)]
    assert f"{report['rows'][2]['mrr']:.4f}" in capsys.readouterr().out
    assert main(["robustness", str(out), "--rates", "0,2"]) == 2
    assert "--rates must be numbers in" in _one_error_line(capsys)
    plain = _train(tmp_path, data_root, "distmult")
    assert main(["robustness", str(plain), "--quiet"]) == 2
    assert "uses no modality features" in _one_error_line(capsys)


def test_same_seed_gives_the_same_run(tmp_path, data_root):
    runs = [_train(tmp_path / name, data_root, "distmult", "--seed", seed,
                   "--train.num_negatives", "4")
            for name, seed in (("a", "3"), ("b", "3"), ("c", "4"))]
    a, b, c = (load_checkpoint(r / "checkpoint.pt")["model"] for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_malformed_dataset_is_one_line_with_exit_code_2(tmp_path, data_root, capsys):
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
    assert f"{folder / 'valid.txt'} line 3" in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_import_registers_a_users_model(tmp_path, toy_folder, monkeypatch, capsys):
    """``--import MODULE`` imports a user's package first, so its registered model is a name
    for ``--model`` (checked against its constructor like a built-in); a module that does not
    exist is one line, exit 2."""
    (tmp_path / "my_models.py").write_text(
        "from mmgnn.models import KGEModel, register_model\n\n"
        "@register_model('my_kge')\n"
        "class MyKGE(KGEModel):\n"
        "    def __init__(self, num_entities, num_relations, dim=8, scale=1.0):\n"
        "        super().__init__(num_entities, num_relations, decoder='distmult', dim=dim)\n"
        "        self.scale = scale\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        assert main(["train", "--import", "my_models", "--dataset", str(toy_folder), "--model",
                     "my_kge", "--model.scale", "2", "--out", str(tmp_path / "r"),
                     "--dry_run"]) == 0
        printed = json.loads(capsys.readouterr().out)["model"]
        assert printed == {"name": "my_kge", "args": {"scale": 2.0}}
        assert main(["train", "--import", "my_models", "--dataset", str(toy_folder), "--model",
                     "my_kge", "--model.p_norm", "1", "--out", str(tmp_path / "r")]) == 2
        assert "p_norm" in _one_error_line(capsys)
    finally:
        MODELS._entries.pop("my_kge", None)
        sys.modules.pop("my_models", None)
    assert main(["train", "--import", "no_such_module_here", "--dataset", str(toy_folder),
                 "--out", str(tmp_path / "r")]) == 2
    assert "no_such_module_here" in _one_error_line(capsys)
