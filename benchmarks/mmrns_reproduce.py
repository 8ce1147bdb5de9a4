"""MMRNS against its two controls, several seeds: a thin wrapper of ``mmgnn reproduce``.

``configs/mmrns-<dataset>.yaml`` (MMRNS) names its controls as baselines:
``-uniform.yaml`` (the base decoder with uniform negatives, column "base decoder") and
``-pool-uniform.yaml`` (uniform draws from the same shared pre-sample, column
"pool-uniform"). ``mmgnn reproduce configs/mmrns-mkgw.yaml`` runs MMRNS's seeds with its
``reproduce.cpu.overrides`` as ``mmgnn train`` runs, then each control at MMRNS's epochs
(equal steps) and for MMRNS's mean training CPU-minutes (equal CPU time), and writes
``benchmarks/results/reproduce/mmrns-<dataset>.json``; this script runs exactly that
(``--full``: the released budget) and prints the README table's MMRNS rows.

    export MMGNN_DATA=/path/to/datasets
    /work/measure/slot python benchmarks/mmrns_reproduce.py --dataset mkgw --seeds 0 1 2
    # the same, without this script:
    /work/measure/slot mmgnn reproduce configs/mmrns-mkgw.yaml --seeds 0,1,2
    python benchmarks/mmrns_reproduce.py --table   # the MMRNS rows of `mmgnn reproduce --table`
    # the released budget (100k steps, ~1170 epochs on MKG-W; a GPU job):
    python benchmarks/mmrns_reproduce.py --dataset mkgw --seeds 0 1 2 --full

Before ``mmgnn reproduce`` ran baselines, this script ran the three arms itself (through
:func:`mmgnn.cli_reproduce.run_seeds`, seeds interleaved across arms, ``--cpu-minutes`` for
equal CPU time) and appended one row per (arm, seed) to
``benchmarks/results/mmrns_reproduce.jsonl``. Those rows stay: ``configs/mmrns-*.yaml`` name
the file in ``reproduce.rows`` and ``mmgnn reproduce --table`` reads them (arm ``mmrns``: the
system; the controls at the recipe's steps: equal epochs; budget ``..., N CPU-min``: equal
CPU), as long as their overrides are the recipe's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from mmgnn.cli_reproduce import reproduce, results_table

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mkgw", choices=("mkgw", "db15k"))
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the recipe's")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "mmrns-reproduce")
    parser.add_argument("--results", type=Path,
                        default=ROOT / "benchmarks" / "results" / "reproduce")
    parser.add_argument("--full", action="store_true", help="the released budget")
    parser.add_argument("--table", action="store_true", help="only print the table rows")
    args = parser.parse_args()
    if not args.table:
        reproduce(ROOT / "configs" / f"mmrns-{args.dataset}.yaml", args.out, args.results,
                  seeds=args.seeds, full=args.full)
    table = results_table(args.results, ROOT / "configs").splitlines()
    print("\n".join(table[:2] + [line for line in table if line.startswith("| MMRNS |")]))


if __name__ == "__main__":
    main()
