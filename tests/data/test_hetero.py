"""MultiModalKG as a PyG HeteroData: layout, PyG's own operations, a transform, a loader, K3M's
product graph, and the processed-dataset cache of ``load_dataset``."""

from __future__ import annotations

import copy
import io
import os
import shutil
import warnings

import pytest
import torch
import torch_geometric.transforms as T
from torch_geometric.loader import RandomNodeLoader

import mmgnn.data.datasets as datasets
from mmgnn.data import DatasetQuirkWarning, MultiModalKG, load_dataset, relation_count
from mmgnn.data.datasets import get_spec, processed_dir, processed_path

N, R = 30, 4


def _kg(seed: int = 0) -> MultiModalKG:
    """A random graph whose valid/test triples are not training triples; relation 3 has no
    training edge; modalities: float vectors with a missing row, a float sequence."""
    g = torch.Generator().manual_seed(seed)
    keys = torch.randperm(N * (R - 1) * N, generator=g)[:160]  # distinct triples
    distinct = torch.stack([keys // ((R - 1) * N), keys // N % (R - 1), keys % N], 1)
    train, valid, test = distinct[:120], distinct[120:140], distinct[140:160]
    mask = torch.ones(N, dtype=torch.bool)
    mask[3] = False
    kg = MultiModalKG([f"e{i}" for i in range(N)], [f"r{i}" for i in range(R)], train, valid,
                      test, name="toy", features={"image": torch.randn(N, 5, generator=g)},
                      masks={"image": mask}, texts={"name": [f"entity {i}" for i in range(N)]},
                      quirks={"duplicates_train": 0})
    kg.add_modality("tokens", torch.randn(N, 6, 2, generator=g), lengths=torch.full((N,), 4))
    return kg


def _triples(kg: MultiModalKG) -> set[tuple[int, int, int]]:
    """Training triples read back from the edge types."""
    out = set()
    for r, name in enumerate(kg.relation_names):
        h, t = kg["entity", name, "entity"].edge_index
        out |= {(a, r, b) for a, b in zip(h.tolist(), t.tolist(), strict=True)}
    return out


def _assert_same_kg(a: MultiModalKG, b: MultiModalKG) -> None:
    assert a.entity_names == b.entity_names and a.relation_names == b.relation_names
    assert a.name == b.name and a.texts == b.texts and a.quirks == b.quirks
    for split in ("train", "valid", "test"):
        assert torch.equal(a.split(split), b.split(split)), split
    assert a.metadata() == b.metadata()
    for edge_type in a.edge_types:
        assert torch.equal(a[edge_type].edge_index, b[edge_type].edge_index), edge_type
    assert list(a["entity"].keys()) == list(b["entity"].keys())
    for key, value in a["entity"].items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["entity"][key])), key
    assert a.extras.keys() == b.extras.keys()


# ----------------------------------------------------------------------------- layout
def test_layout_follows_pyg_conventions():
    kg = _kg()
    assert isinstance(kg, MultiModalKG) and kg.validate()
    assert kg.metadata() == (["entity"], [("entity", f"r{i}", "entity") for i in range(R)])
    assert kg["entity"].num_nodes == kg.num_nodes == N
    # Features, masks, lengths live on the entity node store; the views read and write it.
    assert kg.modalities == ["image", "tokens"]
    assert kg["entity"].x_image is kg.features["image"]
    assert kg["entity"].mask_image is kg.masks["image"] and not kg.masks["image"][3]
    assert kg["entity"].x_image[3].abs().sum() == 0  # absent row zeroed
    assert kg["entity"].length_tokens.tolist() == [4] * N and list(kg.lengths) == ["tokens"]
    assert "image" not in kg.lengths
    # Edge types hold the training edges of their relation in file order; r3 has none.
    for r in range(R):
        rows = kg.train[kg.train[:, 1] == r]
        assert torch.equal(kg["entity", f"r{r}", "entity"].edge_index, rows[:, [0, 2]].t())
    assert kg["entity", "r3", "entity"].edge_index.shape == (2, 0)
    assert _triples(kg) == {tuple(t) for t in kg.train.tolist()}
    # PyG's homogeneous view has the same typed edges.
    data = kg.to_homogeneous()
    homo = {(int(a), int(r), int(b)) for (a, b), r in zip(data.edge_index.t(), data.edge_type,
                                                          strict=True)}
    assert homo == {tuple(t) for t in kg.train.tolist()}
    assert repr(kg) == ("MultiModalKG(toy, entities=30, relations=4, train=120, valid=20, "
                        "test=20, features=[image=(5,), tokens=(6, 2)], texts=[name])")


def test_relation_count_and_inverse_graph():
    assert relation_count(237, True) == 474 and relation_count(237, False) == 237
    with pytest.raises(ValueError, match="num_relations must be >= 0"):
        relation_count(-1, True)
    kg = _kg()
    edge_index, edge_type = kg.train_graph(add_inverse=True)
    assert int(edge_type.max()) < relation_count(R, True) == len(kg.relation_vocabulary(True))
    e = len(kg.train)
    assert torch.equal(edge_index[:, e:], edge_index[:, :e].flip(0))
    assert torch.equal(edge_type[e:], edge_type[:e] + R)
    assert kg.relation_vocabulary(True)[R + 2] == "r2^-1"
    assert kg.relation_vocabulary() == kg.relation_names


def test_constructor_errors():
    with pytest.raises(ValueError, match="relation 'r' occurs twice"):
        MultiModalKG(["a"], ["r", "r"], [[0, 0, 0]], [], [])
    with pytest.raises(ValueError, match=r"train triple #0 \[0, 2, 0\] has relation id 2"):
        MultiModalKG(["a"], ["r"], [[0, 2, 0]], [], [])
    with pytest.raises(TypeError, match="needs entity_names, relation_names, train"):
        MultiModalKG(["a"], ["r"])
    assert MultiModalKG().node_types == []  # PyG's internals build empty instances


# ------------------------------------------------------------------ PyG's operations
def test_to_device_keeps_non_tensor_attributes():
    kg = _kg()
    kg.filter_index()
    moved = copy.copy(kg).to("meta")  # a real device change that needs no accelerator
    assert moved["entity"].x_image.device.type == "meta" and moved.train.device.type == "meta"
    assert all(moved[t].edge_index.device.type == "meta" for t in moved.edge_types)
    assert moved.entity_names == kg.entity_names and moved.texts == kg.texts
    assert moved.quirks == kg.quirks and moved.name == "toy"
    assert kg.train.device.type == "cpu"  # the copy moved, not the original
    assert "_filters" not in kg._global_store and "_filters" not in kg.keys()


def test_copy_deepcopy_and_feature_assignment():
    kg = _kg()
    shallow = copy.copy(kg)
    shallow.features = {"image": torch.ones(N, 5), "tokens": kg.features["tokens"]}
    assert kg.features["image"][0].sum() != 5 and shallow.features["image"][0].sum() == 5
    shallow.masks["image"] = torch.zeros(N, dtype=torch.bool)
    assert kg.masks["image"].sum() == N - 1
    deep = copy.deepcopy(kg)
    deep["entity"].x_image.add_(1)
    deep.texts["name"][0] = "changed"
    assert not torch.equal(deep.features["image"], kg.features["image"])
    assert kg.texts["name"][0] == "entity 0"
    del shallow.features["tokens"]
    assert shallow.modalities == ["image"] and kg.modalities == ["image", "tokens"]


def test_save_load_round_trip_without_filter_cache():
    kg = _kg()
    before = io.BytesIO()
    torch.save(kg, before)
    kg.filter_index(), kg.filter_index(("train",))
    after = io.BytesIO()
    torch.save(kg, after)
    assert len(after.getvalue()) == len(before.getvalue())  # the filters are not written
    after.seek(0)
    loaded = torch.load(after, weights_only=False)
    _assert_same_kg(loaded, kg)
    assert loaded.filter_index().contains(kg.valid).all()


def test_filter_cache_follows_the_splits():
    kg = _kg()
    index = kg.filter_index(("train",))
    assert kg.filter_index(("train",)) is index and not index.contains(kg.valid).any()
    other = copy.copy(kg)
    other.train = torch.cat([kg.train, kg.valid])  # rebuilds the edge types too
    assert other.filter_index(("train",)).contains(kg.valid).all()
    assert _triples(other) == {tuple(t) for t in other.train.tolist()}
    assert kg.filter_index(("train",)) is index  # the original is untouched
    assert _triples(kg) == {tuple(t) for t in kg.train.tolist()}


# ------------------------------------------------------------ a transform and a loader
def test_to_undirected_on_the_training_graph():
    kg = _kg()
    und = T.ToUndirected()(copy.copy(kg))
    for r in range(R):
        rows = kg.train[kg.train[:, 1] == r]
        want = {(h, t) for h, _, t in rows.tolist()} | {(t, h) for h, _, t in rows.tolist()}
        got = und["entity", f"r{r}", "entity"].edge_index.t().tolist()
        assert len(got) == len(want) and set(map(tuple, got)) == want
    assert _triples(kg) == {tuple(t) for t in kg.train.tolist()}  # kg itself unchanged
    assert und.is_undirected() and not kg.is_undirected()


def test_random_node_loader_samples_induced_training_subgraphs():
    kg = copy.copy(_kg())
    kg["entity"].n_id = torch.arange(N)
    train = {tuple(t) for t in kg.train.tolist()}
    held_out = {tuple(t) for t in torch.cat([kg.valid, kg.test]).tolist()}
    seen = []
    for batch in RandomNodeLoader(kg, num_parts=3, shuffle=True):
        n_id = batch["entity"].n_id
        seen += n_id.tolist()
        assert torch.equal(batch["entity"].x_image, kg.features["image"][n_id])
        assert torch.equal(batch["entity"].mask_image, kg.masks["image"][n_id])
        members = set(n_id.tolist())
        got = set()
        for r, name in enumerate(kg.relation_names):
            h, t = n_id[batch["entity", name, "entity"].edge_index]
            got |= {(a, r, b) for a, b in zip(h.tolist(), t.tolist(), strict=True)}
        assert got == {t for t in train if t[0] in members and t[2] in members}
        assert not got & held_out
    assert sorted(seen) == list(range(N))


# --------------------------------------------------------------- K3M's product graph
def test_holds_a_product_graph():
    # Items as entities with integer token-id streams, value nodes, item-property-value edges.
    n = 4
    title = torch.tensor([[101, 5, 6, 102, 0, 0], [101, 102, 0, 0, 0, 0],
                          [101, 7, 102, 0, 0, 0], [101, 8, 9, 10, 11, 102]])
    title_mask = torch.tensor([True, False, True, True])
    kg = MultiModalKG([f"item{i}" for i in range(n)], [], [], [], [], name="products")
    kg.add_modality("title", title, title_mask, torch.tensor([4, 2, 3, 6]))
    kg["value"].num_nodes = 3
    kg["entity", "property", "value"].edge_index = torch.tensor([[0, 0, 2, 3], [0, 1, 1, 2]])
    kg["entity", "property", "value"].edge_type = torch.tensor([0, 1, 1, 0])
    kg["entity"].y = torch.tensor([0, 1, 1, 0])
    kg.property_names = ["colour", "size"]
    assert kg.validate() and kg.modalities == ["title"]
    assert torch.equal(kg.features["title"], title)  # integer rows kept, absent one included
    assert kg.lengths["title"].tolist() == [4, 0, 3, 6]  # absent: 0
    assert kg.metadata() == (["entity", "value"], [("entity", "property", "value")])
    buffer = io.BytesIO()
    torch.save(kg, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    _assert_same_kg(loaded, kg)
    assert loaded.property_names == ["colour", "size"]
    with pytest.raises(ValueError, match=r"1 <= length <= 6 for present entities; 1 entries"):
        kg.add_modality("title", title, title_mask, torch.tensor([4, 2, 0, 6]))
    with pytest.raises(ValueError, match=r"\(N, L\) \(integer token ids\) with N = 4 entities, "
                                         r"got \(4, 6, 1\) torch.int64"):
        kg.add_modality("bad", title[..., None])


# ------------------------------------------------------------------- processed cache
@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MMGNN_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_cached_load_equals_fresh_parse(data_root, cache_env, monkeypatch):
    first = load_dataset("Nations", data_root)
    files = list(processed_dir().glob("*.pt"))
    assert [f.name for f in files] == [processed_path(get_spec("Nations"), data_root,
                                                      drop_duplicates=False,
                                                      add_side_info=True).name]
    fresh = load_dataset("Nations", data_root, force_reload=True)

    def no_parsing(*args, **kwargs):
        raise AssertionError("a cached load parsed the raw files")

    monkeypatch.setattr(datasets, "_process", no_parsing)
    cached = load_dataset("Nations", data_root)
    _assert_same_kg(cached, fresh)
    _assert_same_kg(cached, first)
    assert cached.extras["numeric"].names == ["area", "population"]
    assert torch.equal(cached.extras["numeric"].raw, fresh.extras["numeric"].raw)
    with pytest.raises(AssertionError, match="parsed the raw files"):  # other options: no hit
        load_dataset("Nations", data_root, add_side_info=False)


def test_changed_raw_file_reprocesses_and_warns_again(data_root, cache_env):
    root = cache_env / "root"
    shutil.copytree(data_root / "Nations-literal", root / "Nations-literal")
    kg = load_dataset("Nations", root)
    old = set(processed_dir().glob("*.pt"))
    train = root / "Nations-literal" / "train.txt"
    first_line = train.read_text().splitlines()[0]
    with open(train, "a") as f:
        f.write(first_line + "\n")
    stat = train.stat()
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.warns(DatasetQuirkWarning, match="train has 1 duplicate rows"):
        changed = load_dataset("Nations", root)
    assert len(changed.train) == len(kg.train) + 1
    new = set(processed_dir().glob("*.pt"))
    assert len(new) == 1 and not new & old  # the stale entry is replaced
    with pytest.warns(DatasetQuirkWarning, match="train has 1 duplicate rows"):  # cached
        again = load_dataset("Nations", root)
    _assert_same_kg(again, changed)


def test_corrupt_cache_is_reprocessed_with_a_warning(data_root, cache_env):
    kg = load_dataset("Nations", data_root)
    (path,) = processed_dir().glob("*.pt")
    path.write_bytes(b"not a torch file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = load_dataset("Nations", data_root)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert messages[0].startswith(f"{path}: unreadable processed dataset (")
    assert messages[0].endswith("); reprocessing")
    _assert_same_kg(again, kg)
    assert isinstance(torch.load(path, weights_only=False)["kg"], MultiModalKG)  # rewritten
