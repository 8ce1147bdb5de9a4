"""Training throughput, evaluation time, peak memory and metric agreement of mmgnn's KGE models
against PyG's ``torch_geometric.nn.kge`` and PyKEEN, on FB15k-237 and DB15K.

    MMGNN_DATA=/path/to/datasets python benchmarks/kge_speed.py            # the full benchmark
    python benchmarks/kge_speed.py --datasets DB15K --steps 5 --pykeen-eval none   # a quick look

Every (library, phase) runs in a fresh child process (this script with a hidden ``--phase``
flag): the child times only the measured work and reports its peak RSS, from which the peak RSS
of a baseline child (torch imported, dataset loaded) is subtracted. Children run one after the
other in the same run and, for training, in rounds that run every library back to back: the
per-round ratios compare libraries under about the same load of a shared machine, and their
median drops a round that a busy spell skewed; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from _peers import (
    METRICS,
    SIDES,
    SPECS,
    TIES,
    mmgnn_model,
    pyg_test_seconds,
    pykeen_rank,
    train_steps,
)
from _phases import in_fresh_process, log

RESULTS = Path(__file__).resolve().parent / "results"
LIBS = {"mmgnn": "mmgnn", "pyg": "PyG", "pykeen": "PyKEEN"}


# =================================================================== child processes (--phase)
def load_kg(name: str, cache: Path | None = None):
    """The dataset, parsed by ``load_dataset``; with ``cache`` (a folder), from the id tensors
    the parent saved there, so that a child's peak RSS is not the peak of parsing text files."""
    from mmgnn.data import MultiModalKG, load_dataset

    if cache is not None:
        return MultiModalKG(**torch.load(cache / f"{name}.pt"))
    with warnings.catch_warnings():  # quirks of the releases are documented in datasets/
        warnings.simplefilter("ignore")
        return load_dataset(name, add_side_info=False)


def phase_train(p: dict, kg) -> dict:
    total = p["warmup"] + p["steps"]
    # The same seeded subset of total × batch training triples for every library.
    pick = torch.randperm(len(kg.train), generator=torch.Generator().manual_seed(p["seed"]))
    stamps = train_steps(kg, kg.train[pick[: total * p["batch"]]], SPECS[p["model"]], p)
    if len(stamps) != total:
        raise RuntimeError(f"{p['lib']} took {len(stamps)} steps, expected {total}")
    seconds = stamps[-1] - stamps[p["warmup"] - 1]  # steps warmup .. total - 1
    positives = p["steps"] * p["batch"]
    scored = positives * (2 if p["lib"] == "pyg" else 1 + p["negatives"])
    return {"seconds": seconds, "positives_per_s": positives / seconds,
            "scored_per_s": scored / seconds}


def matmul_gflops(n: int, d: int, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 GFLOP/s of a (4096 × d) @ (d × n) product."""
    a, b, best = torch.randn(4096, d), torch.randn(d, n), float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 4096 * n * d / best / 1e9


def phase_eval(p: dict, kg) -> dict:
    from mmgnn.eval import evaluate

    spec = SPECS[p["model"]]
    n, r = kg.num_entities, kg.num_relations
    model = mmgnn_model(spec, n, r, p["dim"], p["seed"])
    if p.get("weights"):
        state = torch.load(p["weights"])
        with torch.no_grad():
            model.entity.weight.copy_(state["entity"])
            model.decoder.rel_emb.weight.copy_(state["relation"])
    model.eval()
    test = kg.test[: p["eval_limit"] or None]
    out: dict = {"queries": 2 * len(test)}
    if p["lib"] == "mmgnn":
        out["gflops"] = matmul_gflops(n, model.decoder.entity_channels)
        start = time.perf_counter()  # compiles the distance kernel where one is used
        evaluate(model, kg, triples=test[:1024], progress=False)
        out["warmup_s"] = time.perf_counter() - start
        start = time.perf_counter()
        result = evaluate(model, kg, triples=test, progress=False)
        out["seconds"] = time.perf_counter() - start
        out["peak_rss_mib"] = peak_rss_mib()
        if p["all_ties"]:
            out["metrics"] = {"realistic": result.to_dict()} | {
                ties: evaluate(model, kg, triples=test, ties=ties, progress=False).to_dict()
                for ties in TIES[1:]}
    elif p["lib"] == "pykeen":
        out.update(pykeen_rank(model, spec, kg, test, p["dim"], p["seed"]))
    else:  # PyG's test(): tail queries only, unfiltered, one triple at a time
        sample = test[: p["pyg_eval_queries"]]
        measured = pyg_test_seconds(model, spec, kg, sample, p["dim"])
        out.update(measured_s=measured, measured_queries=len(sample),
                   seconds=measured / len(sample) * out["queries"])
    return out


def phase_prepare(p: dict, kg) -> dict:
    """Weights for the TransE-L1 evaluation and the agreement check: from ``--export`` or
    trained briefly by mmgnn."""
    payload = torch.load(p["export"], weights_only=False) if p["export"] else {}
    if list(payload.get("entity_names", [])) == list(kg.entity_names):
        if payload.get("model", "transe") != "transe" or payload.get("p", 1) != 1:
            raise ValueError(f"{p['export']}: not a TransE-L1 export")
        entity, relation, how = payload["entity"], payload["relation"], f"from {p['export']}"
    else:
        from mmgnn.train import TrainConfig, fit

        model = mmgnn_model(SPECS["transe-l1"], kg.num_entities, kg.num_relations, p["dim"])
        cfg = TrainConfig(lr=p["agree_lr"], epochs=p["agree_epochs"], eval_every=0,
                          batch_size=p["batch"], seed=p["seed"], negative_filter="none")
        mrr = fit(model, kg, cfg, progress=False).best_mrr
        entity, relation = model.entity.weight, model.decoder.rel_emb.weight
        how = (f"trained {p['agree_epochs']} epoch(s) by mmgnn's fit (1 negative, Adam lr "
               f"{p['agree_lr']:g}; valid MRR {mrr:.3f})")
    torch.save({"entity": entity.detach(), "relation": relation.detach()}, p["weights"])
    return {"how": how}


def peak_rss_mib() -> float:
    """Peak RSS of this process. On Linux ``ru_maxrss`` survives fork + exec, so every child
    would report at least the parent's RSS at launch; ``VmHWM``, the same peak for this
    process's own address space, does not."""
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.exists() else []:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_phase(p: dict) -> None:
    import logging

    for name in ("pykeen", "torch_max_mem"):  # notices about CPU batch sizes
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*pin_memory")  # PyKEEN's loader, on CPU
    torch.manual_seed(p["seed"])
    if p["threads"]:
        torch.set_num_threads(p["threads"])
    kg = load_kg(p["dataset"], Path(p["tmp"]))
    fn = {"baseline": lambda p, kg: {}, "train": phase_train, "eval": phase_eval,
          "prepare": phase_prepare}[p["kind"]]
    out = fn(p, kg)
    out.setdefault("peak_rss_mib", peak_rss_mib())
    Path(p["out"]).write_text(json.dumps(out))


# ================================================================================== parent
def child(p: dict) -> dict:
    """Runs one phase in a fresh process; ``{"error": ...}`` if it failed."""
    return in_fresh_process(__file__, p, str(p))


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[f"{c:,.0f}" if isinstance(c, float) and abs(c) >= 1000 else
              f"{c:.3g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    fmt = lambda vals: "  ".join(v.rjust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells])


def rss_delta(out: dict, base: float) -> str:
    return f"{out['peak_rss_mib'] - base:,.0f}" if "peak_rss_mib" in out else "-"


def ratio(a: dict, b: dict, key: str) -> float:
    return a[key] / b[key] if key in a and key in b else float("nan")


def median(values) -> float:
    """Median of the values that are not NaN (NaN if none)."""
    values = sorted(v for v in values if v == v)
    return statistics.median(values) if values else float("nan")


def bench_training(name: str, args, common: dict, base: float,
                   ratios: list) -> tuple[list[dict], str]:
    plan = [(lib, k) for k in args.negatives for lib in LIBS if k == 1 or lib != "pyg"]
    runs: dict[tuple[str, int], list[dict]] = {key: [] for key in plan}
    for rnd in range(args.repeats):
        for lib, k in plan:
            log(f"{name}: training {LIBS[lib]}, {k} negative(s), round {rnd + 1}/{args.repeats}")
            runs[lib, k].append(child({**common, "kind": "train", "lib": lib, "negatives": k}))
    rows, lines = [], []
    for (lib, k), outs in runs.items():
        # A round runs the libraries back to back, under about the same load: the ratio within
        # a round, and its median over rounds, resists a busy spell better than best-of times.
        per_round = {x: [ratio(m, o, f"{x}_per_s") for m, o in zip(runs["mmgnn", k], outs,
                                                                   strict=True)]
                     for x in ("positives", "scored")}
        r = {"library": lib, "negatives": k, "rounds": outs,
             **{key: median(o[key] for o in outs if key in o)
                for key in ("seconds", "positives_per_s", "scored_per_s", "peak_rss_mib")},
             "mmgnn_over_peer": {x: median(v) for x, v in per_round.items()},
             "mmgnn_over_peer_per_round": per_round}
        shown = [f"{v:.2f}x" if lib != "mmgnn" else "" for v in r["mmgnn_over_peer"].values()]
        if lib != "mmgnn":
            ratios.append([name, f"training, K={k}", f"mmgnn / {LIBS[lib]}", *shown])
        rows.append(r)
        lines.append([k, LIBS[lib], r["positives_per_s"], r["scored_per_s"],
                      1e3 * r["seconds"] / args.steps, rss_delta(r, base), *shown])
    return rows, table(["K", "library", "positives/s", "scored/s", "ms/step", "RSS+ MiB",
                        "mmgnn/peer positives/s", "mmgnn/peer scored/s"], lines)


def bench_eval(name: str, args, common: dict, base: float, kg,
               ratios: list) -> tuple[dict, str]:
    n, queries = kg.num_entities, 2 * len(kg.test[: args.eval_limit or None])
    weights = str(Path(common["tmp"]) / f"{name}-transe-l1.pt")
    log(f"{name}: TransE-L1 weights for its evaluation and the agreement check")
    prep = child({**common, "kind": "prepare", "weights": weights})
    rows, lines, notes = [], [], []
    for model in args.eval_models:
        label = SPECS[model].label
        libs = ["mmgnn", "pyg"] + (["pykeen"] if args.pykeen_eval == "all" or (
            args.pykeen_eval == "transe" and model == "transe-l1") else [])
        extra = {"weights": weights} if model == "transe-l1" and "error" not in prep else {}
        outs = {}
        for lib in libs:
            log(f"{name}: evaluating {label} with {LIBS[lib]}")
            outs[lib] = child({**common, "kind": "eval", "model": model, "lib": lib, **extra,
                               "all_ties": "pykeen" in libs and model == "transe-l1"})
        mm = outs["mmgnn"]
        bound = 2 * queries * n * args.dim / (mm.get("gflops", float("nan")) * 1e9)
        notes.append(f"  {label}: matmul {mm.get('gflops', float('nan')):.0f} GFLOP/s -> bound "
                     f"2 * {queries:,} * {n:,} * {args.dim} / GFLOP/s = {bound:.2f} s")
        ratios.append([name, f"evaluation {label}", "mmgnn time / bound",
                       f"{ratio(mm, {'seconds': bound}, 'seconds'):.2f}x", ""])
        for lib, out in outs.items():
            rows.append({"model": model, "library": lib, **out, "bound_s": bound,
                         "peak_rss_delta_mib": out.get("peak_rss_mib", base) - base})
            note = {"mmgnn": f"{ratio(out, {'seconds': bound}, 'seconds'):.2f}x the bound; "
                             f"warm-up {out.get('warmup_s', float('nan')):.1f} s",
                    "pyg": f"EXTRAPOLATED from {out.get('measured_queries')} queries "
                           f"({out.get('measured_s', float('nan')):.1f} s); tail-only, unfiltered",
                    "pykeen": "batch 32 (its CPU default)" + (
                        f"; score check {out['score_check']:.0e}" if "score_check" in out
                        else "")}[lib]
            peer = f"{ratio(out, mm, 'seconds'):.2f}x" if lib != "mmgnn" else ""
            if lib != "mmgnn":
                ratios.append([name, f"evaluation {label}", f"{LIBS[lib]} time / mmgnn time",
                               peer, ""])
            lines.append([label if lib == "mmgnn" else "", LIBS[lib], queries,
                          out.get("seconds", "FAILED"), queries / out.get("seconds", float("nan")),
                          peer, rss_delta(out, base), note if "error" not in out else ""])
    text = table(["model", "library", "queries", "seconds", "queries/s", "peer/mmgnn time",
                  "RSS+ MiB", "note"], lines)
    text += ("\nbound = the (queries x d) @ (d x N) float32 product at the matmul speed measured "
             "just before,\nin the same child; the target <= 2x is for the matmul paths "
             "(TransE-L2, DistMult); L1 distances\nand RotatE's complex moduli are not a "
             "product. PyG's time: its test() speed times the queries.\n" + "\n".join(notes))
    return {"rows": rows, "transe_l1_weights": prep.get("how", prep.get("error"))}, text


def agreement(rows: list[dict]) -> tuple[dict | None, str]:
    pick = {r["library"]: r for r in rows if r["model"] == "transe-l1" and "metrics" in r}
    if len(pick) < 2:
        return None, "skipped: needs --pykeen-eval transe or all (and TransE-L1 in --eval-models)"
    lines, diff, mr_rel = [], 0.0, 0.0
    for ties in TIES:
        for side in SIDES:
            ours = pick["mmgnn"]["metrics"][ties][side]
            theirs = pick["pykeen"]["metrics"][ties][side]
            for lib, vals in (("mmgnn", ours), ("PyKEEN", theirs)):
                lines.append([ties if lib == "mmgnn" else "", side if lib == "mmgnn" else "", lib]
                             + [f"{vals[m]:.{3 if m == 'mr' else 5}f}" for m, _ in METRICS])
            diff = max(diff, *(abs(ours[m] - theirs[m]) for m, _ in METRICS if m != "mr"))
            mr_rel = max(mr_rel, abs(ours["mr"] - theirs["mr"]) / theirs["mr"])
    check, ok = pick["pykeen"].get("score_check", float("nan")), max(diff, mr_rel) <= 1e-3
    text = (f"score check: max |mmgnn score - PyKEEN score| on 1,000 test triples = {check:.1e}\n"
            + table(["ties", "side", "library", "MRR", "MR", "H@1", "H@3", "H@10"], lines)
            + f"\nmax |difference| of MRR and Hits@k: {diff:.1e}; of MR, relative: {mr_rel:.1e}"
            f" -> {'AGREE' if ok else 'DISAGREE (> 1e-3)'}")
    return {"max_abs_diff": diff, "max_rel_diff_mr": mr_rel, "score_check": check,
            "agree": ok}, text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Training throughput, evaluation time, peak memory and metric agreement of "
        "mmgnn's KGE models against PyG (torch_geometric.nn.kge) and PyKEEN. Defaults run the "
        "full benchmark (~15 minutes on 2 idle cores, ~35 on busy ones). Datasets are read "
        "from $MMGNN_DATA.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--datasets", nargs="+", default=["FB15k-237", "DB15K"], help="names for load_dataset")
    add("--model", choices=list(SPECS), default="transe-l1",
        help="model of the training benchmark (dim counts real coordinates: RotatE and ComplEx "
             "get dim/2 complex dimensions)")
    add("--dim", type=int, default=200, help="real coordinates per entity, every model")
    add("--batch", type=int, default=1024, help="positive triples per training step")
    add("--lr", type=float, default=1e-3, help="Adam learning rate (training benchmark)")
    add("--negatives", type=int, nargs="+", default=[1, 32],
        help="negatives per positive K; PyG has no K option and runs only at K=1 "
             "(its model.loss draws 1 corruption per positive)")
    add("--steps", type=int, default=60, help="timed optimiser steps per training run")
    add("--warmup", type=int, default=2, help="untimed optimiser steps before the timed ones")
    add("--repeats", type=int, default=3,
        help="rounds of training runs, each running every library once, back to back; "
             "medians are reported")
    add("--eval-models", nargs="+", choices=["transe-l1", "transe-l2", "distmult", "rotate"],
        default=["transe-l1", "transe-l2", "distmult", "rotate"],
        help="models whose filtered evaluation is timed (RotatE: dim/2 complex dimensions)")
    add("--pykeen-eval", choices=["none", "transe", "all"], default="transe",
        help="models PyKEEN evaluates (TransE-L1 only, ~2-5 min per dataset; all: add ~8 min "
             "for RotatE); 'none' also skips the metric agreement check")
    add("--pyg-eval-queries", type=int, default=200,
        help="queries PyG's one-at-a-time test() ranks; its time is extrapolated")
    add("--eval-limit", type=int, default=0,
        help="rank only the first N test triples (0: all; for quick checks)")
    add("--agree-epochs", type=int, default=2,
        help="epochs mmgnn trains the TransE-L1 model that every library then evaluates")
    add("--agree-lr", type=float, default=1e-2, help="Adam learning rate of those epochs")
    add("--export", metavar="FILE",
        help="an `mmgnn export` file of a TransE-L1 run: used instead of the brief training "
             "on the dataset whose entity names it holds")
    add("--json", type=Path, default=RESULTS / "kge_speed.json", help="results as JSON")
    add("--threads", type=int, default=0,
        help="torch threads in every child (0: torch's default); on a CPU shared with other "
             "jobs, 1 thread gives far steadier timings")
    add("--seed", type=int, default=0, help="seed of weights, subsets and sampling")
    add("--phase", help=argparse.SUPPRESS)  # internal: run one measurement in this process
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        run_phase(json.loads(args.phase))
        return 0
    if args.warmup < 1:
        raise SystemExit("--warmup must be >= 1 (the timed window starts when a step ends)")
    import pykeen
    import torch_geometric

    print(f"torch {torch.__version__} ({args.threads or torch.get_num_threads()} threads, "
          f"{torch.backends.cpu.get_cpu_capability()}), torch_geometric "
          f"{torch_geometric.__version__}, pykeen {pykeen.get_version()}, {os.cpu_count()} CPUs; "
          f"load average at start {os.getloadavg()[0]:.1f}")
    print(f"training: {SPECS[args.model].label}, dim {args.dim}, batch {args.batch}, Adam lr "
          f"{args.lr:g}, margin ranking loss (margin 1); {args.steps} timed steps after "
          f"{args.warmup} warm-up steps; medians of {args.repeats} rounds, each running the "
          f"libraries back to back (ratios: median of the per-round ratios); PyG uses its "
          f"own model.loss (1 corruption per positive, 2 scored triples), mmgnn and PyKEEN score "
          f"1 + K. RSS+ = peak RSS (VmHWM) of the child minus that of a child that only "
          f"loaded the dataset (so it includes importing the library).")
    results, ratios, failed = {}, [], False
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            kg = load_kg(name)
            torch.save({k: getattr(kg, k) for k in ("entity_names", "relation_names", "train",
                                                   "valid", "test", "name")}, f"{tmp}/{name}.pt")
            if (args.warmup + args.steps) * args.batch > len(kg.train):
                raise SystemExit(f"{name} has {len(kg.train):,} training triples, fewer than "
                                 f"(--warmup + --steps) * --batch")
            common = {**vars(args), "json": None, "dataset": name, "tmp": tmp}
            log(f"{name}: baseline child (imports torch, loads the dataset)")
            base = child({**common, "kind": "baseline"}).get("peak_rss_mib", 0.0)
            train_rows, train_text = bench_training(name, args, common, base, ratios)
            evaluation, eval_text = bench_eval(name, args, common, base, kg, ratios)
            agree, agree_text = agreement(evaluation["rows"])
            results[name] = {"entities": kg.num_entities, "relations": kg.num_relations,
                             "train": len(kg.train), "test": len(kg.test),
                             "baseline_rss_mib": base, "training": train_rows,
                             "evaluation": evaluation, "agreement": agree}
            failed |= any("error" in o for r in train_rows for o in r["rounds"])
            failed |= any("error" in r for r in evaluation["rows"])
            failed |= agree is not None and not agree["agree"]
            print(f"\n=== {name}: {kg.num_entities:,} entities, {kg.num_relations} relations, "
                  f"{len(kg.train):,} train, {len(kg.test):,} test triples; baseline RSS "
                  f"{base:,.0f} MiB ===\n\n-- training throughput --\n{train_text}\n\n"
                  f"-- evaluation: test split, filtered (train+valid+test), head and tail, "
                  f"dim {args.dim} (RotatE: {args.dim // 2} complex = {args.dim} real) --\n"
                  f"{eval_text}\n\n-- metric agreement with PyKEEN, TransE-L1, "
                  f"{evaluation['transe_l1_weights']} --\n{agree_text}", flush=True)
    print("\n=== ratios (mmgnn/peer throughput and peer/mmgnn time: > 1 = mmgnn faster) ===\n"
          + table(["dataset", "phase", "ratio", "value", "on scored/s"], ratios)
          + f"\nload average at end {os.getloadavg()[0]:.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"settings": {k: str(v) if isinstance(v, Path) else v
                                                  for k, v in vars(args).items()},
                                     "results": results}, indent=1))
    log(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
