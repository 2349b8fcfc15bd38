"""Movie Gen Audio (Polyak et al. 2024, Sec. 6): video-to-audio flow matching with extension.

* :class:`DACVAE1D` - a DAC-VAE-like 1-D convolutional audio autoencoder: strided Conv1d
  downsampling by a configurable hop (paper: 48 kHz -> 25 Hz, hop 1920, 128 channels), a
  diagonal Gaussian latent, transposed-convolution decoder.
* :class:`AudioDiT` - a flow-matching transformer over audio-latent frames. Video features
  are resampled to the audio frame rate and added frame-aligned; a masked audio context and
  its binary mask are concatenated channel-wise with the noisy latent (zero-initialised
  input weights), which is how the model continues a given audio segment; text enters by
  cross-attention (T5-base in the paper). Time conditioning is one shared time MLP plus a
  per-layer table; the MLP is GELU (the only choice consistent with the paper's 13B count).
* :meth:`AudioDiT.generate` - sampling with the midpoint solver and classifier-free
  guidance, and MultiDiffusion extension for long videos: overlapping windows with
  triangular weights are blended at every solver step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from papershelf.moviegen.cast._dit import (
    CastDiT,
    DiTConfig,
    check_guidance,
    dit_param_count,
    token_projection,
    token_projection_param_count,
)
from papershelf.moviegen.cast._flow import flow_pair, integrate, multidiffusion_velocity
from papershelf.moviegen.schedules import linear_t

__all__ = [
    "AUDIO_PRESETS",
    "AudioDiT",
    "AudioDiTConfig",
    "DACVAE1D",
    "DACVAEConfig",
    "VAE_PRESETS",
    "audio_param_count",
]


@dataclass(frozen=True)
class DACVAEConfig:
    """Audio autoencoder shape.

    Attributes
    ----------
    strides : tuple of int
        Downsampling factors; their product is the hop (samples per latent frame).
    channels : tuple of int
        Width after the stem and after each stride (len(strides) + 1 entries).
    latent_channels : int
    kl_weight : float
        Weight of the KL term of the VAE loss.
    """

    strides: tuple[int, ...] = (2, 4, 4)
    channels: tuple[int, ...] = (16, 32, 32, 32)
    latent_channels: int = 8
    kl_weight: float = 1e-4

    def __post_init__(self) -> None:
        if not self.strides or any(s < 1 for s in self.strides):
            raise ValueError(f"strides must be positive ints, got {self.strides}")
        if len(self.channels) != len(self.strides) + 1:
            raise ValueError(
                "channels needs len(strides) + 1 entries, got "
                f"{len(self.channels)} for {len(self.strides)} strides"
            )
        if self.latent_channels < 1:
            raise ValueError("latent_channels must be >= 1")

    @property
    def hop(self) -> int:
        """Samples per latent frame."""
        h = 1
        for s in self.strides:
            h *= s
        return h


#: ``paper``: 48 kHz -> 25 Hz (hop 1920 = 2*4*5*6*8), 128 latent channels (widths assumed).
VAE_PRESETS: dict[str, DACVAEConfig] = {
    "tiny": DACVAEConfig(),
    "paper": DACVAEConfig(
        strides=(2, 4, 5, 6, 8), channels=(64, 128, 256, 512, 1024, 1024), latent_channels=128
    ),
}


class DACVAE1D(nn.Module):
    """1-D convolutional VAE for waveforms: (B, 1, N) <-> (B, C, ceil(N / hop)).

    Examples
    --------
    >>> vae = DACVAE1D(VAE_PRESETS["tiny"])
    >>> vae.encode(torch.zeros(2, 1, 100))[0].shape
    torch.Size([2, 8, 4])
    """

    def __init__(self, cfg: DACVAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        enc: list[nn.Module] = [nn.Conv1d(1, ch[0], 7, padding=3)]
        for s, a, b in zip(cfg.strides, ch[:-1], ch[1:]):
            enc += [
                nn.ELU(),
                nn.Conv1d(a, b, 2 * s, stride=s, padding=s // 2)
                if s > 1
                else nn.Conv1d(a, b, 3, padding=1),
            ]
        enc += [nn.ELU(), nn.Conv1d(ch[-1], 2 * cfg.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv1d(cfg.latent_channels, ch[-1], 3, padding=1)]
        for s, a, b in zip(reversed(cfg.strides), ch[:0:-1], ch[-2::-1]):
            dec += [
                nn.ELU(),
                nn.ConvTranspose1d(a, b, 2 * s, stride=s, padding=s // 2)
                if s > 1
                else nn.Conv1d(a, b, 3, padding=1),
            ]
        dec += [nn.ELU(), nn.Conv1d(ch[0], 1, 7, padding=3)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, wav: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance, each (B, C, ceil(N / hop)); wav (B, 1, N)."""
        if wav.ndim != 3 or wav.shape[1] != 1:
            raise ValueError(f"wav must be (B, 1, N), got {tuple(wav.shape)}")
        hop = self.cfg.hop
        pad = -wav.shape[-1] % hop
        mean, logvar = self.encoder(F.pad(wav, (0, pad))).chunk(2, 1)
        return mean, logvar.clamp(-30, 20)

    def decode(self, z: Tensor, num_samples: int | None = None) -> Tensor:
        """Waveform (B, 1, hop * L), cropped to ``num_samples``; z (B, C, L)."""
        if z.ndim != 3 or z.shape[1] != self.cfg.latent_channels:
            raise ValueError(f"z must be (B, {self.cfg.latent_channels}, L), got {tuple(z.shape)}")
        out = self.decoder(z)
        return out if num_samples is None else out[..., :num_samples]

    def loss(
        self, wav: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """MSE reconstruction + ``kl_weight`` x KL(q(z|x) || N(0, I)) (per element means)."""
        mean, logvar = self.encode(wav)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator)
        rec = F.mse_loss(self.decode(z, wav.shape[-1]), wav)
        kl = 0.5 * torch.mean(mean.pow(2) + logvar.exp() - 1 - logvar)
        return rec + self.cfg.kl_weight * kl, {"recon": rec.item(), "kl": kl.item()}


@dataclass(frozen=True)
class AudioDiTConfig:
    """Shape of :class:`AudioDiT`.

    Attributes
    ----------
    latent_channels : int
        Channels of the audio latent (DAC-VAE output).
    video_dim : int
        Width of the per-frame video features.
    text_dim : int
        Width of the text-encoder states (T5-base: 768).
    dim, depth, heads, ffn_dim : int
        Transformer shape (paper: 36 layers, 4608, 36 heads, 18432, GELU MLP).
    max_len : int
        Longest window in latent frames (position table size).
    """

    latent_channels: int = 8
    video_dim: int = 64
    text_dim: int = 2
    dim: int = 64
    depth: int = 2
    heads: int = 4
    ffn_dim: int = 256
    max_len: int = 16

    @property
    def dit(self) -> DiTConfig:
        """Tokens: [noisy latent, masked context latent, mask] per latent frame."""
        c = self.latent_channels
        return DiTConfig(
            in_dim=2 * c + 1,
            out_dim=c,
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            ffn_dim=self.ffn_dim,
            mlp="gelu",
        )


#: ``13b``: the paper's Movie Gen Audio (36 L, d 4608, FFN 18432, 128-ch latent, T5-base;
#: video feature width assumed 1024; 25 Hz x 30 s windows).
AUDIO_PRESETS: dict[str, AudioDiTConfig] = {
    "tiny": AudioDiTConfig(),
    "13b": AudioDiTConfig(
        latent_channels=128,
        video_dim=1024,
        text_dim=768,
        dim=4608,
        depth=36,
        heads=36,
        ffn_dim=18432,
        max_len=750,
    ),
}


def audio_param_count(cfg: AudioDiTConfig) -> int:
    """Closed-form parameter count of :class:`AudioDiT`."""
    d = cfg.dim
    return (
        dit_param_count(cfg.dit)
        + cfg.max_len * d
        + cfg.video_dim * d
        + d
        + token_projection_param_count(cfg.text_dim, d)
    )


class AudioDiT(nn.Module):
    """Flow-matching audio generator conditioned on video, text and a masked audio context.

    Parameters
    ----------
    cfg : AudioDiTConfig

    References
    ----------
    Polyak et al., "Movie Gen: A Cast of Media Foundation Models", arXiv:2410.13720, Sec. 6.
    """

    def __init__(self, cfg: AudioDiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = CastDiT(cfg.dit)
        self.net.zero_input_columns(cfg.latent_channels)  # context and mask start silent
        self.pos = nn.Parameter(torch.randn(cfg.max_len, cfg.dim) * 0.02)
        self.video_proj = nn.Linear(cfg.video_dim, cfg.dim)
        self.text_proj = token_projection(cfg.text_dim, cfg.dim)

    @staticmethod
    def align_video(video: Tensor, length: int) -> Tensor:
        """Resample per-frame video features (B, T_v, D) to ``length`` audio frames (linear)."""
        if video.shape[1] == length:
            return video
        return F.interpolate(
            video.transpose(1, 2), size=length, mode="linear", align_corners=False
        ).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        video: Tensor,
        text: Tensor,
        text_mask: Tensor | None = None,
        context: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Velocity of the audio latent.

        Parameters
        ----------
        x : Tensor, shape (B, C, N)
            Noisy audio latent.
        t : Tensor, shape (B,)
        video : Tensor, shape (B, T_v, video_dim)
            Per-frame video features (resampled to N frames here).
        text : Tensor, shape (B, L, text_dim)
            Text-encoder states.
        text_mask : Tensor, shape (B, L), bool, optional
        context : Tensor, shape (B, C, N), optional
            Known audio latent; only positions with ``mask`` True are used.
        mask : Tensor, shape (B, N), bool, optional
            True where ``context`` is given (audio to keep / continue from).

        Returns
        -------
        Tensor, shape (B, C, N)
        """
        cfg = self.cfg
        if x.ndim != 3 or x.shape[1] != cfg.latent_channels:
            raise ValueError(f"x must be (B, {cfg.latent_channels}, N), got {tuple(x.shape)}")
        B, _, N = x.shape
        if N > cfg.max_len:
            raise ValueError(
                f"N = {N} exceeds max_len = {cfg.max_len}; use generate() "
                "with windows for long audio"
            )
        if video.ndim != 3 or video.shape[0] != B or video.shape[2] != cfg.video_dim:
            raise ValueError(f"video must be (B, T_v, {cfg.video_dim}), got {tuple(video.shape)}")
        if text.ndim != 3 or text.shape[0] != B or text.shape[2] != cfg.text_dim:
            raise ValueError(f"text must be (B, L, {cfg.text_dim}), got {tuple(text.shape)}")
        if mask is None:
            mask = torch.zeros(B, N, dtype=torch.bool, device=x.device)
        if mask.shape != (B, N):
            raise ValueError(f"mask must be ({B}, {N}), got {tuple(mask.shape)}")
        if context is None:
            context = torch.zeros_like(x)
        if context.shape != x.shape:
            raise ValueError(f"context must have the shape of x, got {tuple(context.shape)}")
        m = mask[:, None].to(x.dtype)
        tok = torch.cat([x, context * m, m], 1).transpose(1, 2)  # (B, N, 2C + 1)
        pos = self.pos[None, :N] + self.video_proj(self.align_video(video, N))
        out = self.net(tok, t, pos, self.text_proj(text), text_mask)
        return out.transpose(1, 2)

    def loss(
        self,
        x1: Tensor,
        video: Tensor,
        text: Tensor,
        generator: torch.Generator | None = None,
        p_context: float = 0.5,
        p_drop_text: float = 0.1,
    ) -> Tensor:
        """Flow-matching loss with random masked audio context.

        With probability ``p_context`` a prefix of random length (1 .. N/2 frames) is given
        as context and excluded from the loss; text is replaced by zeros (the null
        condition for guidance) with probability ``p_drop_text``.
        """
        B, C, N = x1.shape
        xt, t, v = flow_pair(x1, generator)
        u = torch.rand(B, 2, generator=generator)
        lengths = torch.where(
            u[:, 0] < p_context, 1 + (u[:, 1] * (N // 2)).long(), torch.zeros(B, dtype=torch.long)
        )
        mask = torch.arange(N)[None] < lengths[:, None]
        keep = (torch.rand(B, generator=generator) >= p_drop_text).to(text.dtype)
        pred = self(xt, t, video, text * keep[:, None, None], context=x1, mask=mask)
        w = (~mask)[:, None].to(x1.dtype)
        return ((pred - v).pow(2) * w).sum() / (w.sum() * C)

    @torch.no_grad()
    def generate(
        self,
        video: Tensor,
        text: Tensor,
        length: int,
        *,
        steps: int = 64,
        guidance: float = 3.0,
        generator: torch.Generator | None = None,
        window: int | None = None,
        overlap: int = 0,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        method: str = "midpoint",
    ) -> Tensor:
        """Sample an audio latent of ``length`` frames, windowed when longer than ``window``.

        Parameters
        ----------
        video : Tensor, shape (B, T_v, video_dim)
            Features of the whole video (resampled to ``length``).
        text : Tensor, shape (B, L, text_dim)
        length : int
            Audio latent frames to generate.
        steps : int
            Solver steps (paper: 64 midpoint steps).
        guidance : float
            Classifier-free guidance on the text (paper: about 3); 1 disables it.
        window, overlap : int, optional
            MultiDiffusion window and overlap in latent frames (default: one window);
            windows are blended with triangular weights at every step.
        context, mask : Tensor, optional
            Masked audio context for the whole length, (B, C, length) and (B, length).

        Returns
        -------
        Tensor, shape (B, C, length)
        """
        guidance = check_guidance(guidance)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        window = min(length, self.cfg.max_len) if window is None else window
        if window > self.cfg.max_len:
            raise ValueError(f"window {window} exceeds max_len {self.cfg.max_len}")
        B, C = video.shape[0], self.cfg.latent_channels
        vid = self.align_video(video, length)
        if mask is None:
            mask = torch.zeros(B, length, dtype=torch.bool, device=video.device)
        if context is None:
            context = torch.zeros(B, C, length, device=video.device)

        def win_vel(xs: Tensor, t: Tensor, s: int) -> Tensor:
            n = xs.shape[2]
            args = (vid[:, s : s + n], context[:, :, s : s + n], mask[:, s : s + n])
            if guidance == 1.0:
                return self(xs, t, args[0], text, context=args[1], mask=args[2])
            both = self(
                torch.cat([xs, xs]),
                torch.cat([t, t]),
                torch.cat([args[0]] * 2),
                torch.cat([text, torch.zeros_like(text)]),
                context=torch.cat([args[1]] * 2),
                mask=torch.cat([args[2]] * 2),
            )
            vc, vu = both.chunk(2)
            return vu + guidance * (vc - vu)

        def vel(x: Tensor, t: Tensor) -> Tensor:
            return multidiffusion_velocity(
                win_vel, x, t, dim=2, window=window, overlap=overlap, kind="triangular"
            )

        x0 = torch.randn(B, C, length, generator=generator).to(video)
        x = integrate(vel, x0, linear_t(steps), method)
        m = mask[:, None].to(x.dtype)
        return x * (1 - m) + context * m
