"""relation_weighted_sum against a loop over edges."""

from __future__ import annotations

import torch

from mmgnn.nn.conv.relation_sum import relation_weighted_sum, use_dense_route


def test_matches_loop_over_edges_and_backpropagates():
    g = torch.Generator().manual_seed(0)
    n, r, h, c, e = 5, 3, 2, 4, 11
    alpha = torch.rand(e, h, generator=g, requires_grad=True)
    rel = torch.randn(r, h, c, generator=g, requires_grad=True)
    index = torch.randint(n - 1, (e,), generator=g)  # node n - 1 receives nothing
    edge_type = torch.randint(r, (e,), generator=g)
    out = relation_weighted_sum(alpha, rel, index, edge_type, n)
    expected = torch.zeros(n, h, c)
    for k in range(e):
        expected[index[k]] += alpha[k, :, None] * rel[edge_type[k]]
    torch.testing.assert_close(out, expected)
    assert (out[n - 1] == 0).all()
    out.square().sum().backward()
    alpha_ref, rel_ref = alpha.detach().requires_grad_(), rel.detach().requires_grad_()
    ref = torch.zeros(n, h, c).index_add(0, index, alpha_ref[..., None] * rel_ref[edge_type])
    ref.square().sum().backward()
    torch.testing.assert_close(alpha.grad, alpha_ref.grad)
    torch.testing.assert_close(rel.grad, rel_ref.grad)


def test_route_choice():
    assert use_dense_route(14_541, 237, 272_115)  # FB15k-237: 12.7 entries per edge
    assert not use_dense_route(100_000, 1_000, 500_000)
