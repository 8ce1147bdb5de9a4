"""GATTransE (IMF's structural encoder) against the core's TransE at the same wall-time budget:
filtered test MRR and Hits@k on FB15k-237 and DB15K.

    MMGNN_DATA=/path/to/datasets python benchmarks/gnn_quality.py --minutes 4

Both models train with IMF's GAT objective: TransE-L1 scores, margin ranking loss (margin 1),
one head and one tail corruption per positive, filtered with the training triples
(``sampler="head_tail"``, ``num_negatives=2``, ``negative_filter="train"``; IMF's released
code filters with every split, ``--negative-filter all_splits``, which leaks the held-out
answers into training), Adam, dimension 200. Each run has the same
``--minutes`` of training (validation at the end included, as ``max_minutes`` counts it); the
last weights are ranked on the test split (filtered, both sides, realistic ties). TransE takes
many small steps (batch 1024); GATTransE runs its encoder over the whole training graph every
step, so it takes fewer, larger ones (``--gat-batch``, ``--gat-lr``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import torch

from mmgnn.data import load_dataset
from mmgnn.eval import evaluate
from mmgnn.models import build_model
from mmgnn.train import ModelSpec, TrainConfig, fit, seed_everything

RESULTS = Path(__file__).resolve().parent / "results"


def configs(args) -> dict[str, tuple[ModelSpec, TrainConfig]]:
    """The two runs: what model (its own arguments) and how it is optimised."""
    common = dict(regime="negative", loss="margin", margin=1.0, sampler="head_tail",
                  num_negatives=2, negative_filter=args.negative_filter, epochs=100_000,
                  eval_every=0, budget_clock=args.budget_clock,
                  patience=0, max_minutes=args.minutes, seed=args.seed)
    return {
        "TransE": (ModelSpec("transe", {"dim": 200, "p_norm": 1}),
                   TrainConfig(batch_size=1024, lr=args.transe_lr, **common)),
        "GATTransE": (ModelSpec("gat_transe", {"dim": 200}),
                      TrainConfig(batch_size=args.gat_batch, lr=args.gat_lr, **common)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["FB15k-237", "DB15K"])
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per run")
    parser.add_argument("--transe-lr", type=float, default=1e-3)
    parser.add_argument("--gat-lr", type=float, default=5e-3)
    parser.add_argument("--gat-batch", type=int, default=32768)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-clock", choices=("cpu", "wall"), default="cpu",
                        help="what --minutes counts: CPU seconds per torch thread (the same "
                        "compute on a shared machine) or wall seconds (default: cpu)")
    parser.add_argument("--negative-filter", choices=("train", "all_splits", "none"),
                        default="train", help="(default: train)")
    parser.add_argument("--json", type=Path, default=RESULTS / "gnn_quality.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; {args.minutes:g} min of training per run")
    rows = []
    for name in args.datasets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kg = load_dataset(name, add_side_info=False)
        for label, (spec, cfg) in configs(args).items():
            seed_everything(cfg.seed)  # before the model draws its weights
            model = build_model(spec.name, kg, **spec.args)
            start = time.perf_counter()
            trainer = fit(model, kg, cfg, progress=False)
            minutes = (time.perf_counter() - start) / 60
            steps = trainer.epoch * -(-len(kg.train) // cfg.batch_size)  # upper bound
            test = evaluate(model, kg, "test", progress=False).to_dict()["both"]
            row = {"dataset": name, "model": label, "negative_filter": cfg.negative_filter,
                   "budget_clock": cfg.budget_clock, "seed": cfg.seed, "epochs": trainer.epoch,
                   "max_steps": steps, "minutes": round(minutes, 2), "batch": cfg.batch_size,
                   "lr": cfg.lr, "valid_mrr": trainer.best_mrr,
                   "config": {"model": spec.to_dict(), "train": cfg.to_dict()},
                   **{k: test[k] for k in ("mrr", "hits@1", "hits@3", "hits@10")}}
            rows.append(row)
            print(f"{name:<10} {label:<10} epochs {row['epochs']:>3}  "
                  f"{row['minutes']:.1f} min  test MRR {row['mrr']:.4f}  H@1 "
                  f"{row['hits@1']:.4f}  H@10 {row['hits@10']:.4f}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                     "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
