"""The multimodal knowledge graph as a PyG :class:`~torch_geometric.data.HeteroData`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.data.storage import NodeStorage

from mmgnn.data.filter import FilterIndex

SPLITS = ("train", "valid", "test")
ENTITY = "entity"  # the one node type of a knowledge graph
# Attribute names of modality ``m`` on the ``entity`` node store: x_m, mask_m, length_m.
FEATURE, MASK, LENGTH = "x_", "mask_", "length_"


def relation_count(num_relations: int, reciprocal: bool) -> int:
    r"""The number of relation ids when every relation :math:`r` may get an inverse
    :math:`r + R` (reciprocal training, Lacroix et al., 2018; the inverse edges of
    :meth:`MultiModalKG.train_graph`): :math:`2R` with ``reciprocal``, else :math:`R`.

    This is the one place in mmgnn that doubles the relations."""
    if num_relations < 0:
        raise ValueError(f"num_relations must be >= 0, got {num_relations}")
    return num_relations * (2 if reciprocal else 1)


def inverse_relation(relation: Tensor | int, num_relations: int) -> Tensor | int:
    r"""The id :math:`r + R` of the inverse of relation :math:`r` among
    :func:`relation_count` ``(R, True)`` ids: a head query :math:`(?, r, t)` is the tail query
    :math:`(t, r + R, ?)`. The one place that spells the convention."""
    return relation + num_relations


class _StoreView(MutableMapping[str, Tensor]):
    """The ``<prefix><modality>`` attributes of a node store, as a dict keyed by modality."""

    def __init__(self, store: NodeStorage, prefix: str) -> None:
        self._store, self._prefix = store, prefix

    def __getitem__(self, modality: str) -> Tensor:
        try:
            return self._store[self._prefix + modality]
        except KeyError:
            raise KeyError(modality) from None

    def __setitem__(self, modality: str, value: Tensor) -> None:
        self._store[self._prefix + modality] = value

    def __delitem__(self, modality: str) -> None:
        if self._prefix + modality not in self._store:
            raise KeyError(modality)
        del self._store[self._prefix + modality]

    def __iter__(self) -> Iterator[str]:
        n = len(self._prefix)
        return iter([k[n:] for k in self._store.keys() if k.startswith(self._prefix)])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(dict(self))

    def replace(self, values: Mapping[str, Tensor]) -> None:
        for modality in list(self):
            del self[modality]
        for modality, value in values.items():
            self[modality] = value


class MultiModalKG(HeteroData):
    r"""A multimodal knowledge graph: a PyG :class:`~torch_geometric.data.HeteroData` with one
    node type ``entity``.

    Layout (PyG's conventions, so that its transforms, loaders, ``.to()``, ``copy`` and
    :func:`torch.save` apply):

    * ``kg["entity"]``: ``num_nodes`` (:math:`N`) and, per modality ``m``, ``x_m`` (features,
      :obj:`(N, d)`, :obj:`(N, L, d)` for patch/token sequences or :obj:`(N, L)` integer token
      ids), ``mask_m`` (:obj:`(N,)` bool presence) and, for sequences, ``length_m``
      (:obj:`(N,)` valid positions, 0 where absent).
    * ``kg["entity", r, "entity"].edge_index``: the :obj:`(2, E_r)` head→tail **training**
      edges of relation ``r`` (a name of ``relation_names``; in training-file order; an empty
      :obj:`(2, 0)` for a relation without training edges).
    * the global store: ``train``, ``valid``, ``test`` (:obj:`LongTensor` :obj:`(n, 3)` in
      **(head, relation, tail)** order, whatever the order on disk), ``name``,
      ``entity_names``, ``relation_names``, ``texts``, ``quirks``, ``extras``.

    The dict-like views ``kg.features[m]``, ``kg.masks[m]``, ``kg.lengths[m]`` read and write
    those node attributes. Rows of absent entities are zeros (float features) and must not be
    read as data: missing modalities are the normal case in these benchmarks. Integer token-id
    features are kept as given (an absent item keeps e.g. its ``[CLS] [SEP]`` row); their mask
    and lengths say what is there.

    Raw side information that an encoder in :mod:`mmgnn.modalities` turns into features (entity
    names, descriptions, glosses) lives in ``texts[kind]``, a list with one string or :obj:`None`
    per entity. Other node or edge types may be added as on any ``HeteroData`` (e.g. K3M's
    ``value`` nodes with ``("entity", "property", "value")`` edges).

    The filter indices of :meth:`filter_index` are cached outside the stores: ``.to()``,
    ``copy`` and :func:`torch.save` neither move nor write them. Called without arguments (as
    PyG's internals do) the constructor gives an empty graph.

    Args:
        entity_names (list[str]): Entity vocabulary; position ``i`` is entity id ``i``.
        relation_names (list[str]): Relation vocabulary (distinct names); position ``i`` is
            relation id ``i``.
        train (Tensor): Training triples :obj:`(n, 3)`.
        valid (Tensor): Validation triples :obj:`(n, 3)`.
        test (Tensor): Test triples :obj:`(n, 3)`.
        name (str): Dataset name. (default: :obj:`"kg"`)
        features (dict[str, Tensor]): Per-modality entity features. (default: empty)
        masks (dict[str, Tensor]): Per-modality presence masks. (default: all present)
        lengths (dict[str, Tensor]): Valid lengths of sequence modalities. (default: full)
        texts (dict[str, list[str | None]]): Raw per-entity text by kind. (default: empty)
        quirks (dict[str, int]): Counts of irregularities found while reading, as released
            (duplicate rows, split overlaps, ...). (default: empty)
        extras (dict[str, object]): Side information that is neither a feature matrix nor text,
            e.g. ``extras["numeric"]``, the :class:`~mmgnn.data.side_info.NumericAttributes`
            with the per-attribute :obj:`(N, A)` mask and names; ``.to()`` does not move
            objects that are not tensors. (default: empty)
    """

    def __init__(self, entity_names: Sequence[str] | None = None,
                 relation_names: Sequence[str] | None = None, train: Tensor | None = None,
                 valid: Tensor | None = None, test: Tensor | None = None, name: str = "kg",
                 features: Mapping[str, Tensor] | None = None,
                 masks: Mapping[str, Tensor] | None = None,
                 lengths: Mapping[str, Tensor] | None = None,
                 texts: Mapping[str, list[str | None]] | None = None,
                 quirks: Mapping[str, int] | None = None,
                 extras: Mapping[str, object] | None = None) -> None:
        super().__init__()
        self.__dict__["_filters"] = {}
        given = [x is not None for x in (entity_names, relation_names, train, valid, test)]
        if not any(given):
            return
        if not all(given):
            raise TypeError("MultiModalKG needs entity_names, relation_names, train, valid and "
                            "test")
        self.name = name
        self.entity_names = list(entity_names)
        self.relation_names = list(relation_names)
        if len(set(self.relation_names)) != len(self.relation_names):
            seen: set[str] = set()
            twice = next(r for r in self.relation_names if r in seen or seen.add(r))
            raise ValueError(f"{name}: relation {twice!r} occurs twice in relation_names; each "
                             f"relation is one edge type")
        self[ENTITY].num_nodes = len(self.entity_names)
        self.train, self.valid, self.test = train, valid, test
        self.texts, self.quirks, self.extras = dict(texts or {}), dict(quirks or {}), \
            dict(extras or {})
        for kind, values in self.texts.items():
            if len(values) != self.num_entities:
                raise ValueError(
                    f"{self.name}: texts[{kind!r}] has {len(values)} entries, expected one per "
                    f"entity ({self.num_entities})"
                )
        masks, lengths = masks or {}, lengths or {}
        for modality, x in (features or {}).items():
            self.add_modality(modality, x, masks.get(modality), lengths.get(modality))

    # ------------------------------------------------------------- PyG plumbing
    def __setattr__(self, key: str, value: Any) -> None:
        # HeteroData sends every attribute to the global store; our properties have setters.
        prop = MultiModalKG.__dict__.get(key)
        if isinstance(prop, property):
            if prop.fset is None:
                raise AttributeError(f"MultiModalKG.{key} cannot be set")
            prop.fset(self, value)
        else:
            super().__setattr__(key, value)

    def __copy__(self) -> MultiModalKG:
        out = super().__copy__()
        out.__dict__["_filters"] = dict(self._filters)  # entries check their triples
        return out

    def __deepcopy__(self, memo: dict) -> MultiModalKG:
        filters = self.__dict__.pop("_filters")
        try:
            out = super().__deepcopy__(memo)
        finally:
            self.__dict__["_filters"] = filters
        out.__dict__["_filters"] = {}
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_filters"}

    def __setstate__(self, mapping: dict[str, Any]) -> None:
        super().__setstate__(mapping)
        self.__dict__["_filters"] = {}

    # ------------------------------------------------------------------ sizes
    @property
    def num_entities(self) -> int:
        return len(self.entity_names)

    @property
    def num_relations(self) -> int:
        return len(self.relation_names)

    @property
    def modalities(self) -> list[str]:
        """Names of the non-structural modalities with features."""
        return list(self.features)

    # ----------------------------------------------------------------- splits
    def _get_split(self, split: str) -> Tensor:
        return getattr(self._global_store, split)

    def _set_split(self, split: str, triples: Tensor) -> None:
        triples = torch.as_tensor(triples, dtype=torch.long)
        if triples.numel() == 0:
            triples = triples.reshape(0, 3)
        if triples.dim() != 2 or triples.size(1) != 3:
            raise ValueError(
                f"{self.name}: {split} triples must have shape (n, 3) in (head, relation, "
                f"tail) order, got {tuple(triples.shape)}"
            )
        self._check_ids(split, triples)
        self._global_store[split] = triples
        if split == "train":
            self._set_train_edges(triples)

    train = property(lambda self: self._get_split("train"),
                     lambda self, x: self._set_split("train", x),
                     doc="Training triples :obj:`(n, 3)`; setting them rebuilds the edge types.")
    valid = property(lambda self: self._get_split("valid"),
                     lambda self, x: self._set_split("valid", x),
                     doc="Validation triples :obj:`(n, 3)`.")
    test = property(lambda self: self._get_split("test"),
                    lambda self, x: self._set_split("test", x), doc="Test triples :obj:`(n, 3)`.")

    def split(self, name: str) -> Tensor:
        """The triples of split ``name`` (one of ``train``, ``valid``, ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return self._get_split(name)

    def _set_train_edges(self, train: Tensor) -> None:
        h, r, t = train.t()
        order = torch.argsort(r, stable=True)  # keeps the file order within a relation
        counts = torch.bincount(r, minlength=self.num_relations)
        for rel, idx in zip(self.relation_names, order.split(counts.tolist()), strict=True):
            self[ENTITY, rel, ENTITY].edge_index = torch.stack([h[idx], t[idx]])

    # ------------------------------------------------------------- modalities
    @property
    def features(self) -> _StoreView:
        """``x_<m>`` of the ``entity`` store, by modality ``m``."""
        return _StoreView(self[ENTITY], FEATURE)

    @features.setter
    def features(self, values: Mapping[str, Tensor]) -> None:
        self.features.replace(values)

    @property
    def masks(self) -> _StoreView:
        """``mask_<m>`` of the ``entity`` store, by modality ``m``."""
        return _StoreView(self[ENTITY], MASK)

    @masks.setter
    def masks(self, values: Mapping[str, Tensor]) -> None:
        self.masks.replace(values)

    @property
    def lengths(self) -> _StoreView:
        """``length_<m>`` of the ``entity`` store, by sequence modality ``m``."""
        return _StoreView(self[ENTITY], LENGTH)

    @lengths.setter
    def lengths(self, values: Mapping[str, Tensor]) -> None:
        self.lengths.replace(values)

    def add_modality(self, name: str, x: Tensor, mask: Tensor | None = None,
                     lengths: Tensor | None = None) -> None:
        r"""Attaches per-entity features of modality ``name`` (replacing any of that name).

        Args:
            name (str): Modality name (``text``, ``image``, ``numeric``, ...).
            x (Tensor): One row per entity: float :obj:`(N, d)` vectors, float
                :obj:`(N, L, d)` sequences, or integer :obj:`(N, L)` token-id sequences
                (e.g. K3M's title and knowledge streams). Float rows must be finite where
                present and are set to zero where absent; integer rows are kept as given.
            mask (Tensor, optional): :obj:`(N,)` presence mask. (default: every entity present)
            lengths (Tensor, optional): :obj:`(N,)` valid positions of each row of a sequence,
                :math:`1 \le \ell \le L` for present rows (set to 0 for absent ones).
                (default: :math:`L` for present rows, 0 for absent ones)
        """
        if not name.isidentifier():
            raise ValueError(f"modality name {name!r} must be a Python identifier")
        x = torch.as_tensor(x)
        integer = not x.is_floating_point() and x.dtype != torch.bool
        ok = x.dim() == 2 if integer else x.dim() in (2, 3)
        if not ok or x.size(0) != self.num_entities:
            raise ValueError(
                f"{self.name}: features of modality {name!r} must have shape (N, d) or (N, L, d) "
                f"(float) or (N, L) (integer token ids) with N = {self.num_entities} entities, "
                f"got {tuple(x.shape)} {x.dtype}"
            )
        if mask is None:
            mask = torch.ones(self.num_entities, dtype=torch.bool)
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != (self.num_entities,):
            raise ValueError(
                f"{self.name}: mask of modality {name!r} must have shape ({self.num_entities},), "
                f"got {tuple(mask.shape)}"
            )
        if x.is_floating_point():
            bad = ~torch.isfinite(x.reshape(x.size(0), -1)).all(dim=1) & mask
            if bad.any():
                rows = bad.nonzero().view(-1)[:5].tolist()
                raise ValueError(
                    f"{self.name}: modality {name!r} has NaN or infinite features for "
                    f"{int(bad.sum())} present entities (first ids: {rows}); mark them missing "
                    f"in the mask or clean the features"
                )
            x = x.clone()
            x[~mask] = 0
        sequence = x.dim() == 3 or integer
        if lengths is not None and not sequence:
            raise ValueError(f"{self.name}: lengths given for modality {name!r}, whose features "
                             f"{tuple(x.shape)} are not an (N, L, d) sequence")
        checked = self._check_lengths(name, x, mask, lengths) if sequence else None
        self.features[name] = x
        self.masks[name] = mask
        self.lengths.pop(name, None)
        if checked is not None:
            self.lengths[name] = checked

    def _check_lengths(self, name: str, x: Tensor, mask: Tensor,
                       lengths: Tensor | None) -> Tensor:
        if lengths is None:
            return torch.where(mask, x.size(1), 0)
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        expected = (f"an ({self.num_entities},) tensor with 1 <= length <= {x.size(1)} for "
                    f"present entities")
        if lengths.shape != (self.num_entities,):
            raise ValueError(f"{self.name}: lengths of modality {name!r} must be {expected}, "
                             f"got shape {tuple(lengths.shape)}")
        bad = (lengths < 0) | (lengths > x.size(1)) | (mask & (lengths == 0))
        if bad.any():
            raise ValueError(f"{self.name}: lengths of modality {name!r} must be {expected}; "
                             f"{int(bad.sum())} entries are not (first ids: "
                             f"{bad.nonzero().view(-1)[:5].tolist()})")
        return torch.where(mask, lengths, 0)

    # ------------------------------------------------------------------ graph
    def train_graph(self, add_inverse: bool = False) -> tuple[Tensor, Tensor]:
        r"""The homogeneous view of the training graph that message-passing layers take.

        Returns:
            (edge_index, edge_type): :obj:`(2, E)` head→tail edges in training-file order and
            :obj:`(E,)` relation ids. With ``add_inverse``, every edge also appears reversed
            with relation ``r + R``, so ids run below ``relation_count(R, add_inverse)``.
        """
        h, r, t = self.train.t()
        edge_index = torch.stack([h, t])
        if not add_inverse:
            return edge_index, r
        return (torch.cat([edge_index, edge_index.flip(0)], dim=1),
                torch.cat([r, inverse_relation(r, self.num_relations)]))

    def relation_vocabulary(self, add_inverse: bool = False) -> list[str]:
        """Relation names, followed by ``name^-1`` for each inverse when ``add_inverse``
        (:func:`relation_count` names)."""
        r = self.num_relations
        return [self.relation_names[i] if i < r else f"{self.relation_names[i - r]}^-1"
                for i in range(relation_count(r, add_inverse))]

    # ---------------------------------------------------------------- filters
    def filter_index(self, splits: tuple[str, ...] | list[str] = SPLITS) -> FilterIndex:
        """Index of the known true triples of ``splits`` (cached per set of splits).

        The default, train + valid + test, is the filter of filtered **ranking** (Bordes et al.,
        2013). Training must never see more than ``("train",)``: a negative filter that holds
        valid or test triples tells the model which held-out triples are true (the KBGAT leak,
        Sun et al., 2020); :func:`~mmgnn.train.build_sampler` therefore filters with the
        training triples only unless asked otherwise."""
        if isinstance(splits, str) or not splits or set(splits) - set(SPLITS):
            raise ValueError(f"splits must be a non-empty subset of {SPLITS}, got {splits!r}")
        key = tuple(s for s in SPLITS if s in splits)
        triples = [self.split(s) for s in key]
        cached = self._filters.get(key)
        # An entry is valid for the very split tensors it was built from (not after a split is
        # reassigned, nor in a copy whose splits were replaced).
        if cached is None or any(a is not b for a, b in zip(cached[0], triples, strict=True)):
            index = FilterIndex(torch.cat(triples), self.num_entities, self.num_relations)
            self._filters[key] = cached = (triples, index)
        return cached[1]

    # --------------------------------------------------------------- summary
    def statistics(self) -> dict[str, object]:
        """Sizes, modality coverage and quirks, as printed by ``mmgnn datasets``."""
        stats: dict[str, object] = {
            "entities": self.num_entities,
            "relations": self.num_relations,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
        }
        for m, mask in self.masks.items():
            stats[f"{m} coverage"] = f"{int(mask.sum())}/{self.num_entities}"
        for kind, values in self.texts.items():
            present = sum(v is not None for v in values)
            stats[f"text:{kind} coverage"] = f"{present}/{self.num_entities}"
        stats.update(self.quirks)
        return stats

    def __repr__(self) -> str:
        if "entity_names" not in self._global_store:  # an empty graph from PyG's internals
            return super().__repr__()
        mods = ", ".join(f"{m}={tuple(x.shape[1:])}" for m, x in self.features.items())
        texts = ", ".join(self.texts)
        return (
            f"MultiModalKG({self.name}, entities={self.num_entities}, "
            f"relations={self.num_relations}, train={len(self.train)}, valid={len(self.valid)}, "
            f"test={len(self.test)}"
            + (f", features=[{mods}]" if mods else "")
            + (f", texts=[{texts}]" if texts else "")
            + ")"
        )

    # ----------------------------------------------------------------- checks
    def _check_ids(self, split: str, triples: Tensor) -> None:
        if triples.numel() == 0:
            return
        for col, (label, n) in enumerate(
            (("head", self.num_entities), ("relation", self.num_relations),
             ("tail", self.num_entities))
        ):
            ids = triples[:, col]
            bad = (ids < 0) | (ids >= n)
            if bad.any():
                row = int(bad.nonzero()[0])
                raise ValueError(
                    f"{self.name}: {split} triple #{row} {triples[row].tolist()} has {label} id "
                    f"{int(ids[row])}, expected 0 <= id < {n}"
                )
