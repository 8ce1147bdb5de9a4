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
