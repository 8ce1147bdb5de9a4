"""Numeric features of Nations against the formulas applied to the raw file by hand."""

from __future__ import annotations

import re

import pytest
import torch

from mmgnn.data import DataFormatError, MultiModalKG, NumericAttributes, load_dataset
from mmgnn.modalities import NumericModality


@pytest.fixture(scope="module")
def nations(data_root):
    return load_dataset("Nations", root=data_root)


def _raw(data_root, kg):
    values = {}
    for line in (data_root / "Nations-literal" / "literals.txt").read_text().splitlines():
        entity, attribute, value = line.split("\t")
        values[entity, attribute] = float(value)
    return values


@pytest.mark.parametrize("normalization", ["minmax", "zscore", "none"])
def test_normalisations_match_hand_computation(data_root, nations, normalization):
    feats = NumericModality(normalization, with_mask=True).build(nations, cache=False)
    raw = _raw(data_root, nations)
    names = nations.extras["numeric"].names
    assert feats.x.shape == (nations.num_entities, 2 * len(names))
    for a, attribute in enumerate(names):
        col = {e: v for (e, att), v in raw.items() if att == attribute}
        vals = torch.tensor(list(col.values()), dtype=torch.float64)
        for e, v in col.items():
            i = nations.entity_names.index(e)
            if normalization == "minmax":
                expected = (v - vals.min()) / (vals.max() - vals.min())
            elif normalization == "zscore":
                expected = (v - vals.mean()) / vals.std(unbiased=False)
            else:
                expected = v
            assert feats.x[i, a].item() == pytest.approx(float(expected), rel=1e-5, abs=1e-6)
            assert feats.x[i, len(names) + a] == 1.0
    present = {e for e, _ in raw}
    assert feats.mask.tolist() == [e in present for e in nations.entity_names]
    assert feats.x[~feats.mask].abs().sum() == 0


def test_reads_a_file_and_errors_without_attributes(data_root, nations):
    bare = load_dataset("Nations", root=data_root, add_side_info=False)
    with pytest.raises(ValueError, match="no numeric attributes"):
        NumericModality().build(bare, cache=False)
    from_file = NumericModality(path=data_root / "Nations-literal" / "literals.txt")
    torch.testing.assert_close(from_file.build(bare, cache=False).x,
                               NumericModality().build(nations, cache=False).x)


def test_out_of_range_values_are_errors_naming_file_and_line(tmp_path, nations):
    # +-1.7e308 once overflowed min-max (NaN features) with no file or line in sight.
    first, second = nations.entity_names[:2]
    path = tmp_path / "literals.txt"
    path.write_text(f"{first}\tsize\t1.7e308\n{second}\tsize\t-1.7e308\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=re.escape(f"{path} line 1: expected a finite "
                                                        f"number as the value, not '1.7e308'")):
        NumericModality(path=path).build(nations, cache=False)


def test_hand_built_attributes_beyond_float32_are_errors():
    raw = torch.tensor([[1e300], [0.0]], dtype=torch.float64)
    mask = torch.ones(2, 1, dtype=torch.bool)
    attributes = NumericAttributes(raw.float(), mask, ["size"], raw, "none")
    kg = MultiModalKG(["a", "b"], ["r"], [[0, 0, 1]], torch.empty(0, 3), torch.empty(0, 3))
    kg.extras["numeric"] = attributes
    with pytest.raises(DataFormatError, match=r"fit float32 .*entities \[0\]"):
        NumericModality("none").build(kg, cache=False)
    minmax = NumericModality("minmax").build(kg, cache=False)  # scale-free: no overflow
    assert minmax.x.view(-1).tolist() == [1.0, 0.0]
