"""The :class:`Modality` abstraction, its output :class:`ModalityFeatures`, and the registry
through which a new modality is added."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG
    from mmgnn.modalities.cache import FeatureCache


@dataclass
class ModalityFeatures:
    r"""Encoded features of one modality: one vector or one sequence per entity, and presence.

    Args:
        x (Tensor): :obj:`(N, d)` float vectors, or :obj:`(N, L, d)` token / patch / image
            sequences padded with zeros (MMRNS, K3M and MKGformer read sequences).
        mask (Tensor): :obj:`(N,)` bool, the entity has this modality. Rows of absent
            entities are zeros.
        lengths (Tensor, optional): :obj:`(N,)` valid positions per row of a sequence (0 for
            absent entities); :obj:`None` for vectors.
        info (dict): What built them (encoder, settings, seconds), saved with the cache.
    """

    x: Tensor
    mask: Tensor
    lengths: Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_present(self) -> int:
        return int(self.mask.sum())

    def check(self, num_entities: int, where: str) -> None:
        """Raises a :class:`ValueError` naming ``where`` unless the shapes fit ``num_entities``
        and present rows are finite."""
        if self.x.dim() not in (2, 3) or self.x.size(0) != num_entities:
            raise ValueError(f"{where}: expected features of shape (N, d) or (N, L, d) with "
                             f"N = {num_entities} entities, got {tuple(self.x.shape)}")
        if self.mask.shape != (num_entities,) or self.mask.dtype != torch.bool:
            raise ValueError(f"{where}: expected a bool mask of shape ({num_entities},), got "
                             f"{self.mask.dtype} {tuple(self.mask.shape)}")
        if (self.lengths is not None) != (self.x.dim() == 3):
            raise ValueError(f"{where}: sequence features (N, L, d) need lengths, vectors none")
        bad = ~torch.isfinite(self.x.reshape(num_entities, -1)).all(dim=1) & self.mask
        if bad.any():
            raise ValueError(f"{where}: NaN or infinite features for {int(bad.sum())} present "
                             f"entities (first ids: {bad.nonzero().view(-1)[:5].tolist()})")

    def attach_to(self, kg: MultiModalKG, name: str) -> None:
        """Adds these features to ``kg`` as modality ``name`` (see
        :meth:`MultiModalKG.add_modality`)."""
        kg.add_modality(name, self.x, self.mask, self.lengths)


def pool_sequence(x: Tensor, lengths: Tensor) -> Tensor:
    r"""Mean over the first ``lengths[i]`` positions of each row of an :obj:`(N, L, d)`
    sequence: :math:`\frac{1}{\ell_i} \sum_{l < \ell_i} x_{i,l}`, zero where
    :math:`\ell_i = 0`. Returns :obj:`(N, d)`."""
    positions = torch.arange(x.size(1), device=x.device)
    valid = (positions[None] < lengths[:, None].to(x.device)).to(x.dtype)[..., None]
    return (x * valid).sum(1) / lengths.to(x.device).clamp(min=1)[:, None].to(x.dtype)



def entity_features(name: str, x: Tensor, mask: Tensor | None, lengths: Tensor | None,
                    num_entities: int, width: int) -> tuple[Tensor, Tensor]:
    """The ``(features (N, width), mask (N,))`` a model keeps of modality ``name``: ``x`` as
    float32, an :obj:`(N, L, d)` sequence pooled over ``lengths`` (or, without them, over all
    positions of present rows), ``mask`` all-present when :obj:`None`; a clear error when the
    shapes are not :obj:`(num_entities, width)` and :obj:`(num_entities,)`."""
    x = torch.as_tensor(x, dtype=torch.float32)
    mask = torch.ones(len(x), dtype=torch.bool) if mask is None else mask.bool()
    if x.dim() == 3:
        x = pool_sequence(x, lengths if lengths is not None else torch.where(mask, x.size(1), 0))
    if tuple(x.shape) != (num_entities, width) or tuple(mask.shape) != (num_entities,):
        raise ValueError(f"modality {name!r}: expected features {(num_entities, width)} and "
                         f"mask ({num_entities},), got {tuple(x.shape)} and "
                         f"{tuple(mask.shape)}")
    return x, mask

def graph_features(kg: MultiModalKG, names: Sequence[str], model: str, *,
                   required: bool = False
                   ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
    """The features, masks and lengths of ``kg``'s modalities ``names`` (empty: every
    modality attached to ``kg``) that ``model`` is built from; a clear error names the absent
    ones (and, with ``required``, a graph without any)."""
    names = list(names) or kg.modalities
    absent = [m for m in names if m not in kg.features]
    if absent or (required and not names):
        raise ValueError(f"{kg.name}: {model} needs modality features "
                         f"{absent or '(none given)'}; the graph has {kg.modalities} (build "
                         f"them with --modalities, see `mmgnn features --help`)")
    return ({m: kg.features[m] for m in names}, {m: kg.masks[m] for m in names},
            {m: kg.lengths[m] for m in names if m in kg.lengths})


def fingerprint(value: object) -> str:
    """SHA-256 of the raw inputs of a modality (strings, :obj:`None`, numbers, tensors, paths,
    and lists, tuples or dicts of them); a path stands for its size and modification time."""
    h = hashlib.sha256()

    def feed(v: object) -> None:
        if isinstance(v, Tensor):
            h.update(f"T{v.dtype}{tuple(v.shape)}".encode())
            h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
        elif isinstance(v, Path):
            stat = v.stat() if v.exists() else None
            h.update(f"P{v}:{stat.st_size if stat else -1}:{stat.st_mtime_ns if stat else -1}"
                     .encode())
        elif isinstance(v, list | tuple):
            h.update(f"L{len(v)}[".encode())
            for item in v:
                feed(item)
            h.update(b"]")
        elif isinstance(v, dict):
            h.update(f"D{len(v)}{{".encode())
            for key in sorted(v, key=str):
                feed(str(key))
                feed(v[key])
            h.update(b"}")
        else:
            text = json.dumps(v) if isinstance(v, str) else repr(v)
            h.update(f"V{len(text)}:{text}".encode())

    feed(value)
    return h.hexdigest()


class Modality:
    r"""One kind of entity side information and how it becomes features.

    A modality is three steps, each overridable:

    1. :meth:`read` collects the **raw data** of every entity from a
       :class:`~mmgnn.data.kg.MultiModalKG` (its ``texts``, ``extras``, or files on disk);
    2. :meth:`encode` turns it into :class:`ModalityFeatures`: an :obj:`(N, d)` vector or an
       :obj:`(N, L, d)` sequence with lengths per entity, and the presence mask;
    3. :meth:`settings` lists everything besides the raw data that determines the features
       (encoder and its fingerprint, pooling, normalisation, ...): the cache key of
       :meth:`build` is the dataset, the modality name, :attr:`kind`, these settings and a
       fingerprint of the raw data, so a change of any of them rebuilds.

    Subclasses are registered under a kind with :func:`register_modality` and built by name
    with :func:`build_modality`; ``examples/new_modality.py`` adds one in a few dozen lines.

    Args:
        name (str, optional): Feature name in the graph (``kg.features[name]``). (default: the
            registered :attr:`kind`)
    """

    kind: ClassVar[str] = ""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.kind
        if not self.name.isidentifier():
            raise ValueError(f"modality name {self.name!r} must be a Python identifier")

    def read(self, kg: MultiModalKG) -> Any:
        """The raw data of every entity (per-entity values with :obj:`None` for missing, or a
        table); whatever :meth:`encode` takes."""
        raise NotImplementedError

    def encode(self, raw: Any, progress: bool = True) -> ModalityFeatures:
        """Features :obj:`(N, d)` or :obj:`(N, L, d)` with mask (and lengths) from ``raw``."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings that, with the raw data, determine the features."""
        return {}

    def fingerprint(self, raw: Any) -> str:
        """Fingerprint of the raw data for the cache key (see :func:`fingerprint`)."""
        return fingerprint(raw)

    def cache_key(self, kg: MultiModalKG, raw: Any) -> dict[str, Any]:
        return {"dataset": kg.name, "num_entities": kg.num_entities, "modality": self.name,
                "kind": self.kind, "settings": self.settings(), "data": self.fingerprint(raw)}

    def build(self, kg: MultiModalKG, cache: FeatureCache | str | os.PathLike | bool = True,
              progress: bool = True) -> ModalityFeatures:
        """Reads and encodes the features of ``kg``'s entities, through the feature cache.

        Args:
            kg (MultiModalKG): The graph (its entity order is the row order).
            cache (FeatureCache, path or bool): A cache, its folder, :obj:`True` for the default
                folder (``$MMGNN_FEATURE_CACHE``, else ``~/.cache/mmgnn/features``) or
                :obj:`False` for none. (default: :obj:`True`)
            progress (bool): Show a progress bar while encoding. (default: :obj:`True`)
        """
        from mmgnn.modalities.cache import FeatureCache

        raw = self.read(kg)
        store = (FeatureCache(None if cache is True else cache)
                 if not isinstance(cache, FeatureCache) and cache is not False else cache)
        key = self.cache_key(kg, raw) if store else None
        if store:
            hit = store.load(key)
            if hit is not None:
                return hit
        start = time.perf_counter()
        features = self.encode(raw, progress=progress)
        features.check(kg.num_entities, f"{type(self).__name__} {self.name!r} of {kg.name}")
        features.info = {"kind": self.kind, "settings": self.settings(),
                         "seconds": round(time.perf_counter() - start, 3), **features.info}
        if store:
            store.save(key, features)
        return features

    def attach(self, kg: MultiModalKG, cache: FeatureCache | str | os.PathLike | bool = True,
               progress: bool = True) -> ModalityFeatures:
        """:meth:`build`, then adds the features to ``kg`` as modality :attr:`name`."""
        features = self.build(kg, cache, progress)
        features.attach_to(kg, self.name)
        return features

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items()
                         if k != "encoder_fingerprint")
        name = f"name={self.name!r}" if self.name != self.kind else ""
        return f"{type(self).__name__}({', '.join(a for a in (name, args) if a)})"


MODALITIES: dict[str, type[Modality]] = {}


def register_modality(kind: str) -> Callable[[type[Modality]], type[Modality]]:
    """Class decorator registering a :class:`Modality` subclass under ``kind`` (the name that
    :func:`build_modality`, ``mmgnn features --modality`` and ``mmgnn train --modalities``
    accept)."""
    def wrap(cls: type[Modality]) -> type[Modality]:
        if not (isinstance(cls, type) and issubclass(cls, Modality)):
            raise TypeError(f"register_modality({kind!r}) expects a Modality subclass, got {cls}")
        if kind in MODALITIES and MODALITIES[kind] is not cls:
            raise ValueError(f"modality kind {kind!r} is already registered by "
                             f"{MODALITIES[kind].__qualname__}")
        cls.kind = kind
        MODALITIES[kind] = cls
        return cls
    return wrap


def available_modalities() -> list[str]:
    """The registered modality kinds."""
    return sorted(MODALITIES)


def build_modality(kind: str, **settings: Any) -> Modality:
    """An instance of the modality registered as ``kind``, with constructor ``settings``."""
    if kind not in MODALITIES:
        raise ValueError(f"unknown modality {kind!r}; registered: "
                         f"{', '.join(available_modalities())}")
    try:
        return MODALITIES[kind](**settings)
    except TypeError as e:
        raise TypeError(f"modality {kind!r} ({MODALITIES[kind].__qualname__}): {e}") from None


def attach_modalities(kg: MultiModalKG, kinds: Sequence[str],
                      settings: dict[str, dict[str, Any]] | None = None,
                      cache: FeatureCache | str | os.PathLike | bool = True,
                      progress: bool = True) -> dict[str, ModalityFeatures]:
    """Builds every modality of ``kinds`` (settings per kind from ``settings``) and attaches it
    to ``kg``; returns the features by modality name."""
    settings = settings or {}
    unknown = set(settings) - set(kinds)
    if unknown:
        raise ValueError(f"settings given for modalities {sorted(unknown)} that are not among "
                         f"{list(kinds)}")
    out = {}
    for kind in kinds:
        modality = build_modality(kind, **settings.get(kind, {}))
        out[modality.name] = modality.attach(kg, cache, progress)
    return out
