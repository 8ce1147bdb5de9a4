"""The multimodal baseline: the fusion formula, masks, fills, gradients, build_model."""

from __future__ import annotations

import pytest
import torch

from mmgnn.modalities import ModalityStore
from mmgnn.models.multimodal_kge import MultiModalKGE
from mmgnn.nn.kge import ComplEx, DistMult

N, DIM = 6, 4


def _model(missing="skip", dropout=0.0):
    torch.manual_seed(0)
    feats = {"text": torch.randn(N, 5), "image": torch.randn(N, 3)}
    masks = {"text": torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool),
             "image": torch.tensor([1, 0, 0, 1, 1, 1], dtype=torch.bool)}
    model = MultiModalKGE(N, 2, ModalityStore(feats, masks), DistMult(2, DIM), missing=missing,
                          modality_dropout=dropout)
    return model, feats, masks


def _reference(model, feats, masks, missing):
    """The formula of the docstring, one entity at a time."""
    rows = []
    for i in range(N):
        parts = [model.entity.weight[i]]
        for m in ("text", "image"):
            x = feats[m][i]
            if not masks[m][i]:
                if missing == "skip":
                    continue
                if missing == "zeros":
                    x = torch.zeros_like(x)
                elif missing == "mean":
                    x = feats[m][masks[m]].mean(0)
                else:
                    x = model.fills[m].placeholder
            parts.append(model.projections[m](x))
        rows.append(torch.stack(parts).mean(0))
    return torch.stack(rows)


@pytest.mark.parametrize("missing", ["skip", "zeros", "mean", "learned"])
def test_encode_matches_the_formula(missing):
    model, feats, masks = _model(missing)
    torch.testing.assert_close(model.encode(), _reference(model, feats, masks, missing))


def test_absent_features_are_never_read_and_gradients_flow():
    model, feats, masks = _model()
    before = model.encode().detach()
    noisy = feats["text"].clone()
    noisy[~masks["text"]] = 1e6
    model.set_modality("text", noisy, masks["text"])
    torch.testing.assert_close(model.encode(), before)
    # Entity 2 has neither modality: its representation is its embedding.
    torch.testing.assert_close(before[2], model.entity.weight[2].detach())
    x = model.encode()
    model.score_triples(x, torch.tensor([0, 3]), torch.tensor([0, 1]), torch.tensor([5, 1])).sum() \
        .backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_modality_dropout_only_in_training():
    model, _, _ = _model(dropout=0.5)
    model.eval()
    torch.testing.assert_close(model.encode(), model.encode())
    model.train()
    torch.manual_seed(1)
    assert not torch.allclose(model.encode(), model.encode())


def test_sequences_are_pooled_and_checked():
    model, feats, masks = _model()
    seq = torch.zeros(N, 3, 5)
    seq[:, 0] = feats["text"]
    seq[:, 1] = 2 * feats["text"]
    model.set_modality("text", seq, masks["text"], torch.where(masks["text"], 2, 0))
    torch.testing.assert_close(model.modality("text")[0][masks["text"]],
                               1.5 * feats["text"][masks["text"]])
    with pytest.raises(ValueError, match=r"expected features of width 5"):
        model.set_modality("text", torch.zeros(N, 4))
    with pytest.raises(KeyError, match="not one of"):
        model.set_modality("audio", torch.zeros(N, 4))
    assert not any("x_" in k or "mask_" in k for k in model.state_dict())


def test_built_by_keywords_with_a_decoder_by_name(data_root):
    from mmgnn.data import load_dataset

    kg = load_dataset("Nations", root=data_root)
    store = ModalityStore.from_kg(kg, ["numeric"])
    torch.manual_seed(0)
    model = MultiModalKGE(kg.num_entities, kg.num_relations, store, decoder="complex", dim=8,
                          reciprocal=True, missing="mean")
    assert model.missing == "mean" and model.decoder_relations == 110
    assert repr(model) == ("MultiModalKGE(14, modalities=[numeric=2], decoder=ComplEx("
                           "num_relations=110, hidden_channels=8), missing='mean', "
                           "reciprocal=True)")
    assert model.encode().shape == (14, 16)
    with pytest.raises(ValueError, match="at least one modality"):
        MultiModalKGE(14, 55, ModalityStore(num_entities=14))
    # the same numbers as the decoder built by hand before the model
    torch.manual_seed(0)
    by_hand = MultiModalKGE(kg.num_entities, kg.num_relations, store,
                            decoder=ComplEx(
                                110, 8), reciprocal=True, missing="mean")
    for (k, a), (_, b) in zip(model.state_dict().items(), by_hand.state_dict().items(),
                              strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
