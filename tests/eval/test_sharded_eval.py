"""Sharded filtered ranking on 2 gloo ranks equals single-process ranking to the last bit:
every metric, every per-query rank (ties included), both sides, filtered and not; and the
command line's ``mmgnn evaluate --nproc 2``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmgnn.cli import main
from mmgnn.eval import evaluate
from mmgnn.eval.ranking import shard
from mmgnn.models.kge_model import KGEModel
from mmgnn.train import distributed
from tests.helpers import load_toy_kg

#: (decoder, ties, filtered, sides, batch size): odd batch sizes leave the ranks unequal
#: shares of the batches; the rounded DistMult scores tie often.
CASES = [("distmult_rounded", "realistic", True, ("head", "tail"), 7),
         ("distmult_rounded", "pessimistic", False, ("tail",), 50),
         ("transe", "optimistic", True, ("head", "tail"), 33),
         ("rotate", "realistic", True, ("head",), 1000)]


def model_for(kg, decoder: str) -> KGEModel:
    torch.manual_seed(0)
    name = "distmult" if decoder.startswith("distmult") else decoder
    model = KGEModel(kg.num_entities, kg.num_relations, name, dim=8)
    if decoder.endswith("rounded"):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.round(p * 2))
    return model


def rank_cases(kg) -> list[tuple[dict, dict]]:
    out = []
    for decoder, ties, filtered, sides, batch in CASES:
        res = evaluate(model_for(kg, decoder), kg, "test", ties=ties, filtered=filtered,
                       sides=sides, batch_size=batch, keep_ranks=True, progress=False)
        out.append((res.to_dict(), res.ranks))
    return out


def _sharded(folder: str, out: str) -> None:
    kg = load_toy_kg(folder)
    assert shard() == (distributed.rank(), 2)
    torch.save(rank_cases(kg), Path(out) / f"rank{distributed.rank()}.pt")


def untimed(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "seconds"}


def test_sharded_ranking_equals_one_process(toy_folder, tmp_path, one_thread) -> None:
    distributed.launch(_sharded, 2, str(toy_folder), str(tmp_path), threads=1, backend="gloo")
    kg = load_toy_kg(toy_folder)
    single = rank_cases(kg)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    ties_seen = False
    for case, (one, one_ranks) in zip(CASES, single, strict=True):
        for sharded, sharded_ranks in (ranks[0][CASES.index(case)], ranks[1][CASES.index(case)]):
            assert untimed(sharded) == untimed(one), case  # floats compared exactly
            assert set(sharded_ranks) == set(one_ranks)
            for side, values in one_ranks.items():
                assert torch.equal(sharded_ranks[side], values), (case, side)
        ties_seen |= any(bool((v != v.floor()).any()) for v in one_ranks.values())
    assert ties_seen  # the realistic rounded case gives half ranks


def test_shard_without_process_group() -> None:
    assert shard() == (0, 1) and shard(False) == (0, 1)
    with pytest.raises(ValueError, match="needs an initialised process group"):
        shard(True)


def test_cli_evaluate_nproc_matches_one_process(toy_folder, tmp_path, one_thread) -> None:
    out = tmp_path / "run"
    assert main(["train", "--dataset", str(toy_folder), "--model", "transe", "--dim", "8",
                 "--epochs", "1", "--batch_size", "256", "--out", str(out), "--quiet"]) == 0
    assert main(["evaluate", str(out), "--split", "test", "--quiet"]) == 0
    one = json.loads((out / "eval_test.json").read_text())
    (out / "eval_test.json").unlink()
    assert main(["evaluate", str(out), "--split", "test", "--quiet", "--nproc", "2"]) == 0
    two = json.loads((out / "eval_test.json").read_text())
    assert untimed(one) == untimed(two)
