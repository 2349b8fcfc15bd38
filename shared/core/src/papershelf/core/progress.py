"""Progress bars that switch themselves off when output is not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = ["progress", "progress_enabled"]

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars show when stderr is a terminal, unless ``PAPERSHELF_PROGRESS`` says otherwise (0/1)."""
    env = os.environ.get("PAPERSHELF_PROGRESS")
    if env is not None:
        return env.strip().lower() not in {"0", "false", "no", "off", ""}
    return sys.stderr.isatty()


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    disable: bool | None = None,
    leave: bool = False,
    **kwargs: Any,
) -> Any:
    """A tqdm bar over ``iterable`` (or, without one, driven by hand with ``update``).

    ``total``, ``desc``, ``leave`` and ``**kwargs`` are tqdm's; ``disable`` forces the bar off
    (``True``) or on (``False``), by default it shows only on a terminal (:func:`progress_enabled`).
    """
    from tqdm import tqdm  # imported here: ``import papershelf.core`` stays stdlib-only

    if disable is None:
        disable = not progress_enabled()
    return tqdm(
        iterable, total=total, desc=desc, leave=leave, dynamic_ncols=True, disable=disable, **kwargs
    )
