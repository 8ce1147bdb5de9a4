"""GATTransE: composition of its KBGAT layers, training graph only (no valid/test leakage),
reciprocal relations, training and evaluation through the core loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmgnn.data.kg import MultiModalKG
from mmgnn.eval import evaluate
from mmgnn.models import GATTransE, available_models, build_model
from mmgnn.nn.conv import KBGATConv
from mmgnn.train import TrainConfig, fit
from tests.helpers import random_kg


def small_model(kg: MultiModalKG, seed: int = 0, **kwargs) -> GATTransE:
    torch.manual_seed(seed)
    return GATTransE.from_kg(kg, dim=8, **kwargs)


def test_encode_is_the_documented_composition():
    kg = random_kg()
    model = small_model(kg, num_layers=2).eval()
    conv1, conv2 = model.convs
    assert (conv1.heads, conv1.concat, conv2.heads, conv2.concat) == (2, True, 1, False)
    assert isinstance(conv1, KBGATConv) and conv2.lin_rel_out is None
    e, rel = model.entity.weight, model.decoder.rel_emb.weight
    ei, et = kg.train_graph()
    h = conv2(conv1(e, ei, rel, et), ei, conv1.transform_relations(rel), et)
    expected = F.normalize(e @ model.skip.weight.T + h, dim=-1)
    x = model.encode()
    torch.testing.assert_close(x, expected)
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(kg.num_entities))
    # TransE-L1 on the encoded entities and the decoder's relations
    h_, r_, t_ = kg.test[:5].unbind(1)
    torch.testing.assert_close(model.score_triples(x, h_, r_, t_),
                               -(x[h_] + rel[r_] - x[t_]).abs().sum(-1))


def test_message_passing_never_sees_valid_or_test_triples():
    kg = random_kg()
    # same training triples, other valid/test triples (here: all the training triples)
    other = MultiModalKG(kg.entity_names, kg.relation_names, kg.train, kg.train[:40],
                         kg.train[40:80], name="other")
    a, b = small_model(kg).eval(), small_model(other).eval()
    assert torch.equal(a.edge_index, torch.stack([kg.train[:, 0], kg.train[:, 2]]))
    assert torch.equal(a.edge_type, kg.train[:, 1])
    torch.testing.assert_close(a.encode(), b.encode())
    # and the graph does change the encoding: dropping training edges changes it
    fewer = MultiModalKG(kg.entity_names, kg.relation_names, kg.train[:100], kg.valid, kg.test)
    assert not torch.allclose(small_model(fewer).eval().encode(), a.encode())
    # build_model goes through the training graph too
    assert torch.equal(build_model("gat_transe", kg, dim=8).edge_index, a.edge_index)
    # reciprocal: the inverse edges are added as train_graph(add_inverse=True) orders them
    rec = build_model("gat_transe", kg, dim=8, reciprocal=True)
    ei, et = kg.train_graph(add_inverse=True)
    assert torch.equal(rec.edge_index, ei) and torch.equal(rec.edge_type, et)
    assert torch.equal(small_model(kg, reciprocal=True).edge_index, ei)


def test_reciprocal_uses_inverse_edges_and_relations():
    kg = random_kg()
    model = small_model(kg, reciprocal=True).eval()
    assert model.edge_index.size(1) == 2 * len(kg.train)
    assert model.decoder.num_relations == 2 * kg.num_relations
    assert int(model.edge_type.max()) == 2 * kg.num_relations - 1
    x = model.encode()
    r, t = torch.tensor([0, 3]), torch.tensor([4, 9])
    torch.testing.assert_close(model.score_heads(x, r, t),
                               model.decoder.score_t(x[t], r + kg.num_relations, x))


def test_gradients_reach_every_parameter_and_entities_stay_normalised():
    kg = random_kg()
    model = small_model(kg)
    x = model.encode()
    h, r, t = kg.train[:32].unbind(1)
    pos = model.score_triples(x, h, r, t)
    neg = model.score_triples(x, h, r, t.roll(1))
    F.relu(1.0 - pos + neg).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with torch.no_grad():
        model.entity.weight.mul_(3.0)
    model.after_step()
    torch.testing.assert_close(model.entity.weight.norm(dim=-1), torch.ones(kg.num_entities))


def test_released_code_variant_reaches_the_layers():
    kg = random_kg()
    model = small_model(kg, relation_attention=False, negate_attention=True, num_layers=3)
    assert len(model.convs) == 3
    assert all(c.lin_rel is None and c.negate_attention for c in model.convs)
    assert model.encode().shape == (kg.num_entities, 8)


def test_trains_and_evaluates_through_the_core():
    kg = random_kg(n=(400, 40, 40))
    assert "gat_transe" in available_models()
    cfg = TrainConfig(**{**GATTransE.train_defaults, "lr": 0.02, "weight_decay": 0.0,
                         "epochs": 15, "batch_size": 400, "eval_every": 0, "seed": 0})
    assert (cfg.sampler, cfg.num_negatives, cfg.loss) == ("head_tail", 2, "margin")
    model = build_model("gat_transe", kg, dim=16, dropout=0.0)
    before = evaluate(model, kg, triples=kg.train, progress=False).mrr
    trainer = fit(model, kg, cfg, progress=False)
    after = evaluate(model, kg, triples=kg.train, progress=False).mrr
    assert trainer.history[-1]["loss"] < trainer.history[0]["loss"]
    assert after > before + 0.05, (before, after)


def test_invalid_settings_and_repr():
    kg = random_kg()
    with pytest.raises(ValueError, match="divisible by heads"):
        GATTransE.from_kg(kg, dim=9, heads=2)
    with pytest.raises(ValueError, match="edge_type holds relation"):
        GATTransE(kg.num_entities, 2, *kg.train_graph(), dim=8)
    assert repr(small_model(kg)) == ("GATTransE(30, num_relations=4, dim=8, "
                                     "heads=2, num_layers=2, edges=200)")
