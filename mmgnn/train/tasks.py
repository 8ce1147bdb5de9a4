"""What one training run is for: the task hooks of the :class:`~mmgnn.train.Trainer`.

A :class:`Task` says what a batch is, what its loss is and how an epoch is judged; the
trainer owns everything else (clock, budget, finite-loss guard, optimisers and schedule,
checkpoints, resume, history, plot, callbacks, early stopping). :class:`LinkPredictionTask`
trains a :class:`~mmgnn.models.LinkPredictor`; K3M's pretraining and fine-tuning tasks live in
:mod:`mmgnn.train.k3m`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mmgnn.eval.ranking import RankingResult, evaluate
from mmgnn.nn.losses import build_loss, n3_penalty
from mmgnn.sampling import NegativeBatch, NegativeSampler, OneToAllBatches, build_sampler

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG
    from mmgnn.train.loop import Trainer


class Task:
    """The task-specific hooks of a run; subclasses override what they need.

    Attributes:
        name (str): Prefix of progress bars and log lines (``""``, ``"pretrain"``, ...).
        metric (str, optional): Record key whose best value selects ``best.pt`` and drives
            early stopping (higher is better); :obj:`None`: no selection.
        evaluation_on_budget (bool): Whether :meth:`evaluate` counts towards the time budget.
    """

    name: str = ""
    metric: str | None = None
    evaluation_on_budget: bool = True

    def setup(self, trainer: Trainer) -> None:
        """Called once the trainer holds the model on its device (build samplers here)."""

    def param_groups(self, trainer: Trainer) -> dict[str, dict]:
        """The optimisers' parameter groups (see
        :func:`~mmgnn.train.loop.build_optimizers`): the model's ``param_groups()``, or
        one ``"model"`` group of its trainable parameters for a module without that hook."""
        model = trainer.model
        if hasattr(model, "param_groups"):
            return model.param_groups()
        return {"model": {"params": [p for p in model.parameters() if p.requires_grad]}}

    def modules(self, trainer: Trainer) -> list[torch.nn.Module]:
        """The modules whose parameters the optimisers step (the model; a learned sampler):
        what data-parallel training wraps (:mod:`mmgnn.train.distributed`)."""
        return [trainer.model]

    def num_batches(self, trainer: Trainer) -> int:
        """Steps per epoch (the progress bar's length and the schedule's horizon)."""
        raise NotImplementedError

    def batches(self, trainer: Trainer) -> Iterator[Any]:
        """The (global) batches of one epoch, ordered by ``trainer.generator``, which every
        rank of a data-parallel run advances alike: draw nothing else from it."""
        raise NotImplementedError

    def loss(self, trainer: Trainer, batch: Any) -> tuple[dict[str, Tensor], int]:
        """``({"loss": total, other terms to log...}, examples in the batch)``; random draws
        of the loss (negatives, masks) come from ``trainer.local_generator`` (the rank's
        own; ``trainer.generator`` in one process). With several ranks ``batch`` is this
        rank's part of the global batch."""
        raise NotImplementedError

    def evaluate(self, trainer: Trainer, last: bool) -> dict:
        """Entries to add to the epoch's record (``last``: the run ends after this epoch)."""
        return {}

    def describe(self, record: dict) -> str:
        """Extra text of the epoch's log line."""
        return ""

    def state_dict(self) -> dict:
        """Task state saved in the checkpoint (a learned sampler's)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restores :meth:`state_dict` from a checkpoint."""


class LinkPredictionTask(Task):
    r"""Link prediction on a :class:`~mmgnn.data.MultiModalKG`.

    Each epoch shuffles the training triples (``negative`` regime: ``K`` corruptions each
    from the sampler, or a learned sampler's draws) or the 1-to-all queries (``kvsall`` /
    ``1vsall``); the loss is the model's training loss of the batch plus
    ``n3`` :math:`\times` N3. Every ``eval_every`` epochs (and after the last) it ranks the
    **validation** split (filtered, both sides); ``valid_mrr`` selects ``best.pt`` and drives
    early stopping. The test split is never looked at.

    Args:
        kg (MultiModalKG): The graph.
    """

    metric = "valid_mrr"

    def __init__(self, kg: MultiModalKG) -> None:
        self.kg = kg
        self.sampler: NegativeSampler | None = None

    def setup(self, trainer: Trainer) -> None:
        cfg, kg, model = trainer.config, self.kg, trainer.model
        self.train_triples = kg.train.to(trainer.device)
        # The LOSSES registry's loss, with those of the run's settings it takes.
        self.loss_fn = build_loss(cfg.loss, margin=cfg.margin,
                                  temperature=cfg.adversarial_temperature,
                                  label_smoothing=cfg.label_smoothing,
                                  form=cfg.label_smoothing_form)
        if cfg.regime == "negative":
            args = dict(cfg.sampler_args)
            if cfg.sampler == "mmrns":
                args.setdefault("adversarial_temperature", cfg.adversarial_temperature)
            self.sampler = build_sampler(cfg.sampler, kg, cfg.num_negatives,
                                         cfg.negative_filter, model=model, **args)
            if isinstance(self.sampler, torch.nn.Module):
                self.sampler.to(trainer.device)
        else:
            self.queries = OneToAllBatches(kg.train, kg.num_entities, kg.num_relations,
                                           reciprocal=model.reciprocal, mode=cfg.regime)

    def modules(self, trainer: Trainer) -> list[torch.nn.Module]:
        return [trainer.model] + ([self.sampler] if isinstance(self.sampler, torch.nn.Module)
                                  else [])

    def param_groups(self, trainer: Trainer) -> dict[str, dict]:
        """The model's groups; a learned sampler's parameters join the main optimiser as a
        second group with the sampler's own ``lr`` (if it has one)."""
        groups = dict(super().param_groups(trainer))
        if isinstance(self.sampler, torch.nn.Module):
            own = [p for p in self.sampler.parameters() if p.requires_grad]
            if own:
                main = dict(groups["model"])
                main["params"] = [{"params": main["params"]},
                                  {"params": own,
                                   "lr": getattr(self.sampler, "lr", None) or trainer.config.lr}]
                groups["model"] = main
        return groups

    def num_batches(self, trainer: Trainer) -> int:
        bs = trainer.config.batch_size
        if trainer.config.regime == "negative":
            return -(-len(self.train_triples) // bs)
        return self.queries.num_batches(bs)

    def batches(self, trainer: Trainer) -> Iterator[Any]:
        cfg = trainer.config
        if cfg.regime != "negative":
            yield from self.queries.epoch(cfg.batch_size, trainer.generator)
            return
        perm = torch.randperm(len(self.train_triples), generator=trainer.generator)
        for idx in perm.split(cfg.batch_size):
            yield self.train_triples[idx.to(trainer.device)]

    def loss(self, trainer: Trainer, batch: Any) -> tuple[dict[str, Tensor], int]:
        if trainer.config.regime == "negative":
            return {"loss": self._negative_loss(trainer, batch)}, len(batch)
        return {"loss": self._one_to_all_loss(trainer, batch)}, len(batch.entity)

    def _negative_loss(self, trainer: Trainer, pos: Tensor) -> Tensor:
        cfg, model = trainer.config, trainer.model
        if self.sampler.learned:  # draws from the current representations, adds its loss
            x = model.encode()
            pos_scores, neg_scores, extra = self.sampler.score_batch(
                model, x, pos, trainer.local_generator)
            loss = self.loss_fn(pos_scores, neg_scores)
            loss = loss + extra if extra is not None else loss
        else:
            neg = self.sampler.sample(pos.cpu(), trainer.local_generator).to(trainer.device)
            x = model.encode()
            loss = model.loss(x, NegativeBatch(pos, neg), self.loss_fn)
        if cfg.n3:
            h, r, t = pos.unbind(1)
            loss = loss + cfg.n3 * n3_penalty(model.regularization(x, h, r, t))
        return loss

    def _one_to_all_loss(self, trainer: Trainer, batch: Any) -> Tensor:
        cfg, model = trainer.config, trainer.model
        batch = batch.to(trainer.device)
        x = model.encode()
        loss = model.loss(x, batch, self.loss_fn)
        triples = batch.triples()
        if cfg.n3 and triples is not None:
            loss = loss + cfg.n3 * n3_penalty(model.regularization(x, *triples))
        return loss

    def validate(self, trainer: Trainer) -> RankingResult:
        """Filtered ranking of the validation split, both sides."""
        return evaluate(trainer.model, self.kg, "valid", ties=trainer.config.ties,
                        batch_size=trainer.config.eval_batch_size, progress=trainer.progress)

    def evaluate(self, trainer: Trainer, last: bool) -> dict:
        every = trainer.config.eval_every
        if not ((every and trainer.epoch % every == 0) or last):
            return {}
        result = self.validate(trainer)
        return {"valid_mrr": result.mrr, "valid": result.to_dict()}

    def describe(self, record: dict) -> str:
        if "valid" not in record:
            return ""
        v = record["valid"]["both"]
        return f"  valid MRR {v['mrr']:.4f}  H@1 {v['hits@1']:.4f}  H@10 {v['hits@10']:.4f}"

    def state_dict(self) -> dict:
        return ({"sampler": self.sampler.state_dict()}
                if isinstance(self.sampler, torch.nn.Module) else {})

    def load_state_dict(self, state: dict) -> None:
        if isinstance(self.sampler, torch.nn.Module):
            self.sampler.load_state_dict(state["sampler"])
