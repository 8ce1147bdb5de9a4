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


# ------------------------------------------------------------------ the LinkPredictor contract
def test_decoder_by_name_is_the_decoder_built_first():
    """``KGEModel(..., "rotate", dim=...)`` creates and initialises its parameters in the order
    of a decoder built first and handed over: same seed, same weights."""
    from mmgnn.nn.kge import RotatE

    torch.manual_seed(3)
    by_name = KGEModel(NUM_ENTITIES, NUM_RELATIONS, "rotate", dim=4, reciprocal=True,
                       margin=6.0)
    torch.manual_seed(3)
    given = KGEModel(NUM_ENTITIES, NUM_RELATIONS, RotatE(2 * NUM_RELATIONS, 4, margin=6.0),
                     reciprocal=True)
    assert by_name.decoder.num_relations == by_name.decoder_relations == 2 * NUM_RELATIONS
    assert by_name.decoder.margin == 6.0
    for (name, p), (_, q) in zip(by_name.state_dict().items(), given.state_dict().items(),
                                 strict=True):
        assert torch.equal(p, q), name
    with pytest.raises(TypeError, match="decoder arguments"):
        KGEModel(NUM_ENTITIES, NUM_RELATIONS, RotatE(NUM_RELATIONS, 4), margin=6.0)


def test_forward_is_score_triples_of_a_fresh_encoding():
    torch.manual_seed(0)
    model = KGEModel(NUM_ENTITIES, NUM_RELATIONS, "complex", dim=4)
    h, r, t = torch.tensor([[0, 5], [2, 1]]), torch.tensor([[1, 2], [0, 0]]), \
        torch.tensor([[3, 3], [11, 4]])
    out = model(h, r, t)
    assert out.shape == (2, 2)
    torch.testing.assert_close(out, model.score_triples(model.encode(), h, r, t))
    # and the score_tails column of the tail is the same number
    torch.testing.assert_close(model.score_tails(model.encode(), h[0], r[0])[[0, 1], t[0]],
                               out[0])


class _OwnScoring(KGEModel):
    """A model that scores triples its own way (here: the same formula, written per triple),
    so the fused corruption path may not be used for it."""

    def score_triples(self, x, h, r, t):
        return self.decoder.score_hrt(x[h], r, x[t])


def test_fused_corruptions_is_a_class_attribute():
    assert KGEModel.fused_corruptions is True
    # defining score_triples without saying anything turns the fused path off
    assert _OwnScoring.fused_corruptions is False

    class Declared(_OwnScoring):
        fused_corruptions = True

    assert Declared.fused_corruptions is True


@pytest.mark.parametrize("p_norm", [1, 2])
def test_own_score_triples_gives_the_fused_scores(p_norm, monkeypatch):
    """The capability attribute decides the path: the subclass never reaches
    ``score_corruptions``, the base class does, and both give the same scores."""
    from mmgnn.sampling import UniformSampler

    torch.manual_seed(0)
    fused = KGEModel(NUM_ENTITIES, NUM_RELATIONS, TransE(NUM_RELATIONS, 4, p_norm=p_norm))
    own = _OwnScoring(NUM_ENTITIES, NUM_RELATIONS, TransE(NUM_RELATIONS, 4, p_norm=p_norm))
    own.load_state_dict(fused.state_dict())
    pos = torch.tensor([[0, 1, 2], [3, 0, 4], [5, 2, 5]])
    neg = UniformSampler(NUM_ENTITIES, num_negatives=5).sample(
        pos, torch.Generator().manual_seed(1))
    calls = []
    original = TransE.score_corruptions
    monkeypatch.setattr(TransE, "score_corruptions",
                        lambda self, *a: calls.append(1) or original(self, *a))
    fused_scores = fused.score_with_negatives(fused.encode(), pos, neg)
    assert len(calls) == 1
    own_scores = own.score_with_negatives(own.encode(), pos, neg)
    assert len(calls) == 1  # the subclass went through its own score_triples
    for a, b in zip(fused_scores, own_scores, strict=True):
        torch.testing.assert_close(a, b)


def test_loss_of_a_negative_batch_and_of_query_batches():
    from mmgnn.nn.losses import BCEWithLabelSmoothing, CrossEntropy1vsAll, MarginRankingLoss
    from mmgnn.sampling import NegativeBatch, QueryBatch

    torch.manual_seed(0)
    model = KGEModel(NUM_ENTITIES, NUM_RELATIONS, "distmult", dim=4)
    x = model.encode()
    pos = torch.tensor([[0, 1, 2], [3, 0, 4]])
    neg = torch.tensor([[[0, 1, 7], [9, 1, 2]], [[3, 0, 3], [1, 0, 4]]])
    margin = MarginRankingLoss(1.0)
    ref = torch.relu(1.0 - model.score_triples(x, *pos.unbind(1))[:, None]
                     + model.score_triples(x, *neg.unbind(-1))).mean()
    torch.testing.assert_close(model.loss(x, NegativeBatch(pos, neg), margin), ref)

    e, r, gold = torch.tensor([0, 3]), torch.tensor([1, 0]), torch.tensor([2, 4])
    one = QueryBatch("tail", e, r, gold=gold)
    scores = model.score_tails(x, e, r)
    torch.testing.assert_close(model.loss(x, one, CrossEntropy1vsAll()),
                               torch.nn.functional.cross_entropy(scores, gold))
    onehot = torch.zeros(2, NUM_ENTITIES)
    onehot[[0, 1], gold] = 1.0
    bce = BCEWithLabelSmoothing(0.0)
    torch.testing.assert_close(model.loss(x, one, bce),
                               torch.nn.functional.binary_cross_entropy_with_logits(scores,
                                                                                    onehot))
    # KvsAll, head side: every listed answer is a target of (?, r, entity)
    kvs = QueryBatch("head", e, r, target_rows=torch.tensor([0, 0, 1]),
                     target_cols=torch.tensor([5, 6, 7]))
    multi = torch.zeros(2, NUM_ENTITIES)
    multi[[0, 0, 1], [5, 6, 7]] = 1.0
    torch.testing.assert_close(kvs.target(NUM_ENTITIES), multi)
    torch.testing.assert_close(
        model.loss(x, kvs, bce),
        torch.nn.functional.binary_cross_entropy_with_logits(model.score_heads(x, r, e), multi))
    assert one.triples() == (e, r, gold) and kvs.triples() is None
    with pytest.raises(TypeError, match="NegativeBatch or a QueryBatch"):
        model.loss(x, pos, margin)


def test_capabilities_hooks_and_defaults():
    model = KGEModel(NUM_ENTITIES, NUM_RELATIONS, "transe", dim=4)
    assert model.regimes[0] == "negative" and set(model.regimes) == {"negative", "kvsall",
                                                                       "1vsall"}
    assert not model.needs_reciprocal and not model.needs_modalities
    assert model.default_modalities == () and model.train_defaults == {}
    groups = model.param_groups()
    assert list(groups) == ["model"]
    assert {id(p) for p in groups["model"]["params"]} == {id(p) for p in model.parameters()}
    assert model.extra_losses() == {}
    assert model.modality_names == []
    with pytest.raises(AttributeError, match="reads no modalities"):
        model.set_modality("text", torch.zeros(NUM_ENTITIES, 2))
