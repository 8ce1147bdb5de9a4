"""``mmgnn reproduce``: run a recipe of ``configs/`` for its seeds, check the figure it says it
gives, and write the results table of the README.

A recipe is a config file of ``mmgnn train`` (or ``pretrain``) with a ``reproduce:`` section,
which ``train`` ignores::

    reproduce:
      system: NativE                  # the README row
      features: "entity names (MiniLM-L6); no images here"
      released: "zjukg/NATIVE run_adv_wgan_gp.py"
      paper: {mrr: 0.372}             # published, with the paper's features
      released_here: {rows: benchmarks/results/native_released.jsonl}   # or a note
      rows: benchmarks/results/native_reproduce.jsonl   # a driver's rows (optional)
      note: "..."                     # a caveat, printed under the table (optional)
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
own recipe: for the system's CPU time (``max_minutes`` on the CPU clock), then for the system's
epochs. The results of each config go to ``RESULTS/<config>.json``, rewritten after every
seed. The exit code is 1 when a figure is outside its tolerance.

``--table`` rewrites the table between ``<!-- reproduce:start -->`` and
``<!-- reproduce:end -->`` of ``--readme`` from the results on disk (:func:`results_table`):
one row per recipe of ``--configs_dir`` that is no other recipe's baseline, its cells from the
``RESULTS/*.json`` files and from the benchmark drivers' rows the recipes name in ``rows``
(``ROW_READERS`` reads each driver's format), every cell labelled with its seeds, epochs and
CPU minutes, and each row's source files under the table. ``--all`` first runs every such
recipe (its baselines run as baselines), then writes the table. Paths a recipe names
(``rows``, ``released_here.rows``) are relative to the folder above its config's folder.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
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


def _overrides(spec: dict, seed: int, full: bool, extra: dict) -> dict:
    """The dotted options one seed's run is started with, over its config file."""
    # CPU time is the one clock of a comparison: minutes of different runs stay comparable.
    return {"train.budget_clock": "cpu", **({} if full else spec["cpu"]["overrides"]),
            **extra, "train.seed": seed}


def _run_argv(path: Path, spec: dict, folder: Path, overrides: dict) -> list[str]:
    if (folder / "checkpoint.pt").exists():
        return [spec["command"], "--out", str(folder), "--resume", "--quiet"]
    argv = [spec["command"], "--config", str(path), "--out", str(folder), "--quiet"]
    for key, value in overrides.items():
        argv += _option(key, value)
    return argv


def _mismatches(folder: Path, overrides: dict) -> list[str]:
    """The ``overrides`` that the run in ``folder`` was not started with, each as
    ``key: run value != asked value``; empty for a new folder."""
    path = folder / "config.json"
    if not path.is_file():
        return []
    saved = json.loads(path.read_text())
    out = []
    for dotted, asked in overrides.items():
        section, _, key = dotted.partition(".")
        where = saved.get(section)
        if not isinstance(where, dict):
            continue
        where = where if key in where else where.get("args") or {}
        if key in where and where[key] != asked:
            out.append(f"{dotted}: run {where[key]!r} != asked {asked!r}")
    return out


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
              progress: bool = True, on_seed=None) -> dict:
    """Runs (or reads) every seed of the recipe ``path``; returns its results: one row per
    seed (the test metrics, epochs, minutes on the budget clock, CPU minutes of the whole run)
    and the mean and standard deviation of the recipe's metric. ``on_seed(results)`` is
    called with the results so far after each seed."""
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
            if on_seed:
                on_seed(_summary(path, name, spec, full, extra, rows))
            continue
        overrides = _overrides(spec, seed, full, extra or {})
        stale = _mismatches(folder, overrides)
        if stale:  # a run of another budget or recipe is neither read back nor resumed
            raise UsageError(f"{folder} holds a run of other settings ({'; '.join(stale)}): "
                             f"move it away or give another --out")
        row = _finished(folder, metric)
        cpu = wall = None
        if row is None:
            argv = _run_argv(path, spec, folder, overrides)
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
        if on_seed:
            on_seed(_summary(path, name, spec, full, extra, rows))
    return _summary(path, name, spec, full, extra, rows)


def _summary(path: Path, name: str, spec: dict, full: bool, extra: dict | None,
             rows: list[dict]) -> dict:
    metric = spec["cpu"]["metric"]
    values = [r["test"][metric] for r in rows]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) \
        if len(values) > 1 else 0.0
    return {"config": str(path), "name": name, "spec": spec, "full": full, "extra": extra or {},
            "metric": metric, "rows": list(rows), "mean": mean, "std": std,
            "epochs": rows[0]["epochs"], "train_minutes": sum(
                r["train_minutes"] or 0 for r in rows) / len(rows),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "torch": _torch_version()}}


def _torch_version() -> str:
    import torch

    return torch.__version__


BUDGETS = ("cpu", "epochs")


def reproduce(path: str | Path, out: str | Path, results: str | Path, *,
              seeds: list[int] | None = None, full: bool = False,
              baselines: tuple[str, ...] = BUDGETS, progress: bool = True) -> dict:
    """The recipe ``path`` for its seeds, then each baseline at the same CPU time (minutes
    on the CPU clock) and at the same epochs; writes ``results/<config>.json`` after every
    seed (the runs so far, ``ok`` None until the end) and returns the last one, with ``ok``:
    the mean within ``expect ± tolerance`` (None when no figure is stated yet).
    ``baselines`` names the arms that run (:data:`BUDGETS`; empty: none)."""
    from mmgnn.utils.io import save_json

    file = Path(results) / f"{Path(path).stem}.json"
    report: dict = {}

    def save(main_run: dict, column: str | None = None, kind: str | None = None) -> None:
        if column is None:
            report.update(main_run, baselines={}, ok=None)
        else:
            report["baselines"].setdefault(column, {})[kind] = main_run
        save_json(file, report)

    main_run = run_seeds(path, out, seeds=seeds, full=full, progress=progress, on_seed=save)
    save(main_run)
    if baselines:
        epochs = max(1, round(main_run["epochs"] or 1))
        # the equal-CPU arm first: it costs no more than the system, while the equal-epoch arm
        # of a baseline slower per epoch (ComplEx-N3 1vsAll) may cost many times more
        equal = {"cpu": {"train.max_minutes": round(main_run["train_minutes"], 3),
                         "train.epochs": 100000, "train.patience": 0},
                 "epochs": {"train.epochs": epochs, "train.max_minutes": None}}
        for column, other in main_run["spec"]["baselines"].items():
            for kind, extra in ((k, equal[k]) for k in BUDGETS if k in baselines):
                save(run_seeds(other, out, seeds=seeds, full=full, extra=extra,
                               name=f"{Path(other).stem}@{kind}-{Path(path).stem}",
                               progress=progress,
                               on_seed=lambda r, c=column, k=kind: save(r, c, k)), column, kind)
    expect = main_run["spec"]["cpu"].get("expect")
    report["ok"] = None if expect is None or full else \
        abs(report["mean"] - expect) <= float(main_run["spec"]["cpu"].get("tolerance", 0.0))
    save_json(file, report)
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


# ----------------------------------------------------------------------- the results table
# One table from every result on disk: the ``RESULTS/<config>.json`` files written by
# :func:`reproduce`, and the JSON-lines rows of the benchmark drivers that a recipe names in
# ``reproduce.rows`` (measured before ``mmgnn reproduce`` existed, or by a driver that runs
# variants it does not: K3M's fusions, MKGformer's RE/NER suite). Each reader turns a driver's
# rows into *seed rows*: the config that ran (its file stem), the budget (``recipe``: its own
# ``reproduce.cpu``; ``epochs`` / ``cpu``: a baseline at the epochs / CPU minutes of the
# system ``of``), the seed, the test metrics, epochs, steps and train CPU minutes, and the
# file and line it came from. A cell is the mean ± sample std over the seeds of ONE source:
# the file with the most seeds for it (on a tie the ``mmgnn reproduce`` json); the last row
# of a seed counts. Rows run with other settings than the recipe's present ones
# (overrides, K3M's fusion, from-scratch controls, the released budget) do not count.

BUDGET_LABELS = {"epochs": "equal epochs", "cpu": "equal CPU"}
METRIC_NAMES = {"mrr": "MRR", "mr": "MR", "hits@1": "H@1", "hits@3": "H@3", "hits@10": "H@10",
                "f1": "F1"}
_METRICS = ("mrr", "hits@1", "hits@3", "hits@10", "mr")


def _need(row: dict, keys: tuple[str, ...], where: str, kind: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise UsageError(f"{where}: a {kind} row needs {', '.join(map(repr, missing))}; this "
                         f"one has {sorted(row)}")


def _json_lines(path: Path) -> list[tuple[str, dict]]:
    """``(FILE:LINE, object)`` of every non-empty line; a line that is not a JSON object is
    an error naming the file and line."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{n}: not a JSON row ({e.msg})") from None
        if not isinstance(row, dict):
            raise UsageError(f"{path}:{n}: not a JSON object")
        out.append((f"{path}:{n}", row))
    return out


def _setting(recipe: dict, key: str):
    """The value of the dotted ``key`` in the recipe's CPU run: its override, else its file."""
    overrides = recipe["spec"]["cpu"]["overrides"]
    if key in overrides:
        return overrides[key]
    section, name = key.split(".", 1)
    return (recipe["raw"].get(section) or {}).get(name)


def _systems_of(stem: str, recipes: dict) -> list[str]:
    """The recipes that list ``stem`` among their baselines with the same CPU overrides (same
    schedule, so a row of its own recipe is one at the system's epochs)."""
    return [s for s, r in recipes.items() if stem in r["baseline_stems"].values()
            and stem in recipes
            and r["spec"]["cpu"]["overrides"] == recipes[stem]["spec"]["cpu"]["overrides"]]


def _seed(config: str, budget: str, of: str | None, row_seed, test: dict, where: str, *,
          epochs=None, steps=None, before: str | None = None, cpu=None, unit: str = "ep"):
    if not isinstance(row_seed, int):
        raise UsageError(f"{where}: the seed must be an integer, got {row_seed!r}")
    return {"config": config, "budget": budget, "of": of, "seed": row_seed, "test": test,
            "epochs": epochs, "steps": steps, "before": before, "cpu": cpu, "unit": unit,
            "source": where, "file": re.split(r":\d+$| \(", where)[0]}


def _with_baselines(seed: dict, recipes: dict) -> list[dict]:
    return [seed] + [{**seed, "budget": "epochs", "of": system}
                     for system in _systems_of(seed["config"], recipes)]


def _mmrns_rows(lines, recipes) -> list[dict]:
    """``benchmarks/mmrns_reproduce.py``: arms ``mmrns`` / ``pool_uniform`` / ``uniform``
    of ``configs/mmrns-<dataset>*.yaml`` at the recipe's steps, or for ``N CPU-min``."""
    out = []
    for where, r in lines:
        _need(r, ("dataset", "arm", "seed", "config", "budget", "overrides", "epochs", "steps",
                  "train_cpu_min", "mrr"), where, "mmrns_reproduce")
        if str(r["budget"]).startswith("released"):
            continue
        stem, cpu_budget = Path(r["config"]).stem, "CPU-min" in str(r["budget"])
        recipe = recipes.get(stem)
        free = ("train.epochs", "train.max_minutes") if cpu_budget else ()
        if recipe is None or {k: v for k, v in r["overrides"].items() if k not in free} != {
                k: v for k, v in recipe["spec"]["cpu"]["overrides"].items() if k not in free}:
            continue
        budget, of = ("recipe", None) if r["arm"] == "mmrns" and not cpu_budget else (
            "cpu" if cpu_budget else "epochs", f"mmrns-{r['dataset']}")
        out.append(_seed(stem, budget, of, r["seed"], {k: r[k] for k in _METRICS if k in r},
                         where, epochs=r["epochs"], steps=r["steps"], cpu=r["train_cpu_min"]))
    return out


def _mkgformer_rows(lines, recipes) -> list[dict]:
    """``benchmarks/mkgformer_quality.py --reproduce``: per seed the system's row (``role:
    system``), then its baselines' ``equal_epochs`` and ``equal_cpu`` rows (their own recipe,
    epoch cap and early stopping kept)."""
    out, system = [], None
    for where, r in lines:
        _need(r, ("role", "budget", "config", "seed", "epochs", "cpu_min", "mrr"), where,
              "mkgformer_reproduce")
        stem = Path(r["config"]).stem
        if r["role"] == "system":
            system, budget = stem, "recipe"
        elif system is None:
            raise UsageError(f"{where}: a baseline row before any system row (each seed's "
                             f"rows start with the system's)")
        elif r["budget"] in ("equal_epochs", "equal_cpu"):
            budget = r["budget"][len("equal_"):]
        else:
            raise UsageError(f"{where}: budget {r['budget']!r} is neither equal_epochs nor "
                             f"equal_cpu")
        stage1 = r.get("stage1")
        out.append(_seed(stem, budget, None if budget == "recipe" else system, r["seed"],
                         {k: r[k] for k in _METRICS if k in r}, where, epochs=r["epochs"],
                         steps=r.get("steps"), cpu=r["cpu_min"],
                         before=f"stage 1 {stage1['epochs']} ep" if stage1 else None))
    return out


def _k3m_rows(lines, recipes) -> list[dict]:
    """``benchmarks/k3m_quality.py --part reproduce``: pretraining then classification per
    (config, fusion, seed); only pretrained rows at the recipe's fusion count. The
    title-only / knowledge-only recipes run K3M's schedule, so they are also its baselines
    at equal epochs."""
    out = []
    for where, r in lines:
        _need(r, ("config", "fusion", "seed", "pretrained", "test_accuracy", "finetune_epochs",
                  "cpu_minutes"), where, "k3m_reproduce")
        # ``NAME@cpu`` (``--tag @cpu``): the baseline NAME run for its system's CPU time
        stem, at_cpu = r["config"].removesuffix("@cpu"), r["config"].endswith("@cpu")
        recipe = recipes.get(stem)
        if (recipe is None or not r["pretrained"]
                or r["fusion"] != _setting(recipe, "model.fusion")
                or (not at_cpu
                    and (r.get("overrides") or {}) != recipe["spec"]["cpu"]["overrides"])):
            continue
        pre = r.get("pretrain_epochs")
        seed = _seed(stem, "recipe", None, r["seed"], {"accuracy": r["test_accuracy"]}, where,
                     epochs=r["finetune_epochs"], cpu=r["cpu_minutes"],
                     before=None if pre is None else f"pretraining {pre} ep")
        if at_cpu:
            out += [{**seed, "budget": "cpu", "of": system} for system, other in recipes.items()
                    if stem in other["baseline_stems"].values()]
        else:
            out += _with_baselines(seed, recipes)
    return out


def _imf_rows(lines, recipes) -> list[dict]:
    """``benchmarks/imf_quality.py --reproduce`` (before ``mmgnn reproduce`` ran it)."""
    out = []
    for where, r in lines:
        _need(r, ("config", "overrides", "seed", "epochs", "steps", "train_minutes", "test"),
              where, "imf_reproduce")
        stem = Path(r["config"]).stem
        recipe = recipes.get(stem)
        if recipe is None or r["overrides"] != recipe["spec"]["cpu"]["overrides"]:
            continue
        out.append(_seed(stem, "recipe", None, r["seed"], r["test"], where, epochs=r["epochs"],
                         steps=r["steps"], cpu=r["train_minutes"]))
    return out


def _tasks_rows(lines, recipes) -> list[dict]:
    """``benchmarks/mkgformer_tasks.py`` (RE / NER): the full-data rows (``fraction`` 1) at
    the recipe's budget of training examples."""
    out = []
    for where, r in lines:
        _need(r, ("config", "seed", "fraction", "examples_seen", "test", "train_cpu_min"),
              where, "mkgformer_tasks")
        stem = Path(r["config"]).stem
        recipe = recipes.get(stem)
        if (recipe is None or r["fraction"] != 1.0
                or r["examples_seen"] != recipe["spec"]["cpu"]["overrides"].get("examples")):
            continue
        out += _with_baselines(_seed(stem, "recipe", None, r["seed"], r["test"], where,
                                     epochs=r["examples_seen"], unit="examples",
                                     cpu=r["train_cpu_min"]), recipes)
    return out


#: The drivers' row files a recipe may name in ``reproduce.rows``, by file name.
ROW_READERS = {"mmrns_reproduce.jsonl": _mmrns_rows,
               "mkgformer_reproduce.jsonl": _mkgformer_rows,
               "k3m_reproduce.jsonl": _k3m_rows, "imf_reproduce.jsonl": _imf_rows,
               "mkgformer_tasks.jsonl": _tasks_rows}


def _report_rows(path: Path) -> list[dict]:
    """The seed rows of a ``RESULTS/<config>.json`` of :func:`reproduce`."""
    try:
        rep = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: not JSON ({e.msg})") from None
    if not isinstance(rep, dict):
        raise UsageError(f"{path}: not a results object of `mmgnn reproduce`")
    _need(rep, ("config", "metric", "rows", "baselines"), str(path), "`mmgnn reproduce` result")
    system = Path(rep["config"]).stem
    runs = [("recipe", None, rep)] + [
        (kind, system, run) for column in rep["baselines"].values()
        for kind, run in column.items()]
    out = []
    for budget, of, run in runs:
        if rep.get("full"):  # the released budget: not the CPU figure the table shows
            continue
        for n, r in enumerate(run["rows"]):
            where = f"{path} ({Path(run['config']).stem}, row {n})"
            _need(r, ("seed", "test", "epochs"), where, "`mmgnn reproduce` seed")
            cpu = r.get("train_minutes") if r.get("budget_clock") == "cpu" else None
            out.append(_seed(Path(run["config"]).stem, budget, of, r["seed"], r["test"], where,
                             epochs=r["epochs"], steps=r.get("steps"),
                             cpu=cpu if cpu is not None else r.get("cpu_minutes")))
    return out


def _named_file(recipe_path: Path, file: str) -> Path:
    """A results file named by a recipe: relative to the folder above the config's folder
    (the repository root for ``configs/``), as the config's other paths are."""
    path = Path(file)
    return path if path.is_absolute() else recipe_path.parent.parent / path


def _released_cell(released, recipe_path: Path) -> tuple[str, list[str]]:
    """The "released code here" cell from ``reproduce.released_here``: a note (the released
    code does not run here, and why) or ``{rows: FILE}`` of a released-code driver."""
    if released is None:
        return "–", []
    if isinstance(released, str):
        return released, []
    where = str(recipe_path)
    if not (isinstance(released, dict) and isinstance(released.get("rows"), str)):
        raise UsageError(f"{where}: `reproduce.released_here` is a note or {{rows: FILE}}")
    path = _named_file(recipe_path, released["rows"])
    if not path.is_file():
        raise UsageError(f"{where}: reproduce.released_here names {path}: no such file")
    lines = _json_lines(path)
    if path.name == "native_released.jsonl":
        cells = []
        for w, r in lines:
            _need(r, ("seed", "epochs", "test_triples", "released_mrr", "mmgnn_mrr",
                      "epoch_ratio_mmgnn_to_released"), w, "native_released")
            cells.append(f"seed {r['seed']}, {r['epochs']} ep: MRR {r['released_mrr']:.4f} "
                         f"vs mmgnn {r['mmgnn_mrr']:.4f} ({r['test_triples']:,} test "
                         f"triples); mmgnn {r['epoch_ratio_mmgnn_to_released']:.2f}x its CPU "
                         f"per epoch")
    elif path.name == "mmrns_released.jsonl":
        for w, r in lines:
            _need(r, ("ratio_released_over_mmgnn", "steps_timed"), w, "mmrns_released")
        ratios = " / ".join(f"{r['ratio_released_over_mmgnn']:.2f}x" for _, r in lines)
        steps = " / ".join(str(r["steps_timed"][0]) for _, r in lines)
        runs = f"{len(lines)} run{'s' if len(lines) > 1 else ''}"
        cells = [f"CPU per step {ratios} mmgnn's ({runs} of {steps} steps); "
                 f"MRR not run"] if lines else []
    else:
        raise UsageError(f"{where}: reproduce.released_here names {path}; the released-code "
                         f"rows read are native_released.jsonl, mmrns_released.jsonl")
    return ("; ".join(cells) or "–"), [str(path)]


def _range(values, unit: str) -> str | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    low, high = min(values), max(values)
    fmt = (lambda v: f"{v:,.0f}") if unit == "examples" else (lambda v: f"{v:g}")
    return f"{fmt(low)} {unit}" if low == high else f"{fmt(low)}–{fmt(high)} {unit}"


def _group(seeds: list[dict], config: str, budget: str, of: str | None,
           metric: str) -> dict | None:
    """The seed rows of one cell from one source, the last row of each seed."""
    sources: dict[str, dict[int, dict]] = {}
    for s in seeds:
        if (s["config"], s["budget"], s["of"]) == (config, budget, of):
            sources.setdefault(s["file"], {})[s["seed"]] = s
    if not sources:
        return None
    # the most seeds; on a tie `mmgnn reproduce`'s json
    source = max(sources, key=lambda f: (len(sources[f]), f.endswith(".json")))
    rows = [sources[source][k] for k in sorted(sources[source])]
    for r in rows:
        if not isinstance(r["test"].get(metric), (int, float)):
            raise UsageError(f"{r['source']}: the test metrics have no {metric!r}; they have "
                             f"{sorted(r['test'])}")
    values = [r["test"][metric] for r in rows]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) \
        if len(values) > 1 else 0.0
    return {"rows": rows, "mean": mean, "std": std, "source": source}


def _cell(group: dict | None) -> str:
    if group is None:
        return "–"
    rows = group["rows"]
    seeds = f"{len(rows)} seeds" if len(rows) > 1 else f"seed {rows[0]['seed']}"
    unit = rows[0]["unit"]
    before = " / ".join(sorted({r["before"] for r in rows if r["before"]}))
    epochs = _range([r["epochs"] for r in rows], unit)
    parts = [seeds] + [p for p in (" + ".join(x for x in (before, epochs) if x),
                                   _range([r["steps"] for r in rows], "steps")) if p]
    cpu = [r["cpu"] for r in rows if r["cpu"] is not None]
    if cpu:
        minutes = sum(cpu) / len(cpu)
        parts.append(f"{minutes:.{2 if minutes < 10 else 1}f} CPU-min")
    return f"{_figure(group)} ({', '.join(parts)})"


def read_recipes(configs_dir: str | Path) -> dict[str, dict]:
    """Every config of ``configs_dir`` with a ``reproduce:`` section, by file stem: its path,
    YAML, checked recipe and the stems of its baselines."""
    recipes = {}
    for path in sorted(Path(configs_dir).glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        if "reproduce" not in raw:
            continue
        spec = read_recipe(path)
        recipes[path.stem] = {"path": path, "raw": raw, "spec": spec, "baseline_stems": {
            column: Path(other).stem for column, other in spec["baselines"].items()}}
    return recipes


def table_seeds(recipes: dict, results: str | Path) -> list[dict]:
    """The seed rows of every ``RESULTS/*.json`` and of every file the recipes name in
    ``reproduce.rows``."""
    seeds: list[dict] = []
    for path in sorted(Path(results).glob("*.json")):
        seeds += _report_rows(path)
    files: dict[Path, str] = {}
    for stem, recipe in recipes.items():
        named = recipe["spec"].get("rows") or []
        for file in [named] if isinstance(named, str) else named:
            path = _named_file(recipe["path"], file)
            if path.name not in ROW_READERS:
                raise UsageError(f"{recipe['path']}: reproduce.rows names {file}; the driver "
                                 f"rows read are {', '.join(sorted(ROW_READERS))}")
            if not path.is_file():
                raise UsageError(f"{recipe['path']}: reproduce.rows names {file}: no such file")
            files.setdefault(path, stem)
    for path in files:
        seeds += ROW_READERS[path.name](_json_lines(path), recipes)
    return seeds


def _dataset(recipe: dict) -> str:
    spec, raw = recipe["spec"], recipe["raw"]
    name = spec.get("dataset") or Path(str((raw.get("data") or {}).get("dataset"))).name
    subset = recipe["spec"]["cpu"]["overrides"].get("data.subset")
    if isinstance(subset, dict) and subset.get("entities"):
        name += f", {subset['entities']:,}-entity subset"
    return name


def _paper(spec: dict, metric: str) -> str:
    paper = spec.get("paper") or {}
    if metric in paper:
        return f"{paper[metric]:g}"
    if paper:  # the paper states other metrics only: show those, named
        return ", ".join(f"{METRIC_NAMES.get(k, k)} {v:g}" for k, v in paper.items()) \
            + f" (no {METRIC_NAMES.get(metric, metric)})"
    return "–"


def results_table(results: str | Path, configs_dir: str | Path = "configs") -> str:
    """The README's Markdown table: one row per recipe of ``configs_dir`` that is no other
    recipe's baseline, each cell from the results on disk (see :func:`table_seeds`), and a
    footnote naming every row's sources."""
    recipes = read_recipes(configs_dir)
    seeds = table_seeds(recipes, results)
    baselines = {b for r in recipes.values() for b in r["baseline_stems"].values()}
    lines = ["| system | dataset | features | paper | released code here | mmgnn (mean ± std; "
             "seeds, epochs, CPU-min) | base decoder | ComplEx-N3 | pool-uniform (MMRNS) |",
             "|" + "---|" * 9]
    notes = []
    for stem, recipe in recipes.items():
        if stem in baselines:
            continue
        spec, metric = recipe["spec"], recipe["spec"]["cpu"]["metric"]
        released, released_files = _released_cell(spec.get("released_here"), recipe["path"])
        system = _group(seeds, stem, "recipe", None, metric)
        cells = {column: [] for column in COLUMNS}
        used = [system["source"]] if system else []
        for column, other in recipe["baseline_stems"].items():
            parts = []
            for kind, label in BUDGET_LABELS.items():
                group = _group(seeds, other, kind, stem, metric)
                if group:
                    used.append(group["source"])
                    parts.append(f"{label} {_cell(group)}")
            if parts:
                name = "" if column in COLUMNS else column.replace("_", " ") + ": "
                cells[column if column in COLUMNS else "base"].append(name + "; ".join(parts))
        row = [spec.get("system", stem), _dataset(recipe), spec.get("features", "?"),
               _paper(spec, metric), released,
               f"{METRIC_NAMES.get(metric, metric)} {_cell(system)}" if system else "–",
               *("; ".join(c) or "–" for c in cells.values())]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
        files = list(dict.fromkeys(used + released_files))
        notes.append(f"- {row[0]}, {row[1]}: `{recipe['path']}`"
                     + (f"; results {', '.join(f'`{f}`' for f in files)}" if files else
                        "; nothing measured yet")
                     + (f". {spec['note']}" if spec.get("note") else ""))
    return "\n".join(lines) + (
        "\n\nEach cell: test metric, mean ± sample std over the seeds of one results file, "
        "with the seeds, epochs (steps), and mean training CPU-minutes (1 thread). Baselines "
        "run over their own recipes at the system's epochs (\"equal epochs\") and for its "
        "CPU-minutes (\"equal CPU\"; a baseline may stop sooner at its own epoch cap or "
        "patience: see its CPU-minutes). \"paper\": the published figure, with the paper's "
        "features, data and budget (images, full graphs, GPU): not like for like with the rows "
        "here. \"–\": not measured. Written by "
        "`mmgnn reproduce --table` from these files:\n\n" + "\n".join(notes))


def write_table(readme: str | Path, results: str | Path,
                configs_dir: str | Path = "configs") -> None:
    """Replaces the table between the markers of ``readme`` with :func:`results_table`."""
    from mmgnn.utils.io import atomic_write

    readme = Path(readme)
    text = readme.read_text()
    if START not in text or END not in text:
        raise UsageError(f"{readme}: add the lines {START} and {END} where the table goes")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    text = head + START + "\n" + results_table(results, configs_dir) + "\n" + END + tail
    atomic_write(readme, lambda f: f.write(text.encode()))


def command(args) -> int:
    """``mmgnn reproduce CONFIG ... | --all | --table``."""
    configs = [Path(c) for c in args.configs]
    if args.all:  # the table's rows; their baselines run as baselines
        recipes = read_recipes(args.configs_dir)
        baselines = {b for r in recipes.values() for b in r["baseline_stems"].values()}
        configs = [r["path"] for stem, r in recipes.items() if stem not in baselines]
    if not configs and not args.table:
        raise UsageError("name config files, or --all, or --table")
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    arms = tuple(a for a in args.baselines.split(",") if a and a != "none")
    if not set(arms) <= set(BUDGETS) or ("none" in args.baselines and arms):
        raise UsageError(f"--baselines takes cpu, epochs, both (cpu,epochs) or none, got "
                         f"{args.baselines!r}")
    for path in configs:  # every recipe and baseline readable before the first run
        for other in read_recipe(path)["baselines"].values() if arms else ():
            read_recipe(other)
    failed = []
    for path in configs:
        try:
            rep = reproduce(path, args.out, args.results, seeds=seeds, full=args.full,
                            baselines=arms, progress=not args.quiet)
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
        write_table(args.readme, args.results, args.configs_dir)
        print(f"wrote the results table of {args.readme}")
    return 1 if failed else 0
