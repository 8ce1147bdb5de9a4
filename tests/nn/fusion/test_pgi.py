import math

import torch

from mmgnn.nn.fusion import PrefixGuidedAttention


def reference_pgi(m: PrefixGuidedAttention, x, pk, pv, pmask, mask):
    """Explicit loops over samples, heads and queries; softmax by exp / sum over valid keys."""
    b, p, d = x.shape
    hd = d // m.heads
    q, k, v = m.q(x), m.k(x), m.v(x)
    out = torch.zeros(b, p, d)
    for i in range(b):
        for j in range(m.heads):
            sl = slice(j * hd, (j + 1) * hd)
            keys = torch.cat([pk[i, j], k[i, :, sl]]) if pk is not None else k[i, :, sl]
            vals = torch.cat([pv[i, j], v[i, :, sl]]) if pv is not None else v[i, :, sl]
            valid = torch.cat([pmask[i], mask[i]]) if pk is not None else mask[i]
            for a in range(p):
                logits = [float(q[i, a, sl] @ keys[c]) / math.sqrt(hd) for c in range(len(keys))]
                w = torch.tensor([math.exp(s) if ok else 0.0
                                  for s, ok in zip(logits, valid, strict=True)])
                out[i, a, sl] = (w / w.sum()) @ vals
    return m.o(out)


def test_pgi_matches_explicit_reference():
    torch.manual_seed(0)
    m = PrefixGuidedAttention(8, heads=2).eval()
    x = torch.randn(3, 5, 8)
    pk, pv = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    pmask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]]).bool()
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]).bool()
    with torch.no_grad():
        got = m(x, pk, pv, pmask, mask)
        torch.testing.assert_close(got, reference_pgi(m, x, pk, pv, pmask, mask),
                                   atol=1e-5, rtol=1e-5)
        # No prefix, no mask: plain multi-head self-attention.
        full = torch.ones(3, 5, dtype=torch.bool)
        torch.testing.assert_close(m(x), reference_pgi(m, x, None, None, None, full),
                                   atol=1e-5, rtol=1e-5)


def test_pgi_masked_keys_do_not_matter():
    torch.manual_seed(1)
    m = PrefixGuidedAttention(8, heads=4).eval()
    x, pk, pv = torch.randn(2, 3, 8), torch.randn(2, 4, 6, 2), torch.randn(2, 4, 6, 2)
    pmask = torch.tensor([[1, 1, 1, 0, 0, 0]] * 2).bool()
    pk2, pv2 = pk.clone(), pv.clone()
    pk2[:, :, 3:], pv2[:, :, 3:] = 100.0, -100.0
    with torch.no_grad():
        torch.testing.assert_close(m(x, pk, pv, pmask), m(x, pk2, pv2, pmask))
        assert not torch.allclose(m(x, pk, pv), m(x, pk2, pv2))


def test_pgi_shape_error_and_repr():
    m = PrefixGuidedAttention(8, heads=2)
    assert repr(m) == "PrefixGuidedAttention(8, heads=2)"
    try:
        m(torch.randn(1, 3, 8), torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2))
    except ValueError as e:
        assert "heads" in str(e)
    else:
        raise AssertionError("expected a ValueError")
