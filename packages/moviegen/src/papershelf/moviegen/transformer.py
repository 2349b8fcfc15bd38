"""The Movie Gen Video flow-matching transformer (Polyak et al. 2024, Sec. 3.1.4 and Table 1).

LLaMa3 blocks (RMSNorm, SwiGLU, SDPA attention, no GQA) with three changes: a
cross-attention to the text context, adaLN time modulation (shared "adaLN-single"
head plus a per-layer table), and full bidirectional self-attention. Learned
factorized (T, H, W) positions are added at the input of every block; the latent is
cut into 1x2x2 patches by a Conv3d with kernel = stride.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, ClassVar

import diffusers
import torch
import torch.nn.functional as F
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from papershelf.moviegen.config import TransformerConfig
from papershelf.moviegen.text import TextContext

# diffusers' bases, typed as Any: their dynamic attributes defeat a static checker
ModelMixin: Any = diffusers.ModelMixin
ConfigMixin: Any = diffusers.ConfigMixin

__all__ = ["MovieGenBlock", "MovieGenTransformer", "RMSNorm", "timestep_features"]


class RMSNorm(nn.Module):
    """Root-mean-square layer norm, optionally with a learned per-channel gain."""

    def __init__(self, dim: int, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        y = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        y = y.to(x.dtype)
        return y * self.weight if self.weight is not None else y


def timestep_features(t: Tensor, dim: int = 256, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of the flow time.

    Parameters
    ----------
    t : Tensor, shape (B,)
        Flow time in [0, 1]; it is scaled by 1000 so the frequencies resolve it like
        a diffusion timestep.
    dim : int
        Even feature width.

    Returns
    -------
    Tensor, shape (B, dim)
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Attention(nn.Module):
    """Multi-head attention through ``F.scaled_dot_product_attention`` (self or cross)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool, eps: float) -> None:
        super().__init__()
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        hd = dim // num_heads
        self.cp_group: Any = None  # set by train.context.enable_context_parallel
        self.q_norm = RMSNorm(hd, eps) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(hd, eps) if qk_norm else nn.Identity()

    def forward(
        self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        B, N, _ = x.shape
        ctx = x if context is None else context

        def split(y: Tensor) -> Tensor:  # head count from the width: works with TP shards
            return y.unflatten(-1, (-1, self.head_dim)).transpose(1, 2)

        q = self.q_norm(split(self.q(x)))
        k = self.k_norm(split(self.k(ctx)))
        v = split(self.v(ctx))
        if context is None and self.cp_group is not None:  # context parallel: every rank's keys
            from papershelf.moviegen.train.context import gather_keys_values

            k = gather_keys_values(k, 2, self.cp_group)
            v = gather_keys_values(v, 2, self.cp_group)
        attn_mask = None if mask is None else mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.o(y.transpose(1, 2).reshape(B, N, -1))


class FeedForward(nn.Module):
    """SwiGLU: W2 (SiLU(W1 x) * W3 x)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MovieGenBlock(nn.Module):
    """One transformer block.

    ``h <- h + pos``; ``h <- h + g1 * SelfAttn(RMSNorm(h)(1 + s1) + b1)``;
    ``h <- h + CrossAttn(RMSNorm(h), text)``; ``h <- h + g2 * SwiGLU(RMSNorm(h)(1 + s2) + b2)``.
    The six modulation vectors are the shared adaLN output plus this block's 6 x d table
    (``adaln="shared"``) or this block's own Linear(d, 6d) (``adaln="per_layer"``).
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.adaln = cfg.adaln
        self.norm1 = RMSNorm(d, cfg.norm_eps, affine=False)
        self.self_attn = Attention(d, cfg.num_heads, cfg.qk_norm, cfg.norm_eps)
        self.cross_norm = RMSNorm(d, cfg.norm_eps) if cfg.cross_attn_norm else nn.Identity()
        self.cross_attn = Attention(d, cfg.num_heads, cfg.qk_norm, cfg.norm_eps)
        self.norm2 = RMSNorm(d, cfg.norm_eps, affine=False)
        self.ffn = FeedForward(d, cfg.ffn_dim)
        if cfg.adaln == "shared":
            self.modulation = nn.Parameter(torch.randn(6, d) / math.sqrt(d))
        else:
            self.modulation_proj = nn.Linear(d, 6 * d)
            nn.init.zeros_(self.modulation_proj.weight)
            nn.init.zeros_(self.modulation_proj.bias)

    def forward(
        self, h: Tensor, pos: Tensor, temb: Tensor, context: Tensor, context_mask: Tensor
    ) -> Tensor:
        """Apply the block.

        Parameters
        ----------
        h : Tensor, shape (B, N, d)
        pos : Tensor, shape (1, N, d)
            Factorized position embedding of the tokens.
        temb : Tensor, shape (B, 6, d) (shared) or (B, d) (per layer)
        context : Tensor, shape (B, L, d)
        context_mask : Tensor, shape (B, L), bool
        """
        if self.adaln == "shared":
            mod = temb + self.modulation[None]
        else:
            mod = self.modulation_proj(F.silu(temb)).unflatten(-1, (6, -1))
        b1, s1, g1, b2, s2, g2 = (m[:, None] for m in mod.unbind(1))
        h = h + pos
        h = h + g1 * self.self_attn(self.norm1(h) * (1 + s1) + b1)
        h = h + self.cross_attn(self.cross_norm(h), context, context_mask)
        h = h + g2 * self.ffn(self.norm2(h) * (1 + s2) + b2)
        return h


class MovieGenTransformer(ModelMixin, ConfigMixin):
    """Movie Gen Video's velocity network u(X_t, P, t; theta).

    A diffusers ``ModelMixin`` + ``ConfigMixin``: ``save_pretrained(folder)`` writes
    ``config.json`` and ``diffusion_pytorch_model.safetensors``, and
    ``MovieGenTransformer.from_pretrained(folder)`` (or a ``DiffusionPipeline``) rebuilds
    it exactly. The state-dict keys do not depend on how the model was built.

    Parameters
    ----------
    cfg : TransformerConfig, optional
        The whole configuration; when omitted the keyword arguments (the fields of
        :class:`~papershelf.moviegen.TransformerConfig`, which is how ``from_config``
        calls it) build one.
    **fields
        ``num_layers``, ``dim``, ``ffn_dim``, ``num_heads``, ``in_channels``,
        ``out_channels``, ``patch``, ``max_pos``, ``text_dims``, ``adaln``, ``qk_norm``,
        ``cross_attn_norm``, ``extra_in_channels``, ``time_freq_dim``, ``norm_eps``,
        ``gradient_checkpointing``; only without ``cfg``.

    Examples
    --------
    >>> from papershelf.moviegen import preset
    >>> model = MovieGenTransformer(preset("tiny"))
    >>> sum(p.numel() for p in model.parameters()) == param_count(model.cfg)  # doctest: +SKIP
    True

    References
    ----------
    Polyak et al., "Movie Gen: A Cast of Media Foundation Models", arXiv:2410.13720, 2024.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["MovieGenBlock"]
    _skip_layerwise_casting_patterns: ClassVar[list[str]] = ["pos_", "text_proj", "norm"]

    def __init__(
        self,
        cfg: TransformerConfig | None = None,
        *,
        num_layers: int = 4,
        dim: int = 128,
        ffn_dim: int = 344,
        num_heads: int = 4,
        in_channels: int = 16,
        out_channels: int | None = None,
        patch: tuple[int, int, int] = (1, 2, 2),
        max_pos: tuple[int, int, int] = (32, 48, 48),
        text_dims: dict[str, int] | None = None,
        adaln: str = "shared",
        qk_norm: bool = False,
        cross_attn_norm: bool = True,
        extra_in_channels: int = 0,
        time_freq_dim: int = 256,
        norm_eps: float = 1e-6,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if cfg is None:
            cfg = TransformerConfig(
                num_layers=num_layers,
                dim=dim,
                ffn_dim=ffn_dim,
                num_heads=num_heads,
                in_channels=in_channels,
                out_channels=out_channels,
                patch=tuple(patch),  # type: ignore[arg-type]
                max_pos=tuple(max_pos),  # type: ignore[arg-type]
                text_dims=dict(text_dims)
                if text_dims is not None
                else TransformerConfig().text_dims,
                adaln=adaln,  # type: ignore[arg-type]
                qk_norm=qk_norm,
                cross_attn_norm=cross_attn_norm,
                extra_in_channels=extra_in_channels,
                time_freq_dim=time_freq_dim,
                norm_eps=norm_eps,
                gradient_checkpointing=gradient_checkpointing,
            )
        elif not isinstance(cfg, TransformerConfig):
            raise TypeError(f"cfg must be a TransformerConfig, got {type(cfg).__name__}")
        fields = asdict(cfg)
        fields["patch"], fields["max_pos"] = list(cfg.patch), list(cfg.max_pos)
        self.register_to_config(**fields)
        self.cfg = cfg
        d = cfg.dim
        assert cfg.out_channels is not None
        self.patchify = nn.Conv3d(
            cfg.in_channels + cfg.extra_in_channels, d, kernel_size=cfg.patch, stride=cfg.patch
        )
        if cfg.extra_in_channels:
            with torch.no_grad():  # start as the base model: conditioning inputs weigh zero
                self.patchify.weight[:, cfg.in_channels :].zero_()
        mt, mh, mw = cfg.max_pos
        self.pos_t = nn.Parameter(torch.randn(mt, d) * 0.02)
        self.pos_h = nn.Parameter(torch.randn(mh, d) * 0.02)
        self.pos_w = nn.Parameter(torch.randn(mw, d) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        if cfg.adaln == "shared":
            self.adaln_shared = nn.Linear(d, 6 * d)
            nn.init.zeros_(self.adaln_shared.weight)
            nn.init.zeros_(self.adaln_shared.bias)
        self.text_proj = nn.ModuleDict(
            {
                name: nn.Sequential(nn.Linear(td, d), nn.LayerNorm(d, eps=cfg.norm_eps))
                for name, td in cfg.text_dims.items()
            }
        )
        self.blocks = nn.ModuleList(MovieGenBlock(cfg) for _ in range(cfg.num_layers))
        self.final_norm = RMSNorm(d, cfg.norm_eps, affine=False)
        self.final_modulation = nn.Parameter(torch.randn(2, d) / math.sqrt(d))
        vol = cfg.patch[0] * cfg.patch[1] * cfg.patch[2]
        self.proj_out = nn.Linear(d, cfg.out_channels * vol)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)
        self.gradient_checkpointing = cfg.gradient_checkpointing
        self.cp_group: Any = None  # set by train.context.enable_context_parallel

    def encode_text(self, text: TextContext) -> tuple[Tensor, Tensor]:
        """Project every encoder to d and concatenate along the sequence axis.

        Returns
        -------
        context : Tensor, shape (B, sum_k L_k, d)
        mask : Tensor, shape (B, sum_k L_k), bool
        """
        if set(text.states) != set(self.text_proj):
            raise ValueError(
                f"text must come from encoders {sorted(self.text_proj)}, got {sorted(text.states)}"
            )
        ctx, masks = [], []
        for name in sorted(self.text_proj):  # a fixed order, whatever order a config lists them in
            proj = self.text_proj[name]
            s = text.states[name]
            lin: nn.Linear = proj[0]  # type: ignore[index]
            if s.shape[-1] != lin.in_features:
                raise ValueError(
                    f"text encoder {name!r} must have width {lin.in_features}, got {s.shape[-1]}"
                )
            ctx.append(proj(s.to(lin.weight.dtype)))
            masks.append(text.masks[name].bool())
        return torch.cat(ctx, 1), torch.cat(masks, 1)

    def positions(self, grid: tuple[int, int, int]) -> Tensor:
        """E_T[f] + E_H[i] + E_W[j] for a token grid (T, H, W) in patch units; (1, T*H*W, d)."""
        T, H, W = grid
        mt, mh, mw = self.cfg.max_pos
        if T > mt or H > mh or W > mw:
            raise ValueError(
                f"token grid {grid} exceeds the position tables max_pos {self.cfg.max_pos}"
            )
        pos = self.pos_t[:T, None, None] + self.pos_h[None, :H, None] + self.pos_w[None, None, :W]
        return pos.reshape(1, T * H * W, -1)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        text: TextContext,
        cond_latent: Tensor | None = None,
        *,
        context_tokens: Tensor | None = None,
        context_tokens_mask: Tensor | None = None,
        temb_offset: Tensor | None = None,
        return_dict: bool = False,
    ) -> Any:
        """Predict the velocity.

        Parameters
        ----------
        x : Tensor, shape (B, C, T, H, W)
            Noisy latent X_t.
        t : Tensor, shape (B,) or scalar
            Flow time in [0, 1] (0 = noise, 1 = data).
        text : TextContext
            Raw encoder outputs; projected here.
        cond_latent : Tensor, shape (B, extra_in_channels, T, H, W), optional
            Channel-wise conditioning (upsampler / editing), required iff
            ``extra_in_channels > 0``.
        context_tokens : Tensor, shape (B, L_extra, d), optional
            Tokens already at the model width appended to the projected text context
            (PT2V reference-image tokens, Edit task tokens).
        context_tokens_mask : Tensor, shape (B, L_extra), bool, optional
            Which appended tokens are real (default: all).
        temb_offset : Tensor, shape (B, d), optional
            Added to the time embedding before the adaLN heads (Edit's task embedding).
        return_dict : bool
            Return a diffusers ``Transformer2DModelOutput(sample=...)`` instead of the tensor.

        Returns
        -------
        Tensor, shape (B, out_channels, T, H, W)
        """
        cfg = self.cfg
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must be (B, {cfg.in_channels}, T, H, W), got {tuple(x.shape)}")
        B, _, T, H, W = x.shape
        pt, ph, pw = cfg.patch
        if T % pt or H % ph or W % pw:
            raise ValueError(
                f"latent (T, H, W) = {(T, H, W)} must be divisible by the patch {cfg.patch}"
            )
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
        if t.ndim == 0:
            t = t.expand(B)
        if t.shape != (B,):
            raise ValueError(f"t must be a scalar or shape ({B},), got {tuple(t.shape)}")
        if not bool(((t >= 0) & (t <= 1)).all()):  # also refuses NaN
            raise ValueError("t must lie in [0, 1] (0 = noise, 1 = data), without NaN")
        if text.batch_size != B:
            raise ValueError(f"text has batch size {text.batch_size}, x has {B}")
        if cfg.extra_in_channels:
            if cond_latent is None or cond_latent.shape != (B, cfg.extra_in_channels, T, H, W):
                raise ValueError(
                    f"cond_latent must be (B, {cfg.extra_in_channels}, T, H, W) "
                    "for a model with extra_in_channels"
                )
            x = torch.cat([x, cond_latent.to(x.dtype)], 1)
        elif cond_latent is not None:
            raise ValueError("cond_latent given but the model has extra_in_channels = 0")

        h = self.patchify(x)  # (B, d, T', H', W')
        grid = (h.shape[2], h.shape[3], h.shape[4])
        h = h.flatten(2).transpose(1, 2)
        pos = self.positions(grid)
        wdtype = self.patchify.weight.dtype
        temb = self.time_mlp(timestep_features(t, cfg.time_freq_dim).to(wdtype))
        if temb_offset is not None:
            if temb_offset.shape != temb.shape:
                raise ValueError(
                    f"temb_offset must have shape {tuple(temb.shape)}, got {tuple(temb_offset.shape)}"
                )
            temb = temb + temb_offset.to(temb.dtype)
        if cfg.adaln == "shared":
            block_t = self.adaln_shared(F.silu(temb)).unflatten(-1, (6, -1))
        else:
            block_t = temb
        context, context_mask = self.encode_text(text)
        if (
            context_tokens is not None
            and context_tokens_mask is not None
            and not bool(context_tokens_mask.any())
        ):  # all masked out: the text context alone
            context_tokens = None
        if context_tokens is not None:
            if context_tokens.ndim != 3 or context_tokens.shape[0] != B:
                raise ValueError(
                    f"context_tokens must be (B={B}, L, {cfg.dim}), got {tuple(context_tokens.shape)}"
                )
            if context_tokens.shape[2] != cfg.dim:
                raise ValueError(
                    f"context_tokens must have width {cfg.dim}, got {context_tokens.shape[2]}"
                )
            extra_mask = (
                torch.ones(context_tokens.shape[:2], dtype=torch.bool, device=x.device)
                if context_tokens_mask is None
                else context_tokens_mask.to(x.device).bool()
            )
            context = torch.cat([context, context_tokens.to(context.dtype)], 1)
            context_mask = torch.cat([context_mask, extra_mask], 1)
        if self.cp_group is not None:  # context parallel: this rank keeps 1 / cp of the tokens
            from papershelf.moviegen.train.context import shard_sequence

            h = shard_sequence(h, 1, self.cp_group)
            pos = shard_sequence(pos, 1, self.cp_group)
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                h = checkpoint(block, h, pos, block_t, context, context_mask, use_reentrant=False)
            else:
                h = block(h, pos, block_t, context, context_mask)
        shift, scale = (self.final_modulation[None] + temb[:, None]).unbind(1)
        h = self.final_norm(h) * (1 + scale[:, None]) + shift[:, None]
        out = self.proj_out(h)  # (B, N, C * pt * ph * pw)
        if self.cp_group is not None:
            from papershelf.moviegen.train.context import gather_sequence

            out = gather_sequence(out, 1, self.cp_group)
        Tp, Hp, Wp = grid
        out = out.view(B, Tp, Hp, Wp, -1, pt, ph, pw)
        out = out.permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(B, -1, Tp * pt, Hp * ph, Wp * pw)
        return Transformer2DModelOutput(sample=out) if return_dict else out
