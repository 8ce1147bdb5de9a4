"""Atomic file I/O: checkpoints and JSON that a crash mid-write never leaves truncated."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch

# ``.<name>.<8 random characters>.tmp``: the temporary files of :func:`atomic_write`.
_PARTIAL = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Writes through ``write(file)`` into ``.<name>.XXXXXXXX.tmp`` next to ``path``, syncs it
    and renames it over ``path``. A process killed (SIGKILL) before the rename leaves that
    temporary file behind; :func:`remove_partial_writes` removes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Writes ``state`` with :func:`torch.save` to a temporary file in the same folder, syncs
    it to disk and renames it over ``path`` (an atomic replace on POSIX and Windows)."""
    atomic_write(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train first with `mmgnn train ... "
                                f"--out {path.parent}`")
    return torch.load(path, map_location=map_location, weights_only=False)


def can_resume(folder: str | Path, name: str = "checkpoint.pt") -> bool:
    """Whether the run in ``folder`` has a checkpoint ``name`` to resume from. A run killed
    before its first checkpoint has none: this says so in one line, and the caller starts
    the run from the beginning (with the same seed, the same run)."""
    if (Path(folder) / name).is_file():
        return True
    print(f"mmgnn: {folder} has no {name} yet; starting the run from the beginning")
    return False


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Removes the temporary files that a killed write left in ``folder`` (those named
    ``.<name>.XXXXXXXX.tmp``, see :func:`atomic_write`); returns them. Call it when a run
    starts or resumes in ``folder``, never while another process writes there."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.iterdir() if _PARTIAL.match(p.name) and p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v) for v in value]
    return value


def save_json(path: str | Path, value: Any) -> None:
    """Atomically writes ``value`` as indented, strict JSON (RFC 8259): a non-finite float
    (NaN, +-inf, which :func:`json.dumps` would write as the invalid ``NaN`` /
    ``Infinity``) becomes ``null``."""
    data = json.dumps(_finite_or_null(value), indent=2, sort_keys=False,
                      allow_nan=False).encode()
    atomic_write(Path(path), lambda f: f.write(data))


@contextmanager
def removed_on_failure(folder: str | Path, keep: str = "checkpoint.pt",
                       written: tuple[str, ...] = ("config.json",)) -> Iterator[None]:
    """Undoes a run's writes into ``folder`` when the run fails before its first ``keep``
    file exists: removes the folder if the run created it, else the ``written`` files. A
    failed run then leaves nothing a later command (``evaluate``, ``--resume``) trips on."""
    folder = Path(folder)
    fresh = not folder.exists()
    try:
        yield
    except BaseException:
        if not (folder / keep).exists():
            if fresh:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                for name in written:
                    (folder / name).unlink(missing_ok=True)
        raise
