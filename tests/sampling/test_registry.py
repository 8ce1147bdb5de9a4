"""The sampler registry and build_sampler: names, filters, the all_splits warning, learned
samplers that need the model; and the two batch types."""

from __future__ import annotations

import warnings

import pytest
import torch

from mmgnn.sampling import (
    NEGATIVE_FILTERS,
    SAMPLERS,
    BernoulliSampler,
    HeadTailSampler,
    NegativeBatch,
    QueryBatch,
    UniformSampler,
    build_sampler,
    register_sampler,
)
from tests.helpers import random_kg


def test_names():
    assert SAMPLERS.names() == ["bernoulli", "head_tail", "mmrns", "uniform"]
    assert set(NEGATIVE_FILTERS) == {"none", "train", "all_splits"}
    assert SAMPLERS.get("mmrns")[0].__name__ == "mmrns_sampler"  # the lazy entry resolves
    with pytest.raises(KeyError, match="did you mean 'uniform'.*Known: bernoulli, head_tail"):
        build_sampler("unifrom", random_kg(), 4)


@pytest.mark.parametrize("name, cls", [("uniform", UniformSampler),
                                       ("bernoulli", BernoulliSampler),
                                       ("head_tail", HeadTailSampler)])
def test_fixed_samplers_filter_with_the_training_triples_by_default(name, cls):
    kg = random_kg()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = build_sampler(name, kg, 5, model=object())  # a fixed sampler ignores it
    assert type(sampler) is cls and sampler.num_negatives == 5
    assert sampler.num_entities == kg.num_entities
    train = {tuple(t) for t in kg.train.tolist()}
    held_out = {tuple(t) for t in torch.cat([kg.valid, kg.test]).tolist()} - train
    flt = sampler.filter_index
    assert all(flt.contains(torch.tensor([t]))[0] for t in train)
    assert not any(flt.contains(torch.tensor([t]))[0] for t in held_out)
    neg = sampler.sample(kg.train[:50], torch.Generator().manual_seed(0))
    assert not ({tuple(t) for t in neg.view(-1, 3).tolist()} & train)
    if name == "bernoulli":  # the statistics come from kg's training triples
        ref = BernoulliSampler(kg.train, kg.num_entities, kg.num_relations, 5)
        torch.testing.assert_close(sampler.head_probability, ref.head_probability)


def test_negative_filters():
    kg = random_kg()
    assert build_sampler("uniform", kg, 2, negative_filter="none").filter_index is None
    with pytest.warns(UserWarning, match="all_splits.*optimistic"):
        sampler = build_sampler("uniform", kg, 2, negative_filter="all_splits")
    assert bool(sampler.filter_index.contains(kg.test[:1])[0])
    with pytest.raises(ValueError, match="unknown negative_filter 'valid'"):
        build_sampler("uniform", kg, 2, negative_filter="valid")


def test_a_user_sampler_and_a_sampler_that_needs_the_model():
    kg = random_kg()
    seen = {}

    def learned(kg, num_negatives, negative_filter="train", *, model, scale=1.0):
        seen.update(model=model, scale=scale, negative_filter=negative_filter)
        return UniformSampler(kg.num_entities, num_negatives)

    register_sampler("learned_test", learned)
    try:
        with pytest.raises(ValueError, match="sampler 'learned_test' needs the model"):
            build_sampler("learned_test", kg, 3)
        build_sampler("learned_test", kg, 3, "none", model="the model", scale=2.0)
        assert seen == {"model": "the model", "scale": 2.0, "negative_filter": "none"}
    finally:
        SAMPLERS._entries.pop("learned_test")


def test_batches_move_and_keep_their_fields():
    neg = NegativeBatch(torch.zeros(4, 3, dtype=torch.long), torch.ones(4, 2, 3,
                                                                      dtype=torch.long))
    assert len(neg) == 4 and torch.equal(neg.to("cpu").negatives, neg.negatives)
    q = QueryBatch("head", torch.tensor([1, 2]), torch.tensor([0, 1]), gold=torch.tensor([3, 4]))
    moved = q.to("cpu")
    assert moved.side == "head" and moved.target_rows is None and len(moved) == 2
    assert torch.equal(q.target(5, gold_ids=True), q.gold)
    torch.testing.assert_close(q.target(5), torch.eye(5)[[3, 4]])
    h, r, t = q.triples()  # a head query (?, r, e): the gold is the head
    assert torch.equal(h, q.gold) and torch.equal(t, q.entity)
