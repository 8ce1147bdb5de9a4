"""The robustness harness removes and corrupts exactly the requested entities."""

from __future__ import annotations

import json

import pytest
import torch

from mmgnn.eval import evaluate
from mmgnn.eval.robustness import (
    Corruption,
    corrupt_features,
    corrupt_kg,
    default_settings,
    robustness_sweep,
)
from mmgnn.modalities.store import ModalityStore
from mmgnn.models import MultiModalKGE
from mmgnn.nn.kge import DistMult
from tests.helpers import distmult_model, random_kg

N = 1000


@pytest.fixture(scope="module")
def feats():
    g = torch.Generator().manual_seed(0)
    x = {"text": torch.randn(N, 4, generator=g), "image": torch.randn(N, 3, generator=g)}
    masks = {"text": torch.arange(N) % 5 != 0,      # 800 present
             "image": torch.arange(N) % 2 == 0}     # 500 present
    for m in x:
        x[m][~masks[m]] = 0
    return x, masks


def _changed(a, b):
    return (a != b).any(dim=1).nonzero().view(-1)


def test_missing_removes_exactly_the_rate(feats):
    x, masks = feats
    for rate, k in ((0.0, 0), (0.25, 200), (0.5, 400), (0.333, 266), (1.0, 800)):
        out = corrupt_features(x, masks, "missing:text", rate, seed=3)
        assert len(out.affected["text"]) == k == out.num_entities_affected
        assert int(out.masks["text"].sum()) == 800 - k
        assert masks["text"][out.affected["text"]].all()  # only present entities are chosen
        assert out.features["text"][out.affected["text"]].abs().sum() == 0
        keep = out.masks["text"]
        assert torch.equal(out.features["text"][keep], x["text"][keep])
        assert torch.equal(out.features["image"], x["image"])  # other modalities untouched
    assert int(masks["text"].sum()) == 800  # inputs not modified


def test_nested_across_rates_and_seeded(feats):
    x, masks = feats
    low = set(corrupt_features(x, masks, "TMR", 0.25, seed=1).affected["text"].tolist())
    high = set(corrupt_features(x, masks, "TMR", 0.5, seed=1).affected["text"].tolist())
    again = set(corrupt_features(x, masks, "TMR", 0.5, seed=1).affected["text"].tolist())
    other = set(corrupt_features(x, masks, "TMR", 0.5, seed=2).affected["text"].tolist())
    assert low < high and high == again and high != other


def test_swap_noise_takes_another_present_entity(feats):
    x, masks = feats
    out = corrupt_features(x, masks, "TNR", 0.5, seed=0, noise="swap")
    ids = out.affected["text"]
    assert len(ids) == 400 and out.masks["text"].equal(masks["text"])
    assert torch.equal(_changed(out.features["text"], x["text"]), ids.sort().values)
    present = x["text"][masks["text"]]
    for i in ids[:50].tolist():
        donor = (present == out.features["text"][i]).all(dim=1).nonzero().view(-1)
        assert len(donor) == 1
        assert not torch.equal(out.features["text"][i], x["text"][i])


def test_gaussian_noise_has_the_feature_scale(feats):
    x, masks = feats
    out = corrupt_features(x, masks, "noise:text", 1.0, noise="gaussian", noise_scale=0.5)
    assert len(_changed(out.features["text"], x["text"])) == 800
    delta = (out.features["text"] - x["text"])[masks["text"]]
    std = x["text"][masks["text"]].std(dim=0, unbiased=False)
    torch.testing.assert_close(delta.std(dim=0), 0.5 * std, rtol=0.1, atol=0.0)


def test_mixed_and_joint_settings(feats):
    x, masks = feats
    either = masks["text"] | masks["image"]  # 900 entities have text or image
    out = corrupt_features(x, masks, "MMR", 0.5, seed=0)
    t, i = set(out.affected["text"].tolist()), set(out.affected["image"].tolist())
    assert not t & i and len(t) + len(i) == 450 == out.num_entities_affected
    assert masks["text"][list(t)].all() and masks["image"][list(i)].all()
    assert len(t) > 100 and len(i) > 100  # both modalities drawn
    out = corrupt_features(x, masks, "TINR", 0.5, seed=0)
    chosen = set(out.affected["text"].tolist()) | set(out.affected["image"].tolist())
    assert len(chosen) == 450 and int(either.sum()) == 900
    both = [e for e in chosen if masks["text"][e] and masks["image"][e]]
    assert all(e in out.affected["text"] and e in out.affected["image"] for e in both)


def test_modality_level_setting_draws_each_modality_on_its_own(feats):
    x, masks = feats
    out = corrupt_features(x, masks, "missing:text&image", 0.5, seed=0)
    t, i = set(out.affected["text"].tolist()), set(out.affected["image"].tolist())
    assert len(t) == 400 and len(i) == 250  # half of each modality's 800 / 500 entities
    assert masks["text"][list(t)].all() and masks["image"][list(i)].all()
    # independent draws: of the 400 entities with both, about a quarter lose both (the
    # entity-level 'text+image' setting removes both from every chosen entity)
    both = masks["text"] & masks["image"]
    lost_both = sum(1 for e in both.nonzero().view(-1).tolist() if e in t and e in i)
    assert 60 < lost_both < 140, lost_both
    joint = corrupt_features(x, masks, "missing:text+image", 0.5, seed=0)
    jt, ji = set(joint.affected["text"].tolist()), set(joint.affected["image"].tolist())
    assert sum(1 for e in both.nonzero().view(-1).tolist() if e in jt) == \
        sum(1 for e in both.nonzero().view(-1).tolist() if e in jt and e in ji)
    low = corrupt_features(x, masks, "missing:text&image", 0.25, seed=0)
    assert set(low.affected["text"].tolist()) < t and set(low.affected["image"].tolist()) < i


def test_settings_parse():
    assert Corruption.parse("MNR") == Corruption("noise", ("text", "image"), True)
    assert Corruption.parse("noise:a+b").label == "noise:a+b"
    assert Corruption.parse("missing:a&b") == Corruption("missing", ("a", "b"), False, True)
    assert Corruption.parse("missing:a&b").label == "missing:a&b"
    assert default_settings(["text"]) == ["missing:text", "noise:text"]
    assert len(default_settings(["text", "image"])) == 7
    for bad in ("drop:text", "missing:", "missing:a+b|c", "missing:a&b+c", "TXR"):
        with pytest.raises(ValueError, match="expected 'missing:<m>'"):
            Corruption.parse(bad)
    with pytest.raises(ValueError, match="lack"):
        corrupt_features({"text": torch.zeros(2, 1)}, {"text": torch.ones(2, dtype=bool)},
                         "IMR", 0.5)


def test_sweep_against_independent_references(tmp_path):
    kg = random_kg(num_entities=30)
    g = torch.Generator().manual_seed(0)
    kg.add_modality("text", torch.randn(30, 6, generator=g), torch.arange(30) % 3 != 0)
    torch.manual_seed(0)
    model = MultiModalKGE(30, kg.num_relations, ModalityStore.from_kg(kg),
                          DistMult(kg.num_relations, 8))
    clean = evaluate(model, kg, "test", progress=False).mrr
    report = robustness_sweep(model, kg, ["missing:text", "noise:text"], [0, 0.5, 1],
                              progress=False)
    assert [(r["setting"], r["rate"], r["affected"]) for r in report.rows] == [
        ("missing:text", 0.0, 0), ("missing:text", 0.5, 10), ("missing:text", 1.0, 20),
        ("noise:text", 0.0, 0), ("noise:text", 0.5, 10), ("noise:text", 1.0, 20)]
    assert report.rows[0]["mrr"] == pytest.approx(clean)
    # All text missing: the model is its entity table scored by DistMult.
    structure = distmult_model(kg, dim=8)
    structure.entity.weight.data.copy_(model.entity.weight.data)
    structure.decoder.load_state_dict(model.decoder.state_dict())
    assert report.rows[2]["mrr"] == pytest.approx(evaluate(structure, kg, "test",
                                                           progress=False).mrr)
    # Same corruption through corrupt_kg and a fresh evaluation.
    noisy = corrupt_kg(kg, "noise:text", 0.5)
    model.set_modality("text", noisy.features["text"], noisy.masks["text"])
    assert report.rows[4]["mrr"] == pytest.approx(evaluate(model, kg, "test", progress=False)
                                                  .mrr)
    model.set_modality("text", kg.features["text"], kg.masks["text"])
    assert evaluate(model, kg, "test", progress=False).mrr == pytest.approx(clean)
    assert "missing:text   1.00        20" in report.format()
    report.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000
    assert json.loads(json.dumps(report.to_dict()))["rows"][1]["affected"] == 10
    with pytest.raises(TypeError, match="reads no modality features"):
        robustness_sweep(distmult_model(kg), kg, progress=False)
