"""Metrics: PSNR, the synthetic colour / motion scores, and the paper's net win rate."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from papershelf.core.validation import check_int, check_real
from papershelf.moviegen.data import ALL_SHAPES, COLOURS, DIRECTIONS, SHAPES, shape_mask

__all__ = [
    "colour_accuracy",
    "foreground_iou",
    "motion_consistency",
    "net_win_rate",
    "psnr",
    "shape_scores",
    "track_object",
]


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
    video: Tensor,
    directions: Sequence[str],
    fps_step: float = 1.0,
    min_speed: float = 1.0,
    max_ortho: float = 0.75,
) -> dict[str, float]:
    """Direction accuracy and constant-velocity fraction of the tracked object.

    A least-squares line is fitted to the per-frame centroids. The direction is correct
    when the speed projected on the prompted direction exceeds ``min_speed`` px / frame
    and the orthogonal speed is below ``max_ortho`` px / frame; a clip moves at constant
    velocity when the residual std is below 1 px. Real MovingShapes clips score 1.0 on
    both; a clip without foreground in two frames counts as wrong.

    Returns
    -------
    dict with ``direction_accuracy``, ``constant_velocity`` and ``chance`` (0.25).
    """
    min_speed = check_real("min_speed", min_speed, low=0)
    max_ortho = check_real("max_ortho", max_ortho, low=0)
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
        ok_dir += int(along > min_speed and ortho < max_ortho)
        ok_lin += int(float(resid.norm(dim=1).pow(2).mean().sqrt()) < 1.0)
    return {"direction_accuracy": ok_dir / B, "constant_velocity": ok_lin / B, "chance": 0.25}


def foreground_iou(x: Tensor, y: Tensor) -> Tensor:
    """Intersection over union of the foregrounds (max channel > 0) of two videos, per clip.

    Parameters
    ----------
    x, y : Tensor, shape (B, 3, T, H, W)

    Returns
    -------
    Tensor, shape (B,)
        1.0 where neither clip has any foreground.
    """
    if x.shape != y.shape or x.ndim != 5:
        raise ValueError(
            f"x and y must be (B, 3, T, H, W) of one shape, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    fx, fy = x.amax(1) > 0, y.amax(1) > 0
    inter = (fx & fy).flatten(1).sum(1).float()
    union = (fx | fy).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def shape_scores(
    video: Tensor,
    shapes: Sequence[str],
    object_size: int = 8,
    candidates: Sequence[str] | None = None,
) -> dict[str, float]:
    """Shape accuracy of clips against prompted shapes, by template IoU.

    In every frame with foreground (max channel > 0), the foreground mask is compared
    by IoU with each candidate shape (:func:`~papershelf.moviegen.data.shape_mask`) of
    the data's ``object_size`` centred at the foreground centroid; the IoUs are averaged
    over frames. A clip's shape is correct when the prompted template has the highest
    mean IoU *and* that IoU exceeds 0.5, so a blob, several objects or an empty clip
    count as wrong. Real MovingShapes clips score 1.0 (a test checks it).

    Parameters
    ----------
    video : Tensor, shape (B, 3, T, H, W)
    shapes : sequence of str
        Prompted shape per clip.
    object_size : int
        Side of the square / diameter of the disc in pixels.
    candidates : sequence of str, optional
        The shapes a clip may have (default :data:`~papershelf.moviegen.data.SHAPES`);
        must include every prompted shape. Chance is ``1 / len(candidates)``.

    Returns
    -------
    dict with ``shape_accuracy``, ``mean_iou`` (IoU with the prompted shape) and
    ``chance`` (1 / number of candidate shapes).
    """
    if video.ndim != 5:
        raise ValueError(f"video must be (B, 3, T, H, W), got {tuple(video.shape)}")
    if len(shapes) != video.shape[0]:
        raise ValueError(f"shapes must have {video.shape[0]} entries, got {len(shapes)}")
    cand = tuple(SHAPES if candidates is None else candidates)
    if len(cand) < 2 or len(set(cand)) != len(cand) or not set(cand) <= set(ALL_SHAPES):
        raise ValueError(f"candidates must be >= 2 distinct names among {ALL_SHAPES}, got {cand}")
    bad = sorted(set(shapes) - set(cand))
    if bad:
        raise ValueError(f"shapes must be among {cand}, got {bad}")
    object_size = check_int("object_size", object_size, low=1)
    B, _, T, H, W = video.shape
    fg = (video.amax(1) > 0).flatten(0, 1)  # (B*T, H, W)
    cent, _ = track_object(video)
    cent = cent.flatten(0, 1)
    valid = ~torch.isnan(cent).any(1)
    cent = torch.nan_to_num(cent)
    ious = {}
    for name in cand:
        m = shape_mask(name, cent[:, 0], cent[:, 1], object_size, H, W)
        inter = (fg & m).flatten(1).sum(1).float()
        union = (fg | m).flatten(1).sum(1).float().clamp_min(1)
        iou = torch.where(valid, inter / union, torch.zeros_like(union)).view(B, T)
        ious[name] = iou.sum(1) / valid.view(B, T).sum(1).clamp_min(1)
    correct, mean_iou = 0, 0.0
    for b, s in enumerate(shapes):
        other = max(float(ious[o][b]) for o in ious if o != s)
        own = float(ious[s][b])
        correct += int(own > other and own > 0.5)
        mean_iou += own / B
    return {"shape_accuracy": correct / B, "mean_iou": mean_iou, "chance": 1.0 / len(cand)}


def net_win_rate(wins: int, losses: int, ties: int = 0) -> float:
    """Net win rate in percent, (wins - losses) / (wins + losses + ties) * 100 (paper Table 6)."""
    total = wins + losses + ties
    if min(wins, losses, ties) < 0 or total == 0:
        raise ValueError("wins, losses, ties must be >= 0 and not all zero")
    return 100.0 * (wins - losses) / total
