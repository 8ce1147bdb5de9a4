"""Side information of the benchmarks: entity texts and numeric attributes.

Texts end up in ``kg.texts[kind]`` (one string or :obj:`None` per entity) for the encoders of
:mod:`mmgnn.modalities`; numeric attributes become the ``numeric`` modality. Side-information
files often cover more entities than the graph (FB15k-237's numeric file is the one of FB15K, a
superset): rows naming an entity outside the vocabulary are skipped, counted in ``skipped`` and
reported in a warning (``warn=True``), or folded into ``kg.quirks`` and the one summary warning by
:func:`mmgnn.data.load_dataset`. Malformed rows raise :class:`~mmgnn.data.DataFormatError`
naming the file and line, under the rules of :mod:`mmgnn.data.readers` (line ends, names kept
exactly without edge whitespace). Texts are prose, not keys: their edge whitespace is removed and
an empty text is missing (:obj:`None`).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import torch
from torch import Tensor

from mmgnn.data.parsing import DataFormatError, PathLike, check_name, read_lines, shown

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG

NORMALIZATIONS = ("minmax", "zscore", "none")

_URI_PREFIXES = ("http://dbpedia.org/resource/", "https://dbpedia.org/resource/")

# ASCII decimal notation only: float() also accepts '1_0', '٣', ' 1 ', 'infinity' and 'nan'.
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
# Values beyond float32 would become inf in the float32 features (and overflow min-max).
FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _index(entities: Sequence[str] | Mapping[str, int]) -> Mapping[str, int]:
    if isinstance(entities, Mapping):
        return entities
    return {name: i for i, name in enumerate(entities)}


def _skip_message(path: PathLike, skipped: int, total: int, num_entities: int,
                  example: str | None) -> str:
    return (f"{path}: skipped {skipped} of {total} rows naming an entity that is not in the "
            f"vocabulary ({num_entities} entities; e.g. {shown(example or '')}): the file "
            f"covers more entities than the graph")


@dataclass
class EntityTexts:
    """Per-entity texts read from one side-information file.

    Args:
        texts (dict[str, list[str | None]]): Text kind (``name``, ``label``, ``description``) to
            one string or :obj:`None` (missing) per entity.
        skipped (int): Rows of the file naming entities outside the vocabulary. (default: 0)
        source (Path, optional): The file read.
    """

    texts: dict[str, list[str | None]]
    skipped: int = 0
    source: Path | None = None

    def coverage(self, kind: str) -> int:
        """Number of entities with a text of ``kind``."""
        return sum(v is not None for v in self.texts[kind])

    def attach_to(self, kg: MultiModalKG) -> None:
        """Stores every kind in ``kg.texts`` (replacing a kind of the same name)."""
        for kind, values in self.texts.items():
            if len(values) != kg.num_entities:
                raise ValueError(f"{self.source}: {len(values)} {kind!r} texts for a graph of "
                                 f"{kg.num_entities} entities")
            kg.texts[kind] = values


@dataclass
class NumericAttributes:
    r"""Numeric attribute triples ``(entity, attribute, value)`` as a dense matrix.

    ``values[i, a]`` is the normalised value of attribute ``a`` of entity ``i`` where
    ``mask[i, a]``, and zero elsewhere. Normalisation is per attribute over the **present**
    values only (missing ones are not zeros to be averaged):

    .. math::
        \mathrm{minmax}: \frac{x - \min_a}{\max_a - \min_a} \qquad
        \mathrm{zscore}: \frac{x - \mu_a}{\sigma_a}

    ``minmax`` is LiteralE's and MMKB's choice; an attribute whose present values are all equal
    maps to 0 (``mask`` still says they are present). Attribute columns follow the file order of
    first appearance and include attributes whose rows were all skipped (an all-missing column),
    so the width depends on the file only.

    :meth:`attach_to` stores ``values`` as modality ``numeric`` with :attr:`entity_mask` as its
    presence mask, and this object as ``kg.extras["numeric"]`` for the per-attribute mask,
    names and raw values.

    Args:
        values (Tensor): :obj:`(N, A)` float32 normalised values.
        mask (Tensor): :obj:`(N, A)` bool, attribute present.
        names (list[str]): The :obj:`A` attribute names.
        raw (Tensor): :obj:`(N, A)` float64 values as in the file, zero where missing.
        normalization (str): ``minmax``, ``zscore`` or ``none``.
        skipped (int): Rows naming entities outside the vocabulary. (default: 0)
        source (Path, optional): The file read.
    """

    values: Tensor
    mask: Tensor
    names: list[str]
    raw: Tensor
    normalization: str = "minmax"
    skipped: int = 0
    source: Path | None = field(default=None)

    @property
    def entity_mask(self) -> Tensor:
        """:obj:`(N,)` bool: the entity has at least one attribute."""
        return self.mask.any(dim=1)

    def attach_to(self, kg: MultiModalKG, name: str = "numeric") -> None:
        """Adds modality ``name`` to ``kg`` and keeps this object in ``kg.extras[name]``."""
        kg.add_modality(name, self.values, self.entity_mask)
        kg.extras[name] = self


def uri_to_name(uri: str) -> str:
    """A readable name from an entity URI.

    ``<http://dbpedia.org/resource/Foo_Bar>`` becomes ``Foo Bar``: angle brackets and the DBpedia
    resource prefix are removed (DBpedia names may contain ``/``, e.g. ``HIV/AIDS``); other URIs
    keep the part after the last ``/`` or ``#`` (``http://www.wikidata.org/entity/Q42`` becomes
    ``Q42``); then percent-escapes are decoded and underscores become spaces.
    """
    name = uri.strip()
    if name.startswith("<") and name.endswith(">"):
        name = name[1:-1]
    for prefix in _URI_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    else:
        if "://" in name:
            name = name.rstrip("/#")
            name = name[max(name.rfind("/"), name.rfind("#")) + 1:]
    return unquote(name).replace("_", " ")


def names_from_uris(uris: Sequence[str]) -> EntityTexts:
    """Kind ``name`` from URI entity names (DB15K, MKG-W); see :func:`uri_to_name`."""
    return EntityTexts({"name": [uri_to_name(u) or None for u in uris]})


def _keyed_rows(path: PathLike, index: Mapping[str, int], what: str, expected: str,
                ) -> tuple[list[tuple[int, int, str]], int, int, str | None]:
    """``(line, entity id, rest)`` of ``key<TAB>rest`` rows whose key is in ``index``.

    Returns the kept rows, the number skipped, the total and one skipped key.
    """
    lines = read_lines(path, what)
    kept: list[tuple[int, int, str]] = []
    seen: dict[str, int] = {}
    skipped, example = 0, None
    for lineno, line in enumerate(lines, 1):
        key, tab, rest = line.partition("\t")
        if not tab:
            raise DataFormatError(path, lineno, expected, line)
        check_name(path, lineno, line, key, expected)
        if key in seen:
            raise DataFormatError(path, lineno, f"one row per entity, but {shown(key)} already "
                                  f"has one on line {seen[key]}", line)
        seen[key] = lineno
        idx = index.get(key)
        if idx is None:
            skipped += 1
            example = example or key
            continue
        kept.append((lineno, idx, rest))
    return kept, skipped, len(lines), example


def _finish(texts: dict[str, list[str | None]], path: PathLike, skipped: int, total: int,
            num_entities: int, example: str | None, warn: bool) -> EntityTexts:
    if skipped and warn:
        warnings.warn(_skip_message(path, skipped, total, num_entities, example), stacklevel=3)
    return EntityTexts(texts, skipped, Path(path))


def read_entity_text(path: PathLike, entities: Sequence[str] | Mapping[str, int], *,
                     kind: str = "name", warn: bool = True) -> EntityTexts:
    """Reads ``entity<TAB>text`` rows (FB15k-237 ``entity2text.txt``).

    Args:
        path (str or PathLike): The file.
        entities (list[str] or Mapping[str, int]): Entity vocabulary (names or name to id).
        kind (str): Text kind to fill. (default: ``"name"``)
        warn (bool): Warn about rows naming unknown entities. (default: :obj:`True`)

    Returns:
        EntityTexts: ``texts[kind]``; empty texts and entities without a row are :obj:`None`.
    """
    index = _index(entities)
    rows, skipped, total, example = _keyed_rows(
        path, index, "'entity<TAB>text' rows", "'entity<TAB>text'")
    values: list[str | None] = [None] * len(index)
    for _, idx, text in rows:
        values[idx] = text.strip() or None
    return _finish({kind: values}, path, skipped, total, len(index), example, warn)


def read_wordnet_text(path: PathLike, entities: Sequence[str] | Mapping[str, int], *,
                      warn: bool = True) -> EntityTexts:
    """Reads WordNet ``offset<TAB>lemma, gloss`` rows (``wordnet_entity2text.txt``).

    Used by WN18RR and WN18-IMG, whose entity names are the synset offsets. The text is split at
    its first ``", "``: the lemma becomes kind ``name`` and the gloss kind ``description``.

    Args:
        path (str or PathLike): The file.
        entities (list[str] or Mapping[str, int]): Entity vocabulary (offsets).
        warn (bool): Warn about rows naming unknown entities. (default: :obj:`True`)
    """
    index = _index(entities)
    expected = "'offset<TAB>lemma, gloss'"
    rows, skipped, total, example = _keyed_rows(path, index, f"{expected} rows", expected)
    names: list[str | None] = [None] * len(index)
    glosses: list[str | None] = [None] * len(index)
    for lineno, idx, text in rows:
        lemma, comma, gloss = text.partition(", ")
        if not comma or not lemma.strip():
            raise DataFormatError(path, lineno, expected, text)
        names[idx] = lemma.strip()
        glosses[idx] = gloss.strip() or None
    return _finish({"name": names, "description": glosses}, path, skipped, total, len(index),
                   example, warn)


def read_wikidata_json(path: PathLike, entities: Sequence[str] | Mapping[str, int], *,
                       warn: bool = True) -> EntityTexts:
    """Reads ``entity2wikidata.json`` (``{"/m/..": {"label": .., "description": .., ..}}``).

    ``label`` and ``description`` become separate text kinds; :obj:`null` or empty values are
    :obj:`None`. Other fields (``alternatives``, ``wikipedia``, ``wikidata_id``) are not used.

    Args:
        path (str or PathLike): The file.
        entities (list[str] or Mapping[str, int]): Entity vocabulary (Freebase ids).
        warn (bool): Warn about entries naming unknown entities. (default: :obj:`True`)
    """
    index = _index(entities)
    text = "\n".join(read_lines(path, "a JSON object of Freebase id -> {label, description}"))

    def line_of(key: str) -> int:
        return text.count("\n", 0, max(text.find(json.dumps(key, ensure_ascii=False)), 0)) + 1

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in pairs:
            if key in out:
                raise DataFormatError(path, line_of(key), "one entry per key", key,
                                      " (it occurs twice)")
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise DataFormatError(path, e.lineno, "JSON", note=f", got a syntax error: {e.msg} "
                              f"(column {e.colno})") from None
    except ValueError as e:  # e.g. an integer beyond Python's digit limit
        raise DataFormatError(path, None, "JSON", note=f", got {e}") from None
    except RecursionError:
        raise DataFormatError(path, None, "a JSON object of entity -> {label, description}",
                              note=", got nesting too deep to parse") from None
    if not isinstance(data, dict):
        raise DataFormatError(path, 1, "a JSON object keyed by entity",
                              note=f", got {type(data).__name__}")
    labels: list[str | None] = [None] * len(index)
    descriptions: list[str | None] = [None] * len(index)
    skipped, example = 0, None
    for key, entry in data.items():
        ok = isinstance(entry, dict) and all(
            isinstance(entry.get(f), str | type(None)) for f in ("label", "description"))
        if not ok:
            raise DataFormatError(path, line_of(key), f"an object with string or null 'label' "
                                  f"and 'description' for {shown(key)}", json.dumps(entry))
        check_name(path, line_of(key), key, key, "an entity name as the key")
        idx = index.get(key)
        if idx is None:
            skipped += 1
            example = example or key
            continue
        labels[idx] = (entry.get("label") or "").strip() or None
        descriptions[idx] = (entry.get("description") or "").strip() or None
    return _finish({"label": labels, "description": descriptions}, path, skipped, len(data),
                   len(index), example, warn)


def normalize_attributes(x: Tensor, mask: Tensor, method: str = "minmax") -> Tensor:
    """Per-column normalisation of :obj:`(N, A)` ``x`` over the entries where ``mask``.

    See :class:`NumericAttributes` for the formulas. Missing entries are zero in the result.
    Each column is first divided by a power of two near its largest magnitude, which
    changes neither formula nor any rounding (both are scale-invariant and a power-of-two
    scaling is exact) but keeps ``max - min`` and the squares finite for any finite input,
    e.g. ``±1.7e308``.
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {method!r}")
    x = x.to(torch.float64)
    zero = torch.zeros((), dtype=torch.float64)
    if method != "none" and x.numel():
        biggest = torch.where(mask, x.abs(), zero).amax(dim=0)
        # 2**(e - 1) <= biggest < 2**e; 2**e itself overflows for biggest >= 2**1023.
        exponent = torch.frexp(biggest).exponent - 1
        x = x / torch.ldexp(torch.ones_like(biggest), exponent)
    if method == "minmax":
        lo = torch.where(mask, x, math.inf).amin(dim=0)
        hi = torch.where(mask, x, -math.inf).amax(dim=0)
        span = hi - lo
        out = torch.where(span > 0, (x - lo) / span.clamp(min=1e-300), zero)
    elif method == "zscore":
        count = mask.sum(dim=0).clamp(min=1)
        mean = torch.where(mask, x, zero).sum(dim=0) / count
        std = (torch.where(mask, x - mean, zero) ** 2).sum(dim=0).div(count).sqrt()
        out = torch.where(std > 0, (x - mean) / std.clamp(min=1e-300), zero)
    else:
        out = x
    return torch.where(mask, out, zero)


def read_numeric_triples(path: PathLike, entities: Sequence[str] | Mapping[str, int], *,
                         normalization: str = "minmax", sep: str = "\t",
                         warn: bool = True) -> NumericAttributes:
    """Reads numeric attribute triples ``entity<TAB>attribute<TAB>value``.

    FB15k-237 ``numeric/FB15K_NumericalTriples.txt`` (MMKB) and Nations ``literals.txt`` (PyKEEN)
    have this layout. Entity and attribute names are kept exactly (no edge whitespace, see
    :func:`~mmgnn.data.parsing.check_name`). A value must be an ASCII decimal number
    (``-1.5e3``; not ``nan``, ``inf``, ``1_0`` or ``٣``) of magnitude at most
    :data:`FLOAT32_MAX` (about 3.4e38), so that the float32 features hold it. A bad value, a
    second value for the same entity and attribute, or a bad row is a
    :class:`~mmgnn.data.DataFormatError` naming the file and line.

    Args:
        path (str or PathLike): The file.
        entities (list[str] or Mapping[str, int]): Entity vocabulary.
        normalization (str): ``minmax`` (LiteralE/MMKB), ``zscore`` or ``none``.
            (default: ``"minmax"``)
        sep (str): Field separator. (default: tab)
        warn (bool): Warn about rows naming unknown entities. (default: :obj:`True`)

    Shapes:
        - **output.values, output.mask, output.raw:** :obj:`(N, A)`
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    index = _index(entities)
    lines = read_lines(path, "'entity<TAB>attribute<TAB>value' rows")
    expected = "'entity attribute value' as three fields separated by TAB"
    attributes: dict[str, int] = {}
    rows: list[tuple[int, int, float]] = []
    seen: dict[tuple[str, str], int] = {}
    skipped, example = 0, None
    for lineno, line in enumerate(lines, 1):
        parts = line.split(sep)
        if len(parts) != 3:
            raise DataFormatError(path, lineno, expected, line)
        entity, attribute, text = parts
        check_name(path, lineno, line, entity, expected)
        check_name(path, lineno, line, attribute, expected)
        value = float(text) if _FLOAT.fullmatch(text) else math.nan
        if not abs(value) <= FLOAT32_MAX:
            raise DataFormatError(path, lineno, f"a finite number as the value, not "
                                  f"{shown(text)} (ASCII decimal notation, magnitude at most "
                                  f"{FLOAT32_MAX:.4g})", line)
        if (entity, attribute) in seen:
            raise DataFormatError(path, lineno, f"one value per entity and attribute, but line "
                                  f"{seen[entity, attribute]} already gives {shown(attribute)} "
                                  f"of {shown(entity)}", line)
        seen[entity, attribute] = lineno
        a = attributes.setdefault(attribute, len(attributes))
        idx = index.get(entity)
        if idx is None:
            skipped += 1
            example = example or entity
            continue
        rows.append((idx, a, value))
    raw = torch.zeros(len(index), len(attributes), dtype=torch.float64)
    mask = torch.zeros(len(index), len(attributes), dtype=torch.bool)
    if rows:
        ent, att, val = zip(*rows, strict=True)
        ent_t, att_t = torch.tensor(ent), torch.tensor(att)
        raw[ent_t, att_t] = torch.tensor(val, dtype=torch.float64)
        mask[ent_t, att_t] = True
    if skipped and warn:
        warnings.warn(_skip_message(path, skipped, len(lines), len(index), example), stacklevel=2)
    values = normalize_attributes(raw, mask, normalization).to(torch.float32)
    return NumericAttributes(values, mask, list(attributes), raw, normalization, skipped,
                             Path(path))
