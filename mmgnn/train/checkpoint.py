"""Atomic checkpoints: a crash mid-write never leaves a truncated file behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic_write(path: Path, write) -> None:
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
    _atomic_write(Path(path), lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train first with `mmgnn train ... "
                                f"--out {path.parent}`")
    return torch.load(path, map_location=map_location, weights_only=False)


def save_json(path: str | Path, value: Any) -> None:
    """Atomically writes ``value`` as indented JSON."""
    data = json.dumps(value, indent=2, sort_keys=False).encode()
    _atomic_write(Path(path), lambda f: f.write(data))
