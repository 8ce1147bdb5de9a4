"""Embedding table + decoder: the structure-only baseline."""

from __future__ import annotations

from typing import Any

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
    ``KGEModel(14541, 237, "rotate", dim=500, margin=9.0)`` is RotatE with 500 complex
    dimensions; the registered model names ``transe``, ``rotate``, ... build it with that
    decoder.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R` of the dataset.
        decoder (KGEDecoder or str): The scoring function (holding :math:`2R` relations if
            ``reciprocal``), or its name in :data:`mmgnn.nn.kge.DECODERS`.
            (default: ``"transe"``)
        dim (int): Width of a decoder built by name, its ``hidden_channels`` (complex
            decoders: complex dimensions). (default: :obj:`200`)
        reciprocal (bool): Answer head queries through inverse relations. (default: :obj:`False`)
        **decoder_kwargs: Further arguments of a decoder built by name (``p_norm``,
            ``margin``, ...).
    """

    def __init__(self, num_entities: int, num_relations: int,
                 decoder: KGEDecoder | str = "transe", dim: int = 200,
                 reciprocal: bool = False, **decoder_kwargs: Any) -> None:
        if isinstance(decoder, str):
            super().__init__(num_entities, num_relations, decoder, reciprocal,
                             hidden_channels=dim, decoder_kwargs=decoder_kwargs)
        else:
            if decoder_kwargs:
                raise TypeError(f"KGEModel got decoder arguments {sorted(decoder_kwargs)} "
                                f"with a built {type(decoder).__name__}")
            super().__init__(num_entities, num_relations, decoder, reciprocal)
        self.entity = torch.nn.Embedding(num_entities, self.decoder.entity_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.decoder.reset_parameters()
        self.decoder.reset_entity_parameters(self.entity.weight)

    def encode(self) -> Tensor:
        return self.entity.weight

    @torch.no_grad()
    def after_step(self) -> None:
        self.decoder.constrain_entities_(self.entity.weight)
