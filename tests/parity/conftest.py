"""Loading the released code of the five systems for the parity tests (``tests/parity/``).

``../shared/reference/<SYSTEM>/`` holds the official repositories' files at the spec commits
(``../shared/reference/README.md``). A parity test loads the one file it compares against with
:func:`load_reference`, copies that module's weights into mmgnn's with an explicit mapping
(:func:`copy_params`), feeds both the same inputs and compares outputs and gradients
(:func:`assert_close`), in float64 where the reference allows (:func:`float64`).

The reference files are never edited nor copied into the project. They were written for older
torch and for CUDA; :func:`load_reference` lets a test

- make the file's sibling imports resolve to the released files (the system folder is put on
  ``sys.path`` while the file runs: IMF's ``from layers.layer import *``),
- stand in a stub for an import the compared code does not use (``shims``, e.g. a module that
  needs a GPU build), made with :func:`stub_module`,
- repair, in memory, a syntax error of the release in code the test does not run
  (``fix_source``; the test says which error and why the repair cannot change what it compares).

Everything the load puts into ``sys.modules`` (the stubs, the file's own imports of released
files, the file itself) is removed afterwards and anything it replaced is put back, so nothing
leaks into other tests; the loaded module keeps its references to what it imported.

Test files import the helpers with ``from tests.parity.conftest import load_reference, ...``;
the ``float64`` fixture is found by pytest. Other systems' fixtures go at the end of this file.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

# CI checks the reference out at the same relative path: <repo>/../shared/reference.
REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"


def reference_path(relpath: str) -> Path:
    """The path of ``relpath`` under :data:`REFERENCE`; the test is skipped (with the path in
    the message) when the reference checkout is absent, and fails when only the file is."""
    if not REFERENCE.is_dir():
        pytest.skip(f"released reference code not found at {REFERENCE} (see "
                    f"../shared/reference/README.md)")
    path = REFERENCE / relpath
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such reference file (is the checkout at the spec "
                                f"commit of PROVENANCE.tsv?)")
    return path


def stub_module(name: str, path: Path | None = None, **attrs: object) -> types.ModuleType:
    """A stand-in module ``name`` with the given attributes. With ``path`` it is a package
    whose submodules are imported from that folder (so a released package's relative imports
    work without running its ``__init__.py``)."""
    module = types.ModuleType(name)
    if path is not None:
        module.__path__ = [str(path)]
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


@contextmanager
def isolated_modules(shims: Mapping[str, types.ModuleType] | None = None,
                     path: Path | None = None) -> Iterator[None]:
    """Run the body with ``shims`` in ``sys.modules`` (and ``path`` first on ``sys.path``);
    afterwards ``sys.modules`` and ``sys.path`` are as before: added entries removed,
    replaced ones restored."""
    saved_modules, saved_path = dict(sys.modules), list(sys.path)
    try:
        sys.modules.update(shims or {})
        if path is not None:
            sys.path.insert(0, str(path))
        yield
    finally:
        for key in [k for k in sys.modules if k not in saved_modules]:
            del sys.modules[key]
        sys.modules.update(saved_modules)
        sys.path[:] = saved_path


def load_reference(relpath: str, name: str | None = None, *,
                   shims: Mapping[str, types.ModuleType] | None = None,
                   fix_source: Callable[[str], str] | None = None) -> types.ModuleType:
    """Load the released file ``REFERENCE/relpath`` as a module.

    Args:
        relpath: The file under :data:`REFERENCE`, e.g. ``"IMF/models/model.py"``; its first
            component (the system folder) is on ``sys.path`` while it runs.
        name: The module's name while it runs (default: its dotted path inside the system
            folder, e.g. ``models.model``; a file with relative imports needs its package
            name, the parents given as ``shims`` made by :func:`stub_module` with ``path``).
        shims: Modules standing in for imports the compared code does not use.
        fix_source: An in-memory repair of the source text (the file is left as it is). It
            must change something: a repair that no longer applies raises.
    """
    path = reference_path(relpath)
    parts = Path(relpath).with_suffix("").parts
    name = name or ".".join(parts[1:])
    source = path.read_text()
    if fix_source is not None:
        fixed = fix_source(source)
        if fixed == source:
            raise ValueError(f"{path}: fix_source changed nothing (has the reference changed?)")
        source = fixed
    with isolated_modules(shims, REFERENCE / parts[0]):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        exec(compile(source, str(path), "exec"), module.__dict__)
    return module


@pytest.fixture
def float64():
    """float64 as torch's default dtype for the test (modules built inside get float64
    parameters); the previous default is restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@torch.no_grad()
def copy_params(mapping: Mapping[torch.Tensor, torch.Tensor]) -> None:
    """Copy each reference tensor (value) into the mmgnn tensor (key), in place; the shapes
    must match exactly (a transposed or reshaped weight is transposed or reshaped in the
    test's mapping, where a reader sees it)."""
    for ours, theirs in mapping.items():
        if ours.shape != theirs.shape:
            raise ValueError(f"cannot copy a {tuple(theirs.shape)} reference tensor into a "
                             f"{tuple(ours.shape)} mmgnn tensor")
        ours.copy_(theirs)


def assert_close(ours: torch.Tensor, theirs: torch.Tensor, tol: float, what: str) -> float:
    """Assert ``max |ours - theirs| <= tol`` (shapes equal) and return that difference, so a
    test can print the figure the README reports."""
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    diff = (ours - theirs).abs().max().item() if ours.numel() else 0.0
    assert diff <= tol, f"{what}: max |mmgnn - released| = {diff:.3g} > {tol:g}"
    return diff
