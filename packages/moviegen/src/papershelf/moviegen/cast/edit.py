"""Movie Gen Edit: instruction-guided video editing (Polyak et al. 2024, Sec. 5).

Conditioning: the input video's latent is concatenated channel-wise with the noisy
output latent (zero-initialised input weights, so the model starts as the T2V model); a
learned task embedding is mapped by one Linear to 4 extra context tokens joined to the
instruction tokens, and by a second Linear to a vector added to the time embedding.

Recipe without supervised video-edit data:

1. single-frame editing (image editing as a one-frame video) multitasked with T2V;
2. synthetic multi-frame editing: an image-edit pair animated with the same random
   affine motion (here translations), plus other synthetic tasks;
3. backtranslation: the stage-2 model edits real clips x with an instruction, and the
   model is trained to map its output back to x with the inverse instruction, so the
   targets are always real videos.
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
    video_transformer_config,
)
from papershelf.moviegen.cast._flow import flow_pair, integrate
from papershelf.moviegen.config import param_count
from papershelf.moviegen.schedules import linear_t
from papershelf.moviegen.text import TextContext
from papershelf.moviegen.transformer import MovieGenTransformer

__all__ = [
    "EDIT_PRESETS",
    "EDIT_STAGES",
    "EditConditioning",
    "EditConfig",
    "EditModel",
    "edit_param_count",
]

#: Training stages of Movie Gen Edit.
EDIT_STAGES: tuple[str, ...] = (
    "single-frame editing + T2V",
    "animated frame pairs",
    "backtranslation",
)


@dataclass(frozen=True)
class EditConfig:
    """Shape of :class:`EditModel`.

    Attributes
    ----------
    latent_channels, patch, max_pos
        Video latent and its tokenization.
    text_dim : int
        Instruction-encoder width.
    n_tasks : int
        Number of task ids (task 0 is plain T2V in the tiny demo).
    n_task_tokens : int
        Context tokens made from the task embedding (the paper's 4).
    dim, depth, heads, ffn_dim : int
    """

    latent_channels: int = 12
    patch: int = 1
    max_pos: tuple[int, int, int] = (4, 4, 4)
    text_dim: int = 13
    n_tasks: int = 2
    n_task_tokens: int = 4
    dim: int = 64
    depth: int = 2
    heads: int = 4
    ffn_dim: int = 172


#: ``30b``: Movie Gen Video's 30B transformer with the Edit conditioning (text width of
#: one UL2-sized encoder; the paper's task count is not stated, 8 assumed).
EDIT_PRESETS: dict[str, EditConfig] = {
    "tiny": EditConfig(),
    "30b": EditConfig(
        latent_channels=16,
        patch=2,
        max_pos=(32, 48, 48),
        text_dim=4096,
        n_tasks=8,
        dim=6144,
        depth=48,
        heads=48,
        ffn_dim=16384,
    ),
}


class EditConditioning(nn.Module):
    """Task embedding -> ``n_task_tokens`` context tokens and a time-embedding offset.

    Parameters
    ----------
    n_tasks, dim, n_task_tokens : int

    Examples
    --------
    >>> cond = EditConditioning(3, 16)
    >>> tokens, temb = cond(torch.tensor([0, 2]))
    >>> tuple(tokens.shape), tuple(temb.shape)
    ((2, 4, 16), (2, 16))
    """

    def __init__(self, n_tasks: int, dim: int, n_task_tokens: int = 4) -> None:
        super().__init__()
        if n_tasks < 1 or n_task_tokens < 1:
            raise ValueError("n_tasks and n_task_tokens must be >= 1")
        self.n_tasks, self.n_task_tokens = n_tasks, n_task_tokens
        self.task = nn.Embedding(n_tasks, dim)
        self.to_tokens = nn.Linear(dim, n_task_tokens * dim)
        self.to_time = nn.Linear(dim, dim)
        nn.init.zeros_(self.to_time.weight)  # the time embedding starts as T2V's
        nn.init.zeros_(self.to_time.bias)

    def forward(self, task: Tensor) -> tuple[Tensor, Tensor]:
        """task (B,) long -> tokens (B, n_task_tokens, dim), time offset (B, dim)."""
        if task.dtype not in (torch.int32, torch.int64) or task.ndim != 1:
            raise TypeError(
                f"task must be a 1-D integer tensor, got {task.dtype} {tuple(task.shape)}"
            )
        if bool(((task < 0) | (task >= self.n_tasks)).any()):
            raise ValueError(f"task ids must be in [0, {self.n_tasks})")
        e = self.task(task)
        return self.to_tokens(e).unflatten(-1, (self.n_task_tokens, -1)), self.to_time(e)


class EditModel(nn.Module):
    """Flow-matching video editor: Movie Gen Video's transformer plus the Edit conditioning.

    ``transformer`` is a :class:`~papershelf.moviegen.MovieGenTransformer` with
    ``extra_in_channels = latent_channels`` (the input video, zero-initialised), the
    task tokens are appended to its text context and the task's time vector is added
    to its time embedding (zero-initialised). :meth:`from_t2v` starts it from a T2V
    checkpoint with every T2V key loaded.

    Parameters
    ----------
    cfg : EditConfig
    transformer : MovieGenTransformer, optional
        An already built (e.g. T2V-initialised) transformer; default: a fresh one.

    References
    ----------
    Polyak et al., "Movie Gen: A Cast of Media Foundation Models", arXiv:2410.13720, Sec. 5.
    """

    def __init__(self, cfg: EditConfig, transformer: MovieGenTransformer | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        if transformer is None:
            tcfg = video_transformer_config(cfg, {"text": cfg.text_dim}, cfg.latent_channels)
            transformer = MovieGenTransformer(tcfg)
        if transformer.cfg.extra_in_channels != transformer.cfg.in_channels:
            raise ValueError("the Edit transformer needs extra_in_channels == in_channels")
        self.transformer = transformer
        self.task = EditConditioning(cfg.n_tasks, transformer.cfg.dim, cfg.n_task_tokens)

    @classmethod
    def from_t2v(
        cls, t2v: MovieGenTransformer, n_tasks: int = 2, n_task_tokens: int = 4
    ) -> EditModel:
        """An editor initialised from a T2V transformer (every T2V key loaded).

        At initialisation the input-video channels and the task's time vector weigh
        zero; the task tokens join the cross-attention context (as the paper appends
        them), so the editor equals T2V exactly when they are masked out.
        """
        from dataclasses import replace

        c = t2v.cfg
        if c.patch[0] != 1 or c.patch[1] != c.patch[2]:
            raise ValueError(f"from_t2v needs a 1 x p x p patch, got {c.patch}")
        ext = MovieGenTransformer(
            replace(c, extra_in_channels=c.in_channels, text_dims=dict(c.text_dims))
        )
        load_t2v_weights(ext, t2v)
        cfg = EditConfig(
            latent_channels=c.in_channels,
            patch=c.patch[1],
            max_pos=c.max_pos,
            text_dim=sum(c.text_dims.values()),
            n_tasks=n_tasks,
            n_task_tokens=n_task_tokens,
            dim=c.dim,
            depth=c.num_layers,
            heads=c.num_heads,
            ffn_dim=c.ffn_dim,
        )
        return cls(cfg, ext)

    def _text(self, text: Tensor | TextContext, text_mask: Tensor | None) -> TextContext:
        if isinstance(text, TextContext):
            return text
        names = list(self.transformer.cfg.text_dims)
        if len(names) != 1:
            raise TypeError(f"text must be a TextContext for encoders {names}")
        return TextContext({names[0]: text}, {names[0]: text_mask_or_all(text, text_mask)})

    def context(
        self, text: Tensor | TextContext, task: Tensor, text_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """[projected instruction tokens, task tokens], its mask, and the time offset."""
        tok, temb = self.task(task)
        ctx, mask = self.transformer.encode_text(self._text(text, text_mask))
        tok_mask = torch.ones(tok.shape[:2], dtype=torch.bool, device=tok.device)
        return torch.cat([ctx, tok], 1), torch.cat([mask, tok_mask], 1), temb

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        source: Tensor,
        text: Tensor | TextContext,
        task: Tensor,
        text_mask: Tensor | None = None,
        task_tokens: bool = True,
    ) -> Tensor:
        """Velocity of the edited latent.

        Parameters
        ----------
        x : Tensor, shape (B, C, T, H, W)
            Noisy output latent.
        t : Tensor, shape (B,)
        source : Tensor, shape (B, C, T, H, W)
            Latent of the input video (zeros for T2V).
        text : Tensor, shape (B, L, text_dim), or TextContext
            Instruction (or prompt) states.
        task : Tensor, shape (B,), long
        task_tokens : bool
            Append the task tokens (False masks them out).
        """
        tok, temb = self.task(task)
        mask = torch.full(tok.shape[:2], task_tokens, dtype=torch.bool, device=tok.device)
        return self.transformer(
            x,
            t,
            self._text(text, text_mask),
            source,
            context_tokens=tok,
            context_tokens_mask=mask,
            temb_offset=temb,
        )

    def loss(
        self,
        target: Tensor,
        source: Tensor,
        text: Tensor,
        task: Tensor,
        generator: torch.Generator | None = None,
        p_drop_text: float = 0.0,
    ) -> Tensor:
        """Flow-matching loss for producing ``target`` from ``source`` (latents).

        ``p_drop_text`` zeroes the instruction of the whole batch with that probability
        (the null instruction of classifier-free guidance).
        """
        xt, t, v = flow_pair(target, generator)
        if p_drop_text > 0 and float(torch.rand(1, generator=generator)) < p_drop_text:
            text = torch.zeros_like(text)
        return F.mse_loss(self(xt, t, source, text, task), v)

    @torch.no_grad()
    def edit(
        self,
        source: Tensor,
        text: Tensor,
        task: Tensor,
        steps: int = 10,
        generator: torch.Generator | None = None,
        guidance: float = 1.0,
    ) -> Tensor:
        """Euler sampling of the edited latent, shape of ``source``.

        ``guidance`` > 1 applies classifier-free guidance against the null (zero)
        instruction with the same input video and task.
        """
        w = check_guidance(guidance)
        if steps < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        x0 = torch.randn(source.shape, generator=generator).to(source)
        base = {"source": source, "task": task}
        vel = cfg_velocity(
            self, {**base, "text": text}, {**base, "text": torch.zeros_like(text)}, w
        )
        return integrate(vel, x0, linear_t(steps))


def edit_param_count(cfg: EditConfig) -> int:
    """Closed-form parameter count of :class:`EditModel`."""
    d = cfg.dim
    task = cfg.n_tasks * d + d * cfg.n_task_tokens * d + cfg.n_task_tokens * d + d * d + d
    tcfg = video_transformer_config(cfg, {"text": cfg.text_dim}, cfg.latent_channels)
    return param_count(tcfg) + task
