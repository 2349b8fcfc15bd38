"""Training at scale: the flow-matching trainer, one device mesh for FSDP2 x TP x CP,
distributed checkpoints, a sharded EMA, guidance dropout and the FLOP count."""

from papershelf.moviegen.train.context import enable_context_parallel
from papershelf.moviegen.train.flops import training_flops
from papershelf.moviegen.train.guidance import guidance_dropout
from papershelf.moviegen.train.parallel import (
    apply_activation_checkpointing,
    bf16_policy,
    data_parallel_rank,
    make_mesh,
    parallelize,
    shard_model,
    tensor_parallel_plan,
)
from papershelf.moviegen.train.positions import grow_position_tables
from papershelf.moviegen.train.trainer import EMA, FlowMatchingTrainer

__all__ = [
    "EMA",
    "FlowMatchingTrainer",
    "apply_activation_checkpointing",
    "bf16_policy",
    "data_parallel_rank",
    "enable_context_parallel",
    "grow_position_tables",
    "guidance_dropout",
    "make_mesh",
    "parallelize",
    "shard_model",
    "tensor_parallel_plan",
    "training_flops",
]
