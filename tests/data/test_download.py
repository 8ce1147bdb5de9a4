"""Registry, checksum-verified download through a ``file://`` mirror, and :func:`verify`."""

from __future__ import annotations

import re
import shutil
import warnings

import pytest

from mmgnn.data import DatasetQuirkWarning, download_dataset, load_dataset, verify
from mmgnn.data.datasets import SPECS, find_local
from mmgnn.data.download import _parse_registry, registry, registry_entries, sha256sum


@pytest.fixture
def mirror_env(data_root, tmp_path, monkeypatch):
    """``MMGNN_MIRROR`` = the shared data as ``file://``; nothing else to find the data by."""
    monkeypatch.setenv("MMGNN_MIRROR", data_root.as_uri())
    monkeypatch.delenv("MMGNN_DATA", raising=False)
    monkeypatch.setenv("MMGNN_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_registry_matches_shared_checksums(data_root):
    sums = {}
    for line in (data_root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(None, 1)
        sums[name.removeprefix("./")] = digest
    entries = registry()
    assert {f"{e.dataset}/{e.file}" for e in entries} == set(sums) - {
        "README.md", "PROVENANCE.tsv", "SHA256SUMS"}
    for e in entries:
        assert e.sha256 == sums[f"{e.dataset}/{e.file}"]
        assert e.bytes == (data_root / e.dataset / e.file).stat().st_size
        assert re.fullmatch(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/.+",
                            e.url), e.url  # pinned to a commit
    for spec in SPECS:  # everything a loader reads can be downloaded
        for path in spec.required_files():
            folder, file = path.split("/", 1)
            assert registry_entries(folder, [file])


def test_registry_parser_names_line():
    with pytest.raises(ValueError, match=r"reg.tsv line 2: expected 'dataset file url sha256"):
        _parse_registry("dataset\tfile\turl\tsha256\tbytes\nDB15K\tx\tu\tnothex\t3\n", "reg.tsv")


def test_download_from_file_mirror(data_root, mirror_env):
    root = mirror_env / "root"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetQuirkWarning)
        kg = load_dataset("Nations", root, download=True)
    assert (kg.num_entities, len(kg.train)) == (14, 1592) and "numeric" in kg.features
    for name in ("train.txt", "valid.txt", "test.txt", "literals.txt"):
        assert (root / "Nations-literal" / name).read_bytes() == \
            (data_root / "Nations-literal" / name).read_bytes()
    assert not list(root.rglob("*.part"))
    assert len(verify("Nations", root)) == 4
    assert find_local("Nations", root) == root


def test_download_fetches_files_of_other_folders(data_root, mirror_env):
    # WN18-IMG reads its texts from WN18RR/wordnet_entity2text.txt.
    root = mirror_env / "root"
    kg = load_dataset("WN18-IMG", root)
    assert (root / "WN18RR" / "wordnet_entity2text.txt").is_file()
    assert not (root / "WN18RR" / "train.txt").exists()  # only the file needed
    assert kg.texts["name"][kg.entity_names.index("14854262")] == "stool"


def test_corrupted_mirror_file_is_rejected(data_root, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    shutil.copytree(data_root / "Nations-literal", mirror / "Nations-literal")
    with open(mirror / "Nations-literal" / "literals.txt", "a") as f:
        f.write("usa\tarea\t1\n")
    monkeypatch.setenv("MMGNN_MIRROR", str(mirror))  # a plain folder works too
    root = tmp_path / "root"
    entry = registry_entries("Nations-literal", ["literals.txt"])[0]
    actual = sha256sum(mirror / "Nations-literal" / "literals.txt")
    url = (mirror / "Nations-literal" / "literals.txt").as_uri()
    with pytest.raises(ValueError, match=re.escape(f"{url}: SHA-256 mismatch: expected "
                                                   f"{entry.sha256}, got {actual}")):
        download_dataset("Nations", root, progress=False)
    assert not (root / "Nations-literal" / "literals.txt").exists()
    assert not list(root.rglob("*.part"))


def test_missing_mirror_file_names_url(tmp_path, monkeypatch):
    monkeypatch.setenv("MMGNN_MIRROR", (tmp_path / "empty").as_uri())
    with pytest.raises(OSError, match=r"could not download file://.*/empty/Nations-literal/"):
        download_dataset("Nations-literal", tmp_path / "root", progress=False)


def test_local_files_are_trusted_until_verified(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MMGNN_MIRROR", (tmp_path / "no-mirror").as_uri())  # must not be used
    local = tmp_path / "root"
    shutil.copytree(data_root / "Nations-literal", local / "Nations-literal")
    (local / "Nations-literal" / "literals.txt").write_text("usa\tarea\t1\n")
    assert download_dataset("Nations", local, progress=False) == local / "Nations-literal"
    expected = registry_entries("Nations-literal", ["literals.txt"])[0].sha256
    problems = re.escape(f"{local / 'Nations-literal' / 'literals.txt'}: SHA-256 mismatch: "
                         f"expected {expected}")
    with pytest.raises(ValueError, match=r"1 of 4 files of Nations-literal fail verification"
                                         r"(?s:.*)" + problems):
        verify("Nations", local)
    (local / "Nations-literal" / "test.txt").unlink()
    with pytest.raises(ValueError, match=r"test\.txt: missing"):
        verify("Nations-literal", local)


def test_verify_shared_copy(data_root):
    assert len(verify("DB15K", data_root, files=["train2id.txt", "imf_split/val.txt"])) == 2
    with pytest.raises(ValueError, match="no files of dataset folder 'nope' in the registry"):
        registry_entries("nope")
