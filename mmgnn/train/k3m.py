"""K3M's training recipes: pretraining on product items, then fine-tuning a downstream head.

Plain loops (AdamW, linear warmup and decay as ``train_concap_struc.py``) with progress bars,
a time budget on the wall or CPU clock, and atomic checkpoints (``checkpoint.pt`` each epoch,
resumable; ``metrics.json``) through :mod:`mmgnn.utils.io`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mmgnn.train.loop import random_state, restore_random_state, sampling_generator
from mmgnn.utils.io import (
    load_checkpoint,
    remove_partial_writes,
    save_checkpoint,
    save_json,
)
from mmgnn.utils.progress import progress_bar

CHECKPOINT, METRICS, ENCODER = "checkpoint.pt", "metrics.json", "encoder.pt"


@dataclass
class K3MTrainConfig:
    """Settings of a K3M pretraining or fine-tuning run (defaults: the released pretraining).

    Args:
        epochs (int): Passes over the items. (default: :obj:`6`)
        batch_size (int): Items per step. (default: :obj:`8`)
        lr (float): AdamW learning rate, betas (0.9, 0.98), eps 1e-8. (default: :obj:`1e-4`)
        encoder_lr_scale (float): Learning-rate factor of a text encoder loaded from a
            pretrained checkpoint (the code: 0.1). (default: :obj:`0.1`)
        weight_decay (float): Weight decay, not on biases and LayerNorms. (default: 0.01)
        warmup (float): Fraction of the steps with a linear warmup, then linear decay to 0.
            (default: :obj:`0.1`)
        max_minutes (float, optional): Budget; the run stops after the step that spends it.
            The warmup-decay schedule spans ``epochs``: with a budget that ends the run
            early, set ``epochs`` to what fits, or ``warmup=0``.
        budget_clock (str): ``wall`` or ``cpu`` (process CPU time per torch thread).
        seed (int): Seed of shuffling and masking. (default: :obj:`0`)
        device (str): (default: ``cpu``)
    """

    epochs: int = 6
    batch_size: int = 8
    lr: float = 1e-4
    encoder_lr_scale: float = 0.1
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_minutes: float | None = None
    budget_clock: str = "wall"
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.budget_clock not in ("wall", "cpu"):
            raise ValueError(f"budget_clock must be 'wall' or 'cpu', got {self.budget_clock!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def clock(kind: str) -> float:
    """Seconds on the budget clock: wall, or process CPU time divided by torch's threads."""
    return time.process_time() / torch.get_num_threads() if kind == "cpu" \
        else time.perf_counter()


def build_optimizer(module: nn.Module, config: K3MTrainConfig, num_steps: int,
                    pretrained: nn.Module | None = None):
    """AdamW with no decay on biases / LayerNorm weights and ``encoder_lr_scale`` on the
    parameters of ``pretrained``; a linear warmup-decay schedule over ``num_steps``."""
    slow = {id(p) for p in pretrained.parameters()} if pretrained is not None else set()
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in module.named_parameters():
        if p.requires_grad:
            no_decay = name.endswith("bias") or "norm" in name.lower()
            groups.setdefault((id(p) in slow, no_decay), []).append(p)
    params = [{"params": ps, "lr": config.lr * (config.encoder_lr_scale if is_slow else 1.0),
               "weight_decay": 0.0 if no_decay else config.weight_decay}
              for (is_slow, no_decay), ps in groups.items()]
    opt = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.98), eps=1e-8)
    warm = max(1, int(config.warmup * num_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (num_steps - step) / max(1, num_steps - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


class K3MTrainer:
    """Runs ``step(items, generator) -> loss`` over shuffled batches of ``items`` for
    ``config.epochs`` epochs (or the budget); ``evaluate() -> dict`` after every epoch adds
    metrics to the history (losses averaged over the items the epoch reached, fewer than all
    when the budget ends it). With ``out_dir``, each epoch ends with an atomic
    ``checkpoint.pt`` and ``metrics.json``; ``fit(resume=True)`` continues from them.

    As :class:`~mmgnn.train.Trainer`, it does not seed the global generators (call
    :func:`~mmgnn.train.seed_everything` before building the module); shuffling and masking
    draw from its own :func:`~mmgnn.train.loop.sampling_generator` ``(config.seed)``."""

    def __init__(self, module: nn.Module, step: Callable[[Tensor, torch.Generator], dict],
                 items: Tensor, config: K3MTrainConfig, *, out_dir: str | Path | None = None,
                 evaluate: Callable[[], dict] | None = None, pretrained: nn.Module | None = None,
                 progress: bool = True, name: str = "k3m", extra: dict | None = None) -> None:
        self.module = module.to(config.device)
        self.step_fn, self.items, self.config = step, items, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.evaluate, self.progress, self.name = evaluate, progress, name
        self.extra = extra or {}
        self.generator = sampling_generator(config.seed)
        self.steps_per_epoch = -(-len(items) // config.batch_size)
        self.optimizer, self.scheduler = build_optimizer(
            module, config, self.steps_per_epoch * config.epochs, pretrained)
        self.history: list[dict] = []
        self.epoch, self.steps, self.elapsed = 0, 0, 0.0

    def _now(self) -> float:
        return self.elapsed + clock(self.config.budget_clock) - self._start

    def _spent(self) -> bool:
        budget = self.config.max_minutes
        return budget is not None and self._now() > 60 * budget

    def fit(self, resume: bool = False) -> list[dict]:
        cfg = self.config
        if self.out_dir is not None:
            remove_partial_writes(self.out_dir)
        if resume:
            self._restore()
        self._start = clock(cfg.budget_clock)
        stop = self._spent()
        while self.epoch < cfg.epochs and not stop:
            self.module.train()
            totals: dict[str, float] = {}
            seen = 0  # items of this epoch so far (fewer than all when the budget cuts it)
            perm = self.items[torch.randperm(len(self.items), generator=self.generator)]
            with progress_bar(total=self.steps_per_epoch, leave=False,
                              desc=f"{self.name} epoch {self.epoch + 1}/{cfg.epochs}",
                              disable=not self.progress) as bar:
                for batch in perm.split(cfg.batch_size):
                    losses = self.step_fn(batch, self.generator)
                    loss = losses["loss"]
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"{self.name}: loss became {float(loss)} at step {self.steps}; "
                            f"lower the learning rate (now {cfg.lr})")
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    self.scheduler.step()
                    self.steps += 1
                    seen += len(batch)
                    for k, v in losses.items():
                        totals[k] = totals.get(k, 0.0) + float(v.detach()) * len(batch)
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
                    if self._spent():
                        stop = True
                        break
            self.epoch += 1
            record = {"epoch": self.epoch, "steps": self.steps,
                      **{k: v / max(1, seen) for k, v in totals.items()}}
            paused = clock(cfg.budget_clock)
            if self.evaluate is not None:
                self.module.eval()
                record.update(self.evaluate())
            self._start += clock(cfg.budget_clock) - paused  # evaluation is off the budget
            record["minutes"] = self._now() / 60
            self.history.append(record)
            if self.progress:
                tqdm.write(f"{self.name} epoch {self.epoch:>3}  " + "  ".join(
                    f"{k} {v:.4f}" for k, v in record.items()
                    if isinstance(v, float) and k != "minutes")
                    + f"  [{record['minutes']:.1f} min]")
            self._save()
        return self.history

    def metrics(self) -> dict:
        return {**self.extra, "config": self.config.to_dict(), "epochs": self.epoch,
                "steps": self.steps, "minutes": self._now() / 60, "history": self.history}

    def _save(self) -> None:
        if self.out_dir is None:
            return
        save_checkpoint(self.out_dir / CHECKPOINT, {
            "module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "epoch": self.epoch, "steps": self.steps,
            "elapsed": self._now(), "history": self.history,
            **random_state(self.generator)})
        save_json(self.out_dir / METRICS, self.metrics())

    def _restore(self) -> None:
        if self.out_dir is None:
            raise ValueError("resume needs out_dir, the folder holding checkpoint.pt")
        state = load_checkpoint(self.out_dir / CHECKPOINT, map_location=self.config.device)
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.steps = state["epoch"], state["steps"]
        self.elapsed, self.history = state["elapsed"], state["history"]
        restore_random_state(state, self.generator)


@torch.no_grad()
def classification_accuracy(classifier: nn.Module, items: Tensor, y: Tensor,
                            batch_size: int = 64, seed: int = 0) -> float:
    """Accuracy of ``classifier(items)`` against ``y[items]`` in eval mode. Hard IIFM draws
    Gumbel noise at evaluation too (as the released code); the draws are seeded so that
    repeated evaluations (e.g. of a robustness sweep) share them."""
    was = classifier.training
    classifier.eval()
    correct = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for batch in items.split(batch_size):
            pred = classifier(batch).argmax(-1).cpu()
            correct += int((pred == y[batch]).sum())
    classifier.train(was)
    return correct / max(1, len(items))


def pretrain(objective: nn.Module, items: Tensor, config: K3MTrainConfig, *,
             out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
             pretrained: nn.Module | None = None, extra: dict | None = None) -> K3MTrainer:
    """Pretrains with a :class:`~mmgnn.models.k3m_pretraining.K3MPretraining` objective on
    ``items``; with ``out_dir``, also writes ``encoder.pt`` (the K3M weights and config) for
    fine-tuning."""
    trainer = K3MTrainer(objective, lambda b, g: objective(b, g), items, config,
                         out_dir=out_dir, pretrained=pretrained, progress=progress,
                         name="pretrain", extra={**(extra or {}), "skipped": objective.skipped})
    trainer.fit(resume=resume)
    if out_dir is not None:
        save_encoder(Path(out_dir) / ENCODER, objective.model)
    return trainer


def finetune_classification(classifier: nn.Module, y: Tensor, train_items: Tensor,
                            test_items: Tensor, config: K3MTrainConfig, *,
                            out_dir: str | Path | None = None, resume: bool = False,
                            progress: bool = True, pretrained: nn.Module | None = None,
                            extra: dict | None = None) -> K3MTrainer:
    """Fine-tunes an :class:`~mmgnn.models.k3m_tasks.ItemClassifier` with cross-entropy on
    ``train_items``; records train and test accuracy after every epoch."""
    y = y.cpu()

    def step(batch: Tensor, _g: torch.Generator) -> dict:
        logits = classifier(batch)
        return {"loss": nn.functional.cross_entropy(logits, y[batch].to(logits.device))}

    def evaluate() -> dict:
        return {"train_accuracy": classification_accuracy(classifier, train_items, y),
                "test_accuracy": classification_accuracy(classifier, test_items, y)}

    trainer = K3MTrainer(classifier, step, train_items, config, out_dir=out_dir,
                         evaluate=evaluate, pretrained=pretrained, progress=progress,
                         name="finetune", extra=extra)
    trainer.fit(resume=resume)
    return trainer


def save_encoder(path: str | Path, model: nn.Module) -> None:
    """Atomically writes a K3M's weights and config (read back by :func:`load_encoder`)."""
    save_checkpoint(path, {"config": model.config.to_dict(), "model": model.state_dict()})


def load_encoder(path: str | Path, model: nn.Module) -> nn.Module:
    """Loads :func:`save_encoder` weights into ``model`` (same config); returns it."""
    state = load_checkpoint(path)
    if state["config"] != model.config.to_dict():
        diff = {k: (v, model.config.to_dict().get(k)) for k, v in state["config"].items()
                if model.config.to_dict().get(k) != v}
        raise ValueError(f"{path}: the saved K3M differs from the model built now "
                         f"(saved, now): {diff}")
    model.load_state_dict(state["model"])
    return model
