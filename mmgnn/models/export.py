"""Export of a trained embedding model to one portable file."""

from __future__ import annotations

import torch
from torch import Tensor

from mmgnn.data.kg import MultiModalKG
from mmgnn.models.base import LinkPredictor
from mmgnn.nn.kge import ComplEx, PairRE, RotatE, TransE, TuckER


def _complex(x: Tensor) -> Tensor:
    d = x.size(-1) // 2
    return torch.complex(x[..., :d].contiguous(), x[..., d:].contiguous())


@torch.no_grad()
def export_embeddings(model: LinkPredictor, kg: MultiModalKG, name: str) -> dict[str, object]:
    r"""The entity and relation embeddings of a trained model, in the dataset's own id order.

    Returns a dict for :func:`torch.save` with keys ``model`` (name), ``entity`` :obj:`(N, d)`,
    ``relation`` :obj:`(R, ...)`, ``p`` (the norm of a distance model, else :obj:`None`),
    ``entity_names`` and ``relation_names``. ComplEx and RotatE embeddings are complex tensors
    (:obj:`torch.cfloat`); RotatE relations are the unit-modulus rotations
    :math:`e^{i\theta_r}`. PairRE relations are :obj:`(R, 2, d)` (:math:`r^H`, :math:`r^T`);
    TuckER adds its ``core`` tensor :obj:`(d_r, d_e, d_e)`. Models trained with reciprocal
    relations add ``relation_inverse`` (the relations of the inverse queries).
    """
    decoder = model.decoder
    model.eval()
    entity = model.encode().detach().cpu().float()
    if entity.size(-1) != decoder.entity_channels:
        raise ValueError(f"{type(model).__name__}'s representations are {entity.size(-1)} wide, "
                         f"not one {type(decoder).__name__} entity table of "
                         f"{decoder.entity_channels} (a model with several branches, such as "
                         f"IMF): export its weights from best.pt instead")
    rel = decoder.rel_emb.weight.detach().cpu().float()
    p: float | None = None
    extra: dict[str, object] = {}
    if isinstance(decoder, TransE):
        p = decoder.p_norm
    elif isinstance(decoder, RotatE):
        entity = _complex(entity)
        phase = decoder.phase(torch.arange(decoder.num_relations)).detach().cpu()
        rel = torch.polar(torch.ones_like(phase), phase)
        p = 1 if decoder.distance == "complex" else 2
        extra["margin"] = decoder.margin
    elif isinstance(decoder, ComplEx):
        entity, rel = _complex(entity), _complex(rel)
    elif isinstance(decoder, PairRE):
        rel = rel.view(-1, 2, decoder.hidden_channels)
        p = 1
        extra["margin"] = decoder.margin
    elif isinstance(decoder, TuckER):
        extra["core"] = decoder.core.detach().cpu().float()
    r = kg.num_relations
    out: dict[str, object] = {
        "model": name,
        "entity": entity,
        "relation": rel[:r].clone(),
        "p": p,
        "entity_names": list(kg.entity_names),
        "relation_names": list(kg.relation_names),
        **extra,
    }
    if model.reciprocal:
        out["relation_inverse"] = rel[r:].clone()
    return out
