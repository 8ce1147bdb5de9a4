"""Smaller training graphs cut from a dataset: the released k-shot link-prediction split, and
an entity neighbourhood a CPU can afford. Neither reads a validation or test triple to decide
what to keep."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mmgnn.data.kg import MultiModalKG

#: The kinds :func:`subset_graph` builds, and the keyword arguments each takes.
SUBSETS = {"few_shot": ("k", "seed"), "neighbourhood": ("entities", "seed", "start")}


def few_shot_rows(triples: Tensor, k: int = 8, seed: int = 42) -> Tensor:
    r"""Row indices of the :math:`k`-shot training split of ``triples`` :obj:`(n, 3)`: at
    most ``k`` triples per relation, by the rule of the zjunlp k-shot files
    (``MKG/dataset/FB15k-237/8shot-42-train.tsv`` of MKGformer: 8 per relation, seed 42).

    The rule, as zjunlp's released generator writes it (``KnowPrompt/generate_k_shot.py``,
    which the MKGformer repository does not ship; its FB15k-237 file's name, ``8shot-42``,
    gives ``k`` and the seed): ``np.random.seed(seed)``, ``np.random.shuffle`` the list of
    training rows in file order, then keep each relation's first ``k`` rows of the shuffled
    list. Rows come out grouped by relation, relations in order of their first shuffled row,
    rows in shuffled order within a relation.

    Args:
        triples (Tensor): Training triples in file order, (head, relation, tail) columns.
        k (int): Triples per relation (>= 1). (default: :obj:`8`)
        seed (int): Seed of numpy's legacy global generator. (default: :obj:`42`)

    Returns:
        Tensor: :obj:`(m,)` row indices into ``triples``, :math:`m \le k R`.
    """
    if int(k) < 1:
        raise ValueError(f"k-shot split needs k >= 1, got {k}")
    if triples.dim() != 2 or triples.size(1) != 3:
        raise ValueError(f"triples must have shape (n, 3), got {tuple(triples.shape)}")
    order = np.arange(len(triples))
    # The legacy generator shuffles a list and an index array with the same draws.
    np.random.RandomState(seed).shuffle(order)
    relation = triples[:, 1].numpy()
    kept: dict[int, list[int]] = {}
    for row in order.tolist():
        rows = kept.setdefault(int(relation[row]), [])
        if len(rows) < k:
            rows.append(row)
    return torch.tensor([row for rows in kept.values() for row in rows], dtype=torch.long)


def few_shot(kg: MultiModalKG, k: int = 8, seed: int = 42) -> MultiModalKG:
    """A copy of ``kg`` whose training triples are the :func:`few_shot_rows` of its own
    (validation, test, entities, relations and modalities unchanged); named
    ``"<name>[8shot-42]"``."""
    out = copy.copy(kg)
    out.train = kg.train[few_shot_rows(kg.train, k, seed)]
    out.name = f"{kg.name}[{k}shot-{seed}]"
    return out


def neighbourhood(kg: MultiModalKG, entities: int, seed: int = 0,
                  start: Sequence[int | str] = ()) -> MultiModalKG:
    """The graph induced by ``entities`` entities reached breadth-first over the
    **training** edges (both directions) from ``start``, then from entities drawn at random
    (``seed``) whenever a component is exhausted; every triple of each split between them is
    kept, entities renumbered in their old order; ``start`` holds entity ids or names. Texts,
    features, masks and lengths are sliced; ``extras`` are not carried (a warning says so).

    Only training edges choose the entities, so which validation and test triples land in
    the subset does not steer which entities are chosen."""
    if not 0 < entities <= kg.num_entities:
        raise ValueError(f"neighbourhood needs 0 < entities <= {kg.num_entities}, got "
                         f"{entities}")
    g = torch.Generator().manual_seed(seed)
    others = iter(torch.randperm(kg.num_entities, generator=g).tolist())
    train = kg.train
    both = torch.cat([train[:, [0, 2]], train[:, [2, 0]]])
    order = torch.argsort(both[:, 0], stable=True)
    src, dst = both[order, 0], both[order, 1]
    starts = torch.searchsorted(src, torch.arange(kg.num_entities + 1))
    index = {name: i for i, name in enumerate(kg.entity_names)}
    missing = [e for e in start if isinstance(e, str) and e not in index]
    if missing:
        raise ValueError(f"{kg.name}: start entities {missing[:5]} are not entity names")
    chosen = dict.fromkeys([index[e] if isinstance(e, str) else int(e) for e in start][:entities])
    frontier = list(chosen)
    while len(chosen) < entities:
        if not frontier:  # component exhausted: continue from a random entity
            frontier = [e for e in (next(others),) if e not in chosen]
            chosen.update(dict.fromkeys(frontier))
            continue
        nxt = []
        for e in frontier:
            for n in dst[starts[e]:starts[e + 1]].tolist():
                if n not in chosen and len(chosen) < entities:
                    chosen[n] = None
                    nxt.append(n)
        frontier = nxt
    ents = torch.tensor(sorted(chosen))
    new = torch.full((kg.num_entities,), -1, dtype=torch.long)
    new[ents] = torch.arange(len(ents))

    def keep(t: Tensor) -> Tensor:
        t = t[(new[t[:, 0]] >= 0) & (new[t[:, 2]] >= 0)]
        return torch.stack([new[t[:, 0]], t[:, 1], new[t[:, 2]]], 1)

    if kg.extras:
        warnings.warn(f"{kg.name}: the neighbourhood subset does not carry extras "
                      f"{sorted(kg.extras)}", stacklevel=2)
    ids = ents.tolist()
    return MultiModalKG([kg.entity_names[i] for i in ids], kg.relation_names,
                        keep(kg.train), keep(kg.valid), keep(kg.test),
                        name=f"{kg.name}[{len(ents)} entities]",
                        features={m: x[ents] for m, x in kg.features.items()},
                        masks={m: x[ents] for m, x in kg.masks.items()},
                        lengths={m: x[ents] for m, x in kg.lengths.items()},
                        texts={k: [v[i] for i in ids] for k, v in kg.texts.items()})


def subset_graph(kg: MultiModalKG, kind: str, **args) -> MultiModalKG:
    """The subset ``kind`` of ``kg`` (:data:`SUBSETS`): ``few_shot`` (``k``, ``seed``) or
    ``neighbourhood`` (``entities``, ``seed``, ``start``), as a config's ``data.subset``
    names it."""
    if kind not in SUBSETS:
        raise ValueError(f"unknown subset kind {kind!r}; expected one of {sorted(SUBSETS)}")
    unknown = set(args) - set(SUBSETS[kind])
    if unknown:
        raise ValueError(f"subset {kind!r} takes {list(SUBSETS[kind])}, not {sorted(unknown)}")
    return (few_shot if kind == "few_shot" else neighbourhood)(kg, **args)
