"""K3M runs with a run folder, as ``mmgnn pretrain --model k3m`` and ``mmgnn train --model
k3m --task classification`` start them (also used by ``examples/k3m.py`` and
``benchmarks/k3m_quality.py``).

A pretraining folder holds ``config.json``, ``checkpoint.pt`` (resumable), ``metrics.json``
and ``encoder.pt`` (the K3M weights to fine-tune from); a classification folder holds
``config.json``, ``checkpoint.pt``, ``metrics.json`` and ``results.json`` (accuracy of the
final model against the majority-class baseline).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch_geometric.data import HeteroData

from mmgnn.data.product_graph import (
    category_split,
    k3m_sample_files,
    k3m_tokenizer,
    load_k3m_sample,
)
from mmgnn.data.products import read_k3m_products
from mmgnn.modalities import load_feature_file
from mmgnn.models.k3m import K3M, K3MConfig
from mmgnn.models.k3m_pretraining import K3MPretraining
from mmgnn.models.k3m_tasks import ItemClassifier
from mmgnn.train.k3m import (
    K3MTrainConfig,
    classification_accuracy,
    finetune_classification,
    load_encoder,
    pretrain,
)
from mmgnn.train.loop import seed_everything
from mmgnn.utils.io import can_resume, save_checkpoint, save_json

SIZES = ("tiny", "base")
CONFIG = "config.json"


def load_product_graph(dataset: str = "K3M-sample", root: str | os.PathLike | None = None,
                       image_features: str | os.PathLike | None = None) -> HeteroData:
    """``K3M-sample`` (or a folder with the same files) as a product graph. With
    ``image_features`` (a ``.pt`` / ``.npy`` / ``.npz`` file of :obj:`(N, R, F)` or
    :obj:`(N, F)` features; rows matched by ``entity_names`` = item ids when present, else in
    item order) the image stream exists."""
    folder = Path(dataset) if Path(dataset).is_dir() else None
    if folder is None and dataset.lower() not in ("k3m-sample", "k3m"):
        raise ValueError(f"dataset {dataset!r}: K3M reads product files; expected K3M-sample "
                         f"or a folder with products.{{train,valid}}.tsv and the vocabulary")
    files = k3m_sample_files(folder or root)
    tokenizer = k3m_tokenizer(files["vocab"])
    image = None
    if image_features is not None:
        item_ids = [i for split in ("train", "valid")
                    for i in read_k3m_products(files[split]).item_ids]
        x, mask, names = load_feature_file(image_features)
        n = len(item_ids)
        if names is not None:
            index = {item: i for i, item in enumerate(item_ids)}
            full = torch.zeros(n, *x.shape[1:])
            present = torch.zeros(n, dtype=torch.bool)
            rows = torch.tensor([index.get(name, -1) for name in names])
            known = rows >= 0
            full[rows[known]] = x[known]
            present[rows[known]] = True if mask is None else mask[known]
            x, mask = full, present
        elif x.size(0) != n:
            raise ValueError(f"{image_features}: {x.size(0)} rows for {n} items; add "
                             f"entity_names (item ids) to match rows by id")
        image = (x, mask if mask is not None else torch.ones(n, dtype=torch.bool))
    return load_k3m_sample(files["train"].parent, tokenizer, image=image)


def build_k3m(graph: HeteroData, size: str = "tiny", **changes) -> K3M:
    """A :class:`K3M` of ``size`` (``tiny`` / ``base``) with :class:`K3MConfig` ``changes``
    (``streams`` may be a ``+``-separated string), attached to ``graph``. Without image
    features the image stream is left out."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if isinstance(changes.get("streams"), str):
        changes["streams"] = tuple(changes["streams"].split("+"))
    has_image = getattr(graph["item"], "image_x", None) is not None
    if "streams" not in changes:
        changes["streams"] = ("title", "knowledge", "image") if has_image else \
            ("title", "knowledge")
    if has_image:
        changes.setdefault("image_channels", graph["item"].image_x.size(-1))
    try:
        config = getattr(K3MConfig, size)(**changes)
    except TypeError as e:
        raise ValueError(f"K3M model argument: {e}; known: "
                         f"{sorted(K3MConfig.__dataclass_fields__)}") from None
    return K3M(config).attach(graph)


def _check_out(out: Path, resume: bool) -> bool:
    """Whether to resume: False for a folder that has its config but no checkpoint yet (the
    run stopped before its first epoch ended), which then starts from the beginning."""
    if resume and not (out / CONFIG).is_file():
        raise ValueError(f"nothing to resume in {out} (no {CONFIG})")
    if not resume and (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a run; add --resume to continue it or choose "
                         f"another --out")
    return resume and can_resume(out)


def pretrain_run(out: str | os.PathLike, *, dataset: str = "K3M-sample",
                 root: str | os.PathLike | None = None, size: str = "tiny",
                 model_args: dict | None = None, lp: str = "code",
                 train: K3MTrainConfig | None = None, image_features: str | None = None,
                 resume: bool = False, progress: bool = True):
    """Pretrains K3M on every item of the dataset (see :class:`K3MPretraining`); returns the
    trainer. ``resume`` continues the run in ``out`` with its saved settings."""
    out = Path(out)
    if (out / CONFIG).is_file() and resume:
        saved = json.loads((out / CONFIG).read_text())
        dataset, root, size = saved["dataset"], saved["root"], saved["size"]
        model_args, lp, image_features = saved["model_args"], saved["lp"], saved["image"]
        train = K3MTrainConfig(**saved["train"])
    resume = _check_out(out, resume)
    train = train or K3MTrainConfig()
    graph = load_product_graph(dataset, root, image_features)
    seed_everything(train.seed)  # before the weights are drawn; resume restores the stream
    model = build_k3m(graph, size, **(model_args or {}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        objective = K3MPretraining(model, lp=lp)
    for w in caught:
        print(f"note: {w.message}")
    save_json(out / CONFIG, {"dataset": dataset, "root": str(root) if root else None,
                             "size": size, "model_args": model_args or {}, "lp": lp,
                             "image": image_features, "train": train.to_dict(),
                             "model": model.config.to_dict()})
    if progress:
        print(model)
    items = torch.arange(graph["item"].num_nodes)
    return pretrain(objective, items, train, out_dir=out, resume=resume, progress=progress,
                    pretrained=model.text if model.config.text_encoder else None,
                    extra={"dataset": dataset, "items": len(items)})


def classification_run(out: str | os.PathLike, *, dataset: str = "K3M-sample",
                       root: str | os.PathLike | None = None, size: str = "tiny",
                       model_args: dict | None = None, init: str | None = None,
                       train: K3MTrainConfig | None = None, image_features: str | None = None,
                       min_count: int = 2, test_fraction: float = 0.3, split_seed: int = 0,
                       resume: bool = False, progress: bool = True) -> dict:
    """Fine-tunes :class:`ItemClassifier` on a stratified category split
    (:func:`~mmgnn.data.product_graph.category_split`) from ``init`` (an ``encoder.pt`` of a
    pretraining run, which then fixes the model settings) or from scratch; returns and saves
    the results (final test accuracy and the majority-class baseline)."""
    out = Path(out)
    if (out / CONFIG).is_file() and resume:
        saved = json.loads((out / CONFIG).read_text())
        dataset, root, size, init = saved["dataset"], saved["root"], saved["size"], saved["init"]
        model_args, image_features = saved["model_args"], saved["image"]
        min_count, test_fraction = saved["min_count"], saved["test_fraction"]
        split_seed, train = saved["split_seed"], K3MTrainConfig(**saved["train"])
    resume = _check_out(out, resume)
    train = train or K3MTrainConfig(epochs=20, batch_size=16, lr=3e-3, warmup=0.0)
    graph = load_product_graph(dataset, root, image_features)
    seed_everything(train.seed)  # before the weights are drawn; resume restores the stream
    if init is not None:
        saved_model = torch.load(init, map_location="cpu", weights_only=False)["config"]
        model = K3M(K3MConfig.from_dict(saved_model)).attach(graph)
        load_encoder(init, model)
    else:
        model = build_k3m(graph, size, **(model_args or {}))
    y = graph["item"].y
    train_ids, test_ids = category_split(y, min_count, test_fraction, split_seed)
    majority = float((y[test_ids] == y[train_ids].bincount().argmax()).float().mean())
    save_json(out / CONFIG, {"dataset": dataset, "root": str(root) if root else None,
                             "size": size, "model_args": model_args or {}, "init": init,
                             "image": image_features, "min_count": min_count,
                             "test_fraction": test_fraction, "split_seed": split_seed,
                             "train": train.to_dict(), "model": model.config.to_dict()})
    classifier = ItemClassifier(model, len(graph.category_names))
    if progress:
        print(f"{len(train_ids)} train / {len(test_ids)} test items in "
              f"{len(torch.unique(y[train_ids]))} categories (>= {min_count} items each); "
              f"majority-class test accuracy {majority:.4f}")
    trainer = finetune_classification(
        classifier, y, train_ids, test_ids, train, out_dir=out, resume=resume,
        progress=progress, pretrained=model.text if model.config.text_encoder else None,
        extra={"dataset": dataset, "init": init})
    results = {"test_accuracy": classification_accuracy(classifier, test_ids, y),
               "train_accuracy": classification_accuracy(classifier, train_ids, y),
               "majority_accuracy": majority, "train_items": len(train_ids),
               "test_items": len(test_ids), "epochs": trainer.epoch, "steps": trainer.steps,
               "minutes": trainer._now() / 60}
    save_json(out / "results.json", results)
    save_checkpoint(out / "model.pt", {"classifier": classifier.state_dict()})
    return results
