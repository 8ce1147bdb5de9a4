"""Downloading the benchmark files from their original public locations, checksum-verified.

``registry.tsv`` (package data) has one row per file: the dataset folder, the file's path inside
it, the URL it is fetched from (a raw GitHub URL pinned to a commit), its SHA-256 and its size.
A download goes through :func:`torch_geometric.data.download_url` into a temporary folder next to
its destination, is hashed, and is moved into place with :func:`os.replace` only if the hash
matches: a corrupted or truncated file never appears under its real name.

Files that already exist locally are **trusted** (not re-hashed on every load); call
:func:`verify` to check a folder against the registry.

Environment variables:

* ``MMGNN_MIRROR``: a folder or URL laid out like the dataset root
  (``<mirror>/<dataset>/<file>``) that replaces the original URLs, e.g. ``file:///data/mmkg``.
* ``MMGNN_CACHE``: where downloads go when no root is given
  (default ``~/.cache/mmgnn/datasets``); its ``processed/`` folder holds the processed
  datasets of :func:`~mmgnn.data.load_dataset`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
import urllib.error
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from mmgnn.data.parsing import PathLike

REGISTRY_COLUMNS = ("dataset", "file", "url", "sha256", "bytes")

_CHUNK = 1 << 20


@dataclass(frozen=True)
class RegistryEntry:
    """One downloadable file.

    Args:
        dataset (str): Dataset folder under the data root (``DB15K``, ``FB15k-237``, ...).
        file (str): Path inside the dataset folder (``imf_split/val.txt``).
        url (str): Where the file is published.
        sha256 (str): Hex SHA-256 of its content.
        bytes (int): Its size.
    """

    dataset: str
    file: str
    url: str
    sha256: str
    bytes: int

    def path(self, root: PathLike) -> Path:
        """Where the file lives under data root ``root``."""
        return Path(root) / self.dataset / self.file

    def source(self, mirror: str | None = None) -> str:
        """The URL to fetch: ``url``, or the file's place in ``mirror`` when one is given."""
        if not mirror:
            return self.url
        base = mirror if "://" in mirror else Path(mirror).resolve().as_uri()
        return f"{base.rstrip('/')}/{quote(self.dataset)}/{quote(self.file)}"


def _parse_registry(text: str, where: str) -> tuple[RegistryEntry, ...]:
    lines = text.rstrip("\n").split("\n")
    if tuple(lines[0].split("\t")) != REGISTRY_COLUMNS:
        raise ValueError(f"{where} line 1: expected the header {REGISTRY_COLUMNS}, got "
                         f"{lines[0]!r}")
    entries = []
    for lineno, line in enumerate(lines[1:], 2):
        parts = line.split("\t")
        ok = (len(parts) == 5 and len(parts[3]) == 64 and parts[4].isdigit()
              and all(c in "0123456789abcdef" for c in parts[3]))
        if not ok:
            raise ValueError(f"{where} line {lineno}: expected 'dataset file url sha256 bytes' "
                             f"separated by TAB with a 64-digit hex sha256, got {line[:80]!r}")
        entries.append(RegistryEntry(parts[0], parts[1], parts[2], parts[3], int(parts[4])))
    return tuple(entries)


@functools.cache
def registry() -> tuple[RegistryEntry, ...]:
    """Every file of the package's ``registry.tsv``."""
    ref = resources.files("mmgnn.data").joinpath("registry.tsv")
    return _parse_registry(ref.read_text(encoding="utf-8"), str(ref))


def registry_entries(dataset: str, files: list[str] | None = None) -> list[RegistryEntry]:
    """The registry rows of dataset folder ``dataset`` (optionally only those in ``files``)."""
    rows = [e for e in registry() if e.dataset == dataset]
    if not rows:
        known = sorted({e.dataset for e in registry()})
        raise ValueError(f"no files of dataset folder {dataset!r} in the registry; known: "
                         f"{', '.join(known)}")
    if files is not None:
        by_file = {e.file: e for e in rows}
        missing = [f for f in files if f not in by_file]
        if missing:
            raise ValueError(f"{dataset}: no registry entry for {missing}; the registry lists "
                             f"{sorted(by_file)}")
        rows = [by_file[f] for f in files]
    return rows


def default_cache_dir() -> Path:
    """``$MMGNN_CACHE``, else ``~/.cache/mmgnn/datasets``."""
    env = os.environ.get("MMGNN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmgnn" / "datasets"


def sha256sum(path: PathLike) -> str:
    """Hex SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fetch(entry: RegistryEntry, dest: Path, url: str) -> None:
    # PyG's download_url writes in place (and does not verify TLS certificates): it writes
    # into a fresh temporary folder next to ``dest``, and only a file whose SHA-256 matches
    # the registry is moved into place.
    from torch_geometric.data import download_url

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    try:
        try:
            path = Path(download_url(url, str(tmp), log=False, filename=dest.name))
        except (urllib.error.URLError, ValueError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise OSError(f"could not download {url} (for {entry.dataset}/{entry.file}): "
                          f"{reason}") from e
        actual = sha256sum(path)
        if actual != entry.sha256:
            raise ValueError(
                f"{url}: SHA-256 mismatch: expected {entry.sha256}, got {actual} "
                f"({path.stat().st_size} bytes, expected {entry.bytes}); {dest} was not written")
        os.replace(path, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_dataset(dataset: str, root: PathLike | None = None, *, files: list[str] | None = None,
             mirror: str | None = None, progress: bool = True) -> Path:
    """Downloads the files of a dataset folder that are not yet under ``root``.

    Each file is fetched with :func:`torch_geometric.data.download_url` into a temporary
    folder beside its destination, its SHA-256 checked against the registry, and then moved
    into place atomically; a mismatch raises a
    :class:`ValueError` naming the URL and both hashes, and leaves nothing behind. Files already
    present are trusted and not fetched again (see :func:`verify`).

    Args:
        dataset (str): Dataset folder name as in the registry (``DB15K``, ``Nations-literal``)
            or a known dataset name (``Nations``, ``db15k-imf``).
        root (str or PathLike, optional): Data root; the files go to ``root/<dataset>/``.
            (default: :func:`default_cache_dir`)
        files (list[str], optional): Only these files of the folder. (default: all)
        mirror (str, optional): Base folder or URL replacing the original locations.
            (default: ``$MMGNN_MIRROR``)
        progress (bool): Show a tqdm bar per dataset. (default: :obj:`True`)

    Returns:
        Path: ``root/<dataset>``.
    """
    from tqdm.auto import tqdm

    folder = _folder_of(dataset)
    root = Path(root).expanduser() if root is not None else default_cache_dir()
    mirror = mirror if mirror is not None else os.environ.get("MMGNN_MIRROR") or None
    todo = [e for e in registry_entries(folder, files) if not e.path(root).is_file()]
    if todo:
        with tqdm(total=sum(e.bytes for e in todo), unit="B", unit_scale=True,
                  desc=f"downloading {folder}", disable=not progress) as bar:
            for entry in todo:
                _fetch(entry, entry.path(root), entry.source(mirror))
                bar.update(entry.bytes)
    return root / folder


def verify(dataset: str, root: PathLike, *, files: list[str] | None = None) -> list[Path]:
    """Checks a local dataset folder against the registry's SHA-256 checksums.

    Args:
        dataset (str): Dataset folder or known dataset name.
        root (str or PathLike): Data root holding ``<dataset>/``.
        files (list[str], optional): Only these files. (default: every registry file)

    Returns:
        list[Path]: The verified files.

    Raises:
        ValueError: Naming every missing file and every file whose hash differs (expected and
            actual hash).
    """
    folder = _folder_of(dataset)
    ok, problems = [], []
    for entry in registry_entries(folder, files):
        path = entry.path(root)
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        actual = sha256sum(path)
        if actual != entry.sha256:
            problems.append(f"{path}: SHA-256 mismatch: expected {entry.sha256}, got {actual}")
        else:
            ok.append(path)
    if problems:
        raise ValueError(f"{len(problems)} of {len(problems) + len(ok)} files of {folder} fail "
                         f"verification:\n  " + "\n  ".join(problems))
    return ok


def _folder_of(name: str) -> str:
    """Registry folder of a dataset folder name or a known dataset name."""
    if any(e.dataset == name for e in registry()):
        return name
    from mmgnn.data.datasets import get_spec

    return get_spec(name).folder
