"""Uniform corruption (Bordes et al., 2013)."""

from __future__ import annotations

import torch
from torch import Tensor

from mmgnn.sampling.base import NegativeSampler


class UniformSampler(NegativeSampler):
    r"""Replaces the head or the tail (each with probability 1/2) by an entity drawn uniformly
    from all :math:`N` entities (Bordes et al., 2013). See :class:`NegativeSampler` for the
    arguments."""

    def corrupt_head_probability(self, relations: Tensor) -> Tensor:
        return torch.full(relations.shape, 0.5, device=relations.device)
