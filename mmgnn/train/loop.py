"""The one training runner: plain, readable, resumable, for every system.

:class:`Trainer` owns what every run shares (the clock and the time budget, the finite-loss
guard, optimisers and the learning-rate schedule, atomic checkpoints and resume with the same
random stream, history, progress bars, the plot, callbacks, early stopping); a
:class:`~mmgnn.train.tasks.Task` says what one step computes and how an epoch is judged:
:class:`~mmgnn.train.tasks.LinkPredictionTask` (negative sampling or 1-to-all batches,
filtered validation ranking, ``best.pt``) and K3M's pretraining and fine-tuning tasks
(:mod:`mmgnn.train.k3m`)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mmgnn.train import distributed
from mmgnn.train.config import TrainConfig
from mmgnn.train.optim import RowAdagrad
from mmgnn.train.plot import plot_history
from mmgnn.train.tasks import LinkPredictionTask, Task
from mmgnn.utils.io import (
    load_checkpoint,
    remove_partial_writes,
    save_checkpoint,
    save_json,
)
from mmgnn.utils.progress import progress_bar

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG

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
    pretrain``, :func:`~mmgnn.recipes.k3m.pretrain_run` and the examples call it; a Python
    API user calls it the same way::

        seed_everything(config.seed)
        model = build_model(spec.name, kg, **spec.args)
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


#: Optimisers by :attr:`TrainConfig.optimizer` name.
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD,
              "row_adagrad": RowAdagrad}


def build_optimizers(groups: dict[str, dict], config: TrainConfig
                     ) -> dict[str, torch.optim.Optimizer]:
    r"""One optimiser per entry of ``groups`` (a model's :meth:`param_groups` with the task's
    additions).

    ``"model"`` is the main optimiser: :attr:`TrainConfig.optimizer` with ``lr``,
    ``weight_decay`` and ``optimizer_args``, the fused kernel (same update, one pass over the
    parameters, several times faster on CPU for embedding tables) where this torch build has
    one. Its ``params`` may be tensors or torch parameter-group dicts (a learned sampler's
    parameters and K3M's no-decay / slow-encoder groups are such dicts, with their own ``lr``
    or ``weight_decay``). Every other entry (NativE's ``"generator"``) gets its own optimiser
    (the entry's ``optimizer``, default ``adam``) over its ``params`` with the entry's other
    keys as arguments (``lr``: default ``config.lr``; ``fused``: default where available),
    stepped on the loss :meth:`extra_losses` returns under its name. Any entry may name its
    ``optimizer`` and ``fused``."""
    if "model" not in groups:
        raise ValueError(f"param_groups() must hold a 'model' group, got {sorted(groups)}")
    out: dict[str, torch.optim.Optimizer] = {}
    for name, group in groups.items():
        group = dict(group)
        params = group.pop("params")
        main = name == "model"
        optimizer = group.pop("optimizer", config.optimizer if main else "adam")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"param group {name!r}: optimizer must be one of "
                             f"{tuple(OPTIMIZERS)}, got {optimizer!r}")
        cls = OPTIMIZERS[optimizer]
        kwargs = ({"lr": config.lr, "weight_decay": config.weight_decay,
                   **config.optimizer_args, **group} if main else {"lr": config.lr, **group})
        if "fused" in kwargs:
            out[name] = cls(params, **kwargs)
            continue
        try:
            out[name] = cls(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            out[name] = cls(params, **kwargs)
    return out


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, num_steps: int):
    r"""The learning-rate schedule of :attr:`TrainConfig.scheduler` over ``num_steps``
    optimiser steps, from :func:`transformers.get_scheduler` (``None`` for ``none``). With
    ``linear`` and :math:`W` = :meth:`TrainConfig.warmup` steps, step :math:`s` runs at
    :math:`\mathrm{lr}\cdot s/W` for :math:`s < W`, then
    :math:`\mathrm{lr}\cdot\max(0, (S - s) / (S - W))`."""
    if config.scheduler == "none":
        return None
    from transformers import get_scheduler

    return get_scheduler(config.scheduler, optimizer,
                         num_warmup_steps=config.warmup(num_steps),
                         num_training_steps=num_steps)


def model_signature(model: torch.nn.Module) -> dict:
    """What a resume checks the rebuilt model against: its class and the shape of every
    state entry."""
    return {"class": type(model).__name__,
            "shapes": {k: list(v.shape) for k, v in model.state_dict().items()
                       if isinstance(v, torch.Tensor)}}


class Trainer:
    r"""Trains ``model`` on a :class:`~mmgnn.train.tasks.Task` (or a
    :class:`~mmgnn.data.MultiModalKG`, which means
    :class:`~mmgnn.train.tasks.LinkPredictionTask`).

    Each epoch draws the task's batches from the trainer's own :func:`sampling_generator`
    ``(config.seed)`` and takes optimiser steps with a progress bar: the task's loss
    (non-finite: an error naming the learning rate), one step of the main optimiser and of
    the schedule, ``model.after_step()`` (constraints), then one step of each extra optimiser
    on ``model.extra_losses()`` (NativE's generator). After each epoch the task evaluates
    (link prediction: filtered validation ranking every ``eval_every`` epochs); when the
    task names a selection metric (``valid_mrr``), the best epoch's weights go to ``best.pt``
    and ``patience`` evaluations without gain stop the run. With an output folder, every
    epoch ends with an atomic checkpoint (``checkpoint.pt``), the metrics log
    (``metrics.json``) and the training-curve plot (``training.png``); :meth:`fit` with
    ``resume=True`` continues from the checkpoint with the same random stream and ends
    bit-identical to an uninterrupted run.

    The trainer does not seed the global generators: call :func:`seed_everything` with
    ``config.seed`` before building the model (as ``mmgnn train`` does).

    In a process group of :math:`W > 1` ranks (``torchrun``, ``mmgnn train --nproc``) it
    trains data-parallel (:mod:`mmgnn.train.distributed`): the task's loss runs inside
    :class:`~torch.nn.parallel.DistributedDataParallel`, each rank on its part of every global
    batch of ``batch_size``, negatives from ``local_generator`` (seeded with ``(seed,
    rank)``); validation is sharded; files, bars and logs come from rank 0; the stop decisions
    (time budget, a non-finite loss) are taken by all ranks alike. Build the model with the
    same seed on every rank. With one rank, ``local_generator`` is ``generator`` and nothing
    changes.

    Args:
        model (torch.nn.Module): The model (a :class:`~mmgnn.models.LinkPredictor`, or a
            K3M objective / head).
        task (Task | MultiModalKG): What to train it for.
        config (TrainConfig): The optimisation settings.
        out_dir (str | Path, optional): Run folder. (default: no files)
        progress (bool): Show progress bars. (default: :obj:`True`)
        extra_state (dict, optional): Saved into ``metrics.json`` (dataset name, the model
            spec under ``"model"``, ...); ``"dataset"`` and ``"model"`` title the plot, and a
            resume checks ``"model"`` against the checkpoint's.
        callbacks (list, optional): Functions ``f(trainer, record)`` called after every epoch
            with that epoch's history record (e.g. to log extra metrics into it); their time
            is not counted in the run's wall time or budget.
    """

    def __init__(self, model: torch.nn.Module, task: Task | MultiModalKG, config: TrainConfig,
                 out_dir: str | Path | None = None, progress: bool = True,
                 extra_state: dict | None = None,
                 callbacks: list[Callable[[Trainer, dict], None]] | None = None) -> None:
        self.config = config
        self.callbacks = callbacks or []
        # Data order and negatives; the global stream was seeded before the model was built.
        self.generator = sampling_generator(config.seed)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        # A rank's own draws (negatives): the run's generator in one process.
        self.local_generator = self.generator if self.world == 1 else \
            sampling_generator(distributed.rank_seed(config.seed, self.rank))
        self.device = distributed.rank_device(config.device)
        self.model = model.to(self.device)
        self.task = task if isinstance(task, Task) else LinkPredictionTask(task)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.writes = self.out_dir is not None and self.rank == 0
        self.progress = progress and self.rank == 0
        self.extra_state = extra_state or {}
        self.task.setup(self)
        self.optimizers = build_optimizers(self.task.param_groups(self), config)
        self.optimizer = self.optimizers["model"]
        self.num_batches = self.task.num_batches(self)
        self.scheduler = build_scheduler(self.optimizer, config,
                                         self.num_batches * config.epochs)
        self.history: list[dict] = []
        self.epoch, self.steps = 0, 0
        self.elapsed = 0.0  # seconds of training and validation, summed over resumed sessions
        self.best_mrr = float("-inf")  # best value of the task's selection metric
        self.best_epoch = 0
        self.evals_without_gain = 0
        self.ddp = distributed.wrap(self) if self.world > 1 else None
        self._share = 1.0  # this rank's share of the current global batch
        if self.ddp is not None:  # dropout and the like differ by rank
            torch.manual_seed(distributed.rank_seed(config.seed, self.rank))
        self._session_start = self._clock()

    # ------------------------------------------------------------------ steps
    def step(self, loss: torch.Tensor) -> float:
        """One optimiser step on ``loss`` (after the finite-loss check), the schedule, the
        model's :meth:`after_step` and its extra losses; returns the loss value."""
        self._check_finite(loss, "training loss")
        self.optimizer.zero_grad(set_to_none=True)
        # W n_r / n: the ranks' averaged gradient is that of the whole batch's mean loss.
        (loss * (self.world * self._share) if self.ddp is not None else loss).backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.steps += 1
        if hasattr(self.model, "after_step"):
            self.model.after_step()
        if hasattr(self.model, "extra_losses"):
            for name, extra in self.model.extra_losses().items():
                self._extra_step(name, extra)
        return float(loss.detach())

    def _extra_step(self, name: str, loss: torch.Tensor) -> None:
        """A step of group ``name``'s optimiser; only its parameters get gradients."""
        if name not in self.optimizers:
            raise ValueError(f"extra_losses() returned {name!r}, which param_groups() lacks "
                             f"(groups: {sorted(self.optimizers)})")
        self._check_finite(loss, f"{name} loss")
        opt = self.optimizers[name]
        params = [p for group in opt.param_groups for p in group["params"]]
        grads = torch.autograd.grad(loss * (self.world * self._share), params,
                                    allow_unused=True)
        if self.ddp is not None:  # DDP sees .backward() only
            grads = distributed.average_gradients(list(grads))
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        for p in params:
            p.grad = None

    def _check_finite(self, loss: torch.Tensor, what: str) -> None:
        bad = not torch.isfinite(loss)
        if self.ddp is not None and distributed.any_rank(bad):
            raise FloatingPointError(
                f"{what} became non-finite on rank(s) including "
                f"{self.rank if bad else 'another'} in epoch {self.epoch + 1} (step "
                f"{self.steps}); lower the learning rate (now {self.config.lr}) or check the "
                f"inputs for NaN")
        if bad:
            raise FloatingPointError(
                f"{what} became {float(loss)} in epoch {self.epoch + 1} (step {self.steps}); "
                f"lower the learning rate (now {self.config.lr}) or check the inputs for NaN")

    def _tick(self, bar, loss: float) -> bool:
        """Advances the progress bar; True when the time budget is spent."""
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        return self._budget_spent()

    def _budget_spent(self) -> bool:
        budget = self.config.max_minutes
        if budget is None:
            return False
        spent = self._now() > 60 * budget
        return distributed.any_rank(spent) if self.ddp is not None else spent

    def _clock(self) -> float:
        """Seconds on the budget's clock (:attr:`TrainConfig.budget_clock`)."""
        if self.config.budget_clock == "cpu":
            return time.process_time() / torch.get_num_threads()
        return time.perf_counter()

    def _now(self) -> float:
        return self.elapsed + self._clock() - self._session_start

    @property
    def minutes(self) -> float:
        """Minutes on the budget clock so far, over all sessions of the run."""
        return self._now() / 60

    # ------------------------------------------------------------------- loop
    def fit(self, resume: bool = False) -> list[dict]:
        """Trains until ``epochs``, early stopping or the time budget; returns the history."""
        cfg = self.config
        if self.writes:
            remove_partial_writes(self.out_dir)
        if resume:
            self._restore()
        self._session_start = self._clock()
        stop = self._budget_spent()
        while self.epoch < cfg.epochs and not stop:
            self.model.train()
            totals: dict[str, float] = {}
            seen = 0  # examples of this epoch so far (fewer than all when the budget cuts it)
            with progress_bar(total=self.num_batches, leave=False, disable=not self.progress,
                              desc=f"{self.task.name} epoch {self.epoch + 1}/{cfg.epochs}"
                              .lstrip()) as bar:
                for batch in self.task.batches(self):
                    losses, size = self._loss(batch)
                    value = self.step(losses["loss"])
                    seen += size
                    for k, v in losses.items():
                        totals[k] = totals.get(k, 0.0) + float(v.detach()) * size
                    if self._tick(bar, value):
                        break
            self.epoch += 1
            if self.ddp is not None:  # the epoch's mean loss over every rank's examples
                keys = sorted(totals)
                *sums, seen = distributed.all_reduce([totals[k] for k in keys] + [seen])
                totals = dict(zip(keys, sums, strict=True))
            record: dict[str, Any] = {"epoch": self.epoch, "steps": self.steps,
                                      **{k: v / max(seen, 1) for k, v in totals.items()}}
            stop = self._budget_spent()
            last = self.epoch == cfg.epochs or stop
            paused = self._clock()
            record.update(self.task.evaluate(self, last))
            if not self.task.evaluation_on_budget:  # off the clock: as if it took no time
                self._session_start += self._clock() - paused
            stop = self._select(record) or stop
            record["minutes"] = self._now() / 60
            paused = self._clock()
            for callback in self.callbacks:
                callback(self, record)
            self._session_start += self._clock() - paused
            self.history.append(record)
            self._log(record)
            self._save()
        if self.task.metric and self.writes and not (self.out_dir / BEST).exists():
            self._save_best()
        distributed.barrier()  # rank 0's files are written before any rank reads them
        return self.history

    def _loss(self, batch: Any) -> tuple[dict[str, torch.Tensor], int]:
        """The task's loss of ``batch``; with several ranks, of this rank's part, computed
        inside DDP's forward (``_share`` keeps the part's share for :meth:`step`)."""
        if self.ddp is None:
            return self.task.loss(self, batch)
        part, self._share = distributed.batch_part(batch, self.rank, self.world)
        losses, size = self.ddp(part)
        return losses, size if self._share else 0

    def _select(self, record: dict) -> bool:
        """Keeps the best epoch of the task's metric; True when ``patience`` says stop."""
        metric = self.task.metric
        if not metric or metric not in record:
            return False
        if record[metric] > self.best_mrr:
            self.best_mrr, self.best_epoch, self.evals_without_gain = \
                record[metric], self.epoch, 0
            self._save_best()
            return False
        self.evals_without_gain += 1
        return bool(self.config.patience and self.evals_without_gain >= self.config.patience)

    def _save_best(self) -> None:
        if self.writes:
            save_checkpoint(self.out_dir / BEST, {"model": self.model.state_dict(),
                                                  "epoch": self.epoch})

    def _log(self, record: dict) -> None:
        if not self.progress:
            return
        msg = f"{self.task.name} epoch {record['epoch']:>4}".lstrip() + "  " + "  ".join(
            f"{k} {v:.5f}" for k, v in record.items()
            if isinstance(v, float) and k not in ("minutes", self.task.metric))
        msg += self.task.describe(record)
        if self.task.metric in record and self.best_epoch == record["epoch"]:
            msg += "  *"
        tqdm.write(msg + f"  [{self._now() / 60:.1f} min]")

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()
                           if k != "model"},
            **({"scheduler": self.scheduler.state_dict()} if self.scheduler is not None
               else {}),
            "epoch": self.epoch,
            "steps": self.steps,
            "elapsed": self._now(),
            "history": self.history,
            "best_mrr": self.best_mrr,
            "best_epoch": self.best_epoch,
            "evals_without_gain": self.evals_without_gain,
            **random_state(self.generator),
            **self._rank_states(),
            "config": self.config.to_dict(),
            "model_spec": self.extra_state.get("model"),
            "model_signature": model_signature(self.model),
            **self.task.state_dict(),
        }

    def metrics(self) -> dict:
        best = ({"best_epoch": self.best_epoch,
                 # -inf until validated: save_json writes null
                 "best_valid_mrr": self.best_mrr} if self.task.metric else {})
        return {**self.extra_state, "config": self.config.to_dict(), "epochs": self.epoch,
                "steps": self.steps, "minutes": self._now() / 60, **best,
                "history": self.history}

    def title(self) -> str:
        spec = self.extra_state.get("model")
        name = type(self.model).__name__
        if isinstance(spec, dict):
            name = spec.get("name", name)
        return f"{self.extra_state.get('dataset', '')} {name}".strip()

    def _rank_states(self) -> dict:
        """With several ranks: the world size and every rank's own random state (gathered;
        every rank must call it)."""
        if self.ddp is None:
            return {}
        mine = {"local_generator": self.local_generator.get_state(),
                **random_state(self.generator)}
        return {"world_size": self.world, "ranks": distributed.gather_objects(mine)}

    def _save(self) -> None:
        if self.out_dir is None:
            return
        state = self.state()  # collective with several ranks
        if not self.writes:
            return
        save_checkpoint(self.out_dir / CHECKPOINT, state)
        save_json(self.out_dir / METRICS, self.metrics())
        if all("loss" in h for h in self.history):
            plot_history(self.history, self.out_dir / PLOT, title=self.title())

    def _restore(self) -> None:
        if self.out_dir is None:
            raise ValueError("resume needs the run folder (out_dir) that holds checkpoint.pt")
        path = self.out_dir / CHECKPOINT
        state = load_checkpoint(path, map_location=self.device)
        self._check_same_model(path, state)
        saved_world = state.get("world_size", 1)
        if saved_world != self.world:
            raise ValueError(
                f"{path} was written by a run of {saved_world} rank(s); resume it with "
                f"{saved_world} (--nproc {saved_world} or torchrun --nproc-per-node "
                f"{saved_world}), not {self.world}: the shards and negative streams are those "
                f"of its world size")
        self.model.load_state_dict(state["model"] if "model" in state else state["module"])
        self.task.load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        for name, opt_state in state.get("optimizers", {}).items():
            self.optimizers[name].load_state_dict(opt_state)
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.elapsed, self.history = state["epoch"], state["elapsed"], state["history"]
        self.steps = state.get("steps", 0)
        self.best_mrr = state.get("best_mrr", float("-inf"))
        self.best_epoch = state.get("best_epoch", 0)
        self.evals_without_gain = state.get("evals_without_gain", 0)
        restore_random_state(state, self.generator)
        if self.ddp is not None:
            own = state["ranks"][self.rank]
            restore_random_state(own, self.generator)
            self.local_generator.set_state(own["local_generator"])

    def _check_same_model(self, path: Path, state: dict) -> None:
        saved_spec, spec = state.get("model_spec"), self.extra_state.get("model")
        if saved_spec is not None and spec is not None and saved_spec != spec:
            raise ValueError(f"{path} holds a run of model {saved_spec}, not {spec}; resume "
                             f"with the same settings or start a new --out folder")
        saved, now = state.get("model_signature"), model_signature(self.model)
        if saved is None:  # a checkpoint written before model signatures
            legacy = state.get("config", {})
            ok = "model" not in state or all(
                k in now["shapes"] and list(v.shape) == now["shapes"][k]
                for k, v in state["model"].items() if isinstance(v, torch.Tensor))
            saved = None if ok else {"class": legacy.get("model", "?"), "shapes": {}}
        if saved is not None and saved != now:
            diff = [k for k in sorted(set(saved["shapes"]) | set(now["shapes"]))
                    if saved["shapes"].get(k) != now["shapes"].get(k)][:3]
            raise ValueError(
                f"{path} holds a {saved['class']} model that differs from the {now['class']} "
                f"built now (first differing entries: "
                + ", ".join(f"{k} {saved['shapes'].get(k)} vs {now['shapes'].get(k)}"
                            for k in diff)
                + "); resume with the same settings or start a new --out folder")


def fit(model: torch.nn.Module, task: Task | MultiModalKG, config: TrainConfig,
        out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
        extra_state: dict | None = None,
        callbacks: list[Callable[[Trainer, dict], None]] | None = None) -> Trainer:
    """Trains ``model`` on ``task`` (a :class:`~mmgnn.data.MultiModalKG`: link prediction)
    with ``config`` (see :class:`Trainer`); returns the trainer, whose ``history``,
    ``best_mrr`` and ``model`` hold the outcome. The model keeps the last weights;
    ``best.pt`` in ``out_dir`` holds the best validation weights."""
    trainer = Trainer(model, task, config, out_dir, progress, extra_state, callbacks)
    trainer.fit(resume=resume)
    return trainer


__all__ = ["Trainer", "fit", "seed_everything", "sampling_generator", "random_state",
           "restore_random_state", "build_optimizers", "build_scheduler"]
