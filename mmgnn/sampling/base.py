"""The negative-sampler interface every training loop in mmgnn uses."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import Tensor

from mmgnn.data.filter import FilterIndex
from mmgnn.sampling.registry import negative_filter_index

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG


class TripleScorer(Protocol):
    """What a learned sampler needs of a model: scores of triples of entity ids against the
    representations ``x`` (:meth:`~mmgnn.models.LinkPredictor.score_triples`)."""

    def score_triples(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> Tensor: ...


class NegativeSampler:
    r"""Draws :math:`K` corrupted triples per positive triple.

    Subclasses decide, per negative, which side to corrupt (:meth:`corrupt_head_probability`)
    and which entity to put there (:meth:`draw_entities`, uniform by default). With a
    :class:`~mmgnn.data.filter.FilterIndex`, negatives that are known true triples are redrawn
    (up to ``max_redraws`` rounds; any left are counted and reported, never hidden).

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_negatives (int): Corruptions per positive :math:`K`. (default: :obj:`1`)
        filter_index (FilterIndex, optional): Known true triples to avoid. (default: none)
        max_redraws (int): Rounds of redrawing filtered negatives. (default: :obj:`10`)

    Shapes:
        - **input:** positives :math:`(B, 3)` in (head, relation, tail) order.
        - **output:** negatives :math:`(B, K, 3)`.
    """

    #: Learned samplers draw from the model's representations with :meth:`score_batch`.
    learned: ClassVar[bool] = False

    def __init__(self, num_entities: int, num_negatives: int = 1,
                 filter_index: FilterIndex | None = None, max_redraws: int = 10) -> None:
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        self.num_entities = num_entities
        self.num_negatives = num_negatives
        self.filter_index = filter_index
        self.max_redraws = max_redraws
        self.unfiltered_left = 0  # known-true negatives left after all redraws, for reporting

    @classmethod
    def from_kg(cls, kg: MultiModalKG, num_negatives: int, negative_filter: str = "train",
                **sampler_args: Any) -> NegativeSampler:
        """The sampler for ``kg``'s entities, filtered by ``negative_filter`` (see
        :func:`~mmgnn.sampling.registry.negative_filter_index`): the builder of the
        sampler registry (:data:`~mmgnn.sampling.SAMPLERS`)."""
        return cls(kg.num_entities, num_negatives, negative_filter_index(kg, negative_filter),
                   **sampler_args)

    def corrupt_head_probability(self, relations: Tensor) -> Tensor:
        """Probability :obj:`(B,)` that a negative of a triple with relation ``r`` corrupts the
        head rather than the tail."""
        raise NotImplementedError

    def corrupt_head_mask(self, relations: Tensor, num_negatives: int,
                          generator: torch.Generator | None) -> Tensor:
        """Which negatives :obj:`(B, K)` corrupt the head: drawn with
        :meth:`corrupt_head_probability` by default."""
        p_head = self.corrupt_head_probability(relations)
        return torch.rand((len(relations), num_negatives), generator=generator,
                          device=relations.device) < p_head[:, None]

    def draw_entities(self, positives: Tensor, corrupt_head: Tensor,
                      generator: torch.Generator | None) -> Tensor:
        """Replacement entities :obj:`(B, K)` (uniform over all entities by default)."""
        return torch.randint(self.num_entities, corrupt_head.shape, generator=generator,
                             device=positives.device)

    def sample(self, positives: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Negatives :obj:`(B, K, 3)` for the positives :obj:`(B, 3)`."""
        k = self.num_negatives
        corrupt_head = self.corrupt_head_mask(positives[:, 1], k, generator)
        negatives = positives[:, None, :].repeat(1, k, 1)
        self._fill(negatives, positives, corrupt_head, torch.ones_like(corrupt_head), generator)
        if self.filter_index is not None:
            for _ in range(self.max_redraws):
                known = self.filter_index.contains(negatives)
                if not known.any():
                    break
                self._fill(negatives, positives, corrupt_head, known, generator)
            else:
                left = int(self.filter_index.contains(negatives).sum())
                if left:
                    self.unfiltered_left += left
                    warnings.warn(
                        f"{left} negatives are still known true triples after "
                        f"{self.max_redraws} redraws (relation with almost every entity as "
                        f"answer?); they are kept", stacklevel=2)
        return negatives

    def score_batch(self, model: TripleScorer, x: Tensor, positives: Tensor,
                    generator: torch.Generator | None = None
                    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """A **learned** sampler's training step: positive scores :obj:`(B,)`, scores of the
        negatives it draws :obj:`(B, K)` and its own loss term (or :obj:`None`).

        A fixed sampler (:attr:`learned` false) draws entity ids with :meth:`sample`, and the
        training loop scores them with the model
        (:meth:`~mmgnn.models.base.LinkPredictor.loss` of a
        :class:`~mmgnn.sampling.NegativeBatch`). A learned sampler
        is also a :class:`torch.nn.Module` (:attr:`learned` true; e.g.
        :class:`~mmgnn.sampling.mmrns.MMRNSSampler`): it draws from the model's current
        representations ``x`` and the batch's relations, scores its draws (so gradients can
        reach it), and adds its loss term; the trainer optimises and checkpoints its
        parameters and buffers with the model's.
        """
        raise NotImplementedError(f"{type(self).__name__} is a fixed sampler: draw entity ids "
                                  f"with sample() and score them with the model")

    def _fill(self, negatives: Tensor, positives: Tensor, corrupt_head: Tensor, where: Tensor,
              generator: torch.Generator | None) -> None:
        entities = self.draw_entities(positives, corrupt_head, generator)
        heads = torch.where(corrupt_head & where, entities, negatives[..., 0])
        tails = torch.where(~corrupt_head & where, entities, negatives[..., 2])
        negatives[..., 0] = heads
        negatives[..., 2] = tails

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_entities={self.num_entities}, "
                f"num_negatives={self.num_negatives}, filtered={self.filter_index is not None})")
