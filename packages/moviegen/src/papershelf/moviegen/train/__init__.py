"""Training: the flow-matching trainer and multi-GPU sharding helpers."""

from papershelf.moviegen.train.context import enable_context_parallel
from papershelf.moviegen.train.parallel import make_mesh, shard_model, tensor_parallel_plan
from papershelf.moviegen.train.trainer import EMA, FlowMatchingTrainer

__all__ = [
    "EMA",
    "FlowMatchingTrainer",
    "enable_context_parallel",
    "make_mesh",
    "shard_model",
    "tensor_parallel_plan",
]
