"""Input checks and the array backend (numpy or torch through POT's ``ot.backend``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from ot.backend import Backend, get_backend

__all__ = ["as_matrix", "as_vector", "backend_of", "is_torch"]


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (checked without importing torch)."""
    return type(x).__module__.startswith("torch")


def backend_of(*arrays: Any) -> Backend:
    """POT's backend for arrays of one type (all numpy or all torch on one device)."""
    return get_backend(*arrays)


def as_matrix(x: Any, name: str, *, like: Any = None) -> Any:
    """Check a 2-D, non-empty, finite, floating-point data matrix.

    numpy arrays and nested lists become float arrays (integers become float64); torch
    tensors stay torch tensors on their device (integers become the default float dtype).
    If ``like`` is given, ``x`` must be the same kind of array with the same dtype and device.
    """
    if x is None:
        raise TypeError(f"{name} must be an array of shape (n, d), got None")
    if is_torch(x):
        import torch

        if not torch.is_floating_point(x):
            x = x.to(torch.get_default_dtype())
    elif isinstance(x, np.ndarray | list | tuple):
        x = np.asarray(x)
        if x.dtype == object or not (
            np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
        ):
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (n, d), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    finite = bool(np.isfinite(x).all()) if not is_torch(x) else bool(x.isfinite().all())
    if not finite:
        raise ValueError(f"{name} contains NaN or infinite values")
    if like is not None:
        if is_torch(x) != is_torch(like):
            raise TypeError(
                f"{name} must be the same kind of array as the training data "
                f"({type(like).__name__}), got {type(x).__name__}"
            )
        if x.dtype != like.dtype:
            raise TypeError(f"{name} has dtype {x.dtype}, expected {like.dtype}")
        if is_torch(x) and x.device != like.device:
            raise ValueError(f"{name} is on {x.device}, expected {like.device}")
    return x


def as_vector(y: Any, name: str, n: int) -> np.ndarray:
    """Labels as a 1-D numpy array of length ``n`` (torch tensors are copied to the host)."""
    if is_torch(y):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(y.shape)}")
    return y
