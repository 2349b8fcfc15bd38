"""Synthetic data for the cast demos (generated on the fly, seeded by a ``torch.Generator``).

Moving coloured shapes (upsampler, personalization, editing) and a shape bouncing between
two walls with its sound track (audio). Values are in [-1, 1].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "PALETTE",
    "COLOUR_NAMES",
    "bouncing_clips",
    "event_audio",
    "moving_shapes",
    "nearest_colour",
    "space_to_depth",
    "depth_to_space",
]

#: Four RGB colours in [-1, 1]; the identity / edit target in the demos.
PALETTE = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])
COLOUR_NAMES = ("red", "green", "blue", "yellow")


def moving_shapes(
    n: int,
    frames: int,
    size: int,
    obj: int = 4,
    speed: int = 1,
    colours: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Clips of one square moving at constant velocity on a black background.

    Returns
    -------
    video : Tensor, shape (n, 3, frames, size, size)
    colours : Tensor, shape (n,), long
        Palette index of each square.
    start : Tensor, shape (n, 4), long
        (x0, y0, vx, vy) of each square.
    """
    if n < 1 or frames < 1 or obj < 1 or obj + speed * (frames - 1) > size:
        raise ValueError("need n, frames, obj >= 1 and obj + speed * (frames - 1) <= size")
    if colours is None:
        colours = torch.randint(0, len(PALETTE), (n,), generator=generator)
    travel = speed * (frames - 1)
    v = torch.randint(-1, 2, (n, 2), generator=generator) * speed
    lo = torch.where(v < 0, torch.full_like(v, travel), torch.zeros_like(v))
    span = size - obj - travel + 1
    xy = lo + torch.randint(0, span, (n, 2), generator=generator)
    f = torch.arange(frames)
    px = xy[:, 0, None] + v[:, 0, None] * f  # (n, T)
    py = xy[:, 1, None] + v[:, 1, None] * f
    g = torch.arange(size)
    inx = (g[None, None] >= px[..., None]) & (g[None, None] < px[..., None] + obj)  # (n,T,S)
    iny = (g[None, None] >= py[..., None]) & (g[None, None] < py[..., None] + obj)
    mask = (iny[..., :, None] & inx[..., None, :]).float()[:, None]  # (n,1,T,S,S)
    rgb = PALETTE[colours].view(n, 3, 1, 1, 1)
    video = mask * rgb + (1 - mask) * -1.0
    return video, colours, torch.cat([xy, v], 1)


def nearest_colour(video: Tensor) -> Tensor:
    """Palette index of the mean foreground colour (max channel > 0) of each clip; (B,)."""
    fg = (video.amax(1, keepdim=True) > 0).float()
    mean = (video * fg).sum((2, 3, 4)) / fg.sum((2, 3, 4)).clamp_min(1.0)
    return torch.cdist(mean, PALETTE.to(video)).argmin(1)


def bouncing_clips(
    n: int,
    frames: int,
    width: int = 16,
    height: int = 4,
    obj: int = 2,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """A bar bouncing between the left and right walls.

    The bar moves 1 or 2 px per frame; an event is a frame in which it touches a wall.

    Returns
    -------
    video : Tensor, shape (n, 1, frames, height, width)
    events : Tensor, shape (n, frames), bool
    """
    L = width - obj
    if L % 2:
        raise ValueError("width - obj must be even so speed-2 bars hit the walls exactly")
    speed = torch.randint(1, 3, (n,), generator=generator)
    x0 = torch.randint(0, 2 * L, (n,), generator=generator)
    x0 = torch.where(speed == 2, x0 - x0 % 2, x0)
    p = (x0[:, None] + speed[:, None] * torch.arange(frames)) % (2 * L)
    pos = torch.where(p <= L, p, 2 * L - p)  # (n, T)
    g = torch.arange(width)
    on = (g[None, None] >= pos[..., None]) & (g[None, None] < pos[..., None] + obj)
    video = on.float()[:, None, :, None, :].expand(n, 1, frames, height, width) * 2 - 1
    return video.contiguous(), (pos == 0) | (pos == L)


def event_audio(
    events: Tensor, samples_per_frame: int, sound: Tensor, hum: Tensor, phase: Tensor
) -> Tensor:
    """Sound track: a decaying burst at each event frame over a quiet continuous hum.

    Parameters
    ----------
    events : Tensor, shape (n, T), bool
    samples_per_frame : int
    sound : Tensor, shape (n,), long
        0 = click (0.4 cycles / sample), 1 = tone (0.125 cycles / sample).
    hum : Tensor, shape (n,), long
        0 = low hum (1/64 cycles / sample), 1 = high hum (1/32).
    phase : Tensor, shape (n,)
        Hum phase in radians.

    Returns
    -------
    Tensor, shape (n, 1, T * samples_per_frame)
    """
    T = events.shape[1]
    N = T * samples_per_frame
    s = torch.arange(N, dtype=torch.float32)
    fh = torch.where(hum == 1, 1 / 32, 1 / 64).float()
    wav = 0.15 * torch.sin(2 * math.pi * fh[:, None] * s + phase[:, None])
    fb = torch.where(sound == 1, 0.125, 0.4).float()
    k = torch.arange(samples_per_frame, dtype=torch.float32)
    burst = torch.exp(-k / 12.0)[None] * torch.sin(2 * math.pi * fb[:, None] * k + 0.5)
    ev = events.float().repeat_interleave(samples_per_frame, 1)
    wav = wav + ev * burst.repeat(1, T)
    return wav[:, None]


def space_to_depth(video: Tensor, factor: int = 2) -> Tensor:
    """Frame-wise, exactly invertible stand-in for an image VAE: (B, C, T, H, W) ->
    (B, C f^2, T, H / f, W / f)."""
    B, C, T, H, W = video.shape
    if H % factor or W % factor:
        raise ValueError(f"frame size {(H, W)} must be divisible by {factor}")
    x = torch.nn.functional.pixel_unshuffle(video.transpose(1, 2).reshape(B * T, C, H, W), factor)
    return x.reshape(B, T, -1, H // factor, W // factor).transpose(1, 2)


def depth_to_space(latent: Tensor, factor: int = 2) -> Tensor:
    """Inverse of :func:`space_to_depth`."""
    B, C, T, H, W = latent.shape
    x = torch.nn.functional.pixel_shuffle(latent.transpose(1, 2).reshape(B * T, C, H, W), factor)
    return x.reshape(B, T, -1, H * factor, W * factor).transpose(1, 2)
