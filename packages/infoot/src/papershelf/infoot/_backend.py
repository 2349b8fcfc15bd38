"""Input checks and the array backend (numpy or torch through POT's ``ot.backend``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from ot.backend import Backend, get_backend

__all__ = ["as_float64", "as_matrix", "as_vector", "backend_of", "cast_like", "is_torch"]


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
    if hasattr(x, "tocsr") or type(x).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name}: sparse input is not supported (got {type(x).__name__}); pass a dense array"
        )
    if is_torch(x):
        import torch

        if x.is_complex():
            raise ValueError(f"{name}: Complex data not supported, got dtype {x.dtype}")
        if not torch.is_floating_point(x):
            x = x.to(torch.get_default_dtype())
    elif isinstance(x, np.ndarray | list | tuple) or hasattr(x, "__array__"):
        x = np.asarray(x)
        if np.iscomplexobj(x):
            raise ValueError(f"{name}: Complex data not supported, got dtype {x.dtype}")
        if x.dtype == object:
            try:
                x = x.astype(np.float64)
            except (TypeError, ValueError) as err:
                raise TypeError(f"{name} must hold real numbers: {err}") from None
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D with shape (n, d), got shape {tuple(x.shape)}. Reshape your "
            "data either using X.reshape(-1, 1) if your data has a single feature or "
            "X.reshape(1, -1) if it contains a single sample."
        )
    if x.shape[0] == 0:
        raise ValueError(
            f"{name} is empty: 0 sample(s) (shape={tuple(x.shape)}) while a minimum of 1 is required."
        )
    if x.shape[1] == 0:
        raise ValueError(
            f"{name} is empty: 0 feature(s) (shape={tuple(x.shape)}) while a minimum of 1 is "
            "required."
        )
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
    """Labels as a 1-D numpy array of length ``n`` (torch tensors are copied to the host).

    Float labels must be finite (a NaN label would silently form a class of its own).
    """
    if is_torch(y):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(y.shape)}")
    if y.dtype.kind in "fc" and not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinite labels")
    if y.dtype == object and any(isinstance(v, float) and not np.isfinite(v) for v in y):
        raise ValueError(f"{name} contains NaN or infinite labels")
    return y


def as_float64(x: Any) -> Any:
    """``x`` in float64 (numpy or torch on its device); other dtypes unchanged."""
    if is_torch(x):
        import torch

        return x.to(torch.float64) if x.dtype != torch.float64 else x
    return x.astype(np.float64) if x.dtype != np.float64 else x


def cast_like(x: Any, like: Any) -> Any:
    """``x`` cast to the dtype of ``like`` (the user's input dtype)."""
    if x.dtype == like.dtype:
        return x
    return x.to(like.dtype) if is_torch(x) else x.astype(like.dtype)
