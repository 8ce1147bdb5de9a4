"""DistMult (Yang et al., 2015)."""

from __future__ import annotations

import torch
from torch import Tensor

from mmgnn.nn.kge.base import KGEDecoder


class DistMult(KGEDecoder):
    r"""The DistMult bilinear-diagonal decoder from `"Embedding Entities and Relations for
    Learning and Inference in Knowledge Bases" <https://arxiv.org/abs/1412.6575>`_ (Eq. 3)

    .. math::
        f(h, r, t) = \langle \mathbf{e}_h, \mathbf{w}_r, \mathbf{e}_t \rangle
        = \sum_k e_{h,k}\, w_{r,k}\, e_{t,k}

    The score is symmetric in :math:`h` and :math:`t`. 1-to-all scoring is the matrix product
    :math:`(\mathbf{e}_h \odot \mathbf{w}_r)\mathbf{E}^\top` (tails) or
    :math:`(\mathbf{e}_t \odot \mathbf{w}_r)\mathbf{E}^\top` (heads). Entities and relations
    are initialised with Glorot & Bengio (2010) as in the paper; :meth:`factors` returns
    :math:`|\mathbf{e}_h|, |\mathbf{w}_r|, |\mathbf{e}_t|` for the N3 regulariser of Lacroix
    et al. (2018).

    Args:
        num_relations (int): Number of relations.
        hidden_channels (int): Embedding size :math:`d`.
        **kwargs: ``chunk_elements`` of :class:`~mmgnn.nn.kge.base.KGEDecoder`.

    Shapes:
        - **entities:** :math:`(*, d)`; scores as in :class:`~mmgnn.nn.kge.base.KGEDecoder`
          (:meth:`score_hrt` broadcasts over leading dimensions).
    """

    def __init__(self, num_relations: int, hidden_channels: int, **kwargs) -> None:
        super().__init__(num_relations, hidden_channels, **kwargs)
        self.rel_emb = torch.nn.Embedding(num_relations, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The paper initialises all embeddings with Glorot & Bengio (2010).
        torch.nn.init.xavier_uniform_(self.rel_emb.weight)

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        return (h * self.rel_emb(r) * t).sum(dim=-1)

    def score_t(self, h: Tensor, r: Tensor, candidates: Tensor) -> Tensor:
        return (h * self.rel_emb(r)) @ candidates.t()

    def score_h(self, r: Tensor, t: Tensor, candidates: Tensor) -> Tensor:
        return (t * self.rel_emb(r)) @ candidates.t()

    def factors(self, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        return [h.abs(), self.rel_emb(r).abs(), t.abs()]
