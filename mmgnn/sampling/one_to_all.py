"""1-to-all training batches: KvsAll (all known answers as targets) and 1vsAll (one gold)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from mmgnn.data.filter import CSR
from mmgnn.data.kg import inverse_relation, relation_count
from mmgnn.sampling.batches import QueryBatch


class OneToAllBatches:
    r"""Builds 1-to-all training batches from the training triples.

    - ``kvsall`` (Dettmers et al., 2018): one query per distinct :math:`(h, r)` (and
      :math:`(t, r)`), its target every training answer;
    - ``1vsall`` (Lacroix et al., 2018): one query per triple and direction, its target the
      triple's own answer.

    With ``reciprocal`` the head query :math:`(?, r, t)` becomes the tail query
    :math:`(t, r + R, ?)`, so every batch is a tail batch.

    Args:
        train (Tensor): :obj:`(n, 3)` training triples.
        num_entities (int): Number of entities.
        num_relations (int): Number of relations :math:`R` (without inverses).
        reciprocal (bool): Use inverse relations for head queries. (default: :obj:`True`)
        mode (str): ``kvsall`` or ``1vsall``. (default: ``kvsall``)
    """

    def __init__(self, train: Tensor, num_entities: int, num_relations: int,
                 reciprocal: bool = True, mode: str = "kvsall") -> None:
        if mode not in ("kvsall", "1vsall"):
            raise ValueError(f"mode must be 'kvsall' or '1vsall', got {mode!r}")
        self.num_entities = num_entities
        self.mode = mode
        h, r, t = train.cpu().t()
        if reciprocal:
            directions = {"tail": (torch.cat([h, t]),
                                   torch.cat([r, inverse_relation(r, num_relations)]),
                                   torch.cat([t, h]))}
        else:
            directions = {"tail": (h, r, t), "head": (t, r, h)}
        rel_count = relation_count(num_relations, reciprocal)
        self._queries: dict[str, tuple[Tensor, ...]] = {}
        for side, (e, rel, ans) in directions.items():
            if mode == "1vsall":
                self._queries[side] = (e, rel, ans)
            else:
                csr = CSR(e * rel_count + rel, ans, num_entities)
                self._queries[side] = (csr.keys // rel_count, csr.keys % rel_count, csr)

    def __len__(self) -> int:
        """Number of queries per epoch."""
        return sum(len(q[0]) for q in self._queries.values())

    def num_batches(self, batch_size: int) -> int:
        return sum(-(-len(q[0]) // batch_size) for q in self._queries.values())

    def epoch(self, batch_size: int, generator: torch.Generator | None = None
              ) -> Iterator[QueryBatch]:
        """Shuffled batches of one epoch (the sides interleaved at random)."""
        plan = []
        for side, q in self._queries.items():
            perm = torch.randperm(len(q[0]), generator=generator)
            plan += [(side, idx) for idx in perm.split(batch_size)]
        order = torch.randperm(len(plan), generator=generator).tolist()
        for i in order:
            side, idx = plan[i]
            q = self._queries[side]
            if self.mode == "1vsall":
                yield QueryBatch(side, q[0][idx], q[1][idx], gold=q[2][idx])
            else:
                csr: CSR = q[2]
                rows, cols = csr.gather(csr.keys[idx])
                yield QueryBatch(side, q[0][idx], q[1][idx], target_rows=rows,
                                    target_cols=cols)
