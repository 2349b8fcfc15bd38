"""papershelf.moviegen: Movie Gen Video (Polyak et al. 2024, arXiv:2410.13720) at configurable scale.

The 2.5D temporal autoencoder with its outlier penalty loss and temporal tiling, the
LLaMa3-style flow-matching transformer with shared adaLN and factorized positions,
three-encoder text conditioning, flow matching with logit-normal times, linear-quadratic
Euler sampling with CFG, a trainer and FSDP2 sharding, and a text-to-video pipeline.
"""

from papershelf.moviegen import data, eval, train
from papershelf.moviegen.config import (
    PRESETS,
    TAEConfig,
    TransformerConfig,
    param_count,
    preset,
    tae_preset,
)
from papershelf.moviegen.flow import (
    SIGMA_MIN,
    drop_text,
    flow_matching_loss,
    interpolate,
    sample_t_logit_normal,
    target_velocity,
)
from papershelf.moviegen.pipeline import MovieGenPipeline, save_video
from papershelf.moviegen.sampler import euler_sample, scheduler_sample
from papershelf.moviegen.schedules import linear_quadratic_t, linear_t, to_diffusers_sigmas
from papershelf.moviegen.tae import (
    DiagonalGaussian,
    TemporalAutoencoder,
    outlier_penalty_loss,
    tae_loss,
    temporal_tiled_decode,
    temporal_tiled_encode,
)
from papershelf.moviegen.text import (
    HFTextEncoder,
    MultiTextConditioner,
    TextContext,
    TextEncoder,
    WordEncoder,
    quoted_text,
    tiny_text_encoders,
)
from papershelf.moviegen.transformer import MovieGenBlock, MovieGenTransformer, RMSNorm

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "SIGMA_MIN",
    "DiagonalGaussian",
    "HFTextEncoder",
    "MovieGenBlock",
    "MovieGenPipeline",
    "MovieGenTransformer",
    "MultiTextConditioner",
    "RMSNorm",
    "TAEConfig",
    "TemporalAutoencoder",
    "TextContext",
    "TextEncoder",
    "TransformerConfig",
    "WordEncoder",
    "__version__",
    "data",
    "drop_text",
    "euler_sample",
    "eval",
    "flow_matching_loss",
    "interpolate",
    "linear_quadratic_t",
    "linear_t",
    "outlier_penalty_loss",
    "param_count",
    "preset",
    "quoted_text",
    "sample_t_logit_normal",
    "scheduler_sample",
    "save_video",
    "tae_loss",
    "tae_preset",
    "target_velocity",
    "temporal_tiled_decode",
    "temporal_tiled_encode",
    "tiny_text_encoders",
    "to_diffusers_sigmas",
    "train",
]
