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
    latent_video_dit,
    latent_video_dit_param_count,
    text_mask_or_all,
    token_projection,
    token_projection_param_count,
)
from papershelf.moviegen.cast._flow import flow_pair, integrate
from papershelf.moviegen.schedules import linear_t

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
    """Flow-matching video editor.

    References
    ----------
    Polyak et al., "Movie Gen: A Cast of Media Foundation Models", arXiv:2410.13720, Sec. 5.
    """

    def __init__(self, cfg: EditConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.video = latent_video_dit(cfg, extra_channels=cfg.latent_channels)
        self.text_proj = token_projection(cfg.text_dim, cfg.dim)
        self.task = EditConditioning(cfg.n_tasks, cfg.dim, cfg.n_task_tokens)

    def context(
        self, text: Tensor, task: Tensor, text_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """[instruction tokens, task tokens], its mask, and the time offset."""
        tok, temb = self.task(task)
        ctx = torch.cat([self.text_proj(text), tok], 1)
        tok_mask = torch.ones(tok.shape[:2], dtype=torch.bool, device=text.device)
        return ctx, torch.cat([text_mask_or_all(text, text_mask), tok_mask], 1), temb

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        source: Tensor,
        text: Tensor,
        task: Tensor,
        text_mask: Tensor | None = None,
    ) -> Tensor:
        """Velocity of the edited latent.

        Parameters
        ----------
        x : Tensor, shape (B, C, T, H, W)
            Noisy output latent.
        t : Tensor, shape (B,)
        source : Tensor, shape (B, C, T, H, W)
            Latent of the input video (zeros for T2V).
        text : Tensor, shape (B, L, text_dim)
            Instruction (or prompt) states.
        task : Tensor, shape (B,), long
        """
        ctx, mask, temb = self.context(text, task, text_mask)
        return self.video(x, t, source, ctx, mask, temb)

    def loss(
        self,
        target: Tensor,
        source: Tensor,
        text: Tensor,
        task: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Flow-matching loss for producing ``target`` from ``source`` (latents)."""
        xt, t, v = flow_pair(target, generator)
        return F.mse_loss(self(xt, t, source, text, task), v)

    @torch.no_grad()
    def edit(
        self,
        source: Tensor,
        text: Tensor,
        task: Tensor,
        steps: int = 10,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Euler sampling of the edited latent, shape of ``source``."""
        x0 = torch.randn(source.shape, generator=generator).to(source)
        return integrate(lambda x, t: self(x, t, source, text, task), x0, linear_t(steps))


def edit_param_count(cfg: EditConfig) -> int:
    """Closed-form parameter count of :class:`EditModel`."""
    d = cfg.dim
    task = cfg.n_tasks * d + d * cfg.n_task_tokens * d + cfg.n_task_tokens * d + d * d + d
    return (
        latent_video_dit_param_count(cfg, extra_channels=cfg.latent_channels)
        + token_projection_param_count(cfg.text_dim, d)
        + task
    )
