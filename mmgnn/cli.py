"""The ``mmgnn`` command line: list datasets, train, evaluate and export models."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES = """\
examples:
  mmgnn datasets
  mmgnn train --dataset DB15K --model complex --dim 200 --regime 1vsall --reciprocal \\
      --optimizer adagrad --lr 0.1 --n3 0.005 --batch-size 512 --epochs 30 --out runs/db15k
  mmgnn train --dataset FB15k-237 --model transe --arg p_norm=1 --loss margin \\
      --num-negatives 32 --epochs 100 --out runs/fb-transe
  mmgnn train --out runs/db15k --resume          # continue an interrupted run
  mmgnn evaluate runs/db15k --split test --ties optimistic
  mmgnn export runs/db15k --out db15k-complex.pt
"""


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _model_args(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"mmgnn: --arg expects KEY=VALUE (e.g. --arg p_norm=1), got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value.strip())
    return out


def build_parser() -> argparse.ArgumentParser:
    from mmgnn.eval.ranking import TIES
    from mmgnn.train.config import REGIMES, SAMPLERS

    parser = argparse.ArgumentParser(
        prog="mmgnn", description="Multimodal knowledge graphs on PyTorch Geometric: train and "
        "evaluate link-prediction models on real benchmarks.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("datasets", help="list the known datasets with their statistics",
                       description="List the known datasets, their sizes and side information, "
                       "and whether they are already on this machine.")
    p.add_argument("--root", help="folder holding the dataset folders (default: $MMGNN_DATA, "
                   "then the download cache)")

    p = sub.add_parser("train", help="train a model, select it on validation, report test",
                       description="Train a link-prediction model, validate it every "
                       "--eval-every epochs (filtered MRR, both sides), keep the best, and "
                       "report its test metrics. The run folder gets config.json, "
                       "checkpoint.pt (resumable), best.pt, metrics.json and training.png.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="known name (see `mmgnn datasets`) or a folder of triples")
    p.add_argument("--root", help="folder holding the dataset folders")
    p.add_argument("--model", default="transe", help="decoder or model name (default: transe)")
    p.add_argument("--dim", type=int, default=200, help="embedding size (default: 200)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="extra model argument, repeatable (e.g. --arg p_norm=1 --arg margin=9)")
    p.add_argument("--reciprocal", action="store_true",
                   help="answer head queries with inverse relations")
    p.add_argument("--regime", choices=REGIMES, default="negative",
                   help="negative sampling, KvsAll or 1vsAll training (default: negative)")
    p.add_argument("--loss", help="margin | softplus | self_adversarial (negative), bce "
                   "(kvsall), ce | bce (1vsall); default by regime: margin / bce / ce")
    p.add_argument("--margin", type=float, default=1.0, help="margin (default: 1.0)")
    p.add_argument("--adversarial-temperature", type=float, default=1.0,
                   help="alpha of the self-adversarial loss (default: 1.0)")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="(default: 0.0)")
    p.add_argument("--num-negatives", type=int, default=1, help="per positive (default: 1)")
    p.add_argument("--sampler", choices=SAMPLERS, default="uniform",
                   help="which side a negative corrupts: uniform coin, Bernoulli by relation "
                   "(Wang et al., 2014), or head_tail: alternately head and tail (IMF/KBGAT) "
                   "(default: uniform)")
    p.add_argument("--filtered-negatives", action="store_true",
                   help="redraw negatives that are known true triples")
    p.add_argument("--optimizer", choices=("adam", "adagrad", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--n3", type=float, default=0.0, help="N3 regularisation weight (default: 0)")
    p.add_argument("--epochs", type=int, default=100, help="(default: 100)")
    p.add_argument("--batch-size", type=int, default=1024, help="(default: 1024)")
    p.add_argument("--eval-every", type=int, default=5, help="epochs between validations")
    p.add_argument("--patience", type=int, default=5,
                   help="validations without gain before stopping (0: never; default: 5)")
    p.add_argument("--max-minutes", type=float, help="wall-time budget of the run")
    p.add_argument("--ties", choices=TIES, default="realistic", help="(default: realistic)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (other settings are "
                   "read from --out/config.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("evaluate", help="rank a split with a trained run's best model",
                       description="Filtered ranking of a split with the best model of a run.")
    p.add_argument("run", help="run folder written by `mmgnn train`")
    p.add_argument("--split", choices=("valid", "test"), default="test")
    p.add_argument("--ties", choices=TIES, default="realistic")
    p.add_argument("--unfiltered", action="store_true", help="do not filter known triples")
    p.add_argument("--root", help="dataset root, if the data moved since training")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("export", help="write a run's embeddings to one torch file",
                       description="Write {'model', 'entity', 'relation', 'p', 'entity_names', "
                       "'relation_names'} with torch.save, in the dataset's own id order. "
                       "ComplEx and RotatE embeddings are complex tensors; RotatE relations are "
                       "unit-modulus complex numbers.")
    p.add_argument("run", help="run folder written by `mmgnn train`")
    p.add_argument("--out", required=True, help="output file (.pt)")
    p.add_argument("--root", help="dataset root, if the data moved since training")
    return parser


def _datasets(args) -> int:
    from mmgnn.data import dataset_table

    print(dataset_table(args.root))
    return 0


def _load_run(run: str, root: str | None):
    from mmgnn.data import load_dataset
    from mmgnn.models import build_model
    from mmgnn.train import TrainConfig, load_checkpoint

    run_dir = Path(run)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise SystemExit(f"mmgnn: {cfg_path} not found; is {run_dir} a folder written by "
                         f"`mmgnn train --out {run_dir}`?")
    saved = json.loads(cfg_path.read_text())
    config = TrainConfig.from_dict(saved["train"])
    kg = load_dataset(saved["dataset"], root=root or saved.get("root"), add_side_info=False)
    model = build_model(config, kg)
    model.load_state_dict(load_checkpoint(run_dir / "best.pt")["model"])
    return saved, config, kg, model


def _train(args) -> int:
    from mmgnn.data import load_dataset
    from mmgnn.eval import evaluate
    from mmgnn.models import build_model
    from mmgnn.train import TrainConfig, fit
    from mmgnn.train.checkpoint import save_json

    out = Path(args.out)
    if args.resume:
        if not (out / "config.json").is_file():
            raise SystemExit(f"mmgnn: nothing to resume in {out} (no config.json)")
        saved = json.loads((out / "config.json").read_text())
        config = TrainConfig.from_dict(saved["train"])
        dataset, root = saved["dataset"], args.root or saved.get("root")
    else:
        if not args.dataset:
            raise SystemExit("mmgnn: train needs --dataset (see `mmgnn datasets`)")
        if (out / "checkpoint.pt").exists():
            raise SystemExit(f"mmgnn: {out} already holds a run; add --resume to continue it "
                             f"or choose another --out")
        try:
            config = TrainConfig(
                model=args.model, dim=args.dim, model_args=_model_args(args.arg),
                reciprocal=args.reciprocal, regime=args.regime, loss=args.loss,
                margin=args.margin, adversarial_temperature=args.adversarial_temperature,
                label_smoothing=args.label_smoothing, num_negatives=args.num_negatives,
                sampler=args.sampler, filtered_negatives=args.filtered_negatives,
                optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                n3=args.n3, epochs=args.epochs, batch_size=args.batch_size,
                eval_every=args.eval_every, patience=args.patience, max_minutes=args.max_minutes,
                ties=args.ties, seed=args.seed, device=args.device)
        except ValueError as e:
            raise SystemExit(f"mmgnn: {e}") from None
        dataset, root = args.dataset, args.root
        save_json(out / "config.json", {"dataset": dataset, "root": root,
                                        "train": config.to_dict()})
    kg = load_dataset(dataset, root=root, add_side_info=False)
    model = build_model(config, kg)
    progress = not args.quiet
    if progress:
        print(kg)
        print(model)
    trainer = fit(model, kg, config, out_dir=out, resume=args.resume, progress=progress,
                  extra_state={"dataset": kg.name})
    from mmgnn.train import load_checkpoint

    model.load_state_dict(load_checkpoint(out / "best.pt")["model"])
    results = {}
    for split in ("valid", "test"):
        res = evaluate(model, kg, split, ties=config.ties, progress=progress)
        results[split] = res.to_dict()
        print(res.format())
    save_json(out / "metrics.json", {**trainer.metrics(), "final": results})
    print(f"best epoch {trainer.best_epoch}; run folder: {out} (metrics.json, training.png)")
    return 0


def _evaluate(args) -> int:
    from mmgnn.eval import evaluate
    from mmgnn.train.checkpoint import save_json

    _, _, kg, model = _load_run(args.run, args.root)
    res = evaluate(model, kg, args.split, ties=args.ties, filtered=not args.unfiltered,
                   progress=not args.quiet)
    print(res.format())
    save_json(Path(args.run) / f"eval_{args.split}.json", res.to_dict())
    return 0


def _export(args) -> int:
    import torch

    from mmgnn.models.export import export_embeddings

    saved, config, kg, model = _load_run(args.run, args.root)
    payload = export_embeddings(model, kg, config.model)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, args.out)
    print(f"wrote {args.out}: entity {tuple(payload['entity'].shape)} "
          f"{payload['entity'].dtype}, relation {tuple(payload['relation'].shape)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"datasets": _datasets, "train": _train, "evaluate": _evaluate,
               "export": _export}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
