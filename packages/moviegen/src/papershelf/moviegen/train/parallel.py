"""Multi-device scale: FSDP2 ``fully_shard`` per block on a ``DeviceMesh`` and a tensor-parallel plan.

The paper trains with FSDP + tensor parallel (TP 4) + sequence / context parallel
(CP <= 2). Here: ``make_mesh`` builds a (dp_shard, tp) mesh, ``shard_model`` shards
every :class:`MovieGenBlock` and then the root (works on CPU with gloo, which
``accelerate`` does not do), and ``tensor_parallel_plan`` gives the Megatron-style
column / row split of attention and SwiGLU for ``parallelize_module``. Context
parallelism (the token sequence split over ranks) is in :mod:`.context`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["make_mesh", "shard_model", "tensor_parallel_plan"]


def make_mesh(dp_shard: int | None = None, tp: int = 1, device_type: str | None = None) -> Any:
    """A ``DeviceMesh`` of shape (dp_shard, tp) named ("dp_shard", "tp").

    Needs an initialised process group; ``dp_shard`` defaults to world_size / tp.
    """
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if not dist.is_initialized():
        raise RuntimeError("make_mesh needs torch.distributed to be initialised")
    world = dist.get_world_size()
    if tp < 1 or world % tp:
        raise ValueError(f"tp must divide the world size {world}, got {tp}")
    dp_shard = world // tp if dp_shard is None else dp_shard
    if dp_shard * tp != world:
        raise ValueError(f"dp_shard * tp must equal the world size {world}, got {dp_shard}*{tp}")
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    return init_device_mesh(device_type, (dp_shard, tp), mesh_dim_names=("dp_shard", "tp"))


def tensor_parallel_plan(model: nn.Module) -> dict[str, Any]:
    """Column-wise q/k/v/w1/w3 and row-wise o/w2 for every block (heads split across ranks)."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    plan: dict[str, Any] = {}
    for i, _ in enumerate(model.blocks):  # type: ignore[arg-type]
        for att in ("self_attn", "cross_attn"):
            for lin in ("q", "k", "v"):
                plan[f"blocks.{i}.{att}.{lin}"] = ColwiseParallel()
            plan[f"blocks.{i}.{att}.o"] = RowwiseParallel()
        plan[f"blocks.{i}.ffn.w1"] = ColwiseParallel()
        plan[f"blocks.{i}.ffn.w3"] = ColwiseParallel()
        plan[f"blocks.{i}.ffn.w2"] = RowwiseParallel()
    return plan


def shard_model(
    model: nn.Module, mesh: Any, *, reshard_after_forward: bool = True, mp_policy: Any = None
) -> nn.Module:
    """Apply FSDP2 ``fully_shard`` to every block, then to the whole model.

    If the mesh has a "tp" dimension of size > 1, the tensor-parallel plan is applied
    first (``qk_norm`` must be off for TP). Parameters become ``DTensor`` shards; the
    optimizer must be created afterwards.

    Parameters
    ----------
    model : MovieGenTransformer
    mesh : DeviceMesh
        From :func:`make_mesh`, or any 1-D mesh.
    """
    from torch.distributed.fsdp import fully_shard

    dims = getattr(mesh, "mesh_dim_names", None) or ()
    dp_mesh = mesh["dp_shard"] if "dp_shard" in dims else mesh
    if "tp" in dims and mesh["tp"].size() > 1:
        from torch.distributed.tensor.parallel import parallelize_module

        parallelize_module(model, mesh["tp"], tensor_parallel_plan(model))
    kwargs: dict[str, Any] = {"mesh": dp_mesh, "reshard_after_forward": reshard_after_forward}
    if mp_policy is not None:
        kwargs["mp_policy"] = mp_policy
    for block in model.blocks:  # type: ignore[union-attr]
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model
