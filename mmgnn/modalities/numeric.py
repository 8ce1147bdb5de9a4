"""Numeric attribute features (FB15k-237's MMKB literals, Nations' literals)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mmgnn.data.parsing import DataFormatError
from mmgnn.data.side_info import (
    NORMALIZATIONS,
    NumericAttributes,
    normalize_attributes,
    read_numeric_triples,
)
from mmgnn.modalities.base import Modality, ModalityFeatures, fingerprint, register_modality

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG


@register_modality("numeric")
class NumericModality(Modality):
    r"""The :obj:`(N, A)` attribute matrix of an entity, normalised per attribute.

    The raw data are the :class:`~mmgnn.data.side_info.NumericAttributes` that
    :func:`~mmgnn.data.load_dataset` keeps in ``kg.extras["numeric"]`` (or the triples file
    ``path``, ``entity<TAB>attribute<TAB>value``). Each column is normalised over the entities
    that have it (``minmax`` as LiteralE / MMKB, ``zscore``, ``none``; formulas in
    :class:`~mmgnn.data.side_info.NumericAttributes`); missing entries are 0. An entity is
    present when it has at least one attribute. ``with_mask`` appends the :obj:`(N, A)`
    per-attribute presence as 0/1 columns, so that a model can tell a missing attribute from
    a value that normalises to 0.

    Args:
        normalization (str): ``minmax``, ``zscore`` or ``none``. (default: ``minmax``)
        with_mask (bool): Append the attribute mask as :math:`A` more columns.
            (default: :obj:`False`)
        path (str or PathLike, optional): Read this triples file instead of
            ``kg.extras[name]``.
        name (str, optional): Feature name. (default: ``numeric``)

    Shapes:
        - **output.x:** :obj:`(N, A)`, or :obj:`(N, 2A)` with ``with_mask``.
    """

    def __init__(self, normalization: str = "minmax", with_mask: bool = False,
                 path: str | os.PathLike | None = None, name: str | None = None) -> None:
        super().__init__(name)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got "
                             f"{normalization!r}")
        self.normalization, self.with_mask = normalization, bool(with_mask)
        self.path = Path(path).expanduser() if path is not None else None

    def read(self, kg: MultiModalKG) -> NumericAttributes:
        if self.path is not None:
            return read_numeric_triples(self.path, kg.entity_names)
        attributes = kg.extras.get(self.name)
        if not isinstance(attributes, NumericAttributes):
            raise ValueError(f"{kg.name}: no numeric attributes in kg.extras[{self.name!r}]; "
                             f"load a dataset that has them (FB15k-237, Nations) with "
                             f"add_side_info=True, or pass path= to a triples file")
        return attributes

    def fingerprint(self, raw: NumericAttributes) -> str:
        return fingerprint([raw.raw, raw.mask, raw.names])

    def settings(self) -> dict[str, Any]:
        return {"normalization": self.normalization, "with_mask": self.with_mask,
                "path": str(self.path) if self.path else None}

    def encode(self, raw: NumericAttributes, progress: bool = True) -> ModalityFeatures:
        x = normalize_attributes(raw.raw, raw.mask, self.normalization).to(torch.float32)
        if not torch.isfinite(x).all():  # only raw values built by hand can get here
            bad = (~torch.isfinite(x)).any(dim=1).nonzero().view(-1)[:5].tolist()
            raise DataFormatError(raw.source or "numeric attributes", None, "raw values that "
                                  "fit float32 after normalization", note=f", got "
                                  f"non-finite ones for entities {bad}")
        if self.with_mask:
            x = torch.cat([x, raw.mask.to(torch.float32)], dim=1)
        entity_mask = raw.mask.any(dim=1)
        x[~entity_mask] = 0
        return ModalityFeatures(x, entity_mask, None, {"attributes": list(raw.names)})
