"""Movie Gen's 2.5D temporal autoencoder (TAE) and its outlier penalty loss.

Polyak et al. 2024, Sec. 3.1.1: an image VAE inflated with a 1D temporal convolution
after every 2D spatial convolution and a 1D temporal attention after every spatial
attention; stride-2 temporal convolutions compress time 8x (T -> ceil(T/8)) and
nearest-neighbour upsampling + convolution undoes it. Temporal convolutions use
symmetric replicate padding and a "centric" init (centre tap = identity), so an
inflated model reproduces the image autoencoder frame by frame at step 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import diffusers
import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from torch import Tensor, nn

from papershelf.moviegen.config import TAEConfig

# diffusers' bases, typed as Any: their dynamic attributes defeat a static checker
ModelMixin: Any = diffusers.ModelMixin
ConfigMixin: Any = diffusers.ConfigMixin

__all__ = [
    "DiagonalGaussian",
    "TAEEncoderOutput",
    "TemporalAutoencoder",
    "outlier_penalty_loss",
    "tae_loss",
    "temporal_tiled_decode",
    "temporal_tiled_encode",
]


def _frames(x: Tensor) -> tuple[Tensor, int]:
    """(B, C, T, H, W) -> (B*T, C, H, W)."""
    B, C, T, H, W = x.shape
    return x.transpose(1, 2).reshape(B * T, C, H, W), B


def _video(x: Tensor, B: int) -> Tensor:
    """(B*T, C, H, W) -> (B, C, T, H, W)."""
    BT, C, H, W = x.shape
    return x.view(B, BT // B, C, H, W).transpose(1, 2)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over each frame separately (time folded into the batch).

    Per-frame statistics keep the inflated model equal to the image autoencoder at
    init and make temporal tiles independent of frames outside the tile.
    """

    def forward(self, x: Tensor) -> Tensor:
        f, B = _frames(x)
        return _video(super().forward(f), B)


class TemporalConv(nn.Module):
    """1D convolution over time (kernel 3, replicate padding (1, 1)), centric init."""

    def __init__(self, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv3d(channels, channels, (3, 1, 1), stride=(stride, 1, 1))
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, :, 1, 0, 0] = torch.eye(channels)
            if self.conv.bias is not None:
                self.conv.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (0, 0, 0, 0, 1, 1), mode="replicate")
        return self.conv(x)


class Conv2p5d(nn.Module):
    """A 2D spatial convolution applied frame-wise, then a 1D temporal convolution."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, temporal: bool = True) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
        self.temporal = TemporalConv(cout) if temporal else None

    def forward(self, x: Tensor) -> Tensor:
        f, B = _frames(x)
        x = _video(self.spatial(f), B)
        return self.temporal(x) if self.temporal is not None else x


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv2.5D twice, with a 1x1 skip when widths differ."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.norm1 = FrameGroupNorm(groups, cin)
        self.conv1 = Conv2p5d(cin, cout)
        self.norm2 = FrameGroupNorm(groups, cout)
        self.conv2 = Conv2p5d(cout, cout)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention2p5d(nn.Module):
    """Spatial self-attention per frame, then temporal self-attention per pixel (zero-init out)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm_s = FrameGroupNorm(groups, channels)
        self.qkv_s = nn.Linear(channels, 3 * channels)
        self.out_s = nn.Linear(channels, channels)
        self.norm_t = FrameGroupNorm(groups, channels)
        self.qkv_t = nn.Linear(channels, 3 * channels)
        self.out_t = nn.Linear(channels, channels)
        nn.init.zeros_(self.out_t.weight)
        nn.init.zeros_(self.out_t.bias)

    @staticmethod
    def _attend(seq: Tensor, qkv: nn.Linear, out: nn.Linear) -> Tensor:
        q, k, v = qkv(seq).chunk(3, dim=-1)
        return out(F.scaled_dot_product_attention(q, k, v))

    def forward(self, x: Tensor) -> Tensor:
        B, C, T, H, W = x.shape
        s = self.norm_s(x).permute(0, 2, 3, 4, 1).reshape(B * T, H * W, C)
        x = x + self._attend(s, self.qkv_s, self.out_s).view(B, T, H, W, C).permute(0, 4, 1, 2, 3)
        s = self.norm_t(x).permute(0, 3, 4, 2, 1).reshape(B * H * W, T, C)
        x = x + self._attend(s, self.qkv_t, self.out_t).view(B, H, W, T, C).permute(0, 4, 3, 1, 2)
        return x


class SpatialDown(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        f, B = _frames(x)
        return _video(self.conv(f), B)


class SpatialUp(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        f, B = _frames(x)
        return _video(self.conv(F.interpolate(f, scale_factor=2.0, mode="nearest")), B)


class TemporalUp(nn.Module):
    """Nearest-neighbour x2 in time, then a centric temporal convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = TemporalConv(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.repeat_interleave(2, dim=2))


class DiagonalGaussian:
    """The TAE posterior N(mean, diag(exp(logvar))).

    Parameters
    ----------
    mean, logvar : Tensor, shape (B, C, T, H, W)
    """

    def __init__(self, mean: Tensor, logvar: Tensor) -> None:
        self.mean = mean
        self.logvar = logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> Tensor:
        return torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised draw (noise from ``generator`` on the CPU)."""
        eps = torch.randn(self.mean.shape, generator=generator, dtype=torch.float32)
        return self.mean + self.std * eps.to(self.mean)

    def mode(self) -> Tensor:
        return self.mean

    def kl(self) -> Tensor:
        """KL(q || N(0, I)) summed over (C, T, H, W); shape (B,)."""
        kl = 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)
        return kl.flatten(1).sum(1)


class TAEEncoderOutput(AutoencoderKLOutput):
    """diffusers' ``AutoencoderKLOutput(latent_dist=...)`` from :meth:`TemporalAutoencoder.encode`.

    ``mode()``, ``sample()``, ``kl()``, ``mean`` and ``logvar`` are shortcuts to
    ``latent_dist`` (earlier releases returned the distribution itself).
    """

    def mode(self) -> Tensor:
        return self.latent_dist.mode()

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.latent_dist.sample(generator)

    def kl(self) -> Tensor:
        return self.latent_dist.kl()

    @property
    def mean(self) -> Tensor:
        return self.latent_dist.mean

    @property
    def logvar(self) -> Tensor:
        return self.latent_dist.logvar


class TemporalAutoencoder(ModelMixin, ConfigMixin):
    """The 2.5D TAE: (B, 3, T', H', W') <-> (B, C, ceil(T'/f_t), H'/f_s, W'/f_s).

    A diffusers ``ModelMixin`` + ``ConfigMixin`` used like diffusers' video VAEs:
    ``encode(x).latent_dist`` is a :class:`DiagonalGaussian`, ``decode(z).sample`` the
    frames, ``enable_tiling()`` switches both to the paper's temporal tiling, and
    ``save_pretrained`` / ``from_pretrained`` round-trip it in safetensors.

    Parameters
    ----------
    cfg : TAEConfig, optional
        ``TAEConfig()`` is the paper scale (8x temporal, 8x spatial, 16 channels).
    **fields
        The fields of :class:`~papershelf.moviegen.TAEConfig` (how ``from_config`` calls
        it); only without ``cfg``.
    scaling_factor : float
        As in diffusers' VAEs: latents are divided by it before the transformer and
        multiplied back before decoding (set it to the std of training latents; update
        with ``tae.register_to_config(scaling_factor=...)``).

    Examples
    --------
    >>> from papershelf.moviegen import tae_preset
    >>> tae = TemporalAutoencoder(tae_preset("tiny"))
    >>> z = tae.encode(torch.zeros(1, 3, 8, 32, 32)).latent_dist.mode()
    >>> tuple(z.shape)
    (1, 8, 4, 8, 8)

    References
    ----------
    Polyak et al., "Movie Gen: A Cast of Media Foundation Models", arXiv:2410.13720, Sec. 3.1.1.
    """

    def __init__(
        self,
        cfg: TAEConfig | None = None,
        *,
        in_channels: int = 3,
        latent_channels: int = 16,
        channels: tuple[int, ...] = (128, 256, 512, 512),
        spatial_down: tuple[bool, ...] = (True, True, True, False),
        temporal_down: tuple[bool, ...] = (True, True, True, False),
        num_res_blocks: int = 2,
        mid_attention: bool = True,
        norm_groups: int = 32,
        scaling_factor: float = 1.0,
    ) -> None:
        super().__init__()
        if cfg is None:
            cfg = TAEConfig(
                in_channels=in_channels,
                latent_channels=latent_channels,
                channels=tuple(channels),
                spatial_down=tuple(spatial_down),
                temporal_down=tuple(temporal_down),
                num_res_blocks=num_res_blocks,
                mid_attention=mid_attention,
                norm_groups=norm_groups,
            )
        elif not isinstance(cfg, TAEConfig):
            raise TypeError(f"cfg must be a TAEConfig, got {type(cfg).__name__}")
        fields: dict[str, Any] = asdict(cfg)
        for k in ("channels", "spatial_down", "temporal_down"):
            fields[k] = list(fields[k])
        scaling_factor = float(scaling_factor)
        if not math.isfinite(scaling_factor) or scaling_factor <= 0:
            raise ValueError(f"scaling_factor must be a finite number > 0, got {scaling_factor}")
        self.register_to_config(**fields, scaling_factor=scaling_factor)
        self.cfg = cfg
        self.use_tiling = False
        self.tile_sample_frames = 32  # encoder tile in pixel frames (paper: 32)
        self.tile_latent_frames = 4  # decoder tile in latent frames (paper: 4)
        self.tile_latent_overlap = 2  # decoder overlap in latent frames (paper: 2 = 16 px frames)
        g, ch = cfg.norm_groups, cfg.channels
        # Encoder.
        self.enc_in = Conv2p5d(cfg.in_channels, ch[0])
        self.enc_levels = nn.ModuleList()
        cin = ch[0]
        for i, c in enumerate(ch):
            level = nn.Sequential()
            for _ in range(cfg.num_res_blocks):
                level.append(ResBlock(cin, c, g))
                cin = c
            if cin != c:
                level.append(ResBlock(cin, c, g))
                cin = c
            if cfg.spatial_down[i]:
                level.append(SpatialDown(c))
            if cfg.temporal_down[i]:  # temporal after spatial downsampler of the same level
                level.append(TemporalConv(c, stride=2))
            self.enc_levels.append(level)
        self.enc_mid = self._mid(cin)
        self.enc_out = nn.Sequential(FrameGroupNorm(g, cin), nn.SiLU())
        self.enc_conv_out = Conv2p5d(cin, 2 * cfg.latent_channels)
        # Decoder (mirror).
        self.dec_in = Conv2p5d(cfg.latent_channels, ch[-1])
        self.dec_mid = self._mid(ch[-1])
        self.dec_levels = nn.ModuleList()
        cin = ch[-1]
        for i in reversed(range(len(ch))):
            c = ch[i]
            level = nn.Sequential()
            for _ in range(max(cfg.num_res_blocks, 1)):
                level.append(ResBlock(cin, c, g))
                cin = c
            if cfg.spatial_down[i]:
                level.append(SpatialUp(c))
            if cfg.temporal_down[i]:
                level.append(TemporalUp(c))
            self.dec_levels.append(level)
        self.dec_out = nn.Sequential(FrameGroupNorm(g, cin), nn.SiLU())
        self.dec_conv_out = Conv2p5d(cin, cfg.in_channels)

    def _mid(self, c: int) -> nn.Sequential:
        g = self.cfg.norm_groups
        mods: list[nn.Module] = [ResBlock(c, c, g)]
        if self.cfg.mid_attention:
            mods.append(Attention2p5d(c, g))
        mods.append(ResBlock(c, c, g))
        return nn.Sequential(*mods)

    def latent_shape(self, video_shape: tuple[int, ...]) -> tuple[int, int, int, int, int]:
        """Latent shape for a video shape (B, 3, T', H', W')."""
        B, _, T, H, W = video_shape
        ft, fs = self.cfg.temporal_factor, self.cfg.spatial_factor
        return (B, self.cfg.latent_channels, math.ceil(T / ft), H // fs, W // fs)

    def _check_video(self, x: Tensor) -> None:
        cfg = self.cfg
        if x.ndim == 5 and x.shape[0] == 0:
            raise ValueError("video must hold at least one clip (batch size 0)")
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"video must be (B, {cfg.in_channels}, T, H, W), got {tuple(x.shape)}")
        fs = cfg.spatial_factor
        if x.shape[3] % fs or x.shape[4] % fs:
            raise ValueError(
                f"video height and width must be divisible by the spatial "
                f"compression {fs}, got {tuple(x.shape[3:])}"
            )
        if x.shape[2] < 1:
            raise ValueError("video must have at least one frame")

    def enable_tiling(
        self,
        tile_sample_frames: int | None = None,
        tile_latent_frames: int | None = None,
        tile_latent_overlap: int | None = None,
    ) -> None:
        """Encode and decode in temporal tiles (paper: 32 pixel frames; 4 latent, overlap 2).

        Memory then depends on the tile, not on the video length; see
        :func:`temporal_tiled_encode` and :func:`temporal_tiled_decode`.
        """
        ft = self.cfg.temporal_factor
        if tile_sample_frames is not None:
            if (
                isinstance(tile_sample_frames, bool)
                or tile_sample_frames < 1
                or tile_sample_frames % ft
            ):
                raise ValueError(
                    f"tile_sample_frames must be a positive multiple of {ft}, got {tile_sample_frames}"
                )
            self.tile_sample_frames = int(tile_sample_frames)
        if tile_latent_frames is not None:
            if isinstance(tile_latent_frames, bool) or tile_latent_frames < 1:
                raise ValueError(f"tile_latent_frames must be >= 1, got {tile_latent_frames}")
            self.tile_latent_frames = int(tile_latent_frames)
        if tile_latent_overlap is not None:
            self.tile_latent_overlap = int(tile_latent_overlap)
        if not 0 <= self.tile_latent_overlap < self.tile_latent_frames:
            raise ValueError(
                f"tile_latent_overlap must be in [0, {self.tile_latent_frames}), "
                f"got {self.tile_latent_overlap}"
            )
        self.use_tiling = True

    def disable_tiling(self) -> None:
        """Encode and decode the whole clip at once."""
        self.use_tiling = False

    def encode(self, x: Tensor, return_dict: bool = True) -> Any:
        """Encode a video.

        Parameters
        ----------
        x : Tensor, shape (B, 3, T', H', W')
            Pixels in [-1, 1]; images are 1-frame videos.
        return_dict : bool
            Return :class:`TAEEncoderOutput` (diffusers' ``AutoencoderKLOutput``); else
            the tuple ``(latent_dist,)``.

        Returns
        -------
        TAEEncoderOutput
            ``latent_dist`` is a :class:`DiagonalGaussian` over latents
            (B, C, ceil(T'/f_t), H'/f_s, W'/f_s).
        """
        if self.use_tiling and x.ndim == 5 and x.shape[2] > self.tile_sample_frames:
            post = temporal_tiled_encode(self, x, self.tile_sample_frames)
        else:
            post = self._encode(x)
        return TAEEncoderOutput(latent_dist=post) if return_dict else (post,)

    def _encode(self, x: Tensor) -> DiagonalGaussian:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point video in [-1, 1], got dtype {x.dtype}")
        self._check_video(x)
        x = x.to(self.enc_in.spatial.weight.dtype)
        h = self.enc_in(x)
        for level in self.enc_levels:
            h = level(h)
        h = self.enc_conv_out(self.enc_out(self.enc_mid(h)))
        mean, logvar = h.chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: Tensor, num_frames: int | None = None, return_dict: bool = True) -> Any:
        """Decode latents (B, C, T, H, W) to f_t * T frames, cropped to ``num_frames``.

        Returns
        -------
        DecoderOutput
            diffusers' output with ``sample`` of shape (B, 3, num_frames or f_t T, H f_s,
            W f_s); the tuple ``(sample,)`` when ``return_dict=False``.
        """
        if self.use_tiling and z.ndim == 5 and z.shape[2] > self.tile_latent_frames:
            x = temporal_tiled_decode(
                self, z, self.tile_latent_frames, self.tile_latent_overlap, num_frames
            )
        else:
            x = self._decode(z, num_frames)
        return DecoderOutput(sample=x) if return_dict else (x,)

    def _decode(self, z: Tensor, num_frames: int | None = None) -> Tensor:
        cfg = self.cfg
        if not isinstance(z, Tensor) or not z.is_floating_point():
            raise TypeError("z must be a floating-point torch.Tensor")
        if z.ndim == 5 and (z.shape[0] == 0 or z.shape[2] == 0):
            raise ValueError(f"z must hold at least one clip and one frame, got {tuple(z.shape)}")
        if z.ndim != 5 or z.shape[1] != cfg.latent_channels:
            raise ValueError(f"z must be (B, {cfg.latent_channels}, T, H, W), got {tuple(z.shape)}")
        full = z.shape[2] * cfg.temporal_factor
        if num_frames is not None and not (full - cfg.temporal_factor < num_frames <= full):
            raise ValueError(
                f"num_frames must be in ({full - cfg.temporal_factor}, {full}] "
                f"for {z.shape[2]} latent frames, got {num_frames}"
            )
        h = self.dec_mid(self.dec_in(z.to(self.dec_in.spatial.weight.dtype)))
        for level in self.dec_levels:
            h = level(h)
        x = self.dec_conv_out(self.dec_out(h))
        return x if num_frames is None else x[:, :, :num_frames]

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, DiagonalGaussian]:
        """Reconstruct a video through a posterior sample; returns (reconstruction, posterior)."""
        post = self._encode(x)
        return self._decode(post.sample(generator), num_frames=x.shape[2]), post


def outlier_penalty_loss(z: Tensor, r: float = 3.0) -> Tensor:
    """Outlier penalty loss (OPL, Polyak et al. 2024, Eq. 1).

    For one latent frame X in R^{C x H x W} with per-channel spatial mean and std,

    .. math::
        L_{OPL}(X, r) = \\frac{1}{HW} \\sum_{i,j}
            \\max\\big(\\lVert X_{ij} - \\mathrm{Mean}(X)\\rVert_2 - r \\lVert \\mathrm{Std}(X)
            \\rVert_2,\\ 0\\big);

    time is folded into the batch and the loss is averaged over frames.

    Parameters
    ----------
    z : Tensor, shape (B, C, T, H, W) or (B, C, H, W)
    r : float
        Radius in standard deviations (3 in the paper).

    Returns
    -------
    Tensor, scalar
        Zero when no latent vector lies farther than r ||Std|| from the mean (e.g. for
        Gaussian latents with C = 16 the typical distance is ~4 sigma vs a 12 sigma bar).
    """
    from papershelf.core.validation import check_real

    r = check_real("r", r, low=0.0)
    if not isinstance(z, Tensor) or not z.is_floating_point():
        raise TypeError("z must be a floating-point torch.Tensor")
    if z.ndim == 5:
        z, _ = _frames(z)
    if z.ndim != 4 or z.numel() == 0:
        raise ValueError(
            f"z must be a non-empty (B, C, T, H, W) or (B, C, H, W), got {tuple(z.shape)}"
        )
    if not bool(torch.isfinite(z).all()):
        raise ValueError("z must be finite (no NaN or inf)")
    mean = z.mean(dim=(2, 3), keepdim=True)
    std = z.std(dim=(2, 3), correction=0)  # (N, C)
    dist = torch.linalg.vector_norm(z - mean, dim=1)  # (N, H, W)
    thr = r * torch.linalg.vector_norm(std, dim=1)  # (N,)
    return F.relu(dist - thr[:, None, None]).mean()


def tae_loss(
    tae: TemporalAutoencoder,
    video: Tensor,
    *,
    recon: str = "l1",
    kl_weight: float = 1e-6,
    opl_weight: float = 1e5,
    opl_r: float = 3.0,
    perceptual: Callable[[Tensor, Tensor], Tensor] | None = None,
    perceptual_weight: float = 1.0,
    adversarial: Callable[[Tensor], Tensor] | None = None,
    adversarial_weight: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The TAE training objective: reconstruction + perceptual + patch-GAN + KL + OPL.

    Parameters
    ----------
    tae : TemporalAutoencoder
    video : Tensor, shape (B, 3, T', H', W')
    recon : {"l1", "mse"}
        Pixel reconstruction term. L1 is the image-autoencoder default; without the
        perceptual and GAN terms it can settle on the background of sparse synthetic
        frames, where MSE trains faster (the reproduction uses MSE).
    kl_weight : float
    opl_weight : float
        1e5 as reported (a single secondary source; unconfirmed). It over-penalises
        at small scale, where re-implementations retuned it to about 1.0.
    opl_r : float
    perceptual : callable, optional
        ``perceptual(recon, video)`` -> scalar (e.g. LPIPS on folded frames).
    adversarial : callable, optional
        ``adversarial(recon)`` -> the generator's patch-GAN loss (scalar).

    Returns
    -------
    loss : Tensor, scalar
    parts : dict of str to float
        Every term, detached.
    """
    if recon not in ("l1", "mse"):
        raise ValueError(f"recon must be 'l1' or 'mse', got {recon!r}")
    rec, post = tae(video, generator=generator)
    parts: dict[str, Tensor] = {
        "recon": F.l1_loss(rec, video) if recon == "l1" else F.mse_loss(rec, video),
        "kl": post.kl().mean() / post.mean[0].numel(),
        "opl": outlier_penalty_loss(post.mean, opl_r),
    }
    loss = parts["recon"] + kl_weight * parts["kl"] + opl_weight * parts["opl"]
    if perceptual is not None:
        parts["perceptual"] = perceptual(rec, video)
        loss = loss + perceptual_weight * parts["perceptual"]
    if adversarial is not None:
        parts["adversarial"] = adversarial(rec)
        loss = loss + adversarial_weight * parts["adversarial"]
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def temporal_tiled_encode(tae: TemporalAutoencoder, x: Tensor, tile: int = 32) -> DiagonalGaussian:
    """Encode a long video in tiles of ``tile`` pixel frames without overlap.

    Parameters
    ----------
    tae : TemporalAutoencoder
    x : Tensor, shape (B, 3, T', H', W')
    tile : int
        Pixel frames per tile (32 in the paper = 4 latent frames); a multiple of the
        temporal compression.

    Returns
    -------
    DiagonalGaussian over (B, C, ceil(T'/f_t), H, W)
    """
    ft = tae.cfg.temporal_factor
    if tile < 1 or tile % ft:
        raise ValueError(
            f"tile must be a positive multiple of the temporal compression {ft}, got {tile}"
        )
    tae._check_video(x)
    posts = [tae._encode(x[:, :, s : s + tile]) for s in range(0, x.shape[2], tile)]
    return DiagonalGaussian(
        torch.cat([p.mean for p in posts], 2), torch.cat([p.logvar for p in posts], 2)
    )


def temporal_tiled_decode(
    tae: TemporalAutoencoder,
    z: Tensor,
    tile: int = 4,
    overlap: int = 2,
    num_frames: int | None = None,
) -> Tensor:
    """Decode latents in overlapping temporal windows, blending overlaps linearly.

    Windows of ``tile`` latent frames start every ``tile - overlap`` latent frames. In
    pixel space an overlap spans ``overlap * f_t`` frames, over which the previous tile's
    weight falls linearly from 1 to 0 (out_j = w_j prev_j + (1 - w_j) next_j). Peak
    memory depends on the tile, not on the video length.

    Parameters
    ----------
    tae : TemporalAutoencoder
    z : Tensor, shape (B, C, T, H, W)
    tile : int
        Latent frames per window (4 in the paper = 32 pixel frames).
    overlap : int
        Latent frames shared by consecutive windows (2 = 16 pixel frames); < tile.
    num_frames : int, optional
        Crop the output to this many frames.

    Returns
    -------
    Tensor, shape (B, 3, num_frames or f_t * T, H * f_s, W * f_s)
    """
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
    ft = tae.cfg.temporal_factor
    T = z.shape[2]
    stride = tile - overlap
    starts = [0]
    while starts[-1] + tile < T:
        starts.append(starts[-1] + stride)
    out: Tensor | None = None
    for k, s in enumerate(starts):
        piece = tae._decode(z[:, :, s : s + tile])
        if out is None:
            B, C, _, H, W = piece.shape
            out = piece.new_empty(B, C, T * ft, H, W)
            out[:, :, : piece.shape[2]] = piece
            continue
        p0 = s * ft  # first pixel frame of this window
        prev_end = min((starts[k - 1] + tile) * ft, T * ft)
        n = prev_end - p0  # blended pixel frames (= overlap * f_t except at a short tail)
        w = torch.linspace(1.0, 0.0, n, device=piece.device, dtype=piece.dtype)
        w = w.view(1, 1, n, 1, 1)
        out[:, :, p0:prev_end] = w * out[:, :, p0:prev_end] + (1 - w) * piece[:, :, :n]
        out[:, :, prev_end : p0 + piece.shape[2]] = piece[:, :, n:]
    assert out is not None
    return out if num_frames is None else out[:, :, :num_frames]
