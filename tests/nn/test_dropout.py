"""mmgnn.nn.dropout: the keep probability (a bound that can fail), inverted scaling, modes."""

from __future__ import annotations

import pytest
import torch

from mmgnn.nn.dropout import dropout, keep_mask


@pytest.mark.parametrize("p", [0.2, 0.4, 0.5])
def test_keep_mask_keeps_with_probability_one_minus_p(p):
    gen = torch.Generator().manual_seed(0)
    n = 1_000_000
    mask = keep_mask(torch.empty(n), p, gen)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    # Binomial(n, 1 - p): 5 standard deviations (a 0.2 vs 0.4 mix-up is 400 of them).
    assert abs(mask.mean().item() - (1 - p)) <= 5 * ((p * (1 - p) / n) ** 0.5)
    # Independent elements: adjacent pairs both kept at rate (1 - p)^2.
    both = (mask[:-1] * mask[1:]).mean().item()
    assert abs(both - (1 - p) ** 2) <= 5 * (((1 - p) ** 2 * (1 - (1 - p) ** 2) / n) ** 0.5)


def test_dropout_scaling_and_modes():
    x = torch.randn(1000, 50)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    torch.testing.assert_close(dropout(x, 1.0), torch.zeros_like(x))
    y = dropout(x, 0.3, generator=torch.Generator().manual_seed(1))
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.7)
    assert 0.65 < kept.float().mean().item() < 0.75
    assert keep_mask(x.double(), 0.5).dtype == torch.float64
