"""K3M runs with a run folder, as ``mmgnn pretrain --model k3m`` and ``mmgnn train --model
k3m --task classification`` start them (also used by ``examples/k3m.py`` and
``benchmarks/k3m_quality.py``).

A pretraining folder holds ``config.json``, ``checkpoint.pt`` (resumable), ``metrics.json``
and ``encoder.pt`` (the K3M weights to fine-tune from); a classification folder holds
``config.json``, ``checkpoint.pt``, ``metrics.json`` and ``results.json`` (accuracy of the
final model against the majority-class baseline).

In a process group (``mmgnn pretrain --nproc W``, ``torchrun``) every rank runs the same
function: the data and the model are built alike on every rank, the
:class:`~mmgnn.train.Trainer` trains data-parallel (:mod:`mmgnn.train.k3m`), rank 0 alone
writes the folder and prints, the final accuracies are computed sharded
(:func:`mmgnn.train.k3m.accuracy`: one process's figures, the same on every rank, so every
rank returns the same results), and every rank returns once the files are written. A
resume needs the world size of the run it continues (the trainer checks it).
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path

import torch

from mmgnn.models.k3m import (
    K3M,
    ItemClassifier,
    K3MConfig,
    K3MPretraining,
    build_k3m,
    category_split,
    load_encoder,
    load_product_graph,
)
from mmgnn.train import distributed
from mmgnn.train.config import K3M_FINETUNE, K3M_PRETRAIN, TrainConfig, k3m_train_config
from mmgnn.train.k3m import accuracy, finetune_classification, pretrain
from mmgnn.train.loop import seed_everything
from mmgnn.utils.io import can_resume, removed_on_failure, save_checkpoint, save_json

CONFIG = "config.json"
METRICS = "metrics.json"
ENCODER_FILE = "encoder.pt"


def _undone_on_failure(run):
    """``run(out, ...)`` that, failing before its first checkpoint, leaves no folder (or no
    ``config.json``) behind for a later ``--resume`` or ``evaluate`` to trip on (rank 0
    cleans up)."""
    @functools.wraps(run)
    def guarded(out: str | os.PathLike, **settings):
        if not distributed.is_main():
            return run(out, **settings)
        with removed_on_failure(out):
            return run(out, **settings)
    return guarded


def _saved_train(saved: dict) -> tuple[TrainConfig, float]:
    """The ``TrainConfig`` and encoder learning-rate scale of a saved ``config.json``
    (written by this module, or as a ``K3MTrainConfig`` before 0.2)."""
    return k3m_train_config({"encoder_lr_scale": saved.get("encoder_lr_scale", 0.1),
                             **saved["train"]})


def _check_out(out: Path, resume: bool) -> bool:
    """Whether to resume: False for a folder that has its config but no checkpoint yet (the
    run stopped before its first epoch ended), which then starts from the beginning."""
    if resume and not (out / CONFIG).is_file():
        raise ValueError(f"nothing to resume in {out} (no {CONFIG})")
    if not resume and (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a run; add --resume to continue it or choose "
                         f"another --out")
    if not distributed.is_main():  # rank 0 says it when there is nothing to resume
        return resume and (out / "checkpoint.pt").is_file()
    return resume and can_resume(out)


@_undone_on_failure
def pretrain_run(out: str | os.PathLike, *, dataset: str = "K3M-sample",
                 root: str | os.PathLike | None = None, size: str = "tiny",
                 model_args: dict | None = None, lp: str = "margin",
                 train: TrainConfig | None = None, encoder_lr_scale: float = 0.1,
                 image_features: str | None = None, resume: bool = False,
                 progress: bool = True):
    """Pretrains K3M on every item of the dataset (see :class:`K3MPretraining`); returns the
    trainer. ``resume`` continues the run in ``out`` with its saved settings."""
    out = Path(out)
    if (out / CONFIG).is_file() and resume:
        saved = json.loads((out / CONFIG).read_text())
        dataset, root, size = saved["dataset"], saved["root"], saved["size"]
        model_args, lp, image_features = saved["model_args"], saved["lp"], saved["image"]
        train, encoder_lr_scale = _saved_train(saved)
    resume = _check_out(out, resume)
    train = train or TrainConfig(**K3M_PRETRAIN)
    graph = load_product_graph(dataset, root, image_features)
    seed_everything(train.seed)  # before the weights are drawn; resume restores the stream
    model = build_k3m(graph, size, **(model_args or {}))
    main = distributed.is_main()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        objective = K3MPretraining(model, lp=lp)
    for w in caught if main else ():
        print(f"note: {w.message}")
    if main:
        save_json(out / CONFIG, {"dataset": dataset, "root": str(root) if root else None,
                                 "size": size, "model_args": model_args or {}, "lp": lp,
                                 "image": image_features, "train": train.to_dict(),
                                 "encoder_lr_scale": encoder_lr_scale,
                                 "model": model.config.to_dict()})
    progress = progress and main
    if progress:
        print(model)
    items = torch.arange(graph.num_entities)
    return pretrain(objective, items, train, out_dir=out, resume=resume, progress=progress,
                    pretrained=model.text if model.config.text_encoder else None,
                    encoder_lr_scale=encoder_lr_scale,
                    extra={"dataset": dataset, "items": len(items),
                           "model": model.config.to_dict()})


@_undone_on_failure
def classification_run(out: str | os.PathLike, *, dataset: str = "K3M-sample",
                       root: str | os.PathLike | None = None, size: str = "tiny",
                       model_args: dict | None = None, init: str | None = None,
                       train: TrainConfig | None = None, encoder_lr_scale: float = 0.1,
                       image_features: str | None = None, min_count: int = 2,
                       test_fraction: float = 0.3, split_seed: int = 0,
                       resume: bool = False, progress: bool = True) -> dict:
    """Fine-tunes :class:`ItemClassifier` on a stratified category split
    (:func:`~mmgnn.models.k3m.category_split`) from ``init`` (an ``encoder.pt`` of a
    pretraining run, which then fixes the model settings) or from scratch; returns and saves
    the results (final test accuracy and the majority-class baseline)."""
    out = Path(out)
    if (out / CONFIG).is_file() and resume:
        saved = json.loads((out / CONFIG).read_text())
        dataset, root, size, init = saved["dataset"], saved["root"], saved["size"], saved["init"]
        model_args, image_features = saved["model_args"], saved["image"]
        min_count, test_fraction = saved["min_count"], saved["test_fraction"]
        split_seed = saved["split_seed"]
        train, encoder_lr_scale = _saved_train(saved)
    resume = _check_out(out, resume)
    train = train or TrainConfig(**K3M_FINETUNE)
    graph = load_product_graph(dataset, root, image_features)
    seed_everything(train.seed)  # before the weights are drawn; resume restores the stream
    if init is not None:
        saved_model = torch.load(init, map_location="cpu", weights_only=False)["config"]
        model = K3M(K3MConfig.from_dict(saved_model)).attach(graph)
        load_encoder(init, model)
    else:
        model = build_k3m(graph, size, **(model_args or {}))
    y = graph["entity"].y
    train_ids, test_ids = category_split(y, min_count, test_fraction, split_seed)
    majority = float((y[test_ids] == y[train_ids].bincount().argmax()).float().mean())
    main = distributed.is_main()
    if main:
        save_json(out / CONFIG, {"dataset": dataset, "root": str(root) if root else None,
                                 "size": size, "model_args": model_args or {}, "init": init,
                                 "image": image_features, "min_count": min_count,
                                 "test_fraction": test_fraction, "split_seed": split_seed,
                                 "train": train.to_dict(),
                                 "encoder_lr_scale": encoder_lr_scale,
                                 "model": model.config.to_dict()})
    progress = progress and main
    classifier = ItemClassifier(model, len(graph.category_names))
    if progress:
        print(f"{len(train_ids)} train / {len(test_ids)} test items in "
              f"{len(torch.unique(y[train_ids]))} categories (>= {min_count} items each); "
              f"majority-class test accuracy {majority:.4f}")
    trainer = finetune_classification(
        classifier, y, train_ids, test_ids, train, out_dir=out, resume=resume,
        progress=progress, pretrained=model.text if model.config.text_encoder else None,
        encoder_lr_scale=encoder_lr_scale,
        extra={"dataset": dataset, "init": init, "model": model.config.to_dict()})
    test_accuracy = accuracy(classifier, test_ids, y)  # sharded: the same on every rank
    results = {"test_accuracy": test_accuracy,
               "train_accuracy": accuracy(classifier, train_ids, y),
               "majority_accuracy": majority, "train_items": len(train_ids),
               "test_items": len(test_ids), "epochs": trainer.epoch, "steps": trainer.steps,
               "minutes": trainer.minutes, "world_size": distributed.world_size()}
    if main:
        save_json(out / "results.json", results)
        # the final test figure where every run folder has it (metrics.json "final")
        metrics = json.loads((out / METRICS).read_text()) if (out / METRICS).is_file() else {}
        save_json(out / METRICS, {**metrics, "final": {"test": {
            "accuracy": test_accuracy, "majority_accuracy": majority,
            "items": len(test_ids)}}})
        save_checkpoint(out / "model.pt", {"classifier": classifier.state_dict()})
    distributed.barrier()  # every rank returns once the folder is complete
    return results


def _dotted(values: dict, overrides: dict) -> dict:
    """``values`` (nested dicts) with ``{"a.b": v}`` overrides applied."""
    values = json.loads(json.dumps(values))
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return values


def reproduce_seed(config: str | os.PathLike, out: str | os.PathLike, seed: int, *,
                   overrides: dict | None = None, pretrained: bool = True,
                   progress: bool = False) -> dict:
    """One seed of a K3M recipe: pretraining, then item classification from its encoder.

    ``config`` is a classification config (``configs/k3m-sample.yaml``: ``data``, ``model``,
    ``train``) whose ``reproduce.pretrain`` names the pretraining config (``train`` and
    ``lp``; a path relative to ``config``'s folder). Both stages build the model of
    ``config``'s ``model`` section and take ``train.seed = seed``; ``overrides`` are dotted
    keys over ``config`` (``model.fusion``, ``train.epochs``) and, with the prefix
    ``pretrain.``, over the pretraining config (``pretrain.train.epochs``). ``pretrained``
    False skips the pretraining (the from-scratch control). The stages run in
    ``out/pretrain`` and ``out/classification``; a finished stage is read, not rerun. Returns
    the classification results (``test_accuracy``, ...) with the pretraining's steps, CPU
    minutes and last-epoch losses."""
    import yaml

    config, out, overrides = Path(config), Path(out), dict(overrides or {})
    spec = yaml.safe_load(config.read_text())
    pre_overrides = {k.removeprefix("pretrain."): v for k, v in overrides.items()
                     if k.startswith("pretrain.")}
    spec = _dotted(spec, {k: v for k, v in overrides.items() if not k.startswith("pretrain.")})
    model_args = {k: v for k, v in spec.get("model", {}).items() if k not in ("name", "size")}
    size = spec.get("model", {}).get("size", "tiny")
    data = spec.get("data", {})
    common = dict(dataset=data.get("dataset", "K3M-sample"), root=data.get("root"),
                  size=size, model_args=model_args, progress=progress)
    row: dict = {"seed": seed, "pretrained": pretrained}
    init = None
    if pretrained:
        pre_path = config.parent / spec["reproduce"]["pretrain"]
        pre = _dotted(yaml.safe_load(pre_path.read_text()), pre_overrides)
        folder = out / "pretrain"
        if not (folder / ENCODER_FILE).is_file():
            train = TrainConfig(**{**K3M_PRETRAIN, **pre.get("train", {}), "seed": seed})
            pretrain_run(folder, lp=pre.get("lp", "margin"), train=train, **common)
        metrics = json.loads((folder / METRICS).read_text())
        last = metrics["history"][-1] if metrics.get("history") else {}
        row.update(pretrain_steps=metrics.get("steps"), pretrain_epochs=metrics.get("epochs"),
                   pretrain_cpu_minutes=metrics.get("minutes"),
                   pretrain_losses={k: v for k, v in last.items()
                                    if k not in ("epoch", "steps", "minutes")})
        init = str(folder / ENCODER_FILE)
    folder = out / "classification"
    if (folder / "results.json").is_file():
        results = json.loads((folder / "results.json").read_text())
    else:
        train = TrainConfig(**{**K3M_FINETUNE, **spec.get("train", {}), "seed": seed})
        results = classification_run(folder, init=init, train=train, **common)
    return {**row, **results}

