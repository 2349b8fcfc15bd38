"""Provenance: what hardware and which package versions produced a number."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable
from importlib import metadata

__all__ = ["describe_hardware", "package_versions"]


def describe_hardware() -> str:
    """One line: OS, machine, usable CPU cores, and the CUDA device when torch is already loaded."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    cpu = platform.processor() or platform.machine()
    text = f"{platform.system()} {platform.machine()}, {cores} CPU cores ({cpu})"
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def package_versions(distributions: Iterable[str] = ()) -> dict[str, str]:
    """Versions of Python, papershelf-core, the given distributions, and numpy/torch when loaded."""
    names = ["papershelf-core", *distributions]
    for mod, dist in (("numpy", "numpy"), ("torch", "torch"), ("scipy", "scipy"), ("ot", "pot")):
        if mod in sys.modules:
            names.append(dist)
    out = {"python": platform.python_version()}
    for name in dict.fromkeys(names):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
