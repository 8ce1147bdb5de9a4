"""KBGATConv against a dense per-edge reference (KBGAT Sec. 3.3 written out with loops), and
the properties every attention layer must have."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmgnn.nn.conv import KBGATConv

N, R, F_IN, D = 7, 3, 5, 4
# Node 6 has no incoming edge; node 0 has three (two of them from the same source).
EDGE_INDEX = torch.tensor([[1, 2, 2, 3, 0, 4, 5, 1, 6],
                           [0, 0, 1, 1, 2, 3, 3, 0, 4]])
EDGE_TYPE = torch.tensor([0, 1, 2, 0, 1, 2, 0, 2, 1])


def dense_reference(conv: KBGATConv, x_src, x_dst, edge_index, rel_per_edge):
    """Loops over targets and their incoming edges; c_ijk = W [h_i || h_j || g_k] with W the
    concatenation of the layer's three weight blocks."""
    H, C = conv.heads, conv.out_channels
    blocks = [conv.lin_dst.weight, conv.lin_src.weight]
    if conv.lin_rel is not None:
        blocks.append(conv.lin_rel.weight)
    W = torch.cat(blocks, dim=1)  # (H*C, F_dst + F_src [+ D])
    out = torch.zeros(x_dst.size(0), H, C)
    weights = torch.zeros(edge_index.size(1), H)
    for i in range(x_dst.size(0)):
        incoming = [e for e in range(edge_index.size(1)) if edge_index[1, e] == i]
        if not incoming:
            continue
        c = []
        for e in incoming:
            parts = [x_dst[i], x_src[edge_index[0, e]]]
            if conv.lin_rel is not None:
                parts.append(rel_per_edge[e])
            c.append((W @ torch.cat(parts)).view(H, C))
        c = torch.stack(c)  # (n_i, H, C)
        logits = F.leaky_relu((c * conv.att[0]).sum(-1), conv.negative_slope)
        if conv.negate_attention:
            logits = -logits
        a = torch.exp(logits) / torch.exp(logits).sum(0, keepdim=True)
        weights[incoming] = a
        out[i] = (a.unsqueeze(-1) * c).sum(0)
    out = out.reshape(-1, H * C) if conv.concat else out.mean(1)
    if conv.bias is not None:
        out = out + conv.bias
    return F.elu(out), weights


def make(heads=2, concat=True, rel=True, negate=False, bias=False, in_channels=F_IN, seed=0):
    torch.manual_seed(seed)
    conv = KBGATConv(in_channels, 3, heads=heads, concat=concat, rel_channels=D if rel else None,
                     negate_attention=negate, bias=bias)
    if bias:
        with torch.no_grad():
            conv.bias.normal_()
    return conv


@pytest.mark.parametrize("heads, concat", [(1, True), (2, True), (2, False)])
@pytest.mark.parametrize("rel, negate", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("bias", [False, True])
def test_matches_dense_reference(heads, concat, rel, negate, bias):
    conv = make(heads, concat, rel, negate, bias)
    x, table = torch.randn(N, F_IN), torch.randn(R, D)
    out, (ei, alpha) = conv(x, EDGE_INDEX, table if rel else None, EDGE_TYPE,
                            return_attention_weights=True)
    ref, ref_alpha = dense_reference(conv, x, x, EDGE_INDEX, table[EDGE_TYPE])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alpha, ref_alpha, atol=1e-5, rtol=1e-5)
    assert torch.equal(ei, EDGE_INDEX)
    # per-edge relation features give the same result as the table + edge_type form
    if rel:
        torch.testing.assert_close(conv(x, EDGE_INDEX, table[EDGE_TYPE]), out)


def test_bipartite_matches_dense_reference():
    conv = make(in_channels=(F_IN, 6))
    x_src, x_dst, table = torch.randn(N, F_IN), torch.randn(N, 6), torch.randn(R, D)
    out = conv((x_src, x_dst), EDGE_INDEX, table, EDGE_TYPE)
    ref, _ = dense_reference(conv, x_src, x_dst, EDGE_INDEX, table[EDGE_TYPE])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_attention_sums_to_one_per_target_and_head():
    conv = make(heads=3)
    _, (ei, alpha) = conv(torch.randn(N, F_IN), EDGE_INDEX, torch.randn(R, D), EDGE_TYPE,
                          return_attention_weights=True)
    sums = torch.zeros(N, 3).index_add_(0, ei[1], alpha)
    has_edges = torch.bincount(ei[1], minlength=N) > 0
    torch.testing.assert_close(sums[has_edges], torch.ones(int(has_edges.sum()), 3))
    assert (sums[~has_edges] == 0).all()


def test_permutation_equivariance():
    conv = make()
    x, table = torch.randn(N, F_IN), torch.randn(R, D)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(N)  # node v is at position inv[v] after permuting
    out = conv(x, EDGE_INDEX, table, EDGE_TYPE)
    out_perm = conv(x[perm], inv[EDGE_INDEX], table, EDGE_TYPE)
    torch.testing.assert_close(out_perm, out[perm], atol=1e-6, rtol=1e-5)
    # and the order of the edges does not matter either
    order = torch.randperm(EDGE_INDEX.size(1), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(conv(x, EDGE_INDEX[:, order], table, EDGE_TYPE[order]), out)


def test_gradients_reach_every_parameter():
    conv = make(bias=True)
    x = torch.randn(N, F_IN, requires_grad=True)
    table = torch.randn(R, D, requires_grad=True)
    (conv(x, EDGE_INDEX, table, EDGE_TYPE).sum()
     + conv.transform_relations(table).sum()).backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0 and table.grad.abs().sum() > 0


def test_empty_edge_set_and_isolated_nodes():
    conv = make(bias=True)
    x, table = torch.randn(N, F_IN), torch.randn(R, D)
    empty = torch.empty(2, 0, dtype=torch.long)
    out, (_, alpha) = conv(x, empty, table, torch.empty(0, dtype=torch.long),
                           return_attention_weights=True)
    assert alpha.shape == (0, 2)
    torch.testing.assert_close(out, F.elu(conv.bias).expand(N, -1))
    # node 6 has no incoming edge in EDGE_INDEX: ELU(bias), whatever its features
    out = conv(x, EDGE_INDEX, table, EDGE_TYPE)
    torch.testing.assert_close(out[6], F.elu(conv.bias))


def test_transform_relations_and_missing_relations():
    conv = make(concat=False)
    table = torch.randn(R, D)
    torch.testing.assert_close(conv.transform_relations(table), table @ conv.lin_rel_out.weight.T)
    assert conv.transform_relations(table).shape == (R, 3)
    with pytest.raises(ValueError, match="edge_attr"):
        conv(torch.randn(N, F_IN), EDGE_INDEX)
    with pytest.raises(ValueError, match="no relation transform"):
        make(rel=False).transform_relations(table)


def test_dropout_only_in_training_and_reset_parameters():
    torch.manual_seed(0)
    conv = KBGATConv(F_IN, 3, heads=2, dropout=0.5)
    x = torch.randn(N, F_IN)
    conv.eval()
    a = conv(x, EDGE_INDEX)
    torch.testing.assert_close(conv(x, EDGE_INDEX), a)
    conv.train()
    assert not torch.allclose(conv(x, EDGE_INDEX), a)
    before = [p.detach().clone() for p in conv.parameters()]
    conv.reset_parameters()
    assert all(not torch.equal(b, p) for b, p in zip(before, conv.parameters(), strict=True))


def test_repr():
    assert repr(KBGATConv(16, 8, heads=2)) == "KBGATConv(16, 8, heads=2)"
    assert repr(KBGATConv((16, 4), 8, rel_channels=12)) == \
        "KBGATConv((16, 4), 8, heads=1, rel_channels=12)"


def test_torch_compile_matches_eager():
    conv = make()
    x, table = torch.randn(N, F_IN), torch.randn(R, D)
    compiled = torch.compile(conv, dynamic=False)
    torch.testing.assert_close(compiled(x, EDGE_INDEX, table, EDGE_TYPE),
                               conv(x, EDGE_INDEX, table, EDGE_TYPE), atol=1e-5, rtol=1e-5)
