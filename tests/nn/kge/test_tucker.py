"""TuckER's options for IMF: relations given from outside, no own table, the core's init."""

from __future__ import annotations

import pytest
import torch

from mmgnn.nn.kge import TuckER


def _reference_query(dec: TuckER, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Eval-mode TuckER query, W_r = sum_j w_j W_j contracted with einsum per row."""
    x = dec.bn0(h)
    mats = torch.einsum("bj,jik->bik", w, dec.core)
    return dec.bn1(torch.einsum("bi,bik->bk", x, mats))


def test_external_relations_replace_the_own_table():
    torch.manual_seed(0)
    dec = TuckER(6, 5, relation_channels=3).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        dec.bn0.running_mean.normal_()
        dec.bn1.running_var.uniform_(0.5, 2.0)
    h, r, cand = torch.randn(4, 5), torch.tensor([0, 5, 2, 2]), torch.randn(7, 5)
    table = torch.randn(6, 3)
    ref = _reference_query(dec, h, table[r]) @ cand.t()
    torch.testing.assert_close(dec.score_t(h, r, cand, relations=table), ref)
    torch.testing.assert_close(dec.score_hrt(h, r, cand[:4], relations=table),
                               ref[torch.arange(4), torch.arange(4)])
    own = _reference_query(dec, h, dec.rel_emb.weight[r]) @ cand.t()
    torch.testing.assert_close(dec.score_t(h, r, cand), own)
    # score_h contracts the core the other way; it must agree with score_hrt per candidate.
    t = torch.randn(4, 5)
    heads = dec.score_h(r, t, cand, relations=table)
    direct = dec.score_hrt(cand[None], r[:, None], t[:, None], relations=table)
    torch.testing.assert_close(heads, direct)


def test_without_own_relations():
    dec = TuckER(4, 3, own_relations=False, core_init="xavier_uniform")
    assert dec.rel_emb is None and "rel_emb.weight" not in dec.state_dict()
    with pytest.raises(ValueError, match="relations="):
        dec.score_t(torch.randn(2, 3), torch.tensor([0, 1]), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        dec.score_t(torch.randn(2, 3), torch.tensor([0, 1]), torch.randn(5, 3),
                    relations=torch.randn(3, 3))
    assert "core_init='xavier_uniform', own_relations=False" in repr(dec)


def test_core_init():
    torch.manual_seed(0)
    # Xavier-uniform on a (d_r, d, d) tensor: fan_in = d*d, fan_out = d_r*d.
    dec = TuckER(2, 16, relation_channels=8, core_init="xavier_uniform")
    bound = (6.0 / (16 * 16 + 8 * 16)) ** 0.5
    assert dec.core.abs().max() <= bound and dec.core.abs().max() > 0.9 * bound
    assert TuckER(2, 16).core.abs().max() > 0.9  # U(-1, 1), the official TuckER code
    with pytest.raises(ValueError, match="core_init"):
        TuckER(2, 4, core_init="normal")


def _keyed_keep_mask(x, p, generator=None):
    """A keep-mask that is a function of each element's value (same values, same mask)."""
    return (torch.frac(torch.sin(x * 12.9898) * 43758.5453).abs() >= p).to(x.dtype)


@pytest.mark.parametrize("keep_masks", [True, False])
@pytest.mark.parametrize("side", ["tail", "head"])
def test_w_r_dropout_blocks_match_the_stacked_form(monkeypatch, keep_masks, side):
    """Training-mode TuckER with drop_1 on W_r, computed in cache-sized blocks (masks kept, or
    drawn again in the backward pass), against the official code's form: one (d, d) matrix
    per row, the (M, d, d) stack dropped out, a batched product; outputs and gradients."""
    import mmgnn.nn.dropout
    import mmgnn.nn.kge.tucker as tucker

    monkeypatch.setattr(mmgnn.nn.dropout, "keep_mask", _keyed_keep_mask)
    monkeypatch.setattr(tucker, "ROW_BLOCK_ELEMENTS", 3 * 8 * 8)  # 3 rows per block
    torch.manual_seed(0)
    # 10 rows of 8 x 8: masks and masked blocks, 1280 elements, kept within 8 x 160 only.
    dec = TuckER(5, 8, relation_channels=4, input_dropout=0.0, hidden_dropout1=0.4,
                 hidden_dropout2=0.0, core_init="xavier_uniform",
                 chunk_elements=160 if keep_masks else 159).double().train()
    h = torch.randn(10, 8, dtype=torch.float64, requires_grad=True)
    r = torch.tensor([0, 4, 4, 1, 2, 0, 3, 4, 1, 1])
    cand = torch.randn(7, 8, dtype=torch.float64)

    def stacked() -> torch.Tensor:
        w = (dec.rel_emb.weight[r] @ dec.core.view(4, -1)).view(-1, 8, 8)
        w = w * _keyed_keep_mask(w, 0.4) / 0.6
        if side == "head":  # score_h: BN0(c) . (W_r (a_1 * t)) + b_1 . t, eval-mode BN1
            a1, b1 = dec._affine(dec.bn1)
            v = torch.bmm(w, (a1 * h)[:, :, None]).squeeze(-1)
            return v @ dec.bn0(cand).t() + (h * b1).sum(-1, keepdim=True)
        return dec.bn1(torch.bmm(dec.bn0(h)[:, None, :], w).squeeze(1)) @ cand.t()

    params = [h, dec.core, dec.rel_emb.weight, dec.bn0.weight]
    ref = stacked()
    ref_grads = torch.autograd.grad(ref.sin().sum(), params)
    out = dec.score_t(h, r, cand) if side == "tail" else dec.score_h(r, h, cand)
    grads = torch.autograd.grad(out.sin().sum(), params)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    for g, rg in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, rg, rtol=0, atol=1e-12)


def test_w_r_dropout_masks_kept_or_drawn_again_give_the_same_step():
    """With torch's random masks: the backward pass that draws the masks again from their seed
    gives the gradients of the one that kept them, and every row has its own mask."""
    def step(chunk_elements: int) -> list[torch.Tensor]:
        torch.manual_seed(0)
        dec = TuckER(3, 8, input_dropout=0.0, hidden_dropout2=0.0,
                     chunk_elements=chunk_elements).train()
        h, r = torch.randn(6, 8).requires_grad_(), torch.zeros(6, dtype=torch.long)
        out = dec.score_t(h.expand(6, 8), r, torch.randn(5, 8))
        return [out, *torch.autograd.grad(out.pow(2).sum(), [h, dec.core])]

    kept, drawn = step(2**22), step(64)
    for a, b in zip(kept, drawn, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(kept[0][0], kept[0][1])  # same query, different masks
