"""papershelf.moviegen.cast: the rest of Movie Gen's cast (Polyak et al. 2024, arXiv:2410.13720).

* :class:`SpatialUpsampler` (Sec. 3.2): Movie Gen Video's transformer conditioned on the
  bilinearly upsampled low-resolution latent (zero-initialised extra input channels,
  ``from_t2v``), MultiDiffusion over time, training degradations; a diffusers ``ModelMixin``
  and :class:`~papershelf.moviegen.MovieGenPipeline`'s optional ``upsampler`` stage.
* :class:`DACVAE1D` and :class:`AudioDiT` (Sec. 6, Movie Gen Audio): audio autoencoder, the
  video- and text-conditioned audio transformer with masked audio context, and triangular
  MultiDiffusion extension.
* :class:`PersonalizedVideoModel` (Sec. 4, PT2V): reference-image tokens join the text tokens;
  :data:`PT2V_STAGES`.
* :class:`EditModel` (Sec. 5, Movie Gen Edit): channel-concatenated input video, task tokens
  and time offset; :data:`EDIT_STAGES`.

Every model has a ``tiny`` preset that trains on 2 CPU cores and a paper-scale preset.
``papershelf.moviegen.cast.reproduce.run_cast`` runs the four demos.
"""

from papershelf.moviegen.cast._dit import CastDiT, DiTConfig, dit_param_count
from papershelf.moviegen.cast._flow import (
    flow_pair,
    integrate,
    multidiffusion_velocity,
    multidiffusion_weights,
    window_starts,
)
from papershelf.moviegen.cast.audio import (
    AUDIO_PRESETS,
    DACVAE1D,
    VAE_PRESETS,
    AudioDiT,
    AudioDiTConfig,
    DACVAEConfig,
    audio_param_count,
)
from papershelf.moviegen.cast.edit import (
    EDIT_PRESETS,
    EDIT_STAGES,
    EditConditioning,
    EditConfig,
    EditModel,
    edit_param_count,
)
from papershelf.moviegen.cast.personalization import (
    PT2V_PRESETS,
    PT2V_STAGES,
    PersonalizedConditioner,
    PersonalizedVideoModel,
    PT2VConfig,
    PT2VStage,
    TinyVisionEncoder,
    apply_stage,
    pt2v_param_count,
)
from papershelf.moviegen.cast.upsampler import (
    UPSAMPLER_PRESETS,
    SpatialUpsampler,
    UpsamplerConfig,
    degrade,
    upsampler_param_count,
)

__all__ = [
    "AUDIO_PRESETS",
    "EDIT_PRESETS",
    "EDIT_STAGES",
    "PT2V_PRESETS",
    "PT2V_STAGES",
    "UPSAMPLER_PRESETS",
    "VAE_PRESETS",
    "AudioDiT",
    "AudioDiTConfig",
    "CastDiT",
    "DACVAE1D",
    "DACVAEConfig",
    "DiTConfig",
    "EditConditioning",
    "EditConfig",
    "EditModel",
    "PT2VConfig",
    "PT2VStage",
    "PersonalizedConditioner",
    "PersonalizedVideoModel",
    "SpatialUpsampler",
    "TinyVisionEncoder",
    "UpsamplerConfig",
    "apply_stage",
    "audio_param_count",
    "degrade",
    "dit_param_count",
    "edit_param_count",
    "flow_pair",
    "integrate",
    "multidiffusion_velocity",
    "multidiffusion_weights",
    "pt2v_param_count",
    "upsampler_param_count",
    "window_starts",
]
