r"""Data-parallel training on :mod:`torch.distributed`: process groups, ranks, shards, seeds.

mmgnn trains one model on ``W`` processes (ranks) the plain data-parallel way (Li et al.,
2020, *PyTorch Distributed: Experiences on Accelerating Data Parallel Training*): every rank
holds the whole model, computes the loss of its part of each batch, and
:class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients, so every rank
takes the same optimiser step. The :class:`~mmgnn.train.Trainer` does it whenever a process
group of more than one rank is initialised; a run started with ``torchrun --nproc-per-node W
-m mmgnn train ...`` or ``mmgnn train --nproc W ...`` (:func:`launch`) is one.

The rules a run follows, and what they guarantee:

- **One global batch.** ``TrainConfig.batch_size`` is the batch of one optimiser step over all
  ranks. Every rank draws the same epoch order from the run's generator (seeded with
  ``seed``), so all see the same global batches; rank :math:`r` takes the :math:`r`-th of
  :math:`W` contiguous, nearly equal parts of each (:func:`batch_part`): its shard of the
  training triples (or 1-to-all queries) for that epoch. A rank's loss is scaled by
  :math:`W n_r / n` (its part's share of the batch), so the averaged gradient is that of the
  mean loss over the whole batch, whatever the parts' sizes: for a loss that is a mean over
  its examples, ``W`` ranks at global batch ``n`` take the step one process takes at batch
  ``n`` with the same negatives (``tests/train/test_distributed.py`` checks it).
- **Uneven last batches never hang.** Every rank takes every step of the epoch (the number
  of steps is that of the global batches); a rank whose part of a short last batch is empty
  computes the loss of one example with weight 0, so its collectives match the others'.
- **Per-rank randomness.** Negatives (and any other per-example draw of a task) come from
  ``trainer.local_generator``, seeded with :func:`rank_seed` ``(seed, rank)``; the global
  torch generator (dropout, NativE's noise) is reseeded with it as well, after the model was
  built from ``seed`` on every rank.
- **Rank 0 writes.** Checkpoints (atomic, :mod:`mmgnn.utils.io`), ``metrics.json``,
  ``best.pt``, the plot, progress bars and log lines come from rank 0 only; the checkpoint
  holds every rank's generator states.
- **Resume rule.** A checkpoint of ``W`` ranks resumes with ``W`` ranks (the shards are a
  function of ``W``: part :math:`r` of :math:`W` of every global batch, negatives from
  ``rank_seed(seed, r)``), and the resumed run ends bit-identical to an uninterrupted one on
  CPU. Another world size divides the batches differently and draws other negatives: the
  trainer refuses it with an error naming both sizes. ``W = 1`` (one process, or ``torchrun
  --nproc-per-node 1``) is the single-process run, bit for bit.
- **Backends.** ``gloo`` on CPU and for sparse embedding gradients (NCCL has no sparse
  all-reduce; a CUDA run whose model has ``nn.Embedding(sparse=True)`` tables averages
  through a gloo group of its own), ``nccl`` on GPU. Nothing here builds on
  ``torch_geometric.distributed`` (deprecated since PyG 2.7).

Validation and the final ranking are sharded too
(:func:`~mmgnn.eval.ranking.evaluate`): each rank scores its share of the query batches
against the full entity table and the ranks are gathered, so the metrics equal those of one
process to the last bit.
"""

from __future__ import annotations

import datetime
import inspect
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from mmgnn.sampling.batches import NegativeBatch, QueryBatch

if TYPE_CHECKING:
    from mmgnn.train.loop import Trainer

#: How long a collective waits for the other ranks before the run fails (a crashed rank
#: otherwise leaves the others waiting; launchers kill the group sooner).
TIMEOUT = datetime.timedelta(minutes=30)
#: The environment of a rank, as ``torchrun`` sets it.
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def is_distributed() -> bool:
    """Whether a process group of more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes files and prints: rank 0, or the only process."""
    return rank() == 0


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; the GPU it uses)."""
    return int(os.environ.get("LOCAL_RANK", rank()))


def backend_for(device: str | torch.device) -> str:
    """``nccl`` for a CUDA run, ``gloo`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def rank_device(device: str | torch.device) -> torch.device:
    """The device of this rank: ``cuda`` means ``cuda:LOCAL_RANK`` in a process group (one GPU
    per rank), anything else is taken as given."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and world_size() > 1:
        return torch.device("cuda", local_rank())
    return device


def init_from_env(device: str | torch.device = "cpu",
                  timeout: datetime.timedelta = TIMEOUT) -> bool:
    """Joins the process group that ``torchrun`` (or :func:`launch`) describes in the
    environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), with
    :func:`backend_for` ``(device)``; a CUDA rank first selects its GPU. Does nothing when the
    environment names no process group of more than one rank or one is initialised already.
    Returns whether a process group is initialised afterwards."""
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    missing = [k for k in ENV[:2] + ENV[3:] if k not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} "
                         f"unset: start the ranks with torchrun or `mmgnn train --nproc N`")
    if torch.device(device).type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda, but torch sees no CUDA device")
        if local_rank() >= torch.cuda.device_count():
            raise ValueError(f"rank {local_rank()} of this machine needs GPU {local_rank()}, but "
                             f"torch sees {torch.cuda.device_count()}: start at most one rank "
                             f"per GPU")
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend_for(device), timeout=timeout)
    return True


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s own draws in a run seeded with ``seed``: the first 63 bits
    of the ``rank``-th child of NumPy's ``SeedSequence(seed)`` (well-mixed, distinct per rank,
    the same on every machine)."""
    state = np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & (2**63 - 1))


def free_port() -> int:
    """A TCP port of this machine that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(local: int, fn: Callable[..., Any], args: tuple, world: int, port: int,
            threads: int, backend: str | None) -> None:
    os.environ.update(RANK=str(local), LOCAL_RANK=str(local), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    if backend is not None:
        dist.init_process_group(backend, rank=local, world_size=world, timeout=TIMEOUT)
    try:
        out = fn(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if isinstance(out, int) and out:
        raise SystemExit(out)


def launch(fn: Callable[..., Any], nproc: int, *args: Any, threads: int | None = None,
           backend: str | None = None) -> None:
    """Runs ``fn(*args)`` on ``nproc`` local ranks (:func:`torch.multiprocessing.spawn`) with
    ``torchrun``'s environment on a free port, ``threads`` torch threads each (default: this
    process's threads shared out, at least one). With ``backend`` the process group is
    initialised before ``fn`` runs; without, ``fn`` calls :func:`init_from_env` (as ``mmgnn
    train`` does). A rank that fails (or returns a non-zero exit code) ends the others and
    raises here. ``fn`` must be importable by name (a module-level function)."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    threads = threads or max(1, torch.get_num_threads() // nproc)
    torch.multiprocessing.spawn(_worker, args=(fn, args, nproc, free_port(), threads, backend),
                                nprocs=nproc, join=True)


# --------------------------------------------------------------------- batches
def _take(batch: Any, lo: int, hi: int) -> Any:
    """Examples ``lo:hi`` of a batch (a tensor, a :class:`NegativeBatch` or a
    :class:`QueryBatch`, whose KvsAll target coordinates are renumbered)."""
    if isinstance(batch, Tensor):
        return batch[lo:hi]
    if isinstance(batch, NegativeBatch):
        return NegativeBatch(batch.positives[lo:hi], batch.negatives[lo:hi])
    if isinstance(batch, QueryBatch):
        out = replace(batch, **{f.name: getattr(batch, f.name)[lo:hi] for f in fields(batch)
                                if f.name in ("entity", "relation", "gold")
                                and getattr(batch, f.name) is not None})
        if batch.target_rows is not None:
            keep = (batch.target_rows >= lo) & (batch.target_rows < hi)
            out = replace(out, target_rows=batch.target_rows[keep] - lo,
                          target_cols=batch.target_cols[keep])
        return out
    raise TypeError(f"cannot split a batch of type {type(batch).__name__} between ranks: a "
                    f"task's batches must be tensors, NegativeBatch or QueryBatch, or the task "
                    f"overrides Task.part")


def batch_part(batch: Any, rank: int, world: int) -> tuple[Any, float]:
    """Rank ``rank``'s part of a global batch of ``n`` examples and its share of the batch:
    part :math:`r` of :math:`W` contiguous parts whose sizes differ by at most one
    (:func:`torch.tensor_split`'s), share :math:`n_r / n`. An empty part (``n < W``) is the
    batch's first example with share 0, so that every rank computes a loss (of weight 0)."""
    n = len(batch)
    lo, hi = rank * n // world, (rank + 1) * n // world
    if hi == lo:
        return _take(batch, 0, 1), 0.0
    return _take(batch, lo, hi), (hi - lo) / n


def evaluation_span(n: int, batch_size: int) -> tuple[int, int]:
    """The examples ``[lo, hi)`` this rank evaluates of ``n`` scored in batches of
    ``batch_size``: part :math:`r` of :math:`W` contiguous runs of whole batches (the batches
    one process forms, so every prediction is the one it makes); ``(0, n)`` without a
    process group. Gathering the ranks' predictions in rank order gives all ``n``."""
    batches, world, me = -(-n // batch_size), world_size(), rank()
    return (min(n, me * batches // world * batch_size),
            min(n, (me + 1) * batches // world * batch_size))


# ------------------------------------------------------------------ collectives
def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) \
        if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce(values: Iterable[float], op: str = "sum") -> list[float]:
    """``values`` reduced over the ranks (``sum`` or ``max``), in float64; as given without a
    process group."""
    values = list(values)
    if not is_distributed():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return t.cpu().tolist()


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on any rank (a decision every rank must take alike: stop on the
    time budget, raise on a non-finite loss)."""
    return bool(all_reduce([float(flag)], op="max")[0])


def gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` without a process group)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def average_gradients(grads: list[Tensor | None], group: Any = None) -> list[Tensor | None]:
    """The mean of each gradient over the ranks (dense or sparse; :obj:`None` stays
    :obj:`None` and must be :obj:`None` on every rank): for the steps that
    :class:`~torch.nn.parallel.DistributedDataParallel` does not see (the extra optimisers of
    :meth:`~mmgnn.models.LinkPredictor.extra_losses`, which take ``torch.autograd.grad``)."""
    world = world_size()
    out = []
    for g in grads:
        if g is not None:
            g = g.coalesce() if g.is_sparse else g.clone()
            dist.all_reduce(g, group=group)
            g = g / world
        out.append(g)
    return out


def barrier() -> None:
    """Waits for every rank (nothing without a process group)."""
    if is_distributed():
        dist.barrier()


# ----------------------------------------------------------------------- DDP
def has_sparse_gradients(module: torch.nn.Module) -> bool:
    """Whether ``module`` holds an ``nn.Embedding`` / ``nn.EmbeddingBag`` with
    ``sparse=True`` (what :class:`~torch.nn.parallel.DistributedDataParallel` reads to expect
    sparse gradients)."""
    return any(isinstance(m, torch.nn.Embedding | torch.nn.EmbeddingBag) and m.sparse
               for m in module.modules())


class TaskStep(torch.nn.Module):
    """The modules a task trains (the model, a learned sampler) with, as ``forward``, the
    task's loss of a batch: what :class:`~torch.nn.parallel.DistributedDataParallel` wraps,
    so that the loss is computed inside its ``forward`` and every parameter the optimisers
    step is averaged."""

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.parts = torch.nn.ModuleList(trainer.task.modules(trainer))
        self._trainer = [trainer]  # not a submodule

    def forward(self, batch: Any) -> tuple[dict[str, Tensor], int]:
        trainer = self._trainer[0]
        return trainer.task.loss(trainer, batch)


def wrap(trainer: Trainer) -> torch.nn.parallel.DistributedDataParallel:
    """The :class:`~torch.nn.parallel.DistributedDataParallel` of the trainer's task (see
    :class:`TaskStep`), broadcasting rank 0's parameters to every rank. Parameters a step
    leaves unused (NativE's generator, a modality branch) are allowed
    (``find_unused_parameters``); buffers (modality features) are constants and are not
    re-broadcast every step. Sparse gradients on a NCCL group go through a gloo group."""
    step = TaskStep(trainer)
    group = None
    if has_sparse_gradients(step) and dist.get_backend() == "nccl":
        group = dist.new_group(backend="gloo")
    device = trainer.device
    ddp = torch.nn.parallel.DistributedDataParallel
    # Renamed in torch 2.12; both leave the initial broadcast on.
    buffers = "forward_sync_buffers" if "forward_sync_buffers" in \
        inspect.signature(ddp).parameters else "broadcast_buffers"
    return ddp(step, device_ids=[device] if device.type == "cuda" else None,
               process_group=group, find_unused_parameters=True, **{buffers: False})


__all__ = ["TIMEOUT", "is_distributed", "rank", "world_size", "is_main", "local_rank",
           "backend_for", "rank_device", "init_from_env", "rank_seed", "free_port", "launch",
           "batch_part", "evaluation_span", "all_reduce", "any_rank", "gather_objects",
           "average_gradients", "barrier", "has_sparse_gradients", "TaskStep", "wrap"]
