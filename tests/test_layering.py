"""mmgnn's layers import downward only, and no module reaches into another's private names.

The order, lowest first (``STYLE.md``, "Layout"):

``utils`` → ``data`` → ``nn``, ``modalities`` → ``eval``, ``sampling`` → ``models`` →
``train`` → ``recipes`` → ``cli``

A module may import from its own layer or a lower one. Every import counts: at module level,
inside functions, under ``if TYPE_CHECKING:`` (a type hint is a dependency too; the interface
a lower layer needs belongs in that lower layer, e.g. a small ``Protocol``), relative imports,
``importlib.import_module("mmgnn....")`` and lazy registry targets ``"mmgnn.pkg.mod:Name"``.

The checker is plain :mod:`ast` over the source files, so it needs no import of mmgnn and sees
imports that never run in a test (optional branches, type-checking blocks).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmgnn"

#: Rank of every top-level part of the package; equal ranks may import each other.
LAYERS: dict[str, int] = {
    "utils": 0,
    "data": 1,
    "nn": 2, "modalities": 2,
    "eval": 3, "sampling": 3,
    "models": 4,
    "train": 5,
    "recipes": 6,
    "cli": 7, "cli_args": 7, "cli_reproduce": 7,
    # the package root and ``python -m mmgnn`` sit above everything
    "__init__": 8, "__main__": 8,
}

# A lazy import target as the registries write it: "mmgnn.models.imf:IMF".
_LAZY_TARGET = re.compile(r"(mmgnn(?:\.\w+)+):\w+")


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of ``path`` (a file under ``root/mmgnn``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer of a dotted ``mmgnn`` module name, :obj:`None` for other packages."""
    parts = module.split(".")
    if parts[0] != "mmgnn":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve_relative(module: str | None, level: int, importer: str, is_package: bool) -> str:
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imported_modules(tree: ast.AST, importer: str, is_package: bool, modules: set[str],
                     ) -> list[tuple[int, str, str | None]]:
    """Every ``(line, module, name)`` that ``tree`` imports from ``mmgnn``.

    ``name`` is the name taken from the module by ``from module import name`` (:obj:`None` for
    plain imports). ``from pkg import sub`` where ``sub`` is a submodule counts as importing
    ``pkg.sub``. ``modules`` is the set of module names of the package (to tell submodules
    from attributes).
    """
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(node.module, node.level, importer, is_package)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    found.append((node.lineno, sub, None))
                else:
                    found.append((node.lineno, base, alias.name))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else None
            for arg in node.args:
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    continue
                if called in ("import_module", "__import__") and arg.value.startswith("mmgnn"):
                    found.append((node.lineno, arg.value, None))
                elif (lazy := _LAZY_TARGET.fullmatch(arg.value)) is not None:
                    found.append((node.lineno, lazy.group(1), None))
    return [f for f in found if layer_of(f[1]) is not None]


def private_attribute_uses(tree: ast.AST, importer: str, is_package: bool, modules: set[str],
                           ) -> list[tuple[int, str, str]]:
    """``(line, module, name)`` of ``alias._name`` where ``alias`` is a bound mmgnn module."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("mmgnn.") and a.asname:
                    bound[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(node.module, node.level, importer, is_package)
            for a in node.names:
                if f"{base}.{a.name}" in modules:
                    bound[a.asname or a.name] = f"{base}.{a.name}"
    uses = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in bound and _is_private(node.attr)
                and bound[node.value.id] != importer):
            uses.append((node.lineno, bound[node.value.id], node.attr))
    return uses


def check_package(package: Path) -> tuple[list[Violation], list[Violation]]:
    """``(upward imports, private-name imports)`` of every module under ``package``."""
    root = package.parent
    files = sorted(package.rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    upward: list[Violation] = []
    private: list[Violation] = []
    for f in files:
        rel = str(f.relative_to(root))
        importer = module_name(f, root)
        is_package = f.name == "__init__.py"
        mine = layer_of(importer)
        if mine not in LAYERS:
            upward.append(Violation(rel, 1, f"{importer} is in no layer: add {mine!r} to "
                                            f"LAYERS in tests/test_layering.py"))
            continue
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=rel)
        for line, target, name in imported_modules(tree, importer, is_package, modules):
            theirs = layer_of(target)
            if theirs not in LAYERS:
                upward.append(Violation(rel, line, f"imports {target}, which is in no layer"))
            elif LAYERS[theirs] > LAYERS[mine]:
                upward.append(Violation(rel, line, f"{mine} -> {theirs}: imports {target}"
                                                   + (f".{name}" if name else "")))
            if name is not None and _is_private(name) and target != importer:
                private.append(Violation(rel, line, f"imports private {name} from {target}"))
        for line, target, name in private_attribute_uses(tree, importer, is_package, modules):
            private.append(Violation(rel, line, f"uses private {target}.{name}"))
    return upward, private


def _report(violations: list[Violation]) -> str:
    return "\n".join(map(str, violations))


# ---------------------------------------------------------------------------------- the package
@pytest.fixture(scope="module")
def violations() -> tuple[list[Violation], list[Violation]]:
    return check_package(PACKAGE)


def test_every_subpackage_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"}
    assert parts - set(LAYERS) == set(), "new part of mmgnn: give it a rank in LAYERS"


def test_no_import_goes_upward(violations):
    upward, _ = violations
    assert not upward, f"{len(upward)} upward imports:\n{_report(upward)}"


def test_no_private_name_is_imported_from_another_module(violations):
    _, private = violations
    assert not private, f"{len(private)} private names used across modules:\n{_report(private)}"


# ---------------------------------------------------------------------------- the checker itself
def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "mmgnn"
    for name, text in {"__init__.py": "", "utils/__init__.py": "", "data/__init__.py": "",
                       "models/__init__.py": "", "train/__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_checker_flags_every_kind_of_upward_import(tmp_path):
    package = _fake_package(tmp_path, {
        "train/loop.py": "X = 1\n",
        "models/base.py": "from mmgnn.data import kg\n",  # downward: fine
        "models/top.py": "from mmgnn.train.loop import X\n",
        "models/typing_only.py": ("from typing import TYPE_CHECKING\n"
                                  "if TYPE_CHECKING:\n"
                                  "    from mmgnn.train import loop\n"),
        "models/inside.py": "def f():\n    import mmgnn.train.loop\n",
        "models/lazy.py": ("import importlib\n"
                           "def f():\n    return importlib.import_module('mmgnn.train.loop')\n"
                           "REG.register('x', 'mmgnn.train.loop:X')\n"),
        "data/relative.py": "from ..models import base\n",
        "data/root.py": "from mmgnn import train\n",
        "utils/up.py": "from mmgnn.data.kg import KG\n",
    })
    upward, private = check_package(package)
    got = sorted((v.path, v.line) for v in upward)
    assert got == [("mmgnn/data/relative.py", 1), ("mmgnn/data/root.py", 1),
                   ("mmgnn/models/inside.py", 2), ("mmgnn/models/lazy.py", 3),
                   ("mmgnn/models/lazy.py", 4), ("mmgnn/models/top.py", 1),
                   ("mmgnn/models/typing_only.py", 3), ("mmgnn/utils/up.py", 1)], \
        _report(upward)
    assert "models -> train: imports mmgnn.train.loop.X" in _report(upward)
    assert private == []


def test_checker_flags_private_names_and_unknown_layers(tmp_path):
    package = _fake_package(tmp_path, {
        "data/filter.py": "_CSR = 1\nPUBLIC = 2\n",
        "data/readers.py": ("from mmgnn.data.filter import _CSR, PUBLIC\n"
                            "from . import filter as f\n"
                            "from mmgnn.data import filter\n"
                            "Y = filter._CSR + filter.PUBLIC + filter.__name__ + f._CSR\n"),
        "data/own.py": "from mmgnn.data.own import _helper\n",  # its own name: not across
        "plugins/__init__.py": "",
    })
    upward, private = check_package(package)
    assert [str(v) for v in private] == [
        "mmgnn/data/readers.py:1: imports private _CSR from mmgnn.data.filter",
        "mmgnn/data/readers.py:4: uses private mmgnn.data.filter._CSR",
        "mmgnn/data/readers.py:4: uses private mmgnn.data.filter._CSR",
    ]
    assert [str(v) for v in upward] == [
        "mmgnn/plugins/__init__.py:1: mmgnn.plugins is in no layer: add 'plugins' to LAYERS "
        "in tests/test_layering.py"]
