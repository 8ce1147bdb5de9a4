"""The contract between link-prediction models and mmgnn's training loop and evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.nn.kge.base import KGEDecoder


class LinkPredictor(torch.nn.Module):
    r"""Base class of every link-prediction model in mmgnn.

    Training (:mod:`mmgnn.train`) and evaluation (:mod:`mmgnn.eval`) use only this interface, so
    a GNN encoder, a multimodal fusion model and a plain embedding table are trained and ranked
    the same way:

    1. :meth:`encode` computes the entity representations :math:`X` (once per evaluation, once
       per training step);
    2. :meth:`score_hrt`, :meth:`score_t` and :meth:`score_h` score triples against :math:`X`
       with the model's decoder.

    With ``reciprocal=True`` the decoder holds :math:`2R` relations and head queries
    :math:`(?, r, t)` are answered as tail queries :math:`(t, r + R, ?)` (Lacroix et al., 2018).

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R` of the dataset (without inverses).
        decoder (KGEDecoder): The scoring function; it must hold :math:`R` relations, or
            :math:`2R` when ``reciprocal``.
        reciprocal (bool): Answer head queries through inverse relations. (default: :obj:`False`)
    """

    def __init__(self, num_entities: int, num_relations: int, decoder: KGEDecoder,
                 reciprocal: bool = False) -> None:
        super().__init__()
        expected = 2 * num_relations if reciprocal else num_relations
        if decoder.num_relations != expected:
            inverses = " and their inverses" if reciprocal else ""
            raise ValueError(
                f"{type(decoder).__name__} holds {decoder.num_relations} relations, expected "
                f"{expected} ({num_relations} relations{inverses})"
            )
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.decoder = decoder
        self.reciprocal = reciprocal

    def encode(self) -> Tensor:
        """Entity representations :math:`(N, F)` for the decoder."""
        raise NotImplementedError

    def score_hrt(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Scores of the triples with entity ids ``h``, ``t`` and relation ids ``r`` (any equal
        shapes, e.g. :obj:`(B,)` or :obj:`(B, K)`)."""
        # One gather for both sides, through F.embedding: its backward sorts the indices and
        # sums repeated rows in one pass, where x[idx] scatters with atomic accumulation
        # (several times slower with many negatives per positive).
        # unbind, not ht[0] / ht[1]: each select's backward zero-fills a buffer of the size of
        # the whole gather.
        hh, tt = F.embedding(torch.stack([h, t]), x).unbind(0)
        return self.decoder.score_hrt(hh, r, tt)

    def score_t(self, x: Tensor, h: Tensor, r: Tensor) -> Tensor:
        """Scores :obj:`(B, N)` of every entity as the tail of ``(h, r, ?)``."""
        return self.decoder.score_t(x[h], r, x)

    def score_h(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Scores :obj:`(B, N)` of every entity as the head of ``(?, r, t)``."""
        if self.reciprocal:
            return self.decoder.score_t(x[t], r + self.num_relations, x)
        return self.decoder.score_h(r, x[t], x)

    def regularization(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        """Factors of the batch for an N3 regulariser (see :meth:`KGEDecoder.factors`)."""
        return self.decoder.factors(x[h], r, x[t])

    @torch.no_grad()
    def after_step(self) -> None:
        """Hook run after every optimiser step (projections and constraints)."""
