"""Parsing rules shared by every reader of :mod:`mmgnn.data` and the side-file and feature
readers of :mod:`mmgnn.modalities`.

Every reader validates what it reads through the helpers of this module (:func:`read_lines`,
:func:`parse_id`, :func:`check_name`, :func:`split_fields`), so every format obeys the same
rules. A problem raises :class:`DataFormatError` (a :class:`ValueError`; a missing file raises
:class:`FileNotFoundError`) whose message names the file, the 1-based line, the offending text
and what was expected, e.g.
``.../train2id.txt line 17: expected 'head tail relation' as three integers, got 'abc 3'``.
No row is skipped and nothing is changed silently:

* **Line ends**: LF or CRLF (removed exactly; a final CR without its LF counts as a line end);
  a carriage return anywhere else is an error, so ``\\r\\r\\n`` or a CR-only file never leaves
  ``'b\\r'`` next to ``'b'``. A leading UTF-8 byte-order mark is removed; one anywhere else is an
  error. Blank lines at the end of a file are ignored; blank lines inside it are errors.
* **Names** (entities, relations, attributes) are kept exactly as written and must be non-empty
  without leading or trailing whitespace: ``a<TAB>r<TAB>b<SPACE>`` is an error, not an entity
  ``'b '`` next to ``'b'``.
* **Integers** are ASCII decimal (``-?[0-9]+``) within the 64-bit range: ``³``, ``①``, ``٣``,
  ``1_000`` or ``2**63`` are errors, not a Python exception or a different number.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

PathLike = str | os.PathLike

# ASCII digits only: int() also accepts '٣', '３' and '1_000', and str.isdigit() accepts '³',
# which int() then rejects with a bare ValueError.
_INT = re.compile(r"-?[0-9]+", re.ASCII)
INT64 = 1 << 63


def shown(text: str, limit: int = 80) -> str:
    """``text`` as shown in an error message: quoted, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def format_error(path: PathLike, line: int, text: str, expected: str) -> str:
    """The message of every reader error: ``"<path> line <n>: expected <...>, got '<text>'"``.

    Args:
        path (str or PathLike): The file.
        line (int): 1-based line number.
        text (str): The offending text; truncated to 80 characters.
        expected (str): What the line should have held.
    """
    return f"{path} line {line}: expected {expected}, got {shown(text)}"


class DataFormatError(ValueError):
    """A data file does not hold what its format requires.

    The message is ``"<path> line <n>: expected <what>, got '<text>'<note>"`` (without
    ``line <n>`` where no line applies, e.g. for a binary feature file, and without ``got`` where
    the offending value is described in ``note``). It is a :class:`ValueError`, so code that
    catches those keeps working.

    Args:
        path (str or PathLike): The file.
        line (int, optional): 1-based line number, or :obj:`None`.
        expected (str): What the file should have held there.
        got (str, optional): The offending text (shown truncated to 80 characters).
        note (str): Appended to the message, e.g. a reason. (default: ``""``)
    """

    def __init__(self, path: PathLike, line: int | None, expected: str, got: str | None = None,
                 note: str = "") -> None:
        self.path, self.line, self.expected, self.got, self.note = path, line, expected, got, note
        where = f"{path}" if line is None else f"{path} line {line}"
        text = "" if got is None else f", got {shown(got)}"
        super().__init__(f"{where}: expected {expected}{text}{note}")

    def __reduce__(self) -> tuple:  # picklable across processes despite the custom __init__
        return type(self), (self.path, self.line, self.expected, self.got, self.note)


def read_lines(path: PathLike, what: str = "a text file") -> list[str]:
    """The lines of a UTF-8 file, without line terminators and without trailing blank lines.

    Lines end in ``\\n`` or ``\\r\\n``; the ``\\r`` of a CRLF is removed exactly, and so is a
    final ``\\r`` (a CRLF file whose last line feed is missing). Any other carriage return
    (``\\r\\r\\n``, CR-only line ends, a CR inside a line) is a :class:`DataFormatError`: it would
    otherwise end up inside a name. Unlike :meth:`str.splitlines` this never splits inside a
    name holding ``\\x85`` or ``\\u2028``, so line numbers match those of a text editor. A leading
    byte-order mark is removed; a second one is an error.

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
        raise DataFormatError(path, line, "UTF-8 text",
                              note=f", got the undecodable bytes {data[e.start:e.end]!r}") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if text.endswith("\r"):
            text = text[:-1]
        if "\r" in text:
            raise_at(path, text, text.index("\r"),
                      "lines ending in LF or CRLF (a carriage return only right before a line "
                      "feed)")
    if "\ufeff" in text:
        raise_at(path, text, text.index("\ufeff"),
                  "a byte-order mark (U+FEFF) only at the start of the file")
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def raise_at(path: PathLike, text: str, pos: int, expected: str) -> None:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    raise DataFormatError(path, text.count("\n", 0, pos) + 1, expected,
                          text[start:end if end >= 0 else len(text)])


def parse_id(token: str) -> int | None:
    """The integer of an ASCII decimal ``token`` (``-?[0-9]+``) in the 64-bit range, else
    :obj:`None` (callers raise :class:`DataFormatError` naming their file, line and row)."""
    if _INT.fullmatch(token) is None:
        return None
    value = int(token)
    return value if -INT64 <= value < INT64 else None


def check_name(path: PathLike, line: int, text: str, name: str, expected: str) -> str:
    """``name`` itself if it is non-empty without leading or trailing whitespace; otherwise a
    :class:`DataFormatError` for ``text`` at ``path`` line ``line``. Stripping silently would
    make ``'b '`` and ``'b'`` one entity in one file and two in another, so it is an error."""
    if not name or name[0].isspace() or name[-1].isspace():
        raise DataFormatError(path, line, f"{expected}; names must be non-empty, without "
                              f"leading or trailing whitespace", text,
                              note=f" (the name {shown(name)})" if name else "")
    return name


def split_fields(path: PathLike, line: int, text: str, sep: str | None, count: int,
                 expected: str) -> list[str]:
    """The ``count`` fields of row ``text`` split on ``sep`` (:obj:`None`: runs of whitespace),
    each checked with :func:`check_name`; else a :class:`DataFormatError` naming the line."""
    parts = text.split(sep)
    if len(parts) != count:
        raise DataFormatError(path, line, expected, text)
    for part in parts:
        check_name(path, line, text, part, expected)
    return parts


def check_no_blank(path: PathLike, lines: Sequence[str], first: int, expected: str) -> None:
    """Blank lines inside a file are errors (only trailing ones are ignored)."""
    for i, line in enumerate(lines):
        if not line.strip():
            raise DataFormatError(path, first + i, expected, line)
