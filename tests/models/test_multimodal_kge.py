"""The multimodal baseline: the fusion formula, masks, fills, gradients, build_model."""

from __future__ import annotations

import pytest
import torch

from mmgnn.data import load_dataset
from mmgnn.models import KGEModel, MultiModalKGE, build_model
from mmgnn.nn.kge import DistMult
from mmgnn.train import TrainConfig

N, DIM = 6, 4


def _model(missing="skip", dropout=0.0):
    torch.manual_seed(0)
    feats = {"text": torch.randn(N, 5), "image": torch.randn(N, 3)}
    masks = {"text": torch.tensor([1, 1, 0, 1, 0, 1], dtype=torch.bool),
             "image": torch.tensor([1, 0, 0, 1, 1, 1], dtype=torch.bool)}
    model = MultiModalKGE(N, 2, DistMult(2, DIM), feats, masks, missing=missing,
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
    model.score_hrt(x, torch.tensor([0, 3]), torch.tensor([0, 1]), torch.tensor([5, 1])).sum() \
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
    with pytest.raises(ValueError, match=r"expected features \(6, 5\)"):
        model.set_modality("text", torch.zeros(N, 4))
    with pytest.raises(KeyError, match="not one of"):
        model.set_modality("audio", torch.zeros(N, 4))
    assert "state_dict" and not any(k.startswith(("x_", "mask_")) for k in model.state_dict())


def test_build_model_from_config(data_root):
    kg = load_dataset("Nations", root=data_root)
    config = TrainConfig(model="multimodal", dim=8, model_args={"decoder": "complex",
                                                                "missing": "mean"},
                         modalities=["numeric"], reciprocal=True)
    model = build_model(config, kg)
    assert isinstance(model, MultiModalKGE) and model.missing == "mean"
    assert repr(model) == ("MultiModalKGE(14, modalities=[numeric=2], decoder=ComplEx("
                           "num_relations=110, hidden_channels=8), missing='mean', "
                           "reciprocal=True)")
    assert model.encode().shape == (14, 16)
    with pytest.raises(ValueError, match="needs modality features"):
        build_model(TrainConfig(model="multimodal", modalities=["text"]), kg)
    assert isinstance(build_model(TrainConfig(model="distmult", dim=8), kg), KGEModel)
