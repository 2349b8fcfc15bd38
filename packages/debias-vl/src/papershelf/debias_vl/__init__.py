"""papershelf.debias_vl: debiasing vision-language models via biased prompts (Chuang et al., 2023).

Closed-form projections of text embeddings that remove a spurious attribute (P0) and calibrate
positive prompt pairs (P* = P0 (I + lam M)^-1), with adapters for CLIP zero-shot classification
and Stable Diffusion ``prompt_embeds``. arXiv:2302.00070.
"""

from papershelf.debias_vl.debiaser import Debiaser
from papershelf.debias_vl.diffusion import (
    debias_prompt_embeds,
    debiased_pipeline_embeds,
    fit_sd_debiaser,
)
from papershelf.debias_vl.encoders import (
    clip_text_features,
    eos_pool,
    load_minilm,
    mean_pool,
    minilm_model_dir,
    sd_text_states,
    sentence_features,
)
from papershelf.debias_vl.projection import (
    LowRankProjection,
    calibrated_projection,
    calibration_matrix,
    gather_pairs,
    low_rank_projection,
    projection_matrix,
    spurious_basis,
)
from papershelf.debias_vl.prompts import (
    CELEBA,
    PROFESSIONS_TEST,
    PROFESSIONS_TRAIN,
    WATERBIRDS,
    PromptSet,
    load_bolukbasi,
    pairs_from_grid,
    profession_pairs,
    spurious_prompts,
)
from papershelf.debias_vl.zero_shot import (
    SyntheticZeroShot,
    group_accuracy,
    make_synthetic_zero_shot,
    zero_shot_predict,
)

__version__ = "0.1.0"

__all__ = [
    "CELEBA",
    "PROFESSIONS_TEST",
    "PROFESSIONS_TRAIN",
    "WATERBIRDS",
    "Debiaser",
    "LowRankProjection",
    "PromptSet",
    "SyntheticZeroShot",
    "__version__",
    "calibrated_projection",
    "calibration_matrix",
    "clip_text_features",
    "debias_prompt_embeds",
    "debiased_pipeline_embeds",
    "eos_pool",
    "fit_sd_debiaser",
    "gather_pairs",
    "group_accuracy",
    "load_bolukbasi",
    "load_minilm",
    "low_rank_projection",
    "make_synthetic_zero_shot",
    "mean_pool",
    "minilm_model_dir",
    "pairs_from_grid",
    "profession_pairs",
    "projection_matrix",
    "sd_text_states",
    "sentence_features",
    "spurious_basis",
    "spurious_prompts",
    "zero_shot_predict",
]
