"""Malformed variants of every on-disk format, and independent reference parses of them.

Shared by the property-based suite (``tests/data/test_fuzz_readers.py``, driven by
hypothesis) and ``benchmarks/fuzz_readers.py`` (5,000+ inputs, counts per outcome). A case is a
real-looking file of one format (:data:`FORMATS`) that :func:`make_case` builds from a
:class:`random.Random` and then damages with 0-3 mutations (byte flips, truncation, CRLF / CR /
``\\r\\r\\n`` line ends, byte-order marks, stray whitespace, non-ASCII digits, huge ids, wrong
column counts, NaN / inf / out-of-range values, ...). :func:`run_case` loads it through the
public API and compares the outcome with the reference parse of ``fuzz_reference.py``, written
from the format rules of :mod:`mmgnn.data.readers` (none of the library's parsing code is used).
Outcomes:

* ``ok``: the library loaded exactly what the reference parse says the file holds;
* ``error_line`` / ``error_file``: a ``ValueError`` (the library's ``DataFormatError``) whose
  message names the file and a line / only the file;
* ``raw``: any other exception, or one whose message does not name the file;
* ``changed``: the library loaded something else than the file holds (the reference parse);
* ``accepted``: the library loaded a file that breaks the format rules (the reference rejects
  it), e.g. a name with a trailing ``\\r`` or space, or ``+1`` / ``1_0`` as a number;
* ``hang``: set by the benchmark's per-input timeout.

This module imports only the public API, so the benchmark can run it against an older mmgnn.
"""

from __future__ import annotations

import io
import random
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmgnn.data import (
    MultiModalKG,
    read_entity_text,
    read_id_triples,
    read_id_vocab,
    read_ntriples,
    read_numeric_triples,
    read_string_triples,
)
from mmgnn.modalities import PrecomputedModality
from tests.data.fuzz_reference import (
    Rejected,
    ref_entity_text,
    ref_features,
    ref_id_triples,
    ref_ntriples,
    ref_numeric,
    ref_tsv,
    ref_vocab,
)

FORMATS = ("2id-vocab", "2id-triples", "tsv", "ntriples", "numeric", "entity-text",
           "precomputed-npy", "precomputed-npz", "precomputed-pt")
CLEAN = ("ok", "error_line", "error_file")
OUTCOMES = ("ok", "error_line", "error_file", "raw", "changed", "accepted", "hang")


# --------------------------------------------------------------------- real-looking files
_MID = "0123456789bcdfghjklmnpqrstvwxyz_"
_WORDS = ("Paris", "New_York_City", "HIV/AIDS", "Bonnie_%26_Clyde", "C++", "São_Paulo",
          "Albert_Einstein", "Ölüdeniz", "The_Beatles", "1984_(novel)")
_CHINESE = "快手短视频美食旅行音乐游戏搞笑萌宠"


def _entity_names(rnd: random.Random, n: int) -> list[str]:
    style = rnd.choice(("mid", "uri", "multiword", "chinese", "wordnet"))
    out: list[str] = []
    while len(out) < n:
        if style == "mid":
            name = "/m/0" + "".join(rnd.choice(_MID) for _ in range(rnd.randint(2, 6)))
        elif style == "uri":
            name = f"<http://dbpedia.org/resource/{rnd.choice(_WORDS)}_{len(out)}>"
        elif style == "multiword":
            name = " ".join(rnd.choice(("New", "York", "organic", "compound", "City", "freon"))
                            for _ in range(rnd.randint(1, 3))) + f" {len(out)}"
        elif style == "chinese":
            name = "".join(rnd.choice(_CHINESE) for _ in range(rnd.randint(2, 5))) + str(len(out))
        else:
            name = f"{rnd.randint(0, 15_000_000):08d}"
        if name not in out:
            out.append(name)
    return out


def _relation_names(rnd: random.Random, n: int) -> list[str]:
    stems = ("/film/film/genre", "/people/person/nationality", "birthPlace", "_hypernym",
             "/location/location/contains", "relatedTo")
    return [f"{rnd.choice(stems)}{i}" for i in range(n)]


def _number(rnd: random.Random) -> str:
    value = rnd.choice((rnd.uniform(-1e6, 1e6), rnd.uniform(0, 1), float(rnd.randint(-50, 3000))))
    return rnd.choice((repr(value), f"{value:.3e}", f"{value:.2f}", str(int(value))))


def base_text(fmt: str, rnd: random.Random, entities: list[str]) -> str:
    """An unmutated file of text format ``fmt`` over vocabulary ``entities``."""
    n = len(entities)
    relations = _relation_names(rnd, rnd.randint(1, 5))
    rows = rnd.randint(1, 12)
    count = rnd.random() < 0.7
    if fmt == "2id-vocab":
        ids = list(range(n))
        rnd.shuffle(ids)
        sep = rnd.choice((" ", "\t"))
        body = [f"{entities[i]}{sep}{i}" for i in ids]
        return "\n".join(([str(n)] if count else []) + body) + "\n"
    if fmt == "2id-triples":
        body = [f"{rnd.randrange(n)} {rnd.randrange(n)} {rnd.randrange(len(relations))}"
                for _ in range(rows)]
        return "\n".join(([str(rows)] if count else []) + body) + "\n"
    if fmt == "tsv":
        return "".join(f"{rnd.choice(entities)}\t{rnd.choice(relations)}\t"
                       f"{rnd.choice(entities)}\n" for _ in range(rows))
    if fmt == "ntriples":
        def iri(name: str) -> str:
            return f"<http://x.org/{name.replace(' ', '_')}>"
        return "".join(f"{iri(rnd.choice(entities))} {iri(rnd.choice(relations))} "
                       f"{iri(rnd.choice(entities))} .\n" for _ in range(rows))
    if fmt == "numeric":
        attributes = [f"/m/attr/{a}" for a in ("area", "population", "height", "year")]
        pairs = {(rnd.choice([*entities, "/m/unknown"]), rnd.choice(attributes))
                 for _ in range(rows)}
        return "".join(f"{e}\t{a}\t{_number(rnd)}\n" for e, a in sorted(pairs))
    if fmt == "entity-text":
        keys = rnd.sample([*entities, "/m/elsewhere"], k=min(rows, n + 1))
        return "".join(f"{k}\t{rnd.choice(('Paris', 'organic compound', '快手', ''))}\n"
                       for k in keys)
    raise ValueError(fmt)


# ----------------------------------------------------------------------------- mutations
_ODD_DIGITS = ("³", "①", "٣", "３", "𝟙", "½", "1_0", "+1", "0x1")
_HUGE = (str(2 ** 63), str(2 ** 64), str(10 ** 30), str(-(2 ** 63) - 1), str(2 ** 63 - 1))
_ODD_VALUES = ("nan", "NaN", "inf", "-inf", "1e400", "1.7e308", "-1.7e308", "3.5e38", "1e38",
               "1_000", " 1", "1 ", "٣", "", "1e-400", "infinity", "0x10", "1,5")
_ODD_CHARS = (" ", "\t", "\u3000", "\xa0", "\u200b", "\x00", "\x85", "\u2028", "\x0b", "\x1f",
              "\ufeff", "\r")


def _lines_op(text: str, rnd: random.Random, op: Callable[[list[str], int], None]) -> str:
    lines = text.split("\n")
    op(lines, rnd.randrange(len(lines)))
    return "\n".join(lines)


def _replace_token(text: str, rnd: random.Random, pattern: str, choices: tuple[str, ...]) -> str:
    spots = [m.span() for m in re.finditer(pattern, text)]
    if not spots:
        return text
    a, b = rnd.choice(spots)
    return text[:a] + rnd.choice(choices) + text[b:]


def _edge_whitespace(text: str, rnd: random.Random) -> str:
    spots = [m.start() for m in re.finditer(r"\t|\n| ", text)] + [0]
    pos = rnd.choice(spots)
    return text[:pos] + rnd.choice((" ", "\t", "\u3000", "\xa0", "  ")) + text[pos:]


def _wrong_columns(lines: list[str], i: int) -> None:
    sep = "\t" if "\t" in lines[i] else " "
    parts = lines[i].split(sep)
    if len(parts) > 1 and i % 2:
        parts.pop(i % len(parts))
    else:
        parts.append("extra")
    lines[i] = sep.join(parts)


TEXT_MUTATIONS: dict[str, Callable[[str, random.Random], str]] = {
    "crlf": lambda t, r: t.replace("\n", "\r\n"),
    "crlf_no_final_lf": lambda t, r: t.replace("\n", "\r\n").rstrip("\n"),
    "cr_only": lambda t, r: t.replace("\n", "\r"),
    "cr_cr_lf": lambda t, r: t.replace("\n", "\r\r\n"),
    "bom": lambda t, r: "\ufeff" + t,
    "double_bom": lambda t, r: "\ufeff\ufeff" + t,
    "edge_whitespace": _edge_whitespace,
    "trailing_space": lambda t, r: _lines_op(t, r, lambda ls, i: ls.__setitem__(i, ls[i] + " ")),
    "odd_char": lambda t, r: (lambda p: t[:p] + r.choice(_ODD_CHARS) + t[p:])(
        r.randrange(len(t) + 1)),
    "non_ascii_digit": lambda t, r: _replace_token(t, r, r"[0-9]", _ODD_DIGITS),
    "huge_id": lambda t, r: _replace_token(t, r, r"(?<![0-9.e])[0-9]+(?![0-9.e])", _HUGE),
    "odd_value": lambda t, r: _replace_token(t, r, r"-?[0-9][0-9.e+-]*(?=\n|$)", _ODD_VALUES),
    "wrong_columns": lambda t, r: _lines_op(t, r, _wrong_columns),
    "delete_line": lambda t, r: _lines_op(t, r, lambda ls, i: ls.pop(i)),
    "duplicate_line": lambda t, r: _lines_op(t, r, lambda ls, i: ls.insert(i, ls[i])),
    "blank_line": lambda t, r: _lines_op(t, r, lambda ls, i: ls.insert(i, r.choice(("", " ")))),
    "count_off": lambda t, r: _replace_token(t, r, r"\A[0-9]+", ("0", "1", "99", "3 4", "-1")),
}
BYTE_MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip_byte": lambda b, r: (lambda p: b[:p] + bytes([b[p] ^ (1 << r.randrange(8))])
                               + b[p + 1:])(r.randrange(len(b))) if b else b,
    "truncate": lambda b, r: b[:r.randrange(len(b) + 1)],
    "latin1": lambda b, r: b.decode("utf-8", "replace").encode("latin-1", "replace"),
    "empty": lambda b, r: b"",
}


def _mutate_text(text: str, rnd: random.Random, names: list[str]) -> bytes:
    mutations = rnd.choice((0, 1, 1, 2, 3))
    for _ in range(mutations):
        if rnd.random() < 0.8:
            name = rnd.choice(sorted(TEXT_MUTATIONS))
            text = TEXT_MUTATIONS[name](text, rnd)
            names.append(name)
        else:
            name = rnd.choice(sorted(BYTE_MUTATIONS))
            data = BYTE_MUTATIONS[name](text.encode("utf-8", "surrogateescape"), rnd)
            names.append(name)
            text = data.decode("utf-8", "surrogateescape")
    return text.encode("utf-8", "surrogateescape")


# ------------------------------------------------------------------- precomputed payloads
def _payload(fmt: str, rnd: random.Random, graph: list[str]) -> tuple[Any, list[str]]:
    n, notes = len(graph), []
    rows = n if rnd.random() < 0.75 else rnd.choice((n - 1, n + 1, 0))
    shape = ((rows, 3), (rows, 2, 2))[rnd.random() < 0.3] if rnd.random() < 0.85 else \
        rnd.choice(((rows,), (), (rows, 1, 1, 1)))
    dtype = rnd.choice((np.float32, np.float64, np.float16)) if rnd.random() < 0.8 else \
        rnd.choice((np.int64, np.bool_, np.complex64, np.str_))
    x = np.random.default_rng(rnd.randrange(2 ** 32)).normal(size=shape) * 3
    if shape and shape[0] and rnd.random() < 0.4:
        mark = rnd.choice(("nan_row", "nan_cell", "zero_row", "inf", "big"))
        notes.append(mark)
        r = rnd.randrange(shape[0])
        if mark == "nan_row":
            x[r] = np.nan
        elif mark == "nan_cell":
            x.reshape(shape[0], -1)[r, 0] = np.nan
        elif mark == "zero_row":
            x[r] = 0
        elif mark == "inf":
            x.reshape(shape[0], -1)[r, 0] = np.inf
        else:
            x.reshape(shape[0], -1)[r, 0] = rnd.choice((1e39, -1.7e308, 3e38))
    with np.errstate(invalid="ignore", over="ignore"):  # NaN / 1e39 into int or float16
        x = x.astype(dtype) if dtype is not np.str_ else x.astype(str)
    if fmt == "precomputed-npy" or rnd.random() < 0.15:
        notes.append("bare")
        return x, notes
    payload: dict[Any, Any] = {rnd.choice(("x", "x", "features", "embeddings", "emb")): x}
    count = shape[0] if shape else 0
    if rnd.random() < 0.5:
        kind = rnd.choice(("bool", "int01", "float01", "float_nan", "two", "short"))
        notes.append(f"mask:{kind}")
        bits = np.array([rnd.random() < 0.7 for _ in range(count)], dtype=bool)
        payload["mask"] = {"bool": bits, "int01": bits.astype(np.int64),
                           "float01": bits.astype(np.float32),
                           "float_nan": np.where(bits, np.nan, 0).astype(np.float32),
                           "two": bits.astype(np.int64) * 2,
                           "short": bits[:-1]}[kind]
    if rnd.random() < 0.5:
        kind = rnd.choice(("graph", "permuted", "unknown", "duplicate", "int", "edge_space",
                           "none_match", "short"))
        notes.append(f"names:{kind}")
        names = [graph[i % n] for i in range(count)]
        if kind == "permuted":
            names = rnd.sample(graph, k=min(count, n)) + [f"zz{i}" for i in range(count - n)]
        elif kind == "unknown" and names:
            names[rnd.randrange(count)] = "not_in_graph"
        elif kind == "duplicate" and count > 1:
            names[1] = names[0]
        elif kind == "int":
            names = list(range(count))
        elif kind == "edge_space" and names:
            names[0] = names[0] + " "
        elif kind == "none_match":
            names = [f"other{i}" for i in range(count)]
        elif kind == "short":
            names = names[:-1]
        if len(set(map(str, names))) == len(names) or kind == "duplicate":
            payload["entity_names"] = np.array(names) if fmt == "precomputed-npz" else names
    return payload, notes


def _save(fmt: str, payload: Any, path: Path) -> None:
    buffer = io.BytesIO()
    if fmt == "precomputed-npy":
        np.save(buffer, np.asarray(payload), allow_pickle=False)
    elif fmt == "precomputed-npz":
        arrays = payload if isinstance(payload, dict) else {"x": payload}
        np.savez(buffer, **{str(k): np.asarray(v) for k, v in arrays.items()})
    else:
        def tensor(v: Any) -> Any:
            if isinstance(v, np.ndarray) and v.dtype.kind in "fiub" and v.dtype != np.float16:
                return torch.from_numpy(v)
            return v.tolist() if isinstance(v, np.ndarray) else v
        torch.save({k: tensor(v) for k, v in payload.items()} if isinstance(payload, dict)
                   else tensor(payload), buffer)
    path.write_bytes(buffer.getvalue())


def _read_container(fmt: str, path: Path) -> Any:
    """What numpy / torch themselves read from the container (the reference for its bytes)."""
    if fmt == "precomputed-npy":
        return np.load(path, allow_pickle=False)
    if fmt == "precomputed-npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------------------ the cases
SUFFIX = {"precomputed-npy": ".npy", "precomputed-npz": ".npz", "precomputed-pt": ".pt"}
FILE_NAME = {"2id-vocab": "entity2id.txt", "2id-triples": "train2id.txt", "tsv": "train.txt",
             "ntriples": "valid.txt", "numeric": "literals.txt", "entity-text": "entity2text.txt"}


def make_case(fmt: str, rnd: random.Random, folder: Path) -> dict[str, Any]:
    """Writes one (possibly damaged) file of format ``fmt`` under ``folder``; returns the case:
    ``path``, ``entities`` (the graph's names), ``mutations`` and format settings."""
    entities = _entity_names(rnd, rnd.randint(2, 8))
    case: dict[str, Any] = {"fmt": fmt, "entities": entities, "mutations": []}
    if fmt in SUFFIX:
        graph = [f"e{i}" for i in range(5)]
        payload, notes = _payload(fmt, rnd, graph)
        path = folder / f"features{SUFFIX[fmt]}"
        _save(fmt, payload, path)
        case["mutations"] = notes
        if rnd.random() < 0.25:
            name = rnd.choice(sorted(BYTE_MUTATIONS))
            path.write_bytes(BYTE_MUTATIONS[name](path.read_bytes(), rnd))
            case["mutations"].append(name)
        case.update(path=path, entities=graph, missing=rnd.choice(("none", "nan", "zero")))
        return case
    path = folder / FILE_NAME[fmt]
    path.write_bytes(_mutate_text(base_text(fmt, rnd, entities), rnd, case["mutations"]))
    case.update(path=path, relations=5)
    return case


def _reference(case: dict[str, Any]) -> Any:
    fmt, path, entities = case["fmt"], case["path"], case["entities"]
    if fmt in SUFFIX:
        try:
            payload = _read_container(fmt, path)
        except Exception:  # noqa: BLE001 - the container's own parser rejects the bytes
            raise Rejected("container") from None
        return ref_features(payload, entities, case["missing"])
    data = path.read_bytes()
    if fmt == "2id-vocab":
        return ref_vocab(data)
    if fmt == "2id-triples":
        return ref_id_triples(data, len(entities), case["relations"])
    if fmt == "tsv":
        return ref_tsv(data)
    if fmt == "ntriples":
        return ref_ntriples(data)
    if fmt == "numeric":
        return ref_numeric(data, entities)
    return ref_entity_text(data, entities)


def _load(case: dict[str, Any]) -> Any:
    """The library's result for the case, through the public API."""
    fmt, path, entities = case["fmt"], case["path"], case["entities"]
    if fmt == "2id-vocab":
        return read_id_vocab(path)
    if fmt == "2id-triples":
        return read_id_triples(path, num_entities=len(entities),
                               num_relations=case["relations"]).tolist()
    if fmt == "tsv":
        return [tuple(t) for t in read_string_triples(path)]
    if fmt == "ntriples":
        return [tuple(t) for t in read_ntriples(path)]
    if fmt == "numeric":
        got = read_numeric_triples(path, entities, warn=False)
        return {"names": got.names, "raw": got.raw.numpy(), "mask": got.mask.numpy(),
                "values": got.values.numpy(), "skipped": got.skipped}
    if fmt == "entity-text":
        got = read_entity_text(path, entities, warn=False)
        return {"texts": got.texts["name"], "skipped": got.skipped}
    empty = torch.zeros(0, 3, dtype=torch.long)
    kg = MultiModalKG(entities, ["r"], empty, empty, empty, name="fuzz")
    feats = PrecomputedModality(path, missing=case["missing"]).build(kg, cache=False,
                                                                     progress=False)
    return feats.x.numpy(), feats.mask.numpy()


def _equal(fmt: str, got: Any, want: Any) -> bool:
    if fmt == "numeric":
        return (got["names"] == want["names"] and got["skipped"] == want["skipped"]
                and np.array_equal(got["raw"], want["raw"])
                and np.array_equal(got["mask"], want["mask"])
                and np.allclose(got["values"], want["values"], rtol=1e-6, atol=1e-12))
    if fmt in SUFFIX:
        return (got[0].shape == want[0].shape and np.array_equal(got[0], want[0])
                and np.array_equal(got[1], want[1]))
    return bool(got == want)


def classify_error(error: BaseException, path: Path) -> str:
    """``error_line`` / ``error_file`` for a ValueError naming the file (and a line), else
    ``raw``."""
    message = str(error)
    if isinstance(error, ValueError) and str(path) in message:
        return "error_line" if re.search(re.escape(str(path)) + r" line [0-9]+", message) \
            else "error_file"
    return "raw"


def run_case(case: dict[str, Any]) -> tuple[str, bool, str]:
    """``(outcome, reference accepts, detail)`` of loading ``case`` with the library."""
    try:
        want, accepted, why = _reference(case), True, ""
    except Rejected as e:
        want, accepted, why = None, False, str(e)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = _load(case)
    except Exception as e:  # noqa: BLE001 - classifying every exception is the point
        outcome = classify_error(e, case["path"])
        return outcome, accepted, f"{type(e).__name__}: {str(e)[:300]}"
    if not accepted:
        return "accepted", False, f"loaded a file the reference rejects ({why}): {got!r:.200}"
    if not _equal(case["fmt"], got, want):
        return "changed", True, f"loaded {got!r:.200}, the file holds {want!r:.200}"
    return "ok", True, ""


def describe(case: dict[str, Any]) -> str:
    data = case["path"].read_bytes()
    return (f"{case['fmt']} {case['mutations']} {case['path'].name}: "
            f"{data[:300]!r}{'...' if len(data) > 300 else ''}")


