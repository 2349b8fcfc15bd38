r"""Video consistency metrics (Fairy, Sec. 4): Tem-Con, Frame-Acc, warp error, inter-frame variance.

Embedding functions are injected (for the paper's metrics, a CLIP image/text encoder); nothing
is downloaded here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["frame_acc", "inter_frame_variance", "tem_con", "warp_error"]

EmbedFn = Callable[[torch.Tensor], torch.Tensor]


def _check_video(frames: torch.Tensor, name: str = "frames") -> None:
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4:
        raise ValueError(f"{name} must be a tensor of shape (N, C, H, W)")


def tem_con(frames: torch.Tensor, embed_fn: EmbedFn | None = None) -> float:
    r"""Temporal consistency: mean cosine similarity of consecutive frames' embeddings.

    .. math:: \mathrm{TemCon} = \frac{1}{N-1}\sum_{t=1}^{N-1} \cos(e(x_t), e(x_{t+1}))

    Parameters
    ----------
    frames : Tensor, shape (N, C, H, W), N >= 2
    embed_fn : callable, optional
        Maps (N, C, H, W) to (N, D) embeddings; the paper uses CLIP image embeddings.
        Default: the flattened, per-frame mean-centred pixels.

    Returns
    -------
    float
        In [-1, 1]; 1 for a static video.

    References
    ----------
    Wu et al., "Fairy", CVPR 2024, Sec. 4.2 (Tem-Con).
    """
    _check_video(frames)
    if frames.shape[0] < 2:
        raise ValueError("tem_con needs at least 2 frames")
    if embed_fn is None:
        e = frames.flatten(1).double()
        e = e - e.mean(dim=1, keepdim=True)
    else:
        e = embed_fn(frames).double()
    return float(F.cosine_similarity(e[:-1], e[1:], dim=1).mean())


def frame_acc(
    frames: torch.Tensor,
    embed_image: EmbedFn,
    embed_text: Callable[[list[str]], torch.Tensor],
    source_prompt: str,
    target_prompt: str,
) -> float:
    """Frame accuracy: fraction of frames closer (cosine) to the target prompt than the source.

    Parameters
    ----------
    frames : Tensor, shape (N, C, H, W)
    embed_image : callable, (N, C, H, W) -> (N, D)
    embed_text : callable, list of str -> (len, D)
    source_prompt, target_prompt : str

    Returns
    -------
    float in [0, 1]
    """
    _check_video(frames)
    img = F.normalize(embed_image(frames).double(), dim=1)
    txt = F.normalize(embed_text([source_prompt, target_prompt]).double(), dim=1)
    sims = img @ txt.T
    return float((sims[:, 1] > sims[:, 0]).double().mean())


def warp_error(frames: torch.Tensor, flow: torch.Tensor) -> float:
    """Mean absolute error between each frame and its predecessor warped by the given flow.

    Parameters
    ----------
    frames : Tensor, shape (N, C, H, W)
    flow : Tensor, shape (N - 1, 2, H, W)
        Backward flow ``(dx, dy)`` in pixels: pixel ``p`` of frame t+1 comes from
        ``p + flow[t, :, p]`` in frame t.

    Returns
    -------
    float
        Averaged over pixels whose source lies inside the frame.
    """
    _check_video(frames)
    n, _, h, w = frames.shape
    if flow.shape != (n - 1, 2, h, w):
        raise ValueError(f"flow must have shape ({n - 1}, 2, {h}, {w}), got {tuple(flow.shape)}")
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=frames.dtype, device=frames.device),
        torch.arange(w, dtype=frames.dtype, device=frames.device),
        indexing="ij",
    )
    sx, sy = xs + flow[:, 0], ys + flow[:, 1]
    grid = torch.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], dim=-1)
    warped = F.grid_sample(
        frames[:-1], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    valid = ((sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)).unsqueeze(1)
    err = (warped - frames[1:]).abs() * valid
    denom = valid.sum() * frames.shape[1]
    if denom == 0:
        raise ValueError("the flow sends every pixel outside the frame")
    return float(err.sum() / denom)


def inter_frame_variance(x: torch.Tensor) -> float:
    """Variance across frames (dim 0), averaged over all other positions.

    Parameters
    ----------
    x : Tensor, shape (N, ...)
        Per-frame outputs (e.g. an attention layer's output for N frames).

    Returns
    -------
    float
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] < 2:
        raise ValueError("x must be a tensor of shape (N, ...) with N >= 2")
    return float(x.double().var(dim=0, unbiased=False).mean())
