"""Lazy package attributes (PEP 562), so that ``import papershelf.<pkg>`` imports nothing heavy:
a public name is imported from its submodule on first use, then cached. Stdlib only."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, names: Mapping[str, str], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` (its ``__name__``).

    ``names`` maps each public name to the submodule (relative to ``package``) that defines it;
    ``submodules`` are reachable as attributes (``pkg.margins``) before they are imported.
    Usage: ``__getattr__, __dir__ = lazy_exports(__name__, {"tmd": "distance"})``.
    """
    names = dict(names)
    subs = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        elif name in subs:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names, *subs})

    return __getattr__, __dir__
