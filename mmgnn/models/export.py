"""Export of a trained embedding model to one portable file."""

from __future__ import annotations

import torch

from mmgnn.data.kg import MultiModalKG
from mmgnn.models.base import LinkPredictor


@torch.no_grad()
def export_embeddings(model: LinkPredictor, kg: MultiModalKG, name: str) -> dict[str, object]:
    r"""The entity and relation embeddings of a trained model, in the dataset's own id order.

    Returns a dict for :func:`torch.save` with keys ``model`` (name), ``entity`` :obj:`(N, d)`,
    ``relation`` :obj:`(R, ...)`, ``p`` (the norm of a distance model, else :obj:`None`),
    ``entity_names`` and ``relation_names``, then whatever else the decoder's score needs.
    Each decoder says how its tables read in its paper's form
    (:meth:`~mmgnn.nn.kge.base.KGEDecoder.export_entities`,
    :meth:`~mmgnn.nn.kge.base.KGEDecoder.export_relations`): ComplEx and RotatE embeddings
    are complex tensors (:obj:`torch.cfloat`); RotatE relations are the unit-modulus rotations
    :math:`e^{i\theta_r}` (with ``margin``); PairRE relations are :obj:`(R, 2, d)`
    (:math:`r^H`, :math:`r^T`, with ``margin``); TuckER adds its ``core`` tensor
    :obj:`(d_r, d_e, d_e)`. Models trained with reciprocal relations add
    ``relation_inverse`` (the relations of the inverse queries).
    """
    decoder = model.decoder
    model.eval()
    entity = model.encode().detach().cpu().float()
    if entity.size(-1) != decoder.entity_channels:
        raise ValueError(f"{type(model).__name__}'s representations are {entity.size(-1)} wide, "
                         f"not one {type(decoder).__name__} entity table of "
                         f"{decoder.entity_channels} (a model with several branches, such as "
                         f"IMF): export its weights from best.pt instead")
    if not hasattr(decoder, "export_relations"):
        raise ValueError(f"{type(model).__name__} scores with a {type(decoder).__name__}, which "
                         f"exports no relation table: export its weights from best.pt instead")
    tables = dict(decoder.export_relations())
    rel, p = tables.pop("relation"), tables.pop("p", None)
    r = kg.num_relations
    out: dict[str, object] = {
        "model": name,
        "entity": decoder.export_entities(entity),
        "relation": rel[:r].clone(),
        "p": p,
        "entity_names": list(kg.entity_names),
        "relation_names": list(kg.relation_names),
        **tables,
    }
    if model.reciprocal:
        out["relation_inverse"] = rel[r:].clone()
    return out
