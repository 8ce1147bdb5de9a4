"""The multimodal knowledge graph: vocabularies, split triples, per-modality features and masks."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from mmgnn.data.filter import FilterIndex

SPLITS = ("train", "valid", "test")


@dataclass
class MultiModalKG:
    r"""A multimodal knowledge graph with one entity node type.

    Triples are :obj:`LongTensor` of shape :obj:`(n, 3)` in **(head, relation, tail)** order,
    whatever the order on disk. Every non-structural modality ``m`` is a feature tensor
    ``features[m]`` with one row per entity (:obj:`(N, d)`, or :obj:`(N, L, d)` for token/patch
    sequences) and a boolean presence mask ``masks[m]`` of shape :obj:`(N,)`. Rows of absent
    entities are zeros and must not be read as data: missing modalities are the normal case in
    these benchmarks. A sequence modality also has ``lengths[m]`` :obj:`(N,)`, the number of
    valid positions of each row (positions beyond it are zero padding).

    Raw side information that an encoder in :mod:`mmgnn.modalities` turns into features (entity
    names, descriptions, glosses) lives in ``texts[kind]``, a list with one string or :obj:`None`
    per entity.

    Args:
        entity_names (list[str]): Entity vocabulary; position ``i`` is entity id ``i``.
        relation_names (list[str]): Relation vocabulary; position ``i`` is relation id ``i``.
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
            with the per-attribute :obj:`(N, A)` mask and names. (default: empty)
    """

    entity_names: list[str]
    relation_names: list[str]
    train: Tensor
    valid: Tensor
    test: Tensor
    name: str = "kg"
    features: dict[str, Tensor] = field(default_factory=dict)
    masks: dict[str, Tensor] = field(default_factory=dict)
    lengths: dict[str, Tensor] = field(default_factory=dict)
    texts: dict[str, list[str | None]] = field(default_factory=dict)
    quirks: dict[str, int] = field(default_factory=dict)
    extras: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in SPLITS:
            triples = torch.as_tensor(getattr(self, split), dtype=torch.long)
            if triples.numel() == 0:
                triples = triples.reshape(0, 3)
            if triples.dim() != 2 or triples.size(1) != 3:
                raise ValueError(
                    f"{self.name}: {split} triples must have shape (n, 3) in (head, relation, "
                    f"tail) order, got {tuple(triples.shape)}"
                )
            self._check_ids(split, triples)
            setattr(self, split, triples)
        features, masks, lengths = dict(self.features), dict(self.masks), dict(self.lengths)
        self.features, self.masks, self.lengths = {}, {}, {}
        for modality, x in features.items():
            self.add_modality(modality, x, masks.get(modality), lengths.get(modality))
        for kind, values in self.texts.items():
            if len(values) != self.num_entities:
                raise ValueError(
                    f"{self.name}: texts[{kind!r}] has {len(values)} entries, expected one per "
                    f"entity ({self.num_entities})"
                )
        self._filters: dict[tuple[str, ...], FilterIndex] = {}

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

    def split(self, name: str) -> Tensor:
        """The triples of split ``name`` (one of ``train``, ``valid``, ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    # ------------------------------------------------------------- modalities
    def add_modality(self, name: str, x: Tensor, mask: Tensor | None = None,
                     lengths: Tensor | None = None) -> None:
        r"""Attaches per-entity features of modality ``name`` (replacing any of that name).

        Args:
            name (str): Modality name (``text``, ``image``, ``numeric``, ...).
            x (Tensor): :obj:`(N, d)` or :obj:`(N, L, d)` features, one row per entity.
            mask (Tensor, optional): :obj:`(N,)` presence mask; rows where it is :obj:`False`
                are set to zero. (default: every entity present)
            lengths (Tensor, optional): :obj:`(N,)` valid positions of each row of an
                :obj:`(N, L, d)` sequence, :math:`0 \le \ell \le L` (0 where absent).
                (default: :math:`L` for present rows, 0 for absent ones)
        """
        if not name.isidentifier():
            raise ValueError(f"modality name {name!r} must be a Python identifier")
        x = torch.as_tensor(x)
        if x.dim() not in (2, 3) or x.size(0) != self.num_entities:
            raise ValueError(
                f"{self.name}: features of modality {name!r} must have shape (N, d) or (N, L, d) "
                f"with N = {self.num_entities} entities, got {tuple(x.shape)}"
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
        self.features[name] = x
        self.masks[name] = mask
        self.lengths.pop(name, None)
        if x.dim() == 3:
            self.lengths[name] = self._check_lengths(name, x, mask, lengths)
        elif lengths is not None:
            raise ValueError(f"{self.name}: lengths given for modality {name!r}, whose features "
                             f"{tuple(x.shape)} are not an (N, L, d) sequence")

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
            (edge_index, edge_type): :obj:`(2, E)` head→tail edges and :obj:`(E,)` relation ids.
            With ``add_inverse``, every edge also appears reversed with relation ``r + R``.
        """
        h, r, t = self.train.t()
        edge_index = torch.stack([h, t])
        edge_type = r
        if add_inverse:
            edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
            edge_type = torch.cat([r, r + self.num_relations])
        return edge_index, edge_type

    def relation_vocabulary(self, add_inverse: bool = False) -> list[str]:
        """Relation names, followed by ``name^-1`` for each inverse when ``add_inverse``."""
        names = list(self.relation_names)
        if add_inverse:
            names += [f"{n}^-1" for n in self.relation_names]
        return names

    def to_data(self, add_inverse: bool = False):
        """The training graph as a homogeneous :class:`torch_geometric.data.Data` with
        ``edge_index``, ``edge_type``, ``x_<modality>`` and ``mask_<modality>``."""
        from torch_geometric.data import Data

        edge_index, edge_type = self.train_graph(add_inverse)
        data = Data(edge_index=edge_index, edge_type=edge_type, num_nodes=self.num_entities)
        for m in self.features:
            data[f"x_{m}"] = self.features[m]
            data[f"mask_{m}"] = self.masks[m]
            if m in self.lengths:
                data[f"length_{m}"] = self.lengths[m]
        return data

    def to_hetero_data(self, add_inverse: bool = False):
        r"""The graph as a :class:`torch_geometric.data.HeteroData`.

        Node type ``entity`` carries ``x_<modality>`` and ``mask_<modality>`` (and
        ``length_<modality>`` for sequence modalities); each relation is an
        edge type ``('entity', relation_name, 'entity')`` holding the training edges of that
        relation (relations without training edges get an empty ``edge_index``). The homogeneous
        view is stored as ``data.edge_index`` / ``data.edge_type``, and the splits as
        ``data.train_triples`` / ``valid_triples`` / ``test_triples``.
        """
        from torch_geometric.data import HeteroData

        data = HeteroData()
        data["entity"].num_nodes = self.num_entities
        for m in self.features:
            data["entity"][f"x_{m}"] = self.features[m]
            data["entity"][f"mask_{m}"] = self.masks[m]
            if m in self.lengths:
                data["entity"][f"length_{m}"] = self.lengths[m]
        edge_index, edge_type = self.train_graph(add_inverse)
        order = torch.argsort(edge_type, stable=True)
        counts = torch.bincount(edge_type, minlength=2 * self.num_relations if add_inverse else
                                self.num_relations)
        for rel, idx in zip(self.relation_vocabulary(add_inverse),
                            order.split(counts.tolist()), strict=True):
            data["entity", rel, "entity"].edge_index = edge_index[:, idx]
        data.edge_index = edge_index
        data.edge_type = edge_type
        for split in SPLITS:
            data[f"{split}_triples"] = self.split(split)
        return data

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
        if key not in self._filters:
            self._filters[key] = FilterIndex(
                torch.cat([self.split(s) for s in key]), self.num_entities, self.num_relations)
        return self._filters[key]

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

