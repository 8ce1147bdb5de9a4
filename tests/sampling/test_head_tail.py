"""HeadTailSampler: exactly one head and one tail corruption per positive at K=2."""

from __future__ import annotations

import torch

from mmgnn.sampling import HeadTailSampler, UniformSampler
from tests.helpers import random_kg


def test_one_head_and_one_tail_corruption_per_positive():
    kg = random_kg()
    pos = kg.train
    neg = HeadTailSampler(kg.num_entities, num_negatives=2).sample(
        pos, torch.Generator().manual_seed(0))
    assert neg.shape == (len(pos), 2, 3)
    assert torch.equal(neg[:, 0, 1:], pos[:, 1:])  # negative 0: head replaced, r and t kept
    assert torch.equal(neg[:, 1, :2], pos[:, :2])  # negative 1: tail replaced, h and r kept
    assert (neg[:, 0, 0] != pos[:, 0]).any() and (neg[:, 1, 2] != pos[:, 2]).any()


def test_filtered_head_tail_negatives_are_not_known_triples():
    kg = random_kg()
    flt = kg.filter_index()
    neg = HeadTailSampler(kg.num_entities, 4, flt).sample(kg.train,
                                                          torch.Generator().manual_seed(0))
    assert not flt.contains(neg).any()
    assert torch.equal(neg[:, 2, 1:], kg.train[:, 1:]) and torch.equal(neg[:, 3, :2],
                                                                       kg.train[:, :2])


def test_uniform_sampler_stream_is_unchanged_by_the_hook():
    # the corrupt_head_mask hook draws exactly what the sampler drew before it existed
    kg = random_kg()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    neg = UniformSampler(kg.num_entities, 3).sample(kg.train, g1)
    corrupt_head = torch.rand((len(kg.train), 3), generator=g2) < 0.5
    ents = torch.randint(kg.num_entities, (len(kg.train), 3), generator=g2)
    expected = kg.train[:, None, :].repeat(1, 3, 1)
    expected[..., 0] = torch.where(corrupt_head, ents, expected[..., 0])
    expected[..., 2] = torch.where(~corrupt_head, ents, expected[..., 2])
    assert torch.equal(neg, expected)
