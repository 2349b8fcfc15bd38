"""All-gather with gradients, for losses whose negatives span every ``torch.distributed`` rank.

Paper-agnostic (used by the contrastive losses of robust-infonce and hard-negatives);
imports torch, so it is imported only by the loss module.

This package's own copy (it moved out of papershelf-core so that a core release cannot
change a loss); the same file lives in ``packages/robust-infonce/src/papershelf/robust_infonce/_distributed.py``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["gather_with_grad", "rank_and_world_size"]


def rank_and_world_size() -> tuple[int, int]:
    """Global rank and world size, ``(0, 1)`` outside an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    # Forward: all_gather. Backward: all-reduce (sum) the incoming gradient and keep this rank's
    # slice, so each rank receives the gradient that every rank's loss sends to its rows (the
    # semantics of lightly's GatherLayer and the SyncFunction of the official RINCE code).
    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        ctx.rank = dist.get_rank()
        ctx.n = tensor.shape[0]
        out = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(out, tensor.contiguous())
        return torch.cat(out, 0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from every rank along dim 0, keeping the autograd graph.

    Parameters
    ----------
    tensor : Tensor, shape (N, D)
        This rank's rows; every rank must pass the same shape.

    Returns
    -------
    Tensor, shape (world_size * N, D)
        Rows of rank 0 first. Outside an initialised process group the input is returned.

    Notes
    -----
    The backward pass sums the gradients of all ranks' losses. With ``DistributedDataParallel``
    (which averages parameter gradients over ranks) the parameter update is then exactly the
    gradient of the mean of the per-rank losses, i.e. of the loss on the global batch.
    """
    _, world = rank_and_world_size()
    if world == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)
