"""Video data at scale: decode only the frames a clip needs, sample at a target fps, keep the
aspect ratio (resize + center crop into the bucket), and a distributed bucket sampler.

Movie Gen trains on clips of 5 aspect ratios x 5 durations (4-16 s) with the frame rate
prefixed to the prompt ("FPS-16 ...", Sec. 3.1.3 / 3.2). :class:`VideoClipDataset` reads
only the stream metadata at start-up and, per item, seeks to the clip start and decodes
until the last frame it needs (PyAV, the ``video`` extra). :class:`DistributedBucketSampler`
gives every data-parallel rank disjoint, same-shape batches, deterministic per epoch and
resumable mid-epoch (its ``state_dict`` goes into the trainer's checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from papershelf.core.validation import check_int, check_real

__all__ = [
    "ClipInfo",
    "DistributedBucketSampler",
    "VideoClipDataset",
    "check_video",
    "resize_center_crop",
]

#: Bucket (height, width) sizes at 256 px area for 9:16, 3:4, 1:1, 4:3, 16:9 (divisible by 16).
BUCKETS_256: tuple[tuple[int, int], ...] = (
    (336, 192),
    (288, 224),
    (256, 256),
    (224, 288),
    (192, 336),
)


def _av() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - the extra is installed in the tests
        raise ImportError(
            'reading video files needs PyAV: pip install "papershelf-moviegen[video]"'
        ) from e
    return av


def check_video(video: Tensor, *, name: str = "video", dtype: torch.dtype | None = None) -> None:
    """Raise a clear error unless ``video`` is a non-empty float (B, 3, T, H, W) in [-1, 1] range.

    ``uint8`` frames and ``float64`` arrays are refused with the conversion to use.
    """
    if not isinstance(video, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(video).__name__}")
    if video.dtype == torch.uint8:
        raise TypeError(
            f"{name} must be float pixels in [-1, 1], got uint8 (convert with "
            "x.float() / 127.5 - 1)"
        )
    if video.dtype == torch.float64:
        raise TypeError(f"{name} must be float32 / bfloat16 / float16, got float64 (use .float())")
    if not video.is_floating_point():
        raise TypeError(f"{name} must be float pixels in [-1, 1], got {video.dtype}")
    if dtype is not None and video.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype} (the encoder's), got {video.dtype}")
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"{name} must be (B, 3, T, H, W), got {tuple(video.shape)}")
    if video.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(video.shape)})")
    if not bool(torch.isfinite(video).all()):
        raise ValueError(f"{name} contains NaN or inf")


def resize_center_crop(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """Scale (T, 3, H, W) frames to cover ``size`` = (h, w) keeping the aspect ratio, then
    crop the center (bilinear with antialiasing when shrinking)."""
    h, w = size
    H, W = frames.shape[-2:]
    scale = max(h / H, w / W)
    nh, nw = max(h, round(H * scale)), max(w, round(W * scale))
    if (nh, nw) != (H, W):
        frames = F.interpolate(
            frames, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1
        )
    top, left = (nh - h) // 2, (nw - w) // 2
    return frames[..., top : top + h, left : left + w]


@dataclass(frozen=True)
class ClipInfo:
    """Stream metadata of one file (read without decoding)."""

    path: str
    width: int
    height: int
    fps: float
    num_frames: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def probe(path: str | Path) -> ClipInfo:
    """Width, height, frame rate and frame count of the first video stream."""
    av = _av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise ValueError(f"{path}: the video stream has no frame rate")
        fps = float(rate)
        n = int(stream.frames or 0)
        if n <= 0:  # containers without a frame count: from the duration
            if stream.duration is not None and stream.time_base is not None:
                n = round(float(stream.duration * stream.time_base) * fps)
            elif container.duration is not None:
                n = round(container.duration / av.time_base * fps)
        return ClipInfo(str(path), int(stream.width), int(stream.height), fps, n)


class VideoClipDataset:
    """Clips from video files, sampled at ``fps``, resized + center-cropped into buckets.

    Parameters
    ----------
    files : sequence of str or Path, or a folder
        Video files (a folder: every ``.mp4 .mkv .webm .mov .avi .gif`` in it, sorted).
    captions : sequence of str, optional
        One per file; default: the text of ``name.txt`` beside each file ("" if absent).
    fps : float
        Target frame rate; clips are sampled at this rate from the source (nearest frame),
        which must be at least as fast. The prompt becomes ``f"FPS-{fps} {caption}"``.
    durations : sequence of int
        Frame-count buckets; each clip gets the longest one that fits at ``fps`` (clips
        shorter than the smallest are left out, see ``skipped``).
    sizes : sequence of (height, width)
        Spatial buckets; each clip goes to the one closest in log aspect ratio.
    start : {"begin", "center", "random"}
        Where the clip starts in its file ("random": drawn from ``seed``, the epoch set by
        :meth:`set_epoch` and the index, so reruns are identical).
    seed : int
    prefix_fps : bool
        Prefix "FPS-<fps>" to the caption (the paper's frame-rate control).

    Each item is a dict: ``video`` (3, T, h, w) float32 in [-1, 1], ``caption``, ``bucket``
    (T, h, w), ``path``. ``last_decoded`` counts the frames decoded by the latest item.
    """

    SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".gif")

    def __init__(
        self,
        files: Sequence[str | Path] | str | Path,
        captions: Sequence[str] | None = None,
        *,
        fps: float = 16.0,
        durations: Sequence[int] = (64, 112, 160, 208, 256),
        sizes: Sequence[tuple[int, int]] = BUCKETS_256,
        start: str = "begin",
        seed: int = 0,
        prefix_fps: bool = True,
    ) -> None:
        if isinstance(files, (str, Path)):
            root = Path(files)
            if not root.is_dir():
                raise ValueError(f"files must be a folder or a list of files, got {str(root)!r}")
            paths = sorted(p for p in root.iterdir() if p.suffix.lower() in self.SUFFIXES)
        else:
            paths = [Path(p) for p in files]
        if not paths:
            raise ValueError("files holds no video files")
        if captions is not None and len(captions) != len(paths):
            raise ValueError(f"captions must have one entry per file ({len(paths)})")
        self.fps = check_real("fps", fps, low=0.0, inclusive=(False, True))
        self.durations = sorted(check_int("durations", d, low=1) for d in durations)
        if not self.durations:
            raise ValueError("durations must hold at least one frame count")
        self.sizes = [
            (check_int("sizes", h, low=1), check_int("sizes", w, low=1)) for h, w in sizes
        ]
        if not self.sizes:
            raise ValueError("sizes must hold at least one (height, width)")
        if start not in ("begin", "center", "random"):
            raise ValueError(f"start must be 'begin', 'center' or 'random', got {start!r}")
        self.start, self.seed, self.prefix_fps = start, check_int("seed", seed, low=0), prefix_fps
        self.epoch = 0
        self.last_decoded = 0
        self.items: list[tuple[ClipInfo, str, tuple[int, int, int]]] = []
        self.skipped: list[str] = []
        for i, p in enumerate(paths):
            info = probe(p)
            if captions is not None:
                cap = captions[i]
            else:
                txt = p.with_suffix(".txt")
                cap = txt.read_text().strip() if txt.exists() else ""
            n = self._duration_bucket(info)
            if n is None:
                self.skipped.append(str(p))
                continue
            h, w = min(
                self.sizes,
                key=lambda s: abs(math.log(info.width / info.height) - math.log(s[1] / s[0])),
            )
            self.items.append((info, cap, (n, h, w)))
        if not self.items:
            raise ValueError(
                f"no file is long enough for {self.durations[0]} frames at {self.fps} fps"
            )

    def _duration_bucket(self, info: ClipInfo) -> int | None:
        if info.fps + 1e-6 < self.fps:
            raise ValueError(
                f"{info.path} runs at {info.fps:g} fps, slower than the target fps {self.fps:g}"
            )
        fits = [n for n in self.durations if self._source_index(n - 1, info) < info.num_frames]
        return fits[-1] if fits else None

    def _source_index(self, k: int, info: ClipInfo, offset: float = 0.0) -> int:
        """Source frame nearest to target frame ``k`` (time offset + k / fps)."""
        return math.floor((offset + k / self.fps) * info.fps + 0.5 + 1e-9)

    def set_epoch(self, epoch: int) -> None:
        """Vary the random clip starts per epoch."""
        self.epoch = check_int("epoch", epoch, low=0)

    def bucket_keys(self) -> list[tuple[int, int, int]]:
        """(frames, height, width) of every item, for :class:`DistributedBucketSampler`."""
        return [b for _, _, b in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def frame_indices(self, index: int) -> list[int]:
        """Source frame numbers that item ``index`` uses (in order)."""
        info, _, (n, _, _) = self.items[index]
        span = (n - 1) / self.fps  # seconds between the first and last frame
        slack = max(0.0, (info.num_frames - 0.5) / info.fps - span - 1e-6)
        if self.start == "begin":
            offset = 0.0
        elif self.start == "center":
            offset = slack / 2
        else:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 7919 + index)
            offset = float(torch.rand((), generator=g, dtype=torch.float64)) * slack
        last = info.num_frames - 1
        return [min(last, self._source_index(k, info, offset)) for k in range(n)]

    def _decode(self, info: ClipInfo, wanted: list[int]) -> list[Tensor]:
        av = _av()
        need = sorted(set(wanted))
        got: dict[int, Tensor] = {}
        decoded = 0
        with av.open(info.path) as container:
            stream = container.streams.video[0]
            tb = stream.time_base or Fraction(1, 1)
            start_pts = stream.start_time or 0
            first_t = need[0] / info.fps
            if need[0] > 0:  # seek to the keyframe at or before the first frame needed
                container.seek(
                    int(first_t / tb) + start_pts, stream=stream, backward=True, any_frame=False
                )
            for frame in container.decode(stream):
                decoded += 1
                pts = frame.pts if frame.pts is not None else 0
                j = math.floor(float((pts - start_pts) * tb) * info.fps + 0.5)
                if j in need and j not in got:
                    rgb = frame.to_ndarray(format="rgb24")
                    got[j] = torch.from_numpy(rgb).permute(2, 0, 1)
                if j >= need[-1]:
                    break
        self.last_decoded = decoded
        missing = [j for j in need if j not in got]
        if missing:
            raise ValueError(f"{info.path}: frames {missing[:5]} could not be decoded")
        return [got[j] for j in wanted]

    def __getitem__(self, index: int) -> dict[str, Any]:
        info, caption, (n, h, w) = self.items[index]
        frames = self._decode(info, self.frame_indices(index))
        x = torch.stack(frames).float() / 127.5 - 1.0  # (T, 3, H, W)
        x = resize_center_crop(x, (h, w)).clamp_(-1.0, 1.0)
        fps = f"{self.fps:g}"
        prompt = f"FPS-{fps} {caption}".strip() if self.prefix_fps else caption
        return {
            "video": x.permute(1, 0, 2, 3).contiguous(),
            "caption": prompt,
            "bucket": (n, h, w),
            "path": info.path,
        }


class DistributedBucketSampler:
    """Same-bucket batches split over data-parallel ranks: disjoint, deterministic, resumable.

    Each epoch: the items of every bucket are shuffled with a generator seeded by
    ``(seed, epoch)`` (identical on every rank), cut into full batches (an incomplete batch
    would change the shape), the batches shuffled, truncated to a multiple of
    ``num_replicas`` so every rank takes the same number of steps, and rank ``r`` takes
    batches ``r, r + R, r + 2R, ...``.

    Parameters
    ----------
    keys : sequence of hashable
        Bucket of every item (e.g. :meth:`VideoClipDataset.bucket_keys`).
    batch_size : int
        Per rank.
    num_replicas, rank : int, optional
        Data-parallel size and index (ranks that share a batch under context / tensor
        parallelism pass the same rank: :func:`~papershelf.moviegen.train.data_parallel_rank`).
        Default: the process group's, or (1, 0).
    seed : int
    """

    def __init__(
        self,
        keys: Sequence[Hashable],
        batch_size: int,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ) -> None:
        if num_replicas is None or rank is None:
            from papershelf.moviegen.train.parallel import data_parallel_rank

            r, n = data_parallel_rank(None)
            num_replicas = n if num_replicas is None else num_replicas
            rank = r if rank is None else rank
        self.num_replicas = check_int("num_replicas", num_replicas, low=1)
        self.rank = check_int("rank", rank, low=0, high=self.num_replicas - 1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.seed = check_int("seed", seed, low=0)
        self.buckets: dict[Hashable, list[int]] = {}
        for i, k in enumerate(keys):
            self.buckets.setdefault(k, []).append(i)
        self.epoch = 0
        self.position = 0  # batches of this epoch already yielded on this rank

    def _all_batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        batches = []
        for key in sorted(self.buckets, key=repr):  # fixed order on every rank
            idx = self.buckets[key]
            perm = torch.randperm(len(idx), generator=g).tolist()
            idx = [idx[p] for p in perm]
            batches += [
                idx[s : s + self.batch_size]
                for s in range(0, len(idx) - self.batch_size + 1, self.batch_size)
            ]
        order = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[o] for o in order]
        keep = len(batches) - len(batches) % self.num_replicas
        return batches[:keep]

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._all_batches()[self.rank :: self.num_replicas]
        while self.position < len(mine):
            batch = mine[self.position]
            self.position += 1
            yield batch

    def __len__(self) -> int:
        return len(self._all_batches()) // self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (a new shuffle) from its beginning."""
        self.epoch = check_int("epoch", epoch, low=0)
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        """Data position: epoch, batches consumed in it, and the layout it assumes."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        for k in ("seed", "num_replicas", "batch_size"):
            if int(state[k]) != getattr(self, k):
                raise ValueError(
                    f"sampler state was saved with {k}={state[k]}, this sampler has "
                    f"{getattr(self, k)}; the data position cannot carry over"
                )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
