"""KGE decoders (scoring functions): one file per decoder, all following
:class:`~mmgnn.nn.kge.base.KGEDecoder`, and the decoder registry."""

from __future__ import annotations

from typing import Any

from mmgnn.nn.kge.base import KGEDecoder
from mmgnn.nn.kge.complex import ComplEx
from mmgnn.nn.kge.distmult import DistMult
from mmgnn.nn.kge.masked_entity_head import MaskedEntityHead
from mmgnn.nn.kge.pairre import PairRE
from mmgnn.nn.kge.rotate import RotatE
from mmgnn.nn.kge.transe import TransE
from mmgnn.nn.kge.tucker import TuckER
from mmgnn.utils.registry import Registry

#: Decoders by name; an entry builds as ``cls(num_relations, hidden_channels, **kwargs)``.
DECODERS = Registry("decoder")


def register_decoder(name: str, target: Any = None, **fixed: Any):
    """Registers a :class:`KGEDecoder` subclass under ``name`` (without ``target``: a class
    decorator); it is then ``build_decoder(name, ...)`` and the model name ``name`` of a
    :class:`~mmgnn.models.KGEModel` once :data:`mmgnn.models.MODELS` registers it."""
    return DECODERS.register(name, target, **fixed)


for _name, _cls in (("transe", TransE), ("distmult", DistMult), ("complex", ComplEx),
                    ("rotate", RotatE), ("pairre", PairRE), ("tucker", TuckER)):
    DECODERS.register(_name, _cls)


def build_decoder(name: str, num_relations: int, hidden_channels: int,
                  **kwargs: Any) -> KGEDecoder:
    """Builds the decoder registered as ``name`` (case-insensitive) in :data:`DECODERS`.

    Args:
        name (str): ``transe``, ``distmult``, ``complex``, ``rotate``, ``pairre``, ``tucker``
            or a registered user's decoder.
        num_relations (int): Number of relations (inverses included if the model uses them).
        hidden_channels (int): Embedding size (complex models: complex dimensions).
        **kwargs: Further constructor arguments of the decoder (``p_norm``, ``margin``, ...).

    Raises:
        KeyError: ``name`` is not registered (the message lists the names and the closest).
    """
    return DECODERS.build(name, num_relations, hidden_channels, **kwargs)


__all__ = ["KGEDecoder", "TransE", "DistMult", "ComplEx", "RotatE", "PairRE", "TuckER",
           "MaskedEntityHead", "DECODERS", "register_decoder", "build_decoder"]
