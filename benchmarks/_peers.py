"""The same KGE model in mmgnn, PyG's ``torch_geometric.nn.kge`` and PyKEEN, with mmgnn's weights
copied into the peers, and one timed training epoch in each library, for
``benchmarks/kge_speed.py``.

Entity layouts differ: mmgnn stores a complex vector as ``[re | im]``; PyKEEN stores it
interleaved (``view_as_complex`` of ``(..., d, 2)``); PyG keeps two tables (``node_emb``,
``node_emb_im``). RotatE relations are phases in mmgnn and PyG, unit complex numbers in PyKEEN.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from mmgnn.models import KGEModel


@dataclass(frozen=True)
class ModelSpec:
    """One model as each library names it. ``dim`` is always the number of real coordinates
    per entity; complex models get ``dim // 2`` complex dimensions."""

    label: str
    decoder: str
    kwargs: tuple[tuple[str, object], ...] = ()
    complex: bool = False
    # False where PyKEEN scores a different function with the same weights (RotatE: PyKEEN and
    # PyG use the L2 norm over all real coordinates, mmgnn the paper's sum of complex moduli).
    same_function: bool = True

    def hidden(self, dim: int) -> int:
        return dim // 2 if self.complex else dim


# Our metric names and PyKEEN's; PyKEEN's rank types and sides.
METRICS = (("mrr", "inverse_harmonic_mean_rank"), ("mr", "arithmetic_mean_rank"),
           ("hits@1", "hits_at_1"), ("hits@3", "hits_at_3"), ("hits@10", "hits_at_10"))
TIES = ("realistic", "optimistic", "pessimistic")
SIDES = ("head", "tail", "both")

SPECS = {
    "transe-l1": ModelSpec("TransE-L1", "transe", (("p_norm", 1),)),
    "transe-l2": ModelSpec("TransE-L2", "transe", (("p_norm", 2),)),
    "distmult": ModelSpec("DistMult", "distmult"),
    "complex": ModelSpec("ComplEx", "complex", complex=True),
    "rotate": ModelSpec("RotatE", "rotate", complex=True, same_function=False),
}


def mmgnn_model(spec: ModelSpec, num_entities: int, num_relations: int, dim: int,
                seed: int = 0) -> KGEModel:
    """A freshly initialised mmgnn model; the same ``seed`` gives the same weights in every
    process."""
    torch.manual_seed(seed)
    return KGEModel(num_entities, num_relations, spec.decoder, dim=spec.hidden(dim),
                    **dict(spec.kwargs))


def _interleave(x: Tensor) -> Tensor:
    """``[re | im]`` → PyKEEN's interleaved ``re0, im0, re1, im1, ...``."""
    re, im = x.chunk(2, dim=-1)
    return torch.stack([re, im], dim=-1).flatten(-2)


def pykeen_model(spec: ModelSpec, triples_factory, dim: int, seed: int = 0):
    """The PyKEEN model of ``spec`` (margin ranking loss, as in the benchmark)."""
    from pykeen import models

    cls = {"transe": models.TransE, "distmult": models.DistMult, "complex": models.ComplEx,
           "rotate": models.RotatE}[spec.decoder]
    extra = {"scoring_fct_norm": dict(spec.kwargs)["p_norm"]} if spec.decoder == "transe" else {}
    return cls(triples_factory=triples_factory, embedding_dim=spec.hidden(dim),
               loss="marginranking", random_seed=seed, **extra)


@torch.no_grad()
def copy_to_pykeen(model: KGEModel, pk, spec: ModelSpec) -> None:
    """Copies mmgnn's entity and relation weights into PyKEEN model ``pk``."""
    ent, rel = model.entity.weight, model.decoder.rel_emb.weight
    if spec.decoder == "rotate":
        theta = model.decoder.phase(torch.arange(len(rel)))
        rel = torch.cat([theta.cos(), theta.sin()], dim=-1)
    if spec.complex:
        ent, rel = _interleave(ent), _interleave(rel)
    pk.entity_representations[0]._embeddings.weight.copy_(ent)
    pk.relation_representations[0]._embeddings.weight.copy_(rel)


def pyg_model(spec: ModelSpec, num_entities: int, num_relations: int, dim: int):
    """The PyG model of ``spec`` (its own ``loss``: margin ranking for TransE, DistMult; binary
    cross-entropy for ComplEx, RotatE)."""
    from torch_geometric.nn import kge

    hidden = spec.hidden(dim)
    if spec.decoder == "transe":
        return kge.TransE(num_entities, num_relations, hidden,
                          p_norm=float(dict(spec.kwargs)["p_norm"]))
    cls = {"distmult": kge.DistMult, "complex": kge.ComplEx, "rotate": kge.RotatE}[spec.decoder]
    return cls(num_entities, num_relations, hidden)


@torch.no_grad()
def copy_to_pyg(model: KGEModel, pg, spec: ModelSpec) -> None:
    """Copies mmgnn's weights into PyG model ``pg`` (PyG's TransE re-normalises entity rows with
    the ``p``-norm inside every score, so its L1 scores differ from mmgnn's; timing does not)."""
    ent, rel = model.entity.weight, model.decoder.rel_emb.weight
    if spec.decoder == "rotate":
        rel = model.decoder.phase(torch.arange(len(rel))) % (2 * math.pi)
    if spec.complex:
        re, im = ent.chunk(2, dim=-1)
        pg.node_emb.weight.copy_(re)
        pg.node_emb_im.weight.copy_(im)
        if spec.decoder == "complex":
            rel, rel_im = rel.chunk(2, dim=-1)
            pg.rel_emb_im.weight.copy_(rel_im)
    else:
        pg.node_emb.weight.copy_(ent)
    pg.rel_emb.weight.copy_(rel)


@torch.no_grad()
def score_difference(model: KGEModel, pk, triples: Tensor) -> float:
    """Largest ``|mmgnn score - PyKEEN score|`` over ``triples`` :obj:`(n, 3)`."""
    model.eval()
    h, r, t = triples.unbind(1)
    ours = model.score_triples(model.encode(), h, r, t)
    theirs = pk.score_hrt(triples).view(-1)
    return float((ours - theirs).abs().max())


# ---------------------------------------------------------------------- evaluation
def pykeen_rank(model: KGEModel, spec: ModelSpec, kg, test: Tensor, dim: int,
                seed: int) -> dict:
    """PyKEEN's filtered (train + valid + test), both-sided ``RankBasedEvaluator`` on ``test``
    with mmgnn's weights: ``seconds``, ``metrics[ties][side][metric]`` and, where both
    libraries score the same function, ``score_check`` (largest score difference)."""
    from pykeen.evaluation import RankBasedEvaluator
    from pykeen.triples import CoreTriplesFactory

    tf = CoreTriplesFactory.create(mapped_triples=kg.train, num_entities=kg.num_entities,
                                   num_relations=kg.num_relations)
    pk = pykeen_model(spec, tf, dim, seed)
    copy_to_pykeen(model, pk, spec)
    out = {"score_check": score_difference(model, pk, test[:1000])} if spec.same_function else {}
    start = time.perf_counter()  # batch 32: what PyKEEN picks on CPU when given none
    result = RankBasedEvaluator(filtered=True).evaluate(
        pk, test, batch_size=32, additional_filter_triples=[kg.train, kg.valid, kg.test],
        use_tqdm=False)
    out["seconds"] = time.perf_counter() - start
    out["metrics"] = {ties: {side: {ours: result.get_metric(f"{side}.{ties}.{theirs}")
                                    for ours, theirs in METRICS} for side in SIDES}
                      for ties in TIES}
    return out


def pyg_test_seconds(model: KGEModel, spec: ModelSpec, kg, triples: Tensor, dim: int) -> float:
    """Seconds PyG's ``KGEModel.test()`` (tail queries only, unfiltered, one triple at a time)
    takes to rank ``triples`` with mmgnn's weights."""
    pg = pyg_model(spec, kg.num_entities, kg.num_relations, dim)
    copy_to_pyg(model, pg, spec)
    start = time.perf_counter()
    pg.test(triples[:, 0], triples[:, 1], triples[:, 2], batch_size=20000, log=False)
    return time.perf_counter() - start


# ------------------------------------------------------------------------ training
def _clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the device's queued work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def train_steps(kg, triples, spec, p: dict) -> list[float]:
    """Trains one epoch over ``triples`` with library ``p["lib"]`` on ``p["device"]``
    (default: cpu); returns the time at which each optimiser step ended."""
    n, r, b, k = kg.num_entities, kg.num_relations, p["batch"], p["negatives"]
    device = torch.device(p.get("device", "cpu"))
    if p["lib"] == "mmgnn":
        from mmgnn.data.kg import MultiModalKG
        from mmgnn.train import TrainConfig, Trainer

        # The model comes from mmgnn_model (its own arguments); the config is optimisation only.
        cfg = TrainConfig(regime="negative", loss="margin", num_negatives=k, batch_size=b,
                          lr=p["lr"], eval_every=0, seed=p["seed"], device=str(device),
                          negative_filter="none")  # as the peers draw
        sub = MultiModalKG(kg.entity_names, kg.relation_names, triples, kg.valid, kg.test)
        trainer = Trainer(mmgnn_model(spec, n, r, p["dim"], p["seed"]), sub, cfg,
                          progress=False)
        # Trainer.fit would add a validation pass; one epoch of its task's batches, each a
        # trainer.step, is the training work.
        trainer.model.train()
        stamps = []
        for batch in trainer.task.batches(trainer):
            losses, _ = trainer.task.loss(trainer, batch)
            trainer.step(losses["loss"])
            stamps.append(_clock(device))
        return stamps
    if p["lib"] == "pyg":  # as in PyG's examples/kge_fb15k_237.py
        model = pyg_model(spec, n, r, p["dim"]).to(device)
        triples = triples.to(device)
        loader = model.loader(head_index=triples[:, 0], rel_type=triples[:, 1],
                              tail_index=triples[:, 2], batch_size=b, shuffle=True)
        optimizer = torch.optim.Adam(model.parameters(), lr=p["lr"])
        model.train()
        stamps = []
        for h, rel, t in loader:
            optimizer.zero_grad()
            model.loss(h, rel, t).backward()
            optimizer.step()
            stamps.append(_clock(device))
        return stamps
    from pykeen.training import SLCWATrainingLoop
    from pykeen.training.callbacks import TrainingCallback
    from pykeen.triples import CoreTriplesFactory

    starts: list[float] = []

    class Clock(TrainingCallback):
        def pre_batch(self, **kwargs) -> None:  # batch i starts when step i - 1 has ended
            starts.append(_clock(device))

    tf = CoreTriplesFactory.create(mapped_triples=triples, num_entities=n, num_relations=r)
    loop = SLCWATrainingLoop(model=pykeen_model(spec, tf, p["dim"], p["seed"]).to(device),
                             triples_factory=tf, optimizer="adam",
                             optimizer_kwargs={"lr": p["lr"]},
                             negative_sampler_kwargs={"num_negs_per_pos": k})
    loop.train(triples_factory=tf, num_epochs=1, batch_size=b, use_tqdm=False,
               use_tqdm_batch=False, callbacks=Clock(), pin_memory=False)
    return starts[1:] + [_clock(device)]
