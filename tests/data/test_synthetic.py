"""The synthetic KG generator: its degree exponent and relation skew are the ones asked for
(estimated from the drawn graph, and rejected when another was asked), seeded determinism,
leak-free splits."""

from __future__ import annotations

import pytest
import torch

from mmgnn.data.synthetic import synthetic_kg

N = 20_000


def degree_exponent_mle(kg, k_min: int = 20) -> float:
    r"""Discrete power-law MLE of the degree tail (Clauset, Shalizi and Newman, 2009, Eq. 3.7):
    :math:`\hat\gamma = 1 + n / \sum_i \ln(k_i / (k_{\min} - 1/2))` over degrees
    :math:`k_i \ge k_{\min}`, degrees counted over all splits."""
    triples = torch.cat([kg.train, kg.valid, kg.test])
    deg = torch.bincount(torch.cat([triples[:, 0], triples[:, 2]]),
                         minlength=kg.num_entities).double()
    tail = deg[deg >= k_min]
    return 1.0 + len(tail) / torch.log(tail / (k_min - 0.5)).sum().item()


def relation_slope(kg) -> float:
    """Least-squares slope of log(relation count) against log(frequency rank)."""
    counts = torch.bincount(kg.train[:, 1], minlength=kg.num_relations).double()
    y = torch.log(counts.sort(descending=True).values)
    x = torch.log(torch.arange(1, len(y) + 1, dtype=torch.float64))
    return (((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()).item()


@pytest.fixture(scope="module")
def kg():
    return synthetic_kg(N, seed=0)


def test_sizes_and_distinct_triples(kg):
    triples = torch.cat([kg.train, kg.valid, kg.test])
    assert kg.num_entities == N and kg.num_relations == 100 and len(triples) == 10 * N
    assert len(kg.valid) + len(kg.test) == pytest.approx(0.02 * len(triples), rel=0.05)
    assert len(torch.unique(triples, dim=0)) == len(triples)
    assert (triples[:, 0] != triples[:, 2]).all()


@pytest.mark.parametrize("gamma", [2.2, 2.5, 3.0])
def test_degree_exponent(gamma):
    estimate = degree_exponent_mle(synthetic_kg(N, degree_exponent=gamma, seed=1))
    assert abs(estimate - gamma) < 0.15, estimate


def test_degree_exponent_rejects_another():
    # The estimate tells exponents 0.5 apart: the check above can fail.
    assert abs(degree_exponent_mle(synthetic_kg(N, degree_exponent=3.0, seed=1)) - 2.5) > 0.3


@pytest.mark.parametrize("skew", [0.0, 1.0, 1.5])
def test_relation_skew(skew):
    assert relation_slope(synthetic_kg(N, relation_skew=skew, seed=2)) == pytest.approx(
        -skew, abs=0.1)


def test_relation_frequencies_follow_zipf(kg):
    # Beyond the slope: each rank's share of the triples, total variation to Zipf(1) < 0.03.
    counts = torch.bincount(kg.train[:, 1], minlength=100).double().sort(descending=True).values
    zipf = 1.0 / torch.arange(1, 101, dtype=torch.float64)
    tv = 0.5 * (counts / counts.sum() - zipf / zipf.sum()).abs().sum().item()
    assert tv < 0.03
    uniform = torch.full((100,), 0.01, dtype=torch.float64)
    assert 0.5 * (counts / counts.sum() - uniform).abs().sum().item() > 0.2


def test_seeded(kg):
    again = synthetic_kg(N, seed=0)
    for split in ("train", "valid", "test"):
        assert torch.equal(kg.split(split), again.split(split))
    other = synthetic_kg(N, seed=3)
    assert not torch.equal(kg.train[:100], other.train[:100])


def test_splits_leak_free(kg):
    key = lambda t: t[:, 0] * (kg.num_relations * N) + t[:, 1] * N + t[:, 2]  # noqa: E731
    train = set(key(kg.train).tolist())
    valid, test = set(key(kg.valid).tolist()), set(key(kg.test).tolist())
    assert not train & test and not train & valid and not valid & test
    seen = torch.zeros(N, dtype=torch.bool)
    seen[kg.train[:, 0]] = seen[kg.train[:, 2]] = True
    held = torch.cat([kg.valid, kg.test])
    assert seen[held[:, 0]].all() and seen[held[:, 2]].all()
    assert set(held[:, 1].tolist()) <= set(kg.train[:, 1].tolist())


def largest_cotail_component(kg) -> float:
    """Share of the tail entities in the largest component of the graph that joins the tails
    of each (head, relation) query (union-find)."""
    parent = list(range(kg.num_entities))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    first: dict[int, int] = {}
    h, r, t = kg.train.t()
    for query, tail in zip((h * kg.num_relations + r).tolist(), t.tolist(), strict=True):
        if query in first:
            parent[find(first[query])] = find(tail)
        else:
            first[query] = tail
    roots = torch.tensor([find(i) for i in torch.unique(t).tolist()])
    return torch.bincount(roots).max().item() / len(roots)


def test_relations_map_clusters():
    # Without noise the tails of (h, r, ?) all lie in cluster pi_r(c(h)): joining co-tails
    # never crosses a cluster, so no component holds more than a few of the 8 clusters' share;
    # with noise 1 tails are drawn from everywhere and one component takes nearly all.
    def share(noise: float) -> float:
        return largest_cotail_component(synthetic_kg(2_000, 40_000, num_relations=4,
                                                     clusters=8, noise=noise, seed=4))
    assert share(0.0) < 0.35
    assert share(1.0) > 0.9


@pytest.mark.parametrize("kwargs, match", [
    ({"num_entities": 1}, "num_entities"), ({"degree_exponent": 1.0}, "degree_exponent"),
    ({"relation_skew": -1.0}, "relation_skew"), ({"noise": 1.5}, "noise"),
    ({"valid_fraction": 0.6, "test_fraction": 0.5}, "valid_fraction"),
])
def test_errors(kwargs, match):
    args = {"num_entities": 100, **kwargs}
    with pytest.raises(ValueError, match=match):
        synthetic_kg(**args)
