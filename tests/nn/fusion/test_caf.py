import math

import torch

from mmgnn.nn.fusion import CorrelationAwareFusion


def reference_caf(m: CorrelationAwareFusion, c, v, mask):
    b, n, _ = c.shape
    out = torch.zeros(b, n, m.intermediate_channels)
    for i in range(b):
        if not mask[i].any():
            continue
        for a in range(n):
            w = torch.tensor([math.exp(float(c[i, a] @ v[i, p])) if mask[i, p] else 0.0
                              for p in range(v.size(1))])
            agg = (w / w.sum()) @ v[i]
            out[i, a] = m.fusion_dense.weight @ agg + m.fusion_dense.bias
    return out


def test_caf_matches_explicit_reference():
    torch.manual_seed(0)
    m = CorrelationAwareFusion(6, 10)
    c, v = torch.randn(3, 4, 6) * 0.5, torch.randn(3, 5, 6) * 0.5
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]).bool()
    with torch.no_grad():
        got = m(c, v, mask)
        torch.testing.assert_close(got, reference_caf(m, c, v, mask), atol=1e-5, rtol=1e-5)
        assert got[2].abs().max() == 0  # no image: no fusion term at all
        torch.testing.assert_close(m(c, v), reference_caf(m, c, v, torch.ones(3, 5).bool()),
                                   atol=1e-5, rtol=1e-5)


def test_caf_gradients_and_repr():
    m = CorrelationAwareFusion(4, 8)
    c, v = torch.randn(2, 3, 4, requires_grad=True), torch.randn(2, 2, 4, requires_grad=True)
    m(c, v, torch.ones(2, 2, dtype=torch.bool)).sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0
               for t in (c, v, m.fusion_dense.weight))
    assert repr(m) == "CorrelationAwareFusion(4, 8)"
