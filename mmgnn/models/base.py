"""The contract between link-prediction models and mmgnn's training loop and evaluation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mmgnn.nn.kge.base import KGEDecoder, gather_pair


def one_sided_corruptions(positives: Tensor, negatives: Tensor) -> Tensor | None:
    """Which negatives :obj:`(B, K, 3)` of positives :obj:`(B, 3)` replace the head
    (:obj:`(B, K)` bool), when every one keeps the relation and replaces one side only (what
    every mmgnn sampler draws); :obj:`None` otherwise. A corruption that redrew the original
    entity is the positive itself, whichever side it claims: it reads as a tail corruption."""
    h, r, t = positives.unbind(1)
    nh, nr, nt = negatives.unbind(-1)
    corrupt_head = nh != h[:, None]
    if bool((nr == r[:, None]).all()) and not bool((corrupt_head & (nt != t[:, None])).any()):
        return corrupt_head
    return None


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
        hh, tt = gather_pair(x, h, t)
        return self.decoder.score_hrt(hh, r, tt)

    def score_with_negatives(self, x: Tensor, positives: Tensor,
                             negatives: Tensor) -> tuple[Tensor, Tensor]:
        """Scores :obj:`(B,)` of positives :obj:`(B, 3)` and :obj:`(B, K)` of the negatives
        :obj:`(B, K, 3)` drawn for them: the scoring of a negative-sampling training step.

        When every negative corrupts one side and keeps the relation (what every mmgnn sampler
        draws), all :math:`K + 1` columns go through the decoder's
        :meth:`~mmgnn.nn.kge.base.KGEDecoder.score_corruptions` in one call (the positive as
        the tail "corruption" by itself), which may use a fused kernel; other negatives, and
        every negative of a subclass with its own :meth:`score_hrt`, through :meth:`score_hrt`.
        """
        h, r, t = positives.unbind(1)
        corrupt_head = one_sided_corruptions(positives, negatives)
        if corrupt_head is not None and type(self).score_hrt is LinkPredictor.score_hrt:
            nh, _, nt = negatives.unbind(-1)
            corrupt_head = torch.cat([corrupt_head.new_zeros(len(h), 1), corrupt_head], dim=1)
            candidates = torch.cat([t[:, None], torch.where(corrupt_head[:, 1:], nh, nt)], dim=1)
            scores = self.decoder.score_corruptions(x, h, r, t, corrupt_head, candidates)
        else:
            both = torch.cat([positives[:, None, :], negatives], dim=1)
            scores = self.score_hrt(x, both[..., 0], both[..., 1], both[..., 2])
        return scores[:, 0], scores[:, 1:]

    def score_t(self, x: Tensor, h: Tensor, r: Tensor) -> Tensor:
        """Scores :obj:`(B, N)` of every entity as the tail of ``(h, r, ?)``."""
        return self.decoder.score_t(x[h], r, x)

    def score_h(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Scores :obj:`(B, N)` of every entity as the head of ``(?, r, t)``."""
        if self.reciprocal:
            return self.decoder.score_t(x[t], r + self.num_relations, x)
        return self.decoder.score_h(r, x[t], x)

    def negative_sampling_loss(self, x: Tensor, positives: Tensor, negatives: Tensor,
                               loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """Training loss of a negative-sampling batch: positives :obj:`(B, 3)`, negatives
        :obj:`(B, K, 3)`, ``loss_fn`` the run's loss of positive and negative scores.

        The default is ``loss_fn(*score_with_negatives(x, positives, negatives))``; a model
        with auxiliary terms overrides it (:class:`~mmgnn.models.NativE`: its adversarial
        critic terms, whose generator then steps in :meth:`after_step`).
        """
        return loss_fn(*self.score_with_negatives(x, positives, negatives))

    def one_to_all_loss(self, x: Tensor, entity: Tensor, relation: Tensor, side: str,
                        target: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """Training loss of a batch of 1-to-all queries (KvsAll / 1vsAll regimes).

        ``side == "tail"`` asks ``(entity, relation, ?)``, ``"head"`` asks
        ``(?, relation, entity)``; ``target`` is what ``loss_fn`` takes with the :obj:`(B, N)`
        scores (multi-hot :obj:`(B, N)` or gold ids :obj:`(B,)`). The default is
        ``loss_fn(scores, target)`` on :meth:`score_t` / :meth:`score_h`; a model with several
        outputs or auxiliary terms overrides it (:class:`~mmgnn.models.IMF`: one loss per
        branch plus a contrastive term).
        """
        scores = self.score_t(x, entity, relation) if side == "tail" \
            else self.score_h(x, relation, entity)
        return loss_fn(scores, target)

    def regularization(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        """Factors of the batch for an N3 regulariser (see :meth:`KGEDecoder.factors`)."""
        return self.decoder.factors(x[h], r, x[t])

    @torch.no_grad()
    def after_step(self) -> None:
        """Hook run after every optimiser step (projections and constraints)."""
