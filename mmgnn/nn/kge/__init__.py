"""KGE decoders (scoring functions): one file per decoder, all following
:class:`~mmgnn.nn.kge.base.KGEDecoder`."""

from __future__ import annotations

from mmgnn.nn.kge.base import KGEDecoder
from mmgnn.nn.kge.complex import ComplEx
from mmgnn.nn.kge.distmult import DistMult
from mmgnn.nn.kge.pairre import PairRE
from mmgnn.nn.kge.rotate import RotatE
from mmgnn.nn.kge.transe import TransE
from mmgnn.nn.kge.tucker import TuckER

DECODERS: dict[str, type[KGEDecoder]] = {
    "transe": TransE,
    "distmult": DistMult,
    "complex": ComplEx,
    "rotate": RotatE,
    "pairre": PairRE,
    "tucker": TuckER,
}


def build_decoder(name: str, num_relations: int, hidden_channels: int,
                  **kwargs) -> KGEDecoder:
    """Builds the decoder registered as ``name`` (case-insensitive) in :data:`DECODERS`.

    Args:
        name (str): ``transe``, ``distmult``, ``complex``, ``rotate``, ``pairre`` or ``tucker``.
        num_relations (int): Number of relations (inverses included if the model uses them).
        hidden_channels (int): Embedding size (complex models: complex dimensions).
        **kwargs: Further constructor arguments of the decoder (``p_norm``, ``margin``, ...).
    """
    key = name.lower()
    if key not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; valid names: {', '.join(DECODERS)}")
    return DECODERS[key](num_relations, hidden_channels, **kwargs)


__all__ = ["KGEDecoder", "TransE", "DistMult", "ComplEx", "RotatE", "PairRE", "TuckER",
           "DECODERS", "build_decoder"]
