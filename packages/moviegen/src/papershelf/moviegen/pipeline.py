"""Text-to-video: prompt -> text context -> Euler latent sampling -> tiled TAE decode -> frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from papershelf.moviegen.sampler import euler_sample
from papershelf.moviegen.schedules import linear_quadratic_t
from papershelf.moviegen.tae import TemporalAutoencoder, temporal_tiled_decode
from papershelf.moviegen.text import MultiTextConditioner
from papershelf.moviegen.transformer import MovieGenTransformer

__all__ = ["MovieGenPipeline", "save_video"]


class MovieGenPipeline:
    """Movie Gen Video inference.

    Parameters
    ----------
    tae : TemporalAutoencoder
    transformer : MovieGenTransformer
    conditioner : MultiTextConditioner
    latent_scale : float
        Latents are divided by this before the transformer (and multiplied back before
        decoding); use the std of training latents.
    decode_tile, decode_overlap : int
        Temporal tiling of the decoder in latent frames (paper: 4 and 2).
    """

    def __init__(
        self,
        tae: TemporalAutoencoder,
        transformer: MovieGenTransformer,
        conditioner: MultiTextConditioner,
        latent_scale: float = 1.0,
        decode_tile: int = 4,
        decode_overlap: int = 2,
    ) -> None:
        if tae.cfg.latent_channels != transformer.cfg.in_channels:
            raise ValueError(
                f"the TAE has {tae.cfg.latent_channels} latent channels, the "
                f"transformer expects {transformer.cfg.in_channels}"
            )
        if set(conditioner.text_dims) != set(transformer.cfg.text_dims):
            raise ValueError("conditioner encoders must match the transformer's text_dims")
        self.tae, self.transformer, self.conditioner = tae, transformer, conditioner
        self.latent_scale = latent_scale
        self.decode_tile, self.decode_overlap = decode_tile, decode_overlap

    @torch.no_grad()
    def __call__(
        self,
        prompts: Sequence[str],
        num_frames: int,
        height: int,
        width: int,
        *,
        steps: int = 50,
        n_emulated: int = 250,
        guidance: float = 7.5,
        generator: torch.Generator | None = None,
        show_progress: bool | None = None,
    ) -> Tensor:
        """Generate clips.

        Parameters
        ----------
        prompts : sequence of str
            Non-empty prompts (an "FPS-16" prefix is how the paper controls frame rate).
        num_frames, height, width : int
            Pixel size; height and width must be divisible by the spatial compression
            times the patch size.
        steps, n_emulated : int
            Linear-quadratic grid (50 steps emulating 250).
        guidance : float
            CFG scale >= 1.
        generator : torch.Generator, optional

        Returns
        -------
        Tensor, shape (B, 3, num_frames, height, width), values clipped to [-1, 1]
        """
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        fs, ft = self.tae.cfg.spatial_factor, self.tae.cfg.temporal_factor
        _, ph, pw = self.transformer.cfg.patch
        if height % (fs * ph) or width % (fs * pw):
            raise ValueError(
                f"height and width must be divisible by {fs * ph} and {fs * pw} "
                f"(TAE compression x patch), got {height} x {width}"
            )
        T = -(-num_frames // ft)
        if T % self.transformer.cfg.patch[0]:
            raise ValueError(f"{T} latent frames are not divisible by the temporal patch")
        text = self.conditioner(prompts)
        shape = (len(prompts), self.tae.cfg.latent_channels, T, height // fs, width // fs)
        z = euler_sample(
            self.transformer,
            shape,
            text,
            guidance=guidance,
            t_grid=linear_quadratic_t(steps, n_emulated),
            generator=generator,
            show_progress=show_progress,
        )
        video = temporal_tiled_decode(
            self.tae,
            z * self.latent_scale,
            self.decode_tile,
            min(self.decode_overlap, self.decode_tile - 1),
            num_frames,
        )
        return video.clamp(-1, 1)


def save_video(video: Tensor, path: str | Path, fps: int = 8) -> Path:
    """Save one clip (3, T, H, W) in [-1, 1] as GIF or MP4 (needs the ``video`` extra: imageio)."""
    import imageio.v3 as iio
    import numpy as np

    if video.ndim != 4 or video.shape[0] != 3:
        raise ValueError(f"video must be (3, T, H, W), got {tuple(video.shape)}")
    frames = ((video.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).cpu().numpy()
    path = Path(path)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, np.ascontiguousarray(frames), duration=1000 / fps, loop=0)
    else:
        iio.imwrite(path, frames, fps=fps)
    return path
