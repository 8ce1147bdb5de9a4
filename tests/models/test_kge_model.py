"""KGEModel: an entity table wired to a decoder (relation counts, reciprocal head queries,
the decoder's entity initialisation and constraint)."""

from __future__ import annotations

import pytest
import torch

from mmgnn.models import available_models
from mmgnn.models.kge_model import KGEModel
from mmgnn.nn.kge import DECODERS, ComplEx, DistMult, TransE, TuckER

NUM_ENTITIES, NUM_RELATIONS = 12, 3


def test_reciprocal_head_queries_use_inverse_relations():
    torch.manual_seed(0)
    model = KGEModel(NUM_ENTITIES, NUM_RELATIONS, ComplEx(2 * NUM_RELATIONS, 4), reciprocal=True)
    x = model.encode()
    r, t = torch.tensor([0, 2, 1]), torch.tensor([5, 0, 11])
    expected = model.decoder.score_t(x[t], r + NUM_RELATIONS, x)
    torch.testing.assert_close(model.score_heads(x, r, t), expected)
    # not the same as asking the decoder's own head query with the forward relation
    assert not torch.allclose(model.score_heads(x, r, t), model.decoder.score_h(r, x[t], x))
    # and column e of the head scores is the score of the inverse triple (t, r + R, e)
    e = torch.tensor([1, 7, 3])
    torch.testing.assert_close(model.score_heads(x, r, t)[torch.arange(3), e],
                               model.score_triples(x, t, r + NUM_RELATIONS, e))


def test_plain_head_queries_use_the_decoder():
    torch.manual_seed(0)
    model = KGEModel(NUM_ENTITIES, NUM_RELATIONS, ComplEx(NUM_RELATIONS, 4))
    x = model.encode()
    r, t = torch.tensor([0, 2]), torch.tensor([5, 0])
    torch.testing.assert_close(model.score_heads(x, r, t), model.decoder.score_h(r, x[t], x))
    h = torch.tensor([3, 9])
    torch.testing.assert_close(model.score_tails(x, h, r)[torch.arange(2), t],
                               model.score_triples(x, h, r, t))


@pytest.mark.parametrize("reciprocal, decoder_relations", [(False, 2 * NUM_RELATIONS),
                                                             (True, NUM_RELATIONS)])
def test_mismatched_relation_count_raises(reciprocal, decoder_relations):
    with pytest.raises(ValueError, match=f"holds {decoder_relations} relations, expected"):
        KGEModel(NUM_ENTITIES, NUM_RELATIONS, DistMult(decoder_relations, 4),
                 reciprocal=reciprocal)


def test_entity_table_follows_the_decoder():
    torch.manual_seed(0)
    model = KGEModel(NUM_ENTITIES, NUM_RELATIONS, TransE(NUM_RELATIONS, 8))
    assert model.entity.weight.shape == (NUM_ENTITIES, 8)
    norms = model.entity.weight.norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones(NUM_ENTITIES))  # TransE: unit L2 rows
    with torch.no_grad():
        model.entity.weight.mul_(3.0)
    model.after_step()  # re-applies the decoder's constraint
    torch.testing.assert_close(model.entity.weight.norm(dim=-1), torch.ones(NUM_ENTITIES))
    complex_model = KGEModel(NUM_ENTITIES, NUM_RELATIONS, ComplEx(NUM_RELATIONS, 8))
    assert complex_model.entity.weight.shape == (NUM_ENTITIES, 16)


def test_training_step_updates_entities_and_relations():
    torch.manual_seed(0)
    model = KGEModel(NUM_ENTITIES, NUM_RELATIONS, TuckER(2 * NUM_RELATIONS, 6), reciprocal=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    h, r = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 0])
    loss = torch.nn.functional.cross_entropy(model.score_tails(model.encode(), h, r),
                                             torch.tensor([4, 5, 6, 7]))
    loss.backward()
    optimizer.step()
    for name, p in model.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"


def test_repr_and_registry():
    model = KGEModel(NUM_ENTITIES, NUM_RELATIONS, TransE(2 * NUM_RELATIONS, 8), reciprocal=True)
    assert repr(model) == ("KGEModel(12, decoder=TransE(num_relations=6, hidden_channels=8, "
                           "p_norm=1), reciprocal=True)")
    assert set(DECODERS.names()) < set(available_models())
    assert "multimodal" in available_models()


@pytest.mark.parametrize("p_norm", [1, 2])
def test_score_with_negatives_equals_score_hrt_for_any_negatives(p_norm):
    from mmgnn.sampling import UniformSampler

    torch.manual_seed(0)
    model = KGEModel(NUM_ENTITIES, NUM_RELATIONS, TransE(NUM_RELATIONS, 4, p_norm=p_norm))
    x = model.encode()
    pos = torch.tensor([[0, 1, 2], [3, 0, 4], [5, 2, 5], [7, 1, 0]])
    g = torch.Generator().manual_seed(1)
    sampled = UniformSampler(NUM_ENTITIES, num_negatives=6).sample(pos, g)
    sampled[0, 0] = pos[0]  # a redraw of the original entity: the positive itself
    mixed = sampled.clone()
    mixed[1, 2, 1] = 2  # a relation corruption and a two-sided one take the generic path
    mixed[2, 3, 0], mixed[2, 3, 2] = 1, 1
    for negatives in (sampled, mixed):
        pos_scores, neg_scores = model.score_with_negatives(x, pos, negatives)
        torch.testing.assert_close(pos_scores, model.score_triples(x, *pos.unbind(1)))
        torch.testing.assert_close(neg_scores, model.score_triples(x, *negatives.unbind(-1)))
