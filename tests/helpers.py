"""Small graphs and models shared by the tests."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mmgnn.data import load_dataset, read_entity_text, read_numeric_triples
from mmgnn.data.kg import MultiModalKG
from mmgnn.models.kge_model import KGEModel

#: The toy graph shipped with the tests (written by ``tests/assets/make_toy.py``, described
#: there): 264 entities, 6 relations, 1325/130/129 train/valid/test triples, modality
#: ``numeric`` (4 attributes, missing for a part of the entities) and texts ``name``.
TOY = Path(__file__).resolve().parent / "assets" / "toy"

#: Expected MRR of a uniformly random ranking of the toy graph's 264 entities (H_264 / 264).
TOY_RANDOM_MRR = sum(1 / k for k in range(1, 265)) / 264


def load_toy_kg(folder: str | os.PathLike = TOY) -> MultiModalKG:
    """The toy graph read through the public readers: the folder of tab-separated triples by
    :func:`~mmgnn.data.load_dataset`, then its numeric attributes (``literals.txt``) as
    modality ``numeric`` and its texts (``entity2text.txt``) as ``kg.texts["name"]``."""
    folder = Path(folder)
    kg = load_dataset(folder)
    read_numeric_triples(folder / "literals.txt", kg.entity_names).attach_to(kg)
    read_entity_text(folder / "entity2text.txt", kg.entity_names).attach_to(kg)
    return kg


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
    return KGEModel(kg.num_entities, kg.num_relations, "distmult", dim=dim, reciprocal=reciprocal)
