"""Anchor-frame selection (Fairy, Sec. 3.2: K anchors "with equal intervals")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from papershelf.core.validation import check_int

__all__ = ["ANCHOR_STRATEGIES", "check_anchor_indices", "select_anchors"]

ANCHOR_STRATEGIES = ("uniform", "first", "middle")


def select_anchors(num_frames: int, num_anchors: int = 3, strategy: str = "uniform") -> list[int]:
    """Indices of the anchor frames of a video.

    Parameters
    ----------
    num_frames : int
        Number of frames N of the video, ``N >= 1``.
    num_anchors : int, default 3
        Number of anchors K, ``1 <= K <= N``. The paper's default is 3.
    strategy : {"uniform", "first", "middle"}
        ``"uniform"`` takes ``round(linspace(0, N - 1, K))`` (our reading of the paper's
        "equal intervals"; it includes the first and the last frame); ``"first"`` takes
        frames ``0 .. K-1``; ``"middle"`` takes K consecutive frames around the centre.

    Returns
    -------
    list of int, length K
        Sorted, distinct frame indices.

    References
    ----------
    Wu et al., "Fairy: Fast Parallelized Instruction-Guided Video-to-Video Synthesis",
    CVPR 2024, Sec. 3.2.

    Examples
    --------
    >>> select_anchors(120, 3)
    [0, 60, 119]
    """
    num_frames = check_int("num_frames", num_frames, low=1)
    num_anchors = check_int("num_anchors", num_anchors, low=1)
    if num_anchors > num_frames:
        raise ValueError(
            f"num_anchors ({num_anchors}) must not exceed the number of frames ({num_frames})"
        )
    if strategy == "uniform":
        # Half-way points round to even in numpy; + 1e-9 makes them round up, so that the
        # choice does not depend on floating-point parity (K=3, N=4 gives [0, 2, 3]).
        idx = np.floor(np.linspace(0, num_frames - 1, num_anchors) + 0.5 + 1e-9).astype(int)
        out = sorted({int(i) for i in idx})
        # With K close to N, rounding can merge two indices; fill from the unused frames.
        free = [i for i in range(num_frames) if i not in out]
        while len(out) < num_anchors:
            out.append(free.pop(0))
        return sorted(out)
    if strategy == "first":
        return list(range(num_anchors))
    if strategy == "middle":
        start = (num_frames - num_anchors) // 2
        return list(range(start, start + num_anchors))
    raise ValueError(f"anchor_strategy must be one of {ANCHOR_STRATEGIES}, got {strategy!r}")


def check_anchor_indices(anchor_indices: Sequence[int], num_frames: int) -> list[int]:
    """Validate user-given anchor indices: non-empty, in range, distinct. Returns them sorted."""
    if isinstance(anchor_indices, str | bytes) or not hasattr(anchor_indices, "__iter__"):
        raise TypeError(
            f"anchor_indices must be a list of ints, got {type(anchor_indices).__name__}"
        )
    idx = [check_int("anchor_indices", i) for i in anchor_indices]
    if len(idx) < 1:
        raise ValueError("anchor_indices must name at least one frame")
    bad = [i for i in idx if not 0 <= i < num_frames]
    if bad:
        raise ValueError(f"anchor_indices {bad} out of range for a video of {num_frames} frames")
    if len(set(idx)) != len(idx):
        raise ValueError(f"anchor_indices must be distinct, got {idx}")
    return sorted(idx)
