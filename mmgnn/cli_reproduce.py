"""``mmgnn reproduce``: run a recipe of ``configs/`` for its seeds, check the figure it says it
gives, and write the results table of the README.

A recipe is a config file of ``mmgnn train`` (or ``pretrain``) with a ``reproduce:`` section,
which ``train`` ignores::

    reproduce:
      system: NativE                  # the README row
      features: "entity names (MiniLM-L6); no images here"
      released: "zjukg/NATIVE run_adv_wgan_gp.py"
      paper: {mrr: 0.372}             # published, with the paper's features
      released_here: {mrr: 0.25, source: benchmarks/results/native_released.json}
      cpu:                            # what this CPU affords, and the figure it gives
        overrides: {train.epochs: 50} # dotted options over the released recipe
        seeds: [0, 1, 2]
        metric: mrr                   # a test metric of the run
        expect: 0.240                 # the mean over the seeds (null until measured)
        tolerance: 0.01
      baselines: {base: configs/rotate-db15k.yaml, complex_n3: configs/complex-db15k.yaml}

Each seed is a run folder ``OUT/<config>/seed<k>`` of ``mmgnn train``: a finished one is read,
not rerun, and an interrupted one resumes. A K3M recipe (``command: k3m``) runs its two stages
per seed through :func:`mmgnn.recipes.k3m.reproduce_seed`. A baseline runs twice, each over its
own recipe: for the system's epochs, and for the system's CPU time (``max_minutes`` on the CPU
clock). The results of each config go to ``RESULTS/<config>.json``; ``--all`` runs every recipe
and rewrites the table between ``<!-- reproduce:start -->`` and ``<!-- reproduce:end -->`` of
``--readme``. The exit code is 1 when a figure is outside its tolerance.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path

import yaml

from mmgnn.cli_args import UsageError

START, END = "<!-- reproduce:start -->", "<!-- reproduce:end -->"
COLUMNS = {"base": "base decoder", "complex_n3": "ComplEx-N3", "pool_uniform": "pool-uniform"}


def read_recipe(path: str | Path) -> dict:
    """The ``reproduce:`` section of the config file ``path``, checked; ``UsageError`` naming
    the file and the key when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such config file")
    spec = (yaml.safe_load(path.read_text()) or {}).get("reproduce")
    if not isinstance(spec, dict):
        raise UsageError(f"{path}: no `reproduce:` section (see `mmgnn reproduce --help`)")
    cpu = spec.get("cpu")
    if not isinstance(cpu, dict) or not cpu.get("metric"):
        raise UsageError(f"{path}: `reproduce.cpu` needs at least `metric` (and `seeds`, "
                         f"`overrides`, `expect`, `tolerance`)")
    seeds = cpu.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
        raise UsageError(f"{path}: `reproduce.cpu.seeds` must be a list of integers, got {seeds!r}")
    if not isinstance(cpu.get("overrides", {}), dict):
        raise UsageError(f"{path}: `reproduce.cpu.overrides` must map dotted options to values")
    baselines = spec.get("baselines") or {}
    if isinstance(baselines, list):  # a list names its columns by the baselines' own systems
        baselines = {Path(b).stem: b for b in baselines}
    return {**spec, "cpu": {"seeds": seeds, "overrides": {}, **cpu}, "baselines": baselines,
            "command": spec.get("command", "train")}


def _option(key: str, value) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value)
    return [f"--{key}", text]


def _run_argv(path: Path, spec: dict, folder: Path, seed: int, full: bool,
              extra: dict) -> list[str]:
    if (folder / "checkpoint.pt").exists():
        return [spec["command"], "--out", str(folder), "--resume", "--quiet"]
    argv = [spec["command"], "--config", str(path), "--out", str(folder), "--quiet"]
    # CPU time is the one clock of a comparison: minutes of different runs stay comparable.
    overrides = {"train.budget_clock": "cpu", **({} if full else spec["cpu"]["overrides"]),
                 **extra, "train.seed": seed}
    for key, value in overrides.items():
        argv += _option(key, value)
    return argv


def _finished(folder: Path, metric: str) -> dict | None:
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    test = (metrics.get("final") or {}).get("test")
    if not test:
        return None
    side = test.get("both", test)
    if metric not in side:
        raise UsageError(f"{path}: the test metrics have no {metric!r}; they have {sorted(side)}")
    return {"test": side, "valid": metrics["final"].get("valid", {}).get("both", {}),
            "epochs": metrics.get("epochs"), "steps": metrics.get("steps"),
            "train_minutes": metrics.get("minutes"),
            "budget_clock": (metrics.get("config") or {}).get("budget_clock")}


def _k3m_seed(path: Path, spec: dict, folder: Path, seed: int, full: bool, extra: dict,
              metric: str) -> dict:
    """One seed of a K3M recipe (``command: k3m``) through
    :func:`mmgnn.recipes.k3m.reproduce_seed`: pretraining with the config named by
    ``reproduce.pretrain``, then item classification; a finished stage is read back."""
    from mmgnn.recipes.k3m import reproduce_seed

    overrides = {**({} if full else spec["cpu"]["overrides"]), **extra}
    cpu = time.process_time()
    reproduce_seed(path, folder, seed, overrides=overrides)
    row = _finished(folder / "classification", metric)
    if row is None:
        raise RuntimeError(f"{folder}: K3M's classification ended without final test metrics")
    return {**row, "cpu_minutes": (time.process_time() - cpu) / 60, "wall_minutes": None}


def run_seeds(path: str | Path, out: str | Path, *, seeds: list[int] | None = None,
              full: bool = False, extra: dict | None = None, name: str | None = None,
              progress: bool = True) -> dict:
    """Runs (or reads) every seed of the recipe ``path``; returns its results: one row per
    seed (the test metrics, epochs, minutes on the budget clock, CPU minutes of the whole run)
    and the mean and standard deviation of the recipe's metric."""
    from mmgnn.cli import main

    path = Path(path)
    spec = read_recipe(path)
    metric = spec["cpu"]["metric"]
    name = name or path.stem
    rows = []
    for seed in seeds or spec["cpu"]["seeds"]:
        folder = Path(out) / name / f"seed{seed}"
        if spec["command"] == "k3m":  # two stages: pretraining, then classification from it
            row = _k3m_seed(path, spec, folder, seed, full, extra or {}, metric)
            rows.append({"seed": seed, "folder": str(folder / "classification"), **row,
                         "load": os.getloadavg()[0]})
            continue
        row = _finished(folder, metric)
        cpu = wall = None
        if row is None:
            argv = _run_argv(path, spec, folder, seed, full, extra or {})
            if progress:
                print("mmgnn " + " ".join(argv), flush=True)
            cpu, wall = time.process_time(), time.perf_counter()
            if main(argv) != 0:
                raise RuntimeError(f"{name} seed {seed} failed: mmgnn {' '.join(argv)}")
            cpu, wall = (time.process_time() - cpu) / 60, (time.perf_counter() - wall) / 60
            row = _finished(folder, metric)
            if row is None:
                raise RuntimeError(f"{folder}: the run finished without final test metrics")
        rows.append({"seed": seed, "folder": str(folder), **row, "cpu_minutes": cpu,
                     "wall_minutes": wall, "load": os.getloadavg()[0]})
    values = [r["test"][metric] for r in rows]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) \
        if len(values) > 1 else 0.0
    return {"config": str(path), "name": name, "spec": spec, "full": full, "extra": extra or {},
            "metric": metric, "rows": rows, "mean": mean, "std": std,
            "epochs": rows[0]["epochs"], "train_minutes": sum(
                r["train_minutes"] or 0 for r in rows) / len(rows),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "torch": _torch_version()}}


def _torch_version() -> str:
    import torch

    return torch.__version__


def reproduce(path: str | Path, out: str | Path, results: str | Path, *,
              seeds: list[int] | None = None, full: bool = False, baselines: bool = True,
              progress: bool = True) -> dict:
    """The recipe ``path`` for its seeds, then each baseline at the same epochs and at the
    same CPU time (minutes on the CPU clock); writes ``results/<config>.json`` and returns it,
    with ``ok``: the mean within ``expect ± tolerance`` (None when no figure is stated yet)."""
    from mmgnn.utils.io import save_json

    main_run = run_seeds(path, out, seeds=seeds, full=full, progress=progress)
    cpu = main_run["spec"]["cpu"]
    report = {**main_run, "baselines": {}}
    if baselines:
        epochs = max(1, round(main_run["epochs"] or 1))
        equal = {"epochs": {"train.epochs": epochs, "train.max_minutes": None},
                 "cpu": {"train.max_minutes": round(main_run["train_minutes"], 3),
                         "train.epochs": 100000, "train.patience": 0}}
        for column, other in main_run["spec"]["baselines"].items():
            report["baselines"][column] = {
                kind: run_seeds(other, out, seeds=seeds, full=full, extra=extra,
                                name=f"{Path(other).stem}@{kind}-{Path(path).stem}",
                                progress=progress) for kind, extra in equal.items()}
    expect = cpu.get("expect")
    report["ok"] = None if expect is None or full else \
        abs(report["mean"] - expect) <= float(cpu.get("tolerance", 0.0))
    save_json(Path(results) / f"{Path(path).stem}.json", report)
    return report


def _figure(run: dict | None) -> str:
    if not run:
        return "–"
    n = len(run["rows"])
    return f"{run['mean']:.3f} ± {run['std']:.3f}" if n > 1 else f"{run['mean']:.3f}"


def _budget(run: dict) -> str:
    epochs = run["epochs"]
    epochs = f"{epochs:.0f}" if isinstance(epochs, (int, float)) else "?"
    minutes = run["train_minutes"]
    return f"{len(run['rows'])} seeds, {epochs} ep, {minutes:.{1 if minutes >= 1 else 2}f} CPU-min"


def results_table(results: str | Path) -> str:
    """The Markdown table of every ``results/*.json`` written by :func:`reproduce`."""
    lines = ["| system | dataset | features | paper | released code here | mmgnn (mean ± std; "
             "seeds, epochs, CPU-min) | base decoder | ComplEx-N3 | pool-uniform |",
             "|" + "---|" * 9]
    for file in sorted(Path(results).glob("*.json")):
        rep = json.loads(file.read_text())
        spec, metric = rep["spec"], rep["metric"]
        paper = (spec.get("paper") or {}).get(metric)
        here = (spec.get("released_here") or {}).get(metric)
        cells = []
        for column in COLUMNS:
            b = rep["baselines"].get(column)
            cells.append(f"{_figure(b['epochs'])} / {_figure(b['cpu'])}" if b else "–")
        dataset = spec.get("dataset") or Path(rep["config"]).stem.split("-", 1)[-1]
        lines.append(
            f"| {spec.get('system', rep['name'])} | {dataset} | {spec.get('features', '?')} | "
            f"{'–' if paper is None else paper} | {'–' if here is None else here} | "
            f"{metric} {_figure(rep)} ({_budget(rep)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + ("\n\nBaselines: equal epochs / equal CPU time, same seeds. "
                               "Every run is leak-free (negatives filtered with the training "
                               "triples only; model selection on valid).")


def write_table(readme: str | Path, results: str | Path) -> None:
    """Replaces the table between the markers of ``readme`` with :func:`results_table`."""
    from mmgnn.utils.io import atomic_write

    readme = Path(readme)
    text = readme.read_text()
    if START not in text or END not in text:
        raise UsageError(f"{readme}: add the lines {START} and {END} where the table goes")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    text = head + START + "\n" + results_table(results) + "\n" + END + tail
    atomic_write(readme, lambda f: f.write(text.encode()))


def command(args) -> int:
    """``mmgnn reproduce CONFIG ... | --all``."""
    configs = [Path(c) for c in args.configs]
    if args.all:
        configs = sorted(p for p in Path(args.configs_dir).glob("*.yaml")
                         if "reproduce" in (yaml.safe_load(p.read_text()) or {}))
    if not configs:
        raise UsageError("name config files, or --all")
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    failed = []
    for path in configs:
        try:
            rep = reproduce(path, args.out, args.results, seeds=seeds, full=args.full,
                            baselines=not args.no_baselines, progress=not args.quiet)
        except RuntimeError as e:  # a run failed: it said why on its own line
            print(f"mmgnn: {path}: {e}")
            failed.append(str(path))
            continue
        cpu = rep["spec"]["cpu"]
        verdict = {None: "no figure stated yet", True: "as expected",
                   False: "OUTSIDE the stated figure"}[rep["ok"]]
        print(f"{path}: test {rep['metric']} {_figure(rep)} ({_budget(rep)}); expected "
              f"{cpu.get('expect')} ± {cpu.get('tolerance')}: {verdict}")
        if rep["ok"] is False:
            failed.append(str(path))
    if args.all or args.table:
        write_table(args.readme, args.results)
        print(f"wrote the results table of {args.readme}")
    return 1 if failed else 0
