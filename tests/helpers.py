"""Small graphs and models shared by the tests."""

from __future__ import annotations

import torch

from mmgnn.data.kg import MultiModalKG
from mmgnn.models.kge_model import KGEModel
from mmgnn.nn.kge.distmult import DistMult


def random_kg(num_entities: int = 30, num_relations: int = 4,
              n: tuple[int, int, int] = (200, 40, 40), seed: int = 0) -> MultiModalKG:
    """A random graph whose splits share many (h, r) pairs, so filtering matters."""
    g = torch.Generator().manual_seed(seed)
    total = sum(n)
    h = torch.randint(num_entities // 3, (total,), generator=g)  # few heads: many answers each
    r = torch.randint(num_relations, (total,), generator=g)
    t = torch.randint(num_entities, (total,), generator=g)
    triples = torch.stack([h, r, t], 1)
    train, valid, test = triples.split(list(n))
    return MultiModalKG([f"e{i}" for i in range(num_entities)],
                        [f"r{i}" for i in range(num_relations)], train, valid, test, name="random")


def distmult_model(kg: MultiModalKG, dim: int = 8, reciprocal: bool = False,
                   seed: int = 0) -> KGEModel:
    torch.manual_seed(seed)
    rel = kg.num_relations * (2 if reciprocal else 1)
    return KGEModel(kg.num_entities, kg.num_relations, DistMult(rel, dim), reciprocal=reciprocal)
