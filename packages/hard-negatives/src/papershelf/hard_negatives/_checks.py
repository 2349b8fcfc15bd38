"""Input checks and reductions shared by losses on two views of a batch (torch).

Paper-agnostic: the contrastive-loss packages validate ``(z1, z2)`` and reduce per-row losses
the same way. Imports torch, so it is not loaded by ``papershelf.core`` itself.

This package's own copy (it moved out of papershelf-core so that a core release cannot
change a loss); the same file lives in ``packages/robust-infonce/src/papershelf/robust_infonce/_checks.py``.
"""

from __future__ import annotations

from torch import Tensor

from papershelf.core.validation import check_array

__all__ = ["check_pair", "check_tensor", "reduce_loss"]


def check_tensor(x: object, name: str, ndim: int, *, finite: bool = True) -> Tensor:
    """``x`` as a finite floating-point tensor with ``ndim`` dimensions, or a clear error naming it.

    The checks are the core's :func:`~papershelf.core.validation.check_array`; this adds only that
    the loss needs a tensor (a list or array is refused, not converted). ``finite=False`` skips
    the NaN/inf pass (for callers that check their result and diagnose the inputs only when it
    is not finite).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return check_array(name, x, ndim=ndim, dtype_kind="f", finite=finite)


def check_pair(z1: object, z2: object, *, finite: bool = True) -> tuple[Tensor, Tensor]:
    """Two views ``z1``, ``z2`` of shape (N, D), equal shapes, ``N >= 2``.

    ``finite=False`` checks types and shapes only (the NaN/inf pass is left to the caller).
    """
    if (
        not finite
        and isinstance(z1, Tensor)
        and isinstance(z2, Tensor)
        and z1.ndim == 2
        and z1.shape == z2.shape
        and z1.shape[0] >= 2
        and z1.is_floating_point()
        and z2.is_floating_point()
    ):
        return z1, z2  # the common case, decided without the general checks
    a = check_tensor(z1, "z1", 2, finite=finite)
    b = check_tensor(z2, "z2", 2, finite=finite)
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
