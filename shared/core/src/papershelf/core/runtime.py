"""Where and how a computation runs: devices, CPU threads, seeds, and the hardware it ran on.

Command lines resolve devices and threads here; library code follows its inputs' device and
takes a ``generator`` / ``rng`` argument instead of touching global random state.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from papershelf.core.validation import check_int

if TYPE_CHECKING:
    import torch

# fmt: off
__all__ = [
    "cpu_threads", "cuda_available", "describe_hardware", "make_generator", "make_rng",
    "package_versions", "resolve_device",
]
# fmt: on


def cuda_available() -> bool:
    """Whether PyTorch is installed and sees a CUDA device."""
    torch = _optional("torch")
    return torch is not None and bool(torch.cuda.is_available())


def resolve_device(spec: Any = "auto") -> str:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N"`` (or a ``torch.device``) into a device string.

    ``"auto"`` picks CUDA when available. Asking for CUDA without one is an error,
    never a silent fall-back to the CPU.
    """
    text = str(spec) if spec is not None else "auto"
    if text == "auto":
        return "cuda" if cuda_available() else "cpu"
    if text == "cpu":
        return "cpu"
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not cuda_available():
            raise ValueError(f"device={text!r} was requested but no CUDA device is available")
        return text
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` (>= 1) CPU threads for torch and BLAS, then restore them.

    ``None`` changes nothing. torch is touched only when installed, the BLAS/OpenMP pools only
    when ``threadpoolctl`` (a scikit-learn dependency) is.
    """
    if n is None:
        yield
        return
    n = check_int("threads", n, low=1)
    torch = sys.modules.get("torch") or _optional("torch")
    threadpoolctl = _optional("threadpoolctl")
    before = torch.get_num_threads() if torch is not None else None
    limiter = threadpoolctl.threadpool_limits(limits=n) if threadpoolctl is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(n)
        yield
    finally:
        if before is not None:
            torch.set_num_threads(before)
        if limiter is not None:
            limiter.restore_original_limits()


def _optional(module: str) -> Any:
    """The module if it is installed, else ``None``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _check_seed(seed: Any) -> int:
    return check_int("seed", seed, low=0, high=2**32 - 1)


def make_rng(seed: int | np.random.Generator | None = None) -> np.random.Generator:
    """A NumPy ``Generator`` from a seed (a generator passes through unchanged)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(None if seed is None else _check_seed(seed))


def make_generator(seed: int | None = None, device: Any = "cpu") -> torch.Generator:
    """A seeded ``torch.Generator`` on ``device`` (random seed when ``seed`` is None)."""
    import torch

    gen = torch.Generator(device=device)
    gen.seed() if seed is None else gen.manual_seed(_check_seed(seed))
    return gen


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
