"""Readers for the on-disk triple formats of the multimodal KG benchmarks.

Three formats cover every benchmark in ``../shared/datasets`` (see ``datasets/README.md``):

* OpenKE "2id" (DB15K, MKG-W, TIVA, KVC16K, WN18-IMG): :func:`read_id_vocab` for
  ``entity2id.txt`` / ``relation2id.txt`` and :func:`read_id_triples` for ``train2id.txt`` etc.,
  whose rows are ``head tail relation`` (**tail before relation**).
* tab-separated ``head<TAB>relation<TAB>tail`` strings (FB15k-237, WN18RR, Nations):
  :func:`read_string_triples`.
* N-Triples-like ``<h> <r> <t> .`` (DB15K ``valid.txt``/``test.txt``, the IMF split):
  :func:`read_ntriples`.

String triples become id triples with :func:`build_vocabulary` and :func:`encode_triples`.

Every reader validates what it reads with :mod:`mmgnn.data.parsing` (the rules for line ends,
names and integers, and :class:`~mmgnn.data.parsing.DataFormatError`, whose message names the
file, the line and what was expected).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain

import torch
from torch import Tensor

from mmgnn.data.parsing import (
    INT64,
    DataFormatError,
    PathLike,
    check_name,
    check_no_blank,
    parse_id,
    read_lines,
    shown,
    split_fields,
)

StringTriple = tuple[str, str, str]

_COUNT = re.compile(r"[0-9]+", re.ASCII)
_ID_ROW = re.compile(r"\s*(-?[0-9]+)\s+(-?[0-9]+)\s+(-?[0-9]+)\s*")

NTRIPLE = re.compile(r"^\s*(<[^<>\s]*>)\s+(<[^<>\s]*>)\s+(<[^<>\s]*>)\s*\.\s*$")


def _count_line(path: PathLike, lines: list[str], has_count: bool | None,
                what: str) -> tuple[int | None, int]:
    """Parses an optional OpenKE count line; returns ``(count, index of the first row)``.

    With ``has_count=None`` the first line is a count line exactly when it is one token.
    """
    if not lines or has_count is False:
        return None, 0
    first = lines[0].strip()
    if has_count is None and len(first.split()) != 1:
        return None, 0
    if _COUNT.fullmatch(first) is None:
        raise DataFormatError(path, 1, f"the number of {what} as the first line (ASCII digits)",
                              lines[0])
    return int(first), 1


def _check_count(path: PathLike, count: int | None, found: int, what: str) -> None:
    if count is not None and count != found:
        raise DataFormatError(path, 1, f"the number of {what} ({found} rows follow)", str(count),
                              ": the count line disagrees with the rows")


def read_id_vocab(path: PathLike, *, has_count: bool | None = None) -> list[str]:
    r"""Reads an OpenKE vocabulary (``entity2id.txt`` / ``relation2id.txt``).

    Rows are ``name<whitespace>id``. Names may themselves contain spaces (TIVA) and the separator
    may be a tab (KVC16K, WN18-IMG), so each row is split on its **last** run of whitespace; a
    name is kept exactly and must not begin with whitespace (:func:`check_name`).
    The ids must be the integers :math:`0, \dots, n-1`, each exactly once, and the names must be
    distinct. The first line is the number of rows in OpenKE files; the IMF split's files have
    none.

    Args:
        path (str or PathLike): The vocabulary file.
        has_count (bool, optional): Whether the first line is the row count. :obj:`None`
            detects it: a first line of a single token is a count line. (default: :obj:`None`)

    Returns:
        list[str]: The names; position ``i`` holds the name of id ``i``.
    """
    lines = read_lines(path, "an OpenKE vocabulary of 'name id' rows")
    count, start = _count_line(path, lines, has_count, "entries")
    expected_row = "'name id': a name, whitespace and an integer id"
    check_no_blank(path, lines[start:], start + 1, expected_row)
    n = len(lines) - start
    _check_count(path, count, n, "entries")
    names: list[str | None] = [None] * n
    line_of_id: dict[int, int] = {}
    line_of_name: dict[str, int] = {}
    for lineno, line in enumerate(lines[start:], start + 1):
        parts = line.rsplit(None, 1)
        idx = parse_id(parts[1]) if len(parts) == 2 else None
        if idx is None:
            raise DataFormatError(path, lineno, expected_row, line)
        name = check_name(path, lineno, line, parts[0], expected_row)
        if not 0 <= idx < n:
            raise DataFormatError(path, lineno, f"an id in 0..{n - 1} (ids must be contiguous "
                                  f"from 0 for {n} entries)", line)
        if idx in line_of_id:
            raise DataFormatError(path, lineno, f"a unique id, but id {idx} is already used on "
                                  f"line {line_of_id[idx]}", line)
        if name in line_of_name:
            raise DataFormatError(path, lineno, f"a unique name, but {shown(name)} is already "
                                  f"listed on line {line_of_name[name]}", line)
        line_of_id[idx] = lineno
        line_of_name[name] = lineno
        names[idx] = name
    return names  # type: ignore[return-value]  # every slot is filled: n distinct ids in 0..n-1


def _first_bad_row(triples: Tensor, num_entities: int | None,
                   num_relations: int | None) -> tuple[int, str, int, int] | None:
    """``(row, column label, id, bound)`` of the first out-of-range id, or :obj:`None`."""
    bad_rows: list[tuple[int, str, int, int]] = []
    for col, label, n in ((0, "head", num_entities), (1, "relation", num_relations),
                          (2, "tail", num_entities)):
        ids = triples[:, col]
        bad = ids < 0
        if n is not None:
            bad |= ids >= n
        if bad.any():
            row = int(bad.nonzero()[0])
            bad_rows.append((row, label, int(ids[row]), -1 if n is None else n))
    return min(bad_rows) if bad_rows else None


def read_id_triples(path: PathLike, *, num_entities: int | None = None,
                    num_relations: int | None = None, order: str = "htr",
                    has_count: bool | None = None) -> Tensor:
    r"""Reads OpenKE id triples (``train2id.txt``, ``valid2id.txt``, ``test2id.txt``).

    OpenKE rows are ``head tail relation`` (``order="htr"``): the tail comes **before** the
    relation. The result is always in (head, relation, tail) order, as everywhere in mmgnn.

    Args:
        path (str or PathLike): The triples file.
        num_entities (int, optional): If given, head and tail ids must be below it.
        num_relations (int, optional): If given, relation ids must be below it.
        order (str): Column order on disk, a permutation of ``"hrt"``. (default: ``"htr"``)
        has_count (bool, optional): Whether the first line is the row count; :obj:`None`
            detects it (a first line of one token). (default: :obj:`None`)

    Returns:
        Tensor: :obj:`LongTensor` of shape :obj:`(n, 3)` in (head, relation, tail) order.
    """
    if sorted(order) != ["h", "r", "t"]:
        raise ValueError(f"order must be a permutation of 'hrt', got {order!r}")
    names = {"h": "head", "r": "relation", "t": "tail"}
    expected_row = f"{' '.join(names[c] for c in order)!r} as three integers"
    lines = read_lines(path, f"OpenKE id triples ('{' '.join(names[c] for c in order)}' rows)")
    count, start = _count_line(path, lines, has_count, "triples")
    body = lines[start:]
    _check_count(path, count, len(body), "triples")
    rows: list[tuple[int, int, int]] = []
    append = rows.append
    match = _ID_ROW.fullmatch
    for lineno, line in enumerate(body, start + 1):
        m = match(line)
        if m is None:
            raise DataFormatError(path, lineno, expected_row, line)
        append((int(m[1]), int(m[2]), int(m[3])))
    try:
        raw = torch.tensor(rows, dtype=torch.long).reshape(-1, 3)
    except (OverflowError, RuntimeError, ValueError):  # an id outside the 64-bit range
        row = next(i for i, r in enumerate(rows) if not all(-INT64 <= v < INT64 for v in r))
        raise DataFormatError(path, start + 1 + row, f"{expected_row} (in the 64-bit range)",
                              body[row]) from None
    triples = raw[:, [order.index(c) for c in "hrt"]].contiguous()
    bad = _first_bad_row(triples, num_entities, num_relations)
    if bad is not None:
        row, label, idx, n = bad
        bound = f"in 0..{n - 1}" if n >= 0 else "that is non-negative"
        raise DataFormatError(path, start + 1 + row, f"a {label} id {bound} (found {idx})",
                              body[row])
    return triples


def read_string_triples(path: PathLike, *, sep: str | None = "\t") -> list[StringTriple]:
    """Reads ``head<TAB>relation<TAB>tail`` string triples (FB15k-237, WN18RR, Nations).

    Names are kept exactly and must be non-empty without edge whitespace
    (:func:`check_name`): ``a<TAB>r<TAB>b<SPACE>`` is an error, not a second entity ``'b '``.

    Args:
        path (str or PathLike): The triples file.
        sep (str, optional): Field separator; :obj:`None` splits on any run of whitespace.
            (default: tab)

    Returns:
        list[tuple[str, str, str]]: The rows in file order, as ``(head, relation, tail)``.
    """
    shown_sep = "TAB" if sep == "\t" else ("whitespace" if sep is None else repr(sep))
    expected = f"'head relation tail' as three non-empty fields separated by {shown_sep}"
    lines = read_lines(path, f"string triples separated by {shown_sep}")
    triples: list[StringTriple] = []
    append = triples.append
    for lineno, line in enumerate(lines, 1):
        parts = line.split(sep)
        if len(parts) != 3 or not all(p and not p[0].isspace() and not p[-1].isspace()
                                      for p in parts):
            split_fields(path, lineno, line, sep, 3, expected)  # raises, naming what is wrong
        append((parts[0], parts[1], parts[2]))
    return triples


def read_ntriples(path: PathLike) -> list[StringTriple]:
    """Reads N-Triples-like ``<head> <relation> <tail> .`` rows (DB15K, the IMF split).

    Terms keep their angle brackets, as in DB15K's ``entity2id.txt``, so they match that
    vocabulary. Literals and blank nodes are not part of these files and are rejected.

    Args:
        path (str or PathLike): The triples file.

    Returns:
        list[tuple[str, str, str]]: The rows in file order, as ``(head, relation, tail)``.
    """
    lines = read_lines(path, "N-Triples rows '<head> <relation> <tail> .'")
    triples: list[StringTriple] = []
    append = triples.append
    match = NTRIPLE.match
    for lineno, line in enumerate(lines, 1):
        m = match(line)
        if m is None:
            raise DataFormatError(path, lineno,
                                  "'<head> <relation> <tail> .' (three <IRI>s and a dot)", line)
        append(m.groups())  # type: ignore[arg-type]
    return triples


def _columns(triples: Sequence[StringTriple]) -> tuple[list[str], list[str], list[str]]:
    # Ten times faster than zip(*triples) on 272k rows.
    return [x[0] for x in triples], [x[1] for x in triples], [x[2] for x in triples]


def build_vocabulary(*splits: Iterable[StringTriple]) -> tuple[list[str], list[str]]:
    """Entity and relation vocabularies of string triples, in order of first appearance.

    The order is deterministic: splits in the order given (mmgnn passes train, valid, test),
    rows in file order, and within a row the head before the tail. Entities and relations that
    occur only in valid or test are kept, as PyG and PyKEEN do; :func:`mmgnn.data.load_dataset`
    counts them in ``kg.quirks["entities_only_in_eval"]``.

    Args:
        *splits (iterable of (str, str, str)): ``(head, relation, tail)`` rows.

    Returns:
        (entity_names, relation_names): position ``i`` holds the name of id ``i``.
    """
    entities: dict[str, None] = {}
    relations: dict[str, None] = {}
    for triples in splits:
        triples = triples if isinstance(triples, Sequence) else list(triples)
        if not triples:
            continue
        heads, rels, tails = _columns(triples)
        entities.update(dict.fromkeys(chain.from_iterable(zip(heads, tails, strict=True))))
        relations.update(dict.fromkeys(rels))
    return list(entities), list(relations)


def encode_triples(triples: Sequence[StringTriple], entity_index: Mapping[str, int],
                   relation_index: Mapping[str, int], *, source: PathLike | None = None,
                   first_line: int = 1) -> Tensor:
    """Maps string triples to ids.

    Args:
        triples (sequence of (str, str, str)): ``(head, relation, tail)`` rows.
        entity_index (Mapping[str, int]): Entity name to id.
        relation_index (Mapping[str, int]): Relation name to id.
        source (str or PathLike, optional): File the rows were read from, for error messages.
        first_line (int): Line number of ``triples[0]`` in ``source``. (default: :obj:`1`)

    Returns:
        Tensor: :obj:`LongTensor` of shape :obj:`(n, 3)` in (head, relation, tail) order.
    """
    if not triples:
        return torch.empty(0, 3, dtype=torch.long)
    heads, rels, tails = _columns(triples)
    try:
        ids = [array("q", map(entity_index.__getitem__, heads)),
               array("q", map(relation_index.__getitem__, rels)),
               array("q", map(entity_index.__getitem__, tails))]
    except KeyError:
        for row, (h, r, t) in enumerate(triples):
            for label, name, index in (("head", h, entity_index), ("relation", r, relation_index),
                                       ("tail", t, entity_index)):
                if name not in index:
                    kind = "relation" if label == "relation" else "entity"
                    expected = f"a {label} in the {kind} vocabulary ({len(index)} names)"
                    note = f" in row {shown(' '.join(triples[row]))}"
                    if source is not None:
                        raise DataFormatError(source, first_line + row, expected, name,
                                              note) from None
                    raise ValueError(f"triple #{row}: expected {expected}, got {shown(name)}"
                                     f"{note}") from None
        raise  # unreachable: some name was missing
    return torch.stack([torch.frombuffer(col, dtype=torch.long) for col in ids], dim=1)
