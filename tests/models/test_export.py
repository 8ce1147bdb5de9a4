"""export_embeddings: every decoder's tables in its paper's form, checked by rescoring triples
with the exported tensors and the paper's formula written out here."""

from __future__ import annotations

import pytest
import torch

from mmgnn.models.export import export_embeddings
from mmgnn.models.kge_model import KGEModel
from tests.helpers import random_kg


def _score(out: dict, name: str, h, r, t, inverse: bool = False) -> torch.Tensor:
    """The paper's score of ``(h, r, t)`` from the exported tensors only."""
    e = out["entity"]
    rel = (out["relation_inverse"] if inverse else out["relation"])[r]
    eh, et = e[h], e[t]
    if name == "transe":
        return -(eh + rel - et).norm(p=out["p"], dim=-1)
    if name == "distmult":
        return (eh * rel * et).sum(-1)
    if name == "complex":
        return (eh * rel * et.conj()).real.sum(-1)
    if name == "rotate":
        return out["margin"] - (eh * rel - et).abs().sum(-1)
    if name == "pairre":
        eh, et = torch.nn.functional.normalize(eh, dim=-1), torch.nn.functional.normalize(et,
                                                                                         dim=-1)
        return out["margin"] - (eh * rel[:, 0] - et * rel[:, 1]).norm(p=out["p"], dim=-1)
    if name == "tucker":
        w = torch.einsum("bk,kij->bij", rel, out["core"])
        return torch.einsum("bi,bij,bj->b", eh, w, et)
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["transe", "distmult", "complex", "rotate", "pairre", "tucker"])
@pytest.mark.parametrize("reciprocal", [False, True])
def test_export_rescores_the_triples(name, reciprocal):
    kg = random_kg(num_entities=20, num_relations=3)
    torch.manual_seed(0)
    model = KGEModel(kg.num_entities, kg.num_relations, name, dim=6, reciprocal=reciprocal)
    out = export_embeddings(model, kg, name)
    assert out["model"] == name and out["entity_names"] == list(kg.entity_names)
    assert len(out["relation"]) == kg.num_relations
    assert ("relation_inverse" in out) == reciprocal
    complex_form = name in ("complex", "rotate")
    assert out["entity"].is_complex() == complex_form
    assert out["entity"].shape == (kg.num_entities, 6)
    h, r, t = kg.test.t()
    x = model.encode()
    expected = model.score_triples(x, h, r, t).detach()
    torch.testing.assert_close(_score(out, name, h, r, t).float(), expected, rtol=1e-4,
                               atol=1e-4)
    if reciprocal:
        inv = model.score_triples(x, t, r + kg.num_relations, h).detach()
        torch.testing.assert_close(_score(out, name, t, r, h, inverse=True).float(), inv,
                                   rtol=1e-4, atol=1e-4)


def test_export_refuses_what_is_not_one_entity_table():
    kg = random_kg(num_entities=20, num_relations=3)

    class TwoBranches(KGEModel):
        def encode(self):
            return torch.cat([self.entity.weight, self.entity.weight], dim=-1)

    model = TwoBranches(kg.num_entities, kg.num_relations, "distmult", dim=4)
    with pytest.raises(ValueError, match="8 wide, not one DistMult entity table of 4"):
        export_embeddings(model, kg, "two")
