"""MNRE, multimodal relation extraction (Zheng et al., 2021; MKGformer's second task): one
Python-literal dict per line with the tokens, the head and tail spans, the image and the
relation."""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mmgnn.data.parsing import DataFormatError, PathLike, read_lines

#: The label without a relation; micro precision / recall / F1 leave it out (as released).
NO_RELATION = "None"
#: File of each split in the MNRE v2 folder (``mnre_txt/`` of thecharm/MNRE; the validation
#: file is ``mnre_val .txt``, with a space, there).
MNRE_FILES = {"train": ("mnre_train.txt",), "valid": ("mnre_val.txt", "mnre_val .txt"),
              "test": ("mnre_test.txt",)}
SPLITS = ("train", "valid", "test")


@dataclass
class RelationExamples:
    """Sentences with a marked head and tail entity and the relation between them.

    Attributes:
        tokens (list[list[str]]): The words of each sentence.
        head (Tensor): :obj:`(N, 2)` word span ``[start, end)`` of the head entity.
        tail (Tensor): :obj:`(N, 2)` word span of the tail entity.
        y (Tensor): :obj:`(N,)` relation label ids (indices into ``labels``).
        images (list[str]): The image file name of each sentence (``img_id``); whether the
            file exists is for the image modality to find out.
        labels (list[str]): Relation names by id.
        source (str): Where the examples were read from.
    """

    tokens: list[list[str]]
    head: Tensor
    tail: Tensor
    y: Tensor
    images: list[str]
    labels: list[str]
    source: str = ""
    negative: str = field(default=NO_RELATION)

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, index: Tensor | Sequence[int]) -> RelationExamples:
        """The examples at ``index``, in that order (same label list)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        rows = idx.tolist()
        return RelationExamples([self.tokens[i] for i in rows], self.head[idx], self.tail[idx],
                                self.y[idx], [self.images[i] for i in rows], self.labels,
                                self.source, self.negative)

    def __repr__(self) -> str:
        return (f"RelationExamples({len(self)}, labels={len(self.labels)}, "
                f"source={self.source!r})")


def _span(path: PathLike, line: int, text: str, value: object, n: int, what: str
          ) -> tuple[int, int]:
    pos = value.get("pos") if isinstance(value, dict) else None
    if not (isinstance(pos, list | tuple) and len(pos) == 2
            and all(isinstance(p, int) and not isinstance(p, bool) for p in pos)
            and 0 <= pos[0] < pos[1] <= n):
        raise DataFormatError(path, line, f"'{what}': {{'name': ..., 'pos': [start, end]}} with "
                              f"0 <= start < end <= {n} (the number of tokens)", text)
    return pos[0], pos[1]


def read_mnre(path: PathLike, labels: Sequence[str] | None = None) -> RelationExamples:
    """Reads one MNRE file: a dict literal per line with ``token`` (list of words), ``h`` and
    ``t`` (``{'name', 'pos': [start, end)}``), ``img_id`` and ``relation``.

    Head and tail spans may overlap or nest (59 training lines of MNRE v2 do). Every line is
    checked; a malformed one raises :class:`~mmgnn.data.DataFormatError` naming
    the file, the line and what was expected (nothing is skipped).

    Args:
        path (str or PathLike): The file.
        labels (Sequence[str], optional): The label list to map relations to ids; a relation
            outside it is an error (validation and test files read with the training
            labels). (default: the sorted relations of this file)
    """
    lines = read_lines(path, "an MNRE file (one dict per line)")
    rows = []
    for i, text in enumerate(lines, 1):
        try:
            d = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            d = None
        if not isinstance(d, dict):
            raise DataFormatError(path, i, "a Python dict literal {'token': [...], 'h': {...}, "
                                  "'t': {...}, 'img_id': ..., 'relation': ...}", text)
        missing = [k for k in ("token", "h", "t", "img_id", "relation") if k not in d]
        if missing:
            raise DataFormatError(path, i, f"the keys token, h, t, img_id, relation (missing "
                                  f"{', '.join(missing)})", text)
        tokens = d["token"]
        if not (isinstance(tokens, list) and tokens
                and all(isinstance(w, str) and w for w in tokens)):
            raise DataFormatError(path, i, "'token': a non-empty list of non-empty strings", text)
        for key in ("img_id", "relation"):
            if not isinstance(d[key], str) or not d[key].strip():
                raise DataFormatError(path, i, f"'{key}': a non-empty string", text)
        head = _span(path, i, text, d["h"], len(tokens), "h")
        tail = _span(path, i, text, d["t"], len(tokens), "t")
        rows.append((tokens, head, tail, d["img_id"], d["relation"], i))
    if labels is None:
        labels = sorted({r[4] for r in rows})
    index = {name: k for k, name in enumerate(labels)}
    for *_, relation, i in rows:
        if relation not in index:
            raise DataFormatError(path, i, f"a relation of the training labels ({len(index)}: "
                                  f"{', '.join(list(index)[:5])}, ...)", relation)
    return RelationExamples(
        [r[0] for r in rows],
        torch.tensor([r[1] for r in rows], dtype=torch.long).view(-1, 2),
        torch.tensor([r[2] for r in rows], dtype=torch.long).view(-1, 2),
        torch.tensor([index[r[4]] for r in rows], dtype=torch.long),
        [r[3] for r in rows], list(labels), str(path))


def task_folder(name: str, root: PathLike | None = None) -> Path:
    """The folder ``name`` (``MNRE``, ``Twitter2017``, ...) under ``root`` or, without one,
    ``$MMGNN_DATA``; a folder path given as ``name`` is used as it is."""
    if Path(name).expanduser().is_dir() and (root is None or os.sep in name):
        return Path(name).expanduser()
    places = [Path(root).expanduser()] if root is not None else []
    if os.environ.get("MMGNN_DATA"):
        places.append(Path(os.environ["MMGNN_DATA"]).expanduser())
    for place in places:
        if (place / name).is_dir():
            return place / name
    raise FileNotFoundError(f"{name}: no such folder under {', '.join(map(str, places)) or '-'} "
                            f"(pass root= / --data.root, or set $MMGNN_DATA to the folder "
                            f"holding it)")


def load_mnre(name: str = "MNRE", root: PathLike | None = None
              ) -> dict[str, RelationExamples]:
    """The train / valid / test splits of an MNRE folder (see :data:`MNRE_FILES`), ids from
    the training file's sorted relations."""
    folder = task_folder(name, root)
    out: dict[str, RelationExamples] = {}
    for split in SPLITS:
        path = next((folder / f for f in MNRE_FILES[split] if (folder / f).is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{folder}: no {' or '.join(MNRE_FILES[split])} (the "
                                    f"{split} split of MNRE)")
        out[split] = read_mnre(path, out["train"].labels if split != "train" else None)
    return out
