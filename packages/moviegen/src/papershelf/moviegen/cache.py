"""Cache TAE latents and text embeddings to safetensors shards, so training reads latents.

Movie Gen pre-computes the TAE latents of its training clips (and, at scale, the frozen text
encoders' outputs): the transformer step then never touches pixels. :func:`cache_dataset`
encodes a clip data set once into ``shard-XXXXX.safetensors`` files plus ``index.json``;
:class:`LatentCache` reads them back lazily (memory-mapped) as training batches::

    python -m papershelf.moviegen.cache VIDEOS/ CACHE/ --fps 16 --durations 32 \\
        --sizes 256x256 --tae-preset tiny --tae-weights tae.safetensors --text tiny

Each item ``i`` stores ``{i}.mean`` and ``{i}.std`` of the TAE posterior (C, T, H, W), and
``{i}.text.<encoder>`` (L, D) / ``{i}.mask.<encoder>`` (L,) for every text encoder; the
caption, bucket and source path are in ``index.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from papershelf.core import progress
from papershelf.core.validation import check_int
from papershelf.moviegen.data_video import DistributedBucketSampler, check_video
from papershelf.moviegen.text import TextContext

__all__ = ["LatentCache", "cache_dataset", "encode_clip"]

INDEX = "index.json"


def _posterior(tae: Any, video: Tensor) -> tuple[Tensor, Tensor]:
    out: Any = tae.encode(video)
    out = getattr(out, "latent_dist", out)  # diffusers AutoencoderKLOutput or ours
    mean = out.mean
    std = getattr(out, "std", None)
    if std is None:
        std = torch.exp(0.5 * out.logvar)
    return mean, std


@torch.no_grad()
def encode_clip(tae: nn.Module, conditioner: Any, video: Tensor, caption: str) -> dict[str, Tensor]:
    """Latent posterior and text embeddings of one clip (3, T, H, W) in [-1, 1]."""
    dtype = next(tae.parameters()).dtype
    check_video(video[None] if isinstance(video, Tensor) else video, dtype=dtype)
    mean, std = _posterior(tae, video[None].to(next(tae.parameters()).device))
    text = conditioner([caption])
    out = {"mean": mean[0].float().cpu().contiguous(), "std": std[0].float().cpu().contiguous()}
    for name, s in text.states.items():
        out[f"text.{name}"] = s[0].float().cpu().contiguous()
        out[f"mask.{name}"] = text.masks[name][0].cpu().contiguous()
    return out


def _write_shard(path: Path, tensors: dict[str, Tensor]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def cache_dataset(
    dataset: Any,
    tae: nn.Module,
    conditioner: Any,
    out_dir: str | Path,
    *,
    shard_size: int = 256,
    show_progress: bool | None = None,
) -> Path:
    """Encode every item of ``dataset`` and write safetensors shards + ``index.json``.

    Parameters
    ----------
    dataset : sequence of dict
        Items with ``video`` (3, T, H, W) float in [-1, 1], ``caption`` and ``bucket``
        (e.g. :class:`~papershelf.moviegen.data_video.VideoClipDataset`).
    tae : nn.Module
        ``tae.encode(video)`` returning a posterior with ``mean`` and ``std`` / ``logvar``
        (or a diffusers output with ``latent_dist``); put it in eval mode on its device.
    conditioner : callable
        ``conditioner([caption]) -> TextContext`` (e.g. a ``MultiTextConditioner``).
    out_dir : str or Path
        Created; an existing index there is replaced.
    shard_size : int
        Items per shard file.

    Returns
    -------
    Path of ``index.json``.
    """
    shard_size = check_int("shard_size", shard_size, low=1)
    n = len(dataset)
    if n == 0:
        raise ValueError("dataset is empty")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    shard: dict[str, Tensor] = {}
    shard_id = 0
    bar = progress(
        range(n),
        total=n,
        desc="cache",
        disable=None if show_progress is None else not show_progress,
    )
    for i in bar:
        item = dataset[i]
        enc = encode_clip(tae, conditioner, item["video"], item["caption"])
        shard.update({f"{i}.{k}": v for k, v in enc.items()})
        entries.append(
            {
                "shard": f"shard-{shard_id:05d}.safetensors",
                "caption": item["caption"],
                "bucket": list(item.get("bucket", tuple(enc["mean"].shape[1:]))),
                "latent_shape": list(enc["mean"].shape),
                "path": str(item.get("path", "")),
            }
        )
        if len(shard) and (i + 1) % shard_size == 0:
            _write_shard(out / f"shard-{shard_id:05d}.safetensors", shard)
            shard, shard_id = {}, shard_id + 1
    if shard:
        _write_shard(out / f"shard-{shard_id:05d}.safetensors", shard)
    index = out / INDEX
    tmp = index.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": 1, "items": entries}, indent=1))
    os.replace(tmp, index)
    return index


class LatentCache:
    """Read a cache written by :func:`cache_dataset` (lazily, shard files memory-mapped).

    Parameters
    ----------
    root : str or Path
        The cache folder (with ``index.json``).
    sample : bool
        Items return a latent drawn from the cached posterior (mean + std * noise, with the
        ``generator`` of :meth:`batch`) instead of its mean.

    Items are ``(latent (C, T, H, W), {encoder: (states (L, D), mask (L,))}, caption)``.
    """

    def __init__(self, root: str | Path, *, sample: bool = False) -> None:
        self.root = Path(root)
        index = self.root / INDEX
        if not index.is_file():
            raise ValueError(f"root must be a latent cache folder with {INDEX}, got {str(root)!r}")
        self.items: list[dict[str, Any]] = json.loads(index.read_text())["items"]
        self.sample = sample
        self._open: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.items)

    def bucket_keys(self) -> list[tuple[int, ...]]:
        """Latent shape of every item, for :class:`DistributedBucketSampler`."""
        return [tuple(e["latent_shape"]) for e in self.items]

    def _get(self, shard: str, key: str) -> Tensor:
        from safetensors import safe_open

        if shard not in self._open:
            self._open[shard] = safe_open(str(self.root / shard), framework="pt")
        return self._open[shard].get_tensor(key)

    def encoders(self, index: int = 0) -> list[str]:
        from safetensors import safe_open

        e = self.items[index]
        with safe_open(str(self.root / e["shard"]), framework="pt") as f:
            keys = [k for k in f.keys() if k.startswith(f"{index}.text.")]  # noqa: SIM118
        return sorted(k.split(".", 2)[2] for k in keys)

    def __getitem__(
        self, index: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, tuple[Tensor, Tensor]], str]:
        e = self.items[index]
        mean = self._get(e["shard"], f"{index}.mean")
        latent = mean
        if self.sample:
            std = self._get(e["shard"], f"{index}.std")
            latent = mean + std * torch.randn(mean.shape, generator=generator)
        text = {
            name: (
                self._get(e["shard"], f"{index}.text.{name}"),
                self._get(e["shard"], f"{index}.mask.{name}"),
            )
            for name in self._names(index)
        }
        return latent, text, e["caption"]

    def _names(self, index: int) -> list[str]:
        if not hasattr(self, "_encoder_names"):
            self._encoder_names = self.encoders(index)
        return self._encoder_names

    def batch(
        self, indices: Sequence[int], generator: torch.Generator | None = None
    ) -> tuple[Tensor, TextContext]:
        """Stack items (one bucket) into the trainer's ``(x1, text)``."""
        if len(indices) == 0:
            raise ValueError("indices is an empty batch")
        items = [self.__getitem__(int(i), generator) for i in indices]
        shapes = {tuple(x.shape) for x, _, _ in items}
        if len(shapes) > 1:
            raise ValueError(f"a batch must come from one bucket, got latent shapes {shapes}")
        x1 = torch.stack([x for x, _, _ in items])
        names = list(items[0][1])
        states = {k: torch.stack([t[k][0] for _, t, _ in items]) for k in names}
        masks = {k: torch.stack([t[k][1] for _, t, _ in items]).bool() for k in names}
        return x1, TextContext(states, masks)

    def batches(
        self, sampler: DistributedBucketSampler, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, TextContext]]:
        """Training batches in the sampler's order (for ``FlowMatchingTrainer.fit``)."""
        for idx in sampler:
            yield self.batch(idx, generator)


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        h, w = part.lower().split("x")
        out.append((int(h), int(w)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: encode a folder of videos into a latent cache."""
    from papershelf.moviegen.data_video import VideoClipDataset

    ap = argparse.ArgumentParser(prog="python -m papershelf.moviegen.cache", description=__doc__)
    ap.add_argument("videos", help="folder of video files (captions in name.txt beside them)")
    ap.add_argument("out", help="cache folder to write")
    ap.add_argument("--fps", type=float, default=16.0)
    ap.add_argument("--durations", default="64,112,160,208,256", help="frame-count buckets")
    ap.add_argument("--sizes", default="336x192,288x224,256x256,224x288,192x336")
    ap.add_argument("--tae-preset", default="paper", help="TAE config preset (paper, tiny)")
    ap.add_argument("--tae-weights", help="safetensors state dict of the TAE")
    ap.add_argument(
        "--text",
        default="tiny",
        help="'tiny' (random stand-ins, for tests) or name=hf_path:max_len,... of frozen encoders",
    )
    ap.add_argument("--shard-size", type=int, default=256)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)

    from papershelf.moviegen.config import tae_preset
    from papershelf.moviegen.tae import TemporalAutoencoder
    from papershelf.moviegen.text import HFTextEncoder, MultiTextConditioner, tiny_text_encoders

    tae = TemporalAutoencoder(tae_preset(args.tae_preset))
    if args.tae_weights:
        from safetensors.torch import load_file

        tae.load_state_dict(load_file(args.tae_weights))
    elif args.tae_preset != "tiny":
        ap.error("--tae-weights is required (a randomly initialised TAE caches noise)")
    tae = tae.to(args.device).eval()
    if args.text == "tiny":
        encoders: dict[str, Any] = dict(tiny_text_encoders())
    else:
        encoders = {}
        for spec in args.text.split(","):
            name, rest = spec.split("=", 1)
            path, max_len = rest.rsplit(":", 1)
            encoders[name] = HFTextEncoder.from_pretrained(path, int(max_len)).to(args.device)
    conditioner = MultiTextConditioner(encoders)
    data = VideoClipDataset(
        args.videos,
        fps=args.fps,
        durations=[int(d) for d in args.durations.split(",")],
        sizes=_parse_sizes(args.sizes),
    )
    index = cache_dataset(data, tae, conditioner, args.out, shard_size=args.shard_size)
    print(f"cached {len(data)} clips ({len(data.skipped)} too short) -> {index}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
