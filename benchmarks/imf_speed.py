"""IMF's training step on DB15K against its FLOP bound (issue 17: the epoch within 1.5x).

    export MMGNN_DATA=/path/to/datasets HF_HUB_OFFLINE=1
    python benchmarks/imf_speed.py --config configs/imf-db15k.yaml --steps 12
    python benchmarks/imf_speed.py --config configs/imf-db15k.yaml --set model.dim=64

One thread, CPU clock (``time.process_time``). The model and the optimisation are the config's
(``--set`` dotted overrides as in its ``reproduce.cpu.overrides``); the batches are the
trainer's own KvsAll batches of one epoch, in its order. ``--steps`` training steps (loss,
backward, Adam) are timed after ``--warmup`` untimed ones, and the epoch time is the mean step
time times the steps of an epoch.

**The bound** counts the matrix products a training step cannot avoid, forward and backward
(backward = two products of the forward's size: the gradients of both operands), for the
batch's :math:`B` queries, :math:`U` distinct relations, :math:`N` entities, :math:`V` views
(:math:`V + 1` TuckER branches when :math:`V > 1`), widths :math:`d` and :math:`d_r`, Tucker
fusion rank :math:`k`:

- per branch, 1-to-all scores :math:`\\mathbf{X}\\mathbf{E}^\\top`: :math:`3 \\cdot 2BNd`;
- per branch, the core contracted with the batch's relations, :math:`\\mathbf{W}_r` for the
  :math:`U` distinct ones: :math:`3 \\cdot 2 U d_r d^2`, and the rows :math:`\\mathbf{x}_b
  \\mathbf{W}_{r_b}`: :math:`3 \\cdot 2 B d^2`;
- the entity fusion over all :math:`N` entities: :math:`3 \\cdot 2 N k \\sum_m d\\, d` (the
  relation fusion, over :math:`2R` rows, likewise);
- the projection encoder (paper form), :math:`N` feature rows of width :math:`d_m`:
  :math:`2 \\cdot 2 N d_m d` (features are constants: no input gradient).

Element-wise work (batch norms, dropout masks, sigmoid/BCE over the :obj:`(B, N)` scores,
Adam) is not counted: the bound is FLOPs only. FLOPs are turned into seconds with the float32
matrix-product speed measured in the same process and thread (the best of a few
:obj:`(B, d) \\times (d, N)` products, the scores' shape). Prints the bound, the measured
step and epoch, and their ratio; ``--rows`` appends a JSON row.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def matmul_gflops(b: int, d: int, n: int, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of a ``(b, d) @ (d, n)`` product on this thread."""
    a, w = torch.randn(b, d), torch.randn(n, d)
    a @ w.t()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        a @ w.t()
        best = min(best, time.process_time() - t0)
    return 2 * b * d * n / best / 1e9


def step_flops(model, batch, num_relations: int) -> dict[str, float]:
    """FLOPs of the matrix products of one training step (forward + backward), by part."""
    n, d = model.num_entities, model.dim
    d_r = model.relation_channels
    b = len(batch.entity)
    u = len(torch.unique(batch.relation))
    branches = len(model.branch_names)
    parts = {"scores": branches * 3 * 2 * b * n * d,
             "core": branches * 3 * (2 * u * d_r * d * d + 2 * b * d * d)}
    if model.entity_fusion is not None:
        k, views = model.entity_fusion.rank, len(model.view_names)
        parts["fusion"] = 3 * 2 * k * views * (n * d * d + 2 * num_relations * d_r * d_r)
    parts["encoder"] = sum(4 * n * proj.in_features * d for proj in model.projections.values())
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/imf-db15k.yaml"))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="dotted overrides, e.g. model.dim=64")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--label", default="", help="a name for the row (e.g. before/after)")
    parser.add_argument("--rows", type=Path, help="append the JSON row to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)

    import yaml

    from mmgnn.data import load_dataset
    from mmgnn.modalities import attach_modalities
    from mmgnn.models import build_model
    from mmgnn.sampling import OneToAllBatches
    from mmgnn.train import seed_everything
    from mmgnn.train.config import TrainConfig
    from mmgnn.train.loop import build_optimizers

    raw = yaml.safe_load(args.config.read_text())
    for item in args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        raw[section][name] = yaml.safe_load(value)
    data, model_args, train = raw["data"], dict(raw["model"]), raw["train"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg = load_dataset(data["dataset"], add_side_info=bool(data.get("modalities")))
        if data.get("modalities"):
            attach_modalities(kg, data["modalities"], progress=False)
    seed_everything(0)
    name = model_args.pop("name")
    model = build_model(name, kg, **model_args,
                        modality_names=data.get("modalities") or None).train()
    cfg = TrainConfig(**{k: v for k, v in train.items()
                         if k in TrainConfig.__dataclass_fields__})
    optimizer = build_optimizers(model.param_groups(), cfg)["model"]
    from mmgnn.nn.losses import BCEWithLabelSmoothing

    loss_fn = BCEWithLabelSmoothing(cfg.label_smoothing, cfg.label_smoothing_form)
    batches = OneToAllBatches(kg.train, kg.num_entities, kg.num_relations, reciprocal=True)
    per_epoch = batches.num_batches(cfg.batch_size)
    it = batches.epoch(cfg.batch_size, torch.Generator().manual_seed(0))

    speed = matmul_gflops(cfg.batch_size, model.dim, kg.num_entities)
    times, flops = [], []
    for i in range(args.warmup + args.steps):
        batch = next(it)
        t0 = time.process_time()
        loss = model.loss(model.encode(), batch, loss_fn)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        dt = time.process_time() - t0
        if i >= args.warmup:
            times.append(dt)
            flops.append(step_flops(model, batch, kg.num_relations))
    speed = max(speed, matmul_gflops(cfg.batch_size, model.dim, kg.num_entities))
    step_s = sum(times) / len(times)
    parts = {k: sum(f[k] for f in flops) / len(flops) for k in flops[0]}
    total = sum(parts.values())
    bound_s = total / (speed * 1e9)
    row = {"label": args.label, "config": str(args.config), "set": args.set,
           "dim": model.dim, "batch": cfg.batch_size, "branches": model.branch_names,
           "entities": kg.num_entities, "steps_per_epoch": per_epoch,
           "timed_steps": len(times), "matmul_gflops": round(speed, 1),
           "gflop_per_step": {k: round(v / 1e9, 2) for k, v in parts.items()},
           "bound_s_per_step": round(bound_s, 4), "s_per_step": round(step_s, 4),
           "bound_min_per_epoch": round(bound_s * per_epoch / 60, 2),
           "min_per_epoch": round(step_s * per_epoch / 60, 2),
           "ratio": round(step_s / bound_s, 2), "torch": torch.__version__,
           "load_avg": round(os.getloadavg()[0], 1)}
    print(f"IMF {args.label} {data['dataset']} dim {model.dim}, batch {cfg.batch_size}, "
          f"branches {'+'.join(model.branch_names)}: float32 matmul {speed:.1f} GFLOP/s (1 "
          f"thread); {total / 1e9:.1f} GFLOP/step "
          f"({', '.join(f'{k} {v / 1e9:.1f}' for k, v in parts.items())}) -> bound "
          f"{bound_s:.3f} s/step = {row['bound_min_per_epoch']:.2f} min/epoch; measured "
          f"{step_s:.3f} s/step = {row['min_per_epoch']:.2f} min/epoch ({per_epoch} steps); "
          f"ratio {row['ratio']:.2f}x", flush=True)
    if args.rows:
        with args.rows.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
