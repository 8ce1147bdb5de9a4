"""K3M's training tasks on the one :class:`~mmgnn.train.Trainer`: pretraining on product
items and fine-tuning a downstream head (the optimisation of ``train_concap_struc.py``:
AdamW without decay on biases and LayerNorms, a slower pretrained text encoder, linear
warmup and decay from :func:`transformers.get_scheduler`; defaults
:data:`~mmgnn.train.config.K3M_PRETRAIN` / :data:`~mmgnn.train.config.K3M_FINETUNE`).

Data-parallel (:mod:`mmgnn.train.distributed`): each rank takes its part of every global
batch of items, masks drawn from its ``local_generator``, dropout from its own global stream;
``encoder.pt`` is written by rank 0 once training ended. Fine-tuning's cross-entropy is a
mean over items, so :math:`W` ranks take the step of one process at the same global batch
(without dropout). Pretraining's terms are not: MLM and PV average over the masked tokens
of a rank's part, and the LP term's negative of an item is the next item *of that part*
(``roll`` / ``item + 1``), so :math:`W` ranks optimise the data-parallel form of the
objective, not one process's, as the released ``train_concap_struc.py`` does under
``--local_rank`` (the global ``train_batch_size`` divided among the ranks, lines 340-342;
apex DDP, lines 621-623). Accuracies are
computed sharded (:func:`accuracy`): equal to one process's, the same on every rank.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from mmgnn.models.k3m.heads import classification_accuracy
from mmgnn.models.k3m.pretraining import save_encoder
from mmgnn.train import distributed
from mmgnn.train.config import K3M_FINETUNE, K3M_PRETRAIN, TrainConfig
from mmgnn.train.loop import Trainer
from mmgnn.train.tasks import Task

if TYPE_CHECKING:
    from mmgnn.models.k3m.heads import ItemClassifier
    from mmgnn.models.k3m.pretraining import K3MPretraining

ENCODER = "encoder.pt"
#: Items per evaluation batch (that of :func:`~mmgnn.models.k3m.classification_accuracy`).
EVAL_BATCH = 64


def accuracy(classifier: nn.Module, items: Tensor, y: Tensor,
             batch_size: int = EVAL_BATCH) -> float:
    """:func:`~mmgnn.models.k3m.classification_accuracy` of ``classifier`` on ``items``,
    shared out among the ranks of a process group: rank :math:`r` scores part :math:`r` of
    :math:`W` of the evaluation batches (the batches of one process, so every prediction is
    the one it makes) and the correct counts are summed: exactly one process's accuracy, on
    every rank. Every rank must call it. With ``eval_noise`` (seeded Gumbel draws that run
    on from batch to batch) each rank scores every item and rank 0's figure is taken."""
    world = distributed.world_size()
    if world == 1:
        return classification_accuracy(classifier, items, y, batch_size)
    model = getattr(classifier, "model", None)
    if getattr(getattr(model, "config", None), "eval_noise", False):
        return distributed.gather_objects(
            classification_accuracy(classifier, items, y, batch_size))[0]
    lo, hi = distributed.evaluation_span(len(items), batch_size)
    correct = round(classification_accuracy(classifier, items[lo:hi], y, batch_size)
                    * (hi - lo)) if hi > lo else 0
    return distributed.all_reduce([correct])[0] / max(1, len(items))


class ItemTask(Task):
    """Shuffled batches of item ids; the optimiser's groups split by (slow pretrained text
    encoder, no decay on biases / norms). Evaluation is off the time budget.

    Args:
        items (Tensor): Item ids to train on.
        pretrained (nn.Module, optional): A text encoder loaded from a pretrained
            checkpoint; its parameters train at ``encoder_lr_scale`` times the learning rate.
        encoder_lr_scale (float): (default: :obj:`0.1`, the released code)
    """

    evaluation_on_budget = False

    def __init__(self, items: Tensor, pretrained: nn.Module | None = None,
                 encoder_lr_scale: float = 0.1) -> None:
        self.items, self.pretrained, self.encoder_lr_scale = items, pretrained, encoder_lr_scale

    def param_groups(self, trainer: Trainer) -> dict[str, dict]:
        cfg = trainer.config
        slow = {id(p) for p in self.pretrained.parameters()} if self.pretrained is not None \
            else set()
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in trainer.model.named_parameters():
            if p.requires_grad:
                no_decay = name.endswith("bias") or "norm" in name.lower()
                groups.setdefault((id(p) in slow, no_decay), []).append(p)
        params = [{"params": ps,
                   "lr": cfg.lr * (self.encoder_lr_scale if is_slow else 1.0),
                   "weight_decay": 0.0 if no_decay else cfg.weight_decay}
                  for (is_slow, no_decay), ps in groups.items()]
        # The single-tensor update, as the released code: runs repeat the earlier numbers.
        return {"model": {"params": params, "fused": False}}

    def num_batches(self, trainer: Trainer) -> int:
        return -(-len(self.items) // trainer.config.batch_size)

    def batches(self, trainer: Trainer) -> Iterator[Tensor]:
        perm = self.items[torch.randperm(len(self.items), generator=trainer.generator)]
        yield from perm.split(trainer.config.batch_size)


class PretrainTask(ItemTask):
    """Pretraining: the loss terms of a :class:`~mmgnn.models.k3m.K3MPretraining` objective
    (the trainer's model) on each batch of items, masking drawn from the trainer's
    generator."""

    name = "pretrain"

    def loss(self, trainer: Trainer, batch: Tensor) -> tuple[dict[str, Tensor], int]:
        losses = trainer.model(batch, trainer.local_generator)
        if trainer.world > 1 and "lp" not in losses and trainer.model.model.aggregator \
                is not None:  # a rank's part of one item has no LP pair: every rank logs lp
            losses["lp"] = losses["loss"].new_zeros(())
        return losses, len(batch)


class ClassificationTask(ItemTask):
    """Fine-tuning an :class:`~mmgnn.models.k3m.ItemClassifier` (the trainer's model) with
    cross-entropy on ``items``; after every epoch, train and test accuracy.

    Args:
        y (Tensor): Category of every item.
        items (Tensor): Training item ids.
        test_items (Tensor): Test item ids.
        pretrained, encoder_lr_scale: As :class:`ItemTask`.
    """

    name = "finetune"

    def __init__(self, y: Tensor, items: Tensor, test_items: Tensor,
                 pretrained: nn.Module | None = None, encoder_lr_scale: float = 0.1) -> None:
        super().__init__(items, pretrained, encoder_lr_scale)
        self.y, self.test_items = y.cpu(), test_items

    def loss(self, trainer: Trainer, batch: Tensor) -> tuple[dict[str, Tensor], int]:
        logits = trainer.model(batch)
        return {"loss": nn.functional.cross_entropy(logits, self.y[batch].to(logits.device))}, \
            len(batch)

    def evaluate(self, trainer: Trainer, last: bool) -> dict:
        model = trainer.model
        return {"train_accuracy": accuracy(model, self.items, self.y),
                "test_accuracy": accuracy(model, self.test_items, self.y)}


def pretrain(objective: K3MPretraining, items: Tensor, config: TrainConfig | None = None, *,
             out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
             pretrained: nn.Module | None = None, encoder_lr_scale: float = 0.1,
             extra: dict | None = None) -> Trainer:
    """Pretrains with a :class:`~mmgnn.models.k3m.K3MPretraining` objective on ``items``
    (``config``: default :data:`~mmgnn.train.config.K3M_PRETRAIN`); with ``out_dir``, also
    writes ``encoder.pt`` (the K3M weights and config) for fine-tuning (rank 0; every rank
    returns once it is written)."""
    trainer = Trainer(objective, PretrainTask(items, pretrained, encoder_lr_scale),
                      config or TrainConfig(**K3M_PRETRAIN), out_dir, progress,
                      {**(extra or {}), "skipped": objective.skipped})
    trainer.fit(resume=resume)
    if out_dir is not None and distributed.is_main():
        save_encoder(Path(out_dir) / ENCODER, objective.model)
    distributed.barrier()  # a rank that fine-tunes next reads it
    return trainer


def finetune_classification(classifier: ItemClassifier, y: Tensor, train_items: Tensor,
                            test_items: Tensor, config: TrainConfig | None = None, *,
                            out_dir: str | Path | None = None, resume: bool = False,
                            progress: bool = True, pretrained: nn.Module | None = None,
                            encoder_lr_scale: float = 0.1, extra: dict | None = None
                            ) -> Trainer:
    """Fine-tunes an :class:`~mmgnn.models.k3m.ItemClassifier` with cross-entropy on
    ``train_items`` (``config``: default :data:`~mmgnn.train.config.K3M_FINETUNE`); records
    train and test accuracy after every epoch."""
    trainer = Trainer(classifier,
                      ClassificationTask(y, train_items, test_items, pretrained,
                                         encoder_lr_scale),
                      config or TrainConfig(**K3M_FINETUNE), out_dir, progress, extra)
    trainer.fit(resume=resume)
    return trainer
