import json

import pytest
import torch

from mmgnn.models import KGEModel
from mmgnn.nn.kge.distmult import DistMult
from mmgnn.train import TrainConfig, Trainer, fit, load_checkpoint, save_checkpoint
from mmgnn.train.tasks import LinkPredictionTask
from mmgnn.utils.io import save_json
from tests.helpers import distmult_model, random_kg

SMALL = dict(epochs=4, batch_size=64, eval_every=2, lr=0.05)


@pytest.mark.parametrize("regime", ["negative", "kvsall", "1vsall"])
def test_resume_continues_exactly(tmp_path, regime):
    kg = random_kg()
    reciprocal = regime != "negative"
    cfg = TrainConfig(**SMALL, regime=regime, num_negatives=3)
    straight = fit(distmult_model(kg, reciprocal=reciprocal), kg, cfg, tmp_path / "a",
                   progress=False)
    first = TrainConfig(**{**SMALL, "epochs": 2}, regime=regime, num_negatives=3)
    fit(distmult_model(kg, reciprocal=reciprocal), kg, first, tmp_path / "b", progress=False)
    # A fresh process: new model object, same config with the full epoch count.
    resumed = fit(distmult_model(kg, reciprocal=reciprocal, seed=123), kg, cfg,
                  tmp_path / "b", resume=True, progress=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed.best_mrr == straight.best_mrr


def test_run_folder_contents(tmp_path):
    kg = random_kg()
    trainer = fit(distmult_model(kg), kg, TrainConfig(**SMALL), tmp_path, progress=False,
                  extra_state={"dataset": "random"})
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["dataset"] == "random" and len(metrics["history"]) == 4
    assert [h["epoch"] for h in metrics["history"] if "valid_mrr" in h] == [2, 4]
    assert (tmp_path / "training.png").stat().st_size > 1000
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == trainer.best_epoch
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1})

    def crash(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_early_stopping_and_budget(tmp_path):
    kg = random_kg()
    cfg = TrainConfig(**{**SMALL, "epochs": 50, "eval_every": 1, "patience": 2, "lr": 1e-30})
    trainer = fit(distmult_model(kg), kg, cfg, progress=False)  # lr ~0: never improves
    assert len(trainer.history) == 3 and trainer.best_epoch == 1
    for clock in ("wall", "cpu"):
        cfg = TrainConfig(**{**SMALL, "epochs": 50, "max_minutes": 1e-6, "budget_clock": clock})
        trainer = fit(distmult_model(kg), kg, cfg, progress=False)
        assert len(trainer.history) == 1 and "valid_mrr" in trainer.history[0]
    with pytest.raises(ValueError, match="budget_clock"):
        TrainConfig(budget_clock="gpu")


def test_resume_refuses_other_model(tmp_path):
    kg = random_kg()
    fit(distmult_model(kg), kg, TrainConfig(**{**SMALL, "epochs": 1}), tmp_path, progress=False)
    with pytest.raises(ValueError, match="resume with the same settings"):
        Trainer(distmult_model(kg, dim=16), kg, TrainConfig(**SMALL), tmp_path,
                progress=False).fit(resume=True)


def test_nan_loss_is_reported():
    kg = random_kg()
    model = distmult_model(kg)
    with torch.no_grad():
        model.entity.weight[0] = float("nan")
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(model, kg, TrainConfig(**SMALL), progress=False)


def test_config_validation():
    with pytest.raises(ValueError, match="regime"):
        TrainConfig(regime="pairwise")
    with pytest.raises(ValueError, match="does not fit"):
        TrainConfig(regime="kvsall", loss="margin")
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"modle": "transe"})


def test_callbacks_see_each_epoch_and_are_not_timed():
    import time

    kg = random_kg()
    seen = []

    def slow(trainer, record):
        seen.append(record["epoch"])
        record["extra"] = trainer.epoch
        time.sleep(0.3)

    trainer = fit(distmult_model(kg), kg, TrainConfig(**SMALL), progress=False, callbacks=[slow])
    assert seen == [1, 2, 3, 4]
    assert [h["extra"] for h in trainer.history] == [1, 2, 3, 4]
    assert trainer.history[-1]["minutes"] * 60 < 1.0  # the 1.2 s of sleeping is not counted


class _Killed(Exception):
    """Stands for a SIGKILL: raised by a callback, after validation, before the checkpoint."""


def _kill_at(epoch: int):
    def callback(trainer, record):
        if record["epoch"] == epoch:
            raise _Killed
    return callback


def _strict_json(path):
    def reject(constant):
        raise ValueError(f"{path}: {constant} is not JSON")
    return json.loads(path.read_text(), parse_constant=reject)


class _Scripted:
    """A validation result with a chosen MRR."""

    def __init__(self, mrr: float) -> None:
        self.mrr = mrr

    def to_dict(self) -> dict:
        return {"both": {"mrr": self.mrr}}


# Best at epoch 2; with patience 3 the run stops after the third validation without gain (5).
SCRIPT = {1: 0.2, 2: 0.8, 3: 0.5, 4: 0.4, 5: 0.6, 6: 0.3, 7: 0.1, 8: 0.1}


def test_resume_restores_best_model_and_early_stopping(tmp_path, monkeypatch):
    monkeypatch.setattr(LinkPredictionTask, "validate",
                        lambda self, trainer: _Scripted(SCRIPT[trainer.epoch]))
    kg = random_kg()
    cfg = TrainConfig(**{**SMALL, "epochs": 8, "eval_every": 1, "patience": 3})
    straight = fit(distmult_model(kg), kg, cfg, tmp_path / "a", progress=False)
    assert straight.epoch == 5 and (straight.best_epoch, straight.best_mrr) == (2, 0.8)
    # Killed in epoch 4: the checkpoint holds epoch 3 (best 0.8 at 2, one validation since).
    with pytest.raises(_Killed):
        fit(distmult_model(kg), kg, cfg, tmp_path / "b", progress=False,
            callbacks=[_kill_at(4)])
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["evals_without_gain"] == 1
    resumed = fit(distmult_model(kg, seed=123), kg, cfg, tmp_path / "b", resume=True,
                  progress=False)
    assert resumed.epoch == straight.epoch == 5  # the counter went on from 1, not from 0
    assert (resumed.best_epoch, resumed.best_mrr, resumed.evals_without_gain) == (
        straight.best_epoch, straight.best_mrr, straight.evals_without_gain)
    best_a, best_b = (load_checkpoint(tmp_path / d / "best.pt") for d in "ab")
    assert best_b["epoch"] == best_a["epoch"] == 2  # not overwritten by the worse epoch 4
    for k in best_a["model"]:
        assert torch.equal(best_a["model"][k], best_b["model"][k]), k
    metrics = [_strict_json(tmp_path / d / "metrics.json") for d in "ab"]
    assert [m["best_epoch"] for m in metrics] == [2, 2]
    assert [h["valid_mrr"] for h in metrics[1]["history"]] == [SCRIPT[e] for e in range(1, 6)]


class _DropoutDistMult(KGEModel):
    """DistMult whose entity embeddings go through dropout: training draws from torch's
    global generator in every step."""

    def encode(self) -> torch.Tensor:
        return torch.nn.functional.dropout(super().encode(), 0.3, self.training)


def _dropout_model(kg, seed: int = 0) -> _DropoutDistMult:
    torch.manual_seed(seed)
    return _DropoutDistMult(kg.num_entities, kg.num_relations, DistMult(kg.num_relations, 8))


def test_resume_restores_global_rng_and_learned_sampler(tmp_path):
    """After a kill, the resumed run draws the same dropout masks (torch's global generator)
    and the same hard negatives (MMRNS: its parameters, its step and the trainer's
    generator) as an uninterrupted run: losses and all weights bit-identical."""
    kg = random_kg()
    cfg = TrainConfig(**{**SMALL, "epochs": 3, "eval_every": 3}, sampler="mmrns",
                      loss="self_adversarial", num_negatives=3,
                      sampler_args={"text": "none", "image": "none", "pre_sample": 12,
                                    "attention_channels": 4, "lr": 0.05})
    straight = fit(_dropout_model(kg), kg, cfg, tmp_path / "a", progress=False)
    with pytest.raises(_Killed):
        fit(_dropout_model(kg), kg, cfg, tmp_path / "b", progress=False,
            callbacks=[_kill_at(2)])
    torch.rand(7)  # the killed process's stream moved on; a new process starts elsewhere
    resumed = fit(_dropout_model(kg, seed=123), kg, cfg, tmp_path / "b", resume=True,
                  progress=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    for (k, a), b in zip(straight.task.sampler.state_dict().items(),
                         resumed.task.sampler.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_metrics_json_is_strict_before_the_first_validation(tmp_path):
    kg = random_kg()
    with pytest.raises(_Killed):  # epoch 1 saved, no validation yet (eval_every 3)
        fit(distmult_model(kg), kg, TrainConfig(**{**SMALL, "eval_every": 3}), tmp_path,
            progress=False, callbacks=[_kill_at(2)])
    metrics = _strict_json(tmp_path / "metrics.json")  # no -Infinity
    assert metrics["epochs"] == 1 and metrics["best_valid_mrr"] is None
    save_json(tmp_path / "x.json", {"a": [float("nan"), 1.5, {"b": float("-inf")}]})
    assert _strict_json(tmp_path / "x.json") == {"a": [None, 1.5, {"b": None}]}


def test_partial_writes_are_removed_when_a_run_starts(tmp_path):
    kg = random_kg()
    tmp_path.mkdir(exist_ok=True)
    orphans = [".checkpoint.pt.a1b2c3d4.tmp", ".metrics.json.x_y_z_12.tmp",
               ".training.png.QwErTy12.tmp"]
    kept = ["notes.tmp", ".checkpoint.pt.tmp", "mine.txt"]
    for name in orphans + kept:
        (tmp_path / name).write_bytes(b"")
    fit(distmult_model(kg), kg, TrainConfig(**{**SMALL, "epochs": 1}), tmp_path,
        progress=False)
    left = {p.name for p in tmp_path.iterdir()}
    assert not left & set(orphans) and set(kept) <= left
    (tmp_path / orphans[0]).write_bytes(b"")  # and when it resumes
    fit(distmult_model(kg), kg, TrainConfig(**{**SMALL, "epochs": 2}), tmp_path, resume=True,
        progress=False)
    assert not (tmp_path / orphans[0]).exists()
