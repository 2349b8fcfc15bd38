"""Text-to-video as a diffusers ``DiffusionPipeline``.

prompt -> text context -> linear-quadratic flow sampling with diffusers'
``FlowMatchEulerDiscreteScheduler`` and classifier-free guidance -> (optional spatial
upsampler) -> temporally tiled TAE decode -> frames (Polyak et al. 2024, Sec. 3.1.6).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import diffusers
import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.utils import BaseOutput
from torch import Tensor

from papershelf.moviegen.cast.upsampler import SpatialUpsampler
from papershelf.moviegen.schedules import linear_quadratic_t, to_diffusers_sigmas
from papershelf.moviegen.tae import TemporalAutoencoder, temporal_tiled_decode
from papershelf.moviegen.text import MultiTextConditioner, TextContext
from papershelf.moviegen.transformer import MovieGenTransformer

# typed as Any: the pipeline's components are dynamic attributes
DiffusionPipeline: Any = diffusers.DiffusionPipeline

__all__ = ["MovieGenPipeline", "MovieGenPipelineOutput", "save_video"]

#: The file ``save_pretrained`` writes so that ``DiffusionPipeline.from_pretrained`` finds
#: this class (diffusers' custom-pipeline mechanism); it only imports the installed package.
#: diffusers resolves a string ``_class_name`` only inside ``diffusers`` itself
#: (``pipeline_loading_utils._get_pipeline_class``); a ``[file, class]`` pair is imported
#: from the folder by ``utils.dynamic_modules_utils.get_cached_module_file``, which refuses
#: a local file without ``trust_remote_code=True``. ``MovieGenPipeline.from_pretrained``
#: never reads the file (see ``_dict_from_json_file``).
_SHIM_NAME = "moviegen_pipeline"
_SHIM = (
    '"""Loads papershelf-moviegen\'s pipeline class (pip install papershelf-moviegen)."""\n\n'
    "from papershelf.moviegen.pipeline import MovieGenPipeline\n\n"
    '__all__ = ["MovieGenPipeline"]\n'
)
_OUTPUT_TYPES = ("np", "pt", "pil", "latent")


@dataclass
class MovieGenPipelineOutput(BaseOutput):
    """Output of :class:`MovieGenPipeline`.

    Attributes
    ----------
    frames : np.ndarray, Tensor or list of list of PIL.Image
        ``"np"``: (B, T, H, W, 3) float in [0, 1]; ``"pt"``: (B, T, 3, H, W) in [0, 1];
        ``"pil"``: B lists of T images; ``"latent"``: the latents (B, C, T, H, W).
        ``diffusers.utils.export_to_video(frames[0], path)`` writes one clip.
    """

    frames: Any


def default_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """The scheduler Movie Gen's sampler equals: flow-matching Euler, ``shift=1``."""
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


def _check_guidance(guidance_scale: Any) -> float:
    scalar_array = isinstance(guidance_scale, (Tensor, np.ndarray)) and np.ndim(guidance_scale) == 0
    if (
        isinstance(guidance_scale, bool) or not isinstance(guidance_scale, numbers.Real)
    ) and not scalar_array:
        raise TypeError(
            f"guidance_scale must be a real number, got {type(guidance_scale).__name__}"
        )
    g = float(guidance_scale)
    if not math.isfinite(g):
        raise ValueError(f"guidance_scale must be finite, got {g}")
    if g < 0:
        raise ValueError(f"guidance_scale must be >= 0, got {g}")
    return g


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


class MovieGenPipeline(DiffusionPipeline):
    """Movie Gen Video text-to-video inference, a diffusers ``DiffusionPipeline``.

    Parameters
    ----------
    transformer : MovieGenTransformer
    vae : TemporalAutoencoder
        Its ``config.scaling_factor`` divides latents before the transformer.
    scheduler : FlowMatchEulerDiscreteScheduler
        Given the linear-quadratic sigmas at every call; with ``shift=1`` its Euler step
        equals :func:`~papershelf.moviegen.euler_sample` (a test checks it bit for bit).
    text_encoder : MultiTextConditioner
        The encoders named in the transformer's ``text_dims``.
    upsampler : SpatialUpsampler, optional
        A second stage run on the decoded clip (768 px -> 1080p in the paper): Movie Gen
        Video's transformer with the bilinearly upsampled clip's latent as zero-initialised
        extra channels (:meth:`SpatialUpsampler.from_t2v`). A text-conditioned upsampler
        reads the prompt's context (its ``text_dims`` must be the text encoder's); with
        ``codec="vae"`` it encodes and decodes frames with this pipeline's ``vae``. Saved
        and loaded with the rest of the folder.

    Examples
    --------
    >>> pipe = MovieGenPipeline(
    ...     transformer, vae, default_scheduler(), text_encoder
    ... )  # doctest: +SKIP
    >>> video = pipe(
    ...     "a red square moving left",
    ...     num_frames=8,
    ...     height=32,
    ...     width=32,
    ...     generator=torch.Generator().manual_seed(0),
    ... ).frames[0]  # doctest: +SKIP
    >>> export_to_video(video, "clip.mp4", fps=8)  # doctest: +SKIP

    ``save_pretrained(folder)`` writes every component (safetensors) and a one-line
    ``moviegen_pipeline.py`` naming this class. ``MovieGenPipeline.from_pretrained(folder)``
    loads it without running any file of the folder; the generic
    ``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` loads it through
    that file (diffusers finds a pipeline class outside ``diffusers`` only in a code file
    of the folder, and imports such a file only with ``trust_remote_code=True``; ours only
    imports this installed package).
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae->upsampler"
    _optional_components: ClassVar[list[str]] = ["upsampler"]
    _callback_tensor_inputs: ClassVar[list[str]] = ["latents"]

    def __init__(
        self,
        transformer: MovieGenTransformer,
        vae: TemporalAutoencoder,
        scheduler: FlowMatchEulerDiscreteScheduler,
        text_encoder: MultiTextConditioner,
        upsampler: SpatialUpsampler | None = None,
    ) -> None:
        super().__init__()
        if vae.cfg.latent_channels != transformer.cfg.in_channels:
            raise ValueError(
                f"the vae has {vae.cfg.latent_channels} latent channels, the "
                f"transformer expects {transformer.cfg.in_channels}"
            )
        if set(text_encoder.text_dims) != set(transformer.cfg.text_dims):
            raise ValueError(
                f"text_encoder encoders {sorted(text_encoder.text_dims)} must match the "
                f"transformer's text_dims {sorted(transformer.cfg.text_dims)}"
            )
        _check_upsampler(upsampler, vae, text_encoder)
        self.register_modules(
            transformer=transformer,
            vae=vae,
            scheduler=scheduler,
            text_encoder=text_encoder,
            upsampler=upsampler,
        )

    # ----------------------------------------------------------------- save / load
    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> None:
        """Save every component (the upsampler too, when there is one) and the class shim.

        ``model_index.json`` names the pipeline ``["moviegen_pipeline", "MovieGenPipeline"]``
        (the shim file) and each component by its defining module, e.g.
        ``["papershelf.moviegen.transformer", "MovieGenTransformer"]``: diffusers looks a
        non-diffusers library up in ``sys.modules`` only (``_get_library_or_raise``; this
        module imports all four) and finds its base class (``ModelMixin``) in that same
        module's namespace (``get_class_obj_and_candidates``), so a re-exporting package
        such as ``papershelf.moviegen`` would not load.
        """
        super().save_pretrained(save_directory, **kwargs)
        import json

        root = Path(save_directory)
        (root / f"{_SHIM_NAME}.py").write_text(_SHIM)
        index = json.loads((root / "model_index.json").read_text())
        index["_class_name"] = [_SHIM_NAME, type(self).__name__]
        (root / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    @classmethod
    def _dict_from_json_file(cls, json_file: str | os.PathLike[str]) -> dict[str, Any]:
        """Read ``model_index.json``; a ``[shim, class]`` name becomes this class's name.

        diffusers' ``from_pretrained`` (and ``download``) read the folder's
        ``model_index.json`` through this ``ConfigMixin`` classmethod; a list
        ``_class_name`` would make them import the folder's ``moviegen_pipeline.py`` as
        a custom pipeline (``_resolve_custom_pipeline_and_cls``), which needs
        ``trust_remote_code``. Called on ``MovieGenPipeline`` the class is already known,
        so the name is replaced by the class's own and no file of the folder runs.
        """
        config = dict(super()._dict_from_json_file(json_file))
        name = config.get("_class_name")
        if isinstance(name, (list, tuple)) and len(name) == 2 and name[0] == _SHIM_NAME:
            config["_class_name"] = cls.__name__
        return config

    # ----------------------------------------------------------------- helpers
    @property
    def latent_scale(self) -> float:
        """The vae's ``scaling_factor`` (latents are divided by it before the transformer)."""
        return float(getattr(self.vae.config, "scaling_factor", 1.0))

    def encode_prompt(
        self,
        prompt: str | Sequence[str],
        negative_prompt: str | Sequence[str] | None = None,
        num_videos_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
    ) -> tuple[TextContext, TextContext | None]:
        """Text contexts of the prompts and (with CFG) of the negative prompts or the null text."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompt must be a str or a non-empty list of str")
        prompts = [p for p in prompts for _ in range(num_videos_per_prompt)]
        text = self.text_encoder(prompts)
        if not do_classifier_free_guidance:
            return text, None
        if negative_prompt is None:
            return text, text.null()
        neg = [negative_prompt] if isinstance(negative_prompt, str) else list(negative_prompt)
        if len(neg) == 1:
            neg = neg * (len(prompts) // num_videos_per_prompt)
        if len(neg) * num_videos_per_prompt != len(prompts):
            raise ValueError(
                f"negative_prompt must be one str or {len(prompts) // num_videos_per_prompt} "
                f"of them, got {len(neg)}"
            )
        neg = [p for p in neg for _ in range(num_videos_per_prompt)]
        return text, self.text_encoder(neg)

    def set_linear_quadratic_timesteps(
        self, num_inference_steps: int, emulated_steps: int, device: Any = None
    ) -> Tensor:
        """Give the scheduler Movie Gen's linear-quadratic grid; returns the timesteps (S,)."""
        t = linear_quadratic_t(num_inference_steps, emulated_steps)
        self.scheduler.set_timesteps(sigmas=to_diffusers_sigmas(t).tolist(), device=device)
        return self.scheduler.timesteps

    # ----------------------------------------------------------------- call
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str],
        negative_prompt: str | Sequence[str] | None = None,
        num_frames: int = 8,
        height: int = 32,
        width: int = 32,
        num_inference_steps: int = 50,
        emulated_steps: int = 250,
        guidance_scale: float = 7.5,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | None = None,
        latents: Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        upsample: bool = True,
        upsample_size: tuple[int, int] | None = None,
        decode_tile: int = 4,
        decode_overlap: int = 2,
    ) -> Any:
        """Generate clips.

        Parameters
        ----------
        prompt : str or list of str
            An "FPS-16" prefix is how the paper controls the frame rate.
        negative_prompt : str or list of str, optional
            Replaces the null text in the unconditional CFG branch; needs guidance > 1.
        num_frames, height, width : int
            Pixel size; height and width must be divisible by the TAE's spatial
            compression times the patch.
        num_inference_steps, emulated_steps : int
            Linear-quadratic grid: ``num_inference_steps`` Euler steps emulating
            ``emulated_steps`` (paper: 50 emulating 250).
        guidance_scale : float
            CFG scale w (paper: 7.5, unconfirmed); w <= 1 skips the unconditional pass.
        num_videos_per_prompt : int
        generator : torch.Generator, optional
            Source of the initial noise (drawn on the CPU: same seed, same clip on every device).
        latents : Tensor, optional
            Initial noise (B, C, T, H, W) instead of drawing it.
        output_type : {"np", "pt", "pil", "latent"}
            ``"latent"`` returns the base model's latents (the upsampler works on decoded
            frames).
        return_dict : bool
            :class:`MovieGenPipelineOutput` or the tuple ``(frames,)``.
        callback_on_step_end : callable, optional
            ``callback(pipe, step, timestep, callback_kwargs) -> dict``; the returned
            ``"latents"`` replace the running latents.
        upsample : bool
            Run the ``upsampler`` stage when the pipeline has one.
        upsample_size : (H, W), optional
            Pixel size of the upsampled clip (default: the upsampler's integer ``scale``
            times ``height`` and ``width``); e.g. ``(1080, 1920)`` from a 768 px clip.
        decode_tile, decode_overlap : int
            Temporal tiling of the decoder in latent frames (paper: 4 and 2).

        Returns
        -------
        MovieGenPipelineOutput
        """
        guidance = _check_guidance(guidance_scale)
        if output_type not in _OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {_OUTPUT_TYPES}, got {output_type!r}")
        if negative_prompt is not None and guidance <= 1.0:
            raise ValueError(
                f"negative_prompt needs guidance_scale > 1 (got {guidance}): with w <= 1 the "
                "unconditional branch, where the negative prompt acts, is never evaluated"
            )
        num_frames = _check_int("num_frames", num_frames, 1)
        height = _check_int("height", height, 1)
        width = _check_int("width", width, 1)
        steps = _check_int("num_inference_steps", num_inference_steps, 2)
        emulated = _check_int("emulated_steps", emulated_steps, steps)
        nvp = _check_int("num_videos_per_prompt", num_videos_per_prompt, 1)
        bad = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if bad:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, "
                f"got {sorted(bad)}"
            )
        vae, transformer = self.vae, self.transformer
        fs, ft = vae.cfg.spatial_factor, vae.cfg.temporal_factor
        pt, ph, pw = transformer.cfg.patch
        if height % (fs * ph) or width % (fs * pw):
            raise ValueError(
                f"height and width must be divisible by {fs * ph} and {fs * pw} "
                f"(TAE compression x patch), got {height} x {width}"
            )
        T = -(-num_frames // ft)
        if T % pt:
            raise ValueError(f"{T} latent frames are not divisible by the temporal patch {pt}")

        use_cfg = guidance > 1.0
        text, uncond = self.encode_prompt(prompt, negative_prompt, nvp, use_cfg)
        try:
            device = self._execution_device
        except AttributeError:  # a component without .device (e.g. a plain nn.Module upsampler)
            device = self.transformer.device
        text = text.to(device)
        both = TextContext.cat([text, uncond.to(device)]) if uncond is not None else text
        B = text.batch_size
        shape = (B, vae.cfg.latent_channels, T, height // fs, width // fs)
        dtype = transformer.patchify.weight.dtype
        if latents is None:
            latents = torch.randn(shape, generator=generator, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        x = latents.to(device, torch.float32)

        timesteps = self.set_linear_quadratic_timesteps(steps, emulated, device)
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps)) as bar:
            for i, ts in enumerate(timesteps):
                t = (1.0 - ts.float() / self.scheduler.config.num_train_timesteps).clamp(0, 1)
                tb = t.expand(B).to(device)
                if use_cfg:
                    xx = torch.cat([x, x]).to(dtype)
                    v_c, v_u = transformer(xx, torch.cat([tb, tb]), both).float().chunk(2)
                    v = v_u + guidance * (v_c - v_u)
                else:
                    v = transformer(x.to(dtype), tb, text).float()
                # diffusers' flow convention: sigma = 1 - t, output = -velocity
                x = self.scheduler.step(-v, ts, x, return_dict=False)[0]
                if callback_on_step_end is not None:
                    avail = {"latents": x}
                    kw = {k: avail[k] for k in callback_on_step_end_tensor_inputs}
                    out = callback_on_step_end(self, i, ts, kw) or {}
                    x = out.get("latents", x)
                bar.update()

        if output_type == "latent":
            frames: Any = x
        else:
            z = x.to(vae.dtype) * self.latent_scale
            video = temporal_tiled_decode(
                vae, z, decode_tile, min(decode_overlap, decode_tile - 1), num_frames
            ).clamp(-1, 1)
            if upsample and self.upsampler is not None:
                video = self._upsample(video, text, generator, upsample_size).clamp(-1, 1)
            frames = _postprocess(video.float().cpu(), output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return MovieGenPipelineOutput(frames=frames)

    def _upsample(
        self, video: Tensor, text: TextContext, generator: Any, size: tuple[int, int] | None
    ) -> Tensor:
        """The upsampler stage on decoded frames (B, 3, T, H, W) in [-1, 1]."""
        up = self.upsampler
        if not isinstance(up, SpatialUpsampler):  # a duck-typed stage: upsample(video, generator=)
            if size is not None:
                raise ValueError("upsample_size needs a SpatialUpsampler")
            return up.upsample(video, generator=generator)
        _check_upsampler(up, self.vae, self.text_encoder)
        return up.upsample(
            video.to(up.dtype),
            generator=generator,
            text=text.to(up.device) if up.text_conditioned else None,
            vae=self.vae if up.cfg.codec == "vae" else None,
            size=size,
        )


def _check_upsampler(upsampler: Any, vae: Any, text_encoder: Any) -> None:
    """An upsampler must read this pipeline's text encoders and (codec "vae") its latents."""
    if not isinstance(upsampler, SpatialUpsampler):
        return
    cfg = upsampler.cfg
    if cfg.text_dims is not None and dict(cfg.text_dims) != dict(text_encoder.text_dims):
        raise ValueError(
            f"the upsampler reads text encoders {cfg.text_dims}, the pipeline's text_encoder "
            f"gives {dict(text_encoder.text_dims)}"
        )
    if cfg.codec == "vae" and cfg.latent_channels != vae.cfg.latent_channels:
        raise ValueError(
            f"the upsampler (codec 'vae') expects {cfg.latent_channels} latent channels, the "
            f"vae has {vae.cfg.latent_channels}"
        )


def _postprocess(video: Tensor, output_type: str) -> Any:
    """(B, 3, T, H, W) in [-1, 1] -> the requested frame format in [0, 1]."""
    v = ((video + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4)  # (B, T, 3, H, W)
    if output_type == "pt":
        return v
    arr = v.permute(0, 1, 3, 4, 2).numpy()  # (B, T, H, W, 3)
    if output_type == "np":
        return arr
    from PIL import Image

    return [[Image.fromarray((f * 255).round().astype(np.uint8)) for f in clip] for clip in arr]


def save_video(video: Tensor, path: str | Path, fps: int = 8) -> Path:
    """Save one clip (3, T, H, W) in [-1, 1] as GIF or MP4 (needs the ``video`` extra: imageio)."""
    try:
        import imageio.v3 as iio
    except ImportError as e:  # pragma: no cover - exercised without the extra
        raise ImportError(
            'save_video needs imageio: pip install "papershelf-moviegen[video]"'
        ) from e

    if video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"video must be (3, T, H, W), got {tuple(video.shape)}")
    frames = ((video.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).cpu().numpy()
    path = Path(path)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, np.ascontiguousarray(frames), duration=1000 / fps, loop=0)
    else:
        iio.imwrite(path, frames, fps=fps)
    return path
