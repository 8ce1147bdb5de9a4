"""Data-parallel training on 2 gloo ranks (``torch.multiprocessing.spawn`` through
:func:`mmgnn.train.distributed.launch`, a free port, one thread per rank) on the toy graph.

Each spawned run writes what its ranks hold into ``tmp_path``; the test process compares.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mmgnn.models import build_model
from mmgnn.models.kge_model import KGEModel
from mmgnn.train import TrainConfig, fit, seed_everything
from mmgnn.train import distributed as dist_mod
from mmgnn.train.distributed import batch_part, launch, rank_seed
from mmgnn.train.loop import Trainer
from mmgnn.train.tasks import LinkPredictionTask
from mmgnn.utils.io import load_checkpoint
from tests.helpers import load_toy_kg

WORLD = 2
#: 2 ranks x (parts of a global batch G) vs 1 process x G, float64 throughout, same negatives,
#: Adam: the parameters agree to this. Measured on the toy graph: at most 1.1e-16 (negative),
#: 6.2e-17 (1vsAll), 6.2e-16 (KvsAll); the two halves' gradients are summed in another order.
#: (With KvsAll's float32 targets the gap was 5e-8: Adam magnifies float32 rounding of
#: near-zero gradients by up to lr / eps.)
EQUIVALENCE_ATOL = 1e-12


def spawn(fn, *args) -> None:
    launch(fn, WORLD, *args, threads=1, backend="gloo")


# ------------------------------------------------------------------ models
def build(name: str, kg) -> tuple[torch.nn.Module, TrainConfig]:
    seed_everything(0)
    common = dict(epochs=2, batch_size=128, eval_every=1, patience=0, seed=0)
    if name == "dense":
        return (KGEModel(kg.num_entities, kg.num_relations, "transe", dim=8),
                TrainConfig(lr=0.05, num_negatives=2, **common))
    if name == "sparse":  # nn.Embedding(sparse=True): gloo's sparse all-reduce
        return (KGEModel(kg.num_entities, kg.num_relations, "transe", dim=8, sparse=True),
                TrainConfig(lr=0.1, optimizer="row_adagrad", num_negatives=2, **common))
    model = build_model("native", kg, modality_names=["numeric"], dim=8)  # two optimisers
    return model, TrainConfig(lr=0.01, loss="self_adversarial", num_negatives=2, **common)


# ------------------------------------------------------------ rank workers
def _train_models(folder: str, out: str) -> None:
    kg = load_toy_kg(folder)
    rank = dist_mod.rank()
    results = {}
    for name in ("dense", "sparse", "native"):
        model, cfg = build(name, kg)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        trainer = fit(model, kg, cfg, progress=False)
        grad = getattr(model, "entity", None)
        results[name] = {
            "state": model.state_dict(), "before": before, "steps": trainer.steps,
            "valid_mrr": trainer.history[-1]["valid_mrr"], "loss": trainer.history[-1]["loss"],
            "sparse_grad": bool(grad is not None and grad.weight.grad is not None
                                and grad.weight.grad.is_sparse)}
    torch.save(results, Path(out) / f"rank{rank}.pt")


class FixedNegatives:
    """Negatives that depend on the positive only (no generator): one process and two ranks
    then train on the same negatives."""

    learned = False

    def __init__(self, num_entities: int, k: int = 3) -> None:
        self.n, self.k = num_entities, k

    def sample(self, positives: torch.Tensor, generator=None) -> torch.Tensor:
        h, r, t = positives.unbind(1)
        step = torch.arange(1, self.k + 1)[None]
        nt = (t[:, None] + step + (7 * h + 3 * r)[:, None]) % self.n
        return torch.stack([h[:, None].expand_as(nt), r[:, None].expand_as(nt), nt], -1)


class FixedNegativesTask(LinkPredictionTask):
    def setup(self, trainer: Trainer) -> None:
        super().setup(trainer)
        if trainer.config.regime == "negative":
            self.sampler = FixedNegatives(self.kg.num_entities)


#: Global batch 662 of the 1325 training triples (and of each side's 1325 1-to-all queries):
#: batches of 662, 662 and 1, so the last batch leaves rank 1 an empty part.
EQUIVALENCE = {"negative": dict(regime="negative", loss="margin", batch_size=662, epochs=2),
               "1vsall": dict(regime="1vsall", batch_size=662, epochs=1),
               "kvsall": dict(regime="kvsall", batch_size=301, epochs=1)}


def equivalence_run(kg, regime: str) -> dict:
    """A run in float64 throughout (KvsAll's targets too)."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        seed_everything(0)
        model = KGEModel(kg.num_entities, kg.num_relations, "distmult", dim=8)
        cfg = TrainConfig(lr=0.01, eval_every=0, patience=0, **EQUIVALENCE[regime])
        fit(model, FixedNegativesTask(kg), cfg, progress=False)
    finally:
        torch.set_default_dtype(dtype)
    return model.state_dict()


def _equivalence(folder: str, out: str) -> None:
    kg = load_toy_kg(folder)
    torch.save({r: equivalence_run(kg, r) for r in EQUIVALENCE},
               Path(out) / f"rank{dist_mod.rank()}.pt")


def _kill_resume(folder: str, out: str, phase: str) -> None:
    kg = load_toy_kg(folder)
    cfg = TrainConfig(lr=0.05, epochs=2, batch_size=200, eval_every=1, patience=0, seed=0,
                      num_negatives=2)

    def run(run_dir: Path, resume: bool = False, kill_at: int | None = None) -> None:
        seed_everything(0)
        model = KGEModel(kg.num_entities, kg.num_relations, "transe", dim=8)

        def kill(trainer: Trainer, record: dict) -> None:  # before epoch kill_at is saved
            if trainer.epoch == kill_at:
                os._exit(3)

        fit(model, kg, cfg, out_dir=run_dir, resume=resume, progress=False, callbacks=[kill])

    if phase == "first":
        run(Path(out) / "whole")
        run(Path(out) / "killed", kill_at=2)
    else:
        run(Path(out) / "killed", resume=True)


def untimed(value):
    """``value`` without its time fields (``minutes``, ``seconds``)."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in ("minutes", "seconds")}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


# ------------------------------------------------------------------ tests
def test_batch_part_splits_every_batch_kind() -> None:
    from mmgnn.sampling.batches import QueryBatch

    batch = torch.arange(15).view(5, 3)
    parts = [batch_part(batch, r, 2) for r in range(2)]
    assert torch.equal(torch.cat([p for p, _ in parts]), batch)
    assert [s for _, s in parts] == [2 / 5, 3 / 5]
    one = batch[:1]
    assert batch_part(one, 0, 2)[1] == 0.0 and torch.equal(batch_part(one, 1, 2)[0], one)
    # KvsAll targets: the (row, column) nonzeros follow their rows, renumbered.
    q = QueryBatch("tail", torch.arange(4), torch.zeros(4, dtype=torch.long),
                   target_rows=torch.tensor([0, 1, 1, 2, 3, 3]),
                   target_cols=torch.tensor([5, 6, 7, 8, 9, 4]))
    second, share = batch_part(q, 1, 2)
    assert share == 0.5 and second.entity.tolist() == [2, 3]
    assert second.target_rows.tolist() == [0, 1, 1] and second.target_cols.tolist() == [8, 9, 4]
    with pytest.raises(TypeError, match="cannot split"):
        batch_part([1, 2, 3], 0, 2)


def test_rank_seeds_differ_and_repeat() -> None:
    seeds = [rank_seed(0, r) for r in range(4)]
    assert len(set(seeds)) == 4 and seeds == [rank_seed(0, r) for r in range(4)]
    assert rank_seed(1, 0) != rank_seed(0, 0) and all(0 <= s < 2**63 for s in seeds)


def test_ranks_hold_identical_parameters(toy_folder, tmp_path) -> None:
    """After 2 epochs (22 steps, validation each epoch) every rank holds the same parameters,
    bit for bit: a dense model, one with sparse gradients (``KGEModel(sparse=True)`` with
    ``row_adagrad``; gloo's sparse all-reduce) and NativE with its second optimiser (averaged
    outside DDP)."""
    spawn(_train_models, str(toy_folder), str(tmp_path))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for name in ("dense", "sparse", "native"):
        a, b = ranks[0][name], ranks[1][name]
        assert a["steps"] == b["steps"] == 2 * -(-1325 // 128)
        for key, value in a["state"].items():
            assert torch.equal(value, b["state"][key]), (name, key)
        moved = [k for k, v in a["state"].items() if not torch.equal(v, a["before"][k])]
        assert moved, name
        assert a["valid_mrr"] == b["valid_mrr"] and a["loss"] == b["loss"]
    assert ranks[0]["sparse"]["sparse_grad"] and not ranks[0]["dense"]["sparse_grad"]
    native = ranks[0]["native"]
    assert any(k.startswith("generator.") and not torch.equal(v, native["before"][k])
               for k, v in native["state"].items())


def test_two_ranks_take_the_steps_of_one_process_at_twice_the_batch(toy_folder,
                                                                    tmp_path) -> None:
    """2 ranks x parts of a global batch G reach the parameters of 1 process x batch G when
    the negatives are the same (a sampler that needs no generator; 1vsAll and KvsAll draw
    none), uneven parts and an empty last part included."""
    spawn(_equivalence, str(toy_folder), str(tmp_path))
    kg = load_toy_kg(toy_folder)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for regime in EQUIVALENCE:
        single = equivalence_run(kg, regime)
        for key, value in single.items():
            assert torch.equal(ranks[0][regime][key], ranks[1][regime][key])
            torch.testing.assert_close(ranks[0][regime][key], value, rtol=0,
                                       atol=EQUIVALENCE_ATOL, msg=f"{regime} {key}")
        assert single["entity.weight"].dtype == torch.float64
        assert not torch.allclose(single["decoder.rel_emb.weight"],
                                  equivalence_run_untrained(kg)["decoder.rel_emb.weight"].double())


def equivalence_run_untrained(kg) -> dict:
    seed_everything(0)
    return KGEModel(kg.num_entities, kg.num_relations, "distmult", dim=8).state_dict()


def test_killed_two_rank_run_resumes_bit_identical(toy_folder, tmp_path) -> None:
    """Both ranks die before epoch 2's checkpoint; 2 ranks resume from epoch 1's and end
    where the uninterrupted 2-rank run ended, bit for bit. One process may not resume it."""
    with pytest.raises(Exception, match="exit code 3|exited with exit code"):
        spawn(_kill_resume, str(toy_folder), str(tmp_path), "first")
    killed = tmp_path / "killed"
    assert load_checkpoint(killed / "checkpoint.pt")["epoch"] == 1
    kg = load_toy_kg(toy_folder)
    model = KGEModel(kg.num_entities, kg.num_relations, "transe", dim=8)
    with pytest.raises(ValueError, match="written by a run of 2 rank"):
        Trainer(model, kg, TrainConfig(epochs=2, batch_size=200), out_dir=killed,
                progress=False).fit(resume=True)
    spawn(_kill_resume, str(toy_folder), str(tmp_path), "resume")
    whole = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    resumed = load_checkpoint(killed / "checkpoint.pt")
    assert whole["epoch"] == resumed["epoch"] == 2 and whole["world_size"] == 2
    for key, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert untimed(whole["history"]) == untimed(resumed["history"])
    assert len(whole["ranks"]) == 2 and not torch.equal(
        whole["ranks"][0]["local_generator"], whole["ranks"][1]["local_generator"])
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == [
        "best.pt", "checkpoint.pt", "metrics.json", "training.png"]


def test_cli_train_nproc(toy_folder, tmp_path, one_thread) -> None:
    """``mmgnn train --nproc 2``: one run folder written by rank 0, a checkpoint of 2 ranks,
    the final sharded ranking in metrics.json."""
    import json

    from mmgnn.cli import main

    out = tmp_path / "run"
    assert main(["train", "--nproc", "2", "--dataset", str(toy_folder), "--model", "transe",
                 "--dim", "8", "--epochs", "2", "--batch_size", "256", "--out", str(out),
                 "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["steps"] == 2 * -(-1325 // 256)
    assert metrics["final"]["test"]["both"]["count"] == 2 * 129
    assert load_checkpoint(out / "checkpoint.pt")["world_size"] == 2
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt", "checkpoint.pt", "config.json", "metrics.json", "training.png"]
