"""TuckerFusion against the Mutan formula written out rank by rank and modality by modality."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmgnn.nn.fusion import TuckerFusion


def _reference(fusion: TuckerFusion, xs: list[torch.Tensor]) -> torch.Tensor:
    """ReLU(sum_i prod_m ReLU(W_m^i x_m + b_m^i)), one rank component and modality at a time
    (IMF's MutanLayer without dropout)."""
    total = 0.0
    for i in range(fusion.rank):
        prod = 1.0
        for m, x in enumerate(xs):
            prod = prod * torch.relu(F.linear(x, fusion.weight[m][i], fusion.bias[m][i]))
        total = total + prod
    return torch.relu(total)


@pytest.mark.parametrize("widths,rank", [([6, 6, 6], 2), ([5, 3], 3), ([4], 2)])
def test_matches_the_mutan_formula(widths, rank):
    torch.manual_seed(0)
    fusion = TuckerFusion(widths, 7, rank=rank).eval()
    xs = [torch.randn(9, w) for w in widths]
    torch.testing.assert_close(fusion(xs), _reference(fusion, xs))
    # Leading dimensions broadcast.
    xs3 = [x.view(3, 3, -1) for x in xs]
    torch.testing.assert_close(fusion(xs3), _reference(fusion, xs).view(3, 3, 7))


def test_dropout_draws_a_mask_per_rank_component_and_only_in_training():
    torch.manual_seed(0)
    fusion = TuckerFusion(8, 8, num_modalities=2, rank=2, dropout=0.5)
    with torch.no_grad():  # both rank components identical: only their masks can differ
        for m in range(2):
            fusion.weight[m][1].copy_(fusion.weight[m][0])
            fusion.bias[m][1].copy_(fusion.bias[m][0])
    x = torch.randn(16, 8)
    z = fusion.project(x, 0)
    assert not torch.allclose(z[:, 0], z[:, 1])
    fusion.eval()
    z = fusion.project(x, 0)
    torch.testing.assert_close(z[:, 0], z[:, 1])
    fusion.dropout = 0.0
    fusion.train()
    torch.testing.assert_close(fusion([x, x]), _reference(fusion, [x, x]))


def test_gradients_reset_and_repr():
    torch.manual_seed(0)
    fusion = TuckerFusion([4, 5], 6, rank=2)
    xs = [torch.randn(10, 4), torch.randn(10, 5)]
    fusion(xs).sum().backward()
    for name, p in fusion.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    before = [p.detach().clone() for p in fusion.parameters()]
    fusion.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, fusion.parameters(), strict=True))
    # nn.Linear's default range: U(-1/sqrt(d_m), 1/sqrt(d_m)).
    assert fusion.weight[0].abs().max() <= 0.5 and fusion.weight[1].abs().max() <= 5 ** -0.5
    assert repr(fusion) == "TuckerFusion([4, 5], 6, rank=2, dropout=0.2)"
    assert TuckerFusion(3, 3, num_modalities=2, bias=False).bias is None


def test_errors():
    with pytest.raises(ValueError, match="num_modalities"):
        TuckerFusion(4, 4)
    with pytest.raises(ValueError, match="2 modalities"):
        TuckerFusion(4, 4, num_modalities=2)([torch.randn(2, 4)])
    with pytest.raises(ValueError, match="rank"):
        TuckerFusion([4], 4, rank=0)
