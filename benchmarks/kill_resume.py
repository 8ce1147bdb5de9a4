"""SIGKILL ``mmgnn train`` at random points, ``--resume`` it, and compare with a run never
interrupted: does every resumed run end bit-identical to the uninterrupted one?

Each trial starts the plain command line (``mmgnn train ... --out DIR``) in a fresh folder,
kills it with SIGKILL (no handler runs, as with a power cut of the process) and runs ``mmgnn
train --out DIR --resume`` once. Kill points:

* ``random``: a uniform random time between the moment ``config.json`` appears (before it,
  there is nothing to resume: the user runs the original command again) and 80% of the
  uninterrupted run's remaining time (training and the final test evaluation); a run that
  still ends before its kill is started again with a new, earlier kill time, so every trial
  is a real kill;
* ``write``: the moment the n-th temporary file of ``checkpoint.pt``, ``best.pt`` or
  ``metrics.json`` appears, i.e. inside the atomic write (n random; ``landed`` says whether
  the temporary file was still there after the kill).

A trial **resumed** when the ``--resume`` command exits with 0; it is **identical** when its
``metrics.json`` equals the reference's apart from the time fields (``minutes``,
``seconds``) and every tensor of ``checkpoint.pt`` (model, optimiser, random states) and of
``best.pt`` is bit-identical. Two uninterrupted runs are compared the same way first (the
reference must repeat itself). Each process uses one torch thread.

    MMGNN_DATA=/path/to/datasets python benchmarks/kill_resume.py            # ~12 min
    python benchmarks/kill_resume.py --trials Nations=4 DB15K=2 --out /tmp/k.txt

Writes the table and the counts to ``benchmarks/results/kill_resume.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# Short runs: epochs of well under a second on Nations, a few seconds on DB15K.
CASES = {
    "Nations": ["--model.name", "distmult", "--model.dim", "16", "--train.num_negatives", "4",
                "--train.batch_size", "128", "--train.lr", "0.05", "--train.epochs", "20",
                "--train.eval_every", "2", "--train.patience", "0", "--train.seed", "7"],
    "DB15K": ["--model.name", "distmult", "--model.dim", "16", "--train.num_negatives", "2",
              "--train.batch_size", "4096", "--train.lr", "0.01", "--train.epochs", "4",
              "--train.eval_every", "2", "--train.patience", "0", "--train.seed", "7"],
}
WRITTEN = ("checkpoint.pt", "best.pt", "metrics.json")
TIME_FIELDS = ("minutes", "seconds")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def command(dataset: str, out: Path, resume: bool = False) -> list[str]:
    """The plain command line (the ``mmgnn`` script of this environment)."""
    script = Path(sys.executable).with_name("mmgnn")
    cli = [str(script)] if script.is_file() else [sys.executable, "-m", "mmgnn.cli"]
    prefix = [*cli, "train", "--out", str(out), "--quiet"]
    if resume:
        return [*prefix, "--resume"]
    return [*prefix, "--data.dataset", dataset, *CASES[dataset]]


def run(argv: list[str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - start


def reference(dataset: str, out: Path) -> tuple[float, float]:
    """Runs uninterrupted; returns (seconds until config.json appeared, seconds in all)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command(dataset, out), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    while not (out / "config.json").exists() and proc.poll() is None:
        time.sleep(0.005)
    config = time.perf_counter() - start
    log, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{dataset}: the uninterrupted run failed:\n{log}")
    return config, time.perf_counter() - start


def _without_times(value):
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in TIME_FIELDS}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _strict_json(path: Path):
    def reject(constant):
        raise ValueError(f"{path}: non-finite constant {constant}")
    return json.loads(path.read_text(), parse_constant=reject)


def _equal(a, b) -> bool:
    """Nested checkpoint values: tensors bit for bit, the rest by ==."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def identical(ref: Path, other: Path) -> tuple[bool, bool]:
    """(metrics.json equal apart from time fields, checkpoint and best tensors equal)."""
    try:
        metrics = _without_times(_strict_json(ref / "metrics.json")) == _without_times(
            _strict_json(other / "metrics.json"))
    except (OSError, ValueError):
        metrics = False
    tensors = True
    for name in ("checkpoint.pt", "best.pt"):
        try:
            a = torch.load(ref / name, weights_only=False)
            b = torch.load(other / name, weights_only=False)
        except (OSError, RuntimeError, EOFError):
            return metrics, False
        keys = [k for k in a if k not in ("elapsed", "history")]  # history: in metrics.json
        tensors &= _equal({k: a[k] for k in keys}, {k: b.get(k) for k in keys})
    return metrics, tensors


def state_at_kill(out: Path) -> str:
    """What the killed run left: the newest epoch in checkpoint.pt, and partial writes."""
    partial = sorted(p.name for p in out.glob(".*.tmp"))
    try:
        epoch = f"ckpt@{torch.load(out / 'checkpoint.pt', weights_only=False)['epoch']}"
    except (OSError, RuntimeError, EOFError, KeyError):
        epoch = "no ckpt"
    return epoch + (f" +{len(partial)} tmp" if partial else "")


def _start(dataset: str, out: Path) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    log = open(out.parent / f"{out.name}.log", "w")  # noqa: SIM115 - the child writes it
    return subprocess.Popen(command(dataset, out), env=ENV, stdout=log, stderr=log)


def _killed(proc: subprocess.Popen, out: Path) -> str:
    """Kills ``proc`` unless it already ended; '' or why not."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return ""
    log = (out.parent / f"{out.name}.log").read_text().strip().splitlines()
    return f"ended before the kill (exit {proc.returncode}: {log[-1][:50] if log else ''})"


def kill_at_time(dataset: str, out: Path, delay: float) -> str:
    proc = _start(dataset, out)
    while not (out / "config.json").exists() and proc.poll() is None:
        time.sleep(0.005)
    time.sleep(delay)
    return _killed(proc, out)


def kill_in_write(dataset: str, out: Path, target: str, nth: int) -> tuple[bool, str]:
    """Kills when the ``nth`` temporary file of ``target`` appears; True when the kill landed
    inside the write (the temporary file is still there afterwards)."""
    proc = _start(dataset, out)
    prefix, seen, hit = f".{target}.", set(), None
    while proc.poll() is None and hit is None:
        try:
            names = [e.name for e in os.scandir(out)]
        except FileNotFoundError:
            names = []
        for name in names:
            if name.startswith(prefix) and name.endswith(".tmp") and name not in seen:
                seen.add(name)
                if len(seen) == nth:
                    proc.send_signal(signal.SIGKILL)
                    hit = name
        time.sleep(0.0002)  # leaves the CPU to the run between looks
    note = "" if hit is not None else _killed(proc, out)
    proc.wait()
    return hit is not None and (out / hit).exists(), note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", nargs="+", default=["Nations=20", "DB15K=10"],
                        metavar="DATASET=N", help="trials per dataset (default: Nations=20 "
                        "DB15K=10)")
    parser.add_argument("--write-fraction", type=float, default=0.4,
                        help="share of the trials aimed at a write (default: 0.4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill points")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "kill_resume.txt"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill_resume_"))
    lines = [f"# benchmarks/kill_resume.py (seed {args.seed}); torch {torch.__version__}, "
             f"1 thread per process; {time.strftime('%Y-%m-%d')}"]
    totals = {"trials": 0, "killed": 0, "resumed": 0, "identical": 0}
    started = time.perf_counter()
    try:
        for spec in args.trials:
            dataset, n = spec.split("=")
            lines.append(f"\n## {dataset}: mmgnn train --data.dataset {dataset} "
                         + " ".join(CASES[dataset]))
            refs = [reference(dataset, work / dataset / name) for name in ("ref", "ref2")]
            ref = work / dataset / "ref"
            metrics, tensors = identical(ref, work / dataset / "ref2")
            # Kills land between config.json and 80% of the remaining time (training and the
            # test evaluation): later ones miss runs that happen to finish early.
            window = max(0.5, 0.8 * min(r[1] - r[0] for r in refs))
            lines.append(f"two uninterrupted runs ({refs[0][1]:.1f} s, {refs[1][1]:.1f} s; "
                         f"config.json after {refs[0][0]:.1f} s): "
                         f"metrics {'identical' if metrics else 'DIFFER'}, tensors "
                         f"{'identical' if tensors else 'DIFFER'}")
            lines.append(f"{'trial':>5}  {'kill':<26} {'left on disk':<20} {'resumed':<8} "
                         f"{'metrics':<9} {'tensors':<9} note")
            for i in range(int(n)):
                out = work / dataset / f"t{i}"
                if rng.random() < args.write_fraction:
                    target = rng.choice(WRITTEN)
                    epochs = int(CASES[dataset][CASES[dataset].index("--train.epochs") + 1])
                    nth = rng.randint(1, 2 if target == "best.pt" else min(epochs, 4))
                    landed, note = kill_in_write(dataset, out, target, nth)
                    kill = f"write #{nth} {target}" + ("" if landed else " (missed)")
                else:
                    delay = rng.uniform(0.0, window)
                    note = kill_at_time(dataset, out, delay)
                    while note.startswith("ended before the kill"):  # not a kill: again
                        shutil.rmtree(out, ignore_errors=True)
                        delay = rng.uniform(0.0, delay)
                        note = kill_at_time(dataset, out, delay)
                    kill = f"time +{delay:.2f} s"
                left = state_at_kill(out)
                code, log, _ = run(command(dataset, out, resume=True))
                metrics, tensors = identical(ref, out) if code == 0 else (False, False)
                if "from the beginning" in log:
                    note = f"{note} started over".strip()
                if code:
                    note += " | " + (log.strip().splitlines()[-1][:60] if log.strip()
                                     else f"exit {code}")
                totals["trials"] += 1
                totals["killed"] += not note.startswith("ended before the kill")
                totals["resumed"] += code == 0
                totals["identical"] += metrics and tensors
                lines.append(f"{i:>5}  {kill:<26} {left:<20} {'yes' if code == 0 else 'NO':<8} "
                             f"{'same' if metrics else 'DIFFER':<9} "
                             f"{'same' if tensors else 'DIFFER':<9} {note}")
                print(lines[-1], flush=True)
                shutil.rmtree(out, ignore_errors=True)
                (out.parent / f"{out.name}.log").unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines.append(f"\nkilled while running {totals['killed']}/{totals['trials']}, "
                 f"resumed {totals['resumed']}/{totals['trials']}, bit-identical to the "
                 f"uninterrupted run {totals['identical']}/{totals['trials']} "
                 f"({(time.perf_counter() - started) / 60:.1f} min)")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
