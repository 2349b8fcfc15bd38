"""The reproduce registry: how paper packages make ``papershelf reproduce NAME`` work.

Each paper package declares one entry point in the group ``papershelf.reproduce`` pointing to a
:class:`Reproduction`, e.g. ``tmd = "papershelf.tmd._registry:REPRODUCTION"`` under
``[project.entry-points."papershelf.reproduce"]``. The reproduction names its runner lazily
(``run="papershelf.tmd.reproduce:run"``), which takes a :class:`ReproduceContext` and returns
result records. Registry modules are import-light, so ``papershelf list`` can load them all.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from papershelf.core.records import ResultRecord

log = logging.getLogger(__name__)

# fmt: off
__all__ = [
    "ENTRY_POINT_GROUP", "ReproduceContext", "ReproduceError",
    "Reproduction", "UnknownReproductionError", "discover", "get_reproduction",
]
# fmt: on

ENTRY_POINT_GROUP = "papershelf.reproduce"


@dataclass
class ReproduceContext:
    """What a reproduction gets from the command: where to write, how big, which seeds, which device.

    ``out_dir`` is a fresh folder for this package's outputs; ``full`` selects the paper-scale
    setting (``--full``); ``seeds`` are the seeds to average over; ``device`` is resolved
    (``"cpu"``, ``"cuda"``); ``show_progress`` forces bars on or off (``None``: on a terminal);
    ``threads`` is what the command set for torch and BLAS (runners must not change it).
    """

    out_dir: Path
    full: bool = False
    seeds: tuple[int, ...] = (0,)
    device: str = "cpu"
    show_progress: bool | None = None
    threads: int | None = None

    @property
    def mode(self) -> str:
        """``"full"`` or ``"quick"``."""
        return "full" if self.full else "quick"

    def progress(self, iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
        """A progress bar that follows the command's ``--progress`` choice."""
        from papershelf.core.progress import progress

        disable = None if self.show_progress is None else not self.show_progress
        return progress(iterable, disable=kwargs.pop("disable", disable), **kwargs)

    def save_figure(self, fig: Any, name: str, **kwargs: Any) -> Path:
        """Save a matplotlib figure as ``out_dir / name`` (PNG by default)."""
        from papershelf.core.io import save_figure

        return save_figure(fig, self.out_dir / name, **kwargs)

    def path(self, name: str) -> Path:
        """A path inside ``out_dir`` for any extra output file."""
        return self.out_dir / name


Runner = Callable[[ReproduceContext], Sequence[ResultRecord]]


@dataclass(frozen=True)
class Reproduction:
    """A paper package's entry in the shelf: the paper, its citation, and its reproduce runner.

    ``name`` is the command-line name (the package folder, ``"tmd"``), ``distribution`` the
    distribution (``"papershelf-tmd"``); ``title``, ``authors``, ``venue``, ``url`` and
    ``bibtex`` describe the paper (``papershelf cite`` prints the BibTeX); ``run`` is the
    runner's ``"module:function"``, imported only when it runs; ``headline`` says in one line
    what the quick run shows; ``default_seeds`` is the quick run's seed count when ``--seeds``
    is not given (claims need at least 2; ``--full`` uses at least 3).
    """

    name: str
    distribution: str
    title: str
    authors: str
    venue: str
    url: str
    bibtex: str
    run: str
    headline: str = ""
    default_seeds: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.default_seeds, bool) or int(self.default_seeds) < 1:
            raise ValueError(f"Reproduction.default_seeds must be >= 1, got {self.default_seeds}")
        if ":" not in self.run:
            raise ValueError(f"Reproduction.run must be 'module:function', got {self.run!r}")

    @property
    def version(self) -> str:
        """Installed version of the distribution."""
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return "unknown"

    def load_runner(self) -> Runner:
        """Import and return the runner function."""
        module, _, attr = self.run.partition(":")
        runner: Runner = getattr(importlib.import_module(module), attr)
        return runner


class ReproduceError(Exception):
    """A user error a runner reports in one line, without a traceback (the run counts as failed)."""


class UnknownReproductionError(KeyError):
    """Raised for a name no installed package registered."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        listing = ", ".join(self.known) if self.known else "none installed"
        super().__init__(f"unknown paper package {name!r}; known: {listing}")

    def __str__(self) -> str:
        return str(self.args[0])


def discover(
    entry_points: Iterable[Any] | None = None, *, strict: bool = False
) -> dict[str, Reproduction]:
    """All registered reproductions, by name, sorted.

    ``entry_points`` defaults to the installed ones. An entry point that cannot be loaded is
    logged and skipped (one broken package does not take the shelf down), or raised if ``strict``.
    """
    if entry_points is None:
        entry_points = _entry_points()
    found: dict[str, Reproduction] = {}
    for ep in entry_points:
        try:
            obj = ep.load()
        except Exception as exc:
            if strict:
                raise
            log.warning("skipping reproduction %r (its entry point failed: %s)", ep.name, exc)
            continue
        if not isinstance(obj, Reproduction):
            raise TypeError(
                f"entry point {ep.name!r} in {ENTRY_POINT_GROUP!r} must point to a Reproduction, "
                f"got {type(obj).__name__}"
            )
        if obj.name != ep.name:
            raise ValueError(f"entry point {ep.name!r} points to a Reproduction named {obj.name!r}")
        if obj.name in found:
            raise ValueError(f"two packages register the reproduction {obj.name!r}")
        found[obj.name] = obj
    return dict(sorted(found.items()))


def _entry_points() -> Iterable[Any]:
    """The installed entry points of :data:`ENTRY_POINT_GROUP` (patched in tests)."""
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def get_reproduction(name: str, registry: dict[str, Reproduction] | None = None) -> Reproduction:
    """The reproduction called ``name`` (underscores and dashes are interchangeable).

    Without ``registry`` only that package's entry point is loaded (``papershelf cite tmd``
    imports nothing of the other packages).
    """
    names = (name, name.replace("_", "-"))
    if registry is None:
        eps = list(_entry_points())
        chosen = [ep for ep in eps if ep.name in names][:1]
        if chosen:
            return discover(chosen, strict=True)[chosen[0].name]
        raise UnknownReproductionError(name, sorted({ep.name for ep in eps}))
    for cand in names:
        if cand in registry:
            return registry[cand]
    raise UnknownReproductionError(name, list(registry))
