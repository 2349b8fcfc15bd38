"""Personalized Movie Gen Video, PT2V (Polyak et al. 2024, Sec. 4).

A reference image (a face in the paper) is encoded by a vision encoder (long-prompt
MetaCLIP's vision tower in the paper); its tokens are projected to the model width and
appended to the text tokens, so the video transformer's cross-attention sees
[text tokens, reference tokens]. Training runs in stages:

1. short clips (8 latent frames in the paper), vision encoder frozen, the reference taken
   from the clip itself (paired);
2. full-length clips, encoder still frozen;
3. cross-paired data (the reference comes from another clip of the same identity), with
   the vision encoder unfrozen - this reduces copy-pasting the reference.

The tiny demo's identity is a square's colour shown only in the reference image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from papershelf.moviegen.cast._dit import (
    cfg_velocity,
    check_guidance,
    load_t2v_weights,
    text_mask_or_all,
    token_projection,
    token_projection_param_count,
    video_transformer_config,
)
from papershelf.moviegen.cast._flow import flow_pair, integrate
from papershelf.moviegen.config import param_count
from papershelf.moviegen.schedules import linear_t
from papershelf.moviegen.text import TextContext
from papershelf.moviegen.transformer import MovieGenTransformer

__all__ = [
    "PT2V_PRESETS",
    "PT2V_STAGES",
    "PT2VConfig",
    "PT2VStage",
    "PersonalizedConditioner",
    "PersonalizedVideoModel",
    "TinyVisionEncoder",
    "apply_stage",
    "pt2v_param_count",
]


@dataclass(frozen=True)
class PT2VConfig:
    """Shape of :class:`PersonalizedVideoModel`.

    Attributes
    ----------
    latent_channels : int
    patch : int
    max_pos : tuple of int
    text_dim, vision_dim : int
        Widths of the text-encoder and vision-encoder states.
    image_size, vision_patch : int
        Reference image side and the tiny vision encoder's patch (tokens = (side/patch)^2).
    dim, depth, heads, ffn_dim : int
    """

    latent_channels: int = 12
    patch: int = 1
    max_pos: tuple[int, int, int] = (4, 4, 4)
    text_dim: int = 9
    vision_dim: int = 32
    image_size: int = 8
    vision_patch: int = 4
    dim: int = 64
    depth: int = 2
    heads: int = 4
    ffn_dim: int = 172


#: ``30b``: Movie Gen Video's 30B transformer with a MetaCLIP ViT-H-like vision width (1280)
#: and the three text encoders' widths summed into one projection here (a simplification).
PT2V_PRESETS: dict[str, PT2VConfig] = {
    "tiny": PT2VConfig(),
    "30b": PT2VConfig(
        latent_channels=16,
        patch=2,
        max_pos=(32, 48, 48),
        text_dim=4096,
        vision_dim=1280,
        image_size=224,
        vision_patch=14,
        dim=6144,
        depth=48,
        heads=48,
        ffn_dim=16384,
    ),
}


@dataclass(frozen=True)
class PT2VStage:
    """One PT2V training stage.

    Attributes
    ----------
    name : str
    num_frames : int or None
        Latent frames per training clip (None: full length).
    freeze_vision : bool
        Keep the vision encoder frozen.
    cross_paired : bool
        Take the reference from another clip of the same identity.
    """

    name: str
    num_frames: int | None
    freeze_vision: bool
    cross_paired: bool


#: The paper's three stages (the tiny demo shortens "8 latent frames" to 2).
PT2V_STAGES: tuple[PT2VStage, ...] = (
    PT2VStage("short clips, frozen vision encoder", 8, True, False),
    PT2VStage("full length, frozen vision encoder", None, True, False),
    PT2VStage("cross-paired, vision encoder unfrozen", None, False, True),
)


class TinyVisionEncoder(nn.Module):
    """A ViT-style stand-in for the vision tower: patch embedding + one attention layer.

    Maps an image (B, 3, S, S) to tokens (B, (S / patch)^2, width).
    """

    def __init__(self, image_size: int = 8, patch: int = 4, width: int = 32) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} must be divisible by patch {patch}")
        self.image_size = image_size
        self.embed = nn.Conv2d(3, width, patch, stride=patch)
        n = (image_size // patch) ** 2
        self.pos = nn.Parameter(torch.randn(n, width) * 0.02)
        self.layer = nn.TransformerEncoderLayer(
            width, 4, 2 * width, dropout=0.0, batch_first=True, norm_first=True
        )

    def forward(self, image: Tensor) -> Tensor:
        """image (B, 3, S, S) -> tokens (B, N, width)."""
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[-1] != self.image_size:
            raise ValueError(
                f"reference image must be (B, 3, {self.image_size}, "
                f"{self.image_size}), got {tuple(image.shape)}"
            )
        return self.layer(self.embed(image).flatten(2).transpose(1, 2) + self.pos)


class PersonalizedConditioner(nn.Module):
    """Reference-image tokens projected to the model width, to append to the text context.

    Parameters
    ----------
    vision_dim, dim : int
    vision_encoder : nn.Module
        Image (B, 3, S, S) -> tokens (B, N, vision_dim); e.g. :class:`TinyVisionEncoder`
        or a wrapper around ``transformers.CLIPVisionModel`` returning ``last_hidden_state``.
    image_size : int, optional
        Side of the reference image (default: ``vision_encoder.image_size``).
    """

    def __init__(
        self,
        vision_dim: int,
        dim: int,
        vision_encoder: nn.Module,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        self.vision = vision_encoder
        size = image_size if image_size is not None else getattr(vision_encoder, "image_size", None)
        if not isinstance(size, int) or size < 1:
            raise ValueError(
                "image_size must be given when the vision encoder has no int attribute image_size"
            )
        self.image_size = size
        self.image_proj = token_projection(vision_dim, dim)

    def forward(
        self, reference: Tensor | None, batch_size: int, device: torch.device | None = None
    ) -> tuple[Tensor, Tensor]:
        """Reference tokens and their mask.

        Parameters
        ----------
        reference : Tensor, shape (B, 3, S, S), optional
            Reference image; ``None`` gives masked-out tokens (no personalization).
        batch_size : int

        Returns
        -------
        tokens : Tensor, shape (B, N_img, dim)
        mask : Tensor, shape (B, N_img), bool
        """
        dev = device if reference is None else reference.device
        img = (
            reference
            if reference is not None
            else torch.zeros(batch_size, 3, self.image_size, self.image_size, device=dev)
        )
        tok = self.image_proj(self.vision(img))
        mask = torch.full(tok.shape[:2], reference is not None, dtype=torch.bool, device=tok.device)
        return tok, mask


class PersonalizedVideoModel(nn.Module):
    """PT2V: Movie Gen Video's transformer whose cross-attention also sees a reference image.

    ``transformer`` is a :class:`~papershelf.moviegen.MovieGenTransformer`; the reference
    tokens are appended to its projected text context. :meth:`from_t2v` starts it from
    a T2V checkpoint (every T2V key loaded): without a reference the model is T2V.

    Parameters
    ----------
    cfg : PT2VConfig
    vision_encoder : nn.Module, optional
    transformer : MovieGenTransformer, optional
        An already built (e.g. T2V-initialised) transformer; default: a fresh one.

    References
    ----------
    Polyak et al., "Movie Gen: A Cast of Media Foundation Models", arXiv:2410.13720, Sec. 4.
    """

    def __init__(
        self,
        cfg: PT2VConfig,
        vision_encoder: nn.Module | None = None,
        transformer: MovieGenTransformer | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        enc = vision_encoder or TinyVisionEncoder(cfg.image_size, cfg.vision_patch, cfg.vision_dim)
        if transformer is None:
            transformer = MovieGenTransformer(video_transformer_config(cfg, {"text": cfg.text_dim}))
        self.transformer = transformer
        self.conditioner = PersonalizedConditioner(
            cfg.vision_dim, transformer.cfg.dim, enc, cfg.image_size
        )

    @classmethod
    def from_t2v(
        cls, t2v: MovieGenTransformer, vision_encoder: nn.Module | None = None, **fields: int
    ) -> PersonalizedVideoModel:
        """A PT2V model initialised from a T2V transformer (every T2V key loaded).

        ``fields`` set the vision side of :class:`PT2VConfig` (``vision_dim``,
        ``image_size``, ``vision_patch``).
        """
        from dataclasses import replace

        c = t2v.cfg
        if c.patch[0] != 1 or c.patch[1] != c.patch[2]:
            raise ValueError(f"from_t2v needs a 1 x p x p patch, got {c.patch}")
        ext = MovieGenTransformer(replace(c, text_dims=dict(c.text_dims)))
        load_t2v_weights(ext, t2v)
        cfg = PT2VConfig(
            latent_channels=c.in_channels,
            patch=c.patch[1],
            max_pos=c.max_pos,
            text_dim=sum(c.text_dims.values()),
            dim=c.dim,
            depth=c.num_layers,
            heads=c.num_heads,
            ffn_dim=c.ffn_dim,
            **fields,
        )
        return cls(cfg, vision_encoder, ext)

    def _text(self, text: Tensor | TextContext, text_mask: Tensor | None) -> TextContext:
        if isinstance(text, TextContext):
            return text
        names = list(self.transformer.cfg.text_dims)
        if len(names) != 1:
            raise TypeError(f"text must be a TextContext for encoders {names}")
        return TextContext({names[0]: text}, {names[0]: text_mask_or_all(text, text_mask)})

    def context(
        self,
        text: Tensor | TextContext,
        reference: Tensor | None = None,
        text_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The cross-attention context [projected text, reference tokens] and its mask."""
        tc = self._text(text, text_mask)
        ctx, mask = self.transformer.encode_text(tc)
        tok, tmask = self.conditioner(reference, tc.batch_size, ctx.device)
        return torch.cat([ctx, tok], 1), torch.cat([mask, tmask], 1)

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        text: Tensor | TextContext,
        reference: Tensor | None = None,
        text_mask: Tensor | None = None,
    ) -> Tensor:
        """x (B, C, T, H, W), t (B,), text (B, L, text_dim), reference (B, 3, S, S) -> velocity."""
        tc = self._text(text, text_mask)
        tok, tmask = self.conditioner(reference, tc.batch_size, x.device)
        return self.transformer(x, t, tc, context_tokens=tok, context_tokens_mask=tmask)

    def loss(
        self,
        x1: Tensor,
        text: Tensor,
        reference: Tensor,
        generator: torch.Generator | None = None,
        p_drop_reference: float = 0.1,
    ) -> Tensor:
        """Flow-matching loss; the reference is dropped (masked) with ``p_drop_reference``."""
        xt, t, v = flow_pair(x1, generator)
        if p_drop_reference > 0 and float(torch.rand(1, generator=generator)) < p_drop_reference:
            return F.mse_loss(self(xt, t, text, None), v)
        return F.mse_loss(self(xt, t, text, reference), v)

    @torch.no_grad()
    def sample(
        self,
        shape: tuple[int, ...],
        text: Tensor,
        reference: Tensor | None = None,
        steps: int = 10,
        generator: torch.Generator | None = None,
        guidance: float = 1.0,
    ) -> Tensor:
        """Euler sampling of a latent of ``shape`` (B, C, T, H, W).

        ``guidance`` > 1 applies classifier-free guidance against the same text without
        the reference (the dropped-reference branch the loss trains).
        """
        w = check_guidance(guidance)
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        x0 = torch.randn(shape, generator=generator).to(text)
        vel = cfg_velocity(
            self, {"text": text, "reference": reference}, {"text": text, "reference": None}, w
        )
        return integrate(vel, x0, linear_t(steps))


def apply_stage(model: PersonalizedVideoModel, stage: PT2VStage) -> list[nn.Parameter]:
    """Freeze or unfreeze the vision encoder for ``stage``; return the trainable parameters."""
    for p in model.conditioner.vision.parameters():
        p.requires_grad_(not stage.freeze_vision)
    return [p for p in model.parameters() if p.requires_grad]


def pt2v_param_count(cfg: PT2VConfig) -> int:
    """Parameters of the video transformer and the projections (vision encoder excluded)."""
    tcfg = video_transformer_config(cfg, {"text": cfg.text_dim})
    return param_count(tcfg) + token_projection_param_count(cfg.vision_dim, cfg.dim)
