"""Synthetic text-to-video data and aspect-ratio x duration bucketing.

:class:`MovingShapes` is the offline stand-in for video data: one square or disc of
one of four colours moving 2 px / frame in one of four directions, with the prompt
naming shape, colour and direction. :class:`BucketSampler` groups clips of one
(aspect ratio, duration) bucket per batch, as Movie Gen's training does (5 x 5 buckets).

For real video at scale use :mod:`papershelf.moviegen.data_video`
(:class:`VideoClipDataset`: frames decoded on demand, fps sampling with the fps in the
prompt, aspect-preserving crops into buckets; :class:`DistributedBucketSampler`: disjoint
per rank, resumable) and :mod:`papershelf.moviegen.cache` (latents and text embeddings
cached to safetensors shards). Both are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from papershelf.core.validation import check_int
from papershelf.moviegen.data_video import DistributedBucketSampler, VideoClipDataset

__all__ = [
    "COLOURS",
    "DIRECTIONS",
    "ALL_SHAPES",
    "SHAPES",
    "BucketSampler",
    "DistributedBucketSampler",
    "MovingShapes",
    "VideoClipDataset",
    "VideoFolder",
    "shape_mask",
]

#: Palette in [-1, 1] RGB.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, -1.0, -1.0),
    "green": (-1.0, 1.0, -1.0),
    "blue": (-1.0, -1.0, 1.0),
    "yellow": (1.0, 1.0, -1.0),
}
#: Unit displacement (dx, dy) per direction; y grows downwards.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
SHAPES = ("square", "disc")
#: Every shape :meth:`MovingShapes.render` draws (``SHAPES`` is the default pair).
ALL_SHAPES = ("square", "disc", "cross", "bar")


def shape_mask(shape: str, cx: Tensor, cy: Tensor, size: int, height: int, width: int) -> Tensor:
    """Boolean masks (N, height, width) of ``shape`` centred at pixel coordinates (cx, cy).

    ``square``: side ``size``; ``disc``: diameter ``size``; ``cross``: a plus sign whose
    two bars are ``size`` long and ``max(2, size // 3)`` thick; ``bar``: one horizontal
    bar of the cross. A pixel centre within
    half a pixel of a side counts, so an integer-aligned object gets exactly ``size``
    pixels across and a centre that falls between pixels still gets a fair template.

    Parameters
    ----------
    shape : str
        One of :data:`ALL_SHAPES`.
    cx, cy : Tensor, shape (N,)
        Centres in pixels (x to the right, y downwards).
    size : int
    height, width : int
    """
    if shape not in ALL_SHAPES:
        raise ValueError(f"shape must be one of {ALL_SHAPES}, got {shape!r}")
    size = check_int("size", size, low=1)
    height, width = check_int("height", height, low=1), check_int("width", width, low=1)
    if (
        not (isinstance(cx, Tensor) and isinstance(cy, Tensor))
        or cx.ndim != 1
        or cx.shape != cy.shape
    ):
        raise ValueError("cx and cy must be 1-D tensors of one length (the centres)")
    yy, xx = torch.meshgrid(
        torch.arange(height, dtype=torch.float32),
        torch.arange(width, dtype=torch.float32),
        indexing="ij",
    )
    dx = (xx[None] - cx.float()[:, None, None]).abs()
    dy = (yy[None] - cy.float()[:, None, None]).abs()
    half = size / 2
    if shape == "square":
        return (dx < half) & (dy < half)
    if shape == "disc":
        return dx**2 + dy**2 <= half**2
    arm = max(2, size // 3) / 2
    if shape == "bar":
        return (dx < half) & (dy < arm)
    return ((dx < half) & (dy < arm)) | ((dx < arm) & (dy < half))


class MovingShapes:
    """On-the-fly synthetic clips with 3-word prompts "<colour> <shape> <direction>".

    Parameters
    ----------
    num_frames : int
        Frames per clip (8).
    size : int
        Frame height = width in pixels (32).
    speed : int
        Pixels per frame (2).
    object_size : int
        Side of the square / diameter of the disc (8, area ~ 64 px; disc ~ 50 px).
    shapes : sequence of str
        Shapes drawn, among :data:`ALL_SHAPES` (``("square", "disc")``). The demo of
        ``papershelf reproduce moviegen`` uses ``("square", "cross")`` at 16 x 16, where
        a 6-pixel disc differs from a square by four corner pixels.
    jitter : int, optional
        ``None`` (default): the start position is uniform over every position that keeps
        the object in the frame. An int ``j``: the trajectory is centred in the frame and
        its start shifted by up to ``j`` pixels along each axis (uniform, clipped to the
        frame), a smaller task (``jitter=0``: one start per direction).

    Examples
    --------
    >>> data = MovingShapes()
    >>> video, prompts, labels = data.batch(4, generator=torch.Generator().manual_seed(0))
    >>> tuple(video.shape), len(prompts)
    ((4, 3, 8, 32, 32), 4)
    """

    def __init__(
        self,
        num_frames: int = 8,
        size: int = 32,
        speed: int = 2,
        object_size: int = 8,
        shapes: Sequence[str] = SHAPES,
        jitter: int | None = None,
    ) -> None:
        num_frames, size = check_int("num_frames", num_frames), check_int("size", size)
        speed, object_size = check_int("speed", speed), check_int("object_size", object_size)
        travel = speed * (num_frames - 1)
        if num_frames < 1 or size < 1 or speed < 0 or object_size < 1:
            raise ValueError("num_frames, size and object_size must be >= 1 and speed >= 0")
        shapes = tuple(shapes) if not isinstance(shapes, str) else (shapes,)
        if not shapes or len(set(shapes)) != len(shapes) or not set(shapes) <= set(ALL_SHAPES):
            raise ValueError(f"shapes must be distinct names among {ALL_SHAPES}, got {shapes}")
        self.shapes = shapes
        self.jitter = None if jitter is None else check_int("jitter", jitter, low=0)
        if object_size + travel > size:
            raise ValueError(
                f"object_size + speed * (num_frames - 1) = {object_size + travel} "
                f"must fit in size = {size}"
            )
        self.num_frames, self.size, self.speed, self.object_size = (
            num_frames,
            size,
            speed,
            object_size,
        )

    @property
    def vocab(self) -> list[str]:
        """All prompt words."""
        return [*COLOURS, *self.shapes, *DIRECTIONS]

    def render(self, colour: str, shape: str, direction: str, x0: float, y0: float) -> Tensor:
        """One clip (3, T, H, W) in [-1, 1] with the object's top-left corner at (x0, y0) at t = 0."""
        T, S, k = self.num_frames, self.size, self.object_size
        dx, dy = DIRECTIONS[direction]
        f = torch.arange(T, dtype=torch.float32)
        cx = x0 + dx * self.speed * f + (k - 1) / 2
        cy = y0 + dy * self.speed * f + (k - 1) / 2
        inside = shape_mask(shape, cx, cy, k, S, S)  # (T, S, S)
        rgb = torch.tensor(COLOURS[colour]).view(3, 1, 1, 1)
        return torch.where(inside[None], rgb, torch.full_like(rgb, -1.0))

    def batch(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, list[str], list[tuple[str, str, str]]]:
        """Draw ``n`` clips.

        Returns
        -------
        video : Tensor, shape (n, 3, T, H, W), values in [-1, 1]
        prompts : list of str
        labels : list of (colour, shape, direction)
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        cols, dirs = list(COLOURS), list(DIRECTIONS)
        travel = self.speed * (self.num_frames - 1)
        videos, prompts, labels = [], [], []
        for _ in range(n):
            r = torch.randint(0, 1 << 30, (5,), generator=generator).tolist()
            shape = self.shapes[r[1] % len(self.shapes)]
            colour, direction = cols[r[0] % 4], dirs[r[2] % 4]
            dx, dy = DIRECTIONS[direction]
            span = self.size - self.object_size - travel * (dx != 0)
            span_y = self.size - self.object_size - travel * (dy != 0)
            if self.jitter is None:
                x0, y0 = r[3] % (span + 1), r[4] % (span_y + 1)
            else:  # centred trajectory, start shifted by at most `jitter` px (in the frame)
                j = self.jitter
                x0 = min(max(span // 2 + r[3] % (2 * j + 1) - j, 0), span)
                y0 = min(max(span_y // 2 + r[4] % (2 * j + 1) - j, 0), span_y)
            x0 += travel if dx < 0 else 0
            y0 += travel if dy < 0 else 0
            videos.append(self.render(colour, shape, direction, x0, y0))
            prompts.append(f"{colour} {shape} {direction}")
            labels.append((colour, shape, direction))
        return torch.stack(videos), prompts, labels


class BucketSampler:
    """Batches of indices that share one (aspect ratio, duration) bucket.

    Parameters
    ----------
    sizes : sequence of (num_frames, height, width)
        Size of every clip in the data set.
    batch_size : int
    aspect_ratios : sequence of float
        Bucket centres of width / height (Movie Gen uses 5).
    durations : sequence of int
        Bucket centres in frames (5 durations between 4 s and 16 s).
    drop_last : bool
    generator : torch.Generator, optional
        Shuffles within and across buckets each epoch.
    """

    def __init__(
        self,
        sizes: Sequence[tuple[int, int, int]],
        batch_size: int,
        aspect_ratios: Sequence[float] = (9 / 16, 3 / 4, 1.0, 4 / 3, 16 / 9),
        durations: Sequence[int] = (64, 112, 160, 208, 256),
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.drop_last, self.generator = batch_size, drop_last, generator
        self.aspect_ratios, self.durations = list(aspect_ratios), list(durations)
        self.buckets: dict[tuple[int, int], list[int]] = {}
        for i, (t, h, w) in enumerate(sizes):
            a = min(
                range(len(aspect_ratios)),
                key=lambda j: abs(math.log(w / h) - math.log(aspect_ratios[j])),
            )
            d = min(range(len(durations)), key=lambda j: abs(t - durations[j]))
            self.buckets.setdefault((a, d), []).append(i)

    def bucket_of(self, index: int) -> tuple[int, int]:
        """(aspect-ratio bucket, duration bucket) of clip ``index``."""
        for key, idx in self.buckets.items():
            if index in idx:
                return key
        raise KeyError(index)

    def _batches(self) -> list[list[int]]:
        out = []
        for idx in self.buckets.values():
            perm = torch.randperm(len(idx), generator=self.generator).tolist()
            idx = [idx[p] for p in perm]
            for s in range(0, len(idx), self.batch_size):
                b = idx[s : s + self.batch_size]
                if len(b) == self.batch_size or not self.drop_last:
                    out.append(b)
        order = torch.randperm(len(out), generator=self.generator).tolist()
        return [out[o] for o in order]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        n = 0
        for idx in self.buckets.values():
            n += len(idx) // self.batch_size if self.drop_last else -(-len(idx) // self.batch_size)
        return n


class VideoFolder:
    """Clips and captions from a folder: ``name.mp4`` / ``name.gif`` with ``name.txt`` beside it.

    Frames are resized (bilinear) to ``height x width`` and scaled to [-1, 1]; the first
    ``num_frames`` frames are kept (clips must be at least that long). Needs the
    ``video`` extra (imageio; MP4 also needs imageio-ffmpeg).

    A small-data convenience: it decodes whole files and stretches every clip to one size.
    For training at scale use :class:`~papershelf.moviegen.data_video.VideoClipDataset`
    (seek + decode only the needed frames, fps sampling, aspect-preserving crops, buckets).

    Parameters
    ----------
    root : str or Path
    num_frames, height, width : int
        Output clip size; height and width must suit the TAE (divisible by 8 at paper scale).
    """

    SUFFIXES = (".mp4", ".gif", ".webm", ".mov")

    def __init__(self, root: str | Path, num_frames: int, height: int, width: int) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"root must be an existing folder, got {str(root)!r}")
        self.files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in self.SUFFIXES)
        if not self.files:
            raise ValueError(f"no video files ({', '.join(self.SUFFIXES)}) in {str(root)!r}")
        self.num_frames, self.height, self.width = num_frames, height, width

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, str]:
        """Clip ``i`` as ((3, num_frames, height, width) in [-1, 1], caption)."""
        import imageio.v3 as iio
        import numpy as np
        import torch.nn.functional as F

        path = self.files[i]
        frames = np.asarray(iio.imread(path, index=None))  # (T, H, W, C)
        if frames.ndim == 3:
            frames = frames[..., None].repeat(3, -1)
        if frames.shape[0] < self.num_frames:
            raise ValueError(
                f"{path.name} has {frames.shape[0]} frames, fewer than "
                f"num_frames = {self.num_frames}"
            )
        x = torch.from_numpy(frames[: self.num_frames, ..., :3].copy()).float()
        x = x.permute(0, 3, 1, 2) / 127.5 - 1.0  # (T, 3, H, W)
        x = F.interpolate(x, size=(self.height, self.width), mode="bilinear", align_corners=False)
        caption_file = path.with_suffix(".txt")
        caption = caption_file.read_text().strip() if caption_file.exists() else ""
        return x.permute(1, 0, 2, 3).contiguous(), caption
