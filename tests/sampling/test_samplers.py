import pytest
import torch

from mmgnn.data.filter import FilterIndex
from mmgnn.sampling import BernoulliSampler, OneToAllBatches, UniformSampler
from tests.helpers import random_kg


def test_uniform_corrupts_exactly_one_side_uniformly():
    kg = random_kg(num_entities=20)
    sampler = UniformSampler(kg.num_entities, num_negatives=64)
    g = torch.Generator().manual_seed(0)
    pos = kg.train[:50]
    neg = sampler.sample(pos, g)
    assert neg.shape == (50, 64, 3)
    assert torch.equal(neg[..., 1], pos[:, None, 1].expand(-1, 64))
    head_same = neg[..., 0] == pos[:, None, 0]
    tail_same = neg[..., 2] == pos[:, None, 2]
    assert (head_same | tail_same).all()  # never both sides replaced
    # About half of the negatives corrupt each side (a replaced side may redraw the same id).
    changed_head = (~head_same).float().mean()
    changed_tail = (~tail_same).float().mean()
    assert 0.4 < changed_head < 0.5 and 0.4 < changed_tail < 0.5
    # Replacement entities are uniform: chi-square over the 20 entities.
    counts = torch.bincount(neg[..., 2][~tail_same], minlength=20).double()
    expected = counts.sum() / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45.3  # 99.9% quantile, 19 degrees of freedom


def test_bernoulli_probabilities_match_definition():
    # relation 0: one head with many tails (1-to-N) -> corrupt the head mostly
    # relation 1: many heads, one tail (N-to-1) -> corrupt the tail mostly
    train = torch.tensor([[0, 0, t] for t in range(1, 9)] + [[h, 1, 0] for h in range(1, 5)])
    s = BernoulliSampler(train, 10, 2)
    tph0, hpt0 = 8 / 1, 8 / 8
    tph1, hpt1 = 4 / 4, 4 / 1
    torch.testing.assert_close(s.head_probability,
                               torch.tensor([tph0 / (tph0 + hpt0), tph1 / (tph1 + hpt1)]))
    neg = s.sample(train[:1].repeat(2000, 1), torch.Generator().manual_seed(1))
    frac_head = (neg[..., 0] != 0).float().mean()
    assert abs(float(frac_head) - 8 / 9 * 0.9) < 0.05  # head corrupted, and not redrawn as 0


def test_bernoulli_relation_without_training_triples_is_a_fair_coin():
    """No evidence either way: head and tail are corrupted with probability 1/2 each, not
    always the tail (0/0 read as 0)."""
    train = torch.tensor([[0, 0, t] for t in range(1, 9)])
    s = BernoulliSampler(train, 10, 3)
    torch.testing.assert_close(s.head_probability[1:], torch.tensor([0.5, 0.5]))
    pos = torch.tensor([[0, 2, 1]]).repeat(4000, 1)
    neg = s.sample(pos, torch.Generator().manual_seed(0))
    kept_tail = (neg[..., 2] == 1).float().mean()  # head corrupted, or tail redrawn as 1
    assert abs(float(kept_tail) - (0.5 + 0.5 / 10)) < 0.03  # 4000 draws: std 0.008


def test_filtered_negatives_are_never_known_triples():
    kg = random_kg(num_entities=40, num_relations=2, n=(300, 10, 10))
    flt = kg.filter_index()
    g = torch.Generator().manual_seed(0)
    neg = UniformSampler(kg.num_entities, 32, flt).sample(kg.train, g)
    assert not flt.contains(neg).any()
    raw = UniformSampler(kg.num_entities, 32).sample(kg.train, torch.Generator().manual_seed(0))
    assert flt.contains(raw).any()  # the unfiltered sampler does hit known triples here


def test_filtered_sampler_reports_impossible_cases():
    # Every entity is a true tail of (0, 0, ?) and a true head of (?, 0, 0): no valid negative.
    triples = torch.tensor([[0, 0, t] for t in range(3)] + [[h, 0, 0] for h in range(3)])
    flt = FilterIndex(triples, 3, 1)
    sampler = UniformSampler(3, 4, flt)
    with pytest.warns(UserWarning, match="still known true"):
        sampler.sample(triples[:1], torch.Generator().manual_seed(0))
    assert sampler.unfiltered_left == 4


@pytest.mark.parametrize("reciprocal", [True, False])
def test_kvsall_batches_cover_every_answer_once(reciprocal):
    kg = random_kg()
    batches = OneToAllBatches(kg.train, kg.num_entities, kg.num_relations, reciprocal, "kvsall")
    seen = set()
    R = kg.num_relations
    for b in batches.epoch(16, torch.Generator().manual_seed(0)):
        y = b.target(kg.num_entities)
        for i in range(len(b.entity)):
            e, r = int(b.entity[i]), int(b.relation[i])
            for a in y[i].nonzero().view(-1).tolist():
                if b.side == "tail" and r < R:
                    seen.add((e, r, a))
                elif b.side == "tail":
                    seen.add((a, r - R, e))
                else:
                    seen.add((a, r, e))
    assert seen == {tuple(t) for t in kg.train.tolist()}
    assert len(batches) == len({(h, r) for h, r, _ in kg.train.tolist()}) + \
        len({(t, r) for _, r, t in kg.train.tolist()})


def test_1vsall_batches_one_query_per_triple_and_side():
    kg = random_kg()
    batches = OneToAllBatches(kg.train, kg.num_entities, kg.num_relations, True, "1vsall")
    assert len(batches) == 2 * len(kg.train)
    got = sorted(
        (int(e), int(r), int(g)) for b in batches.epoch(50, torch.Generator().manual_seed(0))
        for e, r, g in zip(b.entity, b.relation, b.gold, strict=True))
    R = kg.num_relations
    want = sorted([(h, r, t) for h, r, t in kg.train.tolist()]
                  + [(t, r + R, h) for h, r, t in kg.train.tolist()])
    assert got == want
