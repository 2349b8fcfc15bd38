"""Frame conversion and video I/O: tensors, uint8 arrays and PIL images in; MP4/GIF files.

Reading and writing MP4 needs the ``video`` extra (imageio + imageio-ffmpeg); GIF works with
Pillow alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["frames_to_numpy", "frames_to_pil", "read_video", "to_frames_tensor", "write_video"]


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


def read_video(path: str | Path, *, max_frames: int | None = None) -> list[np.ndarray]:
    """Read an MP4 (``video`` extra) or GIF file into a list of (H, W, 3) uint8 frames."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    frames: list[np.ndarray] = []
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            for fr in ImageSequence.Iterator(im):
                frames.append(np.asarray(fr.convert("RGB")).copy())
                if max_frames is not None and len(frames) >= max_frames:
                    break
        return frames
    iio = _imageio()
    reader = iio.get_reader(str(path))
    try:
        for fr in reader:
            frames.append(np.asarray(fr)[..., :3].copy())
            if max_frames is not None and len(frames) >= max_frames:
                break
    finally:
        reader.close()
    return frames


def write_video(frames: Any, path: str | Path, *, fps: float = 30.0) -> Path:
    """Write frames (any form :func:`to_frames_tensor` takes) to an MP4 or GIF file."""
    path = Path(path)
    arr = frames_to_numpy(to_frames_tensor(frames))
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if path.suffix.lower() == ".gif":
        from PIL import Image

        ims = [Image.fromarray(a) for a in arr]
        ims[0].save(path, save_all=True, append_images=ims[1:], duration=round(1000 / fps), loop=0)
        return path
    iio = _imageio()
    with iio.get_writer(str(path), fps=fps, macro_block_size=1) as w:
        for a in arr:
            w.append_data(a)
    return path


def _imageio() -> Any:
    try:
        import imageio.v2 as iio
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "MP4 I/O needs the video extra: pip install 'papershelf-fairy[video]'"
        ) from exc
    return iio
