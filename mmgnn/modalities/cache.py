"""The on-disk cache of encoded modality features."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from mmgnn.modalities.base import ModalityFeatures


def default_feature_cache_dir() -> Path:
    """``$MMGNN_FEATURE_CACHE``, else ``~/.cache/mmgnn/features``."""
    env = os.environ.get("MMGNN_FEATURE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmgnn" / "features"


class FeatureCache:
    r"""Encoded features on disk, one file per (dataset, modality, encoder, settings, data).

    A key is the dict :meth:`~mmgnn.modalities.base.Modality.cache_key` returns: dataset name
    and size, modality name and kind, the modality's settings (encoder fingerprint, pooling,
    lengths, normalisation, ...) and a SHA-256 fingerprint of the raw inputs. Its SHA-256 names
    the file ``<root>/<dataset>/<modality>-<hash>.pt``; a JSON file beside it shows the key in
    clear. Any change of the key is a different file, so stale features are never read; old
    files are left for :meth:`clear`. Writes are atomic.

    Args:
        root (str or PathLike, optional): The cache folder. (default:
            :func:`default_feature_cache_dir`)
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_feature_cache_dir()

    def path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
        dataset = re.sub(r"[^\w.-]+", "_", str(key.get("dataset", "data")))
        name = f"{key.get('modality', 'features')}-{digest.hexdigest()[:24]}.pt"
        return self.root / dataset / name

    def load(self, key: dict[str, Any]) -> ModalityFeatures | None:
        """The cached features of ``key``, or :obj:`None`."""
        path = self.path(key)
        if not path.is_file():
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("key") != json.loads(json.dumps(key, default=str)):
            return None  # a hash collision or a file written by hand: rebuild
        info = {**state["info"], "cache": str(path), "cached": True}
        return ModalityFeatures(state["x"], state["mask"], state["lengths"], info)

    def save(self, key: dict[str, Any], features: ModalityFeatures) -> Path:
        """Writes ``features`` under ``key``; returns the file."""
        # Imported here: mmgnn.train imports the models, which import this package.
        from mmgnn.utils.io import save_checkpoint, save_json

        path = self.path(key)
        clean_key = json.loads(json.dumps(key, default=str))
        info = json.loads(json.dumps(features.info, default=str))
        save_checkpoint(path, {"key": clean_key, "x": features.x, "mask": features.mask,
                               "lengths": features.lengths, "info": info})
        save_json(path.with_suffix(".json"), {"key": clean_key, "info": info,
                                              "shape": list(features.x.shape),
                                              "present": features.num_present})
        features.info = {**features.info, "cache": str(path), "cached": False}
        return path

    def clear(self, dataset: str | None = None) -> int:
        """Deletes the cached files (of one dataset, or all); returns how many."""
        base = self.root if dataset is None else self.root / re.sub(r"[^\w.-]+", "_", dataset)
        files = list(base.rglob("*.pt")) + list(base.rglob("*.json")) if base.is_dir() else []
        for file in files:
            file.unlink()
        return sum(f.suffix == ".pt" for f in files)

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"
