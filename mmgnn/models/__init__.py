"""Link-prediction models: the structure-only baseline and the published systems; and
MKGformer's relation-extraction and NER models (:class:`MKGformerRE`, :class:`MKGformerNER`).

Every name loads on first use (PEP 562), so that ``import mmgnn.models.registry`` (the model
names for ``mmgnn train --help``) imports neither torch nor any model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmgnn.models.registry import MODELS, available_models, build_model, register_model

if TYPE_CHECKING:
    from mmgnn.models.base import LinkPredictor
    from mmgnn.models.export import export_embeddings
    from mmgnn.models.gat_transe import GATTransE
    from mmgnn.models.imf import IMF
    from mmgnn.models.k3m import K3M, K3MConfig
    from mmgnn.models.kge_model import KGEModel
    from mmgnn.models.mkgformer import MKGformer
    from mmgnn.models.mkgformer_ner import MKGformerNER
    from mmgnn.models.mkgformer_re import MKGformerRE
    from mmgnn.models.multimodal_kge import MultiModalKGE
    from mmgnn.models.native import NativE

_LAZY = {
    "LinkPredictor": "mmgnn.models.base",
    "KGEModel": "mmgnn.models.kge_model",
    "GATTransE": "mmgnn.models.gat_transe",
    "IMF": "mmgnn.models.imf",
    "MKGformer": "mmgnn.models.mkgformer",
    "MKGformerRE": "mmgnn.models.mkgformer_re",
    "MKGformerNER": "mmgnn.models.mkgformer_ner",
    "MultiModalKGE": "mmgnn.models.multimodal_kge",
    "NativE": "mmgnn.models.native",
    "K3M": "mmgnn.models.k3m",
    "K3MConfig": "mmgnn.models.k3m",
    "export_embeddings": "mmgnn.models.export",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["MODELS", "register_model", "build_model", "available_models", "LinkPredictor",
           "KGEModel", "GATTransE", "IMF", "MKGformer", "MKGformerRE", "MKGformerNER",
           "MultiModalKGE", "NativE", "K3M", "K3MConfig", "export_embeddings"]
