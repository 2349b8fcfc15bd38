"""Frame conversion and video I/O: tensors, uint8 arrays and PIL images in; MP4/GIF files.

Reading and writing MP4 and other containers needs the ``video`` extra (PyAV, FFmpeg's own
decoders and encoders); GIF works with Pillow alone. :func:`load_video` returns the frame rate
so that :func:`write_video` can keep it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from papershelf.core.validation import check_int, check_real

__all__ = [
    "frames_to_numpy",
    "frames_to_pil",
    "load_video",
    "read_video",
    "resize_frames",
    "to_frames_tensor",
    "write_video",
]


def _one_frame(f: Any, i: int) -> torch.Tensor:
    from PIL import Image

    if isinstance(f, Image.Image):
        arr = np.asarray(f.convert("RGB"))
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0
    if isinstance(f, np.ndarray):
        if f.ndim != 3 or f.shape[-1] != 3:
            raise ValueError(f"frames[{i}]: a numpy frame must have shape (H, W, 3), got {f.shape}")
        # a copy: frames may be read-only (decoded video) and must not alias the result
        t = torch.from_numpy(np.array(f)).permute(2, 0, 1)
        return t.float() / 255.0 if f.dtype == np.uint8 else t.float()
    if isinstance(f, torch.Tensor):
        if f.ndim != 3 or f.shape[0] != 3:
            raise ValueError(
                f"frames[{i}]: a tensor frame must have shape (3, H, W), got {tuple(f.shape)}"
            )
        return f.float() / 255.0 if f.dtype == torch.uint8 else f.float()
    raise TypeError(
        f"frames[{i}] must be a PIL image, a numpy array or a tensor, got {type(f).__name__}"
    )


def to_frames_tensor(frames: Any) -> torch.Tensor:
    """Any supported video representation as a float tensor in [0, 1].

    Parameters
    ----------
    frames : Tensor (N, 3, H, W), ndarray (N, H, W, 3), or sequence of frames
        Float values in [0, 1] or uint8 in [0, 255]; a sequence may hold PIL images,
        (H, W, 3) arrays or (3, H, W) tensors.

    Returns
    -------
    Tensor, shape (N, 3, H, W), float32 in [0, 1]
        On the input's device for tensors, else on the CPU.
    """
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(
                f"frames tensor must have shape (N, 3, H, W), got {tuple(frames.shape)}"
            )
        out = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    elif isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames array must have shape (N, H, W, 3), got {frames.shape}")
        out = to_frames_tensor(list(frames))
    elif isinstance(frames, Sequence) and not isinstance(frames, str | bytes):
        if len(frames) == 0:
            raise ValueError("frames is empty")
        ts = [_one_frame(f, i) for i, f in enumerate(frames)]
        sizes = {tuple(t.shape[1:]) for t in ts}
        if len(sizes) > 1:
            first = tuple(ts[0].shape[1:])
            bad = next(i for i, t in enumerate(ts) if tuple(t.shape[1:]) != first)
            raise ValueError(
                f"frames must all have the same size: frame 0 is {first[0]}x{first[1]}, "
                f"frame {bad} is {ts[bad].shape[1]}x{ts[bad].shape[2]}"
            )
        out = torch.stack(ts)
    else:
        raise TypeError(
            f"frames must be a tensor, an array or a list of frames, got {type(frames).__name__}"
        )
    if out.shape[0] == 0:
        raise ValueError("frames is empty")
    if not torch.isfinite(out).all():
        raise ValueError("frames contain NaN or inf")
    if out.min() < -1e-6 or out.max() > 1 + 1e-6:
        raise ValueError(
            "float frames must lie in [0, 1] (uint8 frames in [0, 255]); got values in "
            f"[{float(out.min()):.3g}, {float(out.max()):.3g}]"
        )
    return out


def frames_to_numpy(frames: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8."""
    x = frames.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def frames_to_pil(frames: torch.Tensor) -> list[Any]:
    """(N, 3, H, W) float in [0, 1] -> list of RGB PIL images."""
    from PIL import Image

    return [Image.fromarray(a) for a in frames_to_numpy(frames)]


def load_video(path: str | Path, *, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video file into frames and its frame rate.

    MP4/MOV/MKV/WebM/AVI... are decoded with PyAV (the ``video`` extra); GIF with Pillow.

    Parameters
    ----------
    path : str or Path
        The video file.
    max_frames : int, optional
        Stop after this many frames (``>= 1``).

    Returns
    -------
    frames : ndarray, shape (N, H, W, 3), uint8
    fps : float
        The stream's average frame rate (GIF: from the first frame's duration; 10 if unset).
    """
    path = Path(path)
    if max_frames is not None:
        max_frames = check_int("max_frames", max_frames, low=1)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such video file: {path}")
    frames: list[np.ndarray] = []
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            duration = float(im.info.get("duration") or 100.0)
            for fr in ImageSequence.Iterator(im):
                frames.append(np.asarray(fr.convert("RGB")).copy())
                if max_frames is not None and len(frames) >= max_frames:
                    break
        fps = 1000.0 / duration
    else:
        av = _av()
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"path: {path} has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 30.0
            for fr in container.decode(stream):
                frames.append(fr.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    if not frames:
        raise ValueError(f"path: {path} holds no frames")
    return np.stack(frames), fps


def read_video(path: str | Path, *, max_frames: int | None = None) -> list[np.ndarray]:
    """The frames of :func:`load_video` as a list of (H, W, 3) uint8 arrays (no frame rate)."""
    return list(load_video(path, max_frames=max_frames)[0])


def write_video(
    frames: Any, path: str | Path, *, fps: float = 30.0, codec: str = "libx264"
) -> Path:
    """Write frames to a video file at ``fps`` frames per second.

    Parameters
    ----------
    frames : any form :func:`to_frames_tensor` takes
        Tensor (N, 3, H, W) in [0, 1], uint8 array (N, H, W, 3), list of PIL images...
    path : str or Path
        ``.gif`` is written with Pillow; anything else (``.mp4``...) with PyAV (``video``
        extra), H.264 in yuv420p (odd sizes are padded by one edge row/column).
    fps : float, default 30
        Frame rate; pass the source's (:func:`load_video` returns it) to keep time.
    codec : str, default "libx264"
        Any encoder of the installed FFmpeg (``"mpeg4"``...).

    Returns
    -------
    Path
    """
    path = Path(path)
    fps = check_real("fps", fps, low=0.0, inclusive=(False, True))
    arr = frames_to_numpy(to_frames_tensor(frames))
    if path.suffix.lower() == ".gif":
        from PIL import Image

        ims = [Image.fromarray(a) for a in arr]
        ims[0].save(path, save_all=True, append_images=ims[1:], duration=round(1000 / fps), loop=0)
        return path
    av = _av()
    from fractions import Fraction

    h, w = arr.shape[1:3]
    if h % 2 or w % 2:  # yuv420p needs even sizes
        arr = np.pad(arr, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1_000_000))
        stream.height, stream.width = arr.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for a in arr:
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize (N, 3, H, W) frames in [0, 1] (bicubic, antialiased; clamped to [0, 1])."""
    height = check_int("height", height, low=1)
    width = check_int("width", width, low=1)
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or not frames.is_floating_point():
        raise TypeError("frames must be a float tensor of shape (N, 3, H, W)")
    if not torch.isfinite(frames).all():
        raise ValueError("frames contain NaN or inf")
    if tuple(frames.shape[-2:]) == (height, width):
        return frames
    out = F.interpolate(
        frames, size=(height, width), mode="bicubic", antialias=True, align_corners=False
    )
    return out.clamp_(0.0, 1.0)


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'video files other than GIF need the video extra: pip install "papershelf-fairy[video]"'
        ) from exc
    return av
