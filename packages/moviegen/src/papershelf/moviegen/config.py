"""Configurations of the Movie Gen Video transformer and temporal autoencoder, with presets.

The transformer presets run from a tiny CPU model to the paper's 30B (Table 1 of
Polyak et al. 2024, arXiv:2410.13720). :func:`param_count` gives the parameter
count in closed form; a test checks it against the model built on the meta device.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = [
    "PRESETS",
    "TAEConfig",
    "TransformerConfig",
    "param_count",
    "preset",
    "tae_preset",
]

#: Text encoder output sizes used by the paper-scale presets (UL2, long-prompt MetaCLIP, ByT5-small).
PAPER_TEXT_DIMS: dict[str, int] = {"ul2": 4096, "metaclip": 1280, "byt5": 1472}


@dataclass
class TransformerConfig:
    """Hyperparameters of :class:`~papershelf.moviegen.MovieGenTransformer`.

    Parameters
    ----------
    num_layers, dim, ffn_dim, num_heads : int
        LLaMa3-style trunk; the paper's 30B is 48 layers, d = 6144, FFN 16384, 48 heads.
    in_channels : int
        Latent channels of the TAE (16 at paper scale).
    out_channels : int, optional
        Velocity channels; defaults to ``in_channels``.
    patch : tuple of int
        Patch size (t, h, w); the paper uses 1x2x2.
    max_pos : tuple of int
        Sizes of the factorized learned position tables over (T, H, W) in *patch* units.
        The paper's context is 32 x 48 x 48 tokens (256 frames at 768 px).
    text_dims : dict of str to int
        Output width of each text encoder; each gets its own Linear + LayerNorm to ``dim``
        and the projected sequences are concatenated along the sequence axis.
    adaln : {"shared", "per_layer"}
        ``"shared"`` (adaLN-single: one Linear(d, 6d) for all layers plus a per-layer
        6 x d table) is the only variant whose count matches "30B"; ``"per_layer"``
        (a Linear(d, 6d) in every block) gives about 40B and is kept for ablations.
    qk_norm : bool
        RMSNorm on queries and keys (not in the paper; off by default).
    cross_attn_norm : bool
        RMSNorm with affine before the cross-attention (unverified in the paper; default on).
    extra_in_channels : int
        Conditioning channels concatenated to the noisy latent (upsampler, editing);
        their input weights are zero-initialised so the model starts as the base model.
    time_freq_dim : int
        Width of the sinusoidal timestep features (256).
    norm_eps : float
        Epsilon of every RMSNorm / LayerNorm.
    gradient_checkpointing : bool
        Recompute each block in the backward pass (activation checkpointing).
    """

    num_layers: int = 4
    dim: int = 128
    ffn_dim: int = 344
    num_heads: int = 4
    in_channels: int = 16
    out_channels: int | None = None
    patch: tuple[int, int, int] = (1, 2, 2)
    max_pos: tuple[int, int, int] = (32, 48, 48)
    text_dims: dict[str, int] = field(default_factory=lambda: dict(PAPER_TEXT_DIMS))
    adaln: Literal["shared", "per_layer"] = "shared"
    qk_norm: bool = False
    cross_attn_norm: bool = True
    extra_in_channels: int = 0
    time_freq_dim: int = 256
    norm_eps: float = 1e-6
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        for name in ("num_layers", "dim", "ffn_dim", "num_heads", "in_channels", "time_freq_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        if self.time_freq_dim % 2:
            raise ValueError(f"time_freq_dim must be even, got {self.time_freq_dim}")
        if self.adaln not in ("shared", "per_layer"):
            raise ValueError(f"adaln must be 'shared' or 'per_layer', got {self.adaln!r}")
        if self.extra_in_channels < 0:
            raise ValueError(f"extra_in_channels must be >= 0, got {self.extra_in_channels}")
        self.patch = tuple(int(p) for p in self.patch)  # type: ignore[assignment]
        self.max_pos = tuple(int(p) for p in self.max_pos)  # type: ignore[assignment]
        if len(self.patch) != 3 or min(self.patch) < 1:
            raise ValueError(f"patch must be three positive ints (t, h, w), got {self.patch}")
        if len(self.max_pos) != 3 or min(self.max_pos) < 1:
            raise ValueError(f"max_pos must be three positive ints (t, h, w), got {self.max_pos}")
        if not self.text_dims:
            raise ValueError("text_dims must name at least one text encoder")
        if self.out_channels is None:
            self.out_channels = self.in_channels

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.dim // self.num_heads


def param_count(cfg: TransformerConfig) -> int:
    """Number of parameters of ``MovieGenTransformer(cfg)`` in closed form.

    Parameters
    ----------
    cfg : TransformerConfig

    Returns
    -------
    int
        Equal to ``sum(p.numel() for p in MovieGenTransformer(cfg).parameters())``.

    Notes
    -----
    One block holds self-attention and cross-attention (4 d^2 each, no biases, LLaMa3),
    a SwiGLU FFN (3 d f), the cross-attention RMSNorm weight (d) and the adaLN part
    (a 6 x d table when shared, a Linear(d, 6d) with bias when per layer). For the
    30B preset the blocks alone are 48 (8 d^2 + 3 d f) = 28.99B.
    """
    d, f, L = cfg.dim, cfg.ffn_dim, cfg.num_layers
    assert cfg.out_channels is not None
    block = 8 * d * d + 3 * d * f
    if cfg.cross_attn_norm:
        block += d
    if cfg.qk_norm:
        block += 4 * cfg.head_dim  # q/k norms of self- and cross-attention
    block += 6 * d if cfg.adaln == "shared" else 6 * d * d + 6 * d
    pt, ph, pw = cfg.patch
    vol = pt * ph * pw
    total = L * block
    total += (cfg.in_channels + cfg.extra_in_channels) * vol * d + d  # patchify conv
    total += sum(cfg.max_pos) * d  # factorized position tables
    total += cfg.time_freq_dim * d + d + d * d + d  # time MLP
    if cfg.adaln == "shared":
        total += 6 * d * d + 6 * d  # the one shared adaLN head
    total += sum(td * d + d + 2 * d for td in cfg.text_dims.values())  # Linear + LayerNorm each
    total += 2 * d  # final shift/scale table
    total += d * cfg.out_channels * vol + cfg.out_channels * vol  # output projection
    return total


PRESETS: dict[str, TransformerConfig] = {
    "tiny": TransformerConfig(
        num_layers=2,
        dim=64,
        ffn_dim=172,
        num_heads=4,
        in_channels=8,
        max_pos=(8, 16, 16),
        text_dims={"words": 32},
    ),
    "small": TransformerConfig(
        num_layers=4,
        dim=128,
        ffn_dim=344,
        num_heads=4,
        in_channels=8,
        max_pos=(8, 16, 16),
        text_dims={"words": 32},
    ),
    # The quick reproduction's transformer: "small" with one token per 2x2 latent pixels
    # over all 4 latent frames (patch 4x2x2, 16 tokens for a 4x8x8 latent).
    "demo": TransformerConfig(
        num_layers=4,
        dim=128,
        ffn_dim=344,
        num_heads=4,
        in_channels=8,
        patch=(4, 2, 2),
        max_pos=(1, 4, 4),
        text_dims={"words": 32},
    ),
    "1b": TransformerConfig(num_layers=24, dim=1536, ffn_dim=4096, num_heads=16),
    "5b": TransformerConfig(num_layers=32, dim=3072, ffn_dim=8192, num_heads=24),
    "30b": TransformerConfig(num_layers=48, dim=6144, ffn_dim=16384, num_heads=48),
}


def preset(name: str, **overrides: object) -> TransformerConfig:
    """A copy of the transformer preset ``name`` (``tiny``, ``small``, ``demo``, ``1b``, ``5b``, ``30b``).

    Keyword arguments override fields, e.g. ``preset("30b", adaln="per_layer")``.
    """
    if name not in PRESETS:
        raise ValueError(f"name must be one of {sorted(PRESETS)}, got {name!r}")
    base = PRESETS[name]
    cfg = replace(base, text_dims=dict(base.text_dims))
    if "in_channels" in overrides and "out_channels" not in overrides:
        overrides["out_channels"] = None  # follow the new in_channels
    return replace(cfg, **overrides)  # type: ignore[arg-type]


@dataclass
class TAEConfig:
    """Hyperparameters of the 2.5D :class:`~papershelf.moviegen.TemporalAutoencoder`.

    Parameters
    ----------
    in_channels : int
        Pixel channels (3).
    latent_channels : int
        Latent channels C (16 at paper scale).
    channels : tuple of int
        Width of each encoder level (the decoder mirrors them).
    spatial_down : tuple of bool
        Whether level ``i`` ends with a stride-2 spatial downsampler; the spatial
        compression is 2 ** sum(spatial_down) (8 at paper scale).
    temporal_down : tuple of bool
        Whether level ``i`` ends with a stride-2 temporal downsampler; the paper places
        three of them (8x) after the spatial downsamplers of the first three levels.
    num_res_blocks : int
        Residual blocks per level.
    mid_attention : bool
        Spatial + temporal self-attention in the bottleneck.
    norm_groups : int
        Groups of every GroupNorm.
    """

    in_channels: int = 3
    latent_channels: int = 16
    channels: tuple[int, ...] = (128, 256, 512, 512)
    spatial_down: tuple[bool, ...] = (True, True, True, False)
    temporal_down: tuple[bool, ...] = (True, True, True, False)
    num_res_blocks: int = 2
    mid_attention: bool = True
    norm_groups: int = 32

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        self.spatial_down = tuple(bool(s) for s in self.spatial_down)
        self.temporal_down = tuple(bool(s) for s in self.temporal_down)
        n = len(self.channels)
        if n == 0 or min(self.channels) < 1:
            raise ValueError(f"channels must be non-empty positive ints, got {self.channels}")
        if len(self.spatial_down) != n or len(self.temporal_down) != n:
            raise ValueError(
                "spatial_down and temporal_down must have one entry per level "
                f"({n}), got {len(self.spatial_down)} and {len(self.temporal_down)}"
            )
        for c in self.channels:
            if c % self.norm_groups:
                raise ValueError(
                    f"every channel count must be divisible by norm_groups "
                    f"({self.norm_groups}), got {c}"
                )
        if self.latent_channels < 1 or self.in_channels < 1 or self.num_res_blocks < 0:
            raise ValueError("latent_channels and in_channels must be >= 1, num_res_blocks >= 0")

    @property
    def spatial_factor(self) -> int:
        """Spatial compression factor (8 at paper scale)."""
        return 2 ** sum(self.spatial_down)

    @property
    def temporal_factor(self) -> int:
        """Temporal compression factor (8 at paper scale)."""
        return 2 ** sum(self.temporal_down)


_TAE_PRESETS: dict[str, TAEConfig] = {
    "paper": TAEConfig(),
    # Toy scale: t/2, s/4 so an 8-frame 32x32 clip keeps 4 latent frames (8x4x8x8 latent).
    "tiny": TAEConfig(
        latent_channels=8,
        channels=(16, 32),
        spatial_down=(True, True),
        temporal_down=(True, False),
        num_res_blocks=1,
        norm_groups=8,
    ),
    # The quick reproduction's TAE: no temporal compression, s/2, so a 4-frame 16x16
    # clip keeps its 4 frames (8x4x8x8 latent) and 2-px shape detail survives.
    "demo": TAEConfig(
        latent_channels=8,
        channels=(16, 32),
        spatial_down=(True, False),
        temporal_down=(False, False),
        num_res_blocks=1,
        norm_groups=8,
    ),
}


def tae_preset(name: str, **overrides: object) -> TAEConfig:
    """A copy of the TAE preset ``name``.

    ``paper``: 8x8x8, 16 channels; ``tiny``: t/2, s/4, 8 channels; ``demo``: t/1, s/2,
    8 channels (the quick reproduction's 4-frame 16 x 16 clips).
    """
    if name not in _TAE_PRESETS:
        raise ValueError(f"name must be one of {sorted(_TAE_PRESETS)}, got {name!r}")
    return replace(_TAE_PRESETS[name], **overrides)  # type: ignore[arg-type]
