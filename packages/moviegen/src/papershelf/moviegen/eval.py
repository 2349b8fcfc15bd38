"""Metrics: PSNR, the synthetic colour / motion scores, and the paper's net win rate."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from papershelf.moviegen.data import COLOURS, DIRECTIONS

__all__ = ["colour_accuracy", "motion_consistency", "net_win_rate", "psnr", "track_object"]


def psnr(x: Tensor, y: Tensor, peak_to_peak: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per sample; x, y shape (B, ...), range [-1, 1] by default."""
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(peak_to_peak**2 / mse.clamp_min(1e-12))


def track_object(video: Tensor) -> tuple[Tensor, Tensor]:
    """Foreground (max channel > 0) centroid per frame and mean foreground colour.

    Parameters
    ----------
    video : Tensor, shape (B, 3, T, H, W)

    Returns
    -------
    centroids : Tensor, shape (B, T, 2)
        (x, y) in pixels; NaN for a frame without foreground.
    colour : Tensor, shape (B, 3)
        Mean colour over all foreground pixels (zeros if none).
    """
    fg = video.amax(1) > 0  # (B, T, H, W)
    H, W = fg.shape[-2:]
    yy, xx = torch.meshgrid(
        torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij"
    )
    n = fg.float().sum((2, 3))
    cx = (fg * xx).sum((2, 3)) / n
    cy = (fg * yy).sum((2, 3)) / n
    cent = torch.stack([cx, cy], -1)
    cent[n == 0] = float("nan")
    mask = fg[:, None].float()
    colour = (video.float() * mask).sum((2, 3, 4)) / mask.sum((2, 3, 4)).clamp_min(1)
    return cent, colour


def colour_accuracy(video: Tensor, colours: Sequence[str]) -> float:
    """Fraction of clips whose mean foreground colour is nearest the prompted palette colour."""
    _, col = track_object(video)
    names = list(COLOURS)
    pal = torch.tensor([COLOURS[c] for c in names])
    pred = torch.cdist(col, pal).argmin(1)
    return float(sum(names[p] == c for p, c in zip(pred.tolist(), colours)) / len(colours))


def motion_consistency(
    video: Tensor, directions: Sequence[str], fps_step: float = 1.0
) -> dict[str, float]:
    """Direction accuracy and constant-velocity fraction of the tracked object.

    A least-squares line is fitted to the per-frame centroids. The direction is correct
    when the speed projected on the prompted direction exceeds 1 px / frame and the
    orthogonal speed is below 0.75 px / frame; a clip moves at constant velocity when
    the residual std is below 1 px. Real MovingShapes clips score 1.0 on both.

    Returns
    -------
    dict with ``direction_accuracy``, ``constant_velocity`` and ``chance`` (0.25).
    """
    cent, _ = track_object(video)
    B, T, _ = cent.shape
    ok_dir, ok_lin = 0, 0
    tt = torch.arange(T, dtype=torch.float32) * fps_step
    for b in range(B):
        c = cent[b]
        valid = ~torch.isnan(c).any(1)
        if valid.sum() < 2:
            continue
        t, p = tt[valid], c[valid]
        tc = t - t.mean()
        vel = (tc[:, None] * (p - p.mean(0))).sum(0) / tc.pow(2).sum()
        resid = p - (p.mean(0) + tc[:, None] * vel)
        u = torch.tensor(DIRECTIONS[directions[b]], dtype=torch.float32)
        along = float(vel @ u)
        ortho = float((vel - along * u).norm())
        ok_dir += int(along > 1.0 and ortho < 0.75)
        ok_lin += int(float(resid.norm(dim=1).pow(2).mean().sqrt()) < 1.0)
    return {"direction_accuracy": ok_dir / B, "constant_velocity": ok_lin / B, "chance": 0.25}


def net_win_rate(wins: int, losses: int, ties: int = 0) -> float:
    """Net win rate in percent, (wins - losses) / (wins + losses + ties) * 100 (paper Table 6)."""
    total = wins + losses + ties
    if min(wins, losses, ties) < 0 or total == 0:
        raise ValueError("wins, losses, ties must be >= 0 and not all zero")
    return 100.0 * (wins - losses) / total
