"""K3M's training tasks on the one :class:`~mmgnn.train.Trainer`: pretraining on product
items and fine-tuning a downstream head (the optimisation of ``train_concap_struc.py``:
AdamW without decay on biases and LayerNorms, a slower pretrained text encoder, linear
warmup and decay from :func:`transformers.get_scheduler`; defaults
:data:`~mmgnn.train.config.K3M_PRETRAIN` / :data:`~mmgnn.train.config.K3M_FINETUNE`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from mmgnn.models.k3m.heads import classification_accuracy
from mmgnn.models.k3m.pretraining import save_encoder
from mmgnn.train.config import K3M_FINETUNE, K3M_PRETRAIN, TrainConfig
from mmgnn.train.loop import Trainer
from mmgnn.train.tasks import Task

if TYPE_CHECKING:
    from mmgnn.models.k3m.heads import ItemClassifier
    from mmgnn.models.k3m.pretraining import K3MPretraining

ENCODER = "encoder.pt"


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
        return trainer.model(batch, trainer.local_generator), len(batch)


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
        return {"train_accuracy": classification_accuracy(model, self.items, self.y),
                "test_accuracy": classification_accuracy(model, self.test_items, self.y)}


def pretrain(objective: K3MPretraining, items: Tensor, config: TrainConfig | None = None, *,
             out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
             pretrained: nn.Module | None = None, encoder_lr_scale: float = 0.1,
             extra: dict | None = None) -> Trainer:
    """Pretrains with a :class:`~mmgnn.models.k3m.K3MPretraining` objective on ``items``
    (``config``: default :data:`~mmgnn.train.config.K3M_PRETRAIN`); with ``out_dir``, also
    writes ``encoder.pt`` (the K3M weights and config) for fine-tuning."""
    trainer = Trainer(objective, PretrainTask(items, pretrained, encoder_lr_scale),
                      config or TrainConfig(**K3M_PRETRAIN), out_dir, progress,
                      {**(extra or {}), "skipped": objective.skipped})
    trainer.fit(resume=resume)
    if out_dir is not None:
        save_encoder(Path(out_dir) / ENCODER, objective.model)
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
