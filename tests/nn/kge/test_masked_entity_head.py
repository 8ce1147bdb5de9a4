"""MaskedEntityHead: MKGformer's 1-to-all scorer against the formula written out."""

from __future__ import annotations

import torch

from mmgnn.nn.kge import KGEDecoder, MaskedEntityHead


def test_scores_match_the_mlm_head_formula():
    torch.manual_seed(0)
    head = MaskedEntityHead(7, 3, 5)
    with torch.no_grad():
        head.bias.normal_()
    q, e, r = torch.randn(4, 5), torch.randn(7, 5), torch.tensor([0, 1, 2, 0])
    z = torch.nn.functional.gelu(q @ head.dense.weight.t() + head.dense.bias)
    z = torch.nn.functional.layer_norm(z, (5,), head.norm.weight, head.norm.bias, eps=1e-12)
    torch.testing.assert_close(head.score_t(q, r, e), z @ e.t() + head.bias)


def test_it_does_not_pretend_to_be_a_triple_decoder():
    head = MaskedEntityHead(7, 3, 5)
    assert not isinstance(head, KGEDecoder) and not hasattr(head, "score_hrt")
    assert head.entity_channels == 5 and head.num_relations == 3
    assert repr(head) == "MaskedEntityHead(7, num_relations=3, hidden_channels=5)"
