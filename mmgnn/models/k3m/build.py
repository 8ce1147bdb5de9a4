"""Building a K3M and its product graph from names and settings (what the recipes and the
command line call)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mmgnn.data.kg import MultiModalKG
from mmgnn.modalities import load_feature_file
from mmgnn.models.k3m.model import K3M, K3MConfig
from mmgnn.models.k3m.product_graph import k3m_sample_files, k3m_tokenizer, load_k3m_sample
from mmgnn.models.k3m.products import read_k3m_products

SIZES = ("tiny", "base")


def load_product_graph(dataset: str = "K3M-sample", root: str | os.PathLike | None = None,
                       image_features: str | os.PathLike | None = None) -> MultiModalKG:
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


def build_k3m(graph: MultiModalKG, size: str = "tiny", **changes) -> K3M:
    """A :class:`K3M` of ``size`` (``tiny`` / ``base``) with :class:`K3MConfig` ``changes``
    (``streams`` may be a ``+``-separated string), attached to ``graph``. Without image
    features the image stream is left out."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if isinstance(changes.get("streams"), str):
        changes["streams"] = tuple(changes["streams"].split("+"))
    has_image = "image" in graph.modalities
    if "streams" not in changes:
        changes["streams"] = ("title", "knowledge", "image") if has_image else \
            ("title", "knowledge")
    if has_image:
        changes.setdefault("image_channels", graph.features["image"].size(-1))
    try:
        config = getattr(K3MConfig, size)(**changes)
    except TypeError as e:
        raise ValueError(f"K3M model argument: {e}; known: "
                         f"{sorted(K3MConfig.__dataclass_fields__)}") from None
    return K3M(config).attach(graph)
