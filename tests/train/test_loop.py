import json

import pytest
import torch

from mmgnn.train import TrainConfig, Trainer, fit, load_checkpoint, save_checkpoint
from tests.helpers import distmult_model, random_kg

SMALL = dict(model="distmult", dim=8, epochs=4, batch_size=64, eval_every=2, lr=0.05)


@pytest.mark.parametrize("regime", ["negative", "kvsall", "1vsall"])
def test_resume_continues_exactly(tmp_path, regime):
    kg = random_kg()
    cfg = TrainConfig(**SMALL, regime=regime, num_negatives=3, reciprocal=regime != "negative")
    straight = fit(distmult_model(kg, reciprocal=cfg.reciprocal), kg, cfg, tmp_path / "a",
                   progress=False)
    first = TrainConfig(**{**SMALL, "epochs": 2}, regime=regime, num_negatives=3,
                        reciprocal=cfg.reciprocal)
    fit(distmult_model(kg, reciprocal=cfg.reciprocal), kg, first, tmp_path / "b", progress=False)
    # A fresh process: new model object, same config with the full epoch count.
    resumed = fit(distmult_model(kg, reciprocal=cfg.reciprocal, seed=123), kg, cfg,
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
    cfg = TrainConfig(**{**SMALL, "epochs": 50, "eval_every": 1, "patience": 2, "lr": 0.0})
    trainer = fit(distmult_model(kg), kg, cfg, progress=False)  # lr 0: never improves
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
    other = TrainConfig(**{**SMALL, "dim": 16})
    with pytest.raises(ValueError, match="resume with the same settings"):
        Trainer(distmult_model(kg, dim=16), kg, other, tmp_path, progress=False).fit(resume=True)


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
