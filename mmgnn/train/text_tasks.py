"""MKGformer's relation extraction and NER as tasks of the one
:class:`~mmgnn.train.Trainer`, and their evaluation (micro F1 without ``None`` for RE,
entity-level micro F1 for NER).

Data-parallel (:mod:`mmgnn.train.distributed`): each rank trains on its part of every
global batch of sentences (the losses are means over the batch's sentences, so :math:`W`
ranks take one process's step at the same global batch where dropout is off), dropout
from its own stream. Evaluation is shared out: rank :math:`r` predicts part :math:`r` of
:math:`W` of the evaluation batches (the batches one process forms, so each prediction is
the one it makes) and the predictions are gathered in order, so every rank computes one
process's precision / recall / F1 from the same predictions: the validation score that
selects ``best.pt`` and drives early stopping is the same on every rank (a decision all
ranks must take alike) even where kernels are not deterministic, and each rank scores
:math:`1/W` of the sentences.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mmgnn.eval.sequence import entity_prf, relation_prf
from mmgnn.train import distributed
from mmgnn.train.tasks import Task

if TYPE_CHECKING:
    from mmgnn.data.mnre import RelationExamples
    from mmgnn.data.twitter_ner import TaggedSentences
    from mmgnn.models.mkgformer_ner import MKGformerNER
    from mmgnn.models.mkgformer_re import MKGformerRE
    from mmgnn.train.loop import Trainer

Images = Mapping[str, Tensor]


def example_images(ids: Sequence[str], images: Images | None) -> list[Tensor | None]:
    """Each example's pixels from ``images`` (image id → pixels), :obj:`None` when missing."""
    return [images.get(i) if images else None for i in ids]


def _my_chunks(n: int, size: int) -> Iterator[Tensor]:
    """This rank's evaluation batches of ``n`` examples
    (:func:`~mmgnn.train.distributed.evaluation_span`; all of them without a process
    group)."""
    lo, hi = distributed.evaluation_span(n, size)
    if hi > lo:  # an empty arange still splits into one empty batch
        yield from torch.arange(lo, hi).split(size)


def _gathered(pred: list) -> list:
    """Every rank's predictions (of consecutive parts) in order: those of all examples."""
    return [p for part in distributed.gather_objects(pred) for p in part]


@torch.no_grad()
def evaluate_relations(model: MKGformerRE, data: RelationExamples, images: Images | None = None,
                       batch_size: int = 64) -> dict:
    """Micro precision / recall / F1 over the labels other than ``None`` (and accuracy) of
    ``model``'s argmax predictions on ``data`` (:func:`~mmgnn.eval.sequence.relation_prf`).
    In a process group the ranks share the batches out (see the module's docstring): every
    rank must call it, and every rank gets the figures of one process."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    pred: list[int] = []
    for idx in _my_chunks(len(data), batch_size):
        part = data.subset(idx)
        batch = model.batch(part.tokens, part.head, part.tail,
                            example_images(part.images, images)).to(device)
        pred += model(batch).argmax(-1).tolist()
    model.train(was)
    pred = _gathered(pred)
    negative = data.labels.index(data.negative) if data.negative in data.labels else None
    return {**relation_prf(data.y.tolist(), pred, negative), "examples": len(data)}


@torch.no_grad()
def evaluate_tagging(model: MKGformerNER, data: TaggedSentences, images: Images | None = None,
                     batch_size: int = 64) -> dict:
    """Entity-level micro precision / recall / F1 of ``model``'s Viterbi tags on ``data``
    (:func:`~mmgnn.eval.sequence.entity_prf`), every word of every sentence scored. In a
    process group the ranks share the batches out (see the module's docstring): every rank
    must call it, and every rank gets the figures of one process."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    names = data.tag_names
    gold, pred = data.tag_strings(), []
    for idx in _my_chunks(len(data), batch_size):
        part = data.subset(idx)
        batch = model.batch(part.tokens, example_images(part.images, images)).to(device)
        pred += [[names[t] for t in p]
                 for p in model.predict(batch, [len(w) for w in part.tokens])]
    model.train(was)
    pred = _gathered(pred)
    return {**entity_prf(gold, pred), "sentences": len(data)}


class TextTask(Task):
    r"""Fine-tuning a relation-extraction or NER model on labelled sentences.

    An epoch is one shuffled pass over ``train``, or, with ``examples``, that many
    examples drawn as successive shuffled passes (a budget in examples seen, equal across
    training-set sizes: a 1% training set is then seen many times, a large one once or
    less). After each epoch the validation split (if given) is scored; ``valid_f1`` selects
    ``best.pt``. The test split is never seen here. Evaluation is off the time budget.

    Args:
        train: The training examples.
        valid: Validation examples. (default: none, no selection)
        images (Mapping[str, Tensor], optional): Image id → pixels of the examples that
            have an image. (default: none)
        examples (int, optional): Examples per epoch. (default: the training set's size)
        eval_batch_size (int): Sentences per evaluation batch. (default: :obj:`64`)
    """

    name = ""
    evaluation_on_budget = False

    def __init__(self, train, valid=None, images: Images | None = None,
                 examples: int | None = None, eval_batch_size: int = 64) -> None:
        if not len(train):
            raise ValueError("no training examples")
        if examples is not None and examples < 1:
            raise ValueError(f"examples must be positive, got {examples}")
        self.train, self.valid, self.images = train, valid, images
        self.examples = int(examples) if examples is not None else len(train)
        self.eval_batch_size = eval_batch_size
        self.metric = "valid_f1" if valid is not None else None
        self.seen = 0  # training examples drawn so far (the examples/s figure)

    def num_batches(self, trainer: Trainer) -> int:
        return -(-self.examples // trainer.config.batch_size)

    def batches(self, trainer: Trainer) -> Iterator[Tensor]:
        n, parts, drawn = len(self.train), [], 0
        while drawn < self.examples:
            parts.append(torch.randperm(n, generator=trainer.generator))
            drawn += n
        for idx in torch.cat(parts)[:self.examples].split(trainer.config.batch_size):
            self.seen += len(idx)
            yield idx

    def evaluate(self, trainer: Trainer, last: bool) -> dict:
        if self.valid is None:
            return {}
        res = self.score(trainer.model, self.valid)
        return {"valid_f1": res["f1"], "valid": res}

    def describe(self, record: dict) -> str:
        if "valid" not in record:
            return ""
        v = record["valid"]
        return f"  valid P {v['precision']:.4f}  R {v['recall']:.4f}  F1 {v['f1']:.4f}"

    def score(self, model, data) -> dict:
        raise NotImplementedError


class RelationExtractionTask(TextTask):
    """:class:`TextTask` for an :class:`~mmgnn.models.MKGformerRE`: cross-entropy of each
    batch; micro F1 without ``None`` on validation."""

    name = "re"

    def loss(self, trainer: Trainer, idx: Tensor) -> tuple[dict[str, Tensor], int]:
        part = self.train.subset(idx)
        model = trainer.model
        batch = model.batch(part.tokens, part.head, part.tail,
                            example_images(part.images, self.images)).to(trainer.device)
        return {"loss": model.loss(batch, part.y.to(trainer.device))}, len(idx)

    def score(self, model, data) -> dict:
        return evaluate_relations(model, data, self.images, self.eval_batch_size)


class TaggingTask(TextTask):
    """:class:`TextTask` for an :class:`~mmgnn.models.MKGformerNER`: mean negative CRF
    log-likelihood of each batch; entity-level micro F1 on validation."""

    name = "ner"

    def loss(self, trainer: Trainer, idx: Tensor) -> tuple[dict[str, Tensor], int]:
        part = self.train.subset(idx)
        model = trainer.model
        batch = model.batch(part.tokens, example_images(part.images, self.images)
                            ).to(trainer.device)
        return {"loss": model.loss(batch, part.tags)}, len(idx)

    def score(self, model, data) -> dict:
        return evaluate_tagging(model, data, self.images, self.eval_batch_size)
