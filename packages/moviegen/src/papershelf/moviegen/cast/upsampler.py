"""Movie Gen's spatial upsampler (Polyak et al. 2024, Sec. 3.2, "Spatial upsampling").

A video-to-video flow-matching model: the low-resolution video is upsampled bilinearly
in pixel space, encoded frame-wise by an image autoencoder, and its latent is concatenated
channel-wise with the noisy high-resolution latent. The network is Movie Gen Video's own
transformer (:class:`~papershelf.moviegen.MovieGenTransformer`) with
``extra_in_channels = in_channels``; the new input weights start at zero, so
:meth:`SpatialUpsampler.from_t2v` starts it as the T2V model it is initialised from (every
T2V key loaded). Sampling runs ~20 Euler steps; long clips are processed with a sliding
window over time (14 latent frames, overlap 4) whose velocities are averaged at every step
(MultiDiffusion). Training pairs are made with Real-ESRGAN-style degradations of the
high-resolution clip.

The frame-wise image autoencoder is the ``codec``: ``"vae"`` encodes every frame as a
one-frame video with a :class:`~papershelf.moviegen.TemporalAutoencoder` (the pipeline's,
passed as ``vae=``), ``"space_to_depth"`` is an exactly invertible 2x space-to-depth map
(12 channels) that the tiny demo uses so that it isolates what the upsampler learns.

The upsampler is a diffusers ``ModelMixin`` + ``ConfigMixin``: ``save_pretrained`` /
``from_pretrained`` round-trip it exactly, and :class:`~papershelf.moviegen.MovieGenPipeline`
saves and loads it as its optional ``upsampler`` component.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar

import diffusers
import torch
import torch.nn.functional as F
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from torch import Tensor

from papershelf.core.validation import check_int
from papershelf.moviegen.cast._dit import load_t2v_weights
from papershelf.moviegen.cast._flow import flow_pair, integrate, multidiffusion_velocity
from papershelf.moviegen.cast._synth import depth_to_space, space_to_depth
from papershelf.moviegen.config import PAPER_TEXT_DIMS, TransformerConfig, param_count
from papershelf.moviegen.schedules import linear_quadratic_t, linear_t
from papershelf.moviegen.text import TextContext
from papershelf.moviegen.transformer import MovieGenTransformer

# diffusers' bases, typed as Any: their dynamic attributes defeat a static checker
ModelMixin: Any = diffusers.ModelMixin
ConfigMixin: Any = diffusers.ConfigMixin

__all__ = [
    "CODECS",
    "NULL_TEXT",
    "UPSAMPLER_PRESETS",
    "SpatialUpsampler",
    "UpsamplerConfig",
    "degrade",
    "upsampler_param_count",
]

#: Frame-wise image autoencoders the upsampler works in.
CODECS: tuple[str, ...] = ("space_to_depth", "vae")
#: The one text "encoder" of an upsampler without text conditioning: its cross-attention
#: sees one constant token.
NULL_TEXT = "unconditional"


@dataclass(frozen=True)
class UpsamplerConfig:
    """Configuration of :class:`SpatialUpsampler`.

    Attributes
    ----------
    latent_channels : int
        Channels of the frame-wise image latent (12 = RGB space-to-depth x2 for the tiny
        demo; 16 for Movie Gen's image VAE).
    patch : tuple of int
        Spatial patch (h, w) of the transformer (the paper family uses 2 x 2; temporal 1).
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
    text_dims : dict of str to int, optional
        Text encoders the upsampler cross-attends to (as the T2V model's ``text_dims``);
        ``None``: no text (one constant context token).
    codec : {"space_to_depth", "vae"}
        The frame-wise image autoencoder (see the module docstring).
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
    text_dims: dict[str, int] | None = None
    codec: str = "space_to_depth"

    def __post_init__(self) -> None:
        if self.window < 1 or not 0 <= self.overlap < self.window:
            raise ValueError(
                f"need window >= 1 and 0 <= overlap < window, got window="
                f"{self.window}, overlap={self.overlap}"
            )
        if self.max_frames < self.window:
            raise ValueError(
                f"max_frames ({self.max_frames}) must be >= window ({self.window}): "
                "every MultiDiffusion window needs its position rows"
            )
        if self.steps < 1 or self.scale < 1:
            raise ValueError(f"steps and scale must be >= 1, got {self.steps}, {self.scale}")
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {self.codec!r}")
        if self.codec == "space_to_depth" and self.latent_channels != 12:
            raise ValueError(
                "codec 'space_to_depth' (RGB, factor 2) has 12 latent channels, got "
                f"latent_channels={self.latent_channels}"
            )
        if self.text_dims is not None and NULL_TEXT in self.text_dims:
            raise ValueError(f"{NULL_TEXT!r} is reserved; use text_dims=None for no text")

    def transformer_config(self) -> TransformerConfig:
        """The :class:`~papershelf.moviegen.TransformerConfig` of the upsampler's network.

        1 x p x p patches; the conditioning latent is ``extra_in_channels =
        latent_channels`` zero-initialised input channels.
        """
        return TransformerConfig(
            num_layers=self.depth,
            dim=self.dim,
            ffn_dim=self.ffn_dim,
            num_heads=self.heads,
            in_channels=self.latent_channels,
            patch=(1, *self.patch),
            max_pos=(self.max_frames, self.max_h, self.max_w),
            text_dims=dict(self.text_dims) if self.text_dims else {NULL_TEXT: 1},
            extra_in_channels=self.latent_channels,
        )


#: ``tiny`` trains on 2 CPU cores; ``7b`` is the paper's size (layer shape assumed:
#: the paper gives only "7B", so d = 4096, 32 layers, FFN 7168; text-conditioned on the
#: paper's three encoders, image-VAE latents).
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
        text_dims=dict(PAPER_TEXT_DIMS),
        codec="vae",
    ),
}


def upsampler_param_count(cfg: UpsamplerConfig) -> int:
    """Closed-form parameter count of ``SpatialUpsampler(cfg)`` (its transformer)."""
    return param_count(cfg.transformer_config())


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


def _transformer_config(value: TransformerConfig | Mapping[str, Any]) -> TransformerConfig:
    if isinstance(value, TransformerConfig):
        return replace(value, text_dims=dict(value.text_dims))
    if not isinstance(value, Mapping):
        raise TypeError(
            "transformer_config must be a TransformerConfig or a mapping of its fields, got "
            f"{type(value).__name__}"
        )
    known = {f.name for f in fields(TransformerConfig)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise TypeError(f"transformer_config has unknown TransformerConfig fields {unknown}")
    kw = dict(value)
    for key in ("patch", "max_pos"):
        if key in kw:
            kw[key] = tuple(kw[key])
    if "text_dims" in kw:
        kw["text_dims"] = dict(kw["text_dims"])
    return TransformerConfig(**kw)


def _config_json(cfg: TransformerConfig) -> dict[str, Any]:
    out = asdict(cfg)
    out["patch"], out["max_pos"] = list(cfg.patch), list(cfg.max_pos)
    return out


def _check_size(size: Any) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(f"size must be two positive ints (H, W), got {size!r}")
    return int(size[0]), int(size[1])


def _vae_scale(vae: Any) -> float:
    return float(getattr(getattr(vae, "config", None), "scaling_factor", 1.0))


class SpatialUpsampler(ModelMixin, ConfigMixin):
    """Video-to-video flow-matching upsampler conditioned on the bilinearly upsampled input.

    Movie Gen Video's transformer (``self.transformer``, a
    :class:`~papershelf.moviegen.MovieGenTransformer`) with the conditioning latent as
    ``extra_in_channels`` zero-initialised input channels.

    Parameters
    ----------
    cfg : UpsamplerConfig, optional
        The shape; or give ``transformer_config`` (how ``from_config`` / ``from_pretrained``
        and :meth:`from_t2v` build it).
    encode, decode : callable, optional
        A custom frame-wise image autoencoder (B, 3, T, H, W) <-> (B, C, T, h, w) that
        replaces the ``codec`` (not saved by ``save_pretrained``: pass it again).
    transformer_config : TransformerConfig or mapping, optional
        The network's configuration (``extra_in_channels`` must equal ``in_channels``
        and the temporal patch be 1); only without ``cfg``.
    window, overlap, steps, scale, codec, text_dims
        As in :class:`UpsamplerConfig`; only without ``cfg`` (``text_dims`` comes from
        the transformer).

    Examples
    --------
    >>> up = SpatialUpsampler(UPSAMPLER_PRESETS["tiny"])
    >>> lr = torch.zeros(1, 3, 6, 4, 4)
    >>> up.upsample(lr, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([1, 3, 6, 8, 8])

    From a T2V checkpoint (every key loaded; equal to T2V at initialisation):

    >>> from papershelf.moviegen import preset
    >>> t2v = MovieGenTransformer(preset("tiny", max_pos=(4, 4, 4)))
    >>> up = SpatialUpsampler.from_t2v(t2v, window=4, overlap=2)
    >>> up.transformer.cfg.extra_in_channels == t2v.cfg.in_channels
    True

    References
    ----------
    Polyak et al., "Movie Gen: A Cast of Media Foundation Models", arXiv:2410.13720, Sec. 3.2.
    Bar-Tal et al., "MultiDiffusion", ICML 2023.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["MovieGenBlock"]

    def __init__(
        self,
        cfg: UpsamplerConfig | None = None,
        encode: Callable[[Tensor], Tensor] | None = None,
        decode: Callable[[Tensor], Tensor] | None = None,
        *,
        transformer_config: TransformerConfig | Mapping[str, Any] | None = None,
        window: int = 14,
        overlap: int = 4,
        steps: int = 20,
        scale: int = 2,
        codec: str = "space_to_depth",
    ) -> None:
        super().__init__()
        if cfg is not None:
            if not isinstance(cfg, UpsamplerConfig):
                raise TypeError(f"cfg must be an UpsamplerConfig, got {type(cfg).__name__}")
            if transformer_config is not None:
                raise TypeError("pass cfg or transformer_config, not both")
            tcfg = cfg.transformer_config()
        else:
            if transformer_config is None:
                raise TypeError(
                    "SpatialUpsampler needs cfg (an UpsamplerConfig) or transformer_config "
                    "(a TransformerConfig, e.g. through from_t2v)"
                )
            tcfg = _transformer_config(transformer_config)
            if tcfg.extra_in_channels != tcfg.in_channels:
                raise ValueError(
                    "the upsampler's transformer needs extra_in_channels == in_channels "
                    f"(the conditioning latent), got {tcfg.extra_in_channels} and "
                    f"{tcfg.in_channels}"
                )
            if tcfg.patch[0] != 1:
                raise ValueError(f"the upsampler needs a 1 x p x p patch, got {tcfg.patch}")
            if tcfg.out_channels != tcfg.in_channels:
                raise ValueError("the upsampler's transformer needs out_channels == in_channels")
            text_dims = None if set(tcfg.text_dims) == {NULL_TEXT} else dict(tcfg.text_dims)
            cfg = UpsamplerConfig(
                latent_channels=tcfg.in_channels,
                patch=(tcfg.patch[1], tcfg.patch[2]),
                dim=tcfg.dim,
                depth=tcfg.num_layers,
                heads=tcfg.num_heads,
                ffn_dim=tcfg.ffn_dim,
                max_frames=tcfg.max_pos[0],
                max_h=tcfg.max_pos[1],
                max_w=tcfg.max_pos[2],
                window=window,
                overlap=overlap,
                steps=steps,
                scale=scale,
                text_dims=text_dims,
                codec=codec,
            )
        self.cfg = cfg
        self.register_to_config(
            transformer_config=_config_json(tcfg),
            window=cfg.window,
            overlap=cfg.overlap,
            steps=cfg.steps,
            scale=cfg.scale,
            codec=cfg.codec,
        )
        self.transformer = MovieGenTransformer(tcfg)
        self.encode_fn, self.decode_fn = encode, decode

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_t2v(
        cls,
        t2v: MovieGenTransformer,
        *,
        window: int | None = None,
        overlap: int | None = None,
        steps: int = 20,
        scale: int = 2,
        codec: str = "vae",
        max_pos: tuple[int, int, int] | None = None,
    ) -> SpatialUpsampler:
        """An upsampler initialised from a T2V transformer (every T2V key loaded).

        The conditioning channels of the patchify weight start at zero, so at
        initialisation the upsampler computes the T2V velocity whatever the low-resolution
        input (tested exactly); it keeps the T2V model's text encoders.

        Parameters
        ----------
        t2v : MovieGenTransformer
            A plain T2V model (``extra_in_channels = 0``) with a 1 x p x p patch.
        window, overlap : int, optional
            MultiDiffusion window / overlap in latent frames (default: the paper's 14 / 4,
            capped at the T2V position table: ``min(14, max_pos[0])``, ``min(4, window // 2)``).
        steps, scale : int
        codec : {"vae", "space_to_depth"}
            ``"vae"``: frames encoded with the pipeline's TAE (its latent channels must be
            the T2V model's ``in_channels``).
        max_pos : (t, h, w), optional
            Larger position tables for the higher resolution; T2V's tables are resampled
            (``train.positions.grow_position_tables(mode="interpolate")``).
        """
        if not isinstance(t2v, MovieGenTransformer):
            raise TypeError(f"t2v must be a MovieGenTransformer, got {type(t2v).__name__}")
        c = t2v.cfg
        if c.extra_in_channels:
            raise ValueError(
                f"from_t2v needs a plain T2V transformer (extra_in_channels = 0), got "
                f"{c.extra_in_channels}"
            )
        if c.patch[0] != 1:
            raise ValueError(f"from_t2v needs a 1 x p x p patch, got {c.patch}")
        if window is None:
            window = min(14, c.max_pos[0])
        if overlap is None:
            overlap = min(4, window // 2)
        tcfg = replace(
            c, extra_in_channels=c.in_channels, text_dims=dict(c.text_dims), out_channels=None
        )
        if tcfg.out_channels != c.out_channels:
            raise ValueError("from_t2v needs a T2V model with out_channels == in_channels")
        up = cls(
            transformer_config=tcfg,
            window=window,
            overlap=overlap,
            steps=steps,
            scale=scale,
            codec=codec,
        )
        load_t2v_weights(up.transformer, t2v)
        if max_pos is not None:
            from papershelf.moviegen.train.positions import grow_position_tables

            grow_position_tables(up.transformer, max_pos, mode="interpolate")
            up._sync_config()
        p = next(t2v.parameters())
        if p.device != up.device:
            up = up.to(p.device)
        if p.dtype != up.dtype:  # diffusers warns on a no-op .to(dtype)
            up = up.to(p.dtype)
        return up

    def _sync_config(self) -> None:
        """Re-derive ``cfg`` and the saved config after the transformer changed shape."""
        tcfg = self.transformer.cfg
        self.register_to_config(transformer_config=_config_json(tcfg))
        mt, mh, mw = tcfg.max_pos
        self.cfg = replace(self.cfg, max_frames=mt, max_h=mh, max_w=mw)

    @property
    def text_conditioned(self) -> bool:
        """Whether the upsampler reads the prompt's text context."""
        return self.cfg.text_dims is not None

    # ----------------------------------------------------------------- codec
    def encode(self, video: Tensor, vae: Any = None) -> Tensor:
        """Frame-wise image encoding (B, 3, T, H, W) -> latent (B, C, T, h, w).

        ``codec="vae"``: every frame is a one-frame video for ``vae`` (a
        :class:`~papershelf.moviegen.TemporalAutoencoder`); the latent mean is divided by
        its ``scaling_factor`` (as the pipeline does).
        """
        if self.encode_fn is not None:
            return self.encode_fn(video)
        if self.cfg.codec == "space_to_depth":
            return space_to_depth(video)
        vae = self._need_vae(vae)
        B, C, T, H, W = video.shape
        frames = video.transpose(1, 2).reshape(B * T, C, 1, H, W)
        z = vae.encode(frames.to(vae.dtype)).latent_dist.mode() / _vae_scale(vae)
        z = z[:, :, 0]  # (B T, C, h, w)
        return z.reshape(B, T, *z.shape[1:]).transpose(1, 2).to(video.dtype)

    def decode(self, latent: Tensor, vae: Any = None) -> Tensor:
        """Inverse of :meth:`encode`: latent (B, C, T, h, w) -> frames (B, 3, T, H, W)."""
        if self.decode_fn is not None:
            return self.decode_fn(latent)
        if self.cfg.codec == "space_to_depth":
            return depth_to_space(latent)
        vae = self._need_vae(vae)
        B, C, T, h, w = latent.shape
        z = latent.transpose(1, 2).reshape(B * T, C, 1, h, w) * _vae_scale(vae)
        x = vae.decode(z.to(vae.dtype), num_frames=1).sample[:, :, 0]  # (B T, 3, H, W)
        return x.reshape(B, T, *x.shape[1:]).transpose(1, 2).to(latent.dtype)

    def _need_vae(self, vae: Any) -> Any:
        if vae is None:
            raise ValueError(
                "this upsampler's codec is 'vae': pass vae= (the TemporalAutoencoder whose "
                "latents it works in; MovieGenPipeline passes its own)"
            )
        channels = getattr(getattr(vae, "cfg", None), "latent_channels", None)
        if channels is not None and channels != self.cfg.latent_channels:
            raise ValueError(
                f"vae has {channels} latent channels, the upsampler expects "
                f"{self.cfg.latent_channels}"
            )
        return vae

    def condition(
        self, lowres: Tensor, vae: Any = None, size: tuple[int, int] | None = None
    ) -> Tensor:
        """Bilinear x``scale`` (or to ``size``) in pixel space, then the frame-wise encoder.

        Parameters
        ----------
        lowres : Tensor, shape (B, 3, T, h, w)
        vae : TemporalAutoencoder, optional
            Needed for ``codec="vae"``.
        size : (H, W), optional
            Output pixel size instead of ``scale`` x the input (e.g. 768 -> 1080 rows, a
            non-integer factor as in the paper).

        Returns
        -------
        Tensor, shape (B, C, T, H / f, W / f): the conditioning latent (f: the codec's
        spatial compression).
        """
        if lowres.ndim != 5 or lowres.shape[1] != 3:
            raise ValueError(f"lowres must be (B, 3, T, h, w), got {tuple(lowres.shape)}")
        B, C, T, h, w = lowres.shape
        frames = lowres.transpose(1, 2).reshape(B * T, C, h, w)
        if size is None:
            s = self.cfg.scale
            up = F.interpolate(frames, scale_factor=s, mode="bilinear", align_corners=False)
        else:
            size = _check_size(size)
            up = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
        return self.encode(up.reshape(B, T, C, *up.shape[-2:]).transpose(1, 2), vae)

    def _text(self, text: TextContext | None, batch: int, device: torch.device) -> TextContext:
        if not self.text_conditioned:
            if text is not None:
                raise ValueError(
                    "this upsampler has no text conditioning (text_dims=None): pass text=None"
                )
            return TextContext(
                {NULL_TEXT: torch.zeros(batch, 1, 1, device=device)},
                {NULL_TEXT: torch.ones(batch, 1, dtype=torch.bool, device=device)},
            )
        if not isinstance(text, TextContext):
            raise TypeError(
                "this upsampler is text-conditioned: text must be a TextContext from the "
                f"encoders {sorted(self.cfg.text_dims or {})}, got {type(text).__name__}"
            )
        return text

    # ----------------------------------------------------------------- model
    def forward(
        self,
        x: Tensor,
        t: Tensor,
        cond: Tensor,
        text: TextContext | None = None,
        *,
        return_dict: bool = False,
    ) -> Any:
        """Velocity of the high-resolution latent.

        Parameters
        ----------
        x : Tensor, shape (B, C, T, H, W)
            Noisy high-resolution latent.
        t : Tensor, shape (B,) or scalar
            Flow time in [0, 1].
        cond : Tensor, shape (B, C, T, H, W)
            :meth:`condition` of the low-resolution clip.
        text : TextContext, optional
            The prompt's encoder outputs (text-conditioned upsamplers only).
        return_dict : bool
            Return diffusers' ``Transformer2DModelOutput(sample=...)``.

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
        B, _, T, H, W = x.shape
        ph, pw = cfg.patch
        if H % ph or W % pw:
            raise ValueError(f"latent H, W = {(H, W)} must be divisible by the patch {cfg.patch}")
        grid = (T, H // ph, W // pw)
        if grid[0] > cfg.max_frames or grid[1] > cfg.max_h or grid[2] > cfg.max_w:
            raise ValueError(
                f"token grid {grid} exceeds the position tables "
                f"{(cfg.max_frames, cfg.max_h, cfg.max_w)}; use upsample() for long clips"
            )
        w = self.transformer.patchify.weight.dtype  # inputs follow the model's dtype, output x's
        out = self.transformer(x.to(w), t, self._text(text, B, x.device), cond.to(w)).to(x.dtype)
        return Transformer2DModelOutput(sample=out) if return_dict else out

    def loss(
        self,
        highres: Tensor,
        lowres: Tensor | None = None,
        generator: torch.Generator | None = None,
        text: TextContext | None = None,
        vae: Any = None,
    ) -> Tensor:
        """Flow-matching loss on a clip; ``lowres`` defaults to :func:`degrade` of ``highres``.

        Parameters
        ----------
        highres : Tensor, shape (B, 3, T, H, W)
        lowres : Tensor, shape (B, 3, T, H / scale, W / scale), optional
        generator : torch.Generator, optional
        text : TextContext, optional
            Text-conditioned upsamplers only.
        vae : TemporalAutoencoder, optional
            Needed for ``codec="vae"``.
        """
        if lowres is None:
            lowres = degrade(highres, self.cfg.scale, generator)
        with torch.no_grad():
            x1 = self.encode(highres, vae)
            cond = self.condition(lowres, vae)
        xt, t, v = flow_pair(x1, generator)
        return F.mse_loss(self(xt, t, cond, text), v)

    @torch.no_grad()
    def upsample(
        self,
        lowres: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        window: int | None = None,
        overlap: int | None = None,
        schedule: str = "linear",
        text: TextContext | None = None,
        vae: Any = None,
        size: tuple[int, int] | None = None,
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
        text : TextContext, optional
            The prompt's context (text-conditioned upsamplers only).
        vae : TemporalAutoencoder, optional
            Needed for ``codec="vae"``.
        size : (H, W), optional
            Output pixel size instead of ``scale`` x the input (divisible by the codec's
            compression times the patch).

        Returns
        -------
        Tensor, shape (B, 3, T, scale h, scale w) or (B, 3, T, H, W)
        """
        cfg = self.cfg
        steps = check_int("steps", cfg.steps if steps is None else steps, low=2)
        window = check_int(
            "window", cfg.window if window is None else window, low=1, high=cfg.max_frames
        )
        overlap = check_int(
            "overlap", cfg.overlap if overlap is None else overlap, low=0, high=window - 1
        )
        if schedule not in ("linear", "linear_quadratic"):
            raise ValueError(f"schedule must be 'linear' or 'linear_quadratic', got {schedule!r}")
        if not isinstance(lowres, Tensor) or not lowres.is_floating_point():
            raise TypeError("lowres must be a floating-point tensor (B, 3, T, h, w) in [-1, 1]")
        if lowres.ndim != 5 or lowres.shape[1] != 3 or lowres.numel() == 0:
            raise ValueError(
                f"lowres must be a non-empty (B, 3, T, h, w), got {tuple(lowres.shape)}"
            )
        if not bool(torch.isfinite(lowres).all()):
            raise ValueError("lowres must be finite (it has NaN or inf)")
        grid = (
            linear_t(steps)
            if schedule == "linear"
            else linear_quadratic_t(steps, max(steps, 5 * steps))
        )
        dtype = self.transformer.patchify.weight.dtype
        cond = self.condition(lowres, vae, size).to(dtype)
        self._text(text, lowres.shape[0], cond.device)  # refuse a wrong text before sampling
        x0 = torch.randn(cond.shape, generator=generator).to(cond)

        def vel(x: Tensor, t: Tensor) -> Tensor:
            return multidiffusion_velocity(
                lambda xs, tt, s: self(xs, tt, cond.narrow(2, s, xs.shape[2]), text),
                x,
                t,
                dim=2,
                window=window,
                overlap=overlap,
                kind="uniform",
            )

        return self.decode(integrate(vel, x0, grid, "euler"), vae).to(lowres.dtype)
