"""Multi-device scale: one ``DeviceMesh`` for data (FSDP2), tensor and context parallelism.

The paper trains with FSDP + tensor parallel (TP 4) + sequence / context parallel (CP <= 2)
(Polyak et al. 2024, Sec. 3.1.6). Here one mesh holds all three::

    mesh = make_mesh(dp_shard=2, tp=2, cp=2)  # ("dp_shard", "cp", "tp"), tp innermost
    parallelize(model, mesh, mp_policy=bf16_policy(), activation_checkpointing="selective")

:func:`parallelize` applies, in this order: the Megatron-style tensor-parallel plan over
``"tp"`` (column-wise q/k/v/w1/w3, row-wise o/w2, heads split across ranks), context
parallelism over ``"cp"`` (tokens split, keys / values all-gathered; :mod:`.context`),
activation checkpointing per block, ``torch.compile`` per block, and FSDP2 ``fully_shard``
per block and at the root over the flattened ``("dp_shard", "cp")`` dimension.

Gradient scale. FSDP averages the gradients over the ranks it shards on. With context
parallelism the loss is replicated over the ``cp`` ranks of one data shard and each of them
back-propagates only through its own tokens, so their gradients are *partial sums* of that
shard's gradient; averaging over ``dp_shard * cp`` ranks would give ``1 / cp`` of the
unsplit gradient. :func:`parallelize` therefore sets FSDP's gradient divide factor to
``dp_shard`` (the number of distinct data shards): sum over ``cp``, mean over ``dp_shard``.
Tensor-parallel ranks hold full (replicated) gradients of the replicated parameters and
disjoint shards of the split ones, so they need no scaling.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Literal

import torch
from torch import nn

__all__ = [
    "bf16_policy",
    "data_parallel_rank",
    "make_mesh",
    "parallelize",
    "shard_model",
    "tensor_parallel_plan",
]

MESH_DIMS = ("dp_shard", "cp", "tp")


def make_mesh(
    dp_shard: int | None = None, tp: int = 1, cp: int = 1, *, device_type: str | None = None
) -> Any:
    """A ``DeviceMesh`` of shape ``(dp_shard, cp, tp)`` named ``("dp_shard", "cp", "tp")``.

    Parameters
    ----------
    dp_shard : int, optional
        FSDP data-parallel degree; defaults to ``world_size / (tp * cp)``.
    tp : int
        Tensor-parallel degree (heads and FFN hidden units split); the innermost dimension,
        so TP groups are neighbouring ranks (one node's NVLink domain).
    cp : int
        Context-parallel degree (video tokens split).
    device_type : str, optional
        ``"cuda"`` when available, else ``"cpu"`` (gloo).

    Returns
    -------
    DeviceMesh
        Needs an initialised process group with ``dp_shard * cp * tp == world_size``.
    """
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if not dist.is_initialized():
        raise RuntimeError("make_mesh needs torch.distributed to be initialised")
    world = dist.get_world_size()
    for name, value in (("tp", tp), ("cp", cp)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if world % (tp * cp):
        raise ValueError(f"tp * cp must divide the world size {world}, got {tp}*{cp}")
    dp_shard = world // (tp * cp) if dp_shard is None else dp_shard
    if isinstance(dp_shard, bool) or not isinstance(dp_shard, int) or dp_shard < 1:
        raise ValueError(f"dp_shard must be an int >= 1, got {dp_shard!r}")
    if dp_shard * cp * tp != world:
        raise ValueError(
            f"dp_shard * cp * tp must equal the world size {world}, got {dp_shard}*{cp}*{tp}"
        )
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    return init_device_mesh(device_type, (dp_shard, cp, tp), mesh_dim_names=MESH_DIMS)


def _size(mesh: Any, name: str) -> int:
    dims = getattr(mesh, "mesh_dim_names", None) or ()
    return int(mesh[name].size()) if name in dims else 1


def data_parallel_rank(mesh: Any | None) -> tuple[int, int]:
    """``(rank, size)`` of this process among the distinct data shards of ``mesh``.

    Ranks that differ only in their ``cp`` or ``tp`` coordinate must see the same batch (and
    the same noise); this is the index a data sampler and a noise generator should use.
    Without a mesh (or without ``"dp_shard"`` in it) the whole world is data parallel, or
    ``(0, 1)`` without a process group.
    """
    import torch.distributed as dist

    if mesh is None:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    dims = getattr(mesh, "mesh_dim_names", None) or ()
    if "dp_shard" in dims:
        sub = mesh["dp_shard"]
        return int(sub.get_local_rank()), int(sub.size())
    if len(dims) <= 1:
        return int(mesh.get_local_rank()), int(mesh.size())
    raise ValueError(f"mesh must have a 'dp_shard' dimension, got dimensions {dims}")


def bf16_policy() -> Any:
    """FSDP2 mixed precision for GPUs: bf16 parameters in compute, fp32 gradient reduction.

    Master weights and optimizer state stay float32 (the sharded parameters); FSDP casts
    the all-gathered parameters to bf16 for forward / backward and reduces gradients in
    float32.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)


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


def _selective_policy() -> Any:
    """Keep the outputs of matrix products and attention; recompute the elementwise rest."""
    from torch.utils.checkpoint import CheckpointPolicy

    aten = torch.ops.aten
    save = {
        aten.mm.default,
        aten.addmm.default,
        aten.bmm.default,
        aten._scaled_dot_product_flash_attention.default,
        aten._scaled_dot_product_efficient_attention.default,
        aten._scaled_dot_product_cudnn_attention.default,
    }
    for name in ("_scaled_dot_product_flash_attention_for_cpu",):
        op = getattr(aten, name, None)
        if op is not None:
            save.add(op.default)

    def policy(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
        return CheckpointPolicy.MUST_SAVE if op in save else CheckpointPolicy.PREFER_RECOMPUTE

    return policy


def apply_activation_checkpointing(
    model: nn.Module, mode: Literal["full", "selective"] = "full"
) -> nn.Module:
    """Recompute every block in the backward pass (``"full"``), or only its elementwise ops.

    ``"selective"`` keeps the outputs of matrix multiplications and attention (the
    expensive ops) and recomputes norms, activations and modulation, which hold most of the
    activation memory of a block at a fraction of its FLOPs. The block's ``forward`` is
    wrapped in place, so parameter names and state dicts do not change.
    """
    from torch.utils.checkpoint import checkpoint, create_selective_checkpoint_contexts

    if mode not in ("full", "selective"):
        raise ValueError(f"activation_checkpointing must be 'full' or 'selective', got {mode!r}")
    context_fn: Any = None
    if mode == "selective":
        context_fn = functools.partial(create_selective_checkpoint_contexts, _selective_policy())
    for block in model.blocks:  # type: ignore[union-attr]
        inner = block.forward

        def forward(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
            if not torch.is_grad_enabled():
                return _inner(*args, **kwargs)
            extra = {} if context_fn is None else {"context_fn": context_fn}
            return checkpoint(_inner, *args, use_reentrant=False, **extra, **kwargs)

        block.forward = forward
    return model


def parallelize(
    model: nn.Module,
    mesh: Any,
    *,
    mp_policy: Any = None,
    activation_checkpointing: Literal["full", "selective"] | None = None,
    compile: bool = False,
    reshard_after_forward: bool = True,
) -> nn.Module:
    """Shard a :class:`~papershelf.moviegen.MovieGenTransformer` over ``mesh`` in place.

    Parameters
    ----------
    model : MovieGenTransformer
        Built on every rank with the same weights (same seed, or loaded afterwards with
        :func:`torch.distributed.checkpoint.state_dict.set_model_state_dict`).
    mesh : DeviceMesh
        From :func:`make_mesh`; any of ``"dp_shard"``, ``"cp"``, ``"tp"`` may be 1. A 1-D
        mesh is taken as pure data parallelism.
    mp_policy : torch.distributed.fsdp.MixedPrecisionPolicy, optional
        ``None`` computes in the parameters' dtype; :func:`bf16_policy` (bf16 compute, fp32
        reduction) is the documented GPU default.
    activation_checkpointing : {"full", "selective"}, optional
        See :func:`apply_activation_checkpointing`.
    compile : bool
        ``torch.compile`` every block (after TP / AC, before FSDP, as torchtitan does).
    reshard_after_forward : bool
        FSDP2: free the all-gathered block weights after the forward (ZeRO-3; default) or
        keep them until the backward (ZeRO-2, more memory, less communication).

    Returns
    -------
    The same model: parameters are ``DTensor`` shards; create the optimizer afterwards.
    Every rank of one ``(cp, tp)`` group must be fed the same batch (see
    :func:`data_parallel_rank`); the output is the full, replicated velocity.
    """
    import torch.distributed as dist
    from torch.distributed.fsdp import FSDPModule, fully_shard

    from papershelf.moviegen.train.context import enable_context_parallel

    if not hasattr(model, "blocks"):
        raise TypeError(f"model must be a MovieGenTransformer, got {type(model).__name__}")
    if not dist.is_initialized():
        raise RuntimeError("parallelize needs torch.distributed to be initialised")
    dims = tuple(getattr(mesh, "mesh_dim_names", None) or ())
    if len(dims) > 1 and not set(dims) <= set(MESH_DIMS):
        raise ValueError(f"mesh dimensions must be among {MESH_DIMS}, got {dims}")
    tp, cp = _size(mesh, "tp"), _size(mesh, "cp")
    if tp > 1:
        from torch.distributed.tensor.parallel import parallelize_module

        cfg = getattr(model, "cfg", None)
        if getattr(cfg, "qk_norm", False):
            raise ValueError("tensor parallelism needs qk_norm=False (the norm spans all heads)")
        if cfg is not None and cfg.num_heads % tp:
            raise ValueError(f"tp={tp} must divide num_heads={cfg.num_heads}")
        parallelize_module(model, mesh["tp"], tensor_parallel_plan(model))
    if cp > 1:
        enable_context_parallel(model, mesh["cp"].get_group())
    if activation_checkpointing is not None:
        apply_activation_checkpointing(model, activation_checkpointing)
    if compile:
        for block in model.blocks:  # type: ignore[union-attr]
            block.compile()

    if len(dims) <= 1:
        dp_mesh, dp = mesh, int(mesh.size())
    elif "dp_shard" in dims and "cp" in dims:
        dp_mesh = mesh["dp_shard", "cp"]._flatten("dp_shard_cp")
        dp = _size(mesh, "dp_shard")
    elif "dp_shard" in dims:
        dp_mesh, dp = mesh["dp_shard"], _size(mesh, "dp_shard")
    else:
        raise ValueError(f"mesh must have a 'dp_shard' dimension, got {dims}")
    kwargs: dict[str, Any] = {"mesh": dp_mesh, "reshard_after_forward": reshard_after_forward}
    if mp_policy is not None:
        kwargs["mp_policy"] = mp_policy
    for block in model.blocks:  # type: ignore[union-attr]
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    if cp > 1:  # sum the cp ranks' partial gradients, average over the data shards only
        on_cpu = dp_mesh.device_type == "cpu"
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_gradient_divide_factor(float(dp))
                if on_cpu:  # gloo has no PREMUL_SUM: reduce with SUM, then divide
                    module.set_force_sum_reduction_for_comms(True)
    model._papershelf_mesh = mesh
    return model


def shard_model(
    model: nn.Module, mesh: Any, *, reshard_after_forward: bool = True, mp_policy: Any = None
) -> nn.Module:
    """Apply FSDP2 (and TP if the mesh has ``"tp"`` > 1); kept for older code.

    Deprecated: use :func:`parallelize`, which also handles context parallelism (``"cp"``)
    with the right gradient scale. This calls it.
    """
    warnings.warn(
        "shard_model is deprecated; use papershelf.moviegen.train.parallelize",
        DeprecationWarning,
        stacklevel=2,
    )
    return parallelize(
        model, mesh, mp_policy=mp_policy, reshard_after_forward=reshard_after_forward
    )
