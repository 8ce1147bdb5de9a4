r"""Synthetic knowledge graphs of any size: power-law entity degrees, skewed relation
frequencies, a learnable relational structure, seeded.

Real KGs have a few hub entities and a long tail (FB15k-237's degrees follow roughly a power
law) and a few relations that carry most triples. :func:`synthetic_kg` draws graphs with both
properties at any scale (millions of entities in seconds), for benchmarks of memory and time
that real data of that size would not fit on a test machine (``benchmarks/scale.py``).

**Model.** Entity :math:`i` gets the weight :math:`w_i \propto \rho(i)^{-1/(\gamma - 1)}`,
with :math:`\rho` a random permutation of :math:`1..N`: the rank-size form of a power law
whose density of weights is :math:`p(w) \propto w^{-\gamma}`. Every endpoint of a triple is
drawn with probability proportional to :math:`w_i` (the Chung-Lu model; Chung and Lu, 2002,
*The average distances in random graphs with given expected degrees*), so an entity's expected
degree is proportional to its weight and the degree distribution has the tail exponent
:math:`\gamma`. Relation :math:`r` (by frequency rank, ids permuted) is drawn with probability
:math:`\propto (r + 1)^{-s}` (Zipf's law with exponent :math:`s`, the ``relation_skew``).

So that there is something to learn, entities are split into ``clusters`` at random and every
relation maps each cluster to another by a random permutation :math:`\pi_r`: with probability
``1 - noise`` the tail of :math:`(h, r, ?)` is drawn (by weight) from cluster
:math:`\pi_r(c(h))`, otherwise from all entities. A translational model can fit that map.

Triples are distinct and have no self-loops; ``valid`` and ``test`` are random held-out
triples whose entities and relation all occur in ``train`` (held-out triples that would
introduce an unseen one are moved to ``train``, as for FB15k-237).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmgnn.data.kg import MultiModalKG


def _draw(cdf: Tensor, u: Tensor) -> Tensor:
    """Indices drawn by inverse transform: ``cdf`` a non-decreasing cumulative sum ending at
    its total, ``u`` uniform in [0, total)."""
    return torch.searchsorted(cdf, u, right=True).clamp_(max=len(cdf) - 1)


def _weights(n: int, exponent: float, g: torch.Generator) -> Tensor:
    r""":math:`\rho(i)^{-1/(\gamma-1)}` for a random permutation :math:`\rho` of 1..n (float64)."""
    rank = torch.randperm(n, generator=g).to(torch.float64) + 1.0
    return rank.pow(-1.0 / (exponent - 1.0))


def _draw_triples(n: int, weight: Tensor, rel_cdf: Tensor, cluster: Tensor,
                  cluster_map: Tensor, noise: float, g: torch.Generator) -> Tensor:
    """``n`` triples (with duplicates and self-loops) of the generative model."""
    num_clusters = cluster_map.size(1)
    # Entities sorted by cluster: one cumulative sum serves the global draw and each cluster's.
    order = torch.argsort(cluster, stable=True)
    cdf = torch.cumsum(weight[order], 0)
    total = cdf[-1]
    ends = torch.cumsum(torch.bincount(cluster, minlength=num_clusters), 0)
    hi = cdf[ends - 1]
    lo = torch.cat([hi.new_zeros(1), hi[:-1]])
    h = order[_draw(cdf, torch.rand(n, generator=g, dtype=torch.float64) * total)]
    r = _draw(rel_cdf, torch.rand(n, generator=g, dtype=torch.float64) * rel_cdf[-1])
    target = cluster_map[r, cluster[h]]
    u = torch.rand(n, generator=g, dtype=torch.float64)
    local = lo[target] + u * (hi[target] - lo[target])
    anywhere = torch.rand(n, generator=g, dtype=torch.float64) < noise
    t = order[_draw(cdf, torch.where(anywhere, u * total, local))]
    return torch.stack([h, r, t], dim=1)


def synthetic_kg(num_entities: int, num_triples: int | None = None, num_relations: int = 100,
                 *, degree_exponent: float = 2.5, relation_skew: float = 1.0,
                 clusters: int = 64, noise: float = 0.2, valid_fraction: float = 0.01,
                 test_fraction: float = 0.01, seed: int = 0,
                 name: str | None = None) -> MultiModalKG:
    r"""A random knowledge graph with power-law degrees and Zipf-distributed relations (see
    the module docstring for the model).

    Args:
        num_entities (int): Entities :math:`N` (>= 2).
        num_triples (int, optional): Distinct triples over all splits; default
            :math:`10 N`.
        num_relations (int): Relations :math:`R`. (default: :obj:`100`)
        degree_exponent (float): Tail exponent :math:`\gamma > 1` of the degree distribution
            :math:`p(k) \propto k^{-\gamma}`. (default: :obj:`2.5`)
        relation_skew (float): Zipf exponent :math:`s \ge 0` of the relation frequencies
            (0: uniform). (default: :obj:`1.0`)
        clusters (int): Entity clusters that the relations map onto each other.
            (default: :obj:`64`)
        noise (float): Share of tails drawn from all entities instead of the relation's target
            cluster, in :math:`[0, 1]`. (default: :obj:`0.2`)
        valid_fraction (float): Share of triples held out for validation. (default: 0.01)
        test_fraction (float): Share held out for testing. (default: 0.01)
        seed (int): Seed of every draw; the same arguments give the same graph.
            (default: :obj:`0`)
        name (str, optional): Dataset name; default ``synthetic-<N>``.

    Returns:
        MultiModalKG: The graph (no modality features), entities named ``e<i>``, relations
        ``r<j>``.
    """
    if num_entities < 2:
        raise ValueError(f"num_entities must be >= 2, got {num_entities}")
    num_triples = 10 * num_entities if num_triples is None else num_triples
    if num_triples < 1:
        raise ValueError(f"num_triples must be >= 1, got {num_triples}")
    if num_triples > num_entities * (num_entities - 1) * num_relations // 2:
        raise ValueError(f"{num_triples} distinct triples do not fit easily in {num_entities} "
                         f"entities and {num_relations} relations")
    if num_relations < 1:
        raise ValueError(f"num_relations must be >= 1, got {num_relations}")
    if not degree_exponent > 1.0:
        raise ValueError(f"degree_exponent must be > 1, got {degree_exponent}")
    if relation_skew < 0:
        raise ValueError(f"relation_skew must be >= 0, got {relation_skew}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1], got {noise}")
    if not (valid_fraction >= 0 and test_fraction >= 0 and valid_fraction + test_fraction < 1):
        raise ValueError(f"valid_fraction and test_fraction must be >= 0 with a sum below 1, "
                         f"got {valid_fraction} and {test_fraction}")
    clusters = max(1, min(clusters, num_entities))

    g = torch.Generator().manual_seed(seed)
    weight = _weights(num_entities, degree_exponent, g)
    rel_p = (torch.arange(num_relations, dtype=torch.float64) + 1.0).pow(-relation_skew)
    rel_cdf = torch.cumsum(rel_p[torch.argsort(torch.randperm(num_relations, generator=g))], 0)
    cluster = torch.randint(clusters, (num_entities,), generator=g)
    cluster_map = torch.stack([torch.randperm(clusters, generator=g)
                               for _ in range(num_relations)])

    # Draw in rounds until enough distinct triples without self-loops; keep them in draw order
    # (the first occurrence of each), so the result does not depend on the round sizes' sorting.
    span = num_relations * num_entities
    keys = torch.empty(0, dtype=torch.long)
    draw = int(num_triples * 1.1) + 16
    for _ in range(64):
        t = _draw_triples(draw, weight, rel_cdf, cluster, cluster_map, noise, g)
        t = t[t[:, 0] != t[:, 2]]
        keys = torch.cat([keys, t[:, 0] * span + t[:, 1] * num_entities + t[:, 2]])
        unique, inverse = torch.unique(keys, return_inverse=True)
        first = torch.full((len(unique),), len(keys), dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(len(keys)), reduce="amin")
        keys = keys[first.sort().values]
        if len(keys) >= num_triples:
            break
        draw = int((num_triples - len(keys)) * 1.5) + 16
    else:
        raise RuntimeError(f"could not draw {num_triples} distinct triples (got {len(keys)}); "
                           f"lower num_triples or the skew")
    keys = keys[:num_triples]
    triples = torch.stack([keys // span, keys // num_entities % num_relations,
                           keys % num_entities], dim=1)

    n_valid = int(round(valid_fraction * num_triples))
    n_test = int(round(test_fraction * num_triples))
    held = torch.randperm(num_triples, generator=g)[:n_valid + n_test]
    is_held = torch.zeros(num_triples, dtype=torch.bool)
    is_held[held] = True
    train = triples[~is_held]
    # Held-out triples whose entity or relation never occurs in train go back to train.
    seen_e = torch.zeros(num_entities, dtype=torch.bool)
    seen_e[train[:, 0]] = True
    seen_e[train[:, 2]] = True
    seen_r = torch.zeros(num_relations, dtype=torch.bool)
    seen_r[train[:, 1]] = True
    out = triples[held]
    ok = seen_e[out[:, 0]] & seen_e[out[:, 2]] & seen_r[out[:, 1]]
    train = torch.cat([train, out[~ok]])
    valid, test = out[:n_valid][ok[:n_valid]], out[n_valid:][ok[n_valid:]]
    return MultiModalKG([f"e{i}" for i in range(num_entities)],
                        [f"r{j}" for j in range(num_relations)], train, valid, test,
                        name=name or f"synthetic-{num_entities}")
