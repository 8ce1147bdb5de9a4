"""Named registries of the buildable parts: models, decoders, samplers, losses.

A registry maps a name to a class (or any callable that builds the part), with fixed keyword
arguments when one class serves several names (``transe`` is a
:class:`~mmgnn.models.KGEModel` with ``decoder="transe"``). Built-in entries may be *lazy*, an
import path ``"package.module:Name"`` that is imported on first use, so that the command line
can list every name (``mmgnn train --help``) without importing torch. A user's part registers
the same way as the built-in ones::

    from mmgnn.models import LinkPredictor, register_model

    @register_model("my_gnn")
    class MyGNN(LinkPredictor):
        ...

and is then ``mmgnn train --model my_gnn`` or ``model: {name: my_gnn}`` in a config file (the
module that registers it must be imported first: ``mmgnn train --import my_package``).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any


class Registry:
    """Names to builders of one kind of part (``"model"``, ``"decoder"``, ...).

    Args:
        kind (str): What the entries build; used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, tuple[Callable | str, dict[str, Any]]] = {}

    def register(self, name: str, target: Callable | str | None = None, *,
                 replace: bool = False, **fixed: Any):
        """Registers ``target`` (a class, a builder, or a lazy ``"module:Name"`` path) under
        ``name``, with ``fixed`` keyword arguments passed on every build. Without ``target``
        it returns a class decorator. Names are case-insensitive; registering a taken name
        raises unless ``replace``."""
        key = name.lower()
        if not key.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{self.kind} name {name!r} must be letters, digits, '_' or '-'")

        def add(obj: Callable | str) -> Callable | str:
            if key in self._entries and not replace and self._entries[key] != (obj, fixed):
                raise ValueError(f"{self.kind} {name!r} is already registered "
                                 f"({self._describe(key)}); pass replace=True to override it")
            self._entries[key] = (obj, dict(fixed))
            return obj

        return add if target is None else add(target)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, name: str) -> str:
        """``name`` in canonical (lower-case) form; a :class:`KeyError` whose message lists
        the known names (and the closest one) otherwise. Imports nothing."""
        key = name.lower() if isinstance(name, str) else name
        if key not in self._entries:
            close = difflib.get_close_matches(str(key), self._entries, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"unknown {self.kind} {name!r}{hint} Known: {', '.join(self.names())}")
        return key

    def get(self, name: str) -> tuple[Callable, dict[str, Any]]:
        """The builder of ``name`` (imported if lazy) and its fixed keyword arguments."""
        key = self.check(name)
        target, fixed = self._entries[key]
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = getattr(importlib.import_module(module), attr)
            self._entries[key] = (target, fixed)
        return target, dict(fixed)

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Builds ``name`` with ``args`` and the fixed arguments updated by ``kwargs``."""
        target, fixed = self.get(name)
        overlap = set(fixed) & set(kwargs)
        if overlap:
            raise TypeError(f"{self.kind} {name!r} fixes {sorted(overlap)}; choose another "
                            f"name instead of passing them")
        return target(*args, **fixed, **kwargs)

    def _describe(self, key: str) -> str:
        target, fixed = self._entries[key]
        where = target if isinstance(target, str) else \
            f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', target)}"
        return where + (f" with {fixed}" if fixed else "")

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
