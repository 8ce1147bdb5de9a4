"""Embedding table + decoder: the structure-only baseline."""

from __future__ import annotations

import torch
from torch import Tensor

from mmgnn.models.base import LinkPredictor
from mmgnn.nn.kge.base import KGEDecoder


class KGEModel(LinkPredictor):
    r"""A structure-only knowledge graph embedding model: a free entity table scored by a decoder.

    .. math::
        f(h, r, t) = \phi_r(\mathbf{E}_h, \mathbf{E}_t)

    where :math:`\mathbf{E} \in \mathbb{R}^{N \times F}` is initialised and constrained as the
    decoder's paper prescribes and :math:`\phi_r` is any :class:`~mmgnn.nn.kge.base.KGEDecoder`.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R` of the dataset.
        decoder (KGEDecoder): The scoring function (with :math:`2R` relations if ``reciprocal``).
        reciprocal (bool): Answer head queries through inverse relations. (default: :obj:`False`)
    """

    def __init__(self, num_entities: int, num_relations: int, decoder: KGEDecoder,
                 reciprocal: bool = False) -> None:
        super().__init__(num_entities, num_relations, decoder, reciprocal)
        self.entity = torch.nn.Embedding(num_entities, decoder.entity_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.decoder.reset_parameters()
        self.decoder.reset_entity_parameters(self.entity.weight)

    def encode(self) -> Tensor:
        return self.entity.weight

    @torch.no_grad()
    def after_step(self) -> None:
        self.decoder.constrain_entities_(self.entity.weight)

    def __repr__(self) -> str:
        return (f"KGEModel({self.num_entities}, decoder={self.decoder!r}"
                f"{', reciprocal=True' if self.reciprocal else ''})")
