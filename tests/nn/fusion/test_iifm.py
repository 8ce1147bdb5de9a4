"""IIFM strategies give the spec's outputs; hard-spl picks one source per token and feature."""

from __future__ import annotations

import pytest
import torch

from mmgnn.nn.fusion.iifm import IIFM


@pytest.fixture
def sources():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(3, 5, 8, generator=g) for _ in range(3)]


def test_mean_and_interaction(sources):
    i, c1, c2 = sources
    torch.testing.assert_close(IIFM(8, 3, "mean")(sources), (i + c1 + c2) / 3)
    torch.testing.assert_close(IIFM(8, 3, "interaction")(sources), (c1 + c2) / 2)


def test_soft_matches_formula(sources):
    m = IIFM(8, 3, "soft")
    r = [s.clamp(min=0) for s in sources]
    cat = torch.cat(r, -1)
    alpha = [torch.sigmoid(cat @ g.weight.T + g.bias) for g in m.gates]
    expected = torch.cat([x * a for x, a in zip(r, alpha, strict=True)], -1) @ m.lin_out.weight.T \
        + m.lin_out.bias
    torch.testing.assert_close(m(sources), expected)


def test_hard_picks_exactly_one_source_per_token_and_feature(sources):
    torch.manual_seed(1)
    m = IIFM(8, 3, "hard").train()
    r = torch.stack([s.clamp(min=0) for s in sources])  # (S, B, L, d)
    out = m(sources)
    match = (r == out.unsqueeze(0))
    # where the ReLU'd sources differ, exactly one equals the output
    distinct = (r[0] != r[1]) & (r[0] != r[2]) & (r[1] != r[2])
    assert distinct.sum() > 50
    assert (match.sum(0)[distinct] == 1).all()
    assert match.any(0).all()
    # sigmoid gates as logits: the choice is close to uniform, all sources get picked
    picked = match.float().argmax(0)[distinct]
    counts = torch.bincount(picked, minlength=3)
    assert (counts > 0.2 * distinct.sum()).all()
    # straight-through: the gates receive gradients
    out.sum().backward()
    assert all(g.weight.grad is not None and g.weight.grad.abs().sum() > 0 for g in m.gates)


def test_hard_deterministic_eval_takes_argmax_gate(sources):
    m = IIFM(8, 3, "hard", deterministic_eval=True).eval()
    r, alpha = m.gate_values(sources)
    best = alpha.argmax(-2)  # (B, L, d)
    expected = torch.gather(torch.stack(r, -2), -2, best.unsqueeze(-2)).squeeze(-2)
    torch.testing.assert_close(m(sources), expected)


def test_pool_drops_first_token_and_padding():
    x = torch.arange(2 * 4 * 1, dtype=torch.float).view(2, 4, 1)
    out = IIFM.pool(x, torch.tensor([3, 1]))
    torch.testing.assert_close(out, torch.tensor([[1.5], [0.0]]))


def test_errors_and_repr(sources):
    with pytest.raises(ValueError, match="strategy"):
        IIFM(8, 3, "max")
    with pytest.raises(ValueError, match="3 sources"):
        IIFM(8, 3)(sources[:2])
    assert repr(IIFM(8)) == "IIFM(8, num_sources=3, strategy='hard')"
