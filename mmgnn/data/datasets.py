"""The benchmark datasets by name, user folders by path.

:func:`load_dataset` turns a known name (``FB15k-237``, ``DB15K``, ``DB15K-IMF``, ``MKG-W``,
``TIVA``, ``KVC16K``, ``WN18RR``, ``WN18-IMG``, ``Nations``) or a folder of triples into a
:class:`~mmgnn.data.kg.MultiModalKG` with the dataset's side information attached. The dataset
cards in ``datasets/`` describe each source, format, statistics and quirk.

Quirks of a release are counted in ``kg.quirks`` and summarised in one warning
(:mod:`mmgnn.data.quirks`); folder formats are detected and read by :mod:`mmgnn.data.folders`.
A known dataset is parsed once and then loaded from its processed copy under
:func:`processed_dir` (see :func:`load_dataset`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from mmgnn.data.download import default_cache_dir, download_dataset
from mmgnn.data.folders import (
    ID_FILES,
    STRING_FILES,
    load_2id_folder,
    load_folder,
    load_string_folder,
)
from mmgnn.data.kg import SPLITS, MultiModalKG
from mmgnn.data.parsing import PathLike
from mmgnn.data.quirks import (
    DatasetQuirkWarning,
    Note,
    drop_duplicate_rows,
    first_occurrence,
    split_quirks,
    triple_keys,
    warn_quirks,
)
from mmgnn.data.readers import (
    encode_triples,
    read_id_vocab,
    read_ntriples,
    read_string_triples,
)
from mmgnn.data.side_info import (
    names_from_uris,
    read_entity_text,
    read_numeric_triples,
    read_wikidata_json,
    read_wordnet_text,
)
from mmgnn.utils.io import save_checkpoint

# Bump when what a load produces changes in a way the source hash below does not see.
PROCESSED_VERSION = 1

# A side-information loader attaches texts/modalities to ``kg`` from data root ``root`` and
# returns ``(quirk key, count, phrase)`` notes for everything it skipped.
SideInfoLoader = Callable[[MultiModalKG, Path], list[Note]]


@dataclass(frozen=True)
class DatasetSpec:
    """What mmgnn knows about one benchmark.

    Args:
        name (str): Display name, also ``kg.name``.
        folder (str): Folder under the data root (and in the download registry).
        layout (str): ``2id`` (OpenKE), ``tsv`` (tab-separated strings) or ``imf`` (the IMF
            split of DB15K).
        side_files (tuple[str, ...]): Side-information files read, as ``folder/file`` under
            the data root.
        side_info (callable, optional): Attaches the side information.
        texts (tuple[str, ...]): Text kinds attached.
        modalities (tuple[str, ...]): Feature modalities attached.
        expected (tuple[int, ...]): Entities, relations, train, valid, test as published; shown
            by :func:`dataset_statistics` when the data is not on this machine.
    """

    name: str
    folder: str
    layout: str
    side_files: tuple[str, ...] = ()
    side_info: SideInfoLoader | None = None
    texts: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    expected: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    aliases: tuple[str, ...] = field(default=())

    def structure_files(self) -> list[str]:
        """Files (``folder/file`` under the data root) holding vocabularies and triples."""
        if self.layout == "2id":
            return [f"{self.folder}/{f}" for f in ID_FILES]
        if self.layout == "tsv":
            return [f"{self.folder}/{f}" for f in STRING_FILES]
        return ([f"{self.folder}/{f}" for f in ID_FILES]
                + [f"{self.folder}/imf_split/{f}"
                   for f in ("entity2id.txt", "relation2id.txt", "val.txt", "test.txt")])

    def required_files(self, add_side_info: bool = True) -> list[str]:
        return self.structure_files() + (list(self.side_files) if add_side_info else [])


# ------------------------------------------------------------------ side information loaders
def _skip_note(key: str, skipped: int, file: str, what: str, why: str = "") -> list[Note]:
    if not skipped:
        return []
    return [(key, skipped, f"skipped {skipped:,} {what} of {file} naming entities outside the "
                           f"graph{why}")]


def _fb15k237_side(kg: MultiModalKG, root: Path) -> list[Note]:
    folder = root / "FB15k-237"
    index = {n: i for i, n in enumerate(kg.entity_names)}
    names = read_entity_text(folder / "entity2text.txt", index, kind="name", warn=False)
    wikidata = read_wikidata_json(folder / "entity2wikidata.json", index, warn=False)
    numeric = read_numeric_triples(folder / "numeric" / "FB15K_NumericalTriples.txt", index,
                                   warn=False)
    names.attach_to(kg)
    wikidata.attach_to(kg)
    numeric.attach_to(kg)
    return (_skip_note("entity2text_rows_skipped", names.skipped, "entity2text.txt", "rows")
            + _skip_note("wikidata_entries_skipped", wikidata.skipped, "entity2wikidata.json",
                         "entries")
            + _skip_note("numeric_rows_skipped", numeric.skipped,
                         "numeric/FB15K_NumericalTriples.txt", "rows",
                         " (the file covers FB15K, a superset of FB15k-237)"))


def _uri_names(kg: MultiModalKG, root: Path) -> list[Note]:
    names_from_uris(kg.entity_names).attach_to(kg)
    return []


def _own_names(kg: MultiModalKG, root: Path) -> list[Note]:
    kg.texts["name"] = list(kg.entity_names)
    return []


def _wordnet_side(kg: MultiModalKG, root: Path) -> list[Note]:
    texts = read_wordnet_text(root / "WN18RR" / "wordnet_entity2text.txt", kg.entity_names,
                              warn=False)
    texts.attach_to(kg)
    return _skip_note("wordnet_rows_skipped", texts.skipped, "WN18RR/wordnet_entity2text.txt",
                      "rows")


def _nations_side(kg: MultiModalKG, root: Path) -> list[Note]:
    numeric = read_numeric_triples(root / "Nations-literal" / "literals.txt", kg.entity_names,
                                   warn=False)
    numeric.attach_to(kg)
    return _skip_note("numeric_rows_skipped", numeric.skipped, "literals.txt", "rows")


SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec("FB15k-237", "FB15k-237", "tsv",
                ("FB15k-237/entity2text.txt", "FB15k-237/entity2wikidata.json",
                 "FB15k-237/numeric/FB15K_NumericalTriples.txt"),
                _fb15k237_side, ("name", "label", "description"), ("numeric",),
                (14541, 237, 272115, 17535, 20466)),
    DatasetSpec("DB15K", "DB15K", "2id", (), _uri_names, ("name",), (),
                (12842, 279, 79222, 9904, 9902)),
    DatasetSpec("DB15K-IMF", "DB15K", "imf", (), _uri_names, ("name",), (),
                (12842, 279, 60559, 9903, 19806)),
    DatasetSpec("MKG-W", "MKG-W", "2id", (), _uri_names, ("name",), (),
                (15000, 169, 34196, 4276, 4274)),
    DatasetSpec("TIVA", "TIVA", "2id", (), _own_names, ("name",), (),
                (11858, 16, 20071, 2000, 2000)),
    DatasetSpec("KVC16K", "KVC16K", "2id", (), _own_names, ("name",), (),
                (16015, 4, 180190, 22523, 22525), aliases=("kuai16k",)),
    DatasetSpec("WN18RR", "WN18RR", "tsv", ("WN18RR/wordnet_entity2text.txt",), _wordnet_side,
                ("name", "description"), (), (40943, 11, 86835, 3034, 3134)),
    DatasetSpec("WN18-IMG", "WN18-IMG", "2id", ("WN18RR/wordnet_entity2text.txt",),
                _wordnet_side, ("name", "description"), (), (40943, 18, 141442, 5000, 5000)),
    DatasetSpec("Nations", "Nations-literal", "tsv", ("Nations-literal/literals.txt",),
                _nations_side, (), ("numeric",), (14, 55, 1592, 199, 201),
                aliases=("nationsliteral",)),
)


def _canonical(name: str) -> str:
    return "".join(c for c in name.lower() if c not in "-_ ")


_BY_KEY = {key: spec for spec in SPECS for key in (_canonical(spec.name), *spec.aliases)}


def list_datasets() -> list[str]:
    """Names of the known datasets, as :func:`load_dataset` accepts them."""
    return [spec.name for spec in SPECS]


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of a known name (case-insensitive; ``-``, ``_``, spaces
    ignored)."""
    spec = _BY_KEY.get(_canonical(name))
    if spec is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())} (or "
                         f"pass the path of a folder of triples)")
    return spec


# ------------------------------------------------------------------------------ structure
def _load_imf(root: Path) -> tuple[list[str], list[str], list[Tensor]]:
    """The IMF split: its own vocabularies, its val/test, and train = DB15K minus val, test."""
    db, imf = root / "DB15K", root / "DB15K" / "imf_split"
    entities = read_id_vocab(imf / "entity2id.txt")
    relations = read_id_vocab(imf / "relation2id.txt")
    e_idx = {n: i for i, n in enumerate(entities)}
    r_idx = {n: i for i, n in enumerate(relations)}
    valid = encode_triples(read_ntriples(imf / "val.txt"), e_idx, r_idx, source=imf / "val.txt")
    test = encode_triples(read_ntriples(imf / "test.txt"), e_idx, r_idx,
                          source=imf / "test.txt")
    db_entities, db_relations, db_splits = load_2id_folder(db)
    maps = []
    for names, index, kind in ((db_entities, e_idx, "entity"), (db_relations, r_idx, "relation")):
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"{db / f'{kind}2id.txt'}: {len(missing)} {kind} names are not in "
                             f"{imf / f'{kind}2id.txt'} (e.g. {missing[0]!r}); the IMF train "
                             f"split is derived from DB15K through shared names")
        maps.append(torch.tensor([index[n] for n in names], dtype=torch.long))
    e_map, r_map = maps
    every = torch.cat(db_splits)
    every = torch.stack([e_map[every[:, 0]], r_map[every[:, 1]], e_map[every[:, 2]]], dim=1)
    n, r = len(entities), len(relations)
    keys = triple_keys(every, n, r)
    keep = first_occurrence(keys) & ~torch.isin(keys, triple_keys(torch.cat([valid, test]), n, r))
    return entities, relations, [every[keep], valid, test]


def _load_structure(spec: DatasetSpec, root: Path) -> tuple[list[str], list[str], list[Tensor]]:
    folder = root / spec.folder
    if spec.layout == "2id":
        return load_2id_folder(folder)
    if spec.layout == "tsv":
        return load_string_folder([folder / f for f in STRING_FILES], read_string_triples)
    return _load_imf(root)


# --------------------------------------------------------------------------------- locate
def _candidates(root: PathLike | None) -> list[Path]:
    out = [Path(root).expanduser()] if root is not None else []
    env = os.environ.get("MMGNN_DATA")
    if env:
        out.append(Path(env).expanduser())
    out.append(default_cache_dir())
    return out


def find_local(name: str, root: PathLike | None = None, *,
               add_side_info: bool = True) -> Path | None:
    """The data root holding every file a dataset needs, or :obj:`None`.

    Looks in ``root``, then ``$MMGNN_DATA``, then the download cache (``$MMGNN_CACHE``, default
    ``~/.cache/mmgnn/datasets``). Files found are trusted; see :func:`mmgnn.data.verify`.
    """
    spec = get_spec(name)
    need = spec.required_files(add_side_info)
    for candidate in _candidates(root):
        if all((candidate / f).is_file() for f in need):
            return candidate
    return None


def _locate(spec: DatasetSpec, root: PathLike | None, add_side_info: bool,
            download: bool) -> Path:
    found = find_local(spec.name, root, add_side_info=add_side_info)
    if found is not None:
        return found
    need = spec.required_files(add_side_info)
    places = ", ".join(str(c) for c in _candidates(root))
    if not download:
        raise FileNotFoundError(f"{spec.name}: {', '.join(need)} not found under any of "
                                f"{places}; pass download=True to fetch them")
    target = Path(root).expanduser() if root is not None else default_cache_dir()
    download_dataset(spec.folder, target)
    for path in need:  # files of other folders (WN18-IMG reads WN18RR's WordNet text)
        folder, file = path.split("/", 1)
        if folder != spec.folder:
            download_dataset(folder, target, files=[file])
    return target


# ------------------------------------------------------------------------- processed cache
def processed_dir() -> Path:
    """Where :func:`load_dataset` keeps processed datasets: ``processed/`` under the download
    cache (``$MMGNN_CACHE``, default ``~/.cache/mmgnn/datasets``). Safe to delete."""
    return default_cache_dir() / "processed"


@functools.cache
def _source_hash() -> str:
    """SHA-256 of the data package's own code: a changed reader reprocesses."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def processed_path(spec: DatasetSpec, data_root: Path, *, drop_duplicates: bool,
                   add_side_info: bool) -> Path:
    """The cache file of ``spec`` read from ``data_root`` with these options:
    ``<processed_dir>/<name>-<options>-<key>.pt``. The key hashes the options, the data
    root, each raw file's size and modification time, :data:`PROCESSED_VERSION`, the torch
    and PyG versions and :func:`_source_hash`, so that any change reprocesses."""
    import torch_geometric

    files = []
    for rel in spec.required_files(add_side_info):
        stat = (data_root / rel).stat()
        files.append([rel, stat.st_size, stat.st_mtime_ns])
    blob = json.dumps({"version": PROCESSED_VERSION, "root": str(data_root.resolve()),
                       "drop_duplicates": drop_duplicates, "add_side_info": add_side_info,
                       "files": files, "torch": torch.__version__,
                       "pyg": torch_geometric.__version__, "source": _source_hash()})
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return processed_dir() / f"{_options_stem(spec, drop_duplicates, add_side_info)}-{key}.pt"


def _options_stem(spec: DatasetSpec, drop_duplicates: bool, add_side_info: bool) -> str:
    return (re.sub(r"[^A-Za-z0-9]+", "_", spec.name) + ("-side" if add_side_info else "-bare")
            + ("-dedup" if drop_duplicates else ""))


def _read_processed(path: Path) -> tuple[MultiModalKG, list[Note], list[Note]] | None:
    """The cached ``(kg, found, dropped)``, or :obj:`None` (with a one-line warning when the
    file exists but cannot be read)."""
    if not path.is_file():
        return None
    try:
        # Our own cache file, written by _write_processed: a full unpickle is fine.
        state = torch.load(path, map_location="cpu", weights_only=False)
        kg, found, dropped = state["kg"], state["found"], state["dropped"]
        if not isinstance(kg, MultiModalKG):
            raise TypeError(f"holds a {type(kg).__name__}, expected a MultiModalKG")
    except Exception as e:  # any damage means: parse the raw files again
        warnings.warn(f"{path}: unreadable processed dataset ({type(e).__name__}: {e}); "
                      f"reprocessing", stacklevel=3)
        return None
    return kg, [tuple(n) for n in found], [tuple(n) for n in dropped]


def _write_processed(path: Path, kg: MultiModalKG, found: list[Note],
                     dropped: list[Note]) -> None:
    try:
        save_checkpoint(path, {"kg": kg, "found": found, "dropped": dropped})
    except OSError as e:
        warnings.warn(f"{path}: could not cache the processed dataset ({e}); it will be "
                      f"parsed again on the next load", stacklevel=3)
        return
    stem = path.name.rsplit("-", 1)[0]
    for stale in path.parent.glob(f"{stem}-*.pt"):  # older keys of the same dataset/options
        if stale != path and stale.name.rsplit("-", 1)[0] == stem:
            stale.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------- load
def load_dataset(name_or_path: str | os.PathLike, root: PathLike | None = None, *,
                 drop_duplicates: bool = False, download: bool = True,
                 add_side_info: bool = True, force_reload: bool = False) -> MultiModalKG:
    r"""Loads a benchmark by name, or a folder of triples by path.

    **Known names** (case-insensitive; ``-``, ``_`` and spaces ignored): see
    :func:`list_datasets`. The dataset folder is looked for in ``root``, then ``$MMGNN_DATA``,
    then the download cache; if it is in none of them and ``download`` is set, its files are
    downloaded into ``root`` (or the cache when ``root`` is :obj:`None`) and checked against
    the registry checksums (see :mod:`mmgnn.data.download`). With ``add_side_info`` the
    dataset's texts and numeric attributes are attached:

    ============  =====================================================================
    FB15k-237     texts ``name`` (entity2text), ``label``, ``description`` (Wikidata);
                  modality ``numeric`` (116 MMKB attributes; ``kg.extras["numeric"]``)
    DB15K(-IMF)   text ``name`` from the DBpedia URIs
    MKG-W         text ``name``: the Wikidata ids (no natural-language names exist)
    TIVA, KVC16K  text ``name``: the entity names (English; Chinese)
    WN18RR,       texts ``name`` (lemma) and ``description`` (gloss) from
    WN18-IMG      ``WN18RR/wordnet_entity2text.txt``
    Nations       modality ``numeric`` (2 PyKEEN literals)
    ============  =====================================================================

    Like a PyG dataset, a known dataset is **processed once**: the loaded graph is saved
    (atomically) under :func:`processed_dir` and later loads read that file instead of parsing
    the raw files, as long as the raw files (size and modification time), the options, the
    data root and mmgnn's reader code are unchanged (:func:`processed_path`). The quirk
    warning is repeated on a cached load. An unreadable cache file is reprocessed with a
    one-line warning.

    ``DB15K-IMF`` is the IMF paper's split: its own ``entity2id``/``relation2id``, its
    ``val.txt``/``test.txt``, and as train every distinct DB15K triple (DB15K's train, valid,
    test in that order) that is in neither; IMF published no train file.

    **A path** is a folder in one of the formats (:func:`detect_format`); it is parsed on each
    load (not cached), without side information. For string triples the vocabularies follow
    the order of first appearance over train, valid, test
    (:func:`~mmgnn.data.readers.build_vocabulary`).

    Args:
        name_or_path (str or PathLike): A known name or a folder.
        root (str or PathLike, optional): Folder holding the dataset folders.
        drop_duplicates (bool): Drop repeated rows within each split and valid/test rows whose
            triple occurs in train; the counts go to ``kg.quirks["dropped_<split>"]``.
            Overlaps between valid and test are reported, not dropped. (default: :obj:`False`)
        download (bool): Download a known dataset that is not found. (default: :obj:`True`)
        add_side_info (bool): Attach texts and numeric attributes. (default: :obj:`True`)
        force_reload (bool): Parse the raw files even if a processed copy exists (and
            replace it). (default: :obj:`False`)

    Returns:
        MultiModalKG: with ``kg.quirks`` holding the nonzero counts of :func:`split_quirks`
        and of skipped side-information rows (a missing key means zero).
    """
    spec = None
    text = os.fspath(name_or_path)
    if not isinstance(name_or_path, os.PathLike) and "/" not in text and os.sep not in text:
        spec = _BY_KEY.get(_canonical(text))
    if spec is None:
        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{text!r} is neither a known dataset "
                                    f"({', '.join(list_datasets())}) nor a folder of triples")
        kg, found, dropped = _process(folder.resolve().name, load_folder(folder), None, None,
                                      drop_duplicates, add_side_info)
    else:
        data_root = _locate(spec, root, add_side_info, download)
        cache = processed_path(spec, data_root, drop_duplicates=drop_duplicates,
                               add_side_info=add_side_info)
        cached = None if force_reload else _read_processed(cache)
        if cached is not None:
            kg, found, dropped = cached
        else:
            kg, found, dropped = _process(spec.name, _load_structure(spec, data_root), spec,
                                          data_root, drop_duplicates, add_side_info)
            _write_processed(cache, kg, found, dropped)
    warn_quirks(kg.name, found, dropped, drop_duplicates)
    return kg


def _process(name: str, structure: tuple[list[str], list[str], list[Tensor]],
             spec: DatasetSpec | None, data_root: Path | None, drop_duplicates: bool,
             add_side_info: bool) -> tuple[MultiModalKG, list[Note], list[Note]]:
    """The graph of parsed vocabularies and splits, with its quirks and side information."""
    entities, relations, parts = structure
    splits = dict(zip(SPLITS, parts, strict=True))
    found = split_quirks(splits, len(entities), len(relations))
    dropped = (drop_duplicate_rows(splits, len(entities), len(relations)) if drop_duplicates
               else [])
    kg = MultiModalKG(entities, relations, splits["train"], splits["valid"], splits["test"],
                      name=name)
    if spec is not None and add_side_info and spec.side_info is not None:
        found += spec.side_info(kg, data_root)
    kg.quirks.update({k: n for k, n, _ in found + dropped})
    return kg, found, dropped


# ----------------------------------------------------------------------------- statistics
def dataset_statistics(root: PathLike | None = None, *, load: bool = True,
                       ) -> list[dict[str, object]]:
    """One row per known dataset for ``mmgnn datasets``.

    Keys: ``dataset``, ``entities``, ``relations``, ``train``, ``valid``, ``test``,
    ``side information`` (text kinds and modalities) and ``local`` (the data root holding it,
    or ``""``). Datasets found locally are loaded (``load=True``) and measured; the others
    show the published sizes.
    """
    rows = []
    for spec in SPECS:
        local = find_local(spec.name, root)
        entities, relations, train, valid, test = spec.expected
        if local is not None and load:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DatasetQuirkWarning)
                kg = load_dataset(spec.name, local, download=False)
            entities, relations = kg.num_entities, kg.num_relations
            train, valid, test = len(kg.train), len(kg.valid), len(kg.test)
        side = [f"text:{k}" for k in spec.texts] + list(spec.modalities)
        rows.append({"dataset": spec.name, "entities": entities, "relations": relations,
                     "train": train, "valid": valid, "test": test,
                     "side information": ", ".join(side) or "-",
                     "local": str(local) if local is not None else ""})
    return rows


def dataset_table(root: PathLike | None = None, *, load: bool = True) -> str:
    """:func:`dataset_statistics` as an aligned text table."""
    rows = dataset_statistics(root, load=load)
    for row in rows:
        row["local"] = row["local"] or "not downloaded"
    columns = list(rows[0])
    cells = [[f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = {"entities", "relations", "train", "valid", "test"}

    def fmt(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if c in numeric else v.ljust(w)
                         for v, w, c in zip(values, widths, columns, strict=True)).rstrip()

    return "\n".join([fmt(columns), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells])
