"""The paper's zero-shot CLIP evaluation on Waterbirds / CelebA copies the user provides.

Group ids follow the official code: Waterbirds groups ``2 * y + place`` (y = waterbird,
place = water background), CelebA target ``Blond_Hair`` with spurious ``Male``. Only the test
split is evaluated. Average accuracy is the plain test average (the official Waterbirds script
also prints an average re-weighted by the training group sizes).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from papershelf.debias_vl.debiaser import Debiaser
from papershelf.debias_vl.encoders import _device, _projected, clip_text_features
from papershelf.debias_vl.projection import gather_pairs
from papershelf.debias_vl.prompts import PromptSet
from papershelf.debias_vl.zero_shot import group_accuracy, zero_shot_predict

__all__ = [
    "WATERBIRDS_TRAIN_GROUP_SIZES",
    "clip_image_features",
    "evaluate_clip_zero_shot",
    "load_group_split",
]

WATERBIRDS_TRAIN_GROUP_SIZES = (3498, 184, 56, 1057)


def load_group_split(root: Path, dataset: str) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Test-split image paths, labels and spurious attributes of a local dataset copy.

    Parameters
    ----------
    root : Path
        Waterbirds: the folder with ``metadata.csv`` (columns ``img_filename, y, split, place``).
        CelebA: the folder with ``img_align_celeba/``, ``list_attr_celeba.txt`` and
        ``list_eval_partition.txt``.
    dataset : {"waterbirds", "celeba"}

    Returns
    -------
    paths : list of Path
    labels, spurious : ndarray of int, shape (N,)
    """
    root = Path(root)
    if dataset == "waterbirds":
        with open(root / "metadata.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["split"]) == 2]
        paths = [root / r["img_filename"] for r in rows]
        return (
            paths,
            np.array([int(r["y"]) for r in rows]),
            np.array([int(r["place"]) for r in rows]),
        )
    if dataset == "celeba":
        split = {}
        for line in (root / "list_eval_partition.txt").read_text().split("\n"):
            if line.strip():
                name, part = line.split()
                split[name] = int(part)
        lines = (root / "list_attr_celeba.txt").read_text().split("\n")
        names = lines[1].split()
        blond, male = names.index("Blond_Hair"), names.index("Male")
        paths, y, s = [], [], []
        for line in lines[2:]:
            parts = line.split()
            if not parts or split.get(parts[0]) != 2:
                continue
            vals = parts[1:]
            paths.append(root / "img_align_celeba" / parts[0])
            y.append(int(vals[blond] == "1"))
            s.append(int(vals[male] == "1"))
        return paths, np.array(y), np.array(s)
    raise ValueError(f"dataset must be 'waterbirds' or 'celeba', got {dataset!r}")


@torch.no_grad()
def clip_image_features(
    model: Any,
    image_processor: Callable[..., Any],
    paths: list[Path],
    *,
    batch_size: int = 64,
    progress: Callable[..., Iterable[Any]] | None = None,
) -> torch.Tensor:
    """L2-normalised CLIP image embeddings (N, d) of the images at ``paths``."""
    from PIL import Image

    device = _device(model)
    starts: Iterable[int] = range(0, len(paths), batch_size)
    if progress is not None:
        starts = progress(starts, total=len(range(0, len(paths), batch_size)), desc="CLIP images")
    chunks = []
    for start in starts:
        images = [Image.open(p).convert("RGB") for p in paths[start : start + batch_size]]
        pixels = image_processor(images=images, return_tensors="pt")["pixel_values"].to(device)
        chunks.append(
            F.normalize(_projected(model.get_image_features(pixel_values=pixels)), dim=-1)
        )
    return torch.cat(chunks).cpu()


def evaluate_clip_zero_shot(
    model: Any,
    root: Path,
    dataset: str,
    prompts: PromptSet,
    *,
    lam: float = 1000.0,
    tokenizer: Any = None,
    image_processor: Any = None,
    device: str = "cpu",
    max_images: int | None = None,
    progress: Callable[..., Iterable[Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Zero-shot, Orth-Proj (P0) and Orth-Cali (P*) group accuracies on a local dataset.

    Parameters
    ----------
    model : transformers.CLIPModel or str
        A model, or a local checkpoint folder (then tokenizer and image processor load from it).
    root, dataset
        See :func:`load_group_split`.
    prompts : PromptSet
        :data:`~papershelf.debias_vl.WATERBIRDS` or :data:`~papershelf.debias_vl.CELEBA`.
    lam : float, default 1000.0
        The official zero-shot value.
    max_images : int, optional
        Evaluate only the first ``max_images`` test images (smoke runs).

    Returns
    -------
    dict
        ``{"zero-shot" | "Orth-Proj" | "Orth-Cali": group_accuracy(...)}``; for Waterbirds
        also ``adj_avg``, the official average re-weighted by the training group sizes.
    """
    if isinstance(model, (str, Path)):
        from transformers import AutoProcessor, CLIPModel

        processor = AutoProcessor.from_pretrained(model, local_files_only=True)
        model = CLIPModel.from_pretrained(model, local_files_only=True).eval()
        tokenizer = tokenizer or processor.tokenizer
        image_processor = image_processor or processor.image_processor
    if tokenizer is None or image_processor is None:
        raise ValueError("pass tokenizer and image_processor with a model object")
    model = model.to(device)
    paths, y, s = load_group_split(root, dataset)
    if max_images is not None:
        paths, y, s = paths[:max_images], y[:max_images], s[:max_images]
    images = clip_image_features(model, image_processor, paths, progress=progress)

    def encode(texts: list[str]) -> torch.Tensor:
        return clip_text_features(model, tokenizer, texts).double().cpu()

    queries = encode(list(prompts.class_prompts))
    spurious = encode(list(prompts.spurious_prompts))
    pairs = gather_pairs(encode(list(prompts.candidate_prompts)), prompts.index_pairs)
    text = {
        "zero-shot": queries,
        "Orth-Proj": Debiaser(lam=0.0).fit(spurious, pairs).transform(queries),
        "Orth-Cali": Debiaser(lam=lam).fit(spurious, pairs).transform(queries),
    }
    groups = 2 * y + s
    out = {}
    for name, t in text.items():
        acc = group_accuracy(zero_shot_predict(images, t), y, groups)
        if dataset == "waterbirds":
            # The official script's "adjusted average": group accuracies weighted by the
            # training-set group sizes (landbird/land, landbird/water, waterbird/land, .../water).
            w = dict(zip((0, 1, 2, 3), WATERBIRDS_TRAIN_GROUP_SIZES))
            per = acc["per_group"]
            acc["adj_avg"] = sum(w[g] * per[g] for g in per) / sum(w[g] for g in per)
        out[name] = acc
    return out
