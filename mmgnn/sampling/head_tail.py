"""One head and one tail corruption per positive (KBGAT / IMF's structural encoder)."""

from __future__ import annotations

import torch
from torch import Tensor

from mmgnn.sampling.uniform import UniformSampler


class HeadTailSampler(UniformSampler):
    r"""Corrupts the head in the even-numbered negatives and the tail in the odd-numbered ones,
    each with an entity drawn uniformly: with :math:`K = 2`, exactly one head and one tail
    corruption per positive, as KBGAT's and IMF's GAT training draws them (spec ``IMF.md``,
    section 5, ``ConvKBCorpus.get_batch``). An odd :math:`K` gives one more head than tail
    corruption. See :class:`~mmgnn.sampling.base.NegativeSampler` for the arguments.
    """

    def corrupt_head_probability(self, relations: Tensor) -> Tensor:
        return torch.full(relations.shape, 0.5, device=relations.device)  # on average

    def corrupt_head_mask(self, relations: Tensor, num_negatives: int,
                          generator: torch.Generator | None) -> Tensor:
        even = torch.arange(num_negatives, device=relations.device) % 2 == 0
        return even.expand(len(relations), num_negatives)
