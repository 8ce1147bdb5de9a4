"""ReDAF: the weights are a distribution over the present modalities per entity and
relation, checked against the formula written out with explicit loops."""

from __future__ import annotations

import math

import pytest
import torch

from mmgnn.nn.fusion import ReDAF

B, M, F, R = 6, 3, 5, 4


def _inputs():
    torch.manual_seed(0)
    emb = torch.randn(B, M, F)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]],
                        dtype=torch.bool)
    r = torch.tensor([0, 1, 2, 3, 1, 0])
    return emb, mask, r


@torch.no_grad()
def _reference(layer: ReDAF, emb, mask, r):
    """alpha_m = a_m exp(s_m / T_r) / sum_m' a_m' exp(s_m' / T_r), row by row."""
    w = layer.attention.weight.view(-1)
    weights = torch.zeros(B, M)
    for i in range(B):
        temp = 1.0 / (1.0 + math.exp(-float(layer.gate.weight[r[i], 0])))
        terms = [math.exp(float(w @ torch.tanh(emb[i, m])) / temp) if mask[i, m] else 0.0
                 for m in range(M)]
        total = sum(terms)
        for m in range(M):
            weights[i, m] = terms[m] / total if total else 0.0
    return weights


def test_weights_are_a_distribution_over_present_modalities():
    emb, mask, r = _inputs()
    layer = ReDAF(F, R)
    with torch.no_grad():  # temperatures away from 1/2 so that the relation matters
        layer.gate.weight.copy_(torch.tensor([[-1.0], [0.0], [1.5], [3.0]]))
    got = layer.weights(layer.logits(emb), mask, r)
    torch.testing.assert_close(got, _reference(layer, emb, mask, r))
    assert (got[~mask] == 0).all()  # exactly zero, not small
    sums = got.sum(-1)
    torch.testing.assert_close(sums[mask.any(-1)], torch.ones(int(mask.any(-1).sum())))
    assert sums[4] == 0  # no modality at all: no weight, the zero vector
    out = layer(emb, mask, r)
    ref = torch.stack([sum(got[i, m] * emb[i, m] for m in range(M)) for i in range(B)])
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out[4], torch.zeros(F))
    # The same entity under two relations gets two different fusions.
    two = layer(emb[:1].expand(2, M, F), mask[:1].expand(2, M), torch.tensor([0, 3]))
    assert not torch.allclose(two[0], two[1])


def test_missing_modality_contents_do_not_matter():
    emb, mask, r = _inputs()
    layer = ReDAF(F, R)
    changed = torch.where(mask[..., None], emb, torch.randn(B, M, F) * 100)
    torch.testing.assert_close(layer(changed, mask, r), layer(emb, mask, r))


def test_ablations_and_broadcasting():
    emb, mask, r = _inputs()
    no_temp = ReDAF(F, R, temperature=False)
    assert no_temp.gate is None
    logits = no_temp.logits(emb)
    expected = torch.softmax(logits.masked_fill(~mask, float("-inf")), -1).nan_to_num(0.0)
    torch.testing.assert_close(no_temp.weights(logits, mask, r), expected)
    mean = ReDAF(F, R, adaptive=False)
    assert mean.attention is None and not list(mean.parameters())
    counts = mask.sum(-1, keepdim=True).clamp(min=1)
    torch.testing.assert_close(mean.weights(mean.logits(emb), mask, r), mask / counts)
    # (B, K, M, F) candidates with one relation per row broadcast as (B, 1).
    layer = ReDAF(F, R)
    cand = torch.randn(2, 3, M, F)
    rel = torch.tensor([1, 2])
    out = layer(cand, None, rel[:, None])
    for i in range(2):
        for k in range(3):
            torch.testing.assert_close(out[i, k], layer(cand[i, k][None], None, rel[i:i + 1])[0])


def test_gradients_reset_repr_and_errors():
    emb, mask, r = _inputs()
    layer = ReDAF(F, R, init_range=0.1)
    assert (layer.gate.weight.abs() <= 0.1).all()
    emb.requires_grad_(True)
    layer(emb, mask, r).pow(2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert (emb.grad[~mask] == 0).all()
    before = layer.gate.weight.detach().clone()
    layer.reset_parameters()
    assert not torch.equal(before, layer.gate.weight)
    assert repr(layer) == "ReDAF(5, num_relations=4)"
    assert repr(ReDAF(5, 4, temperature=False, adaptive=False)) == \
        "ReDAF(5, num_relations=4, temperature=False, adaptive=False)"
    with pytest.raises(ValueError, match="width 5"):
        layer(torch.randn(2, M, 7), None, None)
    with pytest.raises(ValueError, match="channels > 0"):
        ReDAF(0, 3)
