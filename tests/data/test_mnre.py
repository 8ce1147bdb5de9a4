"""MNRE reader: rows as written, spans checked, clear errors naming file and line, the real
files' sizes and label set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from mmgnn.data.mnre import NO_RELATION, load_mnre, read_mnre, task_folder

ROW = ("{'token': ['Bill', 'Cosby', 'at', 'Hollywood'], 'h': {'name': 'Bill Cosby', "
       "'pos': [0, 2]}, 't': {'name': 'Hollywood', 'pos': [3, 4]}, 'img_id': 'a.jpg', "
       "'relation': '/per/loc/present_in'}")


def write(tmp_path: Path, text: str, name: str = "mnre_train.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def raises_at(path: Path, line: int, fragment: str):
    return pytest.raises(ValueError, match=re.escape(f"{path} line {line}: expected") +
                         "(?s:.*)" + re.escape(fragment))


def test_reads_rows(tmp_path):
    other = ROW.replace("/per/loc/present_in", "None").replace("a.jpg", "b.jpg")
    data = read_mnre(write(tmp_path, ROW + "\n" + other + "\n\n"))
    assert len(data) == 2
    assert data.tokens[0] == ["Bill", "Cosby", "at", "Hollywood"]
    assert data.head.tolist() == [[0, 2], [0, 2]] and data.tail.tolist() == [[3, 4], [3, 4]]
    assert data.labels == ["/per/loc/present_in", "None"]  # sorted
    assert data.y.tolist() == [0, 1] and data.images == ["a.jpg", "b.jpg"]
    assert data.negative == NO_RELATION
    sub = data.subset(torch.tensor([1]))
    assert sub.y.tolist() == [1] and sub.images == ["b.jpg"] and sub.labels == data.labels


@pytest.mark.parametrize("row, fragment", [
    ("{'token': ['a']", "a Python dict literal"),
    ("[1, 2]", "a Python dict literal"),
    (ROW.replace("'img_id': 'a.jpg', ", ""), "missing img_id"),
    (ROW.replace("'pos': [3, 4]", "'pos': [3, 9]"), "0 <= start < end <= 4"),
    (ROW.replace("'pos': [3, 4]", "'pos': [4, 4]"), "'t': {'name': ..., 'pos'"),
    (ROW.replace("'pos': [0, 2]", "'pos': '0 2'"), "'h': {'name': ..., 'pos'"),
    (ROW.replace("'Cosby'", "''"), "'token': a non-empty list"),
    (ROW.replace("'relation': '/per/loc/present_in'", "'relation': ''"), "'relation'"),
])
def test_bad_row_names_file_and_line(tmp_path, row, fragment):
    path = write(tmp_path, ROW + "\n" + row + "\n")
    with raises_at(path, 2, fragment):
        read_mnre(path)


def test_unknown_relation_against_training_labels(tmp_path):
    path = write(tmp_path, ROW + "\n", "mnre_test.txt")
    with raises_at(path, 1, "a relation of the training labels"):
        read_mnre(path, labels=["None", "/per/per/peer"])


def test_overlapping_spans_are_kept(tmp_path):
    # MNRE v2 has nested head / tail spans (59 training lines); they are data, not errors
    data = read_mnre(write(tmp_path, ROW.replace("'pos': [3, 4]", "'pos': [1, 2]") + "\n"))
    assert data.tail.tolist() == [[1, 2]]


def test_folder_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("MMGNN_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="MNRE: no such folder"):
        task_folder("MNRE", tmp_path)
    (tmp_path / "MNRE").mkdir()
    write(tmp_path / "MNRE", ROW + "\n")
    with pytest.raises(FileNotFoundError, match=re.escape("mnre_val.txt or mnre_val .txt")):
        load_mnre("MNRE", tmp_path)


def test_real_mnre(data_root):
    if not (data_root / "MNRE").is_dir():
        pytest.skip(f"no MNRE under {data_root}")
    splits = load_mnre("MNRE", data_root)
    assert {k: len(v) for k, v in splits.items()} == {"train": 12247, "valid": 1624,
                                                      "test": 1614}
    assert len(splits["train"].labels) == 23 and "None" in splits["train"].labels
    assert all(s.labels == splits["train"].labels for s in splits.values())
