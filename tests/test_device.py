"""The device path: every registered link predictor, the trainer, the ranking and the command
line on the ``device`` fixture (cpu always; cuda where torch sees one, skipped elsewhere)."""

from __future__ import annotations

import json
import math

import torch

from mmgnn.eval import evaluate
from mmgnn.models import build_model
from mmgnn.train import TrainConfig, fit
from tests.models.test_link_predictor_case import TRAIN, link_predictor_names, small_kwargs

#: GPU kernels sum in other orders than CPU ones: scores of the same weights agree to this.
CPU_GPU_TOL = dict(rtol=1e-4, atol=1e-4)


def test_every_model_trains_and_ranks_on_the_device(toy_kg, device, one_thread) -> None:
    """One epoch of each model's own regime on ``device``: parameters and buffers stay there,
    the loss is finite, the filtered ranking is a ranking; on a GPU its scores of the initial
    weights match the CPU's."""
    h, r = toy_kg.test[:16, 0], toy_kg.test[:16, 1]
    for name in link_predictor_names():
        torch.manual_seed(0)
        model = build_model(name, toy_kg, **small_kwargs(name)).eval()
        with torch.no_grad():
            on_cpu = model.score_tails(model.encode(), h, r)
        cfg = TrainConfig(**{**model.train_defaults, **TRAIN, "epochs": 1, "batch_size": 512,
                             "device": device})
        if device != "cpu":
            moved = model.to(device)
            with torch.no_grad():
                there = moved.score_tails(moved.encode(), h.to(device), r.to(device))
            torch.testing.assert_close(there.cpu(), on_cpu, **CPU_GPU_TOL, msg=name)
        trainer = fit(model, toy_kg, cfg, progress=False)
        assert trainer.device.type == device
        tensors = list(model.parameters()) + list(model.buffers())
        assert all(t.device.type == device for t in tensors), name
        assert math.isfinite(trainer.history[-1]["loss"]), name
        result = evaluate(model, toy_kg, "test", progress=False)
        assert 1 / toy_kg.num_entities <= result.mrr <= 1, name
        assert result.both.count == 2 * len(toy_kg.test)


def test_cli_runs_on_the_device(toy_folder, tmp_path, device, one_thread) -> None:
    """``--device`` through train, evaluate and export; the files a run writes
    load on a CPU-only machine."""
    from mmgnn.cli import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", str(toy_folder), "--model", "transe", "--dim", "8",
                 "--epochs", "1", "--batch_size", "512", "--device", device, "--out", str(out),
                 "--quiet"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["device"] == device
    for name in ("best.pt", "checkpoint.pt"):
        state = torch.load(out / name, map_location="cpu", weights_only=False)
        assert state["model"]["entity.weight"].shape[0] == 264
    assert main(["evaluate", str(out), "--device", device, "--quiet"]) == 0
    assert json.loads((out / "eval_test.json").read_text())["both"]["count"] == 2 * 129
    emb = tmp_path / "emb.pt"
    assert main(["export", str(out), "--device", device, "--out", str(emb)]) == 0
    assert torch.load(emb, weights_only=False)["entity"].device.type == "cpu"
