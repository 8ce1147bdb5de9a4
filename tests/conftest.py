"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder of real benchmark files: ``$MMGNN_DATA``, else ``../shared/datasets``.

    Tests using it are skipped only when that folder does not exist.
    """
    env = os.environ.get("MMGNN_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
    if not root.is_dir():
        pytest.skip(f"benchmark data folder {root} does not exist (set MMGNN_DATA to the folder "
                    f"holding DB15K/, FB15k-237/, ...)")
    return root
