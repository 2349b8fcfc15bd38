"""Fairy video editing on top of any diffusers InstructPix2Pix pipeline (Wu et al., CVPR 2024).

1. Pick K anchor frames and edit them together, each attending to all anchors; cache their
   self-attention keys/values per layer, step and guidance branch (record pass).
2. Edit every other frame independently, in chunks of any size, each attending to its own
   tokens plus the cached anchors (replay pass). A frame depends only on itself and the
   anchors, so chunks may run in any order, on any process.

Every frame starts from the same initial noise and gets its own generator seeded alike, so the
Euler-Ancestral noise drawn at each step does not depend on how frames are grouped: chunked and
all-at-once editing agree to float round-off.
"""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from papershelf.core import progress
from papershelf.core.validation import check_bool, check_choice, check_int, check_real
from papershelf.fairy.anchors import check_anchor_indices, select_anchors
from papershelf.fairy.attention import anchor_attention
from papershelf.fairy.video import (
    frames_to_numpy,
    frames_to_pil,
    load_video,
    resize_frames,
    to_frames_tensor,
    write_video,
)

__all__ = ["DEFAULT_CHUNK_SIZE", "FairyOutput", "FairyVideoEditor", "check_instruct_pix2pix"]

log = logging.getLogger(__name__)

OUTPUT_TYPES = ("pt", "np", "pil", "latent")
BASELINES = ("frame-wise", "full")
ANCHOR_MODES = ("cache", "recompute", *BASELINES)
DEFAULT_CHUNK_SIZE = 8


@dataclass
class FairyOutput:
    """What :meth:`FairyVideoEditor.edit_video` returns.

    Attributes
    ----------
    frames : Tensor (N, 3, H, W) in [0, 1], ndarray (N, H, W, 3) uint8, list of PIL, or latents
        The edited video, in the requested ``output_type`` (with ``distributed=True``: the whole
        video on rank 0, this rank's frames elsewhere).
    anchor_indices : list of int
    cache_nbytes : int
        Size of the anchor key/value cache (0 in ``anchor_mode="recompute"``).
    max_unet_batch : int
        Largest UNet batch of the run (``branches * max(chunk_size, K)``).
    timings : dict of str to float
        Wall seconds: ``anchors``, ``frames``, ``decode`` and ``total``.
    frame_indices : list of int
        The frame numbers held in ``frames`` (all of them, except on ranks other than 0).
    size : (int, int)
        (height, width) the frames were edited at.
    """

    frames: Any
    anchor_indices: list[int]
    cache_nbytes: int = 0
    max_unet_batch: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    frame_indices: list[int] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)


# keyword arguments the editor passes to every pipeline call (pipe_kwargs must not repeat them)
_RESERVED_PIPE_KWARGS = frozenset(
    {
        "image",
        "prompt",
        "negative_prompt",
        "prompt_embeds",
        "negative_prompt_embeds",
        "num_inference_steps",
        "guidance_scale",
        "image_guidance_scale",
        "generator",
        "output_type",
        "return_dict",
        "num_images_per_prompt",
    }
)


def _seed_from(generator: torch.Generator | int | None) -> int:
    if generator is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(generator, torch.Generator):
        # on the generator's own device: a CUDA generator (diffusers' usual
        # torch.Generator("cuda")) cannot draw a CPU tensor
        draw = torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)
        return int(draw.item())
    return check_int("generator", generator, low=0)


def check_instruct_pix2pix(pipe: Any) -> None:
    """Raise ``TypeError`` unless ``pipe`` is an InstructPix2Pix-style diffusers pipeline.

    Fairy edits with an image-conditioned UNet: it takes the noisy latent and the source
    image's latent, 4 + 4 = 8 input channels, and the pipeline's ``__call__`` takes ``image``
    and ``image_guidance_scale``. A text-to-image pipeline (e.g. ``StableDiffusionPipeline``,
    4 channels) would ignore the video entirely, so it is rejected.
    """
    name = type(pipe).__name__
    for attr in ("unet", "vae", "scheduler", "image_processor"):
        if not hasattr(pipe, attr):
            raise TypeError(
                f"pipe must be a diffusers InstructPix2Pix pipeline, got {name} (no .{attr})"
            )
    in_ch = getattr(getattr(pipe.unet, "config", None), "in_channels", None)
    latent_ch = getattr(getattr(pipe.vae, "config", None), "latent_channels", 4)
    if in_ch != 2 * latent_ch:
        raise TypeError(
            f"pipe must be an InstructPix2Pix-style pipeline whose UNet takes the noisy and the "
            f"image latents ({2 * latent_ch} input channels); {name}'s UNet takes {in_ch}. A "
            "text-to-image pipeline such as StableDiffusionPipeline cannot edit a video: load an "
            "image-editing checkpoint (e.g. timbrooks/instruct-pix2pix)"
        )
    if hasattr(pipe, "edit_images"):  # a FairyPipeline: InstructPix2Pix by inheritance
        return
    try:
        params = inspect.signature(pipe).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return
    if not {"image", "image_guidance_scale"} <= set(params):
        raise TypeError(
            f"pipe must be an InstructPix2Pix pipeline: {name}.__call__ takes no `image` and "
            "`image_guidance_scale`"
        )


class FairyVideoEditor:
    """Instruction-guided video editing with anchor-based cross-frame attention.

    Parameters
    ----------
    pipe : diffusers.StableDiffusionInstructPix2PixPipeline or FairyPipeline
        An InstructPix2Pix-style pipeline (its UNet takes noisy + image latents, 8 channels;
        others raise ``TypeError``). It is used as is: move it to a device and choose its
        scheduler before editing (the paper uses Euler Ancestral). Its attention processors
        are swapped during a call and restored.

    References
    ----------
    Wu et al., "Fairy: Fast Parallelized Instruction-Guided Video-to-Video Synthesis",
    CVPR 2024. arXiv:2312.13834.

    Examples
    --------
    >>> from papershelf.fairy import FairyVideoEditor
    >>> from papershelf.fairy.testing import synthetic_video, tiny_instruct_pix2pix
    >>> video, _ = synthetic_video(6, 32, 32)
    >>> out = FairyVideoEditor(tiny_instruct_pix2pix()).edit_video(
    ...     video, "make it snowy", num_inference_steps=2, generator=0
    ... )
    >>> out.frames.shape
    torch.Size([6, 3, 32, 32])
    """

    def __init__(self, pipe: Any) -> None:
        check_instruct_pix2pix(pipe)
        self.pipe = pipe

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> Any:
        """Load an InstructPix2Pix checkpoint folder (see :meth:`FairyPipeline.from_pretrained`)."""
        from papershelf.fairy.pipeline import FairyPipeline

        return cls(FairyPipeline.from_pretrained(pretrained_model_name_or_path, **kwargs))

    @property
    def vae_scale_factor(self) -> int:
        """Pixel size of one latent cell."""
        return int(getattr(self.pipe, "vae_scale_factor", 8))

    @property
    def default_resolution(self) -> int:
        """Default longer side: the UNet's native size, ``sample_size * vae_scale_factor``.

        512 for Stable Diffusion 1.5 / InstructPix2Pix, the paper's setting.
        """
        sample = getattr(self.pipe.unet.config, "sample_size", 64)
        sample = max(sample) if isinstance(sample, list | tuple) else sample
        return int(sample) * self.vae_scale_factor

    def target_size(
        self,
        frame_height: int,
        frame_width: int,
        *,
        height: int | None = None,
        width: int | None = None,
        resolution: int | None = None,
    ) -> tuple[int, int]:
        """(height, width) a video of the given size is edited at.

        Without overrides the longer side becomes ``resolution`` (default
        :attr:`default_resolution`, 512 for SD-1.5), the aspect ratio is kept and both sides
        are rounded to multiples of the VAE factor. ``height``/``width`` override one or both
        sides (the other follows the aspect ratio); they must be multiples of the VAE factor.
        """
        f = self.vae_scale_factor
        for name, v in (("height", height), ("width", width)):
            if v is not None and check_int(name, v, low=f) % f:
                raise ValueError(f"{name} must be a multiple of the VAE factor {f}, got {v}")
        if height is not None and width is not None:
            return int(height), int(width)
        aspect = frame_width / frame_height
        if height is not None:
            return int(height), max(f, round(height * aspect / f) * f)
        if width is not None:
            return max(f, round(width / aspect / f) * f), int(width)
        longer = self.default_resolution if resolution is None else resolution
        longer = check_int("resolution", longer, low=f)
        scale = longer / max(frame_height, frame_width)
        return (
            max(f, round(frame_height * scale / f) * f),
            max(f, round(frame_width * scale / f) * f),
        )

    def edit_video(
        self,
        frames: Any,
        instruction: str | None = None,
        *,
        negative_prompt: str | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        height: int | None = None,
        width: int | None = None,
        resolution: int | None = None,
        num_anchors: int = 3,
        anchor_indices: list[int] | None = None,
        anchor_strategy: str = "uniform",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        num_inference_steps: int = 10,
        guidance_scale: float = 7.5,
        image_guidance_scale: float = 1.5,
        generator: torch.Generator | int | None = None,
        anchor_mode: str = "cache",
        output_type: str = "pt",
        distributed: bool = False,
        show_progress: bool | None = None,
        pipe_kwargs: dict[str, Any] | None = None,
    ) -> FairyOutput:
        """Edit a video with one instruction.

        Parameters
        ----------
        frames : Tensor (N, 3, H, W), ndarray (N, H, W, 3), or list of PIL images / arrays
            The source video, float in [0, 1] or uint8.
        instruction : str, optional
            The edit, e.g. ``"turn it into a Van Gogh painting"`` (or give ``prompt_embeds``).
        negative_prompt : str, optional
            Used for the unconditional guidance branch (every frame).
        prompt_embeds, negative_prompt_embeds : Tensor (1, L, D), optional
            Precomputed text embeddings of one prompt, used for every frame (instead of
            ``instruction`` / ``negative_prompt``).
        height, width : int, optional
            Edit size (multiples of the VAE factor); one of them keeps the aspect ratio.
        resolution : int, optional
            Longer side when ``height``/``width`` are not given; default
            :attr:`default_resolution` (512 for Stable Diffusion 1.5, the paper's setting).
            Frames are resized (bicubic, antialiased) and edited at that size.
        num_anchors : int, default 3
            K, the number of anchor frames (paper default 3); clamped to N for short clips.
        anchor_indices : list of int, optional
            Explicit anchors (overrides ``num_anchors`` and ``anchor_strategy``).
        anchor_strategy : {"uniform", "first", "middle"}
            See :func:`papershelf.fairy.select_anchors`.
        chunk_size : int, default 8
            Non-anchor frames per UNet call. Bounds the UNet batch at
            ``3 * max(chunk_size, K)`` with guidance; results do not depend on it.
        num_inference_steps : int, default 10
            The paper uses 10 Euler-Ancestral steps.
        guidance_scale, image_guidance_scale : float, default 7.5, 1.5
            InstructPix2Pix text and image guidance (the paper does not state its values;
            these are diffusers' defaults). Finite and ``>= 0``. As in diffusers, guidance runs
            (three branches) only when ``guidance_scale > 1`` and ``image_guidance_scale >= 1``;
            a setting that asks for one kind of guidance but switches both off warns.
        generator : torch.Generator or int, optional
            Source of the one seed used for every frame: each frame gets its own generator with
            that seed, so all frames share the initial noise and results do not depend on
            chunking. With ``distributed=True`` pass an int, the same on every rank.
        anchor_mode : {"cache", "recompute", "frame-wise", "full"}
            ``"cache"`` records the anchors once and keeps their keys/values for all steps;
            ``"recompute"`` re-runs the anchors with every chunk in lock-step (no cache, K extra
            frames of compute per chunk; equal results up to round-off). Two baselines for
            comparisons: ``"frame-wise"`` edits every frame on its own (plain InstructPix2Pix,
            same noise and chunking) and ``"full"`` runs all frames in one batch with full
            cross-frame attention (every frame attends to every frame; quadratic cost).
        output_type : {"pt", "np", "pil", "latent"}
            Tensor (N, 3, H, W) in [0, 1], uint8 array (N, H, W, 3), PIL images, or latents.
        distributed : bool, default False
            Split the video into contiguous segments over the ranks of the initialised
            ``torch.distributed`` group. Every rank edits the K anchors itself (nothing is
            broadcast), edits and decodes only its segment, and rank 0 gathers the decoded
            frames: rank 0 returns the whole video, the others their segment.
        show_progress : bool, optional
            Progress bar over chunks (default: only on a terminal).
        pipe_kwargs : dict, optional
            Extra keyword arguments for each pipeline call (e.g. ``callback_on_step_end``);
            the ones the editor sets itself (``generator``, ``output_type``, the prompts and
            guidance scales, ``num_images_per_prompt``...) raise ``ValueError``.

        Returns
        -------
        FairyOutput
        """
        video = to_frames_tensor(frames)
        n = video.shape[0]
        h, w = self.target_size(
            video.shape[2], video.shape[3], height=height, width=width, resolution=resolution
        )
        video = resize_frames(video, h, w)
        if prompt_embeds is None:
            if not isinstance(instruction, str) or not instruction:
                raise TypeError("instruction must be a non-empty string (or give prompt_embeds)")
        elif instruction is not None:
            raise ValueError("give instruction or prompt_embeds, not both")
        if negative_prompt is not None and prompt_embeds is not None:
            raise ValueError("with prompt_embeds, give negative_prompt_embeds, not negative_prompt")
        if negative_prompt is not None and not isinstance(negative_prompt, str):
            raise TypeError(
                f"negative_prompt must be a string, got {type(negative_prompt).__name__}"
            )
        embeds = {
            name: _check_embeds(name, e)
            for name, e in (
                ("prompt_embeds", prompt_embeds),
                ("negative_prompt_embeds", negative_prompt_embeds),
            )
            if e is not None
        }
        if anchor_indices is not None:
            anchors = check_anchor_indices(anchor_indices, n)
        else:
            k = check_int("num_anchors", num_anchors, low=1)
            anchors = select_anchors(n, min(k, n), anchor_strategy)
        size = check_int("chunk_size", chunk_size, low=1)
        steps = check_int("num_inference_steps", num_inference_steps, low=1)
        gs = check_real("guidance_scale", guidance_scale, low=0.0)
        igs = check_real("image_guidance_scale", image_guidance_scale, low=0.0)
        cfg_on = gs > 1.0 and igs >= 1.0
        if not cfg_on and (gs > 1.0 or igs > 1.0):
            warnings.warn(
                f"guidance is off: diffusers' InstructPix2Pix guides only when guidance_scale > 1 "
                f"and image_guidance_scale >= 1 (got {gs:g} and {igs:g})",
                UserWarning,
                stacklevel=2,
            )
        check_choice("anchor_mode", anchor_mode, ANCHOR_MODES)
        check_choice("output_type", output_type, OUTPUT_TYPES)
        distributed = check_bool("distributed", distributed)
        if anchor_mode == "full" and distributed:
            raise ValueError("anchor_mode='full' (all frames in one batch) cannot be distributed")
        if distributed and isinstance(generator, torch.Generator):
            raise TypeError(
                "with distributed=True, generator must be an int seed (same on all ranks)"
            )
        seed = _seed_from(generator)
        if pipe_kwargs is not None:
            if not isinstance(pipe_kwargs, dict):
                raise TypeError(f"pipe_kwargs must be a dict, got {type(pipe_kwargs).__name__}")
            taken = sorted(set(pipe_kwargs) & _RESERVED_PIPE_KWARGS)
            if taken:
                raise ValueError(
                    f"pipe_kwargs may not set {taken}: the editor passes them to every pipeline "
                    "call itself (use edit_video's own arguments; one output per frame)"
                )

        rank, world = 0, 1
        if distributed:
            import torch.distributed as dist

            if not (dist.is_available() and dist.is_initialized()):
                raise RuntimeError("distributed=True needs an initialised torch.distributed group")
            rank, world = dist.get_rank(), dist.get_world_size()
        own = list(range(rank * n // world, (rank + 1) * n // world))
        anchor_set = set(anchors)
        mine = [i for i in own if i not in anchor_set]
        chunks = [mine[i : i + size] for i in range(0, len(mine), size)]

        call: dict[str, Any] = dict(
            prompt=instruction,
            negative_prompt=negative_prompt,
            embeds=embeds,
            num_inference_steps=steps,
            guidance_scale=gs,
            image_guidance_scale=igs,
            seed=seed,
            extra=pipe_kwargs or {},
        )
        latents: dict[int, torch.Tensor] = {}
        timings = {"anchors": 0.0, "frames": 0.0, "decode": 0.0}
        t_start = time.perf_counter()
        old_cfg = dict(getattr(self.pipe, "_progress_bar_config", {}))
        self.pipe.set_progress_bar_config(**{**old_cfg, "disable": True})
        if anchor_mode == "cache":
            groups = [anchors, *chunks]
        elif anchor_mode == "frame-wise":
            groups = [own[i : i + size] for i in range(0, len(own), size)]
        elif anchor_mode == "full":
            groups = [own]
        else:
            groups = chunks or ([[]] if anchor_set & set(own) else [])
        bar = progress(
            total=len(groups),
            desc="fairy: editing",
            unit="chunk",
            disable=None if show_progress is None else not show_progress,
        )
        cache_nbytes = 0
        try:
            with anchor_attention(self.pipe.unet) as state:
                if anchor_mode == "cache":
                    t0 = time.perf_counter()
                    # every rank records the anchors itself: a few frames of duplicated work
                    # instead of shipping a cache of gigabytes
                    state.begin("record", len(anchors))
                    lat = self._run(video[anchors], **call)
                    latents.update((i, x) for i, x in zip(anchors, lat) if i in own)
                    bar.update(1)
                    timings["anchors"] = time.perf_counter() - t0
                    cache_nbytes = state.cache_nbytes()
                    t0 = time.perf_counter()
                    for chunk in chunks:
                        state.begin("replay", len(chunk))
                        latents.update(zip(chunk, self._run(video[chunk], **call)))
                        bar.update(1)
                    timings["frames"] = time.perf_counter() - t0
                elif anchor_mode in BASELINES:
                    t0 = time.perf_counter()
                    for group in groups:
                        state.begin("off" if anchor_mode == "frame-wise" else "full", len(group))
                        latents.update(zip(group, self._run(video[group], **call)))
                        bar.update(1)
                    timings["frames"] = time.perf_counter() - t0
                else:
                    t0 = time.perf_counter()
                    k = len(anchors)
                    for chunk in groups:
                        state.begin("joint", k + len(chunk), k)
                        lat = self._run(video[anchors + chunk], **call)
                        latents.update((i, x) for i, x in zip(anchors, lat[:k]) if i in own)
                        latents.update(zip(chunk, lat[k:]))
                        bar.update(1)
                    timings["frames"] = time.perf_counter() - t0
                max_batch = max(state.unet_batch_sizes, default=0)
        finally:
            bar.close()
            self.pipe._progress_bar_config = old_cfg
        t0 = time.perf_counter()
        mine_all = [latents[i] for i in own]
        out_local: torch.Tensor
        if output_type == "latent":
            out_local = torch.stack(mine_all) if mine_all else torch.empty(0)
        elif mine_all:
            ordered = torch.stack(mine_all)
            out_local = torch.cat(
                [self._decode(ordered[i : i + size]) for i in range(0, len(own), size)]
            )
        else:
            out_local = torch.empty(0, 3, h, w)
        indices = own
        if world > 1:
            full = self._gather(out_local.cpu(), own)
            if full is not None:
                out_local, indices = full, list(range(n))
        timings["decode"] = time.perf_counter() - t0
        out: Any = out_local
        if output_type == "np":
            out = frames_to_numpy(out_local)
        elif output_type == "pil":
            out = frames_to_pil(out_local)
        timings["total"] = time.perf_counter() - t_start
        return FairyOutput(out, anchors, cache_nbytes, max_batch, timings, indices, (h, w))

    __call__ = edit_video

    def edit_video_file(
        self,
        src: str | Path,
        dst: str | Path,
        instruction: str | None = None,
        *,
        max_frames: int | None = None,
        show_progress: bool | None = None,
        **kwargs: Any,
    ) -> FairyOutput:
        """Edit a video file and write the result at the source's frame rate.

        Parameters
        ----------
        src, dst : str or Path
            Input and output files (MP4 etc. with the ``video`` extra; GIF with Pillow).
        instruction : str
        max_frames : int, optional
            Edit only the first frames.
        show_progress : bool, optional
            Progress bar over chunks (default: on a terminal).
        **kwargs
            Any option of :meth:`edit_video` (``resolution``, ``chunk_size``, ``generator``...).

        Returns
        -------
        FairyOutput
            ``frames`` as a tensor; the file ``dst`` holds them at the source fps (with
            ``distributed=True`` only rank 0 writes it).
        """
        frames, fps = load_video(src, max_frames=max_frames)
        kwargs["output_type"] = "pt"
        res = self.edit_video(frames, instruction, show_progress=show_progress, **kwargs)
        writer = True
        if kwargs.get("distributed"):
            import torch.distributed as dist

            writer = dist.get_rank() == 0
        if writer:
            write_video(res.frames, dst, fps=fps)
        return res

    @torch.no_grad()
    def _run(
        self,
        images: torch.Tensor,
        *,
        prompt: str | None,
        negative_prompt: str | None,
        embeds: dict[str, torch.Tensor],
        num_inference_steps: int,
        guidance_scale: float,
        image_guidance_scale: float,
        seed: int,
        extra: dict[str, Any],
    ) -> torch.Tensor:
        m = images.shape[0]
        # one generator per frame, all with the same seed: same initial noise for every frame,
        # and the per-step ancestral noise of a frame does not depend on its batch neighbours
        gens = [torch.Generator("cpu").manual_seed(seed) for _ in range(m)]
        device = self.pipe._execution_device
        text: dict[str, Any] = {k: e.to(device).expand(m, -1, -1) for k, e in embeds.items()}
        if prompt is not None:
            text["prompt"] = [prompt] * m
        if negative_prompt is not None:
            text["negative_prompt"] = [negative_prompt] * m
        call = getattr(self.pipe, "edit_images", self.pipe)
        res = call(
            image=images.to(device),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            image_guidance_scale=image_guidance_scale,
            generator=gens,
            output_type="latent",
            return_dict=False,
            **text,
            **extra,
        )[0]
        return res.detach()

    @torch.no_grad()
    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        image = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
        return self.pipe.image_processor.postprocess(image, output_type="pt").cpu()

    @staticmethod
    def _gather(local: torch.Tensor, own: list[int]) -> torch.Tensor | None:
        """Rank 0 collects every rank's decoded frames; the others get ``None``."""
        import torch.distributed as dist

        rank = dist.get_rank()
        parts: list[Any] | None = [None] * dist.get_world_size() if rank == 0 else None
        dist.gather_object((own, local), parts, dst=0)
        if parts is None:
            return None
        pieces = sorted(((idx[0], x) for idx, x in parts if idx), key=lambda p: p[0])
        return torch.cat([x for _, x in pieces])


def _check_embeds(name: str, e: Any) -> torch.Tensor:
    if not isinstance(e, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of shape (1, L, D), got {type(e).__name__}")
    if e.ndim == 2:
        e = e.unsqueeze(0)
    if e.ndim != 3 or e.shape[0] != 1:
        raise ValueError(f"{name} must have shape (1, L, D) (one prompt), got {tuple(e.shape)}")
    if not torch.isfinite(e).all():
        raise ValueError(f"{name} contains NaN or inf")
    return e
