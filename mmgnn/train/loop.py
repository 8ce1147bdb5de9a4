"""The training loop: plain, readable, resumable."""

from __future__ import annotations

import os
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mmgnn.data.kg import MultiModalKG
from mmgnn.eval.ranking import RankingResult, evaluate
from mmgnn.models.base import LinkPredictor
from mmgnn.nn.losses import NEGATIVE_SAMPLING_LOSSES, ONE_TO_ALL_LOSSES, n3_penalty
from mmgnn.sampling import (
    BernoulliSampler,
    HeadTailSampler,
    MMRNSSampler,
    NegativeSampler,
    OneToAllBatches,
    UniformSampler,
)
from mmgnn.train.config import NEGATIVE_FILTERS, TrainConfig
from mmgnn.train.plot import plot_history
from mmgnn.utils.io import (
    load_checkpoint,
    remove_partial_writes,
    save_checkpoint,
    save_json,
)
from mmgnn.utils.progress import progress_bar

CHECKPOINT = "checkpoint.pt"  # last state, for --resume
BEST = "best.pt"  # model weights with the best validation MRR
METRICS = "metrics.json"
PLOT = "training.png"


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    r"""The one seeding point of a run: seeds Python's :mod:`random`, NumPy and torch (the
    CPU generator and that of every CUDA device) and returns :func:`sampling_generator`
    ``(seed)``.

    Call it **before anything random**, above all before the model is built: the global
    torch stream then drives, in this order, the model's initialisation, a learned sampler's
    initialisation (MMRNS) and, during training, dropout, NativE's generator noise and
    anything else drawn with the global generator. Data order and negatives are drawn from
    the :class:`Trainer`'s own generator, ``sampling_generator(config.seed)``, so they do not
    depend on how many numbers the model's initialisation consumed. ``mmgnn train``, ``mmgnn
    pretrain``, :func:`~mmgnn.train.k3m_runs.pretrain_run` and the examples call it; a Python
    API user calls it the same way::

        seed_everything(config.seed)
        model = build_model(config, kg)
        fit(model, kg, config, out_dir="runs/x")

    and two such runs give bit-identical checkpoints and ``metrics.json`` (apart from the time
    fields ``minutes`` and ``seconds``) on CPU. :class:`Trainer` never reseeds the global
    generator: a checkpoint saves the global CPU (and CUDA) generator states and the
    trainer's generator, and ``fit(resume=True)`` restores them, so a resumed run continues
    the same stream and ends bit-identical to an uninterrupted one.

    On GPU, the same seed gives the same draws, but by default not the same sums: several
    CUDA kernels (the accumulating ``index_put_`` / ``index_add_`` / ``scatter_add_`` behind
    the backward of embedding lookups and of message passing, cuBLAS reductions that depend
    on its workspace) add in a varying order, so two runs drift apart in the last bits and
    then further. ``deterministic=True`` sets
    ``torch.use_deterministic_algorithms(True)``, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (where
    unset; it must be in place before the first cuBLAS call), and turns cuDNN's benchmark
    autotuning off: then runs on the same GPU, driver and torch build repeat bit for bit,
    slower, and an operation without a deterministic kernel raises an error naming it
    instead of drifting. GPU results do not match CPU results bit for bit. The flag is
    process-wide; ``mmgnn train --deterministic`` sets it (and keeps it on ``--resume``).
    The test suite checks the CPU guarantee only.

    Args:
        seed (int): The seed.
        deterministic (bool): Also ask torch for deterministic kernels (see above).
            (default: :obj:`False`)

    Returns:
        torch.Generator: A CPU generator seeded with ``seed`` (the run's sampling stream).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device as well
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    return sampling_generator(seed)


def sampling_generator(seed: int) -> torch.Generator:
    """The CPU generator of a run's data order and negatives: its own stream, seeded with
    ``seed``, independent of the global one (see :func:`seed_everything`)."""
    return torch.Generator().manual_seed(seed)


def random_state(generator: torch.Generator) -> dict:
    """Everything a resumed run needs to continue the same random stream: ``generator``'s
    state, the global CPU generator's and, once CUDA is in use, every CUDA device's."""
    return {"generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state_all()}
               if torch.cuda.is_available() and torch.cuda.is_initialized() else {})}


def restore_random_state(state: dict, generator: torch.Generator) -> None:
    """Sets ``generator`` and the global generators to a :func:`random_state`."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"][:torch.cuda.device_count()])


def build_optimizer(model: torch.nn.Module, config: TrainConfig,
                    sampler: NegativeSampler | None = None) -> torch.optim.Optimizer:
    """The optimiser of the run; the fused kernels (same update, one pass over the parameters,
    several times faster on CPU for embedding tables) where this torch build has them. A
    learned sampler's parameters form a second group, with its own ``lr`` if it has one."""
    params: list = [p for p in model.parameters() if p.requires_grad]
    if isinstance(sampler, torch.nn.Module):
        own = [p for p in sampler.parameters() if p.requires_grad]
        if own:
            params = [{"params": params},
                      {"params": own, "lr": getattr(sampler, "lr", None) or config.lr}]
    cls = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad,
           "sgd": torch.optim.SGD}[config.optimizer]
    try:
        return cls(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def build_sampler(kg: MultiModalKG, config: TrainConfig,
                  model: LinkPredictor | None = None) -> NegativeSampler:
    """The negative sampler of ``config``. Its filter (``config.negative_filter``) holds the
    training triples only unless ``all_splits`` is asked for explicitly (with a warning):
    no valid or test triple may decide which negatives training sees."""
    if config.sampler == "mmrns":
        if model is None:
            raise ValueError("the mmrns sampler needs the model (its representation sizes)")
        return MMRNSSampler.from_config(kg, config, model)
    splits = NEGATIVE_FILTERS[config.negative_filter]
    if config.negative_filter == "all_splits":
        warnings.warn(
            "negative_filter='all_splits' redraws negatives that are valid or test triples: "
            "held-out answers then steer training and test metrics come out optimistic. Use it "
            "only to reproduce released code that does this (IMF's structural encoder, KBGAT); "
            "the default 'train' filters with the training triples only", stacklevel=2)
    flt = kg.filter_index(splits) if splits else None
    if config.sampler == "bernoulli":
        return BernoulliSampler(kg.train, kg.num_entities, kg.num_relations,
                                config.num_negatives, flt)
    if config.sampler == "head_tail":
        return HeadTailSampler(kg.num_entities, config.num_negatives, flt)
    return UniformSampler(kg.num_entities, config.num_negatives, flt)


class Trainer:
    r"""Trains a :class:`~mmgnn.models.base.LinkPredictor` on a :class:`MultiModalKG`.

    Each epoch shuffles the training triples (or 1-to-all queries), takes optimiser steps with a
    progress bar, and every ``eval_every`` epochs ranks the **validation** split (filtered, both
    sides). The model with the best validation MRR is kept in ``best.pt``; the test split is
    never looked at during training. With an output folder, every epoch ends with an atomic
    checkpoint (``checkpoint.pt``), the metrics log (``metrics.json``) and the training-curve
    plot (``training.png``); :meth:`fit` with ``resume=True`` continues from the checkpoint with
    the same random stream.

    The trainer does not seed the global generators: call :func:`seed_everything` with
    ``config.seed`` before building the model (as ``mmgnn train`` does). It draws data order
    and negatives from its own :func:`sampling_generator` ``(config.seed)``.

    Args:
        model (LinkPredictor): The model.
        kg (MultiModalKG): The graph.
        config (TrainConfig): The run's settings.
        out_dir (str | Path, optional): Run folder. (default: no files)
        progress (bool): Show progress bars. (default: :obj:`True`)
        extra_state (dict, optional): Saved into ``metrics.json`` (dataset name, root, ...).
        callbacks (list, optional): Functions ``f(trainer, record)`` called after every epoch
            with that epoch's history record (e.g. to log extra metrics into it); their time
            is not counted in the run's wall time or budget.
    """

    def __init__(self, model: LinkPredictor, kg: MultiModalKG, config: TrainConfig,
                 out_dir: str | Path | None = None, progress: bool = True,
                 extra_state: dict | None = None,
                 callbacks: list[Callable[[Trainer, dict], None]] | None = None) -> None:
        self.config = config
        self.callbacks = callbacks or []
        # Data order and negatives; the global stream was seeded before the model was built.
        self.generator = sampling_generator(config.seed)
        self.device = torch.device(config.device)
        self.model = model.to(self.device)
        self.kg = kg
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.extra_state = extra_state or {}
        self.train_triples = kg.train.to(self.device)
        self.sampler: NegativeSampler | None = None
        if config.regime == "negative":
            self.loss_fn = NEGATIVE_SAMPLING_LOSSES[config.loss](
                **({"margin": config.margin} if config.loss == "margin" else {}),
                **({"margin": config.margin, "temperature": config.adversarial_temperature}
                   if config.loss == "self_adversarial" else {}))
            self.sampler = build_sampler(kg, config, self.model)
            if isinstance(self.sampler, torch.nn.Module):
                self.sampler.to(self.device)
        else:
            self.loss_fn = ONE_TO_ALL_LOSSES[config.loss](
                label_smoothing=config.label_smoothing,
                **({"form": config.label_smoothing_form} if config.loss == "bce" else {}))
            self.batches = OneToAllBatches(kg.train, kg.num_entities, kg.num_relations,
                                           reciprocal=model.reciprocal, mode=config.regime)
        self.optimizer = build_optimizer(self.model, config, self.sampler)
        self.history: list[dict] = []
        self.epoch = 0
        self.elapsed = 0.0  # seconds of training and validation, summed over resumed sessions
        self.best_mrr = float("-inf")
        self.best_epoch = 0
        self.evals_without_gain = 0

    # ------------------------------------------------------------------ steps
    def _negative_epoch(self, bar) -> float:
        cfg, total, count = self.config, 0.0, 0
        perm = torch.randperm(len(self.train_triples), generator=self.generator)
        for idx in perm.split(cfg.batch_size):
            pos = self.train_triples[idx.to(self.device)]
            if self.sampler.learned:  # draws from the current representations, adds its loss
                x = self.model.encode()
                pos_scores, neg_scores, extra = self.sampler.score_batch(self.model, x, pos,
                                                                         self.generator)
                loss = self.loss_fn(pos_scores, neg_scores)
                loss = loss + extra if extra is not None else loss
            else:
                neg = self.sampler.sample(pos.cpu(), self.generator).to(self.device)
                x = self.model.encode()
                loss = self.model.negative_sampling_loss(x, pos, neg, self.loss_fn)
            if cfg.n3:
                h, r, t = pos.unbind(1)
                loss = loss + cfg.n3 * n3_penalty(self.model.regularization(x, h, r, t))
            value = self._step(loss)
            total, count = total + value * len(idx), count + len(idx)
            if self._tick(bar, value):
                break
        return total / max(count, 1)

    def _one_to_all_epoch(self, bar) -> float:
        cfg, total, count = self.config, 0.0, 0
        n = self.kg.num_entities
        for batch in self.batches.epoch(cfg.batch_size, self.generator):
            e, r = batch.entity.to(self.device), batch.relation.to(self.device)
            x = self.model.encode()
            if batch.gold is None:
                target = batch.targets(n).to(self.device)
            elif cfg.loss == "ce":
                target = batch.gold.to(self.device)
            else:
                target = torch.zeros(len(e), n, device=self.device)
                target[torch.arange(len(e), device=self.device), batch.gold.to(self.device)] = 1.0
            loss = self.model.one_to_all_loss(x, e, r, batch.side, target, self.loss_fn)
            if cfg.n3 and batch.gold is not None:
                gold = batch.gold.to(self.device)
                h, t = (e, gold) if batch.side == "tail" else (gold, e)
                loss = loss + cfg.n3 * n3_penalty(self.model.regularization(x, h, r, t))
            value = self._step(loss)
            total, count = total + value * len(e), count + len(e)
            if self._tick(bar, value):
                break
        return total / max(count, 1)

    def _step(self, loss: torch.Tensor) -> float:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {float(loss)} in epoch {self.epoch + 1}; lower the "
                f"learning rate (now {self.config.lr}) or check the inputs for NaN")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.model.after_step()
        return float(loss.detach())

    def _tick(self, bar, loss: float) -> bool:
        """Advances the progress bar; True when the time budget is spent."""
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        return self._budget_spent()

    def _budget_spent(self) -> bool:
        budget = self.config.max_minutes
        return budget is not None and self._now() > 60 * budget

    def _clock(self) -> float:
        """Seconds on the budget's clock (:attr:`TrainConfig.budget_clock`)."""
        if self.config.budget_clock == "cpu":
            return time.process_time() / torch.get_num_threads()
        return time.perf_counter()

    def _now(self) -> float:
        return self.elapsed + self._clock() - self._session_start

    # ------------------------------------------------------------------- loop
    def validate(self) -> RankingResult:
        return evaluate(self.model, self.kg, "valid", ties=self.config.ties,
                        batch_size=self.config.eval_batch_size, progress=self.progress)

    def fit(self, resume: bool = False) -> list[dict]:
        """Trains until ``epochs``, early stopping or the time budget; returns the history."""
        cfg = self.config
        if self.out_dir is not None:
            remove_partial_writes(self.out_dir)
        if resume:
            self._restore()
        self._session_start = self._clock()
        num_batches = (-(-len(self.train_triples) // cfg.batch_size)
                       if cfg.regime == "negative" else self.batches.num_batches(cfg.batch_size))
        stop = False
        while self.epoch < cfg.epochs and not stop:
            self.model.train()
            with progress_bar(total=num_batches, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                      disable=not self.progress, leave=False) as bar:
                loss = (self._negative_epoch(bar) if cfg.regime == "negative"
                        else self._one_to_all_epoch(bar))
            self.epoch += 1
            record = {"epoch": self.epoch, "loss": loss}
            stop = self._budget_spent()
            last = self.epoch == cfg.epochs or stop
            if (cfg.eval_every and self.epoch % cfg.eval_every == 0) or last:
                result = self.validate()
                record.update(valid_mrr=result.mrr, valid=result.to_dict())
                if result.mrr > self.best_mrr:
                    self.best_mrr, self.best_epoch, self.evals_without_gain = \
                        result.mrr, self.epoch, 0
                    if self.out_dir is not None:
                        save_checkpoint(self.out_dir / BEST, {"model": self.model.state_dict(),
                                                              "epoch": self.epoch})
                else:
                    self.evals_without_gain += 1
                    stop = stop or bool(cfg.patience and self.evals_without_gain >= cfg.patience)
            record["minutes"] = self._now() / 60
            paused = self._clock()
            for callback in self.callbacks:
                callback(self, record)
            self._session_start += self._clock() - paused
            self.history.append(record)
            self._log(record)
            self._save()
        if self.out_dir is not None and not (self.out_dir / BEST).exists():
            save_checkpoint(self.out_dir / BEST, {"model": self.model.state_dict(),
                                                  "epoch": self.epoch})
        return self.history

    def _log(self, record: dict) -> None:
        if not self.progress:
            return
        msg = f"epoch {record['epoch']:>4}  loss {record['loss']:.5f}"
        if "valid_mrr" in record:
            v = record["valid"]["both"]
            msg += (f"  valid MRR {v['mrr']:.4f}  H@1 {v['hits@1']:.4f}  H@10 {v['hits@10']:.4f}"
                    + ("  *" if self.best_epoch == record["epoch"] else ""))
        tqdm.write(msg + f"  [{self._now() / 60:.1f} min]")

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "elapsed": self._now(),
            "history": self.history,
            "best_mrr": self.best_mrr,
            "best_epoch": self.best_epoch,
            "evals_without_gain": self.evals_without_gain,
            **random_state(self.generator),
            "config": self.config.to_dict(),
            **({"sampler": self.sampler.state_dict()}
               if isinstance(self.sampler, torch.nn.Module) else {}),
        }

    def metrics(self) -> dict:
        return {**self.extra_state, "config": self.config.to_dict(), "epochs": self.epoch,
                "minutes": self._now() / 60, "best_epoch": self.best_epoch,
                "best_valid_mrr": self.best_mrr,  # -inf until validated: save_json writes null
                "history": self.history}

    def _save(self) -> None:
        if self.out_dir is None:
            return
        save_checkpoint(self.out_dir / CHECKPOINT, self.state())
        save_json(self.out_dir / METRICS, self.metrics())
        plot_history(self.history, self.out_dir / PLOT,
                     title=f"{self.extra_state.get('dataset', '')} {self.config.model}".strip())

    def _restore(self) -> None:
        if self.out_dir is None:
            raise ValueError("resume needs the run folder (out_dir) that holds checkpoint.pt")
        state = load_checkpoint(self.out_dir / CHECKPOINT, map_location=self.device)
        saved = TrainConfig.from_dict(state["config"])
        if saved.model != self.config.model or saved.dim != self.config.dim:
            raise ValueError(
                f"{self.out_dir / CHECKPOINT} holds a {saved.model} model of dim {saved.dim}, "
                f"not {self.config.model} of dim {self.config.dim}; resume with the same "
                f"settings or start a new --out folder")
        self.model.load_state_dict(state["model"])
        if isinstance(self.sampler, torch.nn.Module):
            self.sampler.load_state_dict(state["sampler"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.elapsed, self.history = state["epoch"], state["elapsed"], state["history"]
        self.best_mrr, self.best_epoch = state["best_mrr"], state["best_epoch"]
        self.evals_without_gain = state["evals_without_gain"]
        restore_random_state(state, self.generator)


def fit(model: LinkPredictor, kg: MultiModalKG, config: TrainConfig,
        out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
        extra_state: dict | None = None,
        callbacks: list[Callable[[Trainer, dict], None]] | None = None) -> Trainer:
    """Trains ``model`` on ``kg`` with ``config`` (see :class:`Trainer`); returns the trainer,
    whose ``history``, ``best_mrr`` and ``model`` hold the outcome. The model keeps the last
    weights; ``best.pt`` in ``out_dir`` holds the best validation weights."""
    trainer = Trainer(model, kg, config, out_dir, progress, extra_state, callbacks)
    trainer.fit(resume=resume)
    return trainer
