"""Embedding table + decoder: the structure-only baseline."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mmgnn.models.base import LinkPredictor
from mmgnn.nn.kge.base import KGEDecoder
from mmgnn.sampling.batches import NegativeBatch


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
        sparse (bool): Sparse gradients for the entity table (negative-sampling training):
            a step's loss reads only the batch's rows (:meth:`loss`), so the gradient and the
            optimiser's update touch those rows only, not all :math:`N`. Train it with an
            optimiser that takes sparse gradients: ``row_adagrad``
            (:class:`~mmgnn.train.optim.RowAdagrad`, one accumulator per row), ``adagrad`` or
            ``sgd`` (each equal to its dense update: rows without gradient do not move). Adam
            moves every row by its momentum, so sparse Adam is another algorithm (lazy Adam)
            and is not offered. Entity constraints (TransE's unit norm) are then applied to
            the updated rows only. (default: :obj:`False`)
        **decoder_kwargs: Further arguments of a decoder built by name (``p_norm``,
            ``margin``, ...).
    """

    def __init__(self, num_entities: int, num_relations: int,
                 decoder: KGEDecoder | str = "transe", dim: int = 200,
                 reciprocal: bool = False, sparse: bool = False,
                 **decoder_kwargs: Any) -> None:
        if isinstance(decoder, str):
            super().__init__(num_entities, num_relations, decoder, reciprocal,
                             hidden_channels=dim, decoder_kwargs=decoder_kwargs)
        else:
            if decoder_kwargs:
                raise TypeError(f"KGEModel got decoder arguments {sorted(decoder_kwargs)} "
                                f"with a built {type(decoder).__name__}")
            super().__init__(num_entities, num_relations, decoder, reciprocal)
        self.sparse = sparse
        self.entity = torch.nn.Embedding(num_entities, self.decoder.entity_channels,
                                         sparse=sparse)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.decoder.reset_parameters()
        self.decoder.reset_entity_parameters(self.entity.weight)

    def encode(self) -> Tensor:
        return self.entity.weight

    def loss(self, x: Tensor, batch: Any, loss_fn: Any) -> Tensor:
        """The training loss (:meth:`LinkPredictor.loss`); with ``sparse``, computed on the
        rows of the entities the batch names, looked up through the sparse embedding, with the
        batch's ids renumbered into them (same scores, same loss)."""
        if not self.sparse:
            return super().loss(x, batch, loss_fn)
        if not isinstance(batch, NegativeBatch):
            raise ValueError(f"KGEModel(sparse=True) trains with negative sampling (scoring "
                             f"against all entities reads every row); got a "
                             f"{type(batch).__name__}")
        pos, neg = batch.positives, batch.negatives
        ids = torch.unique(torch.cat([pos[:, 0], pos[:, 2], neg[..., 0].flatten(),
                                      neg[..., 2].flatten()]))
        rows = self.entity(ids)

        def renumber(t: Tensor) -> Tensor:
            return torch.stack([torch.searchsorted(ids, t[..., 0].contiguous()), t[..., 1],
                                torch.searchsorted(ids, t[..., 2].contiguous())], dim=-1)

        return super().loss(rows, NegativeBatch(renumber(pos), renumber(neg)), loss_fn)

    def regularization(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        if self.sparse:  # through the embedding, so the gradient stays sparse
            return self.decoder.factors(self.entity(h), r, self.entity(t))
        return super().regularization(x, h, r, t)

    def param_groups(self) -> dict[str, dict[str, Any]]:
        groups = super().param_groups()
        if self.sparse:  # fused optimisers take no sparse gradients
            groups["model"] = {**groups["model"], "fused": False}
        return groups

    @torch.no_grad()
    def after_step(self) -> None:
        weight = self.entity.weight
        grad = weight.grad
        if self.sparse and grad is not None and grad.is_sparse:
            # Only the rows of the last gradient moved (with several ranks, the union of all
            # ranks' rows: the gradient was averaged before the step).
            idx = grad.coalesce().indices()[0]
            rows = weight.index_select(0, idx)
            self.decoder.constrain_entities_(rows)
            weight.index_copy_(0, idx, rows)
            return
        self.decoder.constrain_entities_(weight)
