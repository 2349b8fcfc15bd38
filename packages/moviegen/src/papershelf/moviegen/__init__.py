"""papershelf.moviegen: Movie Gen Video (Polyak et al. 2024, arXiv:2410.13720) at configurable scale.

The 2.5D temporal autoencoder with its outlier penalty loss and temporal tiling, the
LLaMa3-style flow-matching transformer with shared adaLN and factorized positions,
three-encoder text conditioning, flow matching with logit-normal times, linear-quadratic
sampling with CFG, a trainer and FSDP2 sharding, a diffusers ``DiffusionPipeline`` and
the rest of the cast (``papershelf.moviegen.cast``).

The package is torch- and diffusers-based; importing it is cheap: names load on first
use (PEP 562). The top level exports what a user needs first; everything else lives
in the submodules (``config``, ``tae``, ``transformer``, ``text``, ``flow``,
``schedules``, ``sampler``, ``pipeline``, ``eval``, ``data``, ``train``, ``cast``) and
stays reachable here under its old name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from papershelf.core.lazy import lazy_exports

__version__ = "0.2.0"

# name -> submodule; the first group is __all__, the rest stays importable for old code.
_EXPORTS: dict[str, str] = {
    "MovieGenPipeline": "pipeline",
    "MovieGenTransformer": "transformer",
    "TemporalAutoencoder": "tae",
    "MultiTextConditioner": "text",
    "TextContext": "text",
    "TransformerConfig": "config",
    "TAEConfig": "config",
    "preset": "config",
    "tae_preset": "config",
    "flow_matching_loss": "flow",
    "euler_sample": "sampler",
}
_LEGACY: dict[str, str] = {
    "PRESETS": "config",
    "param_count": "config",
    "SIGMA_MIN": "flow",
    "drop_text": "flow",
    "interpolate": "flow",
    "sample_t_logit_normal": "flow",
    "target_velocity": "flow",
    "save_video": "pipeline",
    "scheduler_sample": "sampler",
    "linear_quadratic_t": "schedules",
    "linear_t": "schedules",
    "to_diffusers_sigmas": "schedules",
    "DiagonalGaussian": "tae",
    "outlier_penalty_loss": "tae",
    "tae_loss": "tae",
    "temporal_tiled_decode": "tae",
    "temporal_tiled_encode": "tae",
    "HFTextEncoder": "text",
    "TextEncoder": "text",
    "WordEncoder": "text",
    "quoted_text": "text",
    "tiny_text_encoders": "text",
    "MovieGenBlock": "transformer",
    "RMSNorm": "transformer",
}
_SUBMODULES = (
    "cast",
    "config",
    "data",
    "eval",
    "flow",
    "pipeline",
    "sampler",
    "schedules",
    "tae",
    "text",
    "train",
    "transformer",
)

__all__ = [
    "MovieGenPipeline",
    "MovieGenTransformer",
    "MultiTextConditioner",
    "TAEConfig",
    "TemporalAutoencoder",
    "TextContext",
    "TransformerConfig",
    "__version__",
    "euler_sample",
    "flow_matching_loss",
    "preset",
    "tae_preset",
]

if TYPE_CHECKING:  # pragma: no cover
    from papershelf.moviegen.config import TAEConfig, TransformerConfig, preset, tae_preset
    from papershelf.moviegen.flow import flow_matching_loss
    from papershelf.moviegen.pipeline import MovieGenPipeline
    from papershelf.moviegen.sampler import euler_sample
    from papershelf.moviegen.tae import TemporalAutoencoder
    from papershelf.moviegen.text import MultiTextConditioner, TextContext
    from papershelf.moviegen.transformer import MovieGenTransformer

__getattr__, __dir__ = lazy_exports(__name__, {**_EXPORTS, **_LEGACY}, _SUBMODULES)
