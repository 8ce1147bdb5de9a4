"""Bernoulli corruption (Wang et al., 2014)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mmgnn.data.filter import FilterIndex
from mmgnn.sampling.base import NegativeSampler
from mmgnn.sampling.registry import negative_filter_index

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG


class BernoulliSampler(NegativeSampler):
    r"""Corrupts the head with probability :math:`\frac{tph_r}{tph_r + hpt_r}` (TransH,
    Wang et al., 2014, Sec. 4.2), where :math:`tph_r` is the mean number of tails per head and
    :math:`hpt_r` the mean number of heads per tail of relation :math:`r` in the training
    triples: one-to-many relations get their head corrupted more often, which yields fewer
    false negatives.

    Args:
        train (Tensor): :obj:`(n, 3)` training triples the statistics are computed from.
        num_entities (int): Number of entities.
        num_relations (int): Number of relations.
        num_negatives (int): Corruptions per positive. (default: :obj:`1`)
        filter_index (FilterIndex, optional): Known true triples to avoid.
    """

    def __init__(self, train: Tensor, num_entities: int, num_relations: int,
                 num_negatives: int = 1, filter_index: FilterIndex | None = None) -> None:
        super().__init__(num_entities, num_negatives, filter_index)
        train = torch.unique(train.cpu(), dim=0)
        h, r, t = train.t()
        per_rel = torch.bincount(r, minlength=num_relations).double()
        heads = torch.bincount(torch.unique(r * num_entities + h) // num_entities,
                               minlength=num_relations).double()
        tails = torch.bincount(torch.unique(r * num_entities + t) // num_entities,
                               minlength=num_relations).double()
        tph = per_rel / heads.clamp(min=1)
        hpt = per_rel / tails.clamp(min=1)
        prob = tph / (tph + hpt)
        # Relations without training triples: no evidence either way.
        self.head_probability = torch.where(per_rel > 0, prob, torch.full_like(prob, 0.5)).float()

    @classmethod
    def from_kg(cls, kg: MultiModalKG, num_negatives: int, negative_filter: str = "train",
                **sampler_args: Any) -> BernoulliSampler:
        """The sampler with ``kg``'s training statistics (see
        :meth:`NegativeSampler.from_kg`)."""
        return cls(kg.train, kg.num_entities, kg.num_relations, num_negatives,
                   negative_filter_index(kg, negative_filter), **sampler_args)

    def corrupt_head_probability(self, relations: Tensor) -> Tensor:
        return self.head_probability.to(relations.device)[relations]
