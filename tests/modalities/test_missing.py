"""Fill strategies for absent modalities against hand-written references."""

from __future__ import annotations

import pytest
import torch

from mmgnn.modalities import MissingModalityFill, fill_missing

X = torch.tensor([[1.0, 2.0], [3.0, 4.0], [9.0, 9.0], [5.0, 0.0]])
MASK = torch.tensor([True, True, False, True])


def test_zeros_and_mean():
    out = fill_missing(X, MASK, "zeros")
    assert out.tolist() == [[1, 2], [3, 4], [0, 0], [5, 0]]
    out = fill_missing(X, MASK, "mean")
    assert out.tolist() == [[1, 2], [3, 4], [3, 2], [5, 0]]  # mean of rows 0, 1, 3
    assert fill_missing(X, torch.zeros(4, dtype=torch.bool), "mean").abs().sum() == 0


def test_learned_placeholder_gets_gradient_only_from_absent_rows():
    fill = MissingModalityFill(2, "learned")
    out = fill(X, MASK)
    torch.testing.assert_close(out[2], fill.placeholder)
    torch.testing.assert_close(out[MASK], X[MASK])
    weights = torch.tensor([[1.0, 1.0], [1.0, 1.0], [2.0, 3.0], [1.0, 1.0]])
    (out * weights).sum().backward()
    assert fill.placeholder.grad.tolist() == [2.0, 3.0]
    before = fill.placeholder.detach().clone()
    fill.reset_parameters()
    assert not torch.equal(before, fill.placeholder)
    assert repr(fill) == "MissingModalityFill(2, strategy='learned')"


def test_sequences_and_errors():
    seq = torch.ones(3, 4, 2)
    mask = torch.tensor([True, False, True])
    placeholder = torch.tensor([7.0, 8.0])
    out = fill_missing(seq, mask, "learned", placeholder)
    assert (out[1] == placeholder).all() and (out[0] == 1).all()
    with pytest.raises(ValueError, match="fill strategy must be one of"):
        fill_missing(X, MASK, "median")
    with pytest.raises(ValueError, match="needs the placeholder"):
        fill_missing(X, MASK, "learned")
    assert MissingModalityFill(2, "zeros").placeholder is None
