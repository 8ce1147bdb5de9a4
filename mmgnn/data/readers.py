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

Every reader validates what it reads. A problem raises :class:`ValueError` (or
:class:`FileNotFoundError`) whose message names the file, the 1-based line, the offending text
and what was expected, e.g.
``.../train2id.txt line 17: expected 'head tail relation' as three integers, got 'abc 3'``.
No row is skipped; only blank lines at the end of a file are ignored.
"""

from __future__ import annotations

import os
import re
from array import array
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from pathlib import Path

import torch
from torch import Tensor

PathLike = str | os.PathLike

StringTriple = tuple[str, str, str]

_NTRIPLE = re.compile(r"^\s*(<[^<>\s]*>)\s+(<[^<>\s]*>)\s+(<[^<>\s]*>)\s*\.\s*$")


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def format_error(path: PathLike, line: int, text: str, expected: str) -> str:
    """The message of every reader error: ``"<path> line <n>: expected <...>, got '<text>'"``.

    Args:
        path (str or PathLike): The file.
        line (int): 1-based line number.
        text (str): The offending text; truncated to 80 characters.
        expected (str): What the line should have held.
    """
    return f"{path} line {line}: expected {expected}, got {_shown(text)}"


def read_lines(path: PathLike, what: str = "a text file") -> list[str]:
    """The lines of a UTF-8 file, without line terminators and without trailing blank lines.

    Lines are split on ``\\n`` only (a trailing ``\\r`` is removed, so CRLF files read like LF
    files); unlike :meth:`str.splitlines` this never splits inside a name holding ``\\x85`` or
    ``\\u2028``, so line numbers match those of a text editor. A leading byte-order mark is
    removed.

    Args:
        path (str or PathLike): The file.
        what (str): What the file should be, for the :class:`FileNotFoundError` message.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (expected {what})")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(
            f"{path} line {line}: expected UTF-8 text, got the undecodable bytes "
            f"{data[e.start:e.end]!r}"
        ) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _check_no_blank(path: PathLike, lines: Sequence[str], first: int, expected: str) -> None:
    """Blank lines inside a file are errors (only trailing ones are ignored)."""
    for i, line in enumerate(lines):
        if not line.strip():
            raise ValueError(format_error(path, first + i, line, expected))


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
    if not first.isdigit():
        raise ValueError(format_error(path, 1, lines[0], f"the number of {what} as the first line"))
    return int(first), 1


def _check_count(path: PathLike, count: int | None, found: int, what: str) -> None:
    if count is not None and count != found:
        raise ValueError(
            f"{path} line 1: expected the number of {what} ({found} rows follow), got "
            f"{_shown(str(count))}: the count line disagrees with the rows"
        )


def read_id_vocab(path: PathLike, *, has_count: bool | None = None) -> list[str]:
    r"""Reads an OpenKE vocabulary (``entity2id.txt`` / ``relation2id.txt``).

    Rows are ``name<whitespace>id``. Names may themselves contain spaces (TIVA) and the separator
    may be a tab (KVC16K, WN18-IMG), so each row is split on its **last** run of whitespace.
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
    _check_no_blank(path, lines[start:], start + 1, expected_row)
    n = len(lines) - start
    _check_count(path, count, n, "entries")
    names: list[str | None] = [None] * n
    line_of_id: dict[int, int] = {}
    line_of_name: dict[str, int] = {}
    for lineno, line in enumerate(lines[start:], start + 1):
        parts = line.rsplit(None, 1)
        try:
            if len(parts) != 2:
                raise ValueError
            name, idx = parts[0].strip(), int(parts[1])
        except ValueError:
            raise ValueError(format_error(path, lineno, line, expected_row)) from None
        if not 0 <= idx < n:
            raise ValueError(format_error(
                path, lineno, line, f"an id in 0..{n - 1} (ids must be contiguous from 0 for "
                f"{n} entries)"))
        if idx in line_of_id:
            raise ValueError(format_error(
                path, lineno, line, f"a unique id, but id {idx} is already used on line "
                f"{line_of_id[idx]}"))
        if name in line_of_name:
            raise ValueError(format_error(
                path, lineno, line, f"a unique name, but {_shown(name)} is already listed on "
                f"line {line_of_name[name]}"))
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
    for lineno, line in enumerate(body, start + 1):
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(format_error(path, lineno, line, expected_row))
        try:
            append((int(parts[0]), int(parts[1]), int(parts[2])))
        except ValueError:
            raise ValueError(format_error(path, lineno, line, expected_row)) from None
    raw = torch.tensor(rows, dtype=torch.long).reshape(-1, 3)
    triples = raw[:, [order.index(c) for c in "hrt"]].contiguous()
    bad = _first_bad_row(triples, num_entities, num_relations)
    if bad is not None:
        row, label, idx, n = bad
        bound = f"in 0..{n - 1}" if n >= 0 else "that is non-negative"
        raise ValueError(format_error(path, start + 1 + row, body[row],
                                      f"a {label} id {bound} (found {idx})"))
    return triples


def read_string_triples(path: PathLike, *, sep: str | None = "\t") -> list[StringTriple]:
    """Reads ``head<TAB>relation<TAB>tail`` string triples (FB15k-237, WN18RR, Nations).

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
        if len(parts) != 3 or not all(parts):
            raise ValueError(format_error(path, lineno, line, expected))
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
    match = _NTRIPLE.match
    for lineno, line in enumerate(lines, 1):
        m = match(line)
        if m is None:
            raise ValueError(format_error(path, lineno, line,
                                          "'<head> <relation> <tail> .' (three <IRI>s and a dot)"))
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
                    where = (f"{source} line {first_line + row}" if source is not None
                             else f"triple #{row}")
                    kind = "relation" if label == "relation" else "entity"
                    row_text = _shown(" ".join(triples[row]))
                    raise ValueError(
                        f"{where}: expected a {label} in the {kind} vocabulary "
                        f"({len(index)} names), got {_shown(name)} in row {row_text}"
                    ) from None
        raise  # unreachable: some name was missing
    return torch.stack([torch.frombuffer(col, dtype=torch.long) for col in ids], dim=1)
