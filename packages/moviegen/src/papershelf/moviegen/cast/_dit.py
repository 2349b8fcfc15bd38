"""The audio model's transformer and the helpers the cast's video models share.

Movie Gen Audio is a separate DiT in the paper (Polyak et al. 2024, Sec. 6): :class:`CastDiT`
is a token-level flow-matching transformer with LLaMa3-style blocks, cross-attention to a
context and time conditioning through one shared adaLN head with a learned per-layer table
("adaLN-single"). The cast's video models (upsampler, PT2V, Edit) are Movie Gen Video's own
:class:`~papershelf.moviegen.MovieGenTransformer` plus conditioning; the helpers below build
their configurations (:func:`video_transformer_config`), load T2V weights into them
(:func:`load_t2v_weights`) and apply classifier-free guidance (:func:`cfg_velocity`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CastDiT",
    "DiTConfig",
    "VideoDiTShape",
    "dit_param_count",
    "text_mask_or_all",
    "timestep_embedding",
    "token_projection",
    "token_projection_param_count",
]


@dataclass(frozen=True)
class DiTConfig:
    """Shape of a cast transformer.

    Attributes
    ----------
    in_dim : int
        Width of an input token (latent channels x patch volume, plus conditioning channels).
    out_dim : int
        Width of an output token (latent channels x patch volume).
    dim, depth, heads, ffn_dim : int
        Model width, number of blocks, attention heads, hidden width of the MLP.
    mlp : {"swiglu", "gelu"}
        LLaMa3's SwiGLU (video models) or a GELU MLP (the 13B audio model's count fits GELU).
    cross_attention : bool
        Whether blocks attend to a context sequence (text / reference / task tokens).
    time_freq_dim : int
        Width of the sinusoidal time features (256 in the paper family).
    """

    in_dim: int
    out_dim: int
    dim: int = 64
    depth: int = 2
    heads: int = 4
    ffn_dim: int = 172
    mlp: str = "swiglu"
    cross_attention: bool = True
    time_freq_dim: int = 64

    def __post_init__(self) -> None:
        for name in ("in_dim", "out_dim", "dim", "depth", "heads", "ffn_dim", "time_freq_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"DiTConfig.{name} must be a positive int, got {v!r}")
        if self.dim % self.heads:
            raise ValueError(
                f"DiTConfig.dim ({self.dim}) must be divisible by heads ({self.heads})"
            )
        if self.mlp not in ("swiglu", "gelu"):
            raise ValueError(f"DiTConfig.mlp must be 'swiglu' or 'gelu', got {self.mlp!r}")
        if self.time_freq_dim % 2:
            raise ValueError("DiTConfig.time_freq_dim must be even")


def dit_param_count(cfg: DiTConfig) -> int:
    """Closed-form parameter count of :class:`CastDiT` (equals ``sum(p.numel())``)."""
    d, f = cfg.dim, cfg.ffn_dim
    attn = 4 * d * d
    mlp = 3 * d * f if cfg.mlp == "swiglu" else 2 * d * f + f + d
    block = attn + mlp + 6 * d + (attn + d if cfg.cross_attention else 0)
    stem = cfg.in_dim * d + d + cfg.time_freq_dim * d + d + d * d + d + d * 6 * d + 6 * d
    head = 2 * d + d * cfg.out_dim + cfg.out_dim
    return cfg.depth * block + stem + head


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of the flow time t in [0, 1] (scaled by 1000); shape (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


def _rms(x: Tensor, eps: float = 1e-6) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))

    def forward(self, x: Tensor, ctx: Tensor, mask: Tensor | None = None) -> Tensor:
        B, N, D = x.shape

        def split(y: Tensor) -> Tensor:
            return y.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        am = None if mask is None else mask[:, None, None, :]
        y = F.scaled_dot_product_attention(
            split(self.q(x)), split(self.k(ctx)), split(self.v(ctx)), attn_mask=am
        )
        return self.o(y.transpose(1, 2).reshape(B, N, D))


class _Block(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.attn = _Attention(d, cfg.heads)
        self.cross = _Attention(d, cfg.heads) if cfg.cross_attention else None
        self.cross_gain = nn.Parameter(torch.ones(d)) if cfg.cross_attention else None
        self.swiglu = cfg.mlp == "swiglu"
        if self.swiglu:
            self.w1 = nn.Linear(d, cfg.ffn_dim, bias=False)
            self.w3 = nn.Linear(d, cfg.ffn_dim, bias=False)
            self.w2 = nn.Linear(cfg.ffn_dim, d, bias=False)
        else:
            self.w1 = nn.Linear(d, cfg.ffn_dim)
            self.w2 = nn.Linear(cfg.ffn_dim, d)
        # Per-layer table added to the shared adaLN output (adaLN-single).
        self.table = nn.Parameter(torch.randn(6, d) / math.sqrt(d))

    def forward(
        self, h: Tensor, pos: Tensor, mod: Tensor, ctx: Tensor | None, ctx_mask: Tensor | None
    ) -> Tensor:
        b1, s1, g1, b2, s2, g2 = (m[:, None] for m in (mod + self.table[None]).unbind(1))
        h = h + pos
        y = _rms(h) * (1 + s1) + b1
        h = h + g1 * self.attn(y, y)
        if self.cross is not None and ctx is not None:
            assert self.cross_gain is not None
            h = h + self.cross(_rms(h) * self.cross_gain, ctx, ctx_mask)
        y = _rms(h) * (1 + s2) + b2
        y = self.w2(F.silu(self.w1(y)) * self.w3(y)) if self.swiglu else self.w2(F.gelu(self.w1(y)))
        return h + g2 * y


class CastDiT(nn.Module):
    """Token-level flow-matching transformer (LLaMa3-style blocks, adaLN-single, cross-attention).

    Parameters
    ----------
    cfg : DiTConfig

    Notes
    -----
    The input embedding and the output projection are plain ``nn.Linear`` layers; the
    output projection and the shared adaLN head start at zero so the untrained model
    predicts a zero velocity. Conditioning channels concatenated to the input tokens
    are zero-initialised by the caller (:meth:`zero_input_columns`).
    """

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.embed = nn.Linear(cfg.in_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.adaln = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.adaln.weight)
        nn.init.zeros_(self.adaln.bias)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.final_mod = nn.Parameter(torch.zeros(2, d))
        self.out = nn.Linear(d, cfg.out_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def zero_input_columns(self, start: int) -> None:
        """Zero the input weights of token channels ``start:`` (new conditioning inputs)."""
        with torch.no_grad():
            self.embed.weight[:, start:].zero_()

    def forward(
        self,
        tokens: Tensor,
        t: Tensor,
        pos: Tensor,
        context: Tensor | None = None,
        context_mask: Tensor | None = None,
        time_extra: Tensor | None = None,
    ) -> Tensor:
        """Predict velocity tokens.

        Parameters
        ----------
        tokens : Tensor, shape (B, N, in_dim)
        t : Tensor, shape (B,)
            Flow time in [0, 1].
        pos : Tensor, shape (N, dim) or (B, N, dim)
            Positional embedding, added at the input of every block.
        context : Tensor, shape (B, L, dim), optional
            Cross-attention context, already projected to ``dim``.
        context_mask : Tensor, shape (B, L), bool, optional
            True on real context tokens.
        time_extra : Tensor, shape (B, dim), optional
            Added to the time embedding (Movie Gen Edit's task embedding).

        Returns
        -------
        Tensor, shape (B, N, out_dim)
        """
        if tokens.ndim != 3 or tokens.shape[-1] != self.cfg.in_dim:
            raise ValueError(f"tokens must be (B, N, {self.cfg.in_dim}), got {tuple(tokens.shape)}")
        B = tokens.shape[0]
        if t.shape != (B,):
            raise ValueError(f"t must have shape ({B},), got {tuple(t.shape)}")
        temb = self.time_mlp(timestep_embedding(t, self.cfg.time_freq_dim))
        if time_extra is not None:
            temb = temb + time_extra
        mod = self.adaln(F.silu(temb)).unflatten(-1, (6, -1))
        pos = pos if pos.ndim == 3 else pos[None]
        h = self.embed(tokens)
        for blk in self.blocks:
            h = blk(h, pos, mod, context, context_mask)
        shift, scale = (self.final_mod[None] + temb[:, None]).unbind(1)
        return self.out(_rms(h) * (1 + scale[:, None]) + shift[:, None])


class VideoDiTShape(Protocol):
    """The fields of a cast config that shape its video transformer (PT2V, Edit)."""

    @property
    def latent_channels(self) -> int: ...
    @property
    def patch(self) -> int: ...
    @property
    def max_pos(self) -> tuple[int, int, int]: ...
    @property
    def dim(self) -> int: ...
    @property
    def depth(self) -> int: ...
    @property
    def heads(self) -> int: ...
    @property
    def ffn_dim(self) -> int: ...


def token_projection(in_dim: int, dim: int) -> nn.Sequential:
    """Encoder states (text, reference image) -> context tokens: Linear, then LayerNorm."""
    return nn.Sequential(nn.Linear(in_dim, dim), nn.LayerNorm(dim))


def token_projection_param_count(in_dim: int, dim: int) -> int:
    """Parameters of :func:`token_projection`."""
    return (in_dim + 3) * dim


def text_mask_or_all(text: Tensor, text_mask: Tensor | None) -> Tensor:
    """``text_mask`` as bool, or all True (every token real) when omitted; shape (B, L)."""
    if text_mask is None:
        return torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
    return text_mask.bool()


def video_transformer_config(
    cfg: VideoDiTShape, text_dims: dict[str, int], extra_channels: int = 0
) -> Any:
    """The :class:`~papershelf.moviegen.TransformerConfig` of a cast video model (PT2V, Edit).

    The cast's video models are Movie Gen Video's own transformer plus conditioning:
    1 x p x p patches, the config's width and depth, ``extra_channels`` zero-initialised
    conditioning channels.
    """
    from papershelf.moviegen.config import TransformerConfig

    return TransformerConfig(
        num_layers=cfg.depth,
        dim=cfg.dim,
        ffn_dim=cfg.ffn_dim,
        num_heads=cfg.heads,
        in_channels=cfg.latent_channels,
        patch=(1, cfg.patch, cfg.patch),
        max_pos=tuple(cfg.max_pos),  # type: ignore[arg-type]
        text_dims=dict(text_dims),
        extra_in_channels=extra_channels,
    )


def load_t2v_weights(target: nn.Module, t2v: nn.Module) -> list[str]:
    """Copy every weight of a T2V ``MovieGenTransformer`` into an extended one.

    The extended model (same trunk, possibly ``extra_in_channels``) shares every key of
    the T2V model; the patchify weight's first ``in_channels`` input channels come from
    T2V and the conditioning channels stay zero, so the extended model computes the T2V
    function at initialisation (Movie Gen initialises PT2V, Edit and the upsampler from
    T2V this way).

    Returns
    -------
    list of str
        The keys loaded (all of the T2V model's).

    Raises
    ------
    ValueError
        When a T2V key is missing from ``target`` or a shape cannot be copied.
    """
    src, dst = t2v.state_dict(), target.state_dict()
    missing = sorted(set(src) - set(dst))
    if missing:
        raise ValueError(f"target lacks T2V keys {missing[:5]}{'...' if len(missing) > 5 else ''}")
    with torch.no_grad():
        for k, v in src.items():
            d = dst[k]
            if d.shape == v.shape:
                d.copy_(v)
            elif (
                k.endswith("patchify.weight")
                and d.shape[0] == v.shape[0]
                and d.shape[2:] == v.shape[2:]
            ):
                d.zero_()
                d[:, : v.shape[1]].copy_(v)
            else:
                raise ValueError(f"cannot copy {k}: T2V {tuple(v.shape)} vs {tuple(d.shape)}")
    return list(src)


def cfg_velocity(
    model: Callable[..., Tensor],
    cond_kwargs: dict[str, Any],
    uncond_kwargs: dict[str, Any],
    guidance: float,
) -> Callable[[Tensor, Tensor], Tensor]:
    """Classifier-free guidance: v = v_u + w (v_c - v_u); w = 1 is the conditional pass alone."""
    if guidance == 1.0:
        return lambda x, t: model(x, t, **cond_kwargs)

    def vel(x: Tensor, t: Tensor) -> Tensor:
        v_c = model(x, t, **cond_kwargs)
        v_u = model(x, t, **uncond_kwargs)
        return v_u + guidance * (v_c - v_u)

    return vel


def check_guidance(guidance: Any) -> float:
    """``guidance`` as a finite float >= 1 (a clear error for NaN, inf, bool, < 1)."""
    import numbers

    if isinstance(guidance, bool) or not isinstance(guidance, numbers.Real):
        raise TypeError(f"guidance must be a real number, got {type(guidance).__name__}")
    g = float(guidance)
    if not math.isfinite(g) or g < 1:
        raise ValueError(f"guidance must be a finite number >= 1, got {g}")
    return g
