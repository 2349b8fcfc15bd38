"""Progress bars that switch themselves off when output is not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["progress", "progress_enabled"]

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars show when stderr is a terminal, unless ``PAPERSHELF_PROGRESS`` says otherwise (0/1)."""
    env = os.environ.get("PAPERSHELF_PROGRESS")
    if env is not None:
        return env.strip().lower() not in {"0", "false", "no", "off", ""}
    return sys.stderr.isatty()


class _Silent:
    """A stand-in with tqdm's small interface, used when bars are off or tqdm is missing."""

    def __init__(self, iterable: Iterable[Any] | None, total: int | None) -> None:
        self._iterable = iterable
        self.total = total
        self.n = 0

    def __iter__(self) -> Iterator[Any]:
        if self._iterable is None:
            return
        for item in self._iterable:
            yield item
            self.n += 1

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    disable: bool | None = None,
    leave: bool = False,
    **kwargs: Any,
) -> Any:
    """Wrap ``iterable`` in a tqdm bar (or a silent stand-in).

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate; omit it to drive the bar by hand with ``update``.
    total, desc, leave
        As in tqdm.
    disable : bool, optional
        Force the bar off (``True``) or on (``False``); by default it shows only
        on a terminal (see :func:`progress_enabled`).
    """
    if disable is None:
        disable = not progress_enabled()
    if disable:
        return _Silent(iterable, total)
    try:
        from tqdm import tqdm
    except ImportError:
        return _Silent(iterable, total)
    return tqdm(iterable, total=total, desc=desc, leave=leave, dynamic_ncols=True, **kwargs)
