"""Precomputed feature files: row order, names, masks, and the errors users will meet."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mmgnn.data import DataFormatError, MultiModalKG
from mmgnn.modalities import PrecomputedModality


def _kg(n=5):
    empty = torch.zeros(0, 3, dtype=torch.long)
    return MultiModalKG([f"e{i}" for i in range(n)], ["r"], empty, empty, empty, name="pre")


def test_npy_rows_are_entities(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.save(tmp_path / "f.npy", x)
    feats = PrecomputedModality(tmp_path / "f.npy", name="image").build(_kg(), cache=False)
    torch.testing.assert_close(feats.x, torch.from_numpy(x))
    assert feats.mask.all()


def test_pt_dict_matched_by_name_with_mask(tmp_path):
    x = torch.arange(12, dtype=torch.float32).view(4, 3)
    names = ["e3", "e0", "zzz", "e1"]
    torch.save({"x": x, "mask": torch.tensor([True, True, True, False]),
                "entity_names": names}, tmp_path / "f.pt")
    with pytest.warns(UserWarning, match=r"f\.pt: ignored 1 of 4 rows .*'zzz'"):
        feats = PrecomputedModality(tmp_path / "f.pt").build(_kg(), cache=False)
    assert feats.mask.tolist() == [True, False, False, True, False]
    torch.testing.assert_close(feats.x[0], x[1])
    torch.testing.assert_close(feats.x[3], x[0])
    assert feats.x[1].abs().sum() == 0 and feats.info["rows_not_in_graph"] == 1


def test_sequences_get_lengths(tmp_path):
    torch.save(torch.ones(5, 4, 2), tmp_path / "s.pt")
    feats = PrecomputedModality(tmp_path / "s.pt").build(_kg(), cache=False)
    assert feats.lengths.tolist() == [4] * 5


def test_missing_rows_marked_in_the_data(tmp_path):
    x = np.ones((5, 2), dtype=np.float32)
    x[1] = np.nan
    x[2] = 0
    np.save(tmp_path / "f.npy", x)
    with pytest.raises(ValueError, match=r"f\.npy: expected finite values.*NaN or infinite "
                                         r"values in 1 rows.*\[1\]"):
        PrecomputedModality(tmp_path / "f.npy").build(_kg(), cache=False)
    feats = PrecomputedModality(tmp_path / "f.npy", missing="nan").build(_kg(), cache=False)
    assert feats.mask.tolist() == [True, False, True, True, True]
    np.save(tmp_path / "z.npy", np.nan_to_num(x))
    feats = PrecomputedModality(tmp_path / "z.npy", missing="zero").build(_kg(), cache=False)
    assert feats.mask.tolist() == [True, False, False, True, True]


def test_wrong_row_count_names_file_and_expectation(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(DataFormatError, match=r"f\.npy: expected one row per entity of the "
                                              r"graph \(5\), got 4 rows"):
        PrecomputedModality(tmp_path / "f.npy").build(_kg(), cache=False)
    torch.save({"emb": torch.zeros(5, 2)}, tmp_path / "d.pt")
    with pytest.raises(ValueError, match=r"d\.pt: expected the features under one of"):
        PrecomputedModality(tmp_path / "d.pt").build(_kg(), cache=False)
    (tmp_path / "f.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unknown feature file type"):
        PrecomputedModality(tmp_path / "f.csv").build(_kg(), cache=False)


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _write_bytes(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make,fragment", [
    (lambda p: np.save(p / "f.npy", np.float32(3.0)) or p / "f.npy",
     r"shape \(N, d\).*got shape \(\)"),
    (lambda p: np.save(p / "f.npy", np.array(["a", "b"])) or p / "f.npy", "floating-point"),
    (lambda p: np.save(p / "f.npy", np.ones((5, 2), np.int64)) or p / "f.npy", "floating-point"),
    (lambda p: np.save(p / "f.npy", np.full((5, 2), 1e39)) or p / "f.npy", "fit float32"),
    (lambda p: _write_bytes(p / "f.npz", _write_npz(p / "g.npz", x=np.ones((5, 2), np.float32))
                            .read_bytes()[:100]), r"readable \.npz.*BadZipFile"),
    (lambda p: _write_bytes(p / "f.pt", b"\x80\x02not a torch file"),
     r"readable \.pt.*UnpicklingError"),
    (lambda p: torch.save({"x": torch.ones(3, 2), "entity_names": ["e0", "e1", "e0"]},
                          p / "f.pt") or p / "f.pt", "distinct entity_names.*'e0' at rows 0 and 2"),
    (lambda p: torch.save({"x": torch.ones(5, 2), "mask": torch.tensor([1, 0, float("nan"), 1, 1])},
                          p / "f.pt") or p / "f.pt", "0/1 mask.*row 2"),
    (lambda p: _write_npz(p / "f.npz", x=np.ones((3, 2), np.float32),
                          entity_names=np.arange(3)), "entity_names as strings.*int 0 at row 0"),
    (lambda p: torch.save({"x": torch.ones(2, 2), "entity_names": ["e0 ", "e1"]}, p / "f.pt")
     or p / "f.pt", "without leading or trailing whitespace"),
    (lambda p: torch.save({"x": torch.ones(2, 2), "entity_names": ["a", "b"]}, p / "f.pt")
     or p / "f.pt", "that name entities of the graph"),
    (lambda p: torch.save({"emb": torch.ones(5, 2), 3: 4}, p / "f.pt") or p / "f.pt",
     "features under one of"),
])
def test_malformed_feature_files_are_data_format_errors(tmp_path, make, fragment):
    path = make(tmp_path)
    pattern = f"{re.escape(str(path))}: expected (?s:.*){fragment}"
    with pytest.raises(DataFormatError, match=pattern):
        PrecomputedModality(path).build(_kg(), cache=False)


def test_float_and_integer_masks_of_zeros_and_ones_are_masks(tmp_path):
    x = torch.arange(10, dtype=torch.float64).view(5, 2)
    for mask in (torch.tensor([1.0, 0, 1, 1, 0]), np.array([1, 0, 1, 1, 0], np.uint8)):
        torch.save({"x": x, "mask": torch.as_tensor(mask)}, tmp_path / "f.pt")
        feats = PrecomputedModality(tmp_path / "f.pt").build(_kg(), cache=False)
        assert feats.mask.tolist() == [True, False, True, True, False]
        assert feats.x.tolist() == [[0, 1], [0, 0], [4, 5], [6, 7], [0, 0]]
