"""Input checks and reductions shared by losses on two views of a batch (torch).

Paper-agnostic: the contrastive-loss packages validate ``(z1, z2)`` and reduce per-row losses
the same way. Imports torch, so it is not loaded by ``papershelf.core`` itself.

This package's own copy (it moved out of papershelf-core so that a core release cannot
change a loss); the same file lives in ``packages/hard-negatives/src/papershelf/hard_negatives/_checks.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_pair", "check_tensor", "reduce_loss"]


def check_tensor(x: object, name: str, ndim: int) -> Tensor:
    """``x`` as a finite floating-point tensor with ``ndim`` dimensions, or a clear error naming it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    # one reduction instead of an elementwise mask: a finite sum means no NaN/inf (any of them
    # makes the sum non-finite); a sum that overflows falls back to the exact elementwise check
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def check_pair(z1: object, z2: object) -> tuple[Tensor, Tensor]:
    """Two views ``z1``, ``z2`` of shape (N, D), equal shapes, ``N >= 2``."""
    a = check_tensor(z1, "z1", 2)
    b = check_tensor(z2, "z2", 2)
    if a.shape != b.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[0] < 2:
        raise ValueError(
            f"z1 and z2 need N >= 2 pairs (one pair has no negatives), got N={a.shape[0]}"
        )
    return a, b


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """``"mean"``, ``"sum"`` or ``"none"`` (unchanged) over per-row losses (checked by the caller)."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
