"""The two kinds of training batch a :class:`~mmgnn.models.LinkPredictor` takes in
:meth:`~mmgnn.models.LinkPredictor.loss`: triples with sampled negatives, and 1-to-all queries."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass
class NegativeBatch:
    """A negative-sampling batch: positive triples :obj:`(B, 3)` and the :math:`K` corrupted
    triples :obj:`(B, K, 3)` drawn for each (head, relation, tail order)."""

    positives: Tensor
    negatives: Tensor

    def __len__(self) -> int:
        return len(self.positives)

    def to(self, device: torch.device | str) -> NegativeBatch:
        """The batch on ``device``."""
        return NegativeBatch(self.positives.to(device), self.negatives.to(device))


@dataclass
class QueryBatch:
    """A batch of queries scored against every entity (KvsAll / 1vsAll training).

    ``side == "tail"`` asks ``(entity, relation, ?)``; ``"head"`` asks ``(?, relation, entity)``.
    ``gold`` is the single answer per query (1vsAll); ``target_rows`` / ``target_cols`` list
    every known answer (KvsAll), the nonzeros of the :obj:`(B, N)` multi-hot target.
    """

    side: str
    entity: Tensor
    relation: Tensor
    gold: Tensor | None = None
    target_rows: Tensor | None = None
    target_cols: Tensor | None = None

    def __len__(self) -> int:
        return len(self.entity)

    def to(self, device: torch.device | str) -> QueryBatch:
        """The batch on ``device``."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), Tensor)})

    def target(self, num_entities: int, gold_ids: bool = False) -> Tensor:
        """What a 1-to-all loss compares the :obj:`(B, N)` scores with, on the batch's device:
        the multi-hot :obj:`(B, N)` matrix of every known answer (KvsAll); for a 1vsAll batch,
        the gold ids :obj:`(B,)` if ``gold_ids`` (a softmax cross-entropy:
        :attr:`~mmgnn.nn.losses.CrossEntropy1vsAll.takes_gold_ids`), else their one-hot
        :obj:`(B, N)` rows."""
        if self.gold is not None and gold_ids:
            return self.gold  # no (B, N) matrix: a softmax over the scores needs the ids only
        device = self.entity.device
        y = torch.zeros(len(self.entity), num_entities, device=device)
        if self.gold is None:
            y[self.target_rows, self.target_cols] = 1.0
            return y
        y[torch.arange(len(self.entity), device=device), self.gold] = 1.0
        return y

    def triples(self) -> tuple[Tensor, Tensor, Tensor] | None:
        """The ``(h, r, t)`` ids of a 1vsAll batch's gold triples (e.g. for N3); :obj:`None`
        for a KvsAll batch."""
        if self.gold is None:
            return None
        if self.side == "tail":
            return self.entity, self.relation, self.gold
        return self.gold, self.relation, self.entity
