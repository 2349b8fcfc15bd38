"""Context parallelism: the video tokens split along the sequence over a process group.

Every part of a :class:`MovieGenBlock` but self-attention works token by token, so each rank
keeps ``N / cp`` of the tokens; self-attention all-gathers the keys and values of every rank
(the all-gather form of context parallelism, as in Llama 3 training) and each rank attends
with its own queries. The output is gathered back to the full sequence at the end.

Gradients: the loss computed from the gathered output is the same on every rank, and each
rank back-propagates only through its own tokens, so parameter gradients are partial sums;
all-reduce them over the group (FSDP or DDP over the same ranks does this) to get the
gradient of the unsplit model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["enable_context_parallel", "gather_sequence", "gather_keys_values", "shard_sequence"]


class _GatherKV(torch.autograd.Function):
    """All-gather along ``dim``; the backward sums every rank's gradient and keeps this slice."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, dim: int, group: Any) -> Tensor:
        ctx.dim, ctx.group = dim, group
        ctx.rank, ctx.n = dist.get_rank(group), x.shape[dim]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)  # every rank's queries used these keys
        return grad.narrow(ctx.dim, ctx.rank * ctx.n, ctx.n), None, None


class _GatherOutput(torch.autograd.Function):
    """All-gather along ``dim``; the loss is replicated, so the backward keeps this slice only."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, dim: int, group: Any) -> Tensor:
        ctx.dim, ctx.rank, ctx.n = dim, dist.get_rank(group), x.shape[dim]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return grad.narrow(ctx.dim, ctx.rank * ctx.n, ctx.n).contiguous(), None, None


def gather_keys_values(x: Tensor, dim: int, group: Any) -> Tensor:
    """All-gather keys or values of shape (B, heads, N / cp, hd) along the sequence ``dim``."""
    return _GatherKV.apply(x, dim, group)


def gather_sequence(x: Tensor, dim: int, group: Any) -> Tensor:
    """All-gather a per-rank shard of the output sequence (replicated loss downstream)."""
    return _GatherOutput.apply(x, dim, group)


def shard_sequence(x: Tensor, dim: int, group: Any) -> Tensor:
    """This rank's contiguous ``1 / cp`` of ``x`` along ``dim`` (which must divide evenly)."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    if x.shape[dim] % world:
        raise ValueError(
            f"context parallelism over {world} ranks needs a token count divisible by {world}, "
            f"got {x.shape[dim]}"
        )
    return x.chunk(world, dim)[rank].contiguous()


def enable_context_parallel(model: nn.Module, group: Any = None) -> nn.Module:
    """Split ``model``'s video tokens over ``group`` (default: the whole world) in place.

    Parameters
    ----------
    model : MovieGenTransformer
    group : ProcessGroup, optional
        The context-parallel group (for a 2-D mesh: ``mesh["cp"].get_group()``).

    Returns
    -------
    The same model; every rank must feed it the same inputs and gets the full output.
    """
    from papershelf.moviegen.transformer import MovieGenBlock, MovieGenTransformer

    if not isinstance(model, MovieGenTransformer):
        raise TypeError(f"model must be a MovieGenTransformer, got {type(model).__name__}")
    if not dist.is_initialized():
        raise RuntimeError("enable_context_parallel needs torch.distributed to be initialised")
    group = group if group is not None else dist.group.WORLD
    model.cp_group = group
    for block in model.blocks:
        assert isinstance(block, MovieGenBlock)
        block.self_attn.cp_group = group
    return model
