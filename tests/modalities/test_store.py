"""The modality store: buffers outside the state_dict, replacement, checks, pooling, devices."""

from __future__ import annotations

import pytest
import torch

from mmgnn.data.kg import MultiModalKG
from mmgnn.modalities import ModalityStore, pool_vectors
from mmgnn.modalities.base import entity_features

N = 5
MASK = torch.tensor([1, 0, 1, 1, 0], dtype=torch.bool)


def _store(**kw) -> ModalityStore:
    g = torch.Generator().manual_seed(0)
    return ModalityStore({"text": torch.randn(N, 3, generator=g),
                          "image": torch.randn(N, 4, 2, generator=g)},
                         {"text": MASK}, {"image": torch.tensor([4, 1, 2, 0, 3])}, **kw)


def test_buffers_follow_the_module_but_stay_out_of_the_state_dict():
    store = _store()
    model = torch.nn.Module()
    model.modalities = store
    assert store.names == ["text", "image"] and "text" in store and "audio" not in store
    assert model.state_dict() == {} and len(store) == 2
    names = {n for n, _ in model.named_buffers()}
    assert {"modalities.x_text", "modalities.mask_text", "modalities.x_image",
            "modalities.mask_image", "modalities.length_image"} <= names
    x, mask, lengths = store.get("text")
    assert torch.equal(mask, MASK) and lengths is None and x.shape == (N, 3)
    assert store.get("image")[1].all() and store.get("image")[2].tolist() == [4, 1, 2, 0, 3]
    assert store.width("text") == 3 and store.width("image") == 2
    model.double()
    assert store.get("text")[0].dtype == torch.float64 and store.get("text")[1].dtype == torch.bool


def test_set_replaces_and_checks_rows_and_width():
    store = _store()
    new = torch.ones(N, 3)
    store.set("text", new)
    x, mask, _ = store.get("text")
    assert torch.equal(x, new) and mask.all() and store.names == ["text", "image"]
    with pytest.raises(ValueError, match="width 3"):
        store.set("text", torch.ones(N, 4))
    with pytest.raises(ValueError, match="expected 5 rows"):
        store.set("numeric", torch.ones(N + 1, 2))
    with pytest.raises(ValueError, match=r"mask of shape \(5,\)"):
        store.set("text", new, torch.ones(3, dtype=torch.bool))
    with pytest.raises(KeyError, match="not held"):
        store.get("audio")
    store.set("image", torch.zeros(N, 4, 2))  # no lengths now: the old ones go
    assert store.get("image")[2] is None


def test_token_ids_with_lengths_are_kept_as_given():
    ids = torch.randint(100, (N, 7))
    store = ModalityStore({"title": ids}, {"title": MASK}, {"title": torch.full((N,), 7)})
    x, mask, lengths = store.get("title")
    assert x.dtype == torch.long and torch.equal(x, ids) and lengths.tolist() == [7] * N
    store.set("title", torch.randint(100, (N, 9)), MASK, torch.full((N,), 9))  # ids: any L
    assert store.get("title")[0].shape == (N, 9)


def test_pooling_prepare_equals_entity_features():
    raw = _store()
    pooled = raw.with_prepare(pool_vectors)
    for m in raw.names:
        x, mask, lengths = raw.get(m)
        ref_x, ref_mask = entity_features(m, x, mask, lengths, N, x.size(-1))
        got_x, got_mask, got_len = pooled.get(m)
        torch.testing.assert_close(got_x, ref_x, rtol=0, atol=0)
        assert torch.equal(got_mask, ref_mask) and got_len is None
    # written out: image row 0 averages its 4 positions, row 3 (length 0) is zero
    img, _, lengths = raw.get("image")
    torch.testing.assert_close(pooled.get("image")[0][0], img[0].mean(0))
    torch.testing.assert_close(pooled.get("image")[0][1], img[1, 0])
    assert pooled.get("image")[0][3].abs().sum() == 0
    # a later set is prepared too
    pooled.set("image", torch.ones(N, 6, 2), lengths=torch.full((N,), 6))
    assert pooled.get("image")[0].shape == (N, 2)


def test_from_kg_and_a_clear_error_for_absent_modalities():
    kg = MultiModalKG([f"e{i}" for i in range(N)], ["r"], torch.tensor([[0, 0, 1]]),
                      torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, 3, dtype=torch.long),
                      name="toy")
    kg.add_modality("numeric", torch.ones(N, 2), MASK)
    store = ModalityStore.from_kg(kg)
    assert store.names == ["numeric"] and torch.equal(store.get("numeric")[1], MASK)
    assert ModalityStore.from_kg(kg, []).names == []
    with pytest.raises(ValueError, match="--modalities text"):
        ModalityStore.from_kg(kg, ["numeric", "text"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_device_moves_the_features_and_later_sets():
    store = _store().to("cuda")
    assert all(t.is_cuda for t in store.get("image") if t is not None)
    store.set("numeric", torch.ones(N, 2))
    assert store.get("numeric")[0].is_cuda


def test_to_meta_device_moves_the_features_and_later_sets():
    """The same on any device: the meta device stands in for an accelerator on CPU."""
    store = _store().to("meta")
    assert all(t.is_meta for t in store.get("image") if t is not None)
    store.set("numeric", torch.ones(N, 2))
    assert store.get("numeric")[0].is_meta and store.get("numeric")[1].is_meta
