"""Precomputed feature files: row order, names, masks, and the errors users will meet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgnn.data import MultiModalKG
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
    with pytest.raises(ValueError, match=r"f\.npy: NaN or infinite values in 1 rows.*\[1\]"):
        PrecomputedModality(tmp_path / "f.npy").build(_kg(), cache=False)
    feats = PrecomputedModality(tmp_path / "f.npy", missing="nan").build(_kg(), cache=False)
    assert feats.mask.tolist() == [True, False, True, True, True]
    np.save(tmp_path / "z.npy", np.nan_to_num(x))
    feats = PrecomputedModality(tmp_path / "z.npy", missing="zero").build(_kg(), cache=False)
    assert feats.mask.tolist() == [True, False, False, True, True]


def test_wrong_row_count_names_file_and_expectation(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"f\.npy: 4 rows, expected one per entity of the "
                                         r"graph \(5\)"):
        PrecomputedModality(tmp_path / "f.npy").build(_kg(), cache=False)
    torch.save({"emb": torch.zeros(5, 2)}, tmp_path / "d.pt")
    with pytest.raises(ValueError, match=r"d\.pt: expected the features under one of"):
        PrecomputedModality(tmp_path / "d.pt").build(_kg(), cache=False)
    (tmp_path / "f.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unknown feature file type"):
        PrecomputedModality(tmp_path / "f.csv").build(_kg(), cache=False)
