"""Quirks of released splits: counted, reported in one warning, kept unless asked to drop.

Quirks of a release (duplicate rows within a split, evaluation triples that also occur in
train, entities seen only in valid/test, side-information rows naming unknown entities) are
counted in ``kg.quirks`` and summarised in **one** :class:`DatasetQuirkWarning` per load by
:func:`~mmgnn.data.load_dataset`. Rows are kept as released unless ``drop_duplicates=True``.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from mmgnn.data.kg import SPLITS

# (quirk key, count, phrase for the warning; "" for counts that only go into kg.quirks)
Note = tuple[str, int, str]


class DatasetQuirkWarning(UserWarning):
    """Irregularities of a dataset release (duplicates, split overlaps, skipped side rows)."""


def triple_keys(triples: Tensor, num_entities: int, num_relations: int) -> Tensor:
    """One integer per :obj:`(n, 3)` triple, equal for equal triples."""
    h, r, t = triples.t()
    return (h * num_relations + r) * num_entities + t


def first_occurrence(keys: Tensor) -> Tensor:
    """Boolean mask keeping the first row of every distinct key."""
    if len(keys) == 0:
        return torch.ones(0, dtype=torch.bool)
    _, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(keys), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(keys)), reduce="amin")
    return first[inverse] == torch.arange(len(keys))


def split_quirks(splits: dict[str, Tensor], num_entities: int,
                 num_relations: int) -> list[Note]:
    """Irregularities of released splits, as ``(key, count, phrase)`` with nonzero counts.

    Keys: ``duplicates_<split>`` (rows minus distinct rows), ``<a>_in_<b>`` (distinct
    triples of split ``a`` that occur in ``b``; the convention of the dataset READMEs) with
    ``<a>_rows_in_<b>`` (rows), ``entities_only_in_eval`` / ``relations_only_in_eval`` (in valid
    or test but never in train) and ``entities_without_triples`` (in the vocabulary only).
    """
    keys = {s: triple_keys(t, num_entities, num_relations) for s, t in splits.items()}
    notes: list[Note] = []
    for s in SPLITS:
        dup = len(keys[s]) - len(torch.unique(keys[s]))
        if dup:
            notes.append((f"duplicates_{s}", dup, f"{s} has {dup:,} duplicate rows"))
    for a, b in (("valid", "train"), ("test", "train"), ("test", "valid")):
        hit = torch.isin(keys[a], keys[b])
        rows, distinct = int(hit.sum()), len(torch.unique(keys[a][hit]))
        if rows:
            extra = f" ({rows:,} rows)" if rows != distinct else ""
            notes.append((f"{a}_in_{b}", distinct,
                          f"{distinct:,} distinct {a} triples{extra} also occur in {b}"))
            notes.append((f"{a}_rows_in_{b}", rows, ""))
    train = splits["train"]
    evals = torch.cat([splits["valid"], splits["test"]])
    for label, cols, n in (("entities", [0, 2], num_entities), ("relations", [1], num_relations)):
        seen_train = torch.zeros(n, dtype=torch.bool)
        seen_train[train[:, cols].reshape(-1)] = True
        seen_eval = torch.zeros(n, dtype=torch.bool)
        seen_eval[evals[:, cols].reshape(-1)] = True
        only = int((seen_eval & ~seen_train).sum())
        if only:
            noun = label if only > 1 else {"entities": "entity", "relations": "relation"}[label]
            verb = "occur" if only > 1 else "occurs"
            notes.append((f"{label}_only_in_eval", only,
                          f"{only:,} {noun} {verb} in valid/test but never in train"))
        if label == "entities":
            unused = int((~seen_eval & ~seen_train).sum())
            if unused:
                notes.append(("entities_without_triples", unused,
                              f"{unused:,} vocabulary entities occur in no split"))
    return notes


def drop_duplicate_rows(splits: dict[str, Tensor], num_entities: int,
                     num_relations: int) -> list[Note]:
    """Drops repeated rows within each split and valid/test rows whose triple is in train (in
    place in ``splits``); returns what it dropped."""
    notes: list[Note] = []
    train_keys = None
    for s in SPLITS:
        keys = triple_keys(splits[s], num_entities, num_relations)
        keep = first_occurrence(keys)
        if train_keys is not None:
            keep &= ~torch.isin(keys, train_keys)
        else:
            train_keys = keys
        dropped = int((~keep).sum())
        if dropped:
            splits[s] = splits[s][keep]
            why = "repeated" if s == "train" else "repeated or in train"
            notes.append((f"dropped_{s}", dropped, f"{dropped:,} {s} rows ({why})"))
    return notes


def warn_quirks(name: str, found: list[Note], dropped: list[Note], drop_duplicates: bool) -> None:
    """Issues the one :class:`DatasetQuirkWarning` of a load, if anything was found."""
    phrases = [p for _, _, p in found if p]
    if not phrases:
        return
    message = f"{name}: " + "; ".join(phrases) + "."
    removable = any(k.startswith(("duplicates_", "valid_in_train", "test_in_train"))
                    for k, _, _ in found)
    if drop_duplicates:
        message += " Dropped " + ("; ".join(p for _, _, p in dropped) or "nothing") + "."
    elif removable:
        message += (" Rows are kept as released; pass drop_duplicates=True to drop duplicate "
                    "rows and valid/test triples that occur in train.")
    message += " Counts are in kg.quirks."
    warnings.warn(message, DatasetQuirkWarning, stacklevel=3)
