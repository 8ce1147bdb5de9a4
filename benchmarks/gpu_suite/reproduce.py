"""The GPU suite's part of issue 17: the paper-scale recipes (released dims, negatives, batch)
of NativE and IMF on DB15K, each trained on the device for a fixed wall-clock slice, then ranked.

Each row of ``$OUT/results.jsonl`` (``part: reproduce``) gives the steps done in the slice, the
seconds per step (an upper bound: the validation at the slice's end is on the clock), the hours
the released number of epochs would take at that pace, and the
filtered test metrics after the slice (a point on the way, not the published figure). The text
features are the DB15K entity names encoded by MiniLM-L6 on the staging machine
(``prepare.sh`` writes ``.gpu_suite/db15k_text.pt``; the device has no encoder weights), read
through the ``precomputed`` modality under the name ``text``.

    python benchmarks/gpu_suite/reproduce.py --out OUT [--device cuda] [--minutes 1.5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ("configs/native-db15k.yaml", "configs/imf-db15k.yaml")


def run(config: str, out: Path, device: str, minutes: float, features: Path,
        quick: bool) -> dict:
    recipe = yaml.safe_load((ROOT / config).read_text())
    # Run folders stay outside $OUT: only a few files come back from a device machine.
    folder = Path(tempfile.gettempdir()) / "gpu_suite_runs" / Path(config).stem
    argv = [sys.executable, "-m", "mmgnn", "train", "--config", str(ROOT / config),
            "--out", str(folder), "--quiet", "--train.device", device,
            "--train.max_minutes", str(minutes), "--train.budget_clock", "wall",
            "--train.eval_every", "0", "--train.patience", "0"]
    if features.is_file():
        argv += ["--data.modalities", "[precomputed]", "--data.modality_args",
                 json.dumps({"precomputed": {"path": str(features), "name": "text"}})]
    if quick:  # a CPU dry run: a narrow model, a short slice
        argv += ["--model.dim", "16", "--train.num_negatives", "4"] \
            if recipe["train"].get("regime", "negative") == "negative" else ["--model.dim", "16"]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    row = {"part": "reproduce", "config": config, "device": device, "slice_minutes": minutes,
           "rc": proc.returncode, "wall_s": round(time.perf_counter() - start, 1),
           "features": "DB15K names, MiniLM-L6 (precomputed)" if features.is_file()
           else "built on the device"}
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "logs" / f"reproduce_{Path(config).stem}.log").write_text(proc.stdout + proc.stderr)
    metrics = folder / "metrics.json"
    if proc.returncode == 0 and metrics.is_file():
        m = json.loads(metrics.read_text())
        from mmgnn.data import load_dataset

        train = load_dataset("DB15K").split("train").size(0)
        per_epoch = -(-train // recipe["train"]["batch_size"])  # steps in one released epoch
        released = recipe["train"].get("epochs")
        # An upper bound: the slice's budget-clock minutes (validation included) over its steps.
        per_step = 60 * m["history"][-1]["minutes"] / m["steps"] if m["steps"] else None
        row.update(steps_done=m["steps"], seconds_per_step=per_step, steps_per_epoch=per_epoch,
                   released_epochs=released, released_hours=per_step * per_epoch * released / 3600
                   if per_step and released else None, test=m["final"]["test"]["both"])
    else:
        row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--minutes", type=float, default=1.5, help="training slice per recipe")
    p.add_argument("--features", default=str(ROOT / ".gpu_suite" / "db15k_text.pt"))
    p.add_argument("--quick", action="store_true", help="CPU dry run: dim 16, 0.2-min slices")
    args = p.parse_args()
    out = Path(args.out)
    minutes = 0.2 if args.quick else args.minutes
    with open(out / "results.jsonl", "a") as f:
        for config in RECIPES:
            row = run(config, out, args.device, minutes, Path(args.features), args.quick)
            print(json.dumps(row), flush=True)
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
