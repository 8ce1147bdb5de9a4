"""Cost growth with graph size: TransE and ComplEx trained and evaluated on synthetic graphs of
10k to 4M entities (10 triples per entity), with a dense table + Adam and a sparse table +
row-wise AdaGrad.

    python benchmarks/scale.py                                   # 10k, 100k, 1M (+ 4M if RAM)
    python benchmarks/scale.py --sizes 10000 100000 --steps 50   # a quick look

For each size the graph (``mmgnn.data.synthetic_kg``: power-law degrees, Zipf relations) is
drawn once; every (model, optimiser) then runs in a fresh child process, which reports:

* training time per epoch: a full epoch where it has at most ``--full-epoch-steps`` steps, else
  ``--steps`` timed steps after 3 warm-up steps, EXTRAPOLATED to the epoch's steps (marked);
* filtered evaluation time per 1,000 queries (``--eval-queries`` head and tail queries of the
  test split, after a small warm-up call that compiles kernels); score matrices of
  ``--eval-scores`` scores, so nothing grows with batch x entities x dim;
* peak RSS (VmHWM) of the child minus its RSS after importing torch, and where memory goes:
  bytes of the entity table, its gradient, the optimiser state, the two filter indices (train,
  for negative sampling; train+valid+test, for filtered ranking), the triples.

Times are CPU seconds of the child (one thread), so that a shared machine inflates them less;
wall seconds are kept in the JSON rows. Results: ``benchmarks/results/scale.{jsonl,txt,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 2**20
SETUPS = {"dense": ("adam", False), "sparse": ("row_adagrad", True)}


# =================================================================== child (--phase)
def status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def tensor_bytes(obj, seen: set | None = None) -> int:
    """Bytes of the distinct tensors reachable through ``obj``'s attributes, dicts, lists."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        if obj.is_sparse:
            return tensor_bytes(obj._indices(), seen) + tensor_bytes(obj._values(), seen)
        key = obj.untyped_storage().data_ptr()
        if key in seen:
            return 0
        seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, torch.nn.Module):
        return sum(tensor_bytes(v, seen) for v in vars(obj).values())
    return 0


def phase(p: dict) -> dict:
    from mmgnn.data import MultiModalKG
    from mmgnn.eval import evaluate
    from mmgnn.models import KGEModel
    from mmgnn.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    base_kib = status_kib("VmRSS")
    clock = time.process_time
    t0 = clock()
    kg = MultiModalKG(**torch.load(p["graph"]))
    out: dict = {"load_s": clock() - t0, "rss_graph_mib": (status_kib("VmRSS") - base_kib) / 1024}
    optimizer, sparse = SETUPS[p["setup"]]
    torch.manual_seed(0)
    dim = p["dim"] // 2 if p["model"] == "complex" else p["dim"]  # real coordinates: dim
    model = KGEModel(kg.num_entities, kg.num_relations, p["model"], dim=dim, sparse=sparse)
    cfg = TrainConfig(optimizer=optimizer, lr=p["lr"], batch_size=p["batch"],
                      num_negatives=p["negatives"], negative_filter="train", epochs=1,
                      eval_every=0, seed=0,
                      loss="margin" if p["model"] == "transe" else "softplus")
    t0 = clock()
    trainer = Trainer(model, kg, cfg, progress=False)  # builds the sampler's train filter
    out["setup_s"] = clock() - t0
    task = trainer.task
    steps_per_epoch = task.num_batches(trainer)
    full = steps_per_epoch <= p["full_epoch_steps"]
    budget = steps_per_epoch if full else p["steps"] + 3
    done, start_cpu, start_wall = 0, None, None
    for batch in task.batches(trainer):
        if done == (0 if full else 3):
            start_cpu, start_wall = clock(), time.perf_counter()
        trainer.step(task.loss(trainer, batch)[0]["loss"])
        done += 1
        if done == budget:
            break
    timed = done if full else done - 3
    per_step = (clock() - start_cpu) / timed
    out.update(steps_per_epoch=steps_per_epoch, timed_steps=timed, full_epoch=full,
               step_s=per_step, epoch_s=per_step * steps_per_epoch,
               step_wall_s=(time.perf_counter() - start_wall) / timed,
               rss_train_mib=(status_kib("VmRSS") - base_kib) / 1024,
               peak_train_mib=(status_kib("VmHWM") - base_kib) / 1024)
    weight = model.entity.weight
    out["bytes"] = {
        "entity table": weight.nbytes,
        "entity gradient": tensor_bytes(weight.grad) if weight.grad is not None else 0,
        "optimiser state": tensor_bytes(trainer.optimizer.state),
        "relation table + decoder": sum(t.nbytes for n, t in model.state_dict().items()
                                        if not n.startswith("entity")),
        "triples (train/valid/test)": sum(kg.split(s).nbytes for s in ("train", "valid",
                                                                         "test")),
        "train edges per relation (HeteroData)": sum(
            kg[et].edge_index.nbytes for et in kg.edge_types),
        "filter index, train (negative sampling)": tensor_bytes(kg.filter_index(("train",))),
    }
    # Filtered ranking: the index of all splits, then the timed queries.
    t0 = clock()
    flt = kg.filter_index()
    out["filter_build_s"] = clock() - t0
    out["bytes"]["filter index, all splits (ranking)"] = tensor_bytes(flt)
    out["bytes"]["entity names (Python str)"] = sum(sys.getsizeof(n) for n in kg.entity_names)
    batch = max(1, p["eval_scores"] // kg.num_entities)
    queries = kg.test[: p["eval_queries"] // 2]
    # Warm-up on one batch of the timed shape: compiles the kernels the timed call uses.
    evaluate(model, kg, "test", triples=queries[:max(1, batch // 2)], batch_size=batch,
             progress=False)
    t0, w0 = clock(), time.perf_counter()
    result = evaluate(model, kg, "test", triples=queries, batch_size=batch, progress=False)
    n_queries = 2 * len(queries)
    out.update(eval_batch=batch, eval_queries=n_queries,
               eval_s_per_1k=(clock() - t0) / n_queries * 1000,
               eval_wall_s_per_1k=(time.perf_counter() - w0) / n_queries * 1000,
               eval_mrr=result.mrr, peak_mib=(status_kib("VmHWM") - base_kib) / 1024)
    return out


# =================================================================== parent
def run_child(p: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--phase", json.dumps(p)],
                          capture_output=True, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout)[-2000:]}
    return json.loads(lines[-1])


def fmt_bytes(b: float) -> str:
    return f"{b / MIB:,.0f} MiB" if b >= MIB else f"{b / 1024:,.0f} KiB"


def report(rows: list[dict], args) -> str:
    lines = ["  entities    triples  model    setup   epoch CPU-s (steps)       step ms  "
             "eval s/1k q  peak MiB  RSS graph MiB  queries commit"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['entities']:>10,} {r['model']:>8} {r['setup']:>6}  FAILED: "
                         f"{r['error'].splitlines()[-1][:80]}")
            continue
        ext = "" if r["full_epoch"] else f" EXTR.{r['timed_steps']}"
        lines.append(
            f"{r['entities']:>10,} {r['triples']:>10,}  {r['model']:<8} {r['setup']:<6} "
            f"{r['epoch_s']:>9,.1f} ({r['steps_per_epoch']:>6,}{ext:<8}) "
            f"{1000 * r['step_s']:>8.2f}  {r['eval_s_per_1k']:>10.2f}  {r['peak_mib']:>8,.0f}"
            f"  {r['rss_graph_mib']:>12,.0f}  {r['eval_queries']:>7} {r.get('commit', '')}")
    text = "\n".join(lines)
    text += (f"\n\nepoch CPU-s: one thread, batch {args.batch}, {args.negatives} negatives, "
             f"dim {args.dim} real coordinates (ComplEx: {args.dim // 2} complex); "
             f"EXTR.n = EXTRAPOLATED from n timed steps after 3 warm-up steps, times the "
             f"epoch's steps. dense = nn.Embedding + Adam (fused); sparse = "
             f"nn.Embedding(sparse=True) "
             f"+ row-wise AdaGrad. eval: filtered, 'queries' head+tail test queries, "
             f"score matrices of about {args.eval_scores:,} scores. peak MiB: VmHWM of the "
             f"child minus its RSS after importing torch (graph, both filter indices, model, "
             f"optimiser, evaluation).")
    for n in sorted({r["entities"] for r in rows}):
        same = [r for r in rows if r["entities"] == n and "bytes" in r]
        if n >= 10**6 and same:
            text += f"\n\n-- where memory goes at {n:,} entities (bytes of the live tensors) --"
            keys = list(same[0]["bytes"])
            head = "".join(f"  {r['model'] + '/' + r['setup']:>16}" for r in same)
            text += f"\n{'':<42}{head}"
            for k in keys:
                text += f"\n{k:<42}" + "".join(f"  {fmt_bytes(r['bytes'][k]):>16}"
                                               for r in same)
            text += f"\n{'peak RSS over torch import':<42}" + "".join(
                f"  {fmt_bytes(r['peak_mib'] * MIB):>16}" for r in same)
    return text


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    keys = [("epoch_s", "training CPU-s per epoch (10 triples/entity)"),
            ("eval_s_per_1k", "filtered evaluation, CPU-s per 1,000 queries"),
            ("peak_mib", "peak RSS, MiB")]
    combos = sorted({(r["model"], r["setup"]) for r in rows if "error" not in r})
    for ax, (key, title) in zip(axes, keys, strict=True):
        for model, setup in combos:
            pts = sorted((r["entities"], r[key]) for r in rows if "error" not in r
                         and r["model"] == model and r["setup"] == setup)
            ax.plot(*zip(*pts, strict=True), marker="o",
                    linestyle="-" if setup == "sparse" else "--", label=f"{model}, {setup}")
        ax.set(xscale="log", yscale="log", xlabel="entities", title=title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 4_000_000])
    add("--models", nargs="+", default=["transe", "complex"], choices=["transe", "complex"])
    add("--setups", nargs="+", default=["dense", "sparse"], choices=list(SETUPS))
    add("--dim", type=int, default=64, help="real coordinates per entity")
    add("--triples-per-entity", type=int, default=10)
    add("--relations", type=int, default=100)
    add("--batch", type=int, default=1024)
    add("--negatives", type=int, default=16)
    add("--lr", type=float, default=1e-2)
    add("--steps", type=int, default=100, help="timed steps where a full epoch is not run")
    add("--full-epoch-steps", type=int, default=1000,
        help="run a whole epoch when it has at most this many steps")
    add("--eval-queries", type=int, default=1000)
    add("--eval-scores", type=int, default=2**24, help="scores per evaluation matrix")
    add("--min-free-gib", type=float, default=12.0,
        help="skip a size of >= 4M entities when less memory than this is available")
    add("--out", type=Path, default=RESULTS / "scale")
    add("--report", action="store_true",
        help="only rebuild the table and plot from the results file")
    add("--phase", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phase:
        print(json.dumps(phase(json.loads(args.phase))), flush=True)
        return 0
    from mmgnn.data import synthetic_kg

    torch.set_num_threads(1)
    header = (f"torch {torch.__version__}, 1 thread per process, {os.cpu_count()} CPUs, load "
              f"average at start {os.getloadavg()[0]:.1f} (rows: load_avg); synthetic_kg(N, "
              f"{args.triples_per_entity}N triples, {args.relations} relations, degree "
              f"exponent 2.5, relation skew 1.0, seed 0)")
    print(header, flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    jsonl = args.out.with_suffix(".jsonl")
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [] if args.report else args.sizes:
            if n >= 4_000_000 and available_gib() < args.min_free_gib:
                print(f"skipping {n:,} entities: {available_gib():.1f} GiB available, "
                      f"--min-free-gib {args.min_free_gib}", flush=True)
                continue
            t0 = time.process_time()
            kg = synthetic_kg(n, args.triples_per_entity * n, args.relations, seed=0)
            gen_s = time.process_time() - t0
            graph = f"{tmp}/kg.pt"
            torch.save({k: getattr(kg, k) for k in ("entity_names", "relation_names", "train",
                                                   "valid", "test", "name")}, graph)
            triples = len(kg.train) + len(kg.valid) + len(kg.test)
            del kg
            print(f"[{time.strftime('%T')}] {n:,} entities, {triples:,} triples drawn in "
                  f"{gen_s:.1f} CPU-s", flush=True)
            for model in args.models:
                for setup in args.setups:
                    p = {**{k: v for k, v in vars(args).items() if k not in ("out", "phase")},
                         "model": model, "setup": setup, "graph": graph}
                    p["sizes"] = None
                    row = {"entities": n, "triples": triples, "model": model, "setup": setup,
                           "generate_s": gen_s, "load_avg": os.getloadavg()[0],
                           "commit": commit, **run_child(p)}
                    rows.append(row)
                    with jsonl.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(f"[{time.strftime('%T')}] " + json.dumps(
                        {k: v for k, v in row.items() if k != "bytes"})[:400], flush=True)
    # The report covers every row of the results file, the latest per (size, model, setup),
    # so that a size run later (4M, alone) joins the earlier curve.
    latest = {}
    for line in jsonl.read_text().splitlines():
        row = json.loads(line)
        latest[row["entities"], row["model"], row["setup"]] = row
    rows = [latest[k] for k in sorted(latest)]
    text = header + "\n\n" + report(rows, args)
    print("\n" + text)
    args.out.with_suffix(".txt").write_text(text + "\n")
    plot(rows, args.out.with_suffix(".png"))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
