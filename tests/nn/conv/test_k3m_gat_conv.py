"""K3MGATConv against a dense reference that loops over items and their triples (K3M Sec. 3.4
and the released ``structure_aggregator``), and the properties every attention layer must
have."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmgnn.nn.conv import K3MGATConv

ITEMS, VALUES, P, F_ITEM, F_VALUE, D, C = 5, 6, 3, 4, 5, 3, 4
# Triples (item, property, value) as edges value -> item; item 4 has no triples, item 0 has
# three (the same value twice, under different properties).
EDGE_INDEX = torch.tensor([[0, 1, 0, 2, 3, 5, 4, 1],
                           [0, 0, 0, 1, 1, 2, 3, 3]])
EDGE_TYPE = torch.tensor([0, 1, 2, 0, 2, 1, 1, 0])


def dense_reference(conv: K3MGATConv, x_value, x_item, edge_index, props):
    """For each item: t_x = W1 [c || p_x || v_x] for each of its triples, attention, sum."""
    H = conv.heads
    W1 = torch.cat([conv.lin_item.weight, conv.lin_prop.weight, conv.lin_value.weight], dim=1)
    b1 = conv.lin_item.bias
    W2 = conv.att[0]  # (H, C)
    out = torch.zeros(x_item.size(0), C)
    weights = torch.zeros(edge_index.size(1), H)
    for i in range(x_item.size(0)):
        c = x_item[i]
        triples = [e for e in range(edge_index.size(1)) if edge_index[1, e] == i]
        t = torch.stack([(W1 @ torch.cat([c, props[e], x_value[edge_index[0, e]]]) + b1)
                         .view(H, C) for e in triples]) if triples else torch.zeros(0, H, C)
        if conv.variant == "paper":
            b = F.leaky_relu((t * W2).sum(-1), conv.negative_slope)  # LeakyReLU(W2 t)
        else:
            b = (F.leaky_relu(t, conv.negative_slope) * W2).sum(-1)  # W2 LeakyReLU(t)
        a = torch.softmax(b, dim=0)
        weights[triples] = a
        agg = (a.unsqueeze(-1) * t).sum(0)  # (H, C)
        if conv.variant == "paper":
            out[i] = conv.lin_out(c) + conv.act(agg.mean(0))
        else:
            agg = agg[0] if triples else c  # the code's pseudo-pair t = c
            out[i] = c + conv.lin_out(agg)
    return out, weights


def make(variant="paper", heads=2, bipartite=True, seed=0, **kwargs):
    torch.manual_seed(seed)
    item = C if variant == "code" else F_ITEM
    in_channels = (F_VALUE, item) if bipartite else item
    return K3MGATConv(in_channels, C, edge_dim=D, heads=heads if variant == "paper" else 1,
                      variant=variant, **kwargs)


def inputs(bipartite=True):
    x_value = torch.randn(VALUES, F_VALUE)
    x_item = torch.randn(ITEMS, F_ITEM)
    return x_value, x_item, torch.randn(P, D)


@pytest.mark.parametrize("variant, heads", [("paper", 1), ("paper", 3), ("code", 1)])
def test_matches_dense_reference(variant, heads):
    conv = make(variant, heads)
    x_value, x_item, table = inputs()
    if variant == "code":
        x_item = torch.randn(ITEMS, C)
    out, (ei, alpha) = conv((x_value, x_item), EDGE_INDEX, table, EDGE_TYPE,
                            return_attention_weights=True)
    ref, ref_alpha = dense_reference(conv, x_value, x_item, EDGE_INDEX, table[EDGE_TYPE])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alpha, ref_alpha, atol=1e-5, rtol=1e-5)
    assert torch.equal(ei, EDGE_INDEX)
    # per-edge property features (edge_attr) give the same result as the table + edge_type
    torch.testing.assert_close(conv((x_value, x_item), EDGE_INDEX, table[EDGE_TYPE]), out)


def test_homogeneous_graph_and_other_activation():
    conv = make(bipartite=False, act="sigmoid")
    x = torch.randn(VALUES, F_ITEM)
    table = torch.randn(P, D)
    out = conv(x, EDGE_INDEX, table, EDGE_TYPE)
    ref, _ = dense_reference(conv, x, x, EDGE_INDEX, table[EDGE_TYPE])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # item 4 (no triples): W3 c + sigmoid(0)
    torch.testing.assert_close(out[4], conv.lin_out(x[4]) + 0.5)


def test_items_without_triples():
    x_value, x_item, table = inputs()
    paper = make("paper")
    out = paper((x_value, x_item), EDGE_INDEX, table, EDGE_TYPE)
    torch.testing.assert_close(out[4], paper.lin_out(x_item[4]))  # W3 c + ELU(0)
    code = make("code")
    x_item = torch.randn(ITEMS, C)
    out = code((x_value, x_item), EDGE_INDEX, table, EDGE_TYPE)
    torch.testing.assert_close(out[4], x_item[4] + code.lin_out(x_item[4]))  # pseudo-pair
    empty = torch.empty(2, 0, dtype=torch.long)
    out, (_, alpha) = code((x_value, x_item), empty, table, torch.empty(0, dtype=torch.long),
                           return_attention_weights=True)
    assert alpha.shape == (0, 1)
    torch.testing.assert_close(out, x_item + code.lin_out(x_item))


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_attention_sums_to_one_per_item_and_head(variant):
    conv = make(variant, heads=3)
    x_value, x_item, table = inputs()
    if variant == "code":
        x_item = torch.randn(ITEMS, C)
    _, (ei, alpha) = conv((x_value, x_item), EDGE_INDEX, table, EDGE_TYPE,
                          return_attention_weights=True)
    sums = torch.zeros(ITEMS, alpha.size(1)).index_add_(0, ei[1], alpha)
    torch.testing.assert_close(sums[:4], torch.ones(4, alpha.size(1)))
    assert (sums[4] == 0).all()


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_permutation_equivariance(variant):
    conv = make(variant)
    x_value, x_item, table = inputs()
    if variant == "code":
        x_item = torch.randn(ITEMS, C)
    g = torch.Generator().manual_seed(1)
    pi, pv = torch.randperm(ITEMS, generator=g), torch.randperm(VALUES, generator=g)
    inv_i, inv_v = torch.empty_like(pi), torch.empty_like(pv)
    inv_i[pi], inv_v[pv] = torch.arange(ITEMS), torch.arange(VALUES)
    out = conv((x_value, x_item), EDGE_INDEX, table, EDGE_TYPE)
    moved = torch.stack([inv_v[EDGE_INDEX[0]], inv_i[EDGE_INDEX[1]]])
    out_perm = conv((x_value[pv], x_item[pi]), moved, table, EDGE_TYPE)
    torch.testing.assert_close(out_perm, out[pi], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_gradients_reach_every_parameter(variant):
    conv = make(variant)
    x_value, x_item, table = inputs()
    if variant == "code":
        x_item = torch.randn(ITEMS, C)
    conv((x_value, x_item), EDGE_INDEX, table, EDGE_TYPE).pow(2).sum().backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dropout_only_in_training_and_reset_parameters():
    conv = make(dropout=0.5)
    x_value, x_item, table = inputs()
    conv.eval()
    a = conv((x_value, x_item), EDGE_INDEX, table, EDGE_TYPE)
    torch.testing.assert_close(conv((x_value, x_item), EDGE_INDEX, table, EDGE_TYPE), a)
    conv.train()
    assert not torch.allclose(conv((x_value, x_item), EDGE_INDEX, table, EDGE_TYPE), a)
    before = [p.detach().clone() for p in conv.parameters()]
    conv.reset_parameters()
    changed = [not torch.equal(b, p) for b, p in zip(before, conv.parameters(), strict=True)]
    assert sum(changed) >= 5  # every weight matrix (biases may reset to the same zeros)


def test_invalid_settings_and_repr():
    with pytest.raises(ValueError, match="variant must be one of"):
        K3MGATConv(4, 4, edge_dim=2, variant="other")
    with pytest.raises(ValueError, match="needs heads=1"):
        K3MGATConv(4, 4, edge_dim=2, heads=2, variant="code")
    with pytest.raises(ValueError, match="item features of width out_channels"):
        K3MGATConv((3, 5), 4, edge_dim=2, variant="code")
    assert repr(K3MGATConv(768, 768, edge_dim=768, heads=8)) == \
        "K3MGATConv(768, 768, edge_dim=768, heads=8)"
    assert repr(K3MGATConv((5, 4), 4, edge_dim=2, variant="code")) == \
        "K3MGATConv((5, 4), 4, edge_dim=2, heads=1, variant='code')"
