"""The feature cache: hits, and a rebuild on any change of dataset, modality, encoder,
settings or raw data."""

from __future__ import annotations

import torch

from mmgnn.data import MultiModalKG
from mmgnn.modalities import (
    FeatureCache,
    Modality,
    ModalityFeatures,
    TextModality,
    register_modality,
)

from .conftest import save_tiny_bert


@register_modality("test_counting")
class CountingModality(Modality):
    """Name lengths times ``scale``; counts its encodings."""

    calls = 0

    def __init__(self, scale: float = 1.0, name: str | None = None) -> None:
        super().__init__(name)
        self.scale = scale

    def read(self, kg):
        return kg.texts["name"]

    def settings(self):
        return {"scale": self.scale}

    def encode(self, raw, progress=True):
        type(self).calls += 1
        x = torch.tensor([[len(t or "") * self.scale] for t in raw])
        return ModalityFeatures(x, torch.tensor([t is not None for t in raw]))


def _kg(names, dataset="d"):
    empty = torch.zeros(0, 3, dtype=torch.long)
    return MultiModalKG([f"e{i}" for i in range(len(names))], ["r"], empty, empty, empty,
                        name=dataset, texts={"name": list(names)})


def test_hit_and_every_kind_of_miss(tmp_path):
    cache = FeatureCache(tmp_path)
    kg = _kg(["ab", None, "abcd"])
    start = CountingModality.calls
    first = CountingModality().build(kg, cache)
    again = CountingModality().build(kg, cache)
    assert CountingModality.calls == start + 1 and again.info["cached"]
    torch.testing.assert_close(again.x, first.x)
    assert again.mask.tolist() == [True, False, True]
    CountingModality(scale=2.0).build(kg, cache)                   # settings
    CountingModality(name="other").build(kg, cache)                # modality name
    CountingModality().build(_kg(["ab", None, "abcd"], "d2"), cache)  # dataset
    CountingModality().build(_kg(["ab", None, "abce"]), cache)     # raw data
    CountingModality().build(_kg(["ab", "", "abcd"]), cache)       # None vs ""
    assert CountingModality.calls == start + 6
    CountingModality(scale=2.0).build(kg, cache)
    assert CountingModality.calls == start + 6
    assert CountingModality().build(kg, cache=False).info.get("cached") is None
    assert cache.clear("d") == 5 and cache.clear() == 1


def test_encoder_weights_change_rebuilds(tmp_path, monkeypatch):
    calls = []
    original = TextModality.encode
    monkeypatch.setattr(TextModality, "encode",
                        lambda self, raw, progress=True: calls.append(1) or original(self, raw,
                                                                                     progress))
    folder = save_tiny_bert(tmp_path / "bert", seed=0)
    kg = _kg(["cat", "dog"])
    cache = FeatureCache(tmp_path / "cache")
    a = TextModality(encoder=folder).build(kg, cache, progress=False)
    TextModality(encoder=folder).build(kg, cache, progress=False)
    assert len(calls) == 1
    TextModality(encoder=folder, pooling="cls").build(kg, cache, progress=False)
    assert len(calls) == 2
    save_tiny_bert(folder, seed=1)  # same folder, new weights
    b = TextModality(encoder=folder).build(kg, cache, progress=False)
    assert len(calls) == 3 and not torch.allclose(a.x, b.x)
