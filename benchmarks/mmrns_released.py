"""The released MMRNS code (quqxui/MMRNS a4a41fc, ``../shared/reference/MMRNS``) and mmgnn's
MMRNS side by side: wall time per training step on the same data, features and settings,
one thread each, in one process (the released ``run_gumbel.main`` first, then mmgnn's trainer).

The reference files are not edited: this driver writes the released input layout into a
temporary folder (``data/MKG-W/{train,valid,test}.txt`` with mmgnn's entity and relation order,
``ent_links``, and the two feature files), puts it as the working directory, and runs
``run_gumbel.main`` with ``--do_train`` only. Shims: ``h5py`` (not installed here) reads the
feature files as empty, so the release builds its zero text (4 x 384) and image (24 x 383)
tensors, which are the features this repository has for MKG-W (none); ``ordered_set`` (not
installed) is a minimal insertion-ordered set; ``matplotlib`` is not used by training. mmgnn
runs with the same zero features (as text and image modalities: same computation as the
release's, every token valid), the same RotatE, K, batch, pre-sample, learning rates and steps.

Time per step: the median interval between consecutive training steps after two warm-up
steps (the release's DataLoader worker prepares batches in a second process, as released).
MRR is not compared: the released evaluation (``test_step``, a Python list of all entities
per query) is out of reach on this CPU, and so is a training run long enough to mean anything
at the batch that fits this machine's memory (the release's B x P x 24 x 50 tensors); ranking
the released embeddings (``models/entity_embedding.npy``) with mmgnn's evaluator on a GPU run
is the way to compare MRR.

    export MMGNN_DATA=/path/to/datasets
    python benchmarks/mmrns_released.py --batch 32 --steps 12
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "MMRNS"
ROWS = ROOT / "benchmarks" / "results" / "mmrns_released.jsonl"


class _OrderedSet(dict):
    """Insertion-ordered set (what ``ordered_set.OrderedSet`` gives run_gumbel)."""

    def add(self, item) -> None:
        self.setdefault(item, None)


class _EmptyH5:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def __enter__(self):
        return {}

    def __exit__(self, *exc) -> None:
        return None


def _write_release_layout(kg, folder: Path) -> None:
    data = folder / "data" / "MKG-W"
    data.mkdir(parents=True)
    ent = [f"E{i}" for i in range(kg.num_entities)]
    rel = [f"R{i}" for i in range(kg.num_relations)]
    for split in ("train", "valid", "test"):
        rows = getattr(kg, split).tolist()  # the release numbers names by first appearance
        (data / f"{split}.txt").write_text(
            "".join(f"{ent[h]}\t{rel[r]}\t{ent[t]}\n" for h, r, t in rows))
    (data / "ent_links").write_text("".join(f"http://dbpedia.org/resource/{e}\t{e}\n"
                                            for e in ent))
    for name in ("MKG_W_description_sentences.h5", "MKG_W_img_BEIT_16-224.h5"):
        (folder / "data" / name).write_bytes(b"")
    for sub in ("models", "results"):
        (folder / sub).mkdir()


def _load_run_gumbel():
    shims = {"h5py": types.SimpleNamespace(File=_EmptyH5),
             "ordered_set": types.SimpleNamespace(OrderedSet=_OrderedSet),
             "matplotlib": types.ModuleType("matplotlib"),
             "matplotlib.pyplot": types.ModuleType("matplotlib.pyplot")}
    sys.modules.update(shims)
    sys.path.insert(0, str(REFERENCE))
    spec = importlib.util.spec_from_file_location("run_gumbel", REFERENCE / "run_gumbel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _median_interval(stamps: list[float], warmup: int = 2) -> float:
    gaps = [b - a for a, b in zip(stamps[warmup:-1], stamps[warmup + 1:], strict=True)]
    return statistics.median(gaps)


def released(kg, args) -> dict:
    run_gumbel = _load_run_gumbel()
    stamps: list[float] = []
    inner = run_gumbel.train_step

    def timed(*a, **k):
        stamps.append(time.perf_counter())
        return inner(*a, **k)

    run_gumbel.train_step = timed
    with tempfile.TemporaryDirectory() as tmp:
        _write_release_layout(kg, Path(tmp))
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            argv = ["--do_train", "--data_path", "data/MKG-W", "--model", "RotatE", "-de",
                    "-n", str(args.negatives), "-d", str(args.dim), "-g", "6", "-a", "0.5",
                    "-lr", "0.005", "-kca_lr", "0.0001", "--sample_method", "gumbel",
                    "--pre_sample_num", str(args.pre_sample), "--loss_rate", "100",
                    "--exploration_temp", "10", "--max_steps", str(args.steps + 1),
                    "--valid_steps", "1000000000", "--save_checkpoint_steps", "1000000000",
                    "-b", str(args.batch), "-cpu", "1", "-save", "models"]
            torch.manual_seed(0)
            with contextlib.redirect_stderr(open(os.devnull, "w")):
                run_gumbel.main(run_gumbel.parse_args(argv))
        finally:
            os.chdir(cwd)
    return {"s_per_step": _median_interval(stamps), "steps": len(stamps)}


def ours(kg, args) -> dict:
    from mmgnn.models import build_model
    from mmgnn.train import TrainConfig, Trainer, seed_everything

    n = kg.num_entities
    kg.add_modality("text", torch.zeros(n, 4, 384))
    kg.add_modality("image", torch.zeros(n, 24, 383))
    cfg = TrainConfig(regime="negative", loss="self_adversarial", adversarial_temperature=0.5,
                      margin=0.0, sampler="mmrns", negative_filter="train",
                      num_negatives=args.negatives, batch_size=args.batch, lr=5e-3,
                      epochs=1, eval_every=0, patience=0,
                      sampler_args={"pre_sample": args.pre_sample, "lr": 1e-4,
                                    "contrastive": "batch", "released_positive_norm": True})
    seed_everything(0)
    model = build_model("rotate", kg, dim=args.dim, margin=6.0)
    trainer = Trainer(model, kg, cfg, progress=False)
    stamps = []
    for i, batch in enumerate(trainer.task.batches(trainer)):
        if i > args.steps:
            break
        stamps.append(time.perf_counter())
        losses, _ = trainer.task.loss(trainer, batch)
        trainer.step(losses["loss"])
    return {"s_per_step": _median_interval(stamps), "steps": len(stamps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--negatives", type=int, default=32)
    parser.add_argument("--pre-sample", type=int, default=1500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import warnings

    from mmgnn.data import load_dataset

    warnings.simplefilter("ignore")
    kg = load_dataset("MKG-W", add_side_info=False)
    theirs = released(kg, args)
    mine = ours(kg, args)
    row = {"dataset": "MKG-W", "features": "zero text 4x384 and image 24x383 (none here)",
           "batch": args.batch, "pre_sample": args.pre_sample, "dim": args.dim,
           "negatives": args.negatives, "decoder": "RotatE", "threads": 1,
           "released_s_per_step": round(theirs["s_per_step"], 4),
           "mmgnn_s_per_step": round(mine["s_per_step"], 4),
           "ratio_released_over_mmgnn": round(theirs["s_per_step"] / mine["s_per_step"], 2),
           "steps_timed": [theirs["steps"], mine["steps"]],
           "load_avg": round(os.getloadavg()[0], 1)}
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    with ROWS.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
