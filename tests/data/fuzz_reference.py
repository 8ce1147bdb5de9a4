"""Reference parses of every format, written from the rules of :mod:`mmgnn.data.readers`.

They share no code with the library: each says what a file holds or raises :class:`Rejected`
where the rules make it malformed. ``fuzz_cases.py`` compares the library against them.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch


class Rejected(Exception):
    """The reference parse finds the file malformed."""


# ----------------------------------------------------------------------- reference rules
def ref_lines(data: bytes) -> list[str]:
    """UTF-8 (one leading BOM allowed), lines ending LF or CRLF, a final CR counts as a line
    end, no other CR or BOM, trailing blank lines dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("not UTF-8") from None
    if text[:1] == "\ufeff":
        text = text[1:]
    pieces = text.split("\n")
    lines: list[str] = []
    for piece in pieces:
        if piece[-1:] == "\r":  # the CR of a CRLF, or a final CR without its LF
            piece = piece[:-1]
        if "\r" in piece or "\ufeff" in piece:
            raise Rejected("stray CR or BOM")
        lines.append(piece)
    while lines and lines[-1].strip() == "":
        lines.pop()
    return lines


def ref_name(name: str) -> str:
    if name == "" or name.strip() != name:
        raise Rejected(f"bad name {name!r}")
    return name


def ref_int(token: str) -> int:
    digits = token[1:] if token[:1] == "-" else token
    if digits == "" or any(c not in "0123456789" for c in digits):
        raise Rejected(f"bad integer {token!r}")
    value = int(token)
    if not -(2 ** 63) <= value < 2 ** 63:
        raise Rejected("outside int64")
    return value


_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def ref_float(token: str) -> float:
    if not token.isascii() or _DECIMAL.fullmatch(token) is None:
        raise Rejected(f"bad number {token!r}")
    value = float(token)
    if not abs(value) <= float(np.finfo(np.float32).max):
        raise Rejected("outside float32")
    return value


def ref_count(lines: list[str]) -> tuple[int | None, list[str]]:
    """An OpenKE count line is a first line of one token; it must be ASCII digits."""
    if lines and len(lines[0].split()) == 1:
        token = lines[0].strip()
        if any(c not in "0123456789" for c in token):
            raise Rejected("bad count")
        return int(token), lines[1:]
    return None, lines


def ref_vocab(data: bytes) -> list[str]:
    count, rows = ref_count(ref_lines(data))
    if count is not None and count != len(rows):
        raise Rejected("count")
    names: dict[int, str] = {}
    for row in rows:
        parts = row.rsplit(None, 1)
        if len(parts) != 2:
            raise Rejected("row")
        idx, name = ref_int(parts[1]), ref_name(parts[0])
        if idx in names or not 0 <= idx < len(rows) or name in names.values():
            raise Rejected("ids/names")
        names[idx] = name
    return [names[i] for i in range(len(rows))]


def ref_id_triples(data: bytes, num_entities: int, num_relations: int) -> list[list[int]]:
    count, rows = ref_count(ref_lines(data))
    if count is not None and count != len(rows):
        raise Rejected("count")
    out = []
    for row in rows:
        parts = row.split()
        if len(parts) != 3:
            raise Rejected("columns")
        h, t, r = (ref_int(p) for p in parts)  # OpenKE: head tail relation
        if not (0 <= h < num_entities and 0 <= t < num_entities and 0 <= r < num_relations):
            raise Rejected("range")
        out.append([h, r, t])
    return out


def ref_tsv(data: bytes) -> list[tuple[str, ...]]:
    out = []
    for row in ref_lines(data):
        parts = row.split("\t")
        if len(parts) != 3:
            raise Rejected("columns")
        out.append(tuple(ref_name(p) for p in parts))
    return out


def ref_ntriples(data: bytes) -> list[tuple[str, ...]]:
    out = []
    for row in ref_lines(data):
        body = row.strip()
        if not body.endswith("."):
            raise Rejected("dot")
        terms = body[:-1].split()
        if len(terms) != 3 or not all(t[0] == "<" and t[-1] == ">" and "<" not in t[1:-1]
                                      and ">" not in t[1:-1] and len(t) >= 2 for t in terms):
            raise Rejected("terms")
        out.append(tuple(terms))
    return out


def ref_numeric(data: bytes, entities: list[str]) -> dict[str, Any]:
    attributes: list[str] = []
    values: dict[tuple[str, str], float] = {}
    for row in ref_lines(data):
        parts = row.split("\t")
        if len(parts) != 3:
            raise Rejected("columns")
        entity, attribute, value = ref_name(parts[0]), ref_name(parts[1]), ref_float(parts[2])
        if (entity, attribute) in values:
            raise Rejected("duplicate")
        values[entity, attribute] = value
        if attribute not in attributes:
            attributes.append(attribute)
    raw = np.zeros((len(entities), len(attributes)))
    mask = np.zeros((len(entities), len(attributes)), dtype=bool)
    for (entity, attribute), value in values.items():
        if entity in entities:
            raw[entities.index(entity), attributes.index(attribute)] = value
            mask[entities.index(entity), attributes.index(attribute)] = True
    minmax = np.zeros_like(raw)
    for a in range(len(attributes)):
        present = [float(v) for v in raw[mask[:, a], a]]
        lo, hi = (min(present), max(present)) if present else (0.0, 0.0)
        for i in np.flatnonzero(mask[:, a]):
            minmax[i, a] = (raw[i, a] - lo) / (hi - lo) if hi > lo else 0.0
    return {"names": attributes, "raw": raw, "mask": mask, "values": minmax,
            "skipped": sum(e not in entities for e, _ in values)}


def ref_entity_text(data: bytes, entities: list[str]) -> dict[str, Any]:
    texts: list[str | None] = [None] * len(entities)
    seen, skipped = set(), 0
    for row in ref_lines(data):
        key, tab, text = row.partition("\t")
        if not tab or ref_name(key) in seen:
            raise Rejected("row")
        seen.add(key)
        if key in entities:
            texts[entities.index(key)] = text.strip() or None
        else:
            skipped += 1
    return {"texts": texts, "skipped": skipped}


def ref_features(payload: Any, names_in_graph: list[str], missing: str) -> tuple[Any, Any]:
    """The features rules of :func:`mmgnn.modalities.precomputed.load_feature_file`."""
    def as_array(value: Any) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            return value.numpy()
        try:
            return np.asarray(value)
        except (ValueError, TypeError):
            raise Rejected("not an array") from None

    mask = names = None
    if isinstance(payload, dict):
        key = next((k for k in ("x", "features", "embeddings") if k in payload), None)
        if key is None:
            raise Rejected("no features key")
        mask, names, payload = payload.get("mask"), payload.get("entity_names"), payload[key]
    x = as_array(payload)
    if x.dtype.kind != "f" or x.dtype.itemsize > 8 or x.ndim not in (2, 3):
        raise Rejected("dtype/shape")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    if (np.isinf(x32) & np.isfinite(x)).any():
        raise Rejected("float32 overflow")
    rows = len(x32)
    if mask is not None:
        mask = as_array(mask)
        if mask.shape != (rows,) or mask.dtype.kind not in "biuf":
            raise Rejected("mask")
        if mask.dtype.kind != "b":
            if not all(v == 0 or v == 1 for v in mask.tolist()):
                raise Rejected("mask values")
            mask = mask == 1
    if names is not None:
        if isinstance(names, np.ndarray | torch.Tensor):
            names = as_array(names)
            names = names.tolist() if names.ndim == 1 else names
        if not isinstance(names, list | tuple) or len(names) != rows:
            raise Rejected("names length")
        if not all(isinstance(n, str) for n in names):
            raise Rejected("names type")
        for n in names:
            ref_name(n)
        if len(set(names)) != len(names):
            raise Rejected("duplicate names")
        where = {n: i for i, n in enumerate(names_in_graph)}
        if rows and not any(n in where for n in names):
            raise Rejected("no name matches")
        full = np.zeros((len(names_in_graph), *x32.shape[1:]), np.float32)
        present = np.zeros(len(names_in_graph), bool)
        for row, n in enumerate(names):
            if n in where:
                full[where[n]] = x32[row]
                present[where[n]] = True if mask is None else mask[row]
        x32, mask = full, present
    elif rows != len(names_in_graph):
        raise Rejected("row count")
    if mask is None:
        mask = np.ones(len(x32), bool)
    flat = x32.reshape(len(x32), -1)
    if missing == "nan":
        mask = mask & ~np.isnan(flat).all(axis=1)
    elif missing == "zero":
        mask = mask & (flat != 0).any(axis=1)
    if (~np.isfinite(flat).all(axis=1) & mask).any():
        raise Rejected("NaN in present rows")
    x32 = x32.copy()
    x32[~mask] = 0
    return x32, mask
