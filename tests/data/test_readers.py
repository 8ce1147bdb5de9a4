"""Readers of the on-disk formats, on small files written to ``tmp_path``."""

from __future__ import annotations

import itertools
import pickle
import re
from pathlib import Path

import pytest
import torch

from mmgnn.data import DataFormatError
from mmgnn.data.parsing import read_lines
from mmgnn.data.readers import (
    build_vocabulary,
    encode_triples,
    read_id_triples,
    read_id_vocab,
    read_ntriples,
    read_string_triples,
)


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def raises_at(exc: type[Exception], path: Path, line: int, *fragments: str):
    """``pytest.raises`` whose message must name the file, the line and every fragment."""
    pattern = re.escape(f"{path} line {line}: expected")
    pattern += "".join(f"(?s:.*){re.escape(f)}" for f in fragments)
    return pytest.raises(exc, match=pattern)


# --------------------------------------------------------------------------- read_id_vocab
def test_vocab_splits_on_last_whitespace(tmp_path):
    path = write(tmp_path, "entity2id.txt",
                 "4\norganic compound\t1\nNew York City 0\n快手 短视频\t3\nfreon 2\n\n\n")
    assert read_id_vocab(path) == ["New York City", "organic compound", "freon", "快手 短视频"]


def test_vocab_without_count_line_and_crlf(tmp_path):
    path = write(tmp_path, "entity2id.txt", "<http://x/B> 1\r\n<http://x/A> 0\r\n")
    assert read_id_vocab(path) == ["<http://x/A>", "<http://x/B>"]
    with raises_at(ValueError, path, 1, "number of entries"):
        read_id_vocab(path, has_count=True)


def test_vocab_name_that_is_a_number(tmp_path):
    path = write(tmp_path, "relation2id.txt", "3\n0\t0\n1\t1\n4\t2\n")  # TIVA's relation2id
    assert read_id_vocab(path) == ["0", "1", "4"]


@pytest.mark.parametrize("text,line,fragments", [
    ("3\na 0\nb 1\n", 1, ("number of entries (2 rows follow)", "'3'", "disagrees")),
    ("2\na 0\nb x\n", 3, ("'name id'", "'b x'")),
    ("2\na 0\nb\n", 3, ("'name id'", "'b'")),
    ("2\na 0\nb 0\n", 3, ("unique id", "already used on line 2")),
    ("2\na 0\nb 2\n", 3, ("an id in 0..1", "contiguous")),
    ("2\na 0\nb -1\n", 3, ("an id in 0..1",)),
    ("2\na 0\na 1\n", 3, ("unique name", "line 2")),
    ("2\na 0\n\nb 1\n", 3, ("'name id'", "''")),
    ("x 0\nz\n", 2, ("'name id'", "'z'")),
    ("x y\n", 1, ("'name id'", "'x y'")),
])
def test_vocab_errors_name_file_and_line(tmp_path, text, line, fragments):
    path = write(tmp_path, "entity2id.txt", text)
    with raises_at(ValueError, path, line, *fragments):
        read_id_vocab(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "entity2id.txt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path)) + ".*not found.*expected"):
        read_id_vocab(path)
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        read_id_triples(path)
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        read_string_triples(path)
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        read_ntriples(path)


def test_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "entity2id.txt"
    path.write_bytes(b"2\na 0\nb\xff 1\n")
    with raises_at(ValueError, path, 3, "UTF-8"):
        read_id_vocab(path)


def test_read_lines_never_splits_inside_a_line(tmp_path):
    # str.splitlines() would split at \x85 and \u2028 and shift every later line number.
    path = write(tmp_path, "f.txt", "a\x85b\u2028c\td\r\ne\n\n  \n")
    assert read_lines(path) == ["a\x85b\u2028c\td", "e"]


# ------------------------------------------------------------------------- read_id_triples
def test_id_triples_htr_to_hrt(tmp_path):
    path = write(tmp_path, "train2id.txt", "3\n0 1 2\n3 4 0\n5 6 1\n\n")
    triples = read_id_triples(path)
    assert triples.dtype == torch.long
    # Disk rows are (head, tail, relation): (0, 1, 2) means head 0, tail 1, relation 2.
    assert triples.tolist() == [[0, 2, 1], [3, 0, 4], [5, 1, 6]]
    assert read_id_triples(path, order="hrt").tolist() == [[0, 1, 2], [3, 4, 0], [5, 6, 1]]


def test_id_triples_tabs_crlf_and_no_count(tmp_path):
    path = write(tmp_path, "valid2id.txt", "0\t1\t2\r\n3\t4\t0\r\n")
    assert read_id_triples(path).tolist() == [[0, 2, 1], [3, 0, 4]]


def test_id_triples_empty_split(tmp_path):
    path = write(tmp_path, "test2id.txt", "0\n")
    assert read_id_triples(path).shape == (0, 3)


@pytest.mark.parametrize("text,line,fragments", [
    ("2\n0 1 0\n", 1, ("number of triples (1 rows follow)", "'2'")),
    ("1\n0 1 0\n0 1 0\n", 1, ("number of triples (2 rows follow)",)),
    ("2\n0 1 0\nabc 3\n", 3, ("'head tail relation' as three integers", "'abc 3'")),
    ("2\n0 1 0\n1 2 3 4\n", 3, ("three integers", "'1 2 3 4'")),
    ("2\n0 1 0\n1 x 0\n", 3, ("three integers", "'1 x 0'")),
    ("2\n0 1 0\n1.5 1 0\n", 3, ("three integers",)),
    ("3\n0 1 0\n\n1 2 0\n", 3, ("three integers", "''")),
    ("x\n0 1 0\n", 1, ("number of triples as the first line", "'x'")),
])
def test_id_triples_errors_name_file_and_line(tmp_path, text, line, fragments):
    path = write(tmp_path, "train2id.txt", text)
    with raises_at(ValueError, path, line, *fragments):
        read_id_triples(path)


@pytest.mark.parametrize("row,label,value", [
    ("5 1 0", "head", 5), ("1 5 0", "tail", 5), ("1 0 3", "relation", 3), ("-1 0 0", "head", -1),
])
def test_id_triples_out_of_range(tmp_path, row, label, value):
    path = write(tmp_path, "train2id.txt", f"3\n0 1 0\n1 2 2\n{row}\n")
    with raises_at(ValueError, path, 4, f"a {label} id", f"(found {value})", repr(row)):
        read_id_triples(path, num_entities=5, num_relations=3)


def test_id_triples_bad_order_argument(tmp_path):
    path = write(tmp_path, "train2id.txt", "0\n")
    with pytest.raises(ValueError, match="permutation of 'hrt'"):
        read_id_triples(path, order="hhr")


# ---------------------------------------------------------------------- string triples
def test_string_triples_tab_and_crlf(tmp_path):
    path = write(tmp_path, "train.txt", "/m/a\t/r/x\t/m/b\r\n/m/b\t/r/y z\t/m/c\r\n\r\n")
    assert read_string_triples(path) == [("/m/a", "/r/x", "/m/b"), ("/m/b", "/r/y z", "/m/c")]


@pytest.mark.parametrize("text,line,got", [
    ("a\tr\tb\na\tr\n", 2, "'a\\tr'"),
    ("a\tr\tb\na\tr\tb\tc\n", 2, "'a\\tr\\tb\\tc'"),
    ("a\tr\tb\na r b\n", 2, "'a r b'"),
    ("a\tr\tb\na\t\tb\n", 2, "'a\\t\\tb'"),
    ("a\tr\tb\n\na\tr\tb\n", 2, "''"),
])
def test_string_triples_errors(tmp_path, text, line, got):
    path = write(tmp_path, "train.txt", text)
    with raises_at(ValueError, path, line, "'head relation tail' as three non-empty fields", got):
        read_string_triples(path)


def test_string_triples_whitespace_separator(tmp_path):
    path = write(tmp_path, "train.txt", "a  r\tb\n")
    assert read_string_triples(path, sep=None) == [("a", "r", "b")]


def test_ntriples(tmp_path):
    path = write(tmp_path, "valid.txt",
                 "<http://x/A> <http://x/p> <http://x/B_(c)> .\n<http://x/B> <http://x/q> "
                 "<http://x/A>.\n\n")
    assert read_ntriples(path) == [("<http://x/A>", "<http://x/p>", "<http://x/B_(c)>"),
                                   ("<http://x/B>", "<http://x/q>", "<http://x/A>")]


@pytest.mark.parametrize("row", [
    "<http://x/A> <http://x/p> <http://x/B>",         # no dot
    '<http://x/A> <http://x/p> "literal" .',           # literal
    "<http://x/A> <http://x/p> .",                    # two terms
    "http://x/A http://x/p http://x/B .",             # no brackets
])
def test_ntriples_errors(tmp_path, row):
    path = write(tmp_path, "test.txt", f"<http://x/A> <http://x/p> <http://x/B> .\n{row}\n")
    with raises_at(ValueError, path, 2, "'<head> <relation> <tail> .'", row[:20]):
        read_ntriples(path)


# ------------------------------------------------------------------ vocabulary / encoding
def test_vocabulary_first_appearance_train_valid_test():
    train = [("b", "r2", "a"), ("a", "r1", "c")]
    valid = [("d", "r1", "b")]
    test = [("c", "r3", "e")]
    entities, relations = build_vocabulary(train, valid, test)
    assert entities == ["b", "a", "c", "d", "e"]  # head before tail; eval-only d, e kept
    assert relations == ["r2", "r1", "r3"]
    e_idx = {n: i for i, n in enumerate(entities)}
    r_idx = {n: i for i, n in enumerate(relations)}
    assert encode_triples(train, e_idx, r_idx).tolist() == [[0, 0, 1], [1, 1, 2]]
    assert encode_triples([], e_idx, r_idx).shape == (0, 3)


def test_encode_unknown_name_names_file_and_line(tmp_path):
    e_idx, r_idx = {"a": 0, "b": 1}, {"r": 0}
    with pytest.raises(ValueError, match=r"val\.txt line 3: expected a tail in the entity "
                                         r"vocabulary \(2 names\), got 'zz'"):
        encode_triples([("a", "r", "b"), ("b", "r", "a"), ("a", "r", "zz")], e_idx, r_idx,
                       source=tmp_path / "val.txt")
    with pytest.raises(ValueError, match=r"triple #0: expected a relation in the relation"):
        encode_triples([("a", "q", "b")], e_idx, r_idx)


# ---------------------------------------------- one rule set for every format (DataFormatError)
@pytest.mark.parametrize("order", ["".join(p) for p in itertools.permutations("hrt")])
def test_id_triples_every_column_order(tmp_path, order):
    disk = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    path = write(tmp_path, "train2id.txt", "".join(" ".join(map(str, r)) + "\n" for r in disk))
    # Independent reorder: name each disk value by its column letter, then read h, r, t.
    expected = [[dict(zip(order, row, strict=True))[c] for c in "hrt"] for row in disk]
    assert read_id_triples(path, order=order).tolist() == expected


@pytest.mark.parametrize("data,line,got", [
    (b"a\tr\tb\r\r\nb\tr\ta\r\r\n", 1, "'a\\tr\\tb\\r'"),     # \r\r\n: phantom 'b\r' before
    (b"a\tr\tb\rb\tr\ta\r", 1, "'a\\tr\\tb\\rb\\tr\\ta'"),    # CR-only line ends
    (b"a\tr\tb\nb\tr\xe2\x80\x8b\xef\xbb\xbfa\n", 2, "'b\\tr\\u200b\\ufeffa'"),  # inner BOM
])
def test_stray_carriage_return_or_bom_is_an_error(tmp_path, data, line, got):
    path = tmp_path / "train.txt"
    path.write_bytes(data)
    with raises_at(DataFormatError, path, line, got):
        read_string_triples(path)


def test_crlf_is_removed_exactly_even_without_the_final_line_feed(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"\xef\xbb\xbfa\tr\tb\r\nb\tr\ta\r")
    assert read_string_triples(path) == [("a", "r", "b"), ("b", "r", "a")]


@pytest.mark.parametrize("text,line", [
    ("a\tr\tb \n", 1), ("a\tr\tb\n a\tr\tb\n", 2), ("a\tr \tb\n", 1), ("a\tr\t\u3000b\n", 1),
])
def test_names_with_edge_whitespace_are_errors(tmp_path, text, line):
    path = write(tmp_path, "train.txt", text)
    with raises_at(DataFormatError, path, line, "without leading or trailing whitespace"):
        read_string_triples(path)
    vocab = write(tmp_path, "entity2id.txt", "1\n a 0\n")
    with raises_at(DataFormatError, vocab, 2, "without leading or trailing whitespace", "' a'"):
        read_id_vocab(vocab)


@pytest.mark.parametrize("text,line,got", [
    ("³\n0 0 0\n0 0 0\n0 0 0\n", 1, "'³'"),
    ("①\n0 0 0\n", 1, "'①'"),
    ("1\n0 ٣ 0\n", 2, "'0 ٣ 0'"),
    ("1\n0 1_0 0\n", 2, "'0 1_0 0'"),
    ("1\n0 +1 0\n", 2, "'0 +1 0'"),
    (f"1\n0 {2 ** 63} 0\n", 2, f"'0 {2 ** 63} 0'"),
    (f"1\n0 {-2 ** 63 - 1} 0\n", 2, "64-bit range"),
])
def test_integers_are_ascii_and_64_bit(tmp_path, text, line, got):
    path = write(tmp_path, "train2id.txt", text)
    with raises_at(DataFormatError, path, line, got):
        read_id_triples(path)


def test_vocab_ids_are_ascii_and_64_bit(tmp_path):
    for bad in ("３", str(2 ** 64), "1_0"):
        path = write(tmp_path, "entity2id.txt", f"a 0\nb {bad}\n")
        with raises_at(DataFormatError, path, 2, "'name id'", f"'b {bad}'"):
            read_id_vocab(path)


def test_data_format_error_carries_file_and_line(tmp_path):
    path = write(tmp_path, "train.txt", "a\tr\tb\na\tr\n")
    with pytest.raises(DataFormatError) as info:
        read_string_triples(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert (Path(err.path), err.line, err.got) == (path, 2, "a\tr")
    assert pickle.loads(pickle.dumps(err)).args == err.args
