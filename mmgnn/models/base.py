"""The contract between link-prediction models and mmgnn's training loop and evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from mmgnn.data.kg import inverse_relation, relation_count
from mmgnn.nn.kge import build_decoder
from mmgnn.nn.kge.base import KGEDecoder, gather_pair
from mmgnn.sampling.batches import NegativeBatch, QueryBatch


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
    r"""Base class of every link-prediction model in mmgnn (PyG's ``KGEModel`` shape).

    Training (:mod:`mmgnn.train`) and evaluation (:mod:`mmgnn.eval`) use only this interface, so
    a GNN encoder, a multimodal fusion model and a plain embedding table are trained and ranked
    the same way:

    1. :meth:`encode` computes the entity representations :math:`X` (once per evaluation, once
       per training step);
    2. :meth:`score_triples`, :meth:`score_tails` and :meth:`score_heads` score **entity ids**
       against :math:`X` with the model's decoder (which scores *representations*:
       :meth:`~mmgnn.nn.kge.base.KGEDecoder.score_hrt`, ``score_t``, ``score_h``);
    3. :meth:`loss` is the training loss of one batch (a :class:`~mmgnn.sampling.NegativeBatch`
       or a :class:`~mmgnn.sampling.QueryBatch`); :meth:`forward` ``(h, r, t)`` is
       :meth:`score_triples` on a fresh :meth:`encode`.

    With ``reciprocal=True`` the decoder holds :math:`2R` relations (:attr:`decoder_relations`,
    the one place mmgnn models double them) and head queries :math:`(?, r, t)` are answered as
    tail queries :math:`(t, r + R, ?)` (Lacroix et al., 2018).

    What a model supports is said by class attributes, read by the trainer and the CLI:

    - :attr:`regimes`: training regimes it supports, its default first;
    - :attr:`needs_reciprocal`: it only works with ``reciprocal=True``;
    - :attr:`needs_modalities` / :attr:`default_modalities`: it reads entity features, and
      which ones by default;
    - :attr:`fused_corruptions`: :meth:`score_with_negatives` may score all corruptions with
      the decoder's fused :meth:`~mmgnn.nn.kge.base.KGEDecoder.score_corruptions` on the rows
      of :math:`X`. A subclass that defines its own :meth:`score_triples` gets
      :obj:`False` unless it says otherwise;
    - :attr:`train_defaults`: training settings of the model's paper (e.g.
      ``{"regime": "kvsall", "label_smoothing": 0.1}``), applied under the user's own.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R` of the dataset (without inverses).
        decoder (KGEDecoder or str): The scoring function, holding :attr:`decoder_relations`
            relations; or the name of one in :data:`mmgnn.nn.kge.DECODERS`, then built here
            with :attr:`decoder_relations` relations, ``hidden_channels`` and
            ``decoder_kwargs``. A model with its own :meth:`score_triples` may pass any module
            with ``num_relations`` and ``score_t`` (e.g.
            :class:`~mmgnn.nn.kge.MaskedEntityHead`).
        reciprocal (bool): Answer head queries through inverse relations. (default: :obj:`False`)
        hidden_channels (int, optional): Width of a decoder built by name (complex decoders:
            complex dimensions).
        decoder_kwargs (dict, optional): Further arguments of a decoder built by name
            (``p_norm``, ``margin``, ...).
    """

    #: Training regimes the model supports; the first is its default.
    regimes: ClassVar[tuple[str, ...]] = ("negative", "kvsall", "1vsall")
    #: The model only works with ``reciprocal=True``.
    needs_reciprocal: ClassVar[bool] = False
    #: The model reads entity features from :attr:`modalities`.
    needs_modalities: ClassVar[bool] = False
    #: The modalities the model reads when none are named.
    default_modalities: ClassVar[tuple[str, ...]] = ()
    #: :meth:`score_with_negatives` may use the decoder's fused corruption scoring.
    fused_corruptions: ClassVar[bool] = True
    #: Training settings of the model's paper (TrainConfig field names).
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A model that scores triples its own way must not have its negatives scored as rows
        # of X by the decoder, unless it declares that the two agree.
        if "score_triples" in cls.__dict__ and "fused_corruptions" not in cls.__dict__:
            cls.fused_corruptions = False

    def __init__(self, num_entities: int, num_relations: int,
                 decoder: KGEDecoder | torch.nn.Module | str, reciprocal: bool = False, *,
                 hidden_channels: int | None = None,
                 decoder_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.num_entities = num_entities
        self.num_relations = num_relations
        self.reciprocal = reciprocal
        if isinstance(decoder, str):
            if hidden_channels is None:
                raise ValueError(f"{type(self).__name__}: building decoder {decoder!r} by name "
                                 f"needs hidden_channels")
            decoder = build_decoder(decoder, self.decoder_relations, hidden_channels,
                                    **(decoder_kwargs or {}))
        elif hidden_channels is not None or decoder_kwargs:
            raise ValueError(f"{type(self).__name__}: hidden_channels and decoder_kwargs apply "
                             f"to a decoder built by name, not to a given "
                             f"{type(decoder).__name__}")
        expected = self.decoder_relations
        if decoder.num_relations != expected:
            inverses = " and their inverses" if reciprocal else ""
            raise ValueError(
                f"{type(decoder).__name__} holds {decoder.num_relations} relations, expected "
                f"{expected} ({num_relations} relations{inverses})"
            )
        self.decoder = decoder

    @property
    def decoder_relations(self) -> int:
        """Relations the decoder holds: :math:`2R` with ``reciprocal``, else :math:`R`."""
        return relation_count(self.num_relations, self.reciprocal)

    # ---------------------------------------------------------------- encoding
    def encode(self) -> Tensor:
        """Entity representations :math:`(N, F)` for the decoder."""
        raise NotImplementedError

    def forward(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Scores of the triples ``(h, r, t)`` (entity and relation ids, any equal shapes):
        :meth:`score_triples` on a fresh :meth:`encode`."""
        return self.score_triples(self.encode(), h, r, t)

    # ----------------------------------------------------------------- scoring
    def score_triples(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Scores of the triples with entity ids ``h``, ``t`` and relation ids ``r`` (any equal
        shapes, e.g. :obj:`(B,)` or :obj:`(B, K)`) against the representations ``x``."""
        hh, tt = gather_pair(x, h, t)
        return self.decoder.score_hrt(hh, r, tt)

    def score_tails(self, x: Tensor, h: Tensor, r: Tensor) -> Tensor:
        """Scores :obj:`(B, N)` of every entity as the tail of ``(h, r, ?)``."""
        return self.decoder.score_t(x[h], r, x)

    def score_heads(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Scores :obj:`(B, N)` of every entity as the head of ``(?, r, t)`` (with
        ``reciprocal``: the tail query ``(t, r + R, ?)``)."""
        if self.reciprocal:
            return self.decoder.score_t(x[t], inverse_relation(r, self.num_relations), x)
        return self.decoder.score_h(r, x[t], x)

    def score_with_negatives(self, x: Tensor, positives: Tensor,
                             negatives: Tensor) -> tuple[Tensor, Tensor]:
        """Scores :obj:`(B,)` of positives :obj:`(B, 3)` and :obj:`(B, K)` of the negatives
        :obj:`(B, K, 3)` drawn for them: the scoring of a negative-sampling training step.

        With :attr:`fused_corruptions`, when every negative corrupts one side and keeps the
        relation (what every mmgnn sampler draws), all :math:`K + 1` columns go through the
        decoder's :meth:`~mmgnn.nn.kge.base.KGEDecoder.score_corruptions` in one call (the
        positive as the tail "corruption" by itself), which may use a fused kernel; otherwise
        through :meth:`score_triples`.
        """
        h, r, t = positives.unbind(1)
        corrupt_head = one_sided_corruptions(positives, negatives) \
            if self.fused_corruptions else None
        if corrupt_head is not None:
            nh, _, nt = negatives.unbind(-1)
            corrupt_head = torch.cat([corrupt_head.new_zeros(len(h), 1), corrupt_head], dim=1)
            candidates = torch.cat([t[:, None], torch.where(corrupt_head[:, 1:], nh, nt)], dim=1)
            scores = self.decoder.score_corruptions(x, h, r, t, corrupt_head, candidates)
        else:
            both = torch.cat([positives[:, None, :], negatives], dim=1)
            scores = self.score_triples(x, both[..., 0], both[..., 1], both[..., 2])
        return scores[:, 0], scores[:, 1:]

    # ---------------------------------------------------------------- training
    def loss(self, x: Tensor, batch: NegativeBatch | QueryBatch,
             loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        """Training loss of one batch, ``loss_fn`` the run's loss (see :mod:`mmgnn.nn.losses`).

        - :class:`~mmgnn.sampling.NegativeBatch` (negative sampling):
          ``loss_fn(*score_with_negatives(x, positives, negatives))``;
        - :class:`~mmgnn.sampling.QueryBatch` (KvsAll / 1vsAll): ``loss_fn(scores, target)``
          with the :obj:`(B, N)` scores of :meth:`score_tails` (``side == "tail"``) or
          :meth:`score_heads`, and the batch's :meth:`~mmgnn.sampling.QueryBatch.target` in
          the form ``loss_fn`` takes (gold ids for a loss with ``takes_gold_ids``).

        A model with several outputs or auxiliary terms overrides it
        (:class:`~mmgnn.models.IMF`: one loss per branch plus a contrastive term;
        :class:`~mmgnn.models.NativE`: its adversarial critic terms).
        """
        if isinstance(batch, NegativeBatch):
            return loss_fn(*self.score_with_negatives(x, batch.positives, batch.negatives))
        if isinstance(batch, QueryBatch):
            target = batch.target(self.num_entities,
                                  gold_ids=getattr(loss_fn, "takes_gold_ids", False))
            return loss_fn(self.score_queries(x, batch), target)
        raise TypeError(f"{type(self).__name__}.loss takes a NegativeBatch or a QueryBatch, "
                        f"got {type(batch).__name__}")

    def score_queries(self, x: Tensor, batch: QueryBatch) -> Tensor:
        """Scores :obj:`(B, N)` of a batch of 1-to-all queries: :meth:`score_tails` of
        ``(entity, relation, ?)`` or :meth:`score_heads` of ``(?, relation, entity)``."""
        if batch.side == "tail":
            return self.score_tails(x, batch.entity, batch.relation)
        return self.score_heads(x, batch.relation, batch.entity)

    def regularization(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        """Factors of the batch for an N3 regulariser (see :meth:`KGEDecoder.factors`)."""
        return self.decoder.factors(x[h], r, x[t])

    @torch.no_grad()
    def after_step(self) -> None:
        """Hook run after every optimiser step (projections and constraints)."""

    def param_groups(self) -> dict[str, dict[str, Any]]:
        """Optimiser groups by name, for the trainer (a model holds no optimiser): the
        default is one group ``"model"`` of every trainable parameter. A model with a second
        optimiser returns another named group with its own settings (``"lr"``, ...), and
        :meth:`extra_losses` the losses that step it."""
        return {"model": {"params": [p for p in self.parameters() if p.requires_grad]}}

    def extra_losses(self) -> dict[str, Tensor]:
        """Losses of the extra optimiser groups of :meth:`param_groups`, by group name; the
        trainer calls it right after the main step and steps group ``name`` on each. Default:
        none."""
        return {}

    # -------------------------------------------------------------- modalities
    @property
    def modality_names(self) -> list[str]:
        """The modalities the model reads (those of its store ``self.modalities``; none
        without one)."""
        store = getattr(self, "modalities", None)
        return list(store.names) if store is not None else []

    def set_modality(self, name: str, x: Tensor, mask: Tensor | None = None,
                     lengths: Tensor | None = None) -> None:
        """Replaces the features :obj:`(N, ...)` of modality ``name`` (with presence ``mask``
        and token ``lengths``) in the model's :class:`~mmgnn.modalities.ModalityStore`
        (``self.modalities``)."""
        self._modality_store().set(name, x, mask, lengths)

    def modality(self, name: str) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(x, mask, lengths)`` of modality ``name`` in the model's store."""
        return self._modality_store().get(name)

    def _modality_store(self) -> Any:
        store = getattr(self, "modalities", None)
        if store is None:
            raise AttributeError(f"{type(self).__name__} reads no modalities (no "
                                 f"self.modalities store)")
        return store

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.num_entities}, decoder={self.decoder!r}"
                f"{', reciprocal=True' if self.reciprocal else ''})")
