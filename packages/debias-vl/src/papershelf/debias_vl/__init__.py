"""papershelf.debias_vl: debiasing vision-language models via biased prompts (Chuang et al., 2023).

Closed-form projections of text embeddings that remove a spurious attribute (P0) and calibrate
positive prompt pairs (P* = P0 (I + lam M)^-1), with adapters for CLIP zero-shot classification
(transformers and open_clip) and Stable Diffusion / SDXL ``prompt_embeds``. arXiv:2302.00070.

The names below are the ones to start from; every other public name lives in a submodule
(:mod:`~papershelf.debias_vl.projection`, :mod:`~papershelf.debias_vl.encoders`,
:mod:`~papershelf.debias_vl.diffusion`, :mod:`~papershelf.debias_vl.prompts`,
:mod:`~papershelf.debias_vl.zero_shot`, :mod:`~papershelf.debias_vl.evaluation`) and is still
reachable here. Nothing is imported until a name is used, so ``import papershelf.debias_vl``
does not import torch (the package's API is torch-based: its first use does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from papershelf.core.lazy import lazy_exports

__version__ = "0.2.0"

_WHERE = {
    "CELEBA": "prompts",
    "Debiaser": "debiaser",
    "LowRankProjection": "projection",
    "PROFESSIONS_TEST": "prompts",
    "PROFESSIONS_TRAIN": "prompts",
    "PromptSet": "prompts",
    "SyntheticZeroShot": "zero_shot",
    "WATERBIRDS": "prompts",
    "calibrated_projection": "projection",
    "calibration_matrix": "projection",
    "clip_text_features": "encoders",
    "debias_prompt_embeds": "diffusion",
    "debiased_pipeline_embeds": "diffusion",
    "debiased_pipeline_kwargs": "diffusion",
    "fit_pipeline_debiaser": "diffusion",
    "PipelineDebiaser": "diffusion",
    "pipeline_prompt_states": "diffusion",
    "eos_pool": "encoders",
    "fit_sd_debiaser": "diffusion",
    "gather_pairs": "projection",
    "group_accuracy": "zero_shot",
    "load_bolukbasi": "prompts",
    "load_clip": "evaluation",
    "load_minilm": "encoders",
    "low_rank_projection": "projection",
    "make_synthetic_zero_shot": "zero_shot",
    "mean_pool": "encoders",
    "minilm_model_dir": "encoders",
    "pairs_from_grid": "prompts",
    "profession_pairs": "prompts",
    "projection_matrix": "projection",
    "sd_text_states": "encoders",
    "sentence_features": "encoders",
    "spurious_basis": "projection",
    "spurious_prompts": "prompts",
    "zero_shot_predict": "zero_shot",
}

__all__ = [
    "__version__",
    "Debiaser",
    "calibrated_projection",
    "projection_matrix",
    "gather_pairs",
    "clip_text_features",
    "zero_shot_predict",
    "load_clip",
    "CELEBA",
    "WATERBIRDS",
]

if TYPE_CHECKING:
    from papershelf.debias_vl.debiaser import Debiaser
    from papershelf.debias_vl.encoders import clip_text_features
    from papershelf.debias_vl.evaluation import load_clip
    from papershelf.debias_vl.projection import (
        calibrated_projection,
        gather_pairs,
        projection_matrix,
    )
    from papershelf.debias_vl.prompts import CELEBA, WATERBIRDS
    from papershelf.debias_vl.zero_shot import zero_shot_predict

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
