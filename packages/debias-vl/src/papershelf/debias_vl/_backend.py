"""Array plumbing: accept numpy or torch, compute in float64 torch, return the input's type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["ArrayLike", "OutputSpec", "as_work_tensor", "check_finite"]

ArrayLike = Any  # numpy.ndarray | torch.Tensor | nested sequences of floats


@dataclass(frozen=True)
class OutputSpec:
    """Where a result goes back to: numpy or torch, with the input's float dtype and device."""

    is_torch: bool
    dtype: Any
    device: torch.device

    def back(self, x: Tensor) -> Any:
        """Cast a float64 work tensor back to the caller's array type, dtype and device."""
        if self.is_torch:
            return x.to(device=self.device, dtype=self.dtype)
        return x.detach().cpu().numpy().astype(self.dtype, copy=False)


def as_work_tensor(x: ArrayLike, name: str) -> tuple[Tensor, OutputSpec]:
    """Convert ``x`` to a float64 tensor (on its own device) and remember how to give it back.

    Raises
    ------
    TypeError
        If ``x`` is not numeric (strings, objects, booleans).
    """
    if isinstance(x, Tensor):
        if not (x.is_floating_point() or x.dtype in _INT_TORCH):
            raise TypeError(f"{name} must hold real numbers, got a tensor of dtype {x.dtype}")
        dtype: Any = x.dtype if x.is_floating_point() else torch.float64
        work = x.detach().to(torch.float64)
        return work, OutputSpec(True, dtype, x.device)
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise TypeError(
            f"{name} must be a numpy array, a torch tensor or a nested sequence of floats: {exc}"
        ) from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {arr.dtype}")
    dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    work = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
    return work, OutputSpec(False, dtype, torch.device("cpu"))


_INT_TORCH = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` when ``x`` holds NaN or infinity."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
