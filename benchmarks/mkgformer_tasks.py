"""MKGformer's relation extraction (MNRE) and NER (Twitter-2015 / 2017) on this CPU: test F1 of
MKGformer (hybrid encoder, images missing) against the same head on the text model alone, the
low-resource curves (training fractions 1/5/10/25%), training examples/s and peak memory.

    export MMGNN_DATA=/path/to/datasets HF_HUB_OFFLINE=1
    python benchmarks/mkgformer_tasks.py --suite main      # 3 datasets x 2 encoders x 3 seeds
    python benchmarks/mkgformer_tasks.py --suite low       # fractions x 3 seeds, 3 datasets
    python benchmarks/mkgformer_tasks.py --suite all       # both, in priority order
    python benchmarks/mkgformer_tasks.py --table           # .txt / .json tables and the plot

Every run reads its recipe from ``configs/mkgformer-<dataset>[-text].yaml`` with the
``reproduce.cpu`` overrides applied (the budget: a fixed number of training examples seen,
final weights tested, no model selection; a row records its budget, and the table groups by
it), and is a fresh process (``peak_memory_mb`` is that
run's ``ru_maxrss``). Rows go to ``benchmarks/results/mkgformer_tasks.jsonl`` as they finish; a
row already there is not rerun. Low-resource runs keep a seeded ``fraction`` of the training
set (``fraction_seed`` = the run's seed) and see the same number of examples as the full runs,
so a small training set is repeated (equal compute along the curve).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ROWS = RESULTS / "mkgformer_tasks.jsonl"
CONFIGS = {"MNRE": "mkgformer-mnre", "Twitter2015": "mkgformer-twitter2015",
           "Twitter2017": "mkgformer-twitter2017"}
ENCODERS = {"mkgformer": "", "text": "-text"}
SEEDS = (0, 1, 2)
FRACTIONS = (0.01, 0.05, 0.1, 0.25)
LOW_DATASETS = ("MNRE", "Twitter2017", "Twitter2015")
#: Published figures beside ours (F1, BERT-base + images): UMT's own logged test F1 (the
#: datasets README); MKGformer's Twitter-2017 F1 as quoted in zjunlp/MKGformer issues #5 and
#: #10 (its MNRE and Twitter-2015 F1 could not be retrieved offline; its maintainer gives
#: MNRE precision 0.8267 in issue #33).
PUBLISHED = {"Twitter2017": {"UMT (logged)": 0.851, "MKGformer (paper)": 0.8749},
             "MNRE": {"MKGformer precision (paper)": 0.8267}}


def recipe(dataset: str, encoder: str) -> tuple[Path, dict]:
    """The config file of a run and its settings with the ``reproduce.cpu`` overrides."""
    path = ROOT / "configs" / f"{CONFIGS[dataset]}{ENCODERS[encoder]}.yaml"
    cfg = yaml.safe_load(path.read_text())
    settings = {"data": dict(cfg["data"]), "model": dict(cfg["model"]),
                "train": dict(cfg["train"]), "top": {}}
    for key, value in cfg["reproduce"]["cpu"]["overrides"].items():
        section, _, name = key.partition(".")
        if name:
            settings[section][name] = value
        else:
            settings["top"][key] = value
    return path, settings


def job_key(job: dict) -> tuple:
    return (job["suite"], job["dataset"], job["encoder"], job["seed"], job["fraction"])


def run_job(job: dict) -> dict:
    """One run in this process; returns its row."""
    import torch

    from mmgnn.recipes.mkgformer_tasks import text_task_run
    from mmgnn.train.config import TrainConfig

    torch.set_num_threads(1)
    path, s = recipe(job["dataset"], job["encoder"])
    model = dict(s["model"])
    name = model.pop("name")
    train = TrainConfig(**{**s["train"], "seed": job["seed"], "budget_clock": "cpu"})
    cpu0, wall0 = time.process_time(), time.perf_counter()
    res = text_task_run(None, model=name, dataset=s["data"]["dataset"], model_args=model,
                        train=train, fraction=job["fraction"], fraction_seed=job["seed"],
                        examples=s["top"].get("examples"),
                        validate=s["top"].get("validate", True), progress=False)
    return {**job, "config": str(path.relative_to(ROOT)), "test": res["test"],
            "examples_seen": res["examples_seen"], "train_examples": res["train_examples"],
            "train_cpu_min": res["train_minutes"],
            "train_examples_per_s": res["train_examples_per_s"],
            "peak_memory_mb": res["peak_memory_mb"], "threads": res["threads"],
            "run_cpu_min": (time.process_time() - cpu0) / 60,
            "run_wall_min": (time.perf_counter() - wall0) / 60,
            "load_avg": os.getloadavg()[0], "train": res["train"], "model": res["model"]}


def jobs(suite: str) -> list[dict]:
    """The runs of a suite in priority order (what matters most lands first on a loaded
    machine). ``main``: seed 0 of both encoders on every dataset (the paired check: with every
    image masked they train to the same weights), then seeds 1 and 2 of the text-only model,
    then seeds 1 and 2 of MKGformer. ``low``: MKGformer on Twitter-2017, MNRE, then
    Twitter-2015, seed by seed over the fractions. ``all``: main's first two parts, low's
    Twitter-2017 part, main's last part, low's MNRE and Twitter-2015 parts."""
    def job(s, d, e, seed, f):
        return {"suite": s, "dataset": d, "encoder": e, "seed": seed, "fraction": f}

    order = ("Twitter2017", "MNRE", "Twitter2015")
    paired = [job("main", d, e, 0, 1.0) for d in order for e in ("text", "mkgformer")]
    text = [job("main", d, "text", s, 1.0) for s in SEEDS[1:] for d in order]
    hybrid = [job("main", d, "mkgformer", s, 1.0) for s in SEEDS[1:] for d in order]
    low = {d: [job("low", d, "mkgformer", s, f) for s in SEEDS for f in FRACTIONS]
           for d in LOW_DATASETS}
    if suite == "main":
        return paired + text + hybrid
    if suite == "low":
        return low["Twitter2017"] + low["MNRE"] + low["Twitter2015"]
    return paired + text + low["Twitter2017"] + hybrid + low["MNRE"] + low["Twitter2015"]


def budget(dataset: str, encoder: str) -> int | None:
    """The recipe's budget in training examples seen (``None``: one pass over the set)."""
    return recipe(dataset, encoder)[1]["top"].get("examples")


def done_keys() -> set:
    """The jobs with a row at the recipe's current budget (a row at an older budget is kept
    for its own table line but does not count as done)."""
    if not ROWS.is_file():
        return set()
    rows = [json.loads(line) for line in ROWS.read_text().splitlines() if line]
    return {job_key(r) for r in rows
            if budget(r["dataset"], r["encoder"]) in (None, r["examples_seen"])}


def run_suite(suite: str, limit: int | None, part: tuple[int, int] = (0, 1)) -> None:
    """The missing jobs of a suite; ``part=(k, n)`` takes every n-th of them from the k-th,
    so n runners (one per CPU slot) share a suite without running a job twice."""
    todo = [j for j in jobs(suite) if job_key(j) not in done_keys()]
    run_jobs(todo[part[0]::part[1]][:limit])


def run_jobs(todo: list[dict]) -> None:
    for job in todo:
        print(f"{time.strftime('%H:%M:%S')} {job}", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--job", json.dumps(job)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(proc.stdout[-2000:], proc.stderr[-4000:], flush=True)
            raise SystemExit(f"job failed: {job}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        RESULTS.mkdir(parents=True, exist_ok=True)
        with ROWS.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"  F1 {row['test']['f1']:.4f}  {row['train_examples_per_s']:.1f} ex/s  "
              f"{row['peak_memory_mb']:.0f} MiB  {row['run_cpu_min']:.1f} CPU-min", flush=True)


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f} (n={len(values)})"


def table() -> None:
    rows = [json.loads(line) for line in ROWS.read_text().splitlines() if line]
    lines = ["Test F1, mean ± std over seeds (MNRE: micro F1 without None; Twitter: entity-level "
             "micro F1). Budget: training examples seen (one pass, final weights, no model "
             "selection), MiniLM-L6, 1 thread; images missing for every example.", "",
             "| dataset | examples seen | MKGformer (images missing) | text-only MiniLM-L6, "
             "same head | published (BERT-base + images; not ours) |", "|---|---|---|---|---|"]
    summary: dict = {"main": {}, "low": {}, "speed": {}}
    for dataset in CONFIGS:
        budgets = sorted({r["examples_seen"] for r in rows
                          if r["suite"] == "main" and r["dataset"] == dataset})
        for seen in budgets:
            cells = []
            for encoder in ENCODERS:
                f1 = [r["test"]["f1"] for r in rows if r["suite"] == "main"
                      and r["dataset"] == dataset and r["encoder"] == encoder
                      and r["examples_seen"] == seen]
                summary["main"].setdefault(dataset, {}).setdefault(str(seen), {})[encoder] = f1
                cells.append(mean_std(f1))
            pub = "; ".join(f"{k}: {v:.4f}" for k, v in PUBLISHED.get(dataset, {}).items()) \
                or "not retrieved offline"
            lines.append(f"| {dataset} | {seen:,} | {cells[0]} | {cells[1]} | {pub} |")
    lines += ["", "Low-resource (MKGformer, images missing; the datasets' main budget of "
              "examples seen at every fraction):", "",
              "| dataset | " + " | ".join(f"{f:.0%}" for f in (*FRACTIONS, 1.0)) + " |",
              "|---|" + "---|" * (len(FRACTIONS) + 1)]
    for dataset in LOW_DATASETS:
        low = [r for r in rows if r["dataset"] == dataset and r["suite"] == "low"]
        if not low:
            continue
        seen = low[0]["examples_seen"]
        cells = []
        for f in (*FRACTIONS, 1.0):
            # 100%: the main runs; with every image masked MKGformer and the text-only model
            # train to the same weights (paired seeds), so a seed of either counts once
            by_seed = {r["seed"]: r["test"]["f1"] for r in sorted(
                (r for r in rows if r["dataset"] == dataset and r["fraction"] == f
                 and r["examples_seen"] == seen), key=lambda r: r["encoder"] == "mkgformer")}
            f1 = list(by_seed.values())
            summary["low"].setdefault(dataset, {})[str(f)] = f1
            cells.append(mean_std(f1))
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    lines += ["", "Training speed (CPU clock, 1 thread) and peak memory (process RSS, with the "
              "test evaluation) of the main runs:", "",
              "| dataset | encoder | examples/s | peak memory MiB |", "|---|---|---|---|"]
    for dataset in CONFIGS:
        for encoder in ENCODERS:
            sel = [r for r in rows if r["suite"] == "main" and r["dataset"] == dataset
                   and r["encoder"] == encoder]
            if sel:
                eps = statistics.mean(r["train_examples_per_s"] for r in sel)
                mem = max(r["peak_memory_mb"] for r in sel)
                summary["speed"][f"{dataset}/{encoder}"] = {"examples_per_s": eps,
                                                            "peak_memory_mb": mem}
                lines.append(f"| {dataset} | {encoder} | {eps:.1f} | {mem:.0f} |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "mkgformer_tasks.txt").write_text(text)
    (RESULTS / "mkgformer_tasks.json").write_text(json.dumps(summary, indent=1))
    print(text)
    plot(summary["low"])


def plot(low: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for dataset, by_fraction in low.items():
        xs, ms, sds = [], [], []
        for f, values in sorted(by_fraction.items(), key=lambda kv: float(kv[0])):
            if values:
                xs.append(100 * float(f))
                ms.append(statistics.mean(values))
                sds.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        ax.errorbar(xs, ms, yerr=sds, marker="o", capsize=3, label=dataset)
    ax.set_xscale("log")
    ax.set_xlabel("training fraction (%)")
    ax.set_ylabel("test F1")
    ax.set_title("MKGformer (MiniLM-L6, images missing), equal examples seen", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "mkgformer_tasks_low_resource.png", dpi=120)


def main() -> None:
    # the datasets beside the checkout (as the tests find them) and no hub access, unless set
    shared = ROOT.parent / "shared" / "datasets"
    if shared.is_dir():
        os.environ.setdefault("MMGNN_DATA", str(shared))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", choices=("main", "low", "all"))
    p.add_argument("--limit", type=int, help="run at most this many missing rows")
    p.add_argument("--part", default="0/1", metavar="K/N",
                   help="run the K-th of N interleaved parts of the missing rows (N runners)")
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--one", help="run this one job (JSON: suite, dataset, encoder, seed, "
                   "fraction) and append its row")
    p.add_argument("--table", action="store_true")
    args = p.parse_args()
    if args.job:
        print(json.dumps(run_job(json.loads(args.job))))
    elif args.one:
        run_jobs([json.loads(args.one)])
    elif args.suite:
        k, _, n = args.part.partition("/")
        if not (k.isdigit() and n.isdigit() and int(k) < int(n)):
            p.error(f"--part takes K/N with 0 <= K < N, not {args.part!r}")
        run_suite(args.suite, args.limit, (int(k), int(n)))
    if args.table:
        table()


if __name__ == "__main__":
    main()
