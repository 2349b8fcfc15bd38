"""Movie Gen's spatial upsampler (Polyak et al. 2024, Sec. 3.2, "Spatial upsampling").

A video-to-video flow-matching model: the low-resolution video is upsampled bilinearly
in pixel space, encoded frame-wise by an image autoencoder, and its latent is concatenated
channel-wise with the noisy high-resolution latent; the new input weights start at zero so
the model starts as its (unconditional) parent. Sampling runs ~20 Euler steps; long clips
are processed with a sliding window over time (14 latent frames, overlap 4) whose
velocities are averaged at every step (MultiDiffusion). Training pairs are made with
Real-ESRGAN-style degradations of the high-resolution clip.

The tiny configuration uses an exactly invertible frame-wise space-to-depth map as the
"image autoencoder", so the demo isolates what the upsampler learns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from papershelf.moviegen.cast._dit import CastDiT, DiTConfig, dit_param_count
from papershelf.moviegen.cast._flow import flow_pair, integrate, multidiffusion_velocity
from papershelf.moviegen.cast._synth import depth_to_space, space_to_depth
from papershelf.moviegen.schedules import linear_quadratic_t, linear_t

__all__ = [
    "UPSAMPLER_PRESETS",
    "SpatialUpsampler",
    "UpsamplerConfig",
    "degrade",
    "upsampler_param_count",
]


@dataclass(frozen=True)
class UpsamplerConfig:
    """Configuration of :class:`SpatialUpsampler`.

    Attributes
    ----------
    latent_channels : int
        Channels of the frame-wise image latent (12 = RGB space-to-depth x2 for the tiny
        demo; 16 for Movie Gen's image VAE).
    patch : tuple of int
        Spatial patch (h, w) of the tokenizer (the paper family uses 2 x 2).
    dim, depth, heads, ffn_dim : int
        Transformer shape.
    max_frames, max_h, max_w : int
        Sizes of the factorized position tables in tokens (max_frames >= window).
    window, overlap : int
        MultiDiffusion window and overlap in latent frames (paper: 14 and 4).
    steps : int
        Euler steps at inference (paper: ~20).
    scale : int
        Spatial upsampling factor (paper: 768 px -> 1080p, i.e. x2 for the tiny demo).
    """

    latent_channels: int = 12
    patch: tuple[int, int] = (2, 2)
    dim: int = 64
    depth: int = 2
    heads: int = 4
    ffn_dim: int = 172
    max_frames: int = 16
    max_h: int = 16
    max_w: int = 16
    window: int = 14
    overlap: int = 4
    steps: int = 20
    scale: int = 2

    def __post_init__(self) -> None:
        if self.window < 1 or not 0 <= self.overlap < self.window:
            raise ValueError(
                f"need window >= 1 and 0 <= overlap < window, got window="
                f"{self.window}, overlap={self.overlap}"
            )
        if self.max_frames < self.window:
            raise ValueError("max_frames must be >= window")
        if self.steps < 1 or self.scale < 1:
            raise ValueError("steps and scale must be >= 1")

    @property
    def dit(self) -> DiTConfig:
        """The transformer's token shape: [noisy latent patch, conditioning latent patch]."""
        tok = self.latent_channels * self.patch[0] * self.patch[1]
        return DiTConfig(
            in_dim=2 * tok,
            out_dim=tok,
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            ffn_dim=self.ffn_dim,
            cross_attention=True,
        )


#: ``tiny`` trains on 2 CPU cores; ``7b`` is the paper's size (layer shape assumed:
#: the paper gives only "7B", so d = 4096, 32 layers, FFN 7168 give 7.1B).
UPSAMPLER_PRESETS: dict[str, UpsamplerConfig] = {
    "tiny": UpsamplerConfig(
        patch=(1, 1), window=4, overlap=2, max_frames=4, max_h=4, max_w=4, steps=10
    ),
    "7b": UpsamplerConfig(
        latent_channels=16,
        dim=4096,
        depth=32,
        heads=32,
        ffn_dim=7168,
        max_frames=14,
        max_h=68,
        max_w=120,
        window=14,
        overlap=4,
        steps=20,
    ),
}


def upsampler_param_count(cfg: UpsamplerConfig) -> int:
    """Closed-form parameter count (transformer + position tables)."""
    return dit_param_count(cfg.dit) + cfg.dim * (cfg.max_frames + cfg.max_h + cfg.max_w)


def degrade(
    hr: Tensor,
    scale: int = 2,
    generator: torch.Generator | None = None,
    p_blur: float = 0.5,
    p_noise: float = 0.5,
    max_sigma: float = 1.0,
    max_noise: float = 0.05,
    quantize: bool = True,
) -> Tensor:
    """Real-ESRGAN-style training degradation of a high-resolution clip.

    Random Gaussian blur, area downsampling by ``scale``, additive Gaussian noise and
    8-bit quantization (a stand-in for compression), each clip drawn independently and
    the same for all its frames.

    Parameters
    ----------
    hr : Tensor, shape (B, C, T, H, W), values in [-1, 1]
    scale : int
    generator : torch.Generator, optional

    Returns
    -------
    Tensor, shape (B, C, T, H / scale, W / scale)
    """
    if hr.ndim != 5:
        raise ValueError(f"hr must be (B, C, T, H, W), got {tuple(hr.shape)}")
    B, C, T, H, W = hr.shape
    if H % scale or W % scale:
        raise ValueError(f"H, W = {(H, W)} must be divisible by scale = {scale}")
    x = hr.transpose(1, 2).reshape(B * T, C, H, W)
    u = torch.rand(B, 4, generator=generator)
    sig = (0.2 + (max_sigma - 0.2) * u[:, 0]) * (u[:, 1] < p_blur)
    k = torch.arange(-2, 3, dtype=hr.dtype)
    ker = torch.exp(-(k[None] ** 2) / (2 * sig.clamp_min(1e-3)[:, None] ** 2))
    ker = ker / ker.sum(1, keepdim=True)  # (B, 5); sigma -> 0 gives a delta
    ker = ker.repeat_interleave(T, 0)
    xp = F.pad(x, (2, 2, 2, 2), mode="replicate")
    rows = torch.zeros_like(xp[..., :W])
    for i in range(5):  # separable blur: along W, then along H
        rows = rows + ker[:, i, None, None, None] * xp[..., :, i : i + W]
    x = torch.zeros_like(hr.transpose(1, 2).reshape(B * T, C, H, W))
    for i in range(5):
        x = x + ker[:, i, None, None, None] * rows[..., i : i + H, :]
    x = F.avg_pool2d(x, scale)
    x = x.reshape(B, T, C, H // scale, W // scale).transpose(1, 2)
    noise_sd = max_noise * u[:, 2] * (u[:, 3] < p_noise)
    x = x + noise_sd.view(B, 1, 1, 1, 1) * torch.randn(x.shape, generator=generator)
    if quantize:
        x = torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1
    return x


class SpatialUpsampler(nn.Module):
    """Video-to-video flow-matching upsampler conditioned on the bilinearly upsampled input.

    Parameters
    ----------
    cfg : UpsamplerConfig
    encode, decode : callable, optional
        Frame-wise image autoencoder (B, 3, T, H, W) <-> (B, C, T, H / 2, W / 2) for the
        tiny demo's space-to-depth default; pass a real image VAE at scale.

    Examples
    --------
    >>> up = SpatialUpsampler(UPSAMPLER_PRESETS["tiny"])
    >>> lr = torch.zeros(1, 3, 6, 4, 4)
    >>> up.upsample(lr, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([1, 3, 6, 8, 8])

    References
    ----------
    Polyak et al., "Movie Gen: A Cast of Media Foundation Models", arXiv:2410.13720, Sec. 3.2.
    Bar-Tal et al., "MultiDiffusion", ICML 2023.
    """

    def __init__(
        self,
        cfg: UpsamplerConfig,
        encode: Callable[[Tensor], Tensor] | None = None,
        decode: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.encode = encode or space_to_depth
        self.decode = decode or depth_to_space
        self.net = CastDiT(cfg.dit)
        # The noisy latent's columns come first; the conditioning columns start at zero.
        self.net.zero_input_columns(cfg.dit.out_dim)
        self.pos_t = nn.Parameter(torch.randn(cfg.max_frames, cfg.dim) * 0.02)
        self.pos_h = nn.Parameter(torch.randn(cfg.max_h, cfg.dim) * 0.02)
        self.pos_w = nn.Parameter(torch.randn(cfg.max_w, cfg.dim) * 0.02)

    def condition(self, lowres: Tensor) -> Tensor:
        """Bilinear x``scale`` in pixel space, then the frame-wise encoder.

        Parameters
        ----------
        lowres : Tensor, shape (B, 3, T, h, w)

        Returns
        -------
        Tensor, shape (B, C, T, H, W): the conditioning latent.
        """
        if lowres.ndim != 5:
            raise ValueError(f"lowres must be (B, 3, T, h, w), got {tuple(lowres.shape)}")
        B, C, T, h, w = lowres.shape
        s = self.cfg.scale
        up = F.interpolate(
            lowres.transpose(1, 2).reshape(B * T, C, h, w),
            scale_factor=s,
            mode="bilinear",
            align_corners=False,
        )
        return self.encode(up.reshape(B, T, C, h * s, w * s).transpose(1, 2))

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        cond: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """Velocity of the high-resolution latent.

        Parameters
        ----------
        x : Tensor, shape (B, C, T, H, W)
            Noisy high-resolution latent.
        t : Tensor, shape (B,)
        cond : Tensor, shape (B, C, T, H, W)
            :meth:`condition` of the low-resolution clip.
        context : Tensor, shape (B, L, dim), optional
            Projected text tokens (the tiny demo runs without text).

        Returns
        -------
        Tensor, shape (B, C, T, H, W)
        """
        cfg = self.cfg
        if x.ndim != 5 or x.shape[1] != cfg.latent_channels:
            raise ValueError(f"x must be (B, {cfg.latent_channels}, T, H, W), got {tuple(x.shape)}")
        if cond.shape != x.shape:
            raise ValueError(
                f"cond must have the shape of x {tuple(x.shape)}, got {tuple(cond.shape)}"
            )
        B, C, T, H, W = x.shape
        ph, pw = cfg.patch
        if H % ph or W % pw:
            raise ValueError(f"latent H, W = {(H, W)} must be divisible by the patch {cfg.patch}")
        Hp, Wp = H // ph, W // pw
        if T > cfg.max_frames or Hp > cfg.max_h or Wp > cfg.max_w:
            raise ValueError(
                f"token grid {(T, Hp, Wp)} exceeds the position tables "
                f"{(cfg.max_frames, cfg.max_h, cfg.max_w)}; use upsample() "
                "for long clips"
            )
        z = torch.cat([x, cond], 1)  # (B, 2C, T, H, W)
        tok = z.reshape(B, 2 * C, T, Hp, ph, Wp, pw).permute(0, 2, 3, 5, 1, 4, 6)
        tok = tok.reshape(B, T * Hp * Wp, 2 * C * ph * pw)
        pos = (
            self.pos_t[:T, None, None] + self.pos_h[None, :Hp, None] + self.pos_w[None, None, :Wp]
        ).reshape(T * Hp * Wp, -1)
        out = self.net(tok, t, pos, context, context_mask)
        out = out.reshape(B, T, Hp, Wp, C, ph, pw).permute(0, 4, 1, 2, 5, 3, 6)
        return out.reshape(B, C, T, H, W)

    def loss(
        self,
        highres: Tensor,
        lowres: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Flow-matching loss on a clip; ``lowres`` defaults to :func:`degrade` of ``highres``.

        Parameters
        ----------
        highres : Tensor, shape (B, 3, T, H, W)
        lowres : Tensor, shape (B, 3, T, H / scale, W / scale), optional
        """
        if lowres is None:
            lowres = degrade(highres, self.cfg.scale, generator)
        x1 = self.encode(highres)
        xt, t, v = flow_pair(x1, generator)
        return F.mse_loss(self(xt, t, self.condition(lowres)), v)

    @torch.no_grad()
    def upsample(
        self,
        lowres: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        window: int | None = None,
        overlap: int | None = None,
        schedule: str = "linear",
    ) -> Tensor:
        """Upsample a clip of any length with MultiDiffusion over time.

        Parameters
        ----------
        lowres : Tensor, shape (B, 3, T, h, w)
        steps : int, optional
            Euler steps (default ``cfg.steps``).
        generator : torch.Generator, optional
            Initial noise (drawn on the CPU).
        window, overlap : int, optional
            Temporal window and overlap in latent frames (default from the config).
        schedule : {"linear", "linear_quadratic"}

        Returns
        -------
        Tensor, shape (B, 3, T, scale h, scale w)
        """
        cfg = self.cfg
        steps = cfg.steps if steps is None else steps
        window = cfg.window if window is None else window
        overlap = cfg.overlap if overlap is None else overlap
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        if schedule not in ("linear", "linear_quadratic"):
            raise ValueError(f"schedule must be 'linear' or 'linear_quadratic', got {schedule!r}")
        grid = (
            linear_t(steps)
            if schedule == "linear"
            else linear_quadratic_t(steps, max(steps, 5 * steps))
        )
        cond = self.condition(lowres)
        x0 = torch.randn(cond.shape, generator=generator).to(cond)

        def vel(x: Tensor, t: Tensor) -> Tensor:
            return multidiffusion_velocity(
                lambda xs, tt, s: self(xs, tt, cond.narrow(2, s, xs.shape[2])),
                x,
                t,
                dim=2,
                window=window,
                overlap=overlap,
                kind="uniform",
            )

        return self.decode(integrate(vel, x0, grid, "euler"))
