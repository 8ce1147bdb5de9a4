"""Precomputed features from a tensor file, as the papers release theirs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mmgnn.modalities.base import Modality, ModalityFeatures, fingerprint, register_modality

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG

MISSING_MARKS = ("none", "nan", "zero")


@dataclass
class _Source:
    path: Path
    entity_names: list[str]


def load_feature_file(path: str | os.PathLike, key: str | None = None,
                      ) -> tuple[Tensor, Tensor | None, list[str] | None]:
    """Reads ``(x, mask, entity_names)`` from ``.pt`` / ``.pth``, ``.npy`` or ``.npz``.

    A ``.pt`` file holds a tensor, or a dict with the tensor under ``key`` (default: ``x``,
    ``features`` or ``embeddings``) and optionally ``mask`` and ``entity_names``; a ``.npz``
    holds arrays under the same names. Errors name the file and what was expected.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature file not found")
    suffix = path.suffix.lower()
    keys = (key,) if key else ("x", "features", "embeddings")
    try:
        if suffix == ".npy":
            payload: Any = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                payload = {k: z[k] for k in z.files}
        elif suffix in (".pt", ".pth"):
            payload = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise ValueError(f"{path}: unknown feature file type {suffix!r}; expected .pt, "
                             f".pth, .npy or .npz")
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        if "feature file type" in str(e):
            raise
        raise ValueError(f"{path}: cannot read the feature file ({e})") from None
    mask = names = None
    if isinstance(payload, dict):
        found = next((k for k in keys if k in payload), None)
        if found is None:
            raise ValueError(f"{path}: expected the features under one of {list(keys)}, found "
                             f"keys {sorted(payload)}")
        mask = payload.get("mask")
        names = payload.get("entity_names")
        payload = payload[found]
    x = torch.as_tensor(np.asarray(payload) if not isinstance(payload, Tensor) else payload)
    if not x.is_floating_point():
        raise ValueError(f"{path}: expected floating-point features, got {x.dtype}")
    if mask is not None:
        mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask)
        mask = mask.to(torch.bool)
    if names is not None:
        names = [str(n) for n in (names.tolist() if hasattr(names, "tolist") else names)]
    return x.to(torch.float32), mask, names


@register_modality("precomputed")
class PrecomputedModality(Modality):
    r"""Features read from a file with one row per entity (:func:`load_feature_file`).

    Rows follow the graph's entity ids, unless the file carries ``entity_names``: then rows
    are matched to the graph by name (names the graph lacks are ignored and counted in
    ``info``; graph entities the file lacks are missing). Absent rows are given by the file's
    ``mask``, or marked in the data (``missing="nan"``: a row that is all NaN;
    ``missing="zero"``: a row that is all zero, the convention of several released feature
    matrices). Otherwise a NaN anywhere is an error naming the file and the row.

    Args:
        path (str or PathLike): The file.
        key (str, optional): Name of the tensor in a dict / ``.npz`` file.
        missing (str): How absent rows are marked: ``none``, ``nan`` or ``zero``.
            (default: ``none``)
        name (str, optional): Feature name, e.g. ``image``. (default: ``precomputed``)

    Shapes:
        - **output.x:** :obj:`(N, d)` or :obj:`(N, L, d)` as in the file (sequences get
          lengths :math:`L`).
    """

    def __init__(self, path: str | os.PathLike | None = None, key: str | None = None,
                 missing: str = "none", name: str | None = None) -> None:
        super().__init__(name)
        if path is None:
            raise ValueError("the precomputed modality needs path= (a .pt, .npy or .npz file "
                             "with one row per entity)")
        if missing not in MISSING_MARKS:
            raise ValueError(f"missing must be one of {MISSING_MARKS}, got {missing!r}")
        self.path, self.key, self.missing = Path(path).expanduser(), key, missing

    def read(self, kg: MultiModalKG) -> _Source:
        return _Source(self.path, list(kg.entity_names))

    def fingerprint(self, raw: _Source) -> str:
        return fingerprint([raw.path, raw.entity_names])

    def settings(self) -> dict[str, Any]:
        return {"path": str(self.path.resolve()), "key": self.key, "missing": self.missing}

    def encode(self, raw: _Source, progress: bool = True) -> ModalityFeatures:
        x, mask, names = load_feature_file(raw.path, self.key)
        n, info = len(raw.entity_names), {"file": str(raw.path)}
        if mask is not None and mask.shape != (x.size(0),):
            raise ValueError(f"{raw.path}: mask has shape {tuple(mask.shape)}, expected "
                             f"({x.size(0)},), one entry per row of the features")
        if names is not None:
            if len(names) != x.size(0):
                raise ValueError(f"{raw.path}: {len(names)} entity_names for {x.size(0)} rows")
            index = {name: i for i, name in enumerate(raw.entity_names)}
            rows = torch.tensor([index.get(name, -1) for name in names], dtype=torch.long)
            known = rows >= 0
            info["rows_not_in_graph"] = int((~known).sum())
            full = torch.zeros(n, *x.shape[1:])
            full[rows[known]] = x[known]
            present = torch.zeros(n, dtype=torch.bool)
            present[rows[known]] = True if mask is None else mask[known]
            x, mask = full, present
        elif x.size(0) != n:
            raise ValueError(f"{raw.path}: {x.size(0)} rows, expected one per entity of the "
                             f"graph ({n}); add 'entity_names' to the file to match by name")
        if x.dim() not in (2, 3):
            raise ValueError(f"{raw.path}: features of shape {tuple(x.shape)}, expected "
                             f"(N, d) or (N, L, d)")
        flat = x.reshape(n, -1)
        if mask is None:
            mask = torch.ones(n, dtype=torch.bool)
        if self.missing == "nan":
            mask = mask & ~torch.isnan(flat).all(dim=1)
        elif self.missing == "zero":
            mask = mask & (flat != 0).any(dim=1)
        bad = ~torch.isfinite(flat).all(dim=1) & mask
        if bad.any():
            raise ValueError(f"{raw.path}: NaN or infinite values in {int(bad.sum())} rows of "
                             f"present entities (first rows: "
                             f"{bad.nonzero().view(-1)[:5].tolist()}); mark absent rows with a "
                             f"mask, or pass missing='nan'")
        x = x.clone()
        x[~mask] = 0
        lengths = torch.where(mask, x.size(1), 0) if x.dim() == 3 else None
        return ModalityFeatures(x, mask, lengths, info)
