"""The runner's schedules come from transformers; against K3M's earlier hand-written one."""

import pytest
import torch

from mmgnn.train.config import TrainConfig
from mmgnn.train.loop import build_scheduler


def old_k3m_factor(step: int, num_steps: int, warmup: float) -> float:
    """mmgnn's K3M schedule before the one trainer (train/k3m.py, written out)."""
    warm = max(1, int(warmup * num_steps))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (num_steps - step) / max(1, num_steps - warm))


def released_factor(step: int, num_steps: int, warm: int) -> float:
    """WarmupLinearSchedule of the released train_concap_struc.py (pytorch_transformers)."""
    if step < warm:
        return step / max(1, warm)
    return max(0.0, (num_steps - step) / max(1.0, num_steps - warm))


def lrs(config: TrainConfig, num_steps: int) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=config.lr)
    sched = build_scheduler(opt, config, num_steps)
    out = []
    for _ in range(num_steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("num_steps", [20, 37, 120])
def test_linear_warmup_decay_per_step(num_steps):
    cfg = TrainConfig(lr=2.0, scheduler="linear", warmup_ratio=0.1)
    got = lrs(cfg, num_steps)
    warm = int(0.1 * num_steps)
    assert got == pytest.approx([2.0 * released_factor(s, num_steps, warm)
                                 for s in range(num_steps)], rel=1e-12)
    # Against the earlier hand-written K3M formula: the same decay after the warmup, the
    # warmup one step later (it started at lr / W where transformers and the release start
    # at 0): no single transformers schedule gives both pieces of the old one.
    old = [2.0 * old_k3m_factor(s, num_steps, 0.1) for s in range(num_steps)]
    assert got[warm:] == pytest.approx(old[warm:], rel=1e-12)
    assert got[1:warm] == pytest.approx(old[:warm - 1], rel=1e-12)


def test_no_warmup_decays_linearly_to_zero():
    got = lrs(TrainConfig(lr=1.0, scheduler="linear"), 10)
    assert got == pytest.approx([(10 - s) / 10 for s in range(10)])
    assert build_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0),
                           TrainConfig(), 10) is None
