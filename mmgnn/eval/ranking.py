"""Filtered link-prediction ranking over all entities, both directions, explicit tie handling."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor

from mmgnn.data.filter import FilterIndex
from mmgnn.data.kg import MultiModalKG
from mmgnn.utils.compile import LazyCompiled, check_kernel
from mmgnn.utils.progress import progress_bar


class LinkScorer(Protocol):
    """What ranking needs of a model (:class:`~mmgnn.models.LinkPredictor` is one): entity
    representations from :meth:`encode`, and the :obj:`(B, N)` scores of every entity as the
    tail of ``(h, r, ?)`` / the head of ``(?, r, t)`` against them; a module's train/eval
    switch."""

    training: bool

    def encode(self) -> Any: ...

    def score_tails(self, x: Any, h: Tensor, r: Tensor) -> Tensor: ...

    def score_heads(self, x: Any, r: Tensor, t: Tensor) -> Tensor: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def parameters(self) -> Iterator[Tensor]: ...


TIES = ("optimistic", "pessimistic", "realistic")
SIDES = ("head", "tail")
HITS = (1, 3, 10)
# Scores per (B, N) matrix at evaluation (8 MiB in float32). Measured on DB15K (DistMult, 2
# CPU cores): ranking takes 1.1 s with 2**24 scores per matrix, 0.75 s with 2**21 to 2**20.
# A matrix of this size stays in the L2/L3 caches between the product and the counting pass,
# and below glibc's 32 MiB mmap threshold its memory is reused instead of being returned to the
# kernel and page-faulted in again for every batch.
EVAL_BATCH_SCORES = 2**21


# Below this many scores a ranking batch takes milliseconds eagerly, less than a compilation.
COMPILE_MIN_SCORES = 2**18


def _count_eager(scores: Tensor, gold_score: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    g = gold_score[:, None]
    # A sum is one cheap pass; NaN anywhere makes it NaN (so does +inf with -inf: then look
    # element-wise).
    has_nan = torch.isnan(scores.sum()) and torch.isnan(scores).any()
    return ((scores > g).sum(dim=1, dtype=torch.int32), (scores == g).sum(dim=1, dtype=torch.int32),
            torch.as_tensor(bool(has_nan)))


def _count_fused(scores: Tensor, gold_score: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    # The same three reductions; compiled, TorchInductor reads the (B, N) matrix once for all of
    # them, where eager mode makes two passes per comparison (~7x slower on 2 CPU cores, as slow
    # as the matrix product that made the scores).
    g = gold_score[:, None]
    return ((scores > g).sum(dim=1, dtype=torch.int32), (scores == g).sum(dim=1, dtype=torch.int32),
            torch.isnan(scores).any())


_COUNT_FUSED = LazyCompiled(_count_fused)


def _count(scores: Tensor, gold_score: Tensor, kernel: str) -> tuple[Tensor, Tensor, Tensor]:
    """Per row: candidates scoring above, and equal to, the gold score; whether any is NaN."""
    use_compiled = kernel == "compiled" or (
        kernel == "auto" and scores.device.type == "cpu" and scores.numel() >= COMPILE_MIN_SCORES)
    if use_compiled and not torch.compiler.is_compiling():
        out = _COUNT_FUSED(scores, gold_score)
        if out is not None:
            return out
    return _count_eager(scores, gold_score)


def rank_of_gold(scores: Tensor, gold: Tensor, ties: str = "realistic",
                 filter_rows: Tensor | None = None, filter_cols: Tensor | None = None, *,
                 kernel: str = "auto") -> Tensor:
    r"""Rank of the gold candidate in each row of ``scores`` (higher score = better).

    With :math:`s^*` the gold score, :math:`g = |\{j : s_j > s^*\}|` and :math:`e` the number of
    *other* candidates with :math:`s_j = s^*`:

    - ``optimistic``: :math:`1 + g` (ties counted in the model's favour; NativE/OpenKE);
    - ``pessimistic``: :math:`1 + g + e`;
    - ``realistic``: :math:`1 + g + e/2`, the expected rank under random tie-breaking
      (Berrendorf et al., 2020; PyKEEN's default).

    Candidates at ``(filter_rows[k], filter_cols[k])`` (other known answers; each pair at most
    once, as :class:`~mmgnn.data.FilterIndex` returns them) are left out of the comparison; the
    gold candidate never competes with itself. ``scores`` is not modified: the counts are taken
    over whole rows in one pass and the filtered entries' share is subtracted afterwards, which
    costs only a gather of those entries.

    Args:
        scores (Tensor): :obj:`(B, N)` scores.
        gold (Tensor): :obj:`(B,)` column of the gold candidate per row.
        ties (str): ``optimistic``, ``pessimistic`` or ``realistic``. (default: ``realistic``)
        filter_rows (Tensor, optional): Rows of the entries to filter out.
        filter_cols (Tensor, optional): Columns of the entries to filter out.
        kernel (str): ``"compiled"`` counts in one fused pass (:mod:`mmgnn.utils.compile`),
            ``"eager"`` in plain PyTorch, ``"auto"`` compiles on CPU for matrices of at least
            :data:`COMPILE_MIN_SCORES` scores. (default: ``"auto"``)

    Returns:
        :obj:`(B,)` float ranks, 1 = best.
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    check_kernel(kernel)
    rows = torch.arange(len(gold), device=scores.device)
    gold_score = scores[rows, gold]
    greater, equal, has_nan = _count(scores, gold_score, kernel)
    if has_nan:
        raise FloatingPointError(
            "the model produced NaN scores; ranks would be meaningless (check the learning rate, "
            "the input features for NaN, or the model's numerical stability)")
    equal = equal - 1  # the gold equals itself
    if filter_rows is not None and len(filter_rows):
        # Subtract the filtered entries' share (the gold, if listed, is not above itself and
        # its equality is already counted out).
        fs, fg = scores[filter_rows, filter_cols], gold_score[filter_rows]
        greater = greater - torch.bincount(filter_rows[fs > fg], minlength=len(gold))
        tied = (fs == fg).logical_and_(filter_cols != gold[filter_rows])
        equal = equal - torch.bincount(filter_rows[tied], minlength=len(gold))
    if ties == "optimistic":
        return 1.0 + greater.float()
    if ties == "pessimistic":
        return 1.0 + (greater + equal).float()
    return 1.0 + greater.float() + 0.5 * equal.float()


@dataclass
class RankingMetrics:
    """MRR, MR and Hits@k over a set of ranks."""

    mrr: float
    mr: float
    hits: dict[int, float]
    count: int

    @classmethod
    def from_ranks(cls, ranks: Tensor, hits: tuple[int, ...] = HITS) -> RankingMetrics:
        ranks = ranks.double()
        if len(ranks) == 0:
            nan = float("nan")
            return cls(nan, nan, {k: nan for k in hits}, 0)
        return cls(
            mrr=float((1.0 / ranks).mean()),
            mr=float(ranks.mean()),
            hits={k: float((ranks <= k).double().mean()) for k in hits},
            count=len(ranks),
        )

    def to_dict(self) -> dict[str, float]:
        out = {"mrr": self.mrr, "mr": self.mr}
        out.update({f"hits@{k}": v for k, v in self.hits.items()})
        out["count"] = self.count
        return out


@dataclass
class RankingResult:
    """Metrics per side (``head``, ``tail``) and over both (``both``), with the settings used."""

    sides: dict[str, RankingMetrics]
    ties: str
    filtered: bool
    split: str
    seconds: float
    ranks: dict[str, Tensor] = field(default_factory=dict, repr=False)

    @property
    def both(self) -> RankingMetrics:
        return self.sides["both"]

    @property
    def mrr(self) -> float:
        return self.both.mrr

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {s: m.to_dict() for s, m in self.sides.items()}
        out.update(ties=self.ties, filtered=self.filtered, split=self.split,
                   seconds=round(self.seconds, 3))
        return out

    def format(self) -> str:
        """A small table: one row per side, one column per metric."""
        hits = list(self.sides["both"].hits)
        head = f"{'side':<6}{'MRR':>8}{'MR':>10}" + "".join(f"{'H@' + str(k):>8}" for k in hits)
        lines = [f"{self.split}: filtered={self.filtered}, ties={self.ties}, "
                 f"{self.sides['both'].count} queries, {self.seconds:.1f} s", head]
        for side, m in self.sides.items():
            lines.append(f"{side:<6}{m.mrr:>8.4f}{m.mr:>10.1f}"
                         + "".join(f"{m.hits[k]:>8.4f}" for k in hits))
        return "\n".join(lines)


def shard(distributed: bool | None = None) -> tuple[int, int]:
    """``(rank, world size)`` that :func:`evaluate` shards over: the default process group's
    when ``distributed`` is :obj:`None` (auto) or :obj:`True` and one is initialised, else
    ``(0, 1)``."""
    if distributed is False or not (dist.is_available() and dist.is_initialized()):
        if distributed:
            raise ValueError("evaluate(distributed=True) needs an initialised process group "
                             "(torch.distributed.init_process_group)")
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def gather_batches(mine: list[Tensor], sizes: list[int], rank: int, world: int) -> list[Tensor]:
    """Every batch's ranks, in batch order, on every rank, from each rank's ``mine`` (the
    ranks of batches ``rank, rank + world, ...`` of ``sizes``): one padded ``all_gather``.
    The values travel as they are, so the result is what one process computes."""
    owned = [sizes[r::world] for r in range(world)]
    longest = max(sum(o) for o in owned)
    device = torch.device("cuda", torch.cuda.current_device()) \
        if dist.get_backend() == "nccl" else torch.device("cpu")
    local = torch.cat(mine) if mine else torch.empty(0)
    padded = torch.zeros(longest, dtype=local.dtype, device=device)
    padded[:len(local)] = local.to(device)
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    out: list[Tensor] = [torch.empty(0)] * len(sizes)
    for r in range(world):
        pieces = gathered[r].cpu()[:sum(owned[r])].split(owned[r])
        for k, piece in enumerate(pieces):
            out[r + k * world] = piece
    return out


def _unsort(values: Tensor, order: Tensor) -> Tensor:
    """``values`` of queries taken in ``order``, back in the caller's order."""
    out = torch.empty_like(values)
    out[order] = values
    return out


@torch.no_grad()
def evaluate(
    model: LinkScorer,
    kg: MultiModalKG,
    split: str = "valid",
    *,
    triples: Tensor | None = None,
    ties: str = "realistic",
    filtered: bool = True,
    sides: tuple[str, ...] = SIDES,
    hits: tuple[int, ...] = HITS,
    batch_size: int | None = None,
    filter_index: FilterIndex | None = None,
    progress: bool = True,
    keep_ranks: bool = False,
    distributed: bool | None = None,
) -> RankingResult:
    r"""Ranks every entity for each query of a split and reports MRR, MR and Hits@k.

    For each triple :math:`(h, r, t)` the tail query :math:`(h, r, ?)` ranks :math:`t` among all
    :math:`N` entities and the head query :math:`(?, r, t)` ranks :math:`h`. In the filtered
    setting (Bordes et al., 2013) the other known true answers (train + valid + test) are
    removed from the candidates. The encoder runs once; queries are scored in batches of
    :obj:`(B, N)` score matrices, so the cost is that of the matrix products the decoder needs.

    **Sharded.** In a process group of :math:`W` ranks (``torchrun``, data-parallel training)
    every rank encodes the full entity table and scores the query batches
    :math:`r, r + W, \dots` of the one batch list a single process would score (same batches,
    same kernels), and the ranks are all-gathered: every rank returns the metrics of one
    process, to the last bit. Every rank must then call it (pass ``distributed=False`` to rank
    on one rank alone).

    Args:
        model (LinkScorer): The model to evaluate (e.g. a
            :class:`~mmgnn.models.LinkPredictor`) (put in eval mode for the duration).
        kg (MultiModalKG): The graph; supplies the split and the filter.
        split (str): ``valid`` or ``test`` (the training loop selects models on ``valid``
            only). (default: ``valid``)
        triples (Tensor, optional): Rank these :obj:`(n, 3)` triples instead of the split.
        ties (str): ``optimistic``, ``pessimistic`` or ``realistic``. (default: ``realistic``)
        filtered (bool): Filter known true answers. (default: :obj:`True`)
        sides (tuple[str, ...]): Any of ``head``, ``tail``. (default: both)
        hits (tuple[int, ...]): The :math:`k` of Hits@k. (default: ``(1, 3, 10)``)
        batch_size (int, optional): Queries per score matrix; by default chosen so that a
            matrix holds about :data:`EVAL_BATCH_SCORES` scores.
        filter_index (FilterIndex, optional): Use this filter instead of ``kg.filter_index()``.
        progress (bool): Show a progress bar. (default: :obj:`True`)
        keep_ranks (bool): Keep the per-query ranks in the result. (default: :obj:`False`)
        distributed (bool, optional): Shard over the ranks of the process group; :obj:`None`:
            whenever one is initialised. (default: :obj:`None`)
    """
    for side in sides:
        if side not in SIDES:
            raise ValueError(f"sides must be among {SIDES}, got {side!r}")
    triples = kg.split(split) if triples is None else triples
    flt = (filter_index or kg.filter_index()) if filtered else None
    n = kg.num_entities
    batch_size = batch_size or max(1, min(4096, EVAL_BATCH_SCORES // n))
    rank, world = shard(distributed)
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        x = model.encode()
        device = x.device if isinstance(x, Tensor) else next(model.parameters()).device
        # Queries grouped by relation: a model whose candidates depend on the relation
        # (NativE's relation-guided fusion) builds one table per relation of a batch.
        order = torch.argsort(triples[:, 1], stable=True)
        triples = triples[order].to(device)
        batches = [(s, b) for s in sides for b in triples.split(batch_size)]
        mine: list[Tensor] = []
        for side, batch in progress_bar(batches[rank::world], desc=f"ranking {split}",
                                        disable=not progress, leave=False):
            h, r, t = batch.unbind(1)
            if side == "tail":
                scores, gold = model.score_tails(x, h, r), t
                fr, fc = flt.true_tails(h, r) if flt else (None, None)
            else:
                scores, gold = model.score_heads(x, r, t), h
                fr, fc = flt.true_heads(r, t) if flt else (None, None)
            mine.append(rank_of_gold(scores.float(), gold, ties, fr, fc).cpu())
    finally:
        model.train(was_training)
    if world > 1:
        mine = gather_batches(mine, [len(b) for _, b in batches], rank, world)
    ranks: dict[str, list[Tensor]] = {s: [] for s in sides}
    for (side, _), values in zip(batches, mine, strict=True):
        ranks[side].append(values)
    per_side = {s: _unsort(torch.cat(v), order) if v else torch.empty(0)
                for s, v in ranks.items()}
    metrics = {s: RankingMetrics.from_ranks(v, hits) for s, v in per_side.items()}
    metrics["both"] = RankingMetrics.from_ranks(torch.cat(list(per_side.values())), hits)
    return RankingResult(metrics, ties, filtered, split, time.perf_counter() - start,
                         per_side if keep_ranks else {})
