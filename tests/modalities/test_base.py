"""The registry, the feature container, sequence pooling and sequence lengths in the graph."""

from __future__ import annotations

import pytest
import torch

from mmgnn.data import MultiModalKG
from mmgnn.modalities import (
    Modality,
    ModalityFeatures,
    available_modalities,
    build_modality,
    fingerprint,
    pool_sequence,
    register_modality,
)


def _kg(n=3):
    empty = torch.zeros(0, 3, dtype=torch.long)
    return MultiModalKG([f"e{i}" for i in range(n)], ["r"], empty, empty, empty, name="b")


def test_registry():
    assert {"text", "image", "numeric", "precomputed"} <= set(available_modalities())

    @register_modality("test_ones")
    class Ones(Modality):
        def read(self, kg):
            return kg.num_entities

        def encode(self, raw, progress=True):
            return ModalityFeatures(torch.ones(raw, 2), torch.ones(raw, dtype=torch.bool))

    modality = build_modality("test_ones", name="ones")
    assert modality.kind == "test_ones" and modality.name == "ones"
    kg = _kg()
    modality.attach(kg, cache=False)
    assert kg.features["ones"].shape == (3, 2) and kg.masks["ones"].all()
    with pytest.raises(ValueError, match="already registered"):
        register_modality("test_ones")(type("Other", (Modality,), {}))
    with pytest.raises(ValueError, match="unknown modality 'audio'; registered:"):
        build_modality("audio")
    with pytest.raises(TypeError, match="modality 'numeric'"):
        build_modality("numeric", pooling="cls")


def test_features_check_names_the_problem():
    bad = ModalityFeatures(torch.tensor([[1.0], [float("nan")]]), torch.tensor([True, True]))
    with pytest.raises(ValueError, match=r"here: NaN or infinite features for 1 present "
                                         r"entities \(first ids: \[1\]\)"):
        bad.check(2, "here")
    ModalityFeatures(bad.x, torch.tensor([True, False])).check(2, "absent rows may be NaN")
    with pytest.raises(ValueError, match="N = 3 entities"):
        bad.check(3, "here")


def test_pool_sequence_against_a_loop():
    x = torch.randn(4, 5, 3)
    lengths = torch.tensor([5, 1, 0, 3])
    ref = torch.stack([x[i, :n].mean(0) if n else torch.zeros(3) for i, n in enumerate(lengths)])
    torch.testing.assert_close(pool_sequence(x, lengths), ref)


def test_fingerprint_tells_values_apart():
    assert fingerprint(["a", None]) != fingerprint(["a", "None"])
    assert fingerprint(["ab", "c"]) != fingerprint(["a", "bc"])
    assert fingerprint(torch.zeros(2)) != fingerprint(torch.zeros(2, dtype=torch.float64))
    assert fingerprint({"a": 1}) == fingerprint({"a": 1})


def test_graph_keeps_sequence_lengths():
    kg = _kg()
    x = torch.ones(3, 4, 2)
    kg.add_modality("tokens", x, torch.tensor([True, False, True]), torch.tensor([2, 0, 4]))
    assert kg.lengths["tokens"].tolist() == [2, 0, 4]
    assert kg["entity"].length_tokens.tolist() == [2, 0, 4]
    kg.add_modality("full", x)
    assert kg.lengths["full"].tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match=r"1 <= length <= 4 for present entities; 1 entries"):
        kg.add_modality("tokens", x, torch.tensor([True, True, True]), torch.tensor([2, 0, 4]))
    with pytest.raises(ValueError, match="not an \\(N, L, d\\) sequence"):
        kg.add_modality("vec", torch.ones(3, 2), lengths=torch.tensor([1, 1, 1]))
