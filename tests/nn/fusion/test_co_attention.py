"""CoAttentionLayer against an explicit per-head, per-token reference."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mmgnn.nn.fusion.co_attention import CoAttentionLayer


def reference(m: CoAttentionLayer, xa, ma, xb, mb):
    H, D = m.heads, m.hidden_channels // m.heads
    outs = []
    for s, (x, y, my) in enumerate(((xa, xb, mb), (xb, xa, ma))):
        Wq, bq = m.qkv[s].weight[:m.hidden_channels], m.qkv[s].bias[:m.hidden_channels]
        Wk_all, bk_all = m.qkv[1 - s].weight, m.qkv[1 - s].bias
        hc = m.hidden_channels
        # qkv rows are laid out (3, heads, D): q = [0, hc), k = [hc, 2hc), v = [2hc, 3hc)
        Wk, bk = Wk_all[hc:2 * hc], bk_all[hc:2 * hc]
        Wv, bv = Wk_all[2 * hc:], bk_all[2 * hc:]
        out = torch.zeros_like(x)
        for b in range(x.size(0)):
            ctx = torch.zeros(x.size(1), hc)
            for i in range(x.size(1)):
                q = Wq @ x[b, i] + bq
                for h in range(H):
                    sl = slice(h * D, (h + 1) * D)
                    scores = torch.tensor([float(q[sl] @ (Wk @ y[b, j] + bk)[sl]) / math.sqrt(D)
                                           if my[b, j] else -math.inf for j in range(y.size(1))])
                    w = torch.softmax(scores, 0)
                    ctx[i, sl] = sum(w[j] * (Wv @ y[b, j] + bv)[sl] for j in range(y.size(1)))
            z = F.layer_norm(x[b] + m.lin_out[s](ctx), (x.size(-1),), m.norm[s].weight,
                             m.norm[s].bias, 1e-12)
            f = m.ffn[s]
            out[b] = F.layer_norm(z + f.lin_out(F.gelu(f.lin_in(z))), (x.size(-1),),
                                  f.norm.weight, f.norm.bias, 1e-12)
        outs.append(out)
    return outs


def test_matches_explicit_reference_with_padding():
    torch.manual_seed(0)
    m = CoAttentionLayer((6, 10), 8, heads=2, ffn_channels=(12, 7)).eval()
    xa, xb = torch.randn(2, 4, 6), torch.randn(2, 3, 10)
    ma = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]).bool()
    mb = torch.tensor([[1, 1, 0], [1, 0, 0]]).bool()
    with torch.no_grad():
        ya, yb = m(xa, ma, xb, mb)
        ra, rb = reference(m, xa, ma, xb, mb)
    torch.testing.assert_close(ya, ra, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(yb, rb, atol=1e-5, rtol=1e-4)
    # padding of b never reaches a: changing it changes nothing
    xb2 = xb.clone()
    xb2[0, 2] = 100.0
    with torch.no_grad():
        torch.testing.assert_close(m(xa, ma, xb2, mb)[0], ya)


def test_gradients_reset_and_repr():
    m = CoAttentionLayer((4, 6), 8, heads=4)
    xa, xb = torch.randn(2, 3, 4), torch.randn(2, 5, 6)
    ones_a, ones_b = torch.ones(2, 3, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool)
    a, b = m(xa, ones_a, xb, ones_b)
    (a.sum() + b.square().sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    before = m.qkv[0].weight.clone()
    m.reset_parameters()
    assert not torch.equal(before, m.qkv[0].weight)
    assert repr(m) == "CoAttentionLayer((4, 6), 8, heads=4)"
