"""A folder of triples in one of the supported on-disk formats: detected, then read.

* OpenKE 2id: ``entity2id.txt``, ``relation2id.txt`` and ``{train,valid,test}2id.txt``;
* string triples ``train.txt``, ``valid.txt`` (or ``val.txt``), ``test.txt``, tab-separated or
  N-Triples-like ``<h> <r> <t> .``, with vocabularies built from the rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from mmgnn.data.parsing import PathLike, read_lines
from mmgnn.data.readers import (
    NTRIPLE,
    build_vocabulary,
    encode_triples,
    read_id_triples,
    read_id_vocab,
    read_ntriples,
    read_string_triples,
)

ID_FILES = ("entity2id.txt", "relation2id.txt", "train2id.txt", "valid2id.txt", "test2id.txt")
STRING_FILES = ("train.txt", "valid.txt", "test.txt")


def load_2id_folder(folder: Path, split_files: tuple[str, ...] = ID_FILES[2:],
              ) -> tuple[list[str], list[str], list[Tensor]]:
    """Vocabularies and split triples of an OpenKE 2id folder."""
    entities = read_id_vocab(folder / "entity2id.txt")
    relations = read_id_vocab(folder / "relation2id.txt")
    splits = [read_id_triples(folder / f, num_entities=len(entities),
                              num_relations=len(relations)) for f in split_files]
    return entities, relations, splits


def load_string_folder(paths: list[Path], reader: Callable[[Path], list[tuple[str, str, str]]],
                  ) -> tuple[list[str], list[str], list[Tensor]]:
    """Vocabularies (in order of first appearance) and split triples of string-triple files."""
    rows = [reader(p) for p in paths]
    entities, relations = build_vocabulary(*rows)
    e_idx = {n: i for i, n in enumerate(entities)}
    r_idx = {n: i for i, n in enumerate(relations)}
    return entities, relations, [encode_triples(r, e_idx, r_idx, source=p)
                                 for r, p in zip(rows, paths, strict=True)]


def detect_format(folder: PathLike) -> str:
    """The triple format of a user folder: ``2id``, ``tsv`` or ``ntriples``.

    ``2id`` needs ``entity2id.txt``, ``relation2id.txt``, ``train2id.txt``, ``valid2id.txt``
    and ``test2id.txt``. Otherwise ``train.txt``, ``valid.txt`` (or ``val.txt``) and
    ``test.txt`` hold string triples, tab-separated or N-Triples, told apart by the first line
    of ``train.txt``. Anything else raises a :class:`ValueError` listing the files found and
    the files expected.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder (expected a folder of triples)")
    found = sorted(p.name for p in folder.iterdir())
    expected = (f"expected either the OpenKE files {', '.join(ID_FILES)} or the string "
                f"triples train.txt, valid.txt (or val.txt), test.txt (tab-separated "
                f"'head relation tail' or N-Triples '<h> <r> <t> .')")
    if "train2id.txt" in found or "entity2id.txt" in found:
        missing = [f for f in ID_FILES if f not in found]
        if missing:
            raise ValueError(f"{folder}: looks like OpenKE 2id data but lacks {missing}; found "
                             f"{found}; {expected}")
        return "2id"
    if "train.txt" in found:
        missing = [f for f in ("test.txt",) if f not in found]
        if "valid.txt" not in found and "val.txt" not in found:
            missing.insert(0, "valid.txt")
        if missing:
            raise ValueError(f"{folder}: has train.txt but lacks {missing}; found {found}; "
                             f"{expected}")
        lines = read_lines(folder / "train.txt")
        first = lines[0] if lines else ""
        if NTRIPLE.match(first):
            return "ntriples"
        if len(first.split("\t")) == 3:
            return "tsv"
        raise ValueError(f"{folder / 'train.txt'} line 1: expected 'head<TAB>relation<TAB>"
                         f"tail' or '<head> <relation> <tail> .', got {first[:80]!r}")
    raise ValueError(f"cannot detect the format of {folder}: found {found}; {expected}")


def load_folder(folder: Path) -> tuple[list[str], list[str], list[Tensor]]:
    """Vocabularies and ``[train, valid, test]`` triples of a folder in any supported format."""
    fmt = detect_format(folder)
    if fmt == "2id":
        return load_2id_folder(folder)
    valid = folder / ("valid.txt" if (folder / "valid.txt").is_file() else "val.txt")
    paths = [folder / "train.txt", valid, folder / "test.txt"]
    return load_string_folder(paths, read_ntriples if fmt == "ntriples" else read_string_triples)
