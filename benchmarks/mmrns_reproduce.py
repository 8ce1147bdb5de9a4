"""MMRNS against its two controls at equal steps, several seeds: the recipes of
``configs/mmrns-<dataset>.yaml`` (MMRNS), ``-pool-uniform.yaml`` (uniform draws from the same
shared pre-sample) and ``-uniform.yaml`` (the base decoder with uniform negatives), each run
with its ``reproduce.cpu.overrides`` (or ``--full``: the released budget) through
:func:`mmgnn.cli_reproduce.run_seeds`, i.e. ``mmgnn train`` per seed. Seeds are interleaved
across the three arms, so a run cut short still compares like with like. One JSON row per
(arm, seed) is appended to ``benchmarks/results/mmrns_reproduce.jsonl`` as it lands.

    export MMGNN_DATA=/path/to/datasets
    /work/measure/slot python benchmarks/mmrns_reproduce.py --dataset mkgw --seeds 0 1 2
    # equal CPU time: the controls for the MMRNS arm's mean train_cpu_min
    /work/measure/slot python benchmarks/mmrns_reproduce.py --arms uniform pool_uniform \
        --cpu-minutes 2.57
    python benchmarks/mmrns_reproduce.py --table     # mean +- std per arm from the rows
    # the released budget (100k steps, ~1170 epochs on MKG-W; a GPU job):
    python benchmarks/mmrns_reproduce.py --dataset mkgw --seeds 0 1 2 --full
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = ROOT / "benchmarks" / "results" / "mmrns_reproduce.jsonl"
ARMS = {"mmrns": "", "pool_uniform": "-pool-uniform", "uniform": "-uniform"}


def run(dataset: str, seeds: list[int], out: Path, full: bool, arms: list[str],
        cpu_minutes: float | None = None) -> None:
    from mmgnn.cli_reproduce import read_recipe, run_seeds

    for seed in seeds:
        for arm in arms:
            config = ROOT / "configs" / f"mmrns-{dataset}{ARMS[arm]}.yaml"
            t0 = time.perf_counter()
            # equal CPU time: the arm trains until cpu_minutes on the CPU clock instead
            extra = ({} if cpu_minutes is None else
                     {"train.max_minutes": cpu_minutes, "train.epochs": 100000})
            res = run_seeds(config, out, seeds=[seed], full=full, extra=extra,
                            name=f"{config.stem}{'-full' if full else ''}"
                                 f"{'' if cpu_minutes is None else f'-cpu{cpu_minutes:g}'}")
            row = res["rows"][0]
            ROWS.parent.mkdir(parents=True, exist_ok=True)
            with ROWS.open("a") as f:
                f.write(json.dumps({
                    "dataset": dataset, "arm": arm, "seed": seed, "config": str(config.name),
                    "budget": ("released" if full else "reproduce.cpu.overrides")
                    + ("" if cpu_minutes is None else f", {cpu_minutes:g} CPU-min"),
                    "overrides": {**({} if full else read_recipe(config)["cpu"]["overrides"]),
                                  **extra},
                    "epochs": row["epochs"], "steps": row["steps"],
                    "train_cpu_min": row["train_minutes"], "run_cpu_min": row["cpu_minutes"],
                    "wall_min": round((time.perf_counter() - t0) / 60, 2),
                    "load_avg": round(os.getloadavg()[0], 1), "threads": 1,
                    **{k: row["test"][k] for k in ("mrr", "hits@1", "hits@3", "hits@10")},
                    "valid_mrr": row["valid"].get("mrr")}) + "\n")
            print(f"{arm} seed {seed}: test MRR {row['test']['mrr']:.4f}", flush=True)


def table(path: Path = ROWS) -> str:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    lines = []
    for key in sorted({(r["dataset"], r["budget"], r["arm"]) for r in rows}):
        sel = [r for r in rows if (r["dataset"], r["budget"], r["arm"]) == key]
        mrr = [r["mrr"] for r in sel]
        mean = sum(mrr) / len(mrr)
        std = math.sqrt(sum((v - mean) ** 2 for v in mrr) / (len(mrr) - 1)) if len(mrr) > 1 \
            else 0.0
        cpu = sum(r["train_cpu_min"] or 0 for r in sel) / len(sel)
        seeds = sorted(r["seed"] for r in sel)
        lines.append(f"{key[0]:<6} {key[1]:<40} {key[2]:<13} seeds {seeds} "
                     f"steps {sel[0]['steps']} MRR {mean:.4f} +- {std:.4f} "
                     f"H@10 {sum(r['hits@10'] for r in sel) / len(sel):.4f} "
                     f"train CPU-min {cpu:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mkgw", choices=("mkgw", "db15k"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "mmrns-reproduce")
    parser.add_argument("--full", action="store_true", help="the released budget")
    parser.add_argument("--cpu-minutes", type=float, default=None,
                        help="equal CPU time: train each arm this many CPU-minutes (e.g. the "
                             "MMRNS arm's train_cpu_min) instead of the recipe's epochs")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    if args.table:
        print(table())
        return
    run(args.dataset, args.seeds, args.out, args.full, args.arms, args.cpu_minutes)
    print(table())


if __name__ == "__main__":
    main()
