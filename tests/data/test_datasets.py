"""The real benchmarks (``data_root``): statistics, orders, quirks, side information, paths."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch

from mmgnn.data import DatasetQuirkWarning, detect_format, list_datasets, load_dataset
from mmgnn.data.datasets import dataset_statistics, dataset_table, get_spec

pytestmark = pytest.mark.slow

# The statistics table of ../shared/datasets/README.md, written out independently of the code.
README = {
    "FB15k-237": (14541, 237, 272115, 17535, 20466),
    "DB15K": (12842, 279, 79222, 9904, 9902),
    "MKG-W": (15000, 169, 34196, 4276, 4274),
    "TIVA": (11858, 16, 20071, 2000, 2000),
    "KVC16K": (16015, 4, 180190, 22523, 22525),
    "WN18RR": (40943, 11, 86835, 3034, 3134),
    "WN18-IMG": (40943, 18, 141442, 5000, 5000),
    "Nations": (14, 55, 1592, 199, 201),
}


@pytest.fixture(scope="module")
def load(data_root):
    """Loads each (dataset, options) at most once per module."""
    cache = {}

    def get(name: str, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DatasetQuirkWarning)
                cache[key] = load_dataset(name, data_root, download=False, **kwargs)
        return cache[key]

    return get


def raw_rows(path: Path) -> list[list[str]]:
    """Rows of a file split on whitespace, without the OpenKE count line."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [line.split() for line in lines[1:]]


def name_triples(kg, split: str) -> list[tuple[str, str, str]]:
    e, r = kg.entity_names, kg.relation_names
    return [(e[h], r[rel], e[t]) for h, rel, t in kg.split(split).tolist()]


@pytest.mark.parametrize("name", list(README))
def test_statistics_equal_readme(load, name):
    kg = load(name)
    stats = (kg.num_entities, kg.num_relations, len(kg.train), len(kg.valid), len(kg.test))
    assert stats == README[name]
    assert get_spec(name).expected == README[name]


def test_published_statistics_table(load, data_root):
    rows = {r["dataset"]: r for r in dataset_statistics(data_root, load=False)}
    assert list(rows) == list_datasets()
    for name, stats in README.items():
        row = rows[name]
        assert tuple(row[k] for k in ("entities", "relations", "train", "valid", "test")) == stats
        assert rows[name]["local"] == str(data_root)
    imf = load("DB15K-IMF")
    assert get_spec("DB15K-IMF").expected == (
        imf.num_entities, imf.num_relations, len(imf.train), len(imf.valid), len(imf.test))
    table = dataset_table(data_root, load=False)
    assert "FB15k-237" in table and "272,115" in table and "text:description" in table


def test_db15k_htr_on_disk_becomes_hrt(load, data_root):
    kg = load("DB15K")
    rows = raw_rows(data_root / "DB15K" / "train2id.txt")
    for i in (0, 1, 2, 1000, len(rows) - 1):
        h, t, r = map(int, rows[i])  # OpenKE: head tail relation
        assert kg.train[i].tolist() == [h, r, t]


def test_db15k_id_split_equals_its_ntriples_release(load, data_root):
    kg = load("DB15K")
    for split, file in (("valid", "valid.txt"), ("test", "test.txt")):
        lines = (data_root / "DB15K" / file).read_text(encoding="utf-8").splitlines()
        expected = [tuple(line.split(" ")[:3]) for line in lines if line.strip()]
        assert name_triples(kg, split) == expected


def test_db15k_quirks_and_single_warning(data_root):
    with pytest.warns(DatasetQuirkWarning) as record:
        kg = load_dataset("DB15K", data_root, download=False)
    quirk_warnings = [w for w in record if w.category is DatasetQuirkWarning]
    assert len(quirk_warnings) == 1
    message = str(quirk_warnings[0].message)
    assert "2,423 duplicate rows" in message and "6,584 distinct valid triples" in message
    assert "drop_duplicates=True" in message
    assert kg.quirks["duplicates_valid"] == 2423
    assert kg.quirks["valid_in_train"] == 6584
    assert "duplicates_test" not in kg.quirks and "test_in_train" not in kg.quirks  # clean
    assert len(kg.valid) == 9904  # kept as released


def reference_quirks(kg) -> dict[str, int]:
    """Brute force over Python tuples."""
    rows = {s: [tuple(x) for x in kg.split(s).tolist()] for s in ("train", "valid", "test")}
    sets = {s: set(v) for s, v in rows.items()}
    out = {f"duplicates_{s}": len(rows[s]) - len(sets[s]) for s in rows}
    out["valid_in_train"] = len(sets["valid"] & sets["train"])
    out["test_in_train"] = len(sets["test"] & sets["train"])
    out["test_rows_in_train"] = sum(x in sets["train"] for x in rows["test"])
    return out


@pytest.mark.parametrize("name,expected", [
    ("TIVA", {"duplicates_train": 8419, "valid_in_train": 1675, "test_in_train": 1664}),
    ("KVC16K", {"duplicates_train": 171}),
    ("DB15K", {"duplicates_valid": 2423, "valid_in_train": 6584}),
])
def test_quirk_counts(load, name, expected):
    kg = load(name)
    for key, value in expected.items():
        assert kg.quirks[key] == value
    for key, value in reference_quirks(kg).items():
        assert kg.quirks.get(key, 0) == value, key


@pytest.mark.parametrize("name", ["DB15K", "TIVA"])
def test_drop_duplicates(load, data_root, name):
    released = load(name)
    dropped = r"Dropped .*[\d,]+ valid rows \(repeated or in train\)"
    with pytest.warns(DatasetQuirkWarning, match=dropped):
        kg = load_dataset(name, data_root, download=False, drop_duplicates=True)
    train = [tuple(x) for x in released.train.tolist()]
    seen: set = set()
    expected_train = [x for x in train if not (x in seen or seen.add(x))]
    assert [tuple(x) for x in kg.train.tolist()] == expected_train
    train_set = set(expected_train)
    for split in ("valid", "test"):
        seen = set()
        expected = [x for x in map(tuple, released.split(split).tolist())
                    if x not in train_set and not (x in seen or seen.add(x))]
        assert [tuple(x) for x in kg.split(split).tolist()] == expected
        assert kg.quirks.get(f"dropped_{split}", 0) == len(released.split(split)) - len(expected)
    assert kg.quirks["duplicates_valid"] == released.quirks["duplicates_valid"]  # as released
    if name == "DB15K":
        assert len(kg.valid) == 897  # 9,904 rows, 7,481 distinct, 6,584 of them in train


def test_db15k_imf_split(load, data_root):
    kg = load("DB15K-IMF")
    imf = data_root / "DB15K" / "imf_split"
    for split, file in (("valid", "val.txt"), ("test", "test.txt")):
        lines = (imf / file).read_text(encoding="utf-8").splitlines()
        assert name_triples(kg, split) == [tuple(x.split(" ")[:3]) for x in lines if x.strip()]
    # Its own vocabulary: entity2id.txt has no count line; line i holds id i here.
    first = (imf / "entity2id.txt").read_text(encoding="utf-8").splitlines()[0]
    assert kg.entity_names[0] == first.rsplit(None, 1)[0]
    db15k = load("DB15K")
    every = {t for s in ("train", "valid", "test") for t in name_triples(db15k, s)}
    held_out = set(name_triples(kg, "valid")) | set(name_triples(kg, "test"))
    train = name_triples(kg, "train")
    assert len(train) == len(set(train)) == len(every - held_out)
    assert set(train) == every - held_out
    assert kg.quirks["test_in_valid"] == len(set(name_triples(kg, "valid"))
                                             & set(name_triples(kg, "test")))
    assert kg.texts["name"][kg.entity_names.index("<http://dbpedia.org/resource/Rivers_Cuomo>")] \
        == "Rivers Cuomo"


def test_fb15k237_side_information(load, data_root):
    kg = load("FB15k-237")
    idx = {n: i for i, n in enumerate(kg.entity_names)}
    assert kg.texts["name"][idx["/m/06rf7"]] == "Schleswig-Holstein"
    assert kg.texts["label"][idx["/m/010016"]] == "Denton"
    assert kg.texts["description"][idx["/m/010016"]] == "city in Texas, United States"
    coverage = {k: sum(v is not None for v in kg.texts[k]) for k in kg.texts}
    assert coverage == {"name": 14541, "label": 14515, "description": 13666}
    numeric = kg.extras["numeric"]
    assert kg.features["numeric"].shape == (14541, 116) and len(numeric.names) == 116
    assert int(kg.masks["numeric"].sum()) == 12402
    assert kg.quirks["numeric_rows_skipped"] == 148
    assert kg.quirks["entity2text_rows_skipped"] == 410
    # Min-max of one attribute over the entities of FB15k-237 that have it, from the raw file.
    attribute = "<http://rdf.freebase.com/ns/location.geocode.longitude>"
    rows = [line.split("\t") for line in (data_root / "FB15k-237" / "numeric" /
            "FB15K_NumericalTriples.txt").read_text().splitlines()]
    values = {e: float(v) for e, a, v in rows if a == attribute and e in idx}
    lo, hi = min(values.values()), max(values.values())
    a = numeric.names.index(attribute)
    i = idx["/m/06rf7"]
    assert numeric.raw[i, a] == 9.70404945
    assert float(kg.features["numeric"][i, a]) == pytest.approx((9.70404945 - lo) / (hi - lo))
    assert int(numeric.mask[:, a].sum()) == len(values)


def test_names_of_2id_datasets(load, data_root):
    assert load("MKG-W").texts["name"][0] == "Q370252"
    tiva = load("TIVA")
    assert tiva.texts["name"] == tiva.entity_names and tiva.entity_names[1] == "organic compound"
    kvc = load("KVC16K")
    second = (data_root / "KVC16K" / "entity2id.txt").read_text(encoding="utf-8").split("\n")[1]
    assert second == kvc.entity_names[0] + "\t0"  # tab-separated Chinese names
    assert kvc.texts["name"] == kvc.entity_names
    assert load("DB15K").texts["name"][0] == "Anarchism"


def test_wordnet_texts(load):
    for name in ("WN18RR", "WN18-IMG"):
        kg = load(name)
        i = kg.entity_names.index("14854262")
        assert kg.texts["name"][i] == "stool"
        assert kg.texts["description"][i] == "solid excretory product evacuated from the bowels"
        assert all(v is not None for v in kg.texts["description"])


def test_nations_hetero_data(load):
    kg = load("Nations")
    counts = [kg["entity", r, "entity"].edge_index.size(1) for r in kg.relation_names]
    assert sum(counts) == len(kg.train) == 1592
    heads = kg.train[:, 0]
    r0 = kg.relation_names[0]
    assert torch.equal(kg["entity", r0, "entity"].edge_index[0], heads[kg.train[:, 1] == 0])
    assert kg["entity"].x_numeric.shape == (14, 2)
    assert int(kg["entity"].mask_numeric.sum()) == 13
    assert kg.extras["numeric"].names == ["area", "population"]


def test_name_resolution_and_errors(data_root, tmp_path, monkeypatch):
    for alias in ("fb15k_237", "WN18 IMG", "nations-literal", "Kuai16K", "db15k_imf"):
        assert get_spec(alias).name in list_datasets()
    with pytest.raises(ValueError, match="unknown dataset 'FB15k'; known: FB15k-237, DB15K"):
        get_spec("FB15k")
    with pytest.raises(FileNotFoundError, match="neither a known dataset"):
        load_dataset("no-such-thing")
    monkeypatch.delenv("MMGNN_DATA", raising=False)
    monkeypatch.setenv("MMGNN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"Nations: .*train\.txt.* not found under any of "
                                                r".*download=True"):
        load_dataset("Nations", tmp_path / "empty", download=False)


# ------------------------------------------------------------------------ user folders
def test_user_folder_tab_separated(tmp_path):
    (tmp_path / "train.txt").write_text("b\tr2\ta\na\tr1\tc\n")
    (tmp_path / "valid.txt").write_text("d\tr1\tb\n")
    (tmp_path / "test.txt").write_text("c\tr1\ta\n")
    assert detect_format(tmp_path) == "tsv"
    with pytest.warns(DatasetQuirkWarning, match="1 entity occurs in valid/test but never"):
        kg = load_dataset(tmp_path)
    assert kg.entity_names == ["b", "a", "c", "d"] and kg.name == tmp_path.name
    assert kg.valid.tolist() == [[3, 1, 0]]
    assert kg.quirks == {"entities_only_in_eval": 1}
    with pytest.warns(DatasetQuirkWarning):
        assert load_dataset(str(tmp_path)).entity_names == kg.entity_names


def test_user_folder_ntriples_with_val_txt(tmp_path):
    (tmp_path / "train.txt").write_text("<x:a> <x:r> <x:b> .\n<x:b> <x:r> <x:a> .\n")
    (tmp_path / "val.txt").write_text("<x:a> <x:r> <x:b> .\n")
    (tmp_path / "test.txt").write_text("<x:b> <x:r> <x:b> .\n")
    assert detect_format(tmp_path) == "ntriples"
    with pytest.warns(DatasetQuirkWarning, match="1 distinct valid triples also occur in train"):
        kg = load_dataset(tmp_path)
    assert kg.entity_names == ["<x:a>", "<x:b>"] and kg.test.tolist() == [[1, 0, 1]]


def test_user_folder_copy_of_real_2id_dataset(load, data_root, tmp_path):
    shutil.copytree(data_root / "TIVA", tmp_path / "mine")
    assert detect_format(tmp_path / "mine") == "2id"
    with pytest.warns(DatasetQuirkWarning, match="8,419 duplicate rows"):
        kg = load_dataset(tmp_path / "mine")
    tiva = load("TIVA")
    assert kg.entity_names == tiva.entity_names and torch.equal(kg.train, tiva.train)
    assert kg.texts == {}  # paths load without side information


def test_undetectable_folder_lists_found_and_expected(tmp_path):
    (tmp_path / "triples.csv").write_text("a,r,b\n")
    with pytest.raises(ValueError, match=r"cannot detect the format of .*found \['triples.csv'\]"
                                         r".*expected either the OpenKE files entity2id.txt"):
        load_dataset(tmp_path)
    (tmp_path / "train2id.txt").write_text("0\n")
    with pytest.raises(ValueError, match=r"lacks \['entity2id.txt', 'relation2id.txt', "
                                         r"'valid2id.txt', 'test2id.txt'\]"):
        detect_format(tmp_path)
    (tmp_path / "train2id.txt").unlink()
    (tmp_path / "train.txt").write_text("a,r,b\n")
    (tmp_path / "valid.txt").write_text("a,r,b\n")
    with pytest.raises(ValueError, match=r"lacks \['test.txt'\]"):
        detect_format(tmp_path)
    (tmp_path / "test.txt").write_text("a,r,b\n")
    with pytest.raises(ValueError, match=r"train.txt line 1: expected 'head<TAB>relation<TAB>"
                                         r"tail' or '<head> <relation> <tail> .', got 'a,r,b'"):
        detect_format(tmp_path)
