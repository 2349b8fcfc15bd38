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

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from papershelf.core import progress
from papershelf.fairy.anchors import check_anchor_indices, select_anchors
from papershelf.fairy.attention import AnchorAttentionState, anchor_attention
from papershelf.fairy.video import frames_to_numpy, frames_to_pil, to_frames_tensor

__all__ = ["FairyOutput", "FairyVideoEditor"]

log = logging.getLogger(__name__)

OUTPUT_TYPES = ("pt", "np", "pil", "latent")
BASELINES = ("frame-wise", "full")
ANCHOR_MODES = ("cache", "recompute", *BASELINES)


@dataclass
class FairyOutput:
    """What :meth:`FairyVideoEditor.edit_video` returns.

    Attributes
    ----------
    frames : Tensor (N, 3, H, W) in [0, 1], ndarray (N, H, W, 3) uint8, list of PIL, or latents
        The edited video, in the requested ``output_type``.
    anchor_indices : list of int
    cache_nbytes : int
        Size of the anchor key/value cache (0 in ``anchor_mode="recompute"``).
    max_unet_batch : int
        Largest UNet batch of the run (``branches * (chunk_size [+ K])``).
    timings : dict of str to float
        Seconds: ``anchors``, ``frames``, ``decode`` and ``total``.
    """

    frames: Any
    anchor_indices: list[int]
    cache_nbytes: int = 0
    max_unet_batch: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def _seed_from(generator: torch.Generator | int | None) -> int:
    if generator is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(generator, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=generator).item())
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise TypeError(
            f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}"
        )
    return generator


class FairyVideoEditor:
    """Instruction-guided video editing with anchor-based cross-frame attention.

    Parameters
    ----------
    pipe : diffusers.StableDiffusionInstructPix2PixPipeline
        Any InstructPix2Pix-style pipeline (its UNet takes noisy + image latents). It is used
        as is: move it to a device and choose its scheduler before editing (the paper uses
        Euler Ancestral). Its attention processors are swapped during a call and restored.

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
        for attr in ("unet", "vae", "scheduler", "image_processor"):
            if not hasattr(pipe, attr):
                raise TypeError(f"pipe must be a diffusers InstructPix2Pix pipeline (no .{attr})")
        self.pipe = pipe

    @property
    def vae_scale_factor(self) -> int:
        """Pixel size of one latent cell."""
        return int(getattr(self.pipe, "vae_scale_factor", 8))

    def edit_video(
        self,
        frames: Any,
        instruction: str,
        *,
        num_anchors: int = 3,
        anchor_indices: list[int] | None = None,
        anchor_strategy: str = "uniform",
        chunk_size: int | None = None,
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
            The source video, float in [0, 1] or uint8. H and W must be multiples of the VAE
            factor (8 for Stable Diffusion); the paper resizes the longer side to 512.
        instruction : str
            The edit, e.g. ``"turn it into a Van Gogh painting"``.
        num_anchors : int, default 3
            K, the number of anchor frames (paper default 3); ``1 <= K <= N``.
        anchor_indices : list of int, optional
            Explicit anchors (overrides ``num_anchors`` and ``anchor_strategy``).
        anchor_strategy : {"uniform", "first", "middle"}
            See :func:`papershelf.fairy.select_anchors`.
        chunk_size : int, optional
            Non-anchor frames per UNet call (all of them by default). Results do not depend on it.
        num_inference_steps : int, default 10
            The paper uses 10 Euler-Ancestral steps.
        guidance_scale, image_guidance_scale : float, default 7.5, 1.5
            InstructPix2Pix text and image guidance (the paper does not state its values;
            these are diffusers' defaults).
        generator : torch.Generator or int, optional
            Source of the one seed used for every frame: each frame gets its own generator with
            that seed, so all frames share the initial noise and results do not depend on
            chunking. With ``distributed=True`` pass an int, the same on every rank.
        anchor_mode : {"cache", "recompute"}
            ``"cache"`` records the anchors once and keeps their keys/values for all steps;
            ``"recompute"`` re-runs the anchors with every chunk in lock-step (no cache, K extra
            frames of compute per chunk; equal results up to round-off). Two baselines for
            comparisons: ``"frame-wise"`` edits every frame on its own (plain InstructPix2Pix,
            same noise and chunking) and ``"full"`` runs all frames in one batch with full
            cross-frame attention (every frame attends to every frame; quadratic cost).
        output_type : {"pt", "np", "pil", "latent"}
            Tensor (N, 3, H, W) in [0, 1], uint8 array (N, H, W, 3), PIL images, or latents.
        distributed : bool, default False
            Split the non-anchor frames into contiguous segments over the ranks of the
            initialised ``torch.distributed`` group. Rank 0 edits the anchors and broadcasts
            the cache (only the cache is shared); every rank returns the whole video.
        show_progress : bool, optional
            Progress bar over frames (default: only on a terminal).
        pipe_kwargs : dict, optional
            Extra keyword arguments for the pipeline call (e.g. ``negative_prompt``).

        Returns
        -------
        FairyOutput
        """
        video = to_frames_tensor(frames)
        n, _, h, w = video.shape
        f = self.vae_scale_factor
        if h % f or w % f:
            raise ValueError(
                f"frame size {h}x{w} must be divisible by the VAE factor {f}; resize or crop first"
            )
        if not isinstance(instruction, str) or not instruction:
            raise TypeError("instruction must be a non-empty string")
        if anchor_indices is not None:
            anchors = check_anchor_indices(anchor_indices, n)
        else:
            anchors = select_anchors(n, num_anchors, anchor_strategy)
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if anchor_mode not in ANCHOR_MODES:
            raise ValueError(f"anchor_mode must be one of {ANCHOR_MODES}, got {anchor_mode!r}")
        if anchor_mode == "full" and distributed:
            raise ValueError("anchor_mode='full' (all frames in one batch) cannot be distributed")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        seed = _seed_from(generator)

        rank, world = 0, 1
        if distributed:
            import torch.distributed as dist

            if not (dist.is_available() and dist.is_initialized()):
                raise RuntimeError("distributed=True needs an initialised torch.distributed group")
            rank, world = dist.get_rank(), dist.get_world_size()

        others = [i for i in range(n) if i not in set(anchors)]
        mine = others[rank * len(others) // world : (rank + 1) * len(others) // world]
        size = chunk_size or max(1, len(mine))
        chunks = [mine[i : i + size] for i in range(0, len(mine), size)]

        call: dict[str, Any] = dict(
            prompt=instruction,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            image_guidance_scale=image_guidance_scale,
            seed=seed,
            extra=pipe_kwargs or {},
        )
        latents: dict[int, torch.Tensor] = {}
        timings = {"anchors": 0.0, "frames": 0.0, "decode": 0.0}
        t_start = time.perf_counter()
        old_cfg = dict(getattr(self.pipe, "_progress_bar_config", {}))
        self.pipe.set_progress_bar_config(**{**old_cfg, "disable": True})
        bar = progress(
            total=(n // world if anchor_mode in BASELINES else len(mine))
            + (len(anchors) if rank == 0 and anchor_mode not in BASELINES else 0),
            desc="fairy: editing frames",
            unit="frame",
            disable=None if show_progress is None else not show_progress,
        )
        try:
            with anchor_attention(self.pipe.unet) as state:
                if anchor_mode == "cache":
                    t0 = time.perf_counter()
                    if rank == 0:
                        state.begin("record", len(anchors))
                        lat = self._run(video[anchors], **call)
                        latents.update(zip(anchors, lat))
                        bar.update(len(anchors))
                    if world > 1:
                        self._share_cache(state, self.pipe._execution_device)
                    timings["anchors"] = time.perf_counter() - t0
                    cache_nbytes = state.cache_nbytes()
                    t0 = time.perf_counter()
                    for chunk in chunks:
                        state.begin("replay", len(chunk))
                        latents.update(zip(chunk, self._run(video[chunk], **call)))
                        bar.update(len(chunk))
                    timings["frames"] = time.perf_counter() - t0
                elif anchor_mode in BASELINES:
                    # baselines: frame-wise IP2P ("off") or full cross-frame attention over
                    # all frames in one batch ("full"); no anchors involved
                    cache_nbytes = 0
                    t0 = time.perf_counter()
                    everyone = list(range(n))[rank * n // world : (rank + 1) * n // world]
                    step = len(everyone) if anchor_mode == "full" else size
                    for i in range(0, len(everyone), max(1, step)):
                        group = everyone[i : i + step]
                        state.begin("off" if anchor_mode == "frame-wise" else "full", len(group))
                        latents.update(zip(group, self._run(video[group], **call)))
                        bar.update(len(group))
                    timings["frames"] = time.perf_counter() - t0
                else:
                    cache_nbytes = 0
                    t0 = time.perf_counter()
                    k = len(anchors)
                    todo = chunks or ([[]] if rank == 0 else [])
                    for j, chunk in enumerate(todo):
                        state.begin("joint", k + len(chunk), k)
                        lat = self._run(video[anchors + chunk], **call)
                        if j == 0 and rank == 0:
                            latents.update(zip(anchors, lat[:k]))
                        latents.update(zip(chunk, lat[k:]))
                        bar.update(len(chunk) + (k if j == 0 and rank == 0 else 0))
                    timings["frames"] = time.perf_counter() - t0
                max_batch = max(state.unet_batch_sizes, default=0)
        finally:
            bar.close()
            self.pipe._progress_bar_config = old_cfg
        if world > 1:
            latents = self._gather(latents)
        device = self.pipe._execution_device
        ordered = torch.stack([latents[i].to(device) for i in range(n)])
        t0 = time.perf_counter()
        out: Any
        if output_type == "latent":
            out = ordered
        else:
            pixels = torch.cat([self._decode(ordered[i : i + size]) for i in range(0, n, size)])
            out = {"pt": pixels, "np": None, "pil": None}[output_type]
            if output_type == "np":
                out = frames_to_numpy(pixels)
            elif output_type == "pil":
                out = frames_to_pil(pixels)
        timings["decode"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        return FairyOutput(out, anchors, cache_nbytes, max_batch, timings)

    __call__ = edit_video

    @torch.no_grad()
    def _run(
        self,
        images: torch.Tensor,
        *,
        prompt: str,
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
        res = self.pipe(
            prompt=[prompt] * m,
            image=images.to(device),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            image_guidance_scale=image_guidance_scale,
            generator=gens,
            output_type="latent",
            return_dict=False,
            **extra,
        )[0]
        return res.detach()

    @torch.no_grad()
    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipe.vae
        image = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
        return self.pipe.image_processor.postprocess(image, output_type="pt").cpu()

    @staticmethod
    def _share_cache(state: AnchorAttentionState, device: torch.device) -> None:
        import torch.distributed as dist

        payload = [
            (
                {k: (a.cpu(), b.cpu()) for k, (a, b) in state.cache.items()},
                state.recorded_timesteps,
            )
            if dist.get_rank() == 0
            else None
        ]
        dist.broadcast_object_list(payload, src=0)
        cache, steps = payload[0]  # type: ignore[misc]
        if dist.get_rank() != 0:
            state.cache = {k: (a.to(device), b.to(device)) for k, (a, b) in cache.items()}
            state.recorded_timesteps = list(steps)

    @staticmethod
    def _gather(latents: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        import torch.distributed as dist

        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, {i: x.cpu() for i, x in latents.items()})
        out: dict[int, torch.Tensor] = {}
        for p in parts:
            out.update(p)
        return out
