"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG

# Kept free of mmgnn imports (the helpers import them when a test asks for the toy graph),
# so that collecting one test file does not import every layer of the package.
TOY = Path(__file__).resolve().parent / "assets" / "toy"


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


@pytest.fixture(scope="session")
def toy_folder(tmp_path_factory) -> Path:
    """A private copy of ``tests/assets/toy`` (a reader that caches what it parsed writes
    there, not into the repository)."""
    return Path(shutil.copytree(TOY, tmp_path_factory.mktemp("toy") / "toy"))


@pytest.fixture
def toy_kg(toy_folder) -> MultiModalKG:
    """The toy graph (see :data:`tests.helpers.TOY`), loaded afresh for each test through the
    public readers, so a test may change it. It ships with the tests: it never skips."""
    from tests.helpers import load_toy_kg

    return load_toy_kg(toy_folder)


@pytest.fixture
def one_thread():
    """One torch thread for the test: on tiny tensors a second thread only adds hand-offs,
    costly on a shared machine. The thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> str:
    """The device of a device-parametrised test: ``cpu`` always; ``cuda`` where torch sees a
    CUDA device, skipped elsewhere (CPU CI runs the CPU half; ``-k cuda`` picks the GPU
    half)."""
    if request.param == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
    return request.param
