"""Precomputed features from a tensor file, as the papers release theirs."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mmgnn.data.parsing import DataFormatError
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
    holds arrays under the same names. What is read must be:

    * ``x``: floating point (float16/32/64; converted to float32, so finite values must fit
      in float32) of shape :obj:`(N, d)` or :obj:`(N, L, d)`;
    * ``mask``: :obj:`(N,)` booleans, or numbers that are exactly 0 or 1 (a NaN is neither);
    * ``entity_names``: :obj:`N` distinct strings, each without edge whitespace (graph names
      never have any, see :func:`~mmgnn.data.parsing.check_name`).

    Anything else, and a file that its container format cannot read (truncated ``.npz``, not a
    ``torch.save`` file), is a :class:`~mmgnn.data.DataFormatError` naming the file
    and what was expected.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature file not found")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".pt", ".pth"):
        raise DataFormatError(path, None, "a feature file ending in .pt, .pth, .npy or .npz",
                              note=f" (unknown feature file type {suffix!r})")
    keys = (key,) if key else ("x", "features", "embeddings")
    try:
        if suffix == ".npy":
            payload: Any = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                payload = {k: z[k] for k in z.files}
        else:
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a corrupt container raises whatever its parser hits
        raise DataFormatError(path, None, f"a readable {suffix} feature file",
                              note=f", but it cannot be read ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0][:160] if str(e).strip() else ''})",
                              ) from None
    mask = names = None
    if isinstance(payload, dict):
        found = next((k for k in keys if k in payload), None)
        if found is None:
            raise DataFormatError(path, None, f"the features under one of {list(keys)}",
                                  note=f", found keys {sorted(map(str, payload))}")
        mask = payload.get("mask")
        names = payload.get("entity_names")
        payload = payload[found]
    x = _float_features(path, payload)
    if mask is not None:
        mask = _mask(path, mask, x.size(0))
    if names is not None:
        names = _names(path, names, x.size(0))
    return x, mask, names


def _array(path: Path, value: Any, what: str) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach()
        return value.numpy() if value.dtype != torch.bfloat16 else value.float().numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists
        raise DataFormatError(path, None, f"{what} as an array",
                              note=f", got {type(value).__name__} ({e})") from None


def _float_features(path: Path, payload: Any) -> Tensor:
    """``x`` as float32 :obj:`(N, d)` or :obj:`(N, L, d)`, or a :class:`DataFormatError`."""
    arr = _array(path, payload, "features")
    if arr.dtype.kind != "f" or arr.dtype.itemsize > 8:
        raise DataFormatError(path, None, "floating-point features",
                              note=f", got {arr.dtype} of shape {arr.shape}")
    if arr.ndim not in (2, 3):
        raise DataFormatError(path, None, "features of shape (N, d) or (N, L, d)",
                              note=f", got shape {arr.shape}")
    with np.errstate(over="ignore"):  # reported below, naming the rows
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    overflow = torch.isinf(x) & torch.from_numpy(np.isfinite(arr))
    if overflow.any():
        rows = overflow.reshape(len(x), -1).any(dim=1).nonzero().view(-1)
        raise DataFormatError(path, None, f"finite values that fit float32 (magnitude at most "
                              f"{torch.finfo(torch.float32).max:.4g})",
                              note=f", got larger ones in {len(rows)} rows (first rows: "
                              f"{rows[:5].tolist()})")
    return x


def _mask(path: Path, value: Any, rows: int) -> Tensor:
    arr = _array(path, value, "the mask")
    if arr.shape != (rows,):
        raise DataFormatError(path, None, f"a mask of shape ({rows},), one entry per row of "
                              f"the features", note=f", got shape {arr.shape}")
    if arr.dtype.kind == "b":
        return torch.from_numpy(arr.copy())
    if arr.dtype.kind not in "iuf":
        raise DataFormatError(path, None, "a boolean or 0/1 mask", note=f", got {arr.dtype}")
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        first = np.flatnonzero(bad)
        raise DataFormatError(path, None, "a boolean or 0/1 mask",
                              note=f", got {len(first)} other values (first at row "
                              f"{int(first[0])}: {arr[first[0]]!r})")
    return torch.from_numpy(arr == 1)


def _names(path: Path, value: Any, rows: int) -> list[str]:
    if isinstance(value, np.ndarray) or isinstance(value, Tensor):
        arr = _array(path, value, "entity_names")
        value = arr.tolist() if arr.ndim == 1 else value
    if not isinstance(value, list | tuple) or len(value) != rows:
        shape = getattr(value, "shape", None)
        got = f"shape {tuple(shape)}" if shape is not None else f"{type(value).__name__}"
        if isinstance(value, list | tuple):
            got = f"{len(value)} names"
        raise DataFormatError(path, None, f"entity_names as a list of {rows} strings, one per "
                              f"row of the features", note=f", got {got}")
    first: dict[str, int] = {}
    for row, name in enumerate(value):
        if not isinstance(name, str):
            raise DataFormatError(path, None, "entity_names as strings (the graph's entity "
                                  "names)", note=f", got {type(name).__name__} {name!r} at row "
                                  f"{row}")
        if not name or name[0].isspace() or name[-1].isspace():
            raise DataFormatError(path, None, "entity names without leading or trailing "
                                  "whitespace", note=f", got {name!r} at row {row}")
        if name in first:
            raise DataFormatError(path, None, "distinct entity_names",
                                  note=f", got {name!r} at rows {first[name]} and {row}")
        first[name] = row
    return [str(n) for n in value]


@register_modality("precomputed")
class PrecomputedModality(Modality):
    r"""Features read from a file with one row per entity (:func:`load_feature_file`).

    Rows follow the graph's entity ids, unless the file carries ``entity_names``: then rows
    are matched to the graph by name (rows whose name the graph lacks are ignored, counted in
    ``info["rows_not_in_graph"]`` and reported in one warning; a file none of whose names is in
    the graph is an error; graph entities the file lacks are missing). Absent rows are given by
    the file's ``mask``, or marked in the data (``missing="nan"``: a row that is all NaN;
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
        if names is not None:
            index = {name: i for i, name in enumerate(raw.entity_names)}
            rows = torch.tensor([index.get(name, -1) for name in names], dtype=torch.long)
            known = rows >= 0
            unknown = int((~known).sum())
            info["rows_not_in_graph"] = unknown
            if unknown and unknown == len(names) and n:
                raise DataFormatError(raw.path, None, "entity_names that name entities of the "
                                      f"graph (e.g. {raw.entity_names[0]!r})",
                                      note=f", got {len(names)} names none of which does "
                                      f"(e.g. {names[0]!r})")
            if unknown:
                example = names[int((~known).nonzero()[0])]
                warnings.warn(f"{raw.path}: ignored {unknown} of {len(names)} rows whose "
                              f"entity_names are not in the graph (e.g. {example!r})",
                              stacklevel=3)
            full = torch.zeros(n, *x.shape[1:])
            full[rows[known]] = x[known]
            present = torch.zeros(n, dtype=torch.bool)
            present[rows[known]] = True if mask is None else mask[known]
            x, mask = full, present
        elif x.size(0) != n:
            raise DataFormatError(raw.path, None, f"one row per entity of the graph ({n})",
                                  note=f", got {x.size(0)} rows; add 'entity_names' to the file "
                                  f"to match by name")
        flat = x.reshape(n, -1)
        if mask is None:
            mask = torch.ones(n, dtype=torch.bool)
        if self.missing == "nan":
            mask = mask & ~torch.isnan(flat).all(dim=1)
        elif self.missing == "zero":
            mask = mask & (flat != 0).any(dim=1)
        bad = ~torch.isfinite(flat).all(dim=1) & mask
        if bad.any():
            raise DataFormatError(raw.path, None, "finite values in the rows of present "
                                  "entities", note=f", got NaN or infinite values in "
                                  f"{int(bad.sum())} rows (first rows: "
                                  f"{bad.nonzero().view(-1)[:5].tolist()}); mark absent rows "
                                  f"with a mask, or pass missing='nan'")
        x = x.clone()
        x[~mask] = 0
        lengths = torch.where(mask, x.size(1), 0) if x.dim() == 3 else None
        return ModalityFeatures(x, mask, lengths, info)
