"""Index of known true triples, for filtered ranking and filtered negative sampling."""

from __future__ import annotations

import torch
from torch import Tensor


class CSR:
    """Sorted unique ``(key, value)`` pairs with per-key offsets; lookups are vectorised.

    Args:
        keys (Tensor): :obj:`(n,)` non-negative integer keys.
        values (Tensor): :obj:`(n,)` values, :math:`0 \\le v <` ``num_values``.
        num_values (int): Bound of the values (pairs are packed as ``key * num_values + value``).
    """

    def __init__(self, keys: Tensor, values: Tensor, num_values: int) -> None:
        pair = torch.unique(keys * num_values + values)  # sorted, duplicates removed
        self.keys, counts = torch.unique_consecutive(pair // num_values, return_counts=True)
        self.values = pair % num_values
        self.offsets = torch.zeros(len(counts) + 1, dtype=torch.long)
        self.offsets[1:] = torch.cumsum(counts, 0)

    def gather(self, query: Tensor) -> tuple[Tensor, Tensor]:
        """``(row, value)`` for every stored value of every query key (rows index ``query``)."""
        pos = torch.searchsorted(self.keys, query).clamp_(max=max(len(self.keys) - 1, 0))
        if len(self.keys) == 0:
            empty = torch.empty(0, dtype=torch.long, device=query.device)
            return empty, empty
        found = self.keys[pos] == query
        start = self.offsets[pos]
        length = torch.where(found, self.offsets[pos + 1] - start, torch.zeros_like(start))
        row = torch.repeat_interleave(torch.arange(len(query)), length)
        first = torch.cumsum(length, 0) - length
        within = torch.arange(len(row)) - first[row]
        return row, self.values[start[row] + within]


class FilterIndex:
    r"""All known true triples, indexed for the two filtered ranking directions.

    For a batch of tail queries :math:`(h_i, r_i, ?)` it returns every :math:`(i, t)` with
    :math:`(h_i, r_i, t)` known true, and likewise for head queries, as two index vectors that
    can be written into a :obj:`(B, N)` score matrix in one ``index_put_``. Lookups cost a binary
    search per query plus the number of true answers: the filter never becomes the bottleneck of
    ranking, whose cost is the :obj:`(B, N)` score matrix itself.

    Args:
        triples (Tensor): :obj:`(n, 3)` known true triples in (head, relation, tail) order,
            usually train + valid + test.
        num_entities (int): Number of entities.
        num_relations (int): Number of relations.
    """

    def __init__(self, triples: Tensor, num_entities: int, num_relations: int) -> None:
        triples = triples.to(torch.long).cpu()
        h, r, t = triples.t()
        self.num_entities = num_entities
        self.num_relations = num_relations
        self._tails = CSR(h * num_relations + r, t, num_entities)
        self._heads = CSR(t * num_relations + r, h, num_entities)
        self._triples = self._tails.keys.repeat_interleave(
            self._tails.offsets.diff()) * num_entities + self._tails.values

    def __len__(self) -> int:
        return len(self._triples)

    def true_tails(self, h: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        """``(row, tail)`` pairs: ``(h[row], r[row], tail)`` is a known true triple."""
        row, tail = self._tails.gather(h.cpu() * self.num_relations + r.cpu())
        return row.to(h.device), tail.to(h.device)

    def true_heads(self, r: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(row, head)`` pairs: ``(head, r[row], t[row])`` is a known true triple."""
        row, head = self._heads.gather(t.cpu() * self.num_relations + r.cpu())
        return row.to(t.device), head.to(t.device)

    def contains(self, triples: Tensor) -> Tensor:
        """Boolean mask over the rows of :obj:`(..., 3)` ``triples``: is the triple known true."""
        h, r, t = triples.cpu().unbind(-1)
        key = (h * self.num_relations + r) * self.num_entities + t
        pos = torch.searchsorted(self._triples, key).clamp_(max=max(len(self._triples) - 1, 0))
        if len(self._triples) == 0:
            return torch.zeros_like(key, dtype=torch.bool).to(triples.device)
        return (self._triples[pos] == key).to(triples.device)
