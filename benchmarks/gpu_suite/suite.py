"""The measuring parts of the GPU suite (``benchmarks/gpu_suite/run.sh`` runs them; see
README.md beside this file). Each part appends one JSON row to ``OUT/results.jsonl`` and
prints a line; a part that fails records its error and the others still run.

    python benchmarks/gpu_suite/suite.py --out OUT --device cuda [--root DATA] [--quick]
    python benchmarks/gpu_suite/suite.py --out /tmp/x --device cpu --quick    # a dry run

Parts:
- ``env``: GPU, driver, torch / PyG versions, whether PyG sees ``torch_scatter``.
- ``eval``: mmgnn's filtered ranking of the test split against the matmul bound: the time of
  the bare :math:`(B \\times d) @ (d \\times N)` products of the same query batches on the same
  device (DistMult, ComplEx, TransE-L1, RotatE; ratio = ranking / products), with peak memory.
- ``train``: training triples/s of mmgnn's Trainer, PyG's ``nn.kge`` and PyKEEN on the same
  device, same model, batch and negatives (:func:`_peers.train_steps`), with peak memory.
- ``scatter``: which scatter kernels PyG's layers and mmgnn's attention layers run on the
  device (torch profiler op names): ``torch_scatter::`` ops when PyG uses ``torch_scatter``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/: _peers

TOY = HERE.parents[1] / "tests" / "assets" / "toy"


def sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def load_kg(args):
    from mmgnn.data import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.quick:
            return load_dataset(TOY)
        return load_dataset(args.dataset, root=args.root, add_side_info=False)


# --------------------------------------------------------------------------------- parts
def part_env(args, device) -> dict:
    import torch_geometric

    out = {"torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
           "cuda": torch.version.cuda, "with_torch_scatter":
           bool(torch_geometric.typing.WITH_TORCH_SCATTER), "cpus": os.cpu_count(),
           "device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        try:
            out["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                 "--format=csv,noheader"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            out["nvidia_smi"] = f"unavailable: {e}"
    try:
        import torch_scatter

        out["torch_scatter"] = torch_scatter.__version__
    except ImportError:
        out["torch_scatter"] = None
    return out


def part_eval(args, device) -> dict:
    from _peers import SPECS, mmgnn_model

    from mmgnn.eval import evaluate
    from mmgnn.eval.ranking import EVAL_BATCH_SCORES

    kg = load_kg(args)
    test = kg.test
    rows = {}
    for label in ("distmult", "complex", "transe-l1", "rotate"):
        spec = SPECS[label]
        model = mmgnn_model(spec, kg.num_entities, kg.num_relations, args.dim, 0).to(device)
        model.eval()
        batch = max(1, min(4096, EVAL_BATCH_SCORES // kg.num_entities))
        evaluate(model, kg, triples=test[:batch], progress=False, batch_size=batch)  # warm-up
        reset_peak(device)
        start = sync(device)
        result = evaluate(model, kg, triples=test, progress=False, batch_size=batch)
        seconds = sync(device) - start
        peak = peak_mib(device)
        # The bound: the same number of (B x d) @ (d x N) products on the same device.
        width = model.decoder.entity_channels
        x = torch.randn(kg.num_entities, width, device=device)
        q = torch.randn(batch, width, device=device)
        batches = 2 * -(-len(test) // batch)
        for _ in range(3):
            q @ x.T
        start = sync(device)
        for _ in range(batches):
            q @ x.T
        bound = sync(device) - start
        rows[label] = {"seconds": seconds, "matmul_bound_s": bound, "ratio": seconds / bound,
                       "queries": 2 * len(test), "batch": batch, "mrr": result.mrr,
                       "peak_mib": peak}
        print(f"  eval {label:10s} {seconds * 1e3:9.1f} ms, bound {bound * 1e3:8.1f} ms, "
              f"ratio {seconds / bound:5.2f}", flush=True)
    return {"dataset": kg.name, "entities": kg.num_entities, "dim": args.dim, "rows": rows}


def part_train(args, device) -> dict:
    from _peers import SPECS, train_steps

    kg = load_kg(args)
    rows = {}
    total = args.warmup + args.steps
    pick = torch.randperm(len(kg.train), generator=torch.Generator().manual_seed(0))
    triples = kg.train[pick[: total * args.batch]]
    for label in ("transe-l1", "distmult"):
        for lib in ("mmgnn", "pyg", "pykeen"):
            p = {"lib": lib, "batch": args.batch, "negatives": 1, "dim": args.dim, "lr": 1e-3,
                 "seed": 0, "device": str(device)}
            try:
                reset_peak(device)
                stamps = train_steps(kg, triples, SPECS[label], p)
            except Exception as e:  # a peer missing (PyKEEN not installed) is recorded
                rows[f"{label}/{lib}"] = {"error": f"{type(e).__name__}: {e}"}
                print(f"  train {label}/{lib}: {type(e).__name__}: {e}", flush=True)
                continue
            steps = len(stamps) - args.warmup
            seconds = stamps[-1] - stamps[args.warmup - 1]
            rows[f"{label}/{lib}"] = {"steps": steps, "seconds": seconds,
                                      "triples_per_s": steps * args.batch / seconds,
                                      "peak_mib": peak_mib(device)}
            print(f"  train {label:10s} {lib:7s} {steps * args.batch / seconds:12,.0f} "
                  f"triples/s", flush=True)
        base = rows.get(f"{label}/mmgnn", {}).get("triples_per_s")
        for lib in ("pyg", "pykeen"):
            peer = rows.get(f"{label}/{lib}", {}).get("triples_per_s")
            if base and peer:
                rows[f"{label}/mmgnn_over_{lib}"] = base / peer
    return {"dataset": kg.name, "batch": args.batch, "negatives": 1, "dim": args.dim,
            "rows": rows}


def part_scatter(args, device) -> dict:
    """Forward + backward of each layer of ``gnn_speed.py`` (and a max aggregation, the
    reduction PyG hands to ``torch_scatter`` on a GPU) under the torch profiler: the
    scatter-like ops each runs."""
    from gnn_speed import DIM, build
    from torch.profiler import ProfilerActivity, profile
    from torch_geometric.nn import SAGEConv

    g = torch.Generator().manual_seed(0)
    n, e, r = (300, 3000, 8) if args.quick else (20000, 200000, 64)
    ei = torch.randint(n, (2, e), generator=g).to(device)
    et = torch.randint(r, (e,), generator=g).to(device)
    x = torch.randn(n, DIM, generator=g).to(device).requires_grad_()
    rel = torch.randn(r, DIM, generator=g).to(device).requires_grad_()
    layers = {name: build(name) for name in ("GATConv", "KBGATConv", "K3MGATConv")}
    sage = SAGEConv(DIM, DIM, aggr="max")
    layers["SAGEConv-max"] = (sage, lambda x, rel, ei, et: sage(x, ei))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if device.type == "cuda" else [])
    out = {}
    for name, (layer, call) in layers.items():
        layer.to(device)
        call(x, rel, ei, et).sum().backward()  # warm-up
        with profile(activities=activities) as prof:
            call(x, rel, ei, et).sum().backward()
            sync(device)
        ops = sorted({ev.key for ev in prof.key_averages()
                      if any(k in ev.key for k in ("scatter", "index_add", "segment"))})
        out[name] = {"ops": ops, "torch_scatter_ops": [o for o in ops if "torch_scatter" in o]}
        print(f"  {name:14s} {', '.join(ops)}", flush=True)
    return out


PARTS = {"env": part_env, "eval": part_eval, "train": part_train, "scatter": part_scatter}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dataset", default="DB15K")
    parser.add_argument("--root", default=os.environ.get("MMGNN_DATA"))
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="toy graph, small sizes")
    args = parser.parse_args(argv)
    if args.quick:
        args.dim, args.batch, args.steps, args.warmup = 16, 64, 5, 2
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in args.parts.split(","):
        print(f"[{time.strftime('%H:%M:%S')}] part {name}", flush=True)
        start = time.perf_counter()
        try:
            row = {"part": name, **PARTS[name](args, device)}
        except Exception as e:
            traceback.print_exc()
            row, failed = {"part": name, "error": f"{type(e).__name__}: {e}"}, failed + 1
        row.update(device=str(device), quick=args.quick, seconds=time.perf_counter() - start)
        with open(out / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
