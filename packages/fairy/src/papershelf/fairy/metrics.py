r"""Video consistency metrics (Fairy, Sec. 4): Tem-Con, Frame-Acc, warp error, inter-frame variance.

Embedding functions are injected (for the paper's metrics, a CLIP image/text encoder); nothing
is downloaded here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "clip_frame_acc",
    "clip_image_embedder",
    "clip_preprocess",
    "clip_tem_con",
    "clip_text_embedder",
    "frame_acc",
    "inter_frame_variance",
    "tem_con",
    "warp_error",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

EmbedFn = Callable[[torch.Tensor], torch.Tensor]


def _check_video(frames: torch.Tensor, name: str = "frames") -> None:
    if not isinstance(frames, torch.Tensor):
        raise TypeError(
            f"{name} must be a tensor of shape (N, C, H, W), got {type(frames).__name__}"
        )
    if frames.ndim != 4 or frames.shape[0] < 1 or frames.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty tensor of shape (N, C, H, W), got {tuple(frames.shape)}"
        )
    if not frames.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {frames.dtype}")
    if not torch.isfinite(frames).all():
        raise ValueError(f"{name} contains NaN or inf")


def _check_embeddings(e: Any, n: int, what: str) -> torch.Tensor:
    if not isinstance(e, torch.Tensor) or e.ndim != 2 or e.shape[0] != n:
        got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
        raise ValueError(f"{what} must return a tensor of shape ({n}, D), got {got}")
    if not torch.isfinite(e).all():
        raise ValueError(f"{what} returned NaN or inf")
    return e.double()


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
        e = _check_embeddings(embed_fn(frames), frames.shape[0], "embed_fn")
    # cosine with a zero vector counts as 0 (not NaN)
    return float(F.cosine_similarity(e[:-1], e[1:], dim=1, eps=1e-12).mean())


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
    for name, p in (("source_prompt", source_prompt), ("target_prompt", target_prompt)):
        if not isinstance(p, str):
            raise TypeError(f"{name} must be a string, got {type(p).__name__}")
    img = F.normalize(_check_embeddings(embed_image(frames), frames.shape[0], "embed_image"), dim=1)
    txt = F.normalize(
        _check_embeddings(embed_text([source_prompt, target_prompt]), 2, "embed_text"), dim=1
    )
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
    if n < 2:
        raise ValueError("warp_error needs at least 2 frames")
    if not isinstance(flow, torch.Tensor):
        raise TypeError(f"flow must be a tensor, got {type(flow).__name__}")
    if not torch.isfinite(flow).all():
        raise ValueError("flow contains NaN or inf")
    flow = flow.to(frames.dtype)
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
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] < 2 or x.numel() == 0:
        raise ValueError(f"x must be a tensor of shape (N, ...) with N >= 2, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf")
    return float(x.double().var(dim=0, unbiased=False).mean())


def clip_preprocess(frames: torch.Tensor, image_size: int) -> torch.Tensor:
    """CLIP's image preprocessing on a tensor: resize the shorter side, centre-crop, normalise.

    The tensor counterpart of ``transformers.CLIPImageProcessor`` (bicubic resize of the
    shorter side to ``image_size``, centre crop ``image_size`` square, OpenAI mean/std); it
    runs on the frames' device without a round trip through PIL.

    Parameters
    ----------
    frames : Tensor, shape (N, 3, H, W), values in [0, 1]
    image_size : int

    Returns
    -------
    Tensor, shape (N, 3, image_size, image_size)
    """
    _check_video(frames)
    if frames.shape[1] != 3:
        raise ValueError(f"frames must have 3 channels, got {frames.shape[1]}")
    h, w = frames.shape[-2:]
    s = image_size / min(h, w)
    size = (max(image_size, round(h * s)), max(image_size, round(w * s)))
    x = F.interpolate(
        frames.float(), size=size, mode="bicubic", antialias=True, align_corners=False
    )
    top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
    x = x[..., top : top + image_size, left : left + image_size].clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def _features(out: Any) -> torch.Tensor:
    # transformers < 5 returns the projected features, >= 5 an output whose pooler_output is
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def clip_image_embedder(model: Any, *, batch_size: int = 32) -> EmbedFn:
    """An ``embed_fn`` for :func:`tem_con` / :func:`frame_acc` from a ``transformers.CLIPModel``.

    Parameters
    ----------
    model : transformers.CLIPModel
        Any CLIP (e.g. ``openai/clip-vit-large-patch14`` loaded by the user).
    batch_size : int, default 32
        Frames per forward pass.
    """
    size = int(model.config.vision_config.image_size)

    @torch.no_grad()
    def embed(frames: torch.Tensor) -> torch.Tensor:
        param = next(model.parameters())
        x = clip_preprocess(frames, size).to(param.device, param.dtype)
        return torch.cat(
            [
                _features(model.get_image_features(pixel_values=x[i : i + batch_size])).float()
                for i in range(0, x.shape[0], batch_size)
            ]
        )

    return embed


def clip_text_embedder(model: Any, tokenizer: Any) -> Callable[[list[str]], torch.Tensor]:
    """An ``embed_text`` for :func:`frame_acc` from a ``CLIPModel`` and its tokenizer."""

    @torch.no_grad()
    def embed(texts: list[str]) -> torch.Tensor:
        ids = tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt")
        device = next(model.parameters()).device
        out = model.get_text_features(
            input_ids=ids["input_ids"].to(device), attention_mask=ids["attention_mask"].to(device)
        )
        return _features(out).float()

    return embed


def clip_tem_con(frames: torch.Tensor, model: Any) -> float:
    """The paper's Tem-Con: mean cosine of consecutive frames' CLIP image embeddings.

    Parameters
    ----------
    frames : Tensor, shape (N, 3, H, W), values in [0, 1], N >= 2
    model : transformers.CLIPModel

    Returns
    -------
    float

    References
    ----------
    Wu et al., "Fairy", CVPR 2024, Sec. 4.2: Fairy 0.974, TokenFlow 0.973, Rerender 0.972.
    """
    return tem_con(frames, clip_image_embedder(model))


def clip_frame_acc(
    frames: torch.Tensor, model: Any, tokenizer: Any, source_prompt: str, target_prompt: str
) -> float:
    """The paper's Frame-Acc: fraction of frames CLIP finds closer to the target prompt.

    Parameters
    ----------
    frames : Tensor, shape (N, 3, H, W), values in [0, 1]
    model : transformers.CLIPModel
    tokenizer : transformers.CLIPTokenizer
    source_prompt, target_prompt : str
        Descriptions of the source video and of the edited video.

    Returns
    -------
    float in [0, 1]

    References
    ----------
    Wu et al., "Fairy", CVPR 2024, Sec. 4.2: Fairy 0.819, Rerender 0.775, TokenFlow 0.537.
    """
    return frame_acc(
        frames,
        clip_image_embedder(model),
        clip_text_embedder(model, tokenizer),
        source_prompt,
        target_prompt,
    )
