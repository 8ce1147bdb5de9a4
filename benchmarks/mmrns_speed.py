"""MMRNS's CPU time per training step against the uniform sampler's, side by side in one
process with one thread (steps interleaved: uniform, MMRNS as of ``--before``, MMRNS now), at
the released pre-sample P = 1,500; and a check that the current code computes the same step as
the ``--before`` code (same weights, batch and random stream: scores, loss and gradients).

    export MMGNN_DATA=/path/to/datasets HF_HUB_OFFLINE=1
    python benchmarks/mmrns_speed.py --dataset DB15K --steps 6
    python benchmarks/mmrns_speed.py --dataset MKG-W --steps 6

``ratio_floor`` is a lower bound on the ratio: the uniform step plus the structural view's
three :math:`U P H F` matrix products per step (forward, and the two of the backward pass) at the
matmul speed measured in the same process, everything else of MMRNS taken as free.

Settings: the CPU recipe of the issue's 8.8x (``benchmarks/mmrns_quality.py``: RotatE dim 64,
K = 32, batch 1024, self-adversarial loss; DB15K with the 8 MiniLM token states of the names
as the text view, MKG-W with the structural view only). The ``--before`` code is read from git
(``git show``) into a temporary module. A row per run is appended to
``benchmarks/results/mmrns_speed.jsonl``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ROWS = ROOT / "benchmarks" / "results" / "mmrns_speed.jsonl"
BEFORE = "2b1c0c4"  # the parent of the speed-up commit 7981fc2
BASE = dict(regime="negative", loss="self_adversarial", adversarial_temperature=2.0,
            margin=0.0, num_negatives=32, batch_size=1024, lr=5e-3, negative_filter="train",
            epochs=1, eval_every=0, patience=0)


def _module_at(commit: str, relpath: str, name: str, replace: dict[str, str]):
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{relpath}"],
                            check=True, capture_output=True, text=True).stdout
    for old, new in replace.items():
        source = source.replace(old, new)
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"{commit}:{relpath}", "exec"), module.__dict__)
    return module


def _code_commit() -> str:
    """The last commit of the MMRNS sampler and KCA files, ``+dirty`` if they differ from it."""
    files = ["mmgnn/sampling/mmrns.py", "mmgnn/nn/fusion/kca.py"]
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "log", "-1", "--format=%h", "--", *files],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", *files]).returncode
    return commit + ("+dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="DB15K", choices=("DB15K", "MKG-W"))
    parser.add_argument("--steps", type=int, default=6, help="timed steps per arm (+1 warm-up)")
    parser.add_argument("--pre-sample", type=int, default=1500)
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--no-save", action="store_true", help="print the row only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    from mmgnn.data import load_dataset
    from mmgnn.modalities import attach_modalities
    from mmgnn.models import build_model
    from mmgnn.train import TrainConfig, Trainer, seed_everything
    from mmgnn.train.loop import build_optimizers

    text = args.dataset == "DB15K"
    kg = load_dataset(args.dataset, add_side_info=text)
    if text:
        attach_modalities(kg, ["text"], {"text": {"output": "sequence", "max_length": 8}},
                          progress=False)
    sargs = dict(pre_sample=args.pre_sample, lr=1e-3, side="tail",
                 **({"text_tokens": 8} if text else {"text": "none"}))

    def trainer(extra: dict) -> Trainer:
        seed_everything(0)
        model = build_model("rotate", kg, dim=64, margin=12.0)
        return Trainer(model, kg, TrainConfig(**BASE, **extra), progress=False)

    old_kca = _module_at(args.before, "mmgnn/nn/fusion/kca.py", "mmrns_before_kca", {})
    old = _module_at(args.before, "mmgnn/sampling/mmrns.py", "mmrns_before",
                     {"from mmgnn.nn.fusion.kca import KCA": "from mmrns_before_kca import KCA"})
    assert old.KCA is old_kca.KCA
    arms = {"uniform": trainer({}), "before": trainer({"sampler": "mmrns", "sampler_args": sargs}),
            "now": trainer({"sampler": "mmrns", "sampler_args": sargs})}
    tr = arms["before"]  # the --before sampler, with the same weights as "now"'s
    sampler = old.mmrns_sampler(kg, tr.config.num_negatives, "train", model=tr.model,
                                adversarial_temperature=2.0, **sargs)
    sampler.load_state_dict(arms["now"].task.sampler.state_dict())
    tr.task.sampler = sampler
    tr.optimizers = build_optimizers(tr.task.param_groups(tr), tr.config)
    tr.optimizer = tr.optimizers["model"]

    # the same step, before and now: scores, loss and every gradient
    batch = next(iter(arms["now"].task.batches(arms["now"])))
    grads, values = {}, {}
    for name in ("before", "now"):
        t = arms[name]
        gen = torch.Generator().manual_seed(7)
        x = t.model.encode()
        pos, neg, extra = t.task.sampler.score_batch(t.model, x, batch, gen)
        loss = t.task.loss_fn(pos, neg) + extra
        loss.backward()
        values[name] = (pos.detach(), neg.detach(), loss.detach())
        grads[name] = [p.grad.clone() for p in [*t.model.parameters(),
                                                *t.task.sampler.parameters()]]
        t.optimizer.zero_grad(set_to_none=True)
        t.task.sampler.step.zero_()
    same_value = max(float((a - b).abs().max()) for a, b in zip(values["before"], values["now"],
                                                                strict=True))
    same_grad = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
                    for a, b in zip(grads["before"], grads["now"], strict=True))

    its = {k: iter(t.task.batches(t)) for k, t in arms.items()}
    cpu = {k: 0.0 for k in arms}
    relations = []  # distinct relations U of the timed MMRNS batches
    for i in range(args.steps + 1):
        for name, t in arms.items():
            b = next(its[name])
            if name == "now" and i:
                relations.append(len(torch.unique(b[:, 1])))
            c = time.process_time()
            losses, _ = t.task.loss(t, b)
            t.step(losses["loss"])
            if i:
                cpu[name] += time.process_time() - c
    per = {k: v / args.steps for k, v in cpu.items()}
    # A floor: the structural view's W_3 products alone (forward, and the two of the backward
    # pass: 3 x U P H F multiply-adds) at this process's measured matmul speed, added to the
    # uniform step, everything else of MMRNS free.
    kca = arms["now"].task.sampler.kca
    u = round(sum(relations) / len(relations))
    a = torch.randn(u * args.pre_sample, kca.hidden_channels)
    w = torch.randn(kca.entity_channels, kca.hidden_channels)
    gemm = []
    for _ in range(3):
        c = time.process_time()
        a @ w.t()
        gemm.append(time.process_time() - c)
    flops = 2 * u * args.pre_sample * kca.hidden_channels * kca.entity_channels
    floor = 3 * min(gemm)
    row = {"dataset": args.dataset, "pre_sample": args.pre_sample, "batch": 1024, "dim": 64,
           "negatives": 32, "views": ["structure", "text"] if text else ["structure"],
           "steps": args.steps, "threads": 1, "before": args.before,
           "now": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
           # the commit of the timed code (HEAD moves with other work in a shared tree)
           "mmrns_code": _code_commit(),
           # library files that differ from HEAD when this ran (any arm's code, e.g. the decoder)
           "dirty_files": subprocess.run(["git", "-C", str(ROOT), "diff", "--name-only", "HEAD",
                                          "--", "mmgnn"], capture_output=True,
                                         text=True).stdout.split(),
           "cpu_s_per_step": {k: round(v, 4) for k, v in per.items()},
           "ratio_before": round(per["before"] / per["uniform"], 2),
           "ratio_now": round(per["now"] / per["uniform"], 2),
           "speedup": round(per["before"] / per["now"], 2),
           "max_abs_diff_scores_loss": same_value, "max_rel_diff_grads": same_grad,
           "mean_relations": u, "matmul_gflops": round(flops / min(gemm) / 1e9, 1),
           "structural_matmul_s": round(floor, 4),
           "ratio_floor": round((per["uniform"] + floor) / per["uniform"], 2),
           "load_avg": round(os.getloadavg()[0], 1)}
    if not args.no_save:
        ROWS.parent.mkdir(parents=True, exist_ok=True)
        with ROWS.open("a") as f:
            f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
