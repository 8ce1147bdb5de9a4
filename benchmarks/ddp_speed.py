"""Data-parallel training speed: steps/s and triples/s of mmgnn's Trainer with 1 and 2 processes
at the same global batch (:mod:`mmgnn.train.distributed`; gloo on CPU, NCCL on GPU).

    MMGNN_DATA=/path/to/datasets python benchmarks/ddp_speed.py                # DB15K, CPU
    python benchmarks/ddp_speed.py --device cuda --nprocs 1,2                  # GPUs (one per rank)
    python benchmarks/ddp_speed.py --quick                                     # toy graph, seconds

Each configuration (processes x threads per process) runs in freshly spawned ranks
(:func:`~mmgnn.train.distributed.launch`; one process: no process group, the plain trainer)
for two epochs of ``--steps`` global batches drawn from the training triples; the second
epoch is timed (the first pays allocation, DDP's bucket rebuild and compilation). The
configurations run back to back in ``--rounds`` rounds, so that each round's ratios compare
them under about the same load of a shared machine; the load average and the long runs of
``/work/measure/slots.log`` (when present) around each round are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
#: name: (model arguments, training settings)
MODELS = {
    "transe": ({"decoder": "transe", "dim": 64},
               {"regime": "negative", "num_negatives": 32, "loss": "margin", "lr": 1e-3}),
    "complex": ({"decoder": "complex", "dim": 64},
                {"regime": "1vsall", "loss": "ce", "lr": 1e-3}),
}


def _rank(p: dict) -> None:
    """One rank's run (spawned): two epochs, the second timed."""
    from mmgnn.data import MultiModalKG, load_dataset
    from mmgnn.models.kge_model import KGEModel
    from mmgnn.train import TrainConfig, distributed, seed_everything
    from mmgnn.train.loop import Trainer
    from mmgnn.train.tasks import LinkPredictionTask

    class NoValidation(LinkPredictionTask):
        def evaluate(self, trainer, last: bool) -> dict:  # the benchmark times training only
            return {}

    full = load_dataset(p["dataset"], root=p["root"], add_side_info=False)
    model_args, train_args = MODELS[p["model"]]
    per_epoch = p["steps"] * p["batch"]
    if train_args["regime"] != "negative":  # 1-to-all: two queries per triple
        per_epoch //= 2
    pick = torch.randperm(len(full.train), generator=torch.Generator().manual_seed(0))
    kg = MultiModalKG(full.entity_names, full.relation_names, full.train[pick[:per_epoch]],
                      full.valid, full.test, name=full.name)
    seed_everything(0)
    model = KGEModel(kg.num_entities, kg.num_relations, **model_args)
    cfg = TrainConfig(epochs=2, batch_size=p["batch"], eval_every=0, patience=0,
                      device=p["device"], seed=0, **train_args)
    stamps: list[float] = []
    trainer = Trainer(model, NoValidation(kg), cfg, progress=False,
                      callbacks=[lambda t, r: stamps.append(time.perf_counter())])
    trainer.fit()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = stamps[1] - stamps[0]
    steps = trainer.steps // 2
    out = {"rank": distributed.rank(), "seconds": seconds, "steps": steps,
           "steps_per_s": steps / seconds, "triples_per_s": steps * p["batch"] / seconds,
           "peak_rss_mib": peak_rss_mib(), "threads": torch.get_num_threads(),
           "loss": trainer.history[-1]["loss"]}
    if trainer.device.type == "cuda":
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    Path(p["out"], f"rank{distributed.rank()}.json").write_text(json.dumps(out))


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def long_runs() -> list[str]:
    """The slot runs started and not yet done (``/work/measure/slots.log``), if that log
    exists: what else loaded the machine."""
    log = Path("/work/measure/slots.log")
    if not log.exists():
        return []
    running: dict[str, str] = {}
    for line in log.read_text().splitlines():
        parts = line.split(" ", 4)
        if len(parts) == 5 and parts[3] == "start:":
            running[parts[2]] = parts[4]
        elif len(parts) >= 4 and parts[3].startswith("done"):
            running.pop(parts[2], None)
    return sorted(running.values())


def measure(p: dict, nproc: int, threads: int, tmp: Path) -> dict:
    from mmgnn.train.distributed import backend_for, launch

    for f in tmp.glob("rank*.json"):
        f.unlink()
    backend = backend_for(p["device"]) if nproc > 1 else None
    launch(_rank, nproc, {**p, "out": str(tmp)}, threads=threads, backend=backend)
    ranks = [json.loads((tmp / f"rank{r}.json").read_text()) for r in range(nproc)]
    seconds = max(r["seconds"] for r in ranks)  # the step waits for the slowest rank
    steps = ranks[0]["steps"]
    return {"nproc": nproc, "threads": threads, "seconds": seconds, "steps": steps,
            "steps_per_s": steps / seconds, "triples_per_s": steps * p["batch"] / seconds,
            "peak_rss_mib_per_rank": max(r["peak_rss_mib"] for r in ranks),
            **({"peak_gpu_mib_per_rank": max(r["peak_gpu_mib"] for r in ranks)}
               if "peak_gpu_mib" in ranks[0] else {}),
            "loss": ranks[0]["loss"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="DB15K")
    parser.add_argument("--root", default=os.environ.get("MMGNN_DATA"))
    parser.add_argument("--models", default="transe,complex")
    parser.add_argument("--batch", type=int, default=1024, help="global batch")
    parser.add_argument("--steps", type=int, default=30, help="global batches per epoch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--configs", default="1x1,1x2,2x1",
                        help="PROCESSESxTHREADS per configuration")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="the toy graph, a few steps")
    parser.add_argument("--results", default=str(RESULTS / "ddp_speed"),
                        help="writes RESULTS.json and RESULTS.txt")
    args = parser.parse_args(argv)
    if args.quick:
        toy = Path(__file__).resolve().parents[1] / "tests" / "assets" / "toy"
        args.dataset, args.root, args.batch, args.steps, args.rounds = str(toy), None, 64, 8, 1
    configs = [tuple(int(x) for x in c.split("x")) for c in args.configs.split(",")]
    if args.device.startswith("cuda"):
        gpus = torch.cuda.device_count()
        configs = [(n, t) for n, t in configs if n <= gpus]
    import tempfile

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for model in args.models.split(","):
                p = {"dataset": args.dataset, "root": args.root, "model": model,
                     "batch": args.batch, "steps": args.steps, "device": args.device}
                before = {"load": os.getloadavg()[0], "long_runs": long_runs()}
                for nproc, threads in configs:
                    row = {"round": rnd, "model": model, "dataset": Path(args.dataset).name,
                           "device": args.device, "global_batch": args.batch,
                           **measure(p, nproc, threads, Path(tmp)),
                           "load_before": before["load"], "load_after": os.getloadavg()[0],
                           "long_runs": before["long_runs"]}
                    rows.append(row)
                    print(f"round {rnd} {model:8s} {nproc}p x {threads}t: "
                          f"{row['steps_per_s']:.2f} steps/s, {row['triples_per_s']:,.0f} "
                          f"triples/s (load {row['load_before']:.1f}->{row['load_after']:.1f})",
                          file=sys.stderr, flush=True)
    report = summarise(rows, configs)
    print(report)
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"settings": vars(args), "machine": {"cpus": os.cpu_count(),
                                             "torch": torch.__version__}, "rows": rows},
        indent=1))
    out.with_suffix(".txt").write_text(report + "\n")
    return 0


def summarise(rows: list[dict], configs: list[tuple[int, int]]) -> str:
    """Per model and configuration: the median steps/s and triples/s over the rounds and the
    median of the per-round ratios to one process with one thread."""
    lines = [f"{'model':8s} {'config':>7s} {'steps/s':>8s} {'triples/s':>10s} "
             f"{'vs 1x1 (per-round median)':>26s} {'load':>5s}"]
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        base = {r["round"]: r for r in mine if (r["nproc"], r["threads"]) == (1, 1)}
        for nproc, threads in configs:
            sel = [r for r in mine if (r["nproc"], r["threads"]) == (nproc, threads)]
            ratios = [r["steps_per_s"] / base[r["round"]]["steps_per_s"] for r in sel
                      if r["round"] in base]
            lines.append(
                f"{model:8s} {f'{nproc}p x {threads}t':>7s} "
                f"{statistics.median(r['steps_per_s'] for r in sel):8.2f} "
                f"{statistics.median(r['triples_per_s'] for r in sel):10,.0f} "
                f"{(statistics.median(ratios) if ratios else float('nan')):26.2f} "
                f"{statistics.median(r['load_before'] for r in sel):5.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
