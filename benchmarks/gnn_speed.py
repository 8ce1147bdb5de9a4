"""Forward + backward time and peak memory of mmgnn's message-passing layers against PyG's
``GATConv`` and ``TransformerConv`` at equal width and heads, on the FB15k-237 training graph.

    MMGNN_DATA=/path/to/datasets python benchmarks/gnn_speed.py          # the full benchmark
    python benchmarks/gnn_speed.py --steps 2 --repeats 1                  # a quick look
    python benchmarks/gnn_speed.py --device cuda --no-torch-scatter       # GPU, PyG fallbacks

Every (layer, round) runs in a fresh child process (this script with a hidden ``--phase``
flag) that loads the graph from tensors the parent saved, builds one layer, runs one untimed
forward + backward and then ``--steps`` timed ones, and reports the median step time and the
peak memory above what it held before the first step (CPU: ``VmHWM`` minus ``VmRSS``; CUDA:
``torch.cuda.max_memory_allocated``). A round runs every layer back to back; a layer's ratio
to its peer is the median over rounds of the per-round ratios, which compare layers measured
under about the same load of a shared machine.

Pairs compared (input width 200, output width 200, 2 heads unless stated):

- ``KBGATConv`` (2 x 100, concatenated; relation term from a 237 x 200 table) and its IMF-code
  form (no relation term) against ``GATConv(200, 100, heads=2)`` and
  ``GATConv(..., edge_dim=200)`` fed the same relation features per edge;
- ``K3MGATConv`` (2 heads of 200, averaged; property per edge from the relation table)
  against ``GATConv(200, 200, heads=2, concat=False)``, and its code form (1 head) against
  ``GATConv(200, 200, heads=1)``;
- ``TransformerConv(200, 100, heads=2)`` as a second peer.

``GATConv`` runs without self-loops so that every layer sees the same 272,115 edges.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from _phases import in_fresh_process, log

RESULTS = Path(__file__).resolve().parent / "results"
DIM, HEADS = 200, 2

# name: (peer the ratio is taken against, description)
LAYERS = {
    "GATConv": (None, "GATConv(200, 100, heads=2), concat"),
    "GATConv+edge": (None, "GATConv(200, 100, heads=2, edge_dim=200), relation per edge"),
    "GATConv-mean": (None, "GATConv(200, 200, heads=2, concat=False)"),
    "GATConv-1head": (None, "GATConv(200, 200, heads=1)"),
    "TransformerConv": ("GATConv", "TransformerConv(200, 100, heads=2), concat"),
    "KBGATConv": ("GATConv", "KBGATConv(200, 100, heads=2, rel_channels=200)"),
    "KBGATConv-imf": ("GATConv", "KBGATConv(200, 100, heads=2), no relation (IMF code)"),
    "K3MGATConv": ("GATConv-mean", "K3MGATConv(200, 200, edge_dim=200, heads=2)"),
    "K3MGATConv-code": ("GATConv-1head", "K3MGATConv(200, 200, edge_dim=200, variant='code')"),
}
EXTRA_PEERS = {"KBGATConv": "GATConv+edge"}


# =================================================================== child processes (--phase)
def build(name: str):
    """The layer and a closure running its forward pass on (x, table, edge_index, edge_type)."""
    from torch_geometric.nn import GATConv, TransformerConv

    from mmgnn.nn.conv import K3MGATConv, KBGATConv

    half = DIM // HEADS
    if name == "GATConv":
        m = GATConv(DIM, half, heads=HEADS, add_self_loops=False)
        return m, lambda x, rel, ei, et: m(x, ei)
    if name == "GATConv+edge":
        m = GATConv(DIM, half, heads=HEADS, add_self_loops=False, edge_dim=DIM)
        return m, lambda x, rel, ei, et: m(x, ei, rel.index_select(0, et))
    if name == "GATConv-mean":
        m = GATConv(DIM, DIM, heads=HEADS, concat=False, add_self_loops=False)
        return m, lambda x, rel, ei, et: m(x, ei)
    if name == "GATConv-1head":
        m = GATConv(DIM, DIM, heads=1, add_self_loops=False)
        return m, lambda x, rel, ei, et: m(x, ei)
    if name == "TransformerConv":
        m = TransformerConv(DIM, half, heads=HEADS)
        return m, lambda x, rel, ei, et: m(x, ei)
    if name == "KBGATConv":
        m = KBGATConv(DIM, half, heads=HEADS, rel_channels=DIM)
        return m, lambda x, rel, ei, et: m(x, ei, rel, et)
    if name == "KBGATConv-imf":
        m = KBGATConv(DIM, half, heads=HEADS, negate_attention=True)
        return m, lambda x, rel, ei, et: m(x, ei)
    if name == "K3MGATConv":
        m = K3MGATConv(DIM, DIM, edge_dim=DIM, heads=HEADS)
        return m, lambda x, rel, ei, et: m(x, ei, rel, et)
    if name == "K3MGATConv-code":
        m = K3MGATConv(DIM, DIM, edge_dim=DIM, variant="code")
        return m, lambda x, rel, ei, et: m(x, ei, rel, et)
    raise ValueError(name)


def memory_status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB -> MiB
    return float("nan")


def run_phase(p: dict) -> None:
    if p["threads"]:
        torch.set_num_threads(p["threads"])
    if p["no_torch_scatter"]:
        import torch_geometric.typing

        torch_geometric.typing.WITH_TORCH_SCATTER = False
    torch.manual_seed(p["seed"])
    device = torch.device(p["device"])
    graph = torch.load(p["graph"])
    ei, et = graph["edge_index"].to(device), graph["edge_type"].to(device)
    x = torch.randn(graph["num_nodes"], DIM, device=device, requires_grad=True)
    rel = torch.randn(graph["num_relations"], DIM, device=device, requires_grad=True)
    layer, run = build(p["layer"])
    layer = layer.to(device).train()

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(x, rel, ei, et).square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        x.grad = rel.grad = None
        layer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = memory_status("VmRSS")
    step()  # warm-up: allocator, lazy initialisation
    times = [step() for _ in range(p["steps"])]
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" \
        else memory_status("VmHWM") - base
    Path(p["out"]).write_text(json.dumps({"seconds": statistics.median(times), "all": times,
                                          "peak_mib": peak}))


# ================================================================================== parent
def child(p: dict) -> dict:
    """Runs one phase in a fresh process; ``{"error": ...}`` if it failed."""
    return in_fresh_process(__file__, p, str(p['layer']))


def median(values) -> float:
    values = sorted(v for v in values if v == v)
    return statistics.median(values) if values else float("nan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--dataset", default="FB15k-237", help="name for load_dataset (its training graph)")
    add("--layers", nargs="+", choices=list(LAYERS), default=list(LAYERS))
    add("--steps", type=int, default=5, help="timed forward+backward steps per child")
    add("--repeats", type=int, default=3, help="rounds; every layer runs once per round")
    add("--device", default="cpu")
    add("--no-torch-scatter", action="store_true",
        help="make PyG ignore an installed torch_scatter (its own scatter fallbacks)")
    add("--threads", type=int, default=0, help="torch threads per child (0: torch's default)")
    add("--seed", type=int, default=0)
    add("--json", type=Path, default=RESULTS / "gnn_speed.json")
    add("--phase", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        run_phase(json.loads(args.phase))
        return 0
    import torch_geometric

    from mmgnn.data import load_dataset

    scatter = torch_geometric.typing.WITH_TORCH_SCATTER and not args.no_torch_scatter
    print(f"torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, device "
          f"{args.device}, torch_scatter {'used' if scatter else 'not used'}; "
          f"{args.threads or torch.get_num_threads()} threads, {os.cpu_count()} CPUs; load "
          f"average at start {os.getloadavg()[0]:.1f}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg = load_dataset(args.dataset, add_side_info=False)
    edge_index, edge_type = kg.train_graph()
    print(f"{args.dataset} training graph: {kg.num_entities:,} nodes, {edge_index.size(1):,} "
          f"edges, {kg.num_relations} relations; input width {DIM}, {HEADS} heads; median of "
          f"{args.steps} forward+backward steps per child, {args.repeats} rounds")
    runs: dict[str, list[dict]] = {name: [] for name in args.layers}
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / "graph.pt"
        torch.save({"edge_index": edge_index, "edge_type": edge_type,
                    "num_nodes": kg.num_entities, "num_relations": kg.num_relations}, graph)
        common = {**vars(args), "json": None, "graph": str(graph)}
        for rnd in range(args.repeats):
            for name in args.layers:
                log(f"{name}, round {rnd + 1}/{args.repeats}")
                runs[name].append(child({**common, "layer": name}))

    def ratios(name: str, peer: str | None, key: str) -> list[float]:
        if peer is None or peer not in runs:
            return []
        return [a[key] / b[key] for a, b in zip(runs[name], runs[peer], strict=True)
                if key in a and key in b and b[key] > 0]

    rows, lines = [], []
    for name in args.layers:
        peer = LAYERS[name][0]
        row = {"layer": name, "config": LAYERS[name][1], "peer": peer,
               "seconds": median(r.get("seconds", float("nan")) for r in runs[name]),
               "peak_mib": median(r.get("peak_mib", float("nan")) for r in runs[name]),
               "time_ratio": median(ratios(name, peer, "seconds")),
               "memory_ratio": median(ratios(name, peer, "peak_mib")),
               "time_ratio_per_round": ratios(name, peer, "seconds"), "rounds": runs[name]}
        extra = EXTRA_PEERS.get(name)
        if extra in runs:
            row["extra_peer"] = extra
            row["time_ratio_extra"] = median(ratios(name, extra, "seconds"))
            row["memory_ratio_extra"] = median(ratios(name, extra, "peak_mib"))
        rows.append(row)
        shown = (f"{row['time_ratio']:.2f}x  {row['memory_ratio']:.2f}x  vs {peer}" if peer
                 else "(peer)")
        if extra in runs:
            shown += (f";  {row['time_ratio_extra']:.2f}x  {row['memory_ratio_extra']:.2f}x  "
                      f"vs {extra}")
        lines.append(f"{name:<16} {1e3 * row['seconds']:>9.0f} {row['peak_mib']:>10.0f}   "
                     f"{shown}")
    print(f"{'layer':<16} {'ms/step':>9} {'peak MiB':>10}   time / peer, memory / peer")
    print("\n".join(lines))
    print(f"load average at the end {os.getloadavg()[0]:.1f}; target: KBGATConv and "
          f"K3MGATConv <= 1.5x the time of their GATConv peer")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()
                                                  if k != "phase"},
                                     "torch_scatter": scatter, "rows": rows}, indent=2))
    return 1 if any("error" in r for rs in runs.values() for r in rs) else 0


if __name__ == "__main__":
    sys.exit(main())
