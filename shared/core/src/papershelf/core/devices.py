"""Device resolution and CPU thread counts for command lines (library code follows its inputs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["cpu_threads", "cuda_available", "resolve_device"]


def cuda_available() -> bool:
    """Whether PyTorch is installed and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


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
    """Run a block with ``n`` CPU threads for torch and the BLAS libraries, then restore them.

    ``None`` leaves everything as it is. torch is only touched when it is installed, and the
    BLAS/OpenMP pools only when ``threadpoolctl`` (a scikit-learn dependency) is installed.

    Parameters
    ----------
    n : int or None
        Number of threads (at least 1), or ``None`` for no change.
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"threads must be an int or None, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    before = torch.get_num_threads() if torch is not None else None
    limiter = threadpool_limits(limits=n) if threadpool_limits is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(n)
        yield
    finally:
        if torch is not None and before is not None:
            torch.set_num_threads(before)
        if limiter is not None:
            limiter.restore_original_limits()
