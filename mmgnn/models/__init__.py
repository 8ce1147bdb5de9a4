"""Link-prediction models: the structure-only baseline and the published systems."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmgnn.models.base import LinkPredictor
from mmgnn.models.gat_transe import GATTransE
from mmgnn.models.imf import IMF
from mmgnn.models.k3m import K3M, K3MConfig
from mmgnn.models.kge_model import KGEModel
from mmgnn.models.mkgformer import MKGformer
from mmgnn.models.multimodal_kge import MultiModalKGE
from mmgnn.models.native import NativE

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG
    from mmgnn.train.config import TrainConfig


def available_models() -> list[str]:
    """Names accepted by :func:`build_model` (and ``mmgnn train --model``)."""
    from mmgnn.nn.kge import DECODERS

    return sorted(DECODERS) + ["gat_transe", "imf", "mkgformer", "multimodal", "native"]


def build_model(config: TrainConfig, kg: MultiModalKG) -> LinkPredictor:
    """Builds the model a :class:`~mmgnn.train.TrainConfig` names, sized for ``kg``.

    A decoder name (``transe``, ``rotate``, ...) gives a :class:`KGEModel` with that decoder;
    ``multimodal`` gives a :class:`MultiModalKGE` (see :meth:`MultiModalKGE.from_config`);
    ``gat_transe`` gives a :class:`GATTransE` over ``kg``'s training graph (see
    :meth:`GATTransE.from_config`); ``imf`` gives an :class:`IMF` (see
    :meth:`IMF.from_config`); ``native`` gives a :class:`NativE` (see
    :meth:`NativE.from_config`).
    """
    from mmgnn.nn.kge import DECODERS, build_decoder

    name = config.model.lower()
    if name in DECODERS:
        num_rel = kg.num_relations * (2 if config.reciprocal else 1)
        decoder = build_decoder(name, num_rel, config.dim, **config.model_args)
        return KGEModel(kg.num_entities, kg.num_relations, decoder, reciprocal=config.reciprocal)
    if name == "gat_transe":
        return GATTransE.from_config(config, kg)
    if name == "imf":
        return IMF.from_config(config, kg)
    if name == "mkgformer":
        return MKGformer.from_config(config, kg)
    if name == "multimodal":
        return MultiModalKGE.from_config(config, kg)
    if name == "native":
        return NativE.from_config(config, kg)
    raise ValueError(f"unknown model {config.model!r}; available: {', '.join(available_models())}")


__all__ = ["LinkPredictor", "KGEModel", "GATTransE", "IMF", "MultiModalKGE", "NativE",
           "build_model", "available_models", "MKGformer", "K3M", "K3MConfig"]
