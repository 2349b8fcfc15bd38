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
    "WATERBIRDS_FOLDER",
    "evaluate_clip_zero_shot",
    "OpenCLIPAdapter",
    "load_clip",
    "load_group_split",
]

WATERBIRDS_TRAIN_GROUP_SIZES = (3498, 184, 56, 1057)
WATERBIRDS_FOLDER = "waterbird_complete95_forest2water2"

_HELP = {
    "waterbirds": (
        f"a Waterbirds copy ({WATERBIRDS_FOLDER}/ of the group DRO release): metadata.csv with "
        "columns img_filename, y, split, place (split 2 = test) and the images it names"
    ),
    "celeba": (
        "a CelebA copy: img_align_celeba/, list_attr_celeba.txt and list_eval_partition.txt "
        "(or the Kaggle list_attr_celeba.csv and list_eval_partition.csv the official code reads)"
    ),
}
_CLIP_HELP = (
    "a local transformers CLIP folder (CLIPModel.save_pretrained + CLIPProcessor.save_pretrained: "
    "config.json, weights, tokenizer and preprocessor files), e.g. a download of "
    "openai/clip-vit-large-patch14"
)


def _waterbirds_split(root: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    meta = next(
        (
            f / "metadata.csv"
            for f in (root, root / WATERBIRDS_FOLDER)
            if (f / "metadata.csv").is_file()
        ),
        None,
    )
    if meta is None:
        raise FileNotFoundError(
            f"no metadata.csv in {root} or {root / WATERBIRDS_FOLDER}: provide {_HELP['waterbirds']}"
        )
    with open(meta, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"img_filename", "y", "split", "place"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{meta} lacks the columns {sorted(missing)}")
        rows = [r for r in reader if int(r["split"]) == 2]
    paths = [meta.parent / r["img_filename"] for r in rows]
    y = np.array([int(r["y"]) for r in rows], dtype=np.int64)
    s = np.array([int(r["place"]) for r in rows], dtype=np.int64)
    return paths, y, s


def _celeba_table(root: Path, stem: str) -> tuple[list[str], list[list[str]]]:
    """Column names (after the image name) and rows of a CelebA annotation file, either in
    the original whitespace layout or in the Kaggle CSV layout."""
    for suffix in (".txt", ".csv"):
        path = root / (stem + suffix)
        if path.is_file():
            break
    else:
        raise FileNotFoundError(f"no {stem}.txt (or .csv) in {root}: provide {_HELP['celeba']}")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if suffix == ".csv":
        rows = [line.split(",") for line in lines]
        return rows[0][1:], rows[1:]
    if stem == "list_attr_celeba":  # line 1: the image count, line 2: the 40 attribute names
        return lines[1].split(), [line.split() for line in lines[2:]]
    return ["partition"], [line.split() for line in lines]


def _celeba_split(root: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    names, attr_rows = _celeba_table(root, "list_attr_celeba")
    _, part_rows = _celeba_table(root, "list_eval_partition")
    if not (root / "img_align_celeba").is_dir():
        raise FileNotFoundError(f"no img_align_celeba/ in {root}: provide {_HELP['celeba']}")
    if "Blond_Hair" not in names or "Male" not in names:
        raise ValueError(f"the CelebA attributes in {root} have no Blond_Hair and Male columns")
    split = {r[0]: int(r[1]) for r in part_rows if len(r) == 2}
    blond, male = names.index("Blond_Hair") + 1, names.index("Male") + 1
    rows = [r for r in attr_rows if split.get(r[0]) == 2]
    paths = [root / "img_align_celeba" / r[0] for r in rows]
    y = np.array([int(r[blond] == "1") for r in rows], dtype=np.int64)
    s = np.array([int(r[male] == "1") for r in rows], dtype=np.int64)
    return paths, y, s


def load_group_split(root: Path, dataset: str) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Test-split image paths, labels and spurious attributes of a local dataset copy.

    Parameters
    ----------
    root : Path
        Waterbirds: the folder with ``metadata.csv`` (columns ``img_filename, y, split, place``),
        or its parent holding ``waterbird_complete95_forest2water2/``. CelebA: the folder with
        ``img_align_celeba/``, ``list_attr_celeba.txt`` and ``list_eval_partition.txt`` (the
        Kaggle ``.csv`` versions, which the official code reads, work too).
    dataset : {"waterbirds", "celeba"}

    Returns
    -------
    paths : list of Path, length N
    labels, spurious : ndarray of int64, shape (N,)
        Waterbirds: label = waterbird, spurious = water background (``place``). CelebA:
        label = ``Blond_Hair``, spurious = ``Male``, as in the official code.

    Raises
    ------
    FileNotFoundError
        A missing folder, annotation file or image; the message says what to provide.
    ValueError
        An unknown ``dataset``, missing annotation columns or an empty test split.
    """
    if dataset not in _HELP:
        raise ValueError(f"dataset must be 'waterbirds' or 'celeba', got {dataset!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset} folder {root} does not exist: provide {_HELP[dataset]}")
    paths, y, s = (_waterbirds_split if dataset == "waterbirds" else _celeba_split)(root)
    if not paths:
        raise ValueError(f"the {dataset} copy in {root} has no test-split (split 2) images")
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(
            f"{len(absent)} of {len(paths)} {dataset} test images are missing, e.g. {absent[0]}: "
            f"provide {_HELP[dataset]}"
        )
    return paths, y, s


def load_clip(
    path: str | Path,
    device: str = "cpu",
    *,
    revision: str | None = None,
    local_files_only: bool = True,
    pretrained: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[Any, Any, Any]:
    """Load a CLIP model, its tokenizer and image processor: transformers or open_clip.

    Parameters
    ----------
    path : str or Path
        * a folder written by ``CLIPModel.save_pretrained`` and ``CLIPProcessor.save_pretrained``;
        * a Hugging Face hub id (``"openai/clip-vit-large-patch14"``) already in the local cache
          (``local_files_only=True`` by default: nothing is downloaded unless you say so);
        * ``"open_clip:<architecture>"`` (e.g. ``"open_clip:RN50"``, the paper's main model,
          which transformers does not port), with the weights file in ``pretrained``.
    device : str, default "cpu"
    revision : str, optional
        Hub revision (branch, tag or commit) for a hub id.
    local_files_only : bool, default True
        Refuse to download (a hub id must already be cached).
    pretrained : str or Path, optional
        For open_clip: a local checkpoint file, or one of open_clip's pretrained tags (which
        downloads, so only with ``local_files_only=False``). ``None`` gives random weights.
    cache_dir : str or Path, optional
        The Hugging Face cache to read a hub id from (default: the usual ``HF_HUB_CACHE``).

    Returns
    -------
    model, tokenizer, image_processor
        The model in eval mode on ``device``. open_clip models come wrapped in
        :class:`OpenCLIPAdapter` (``get_text_features`` / ``get_image_features``), with a
        tokenizer and an image processor that follow the transformers calling convention, so
        :func:`~papershelf.debias_vl.clip_text_features`, :func:`clip_image_features` and
        :func:`evaluate_clip_zero_shot` take either.

    Raises
    ------
    FileNotFoundError
        When the folder, its ``config.json`` or processor files, or the cached hub files are
        missing.
    """
    spec = str(path)
    if spec.startswith("open_clip:"):
        return _load_open_clip(spec.split(":", 1)[1], device, pretrained, local_files_only)
    from transformers import AutoProcessor, CLIPModel

    folder = Path(path)
    is_hub_id = not folder.exists() and spec.count("/") == 1 and not spec.startswith((".", "/"))
    if not is_hub_id and not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {folder}: provide {_CLIP_HELP}")
    kwargs: dict[str, Any] = {"local_files_only": local_files_only}
    if revision is not None:
        kwargs["revision"] = revision
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    source = spec if is_hub_id else folder
    try:
        processor = AutoProcessor.from_pretrained(source, **kwargs)
        model: Any = CLIPModel.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        where = "in the local Hugging Face cache" if is_hub_id else "from"
        raise FileNotFoundError(
            f"cannot load CLIP {where} {source} ({exc}): provide {_CLIP_HELP}"
        ) from exc
    tokenizer = getattr(processor, "tokenizer", None)
    image_processor = getattr(processor, "image_processor", None)
    if tokenizer is None or image_processor is None:
        raise FileNotFoundError(
            f"{source} lacks tokenizer or image processor files: provide {_CLIP_HELP}"
        )
    return model.to(device).eval(), tokenizer, image_processor


class OpenCLIPAdapter(torch.nn.Module):
    """An open_clip CLIP model with the two methods the package calls on a transformers CLIP.

    ``get_text_features(input_ids=...)`` runs ``encode_text`` and ``get_image_features
    (pixel_values=...)`` runs ``encode_image``; both return unnormalised projected embeddings
    (the callers normalise), as ``CLIPModel`` does.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def get_text_features(self, input_ids: torch.Tensor, **_: Any) -> torch.Tensor:
        return self.model.encode_text(input_ids)  # type: ignore[operator]

    def get_image_features(self, pixel_values: torch.Tensor, **_: Any) -> torch.Tensor:
        return self.model.encode_image(pixel_values)  # type: ignore[operator]


class _OpenCLIPTokenizer:
    """open_clip's tokenizer behind the transformers call ``tok(texts, return_tensors="pt")``."""

    def __init__(self, tokenizer: Callable[..., torch.Tensor]) -> None:
        self.tokenizer = tokenizer

    def __call__(self, texts: Any, **_: Any) -> dict[str, torch.Tensor]:
        ids = self.tokenizer(list(texts) if not isinstance(texts, str) else [texts])
        return {"input_ids": ids}


class _OpenCLIPImageProcessor:
    """open_clip's preprocessing transform behind ``proc(images=..., return_tensors="pt")``."""

    def __init__(self, preprocess: Callable[[Any], torch.Tensor]) -> None:
        self.preprocess = preprocess

    def __call__(self, images: Any, **_: Any) -> dict[str, torch.Tensor]:
        items = images if isinstance(images, list | tuple) else [images]
        return {"pixel_values": torch.stack([self.preprocess(im) for im in items])}


def _load_open_clip(
    arch: str, device: str, pretrained: str | Path | None, local_files_only: bool
) -> tuple[Any, Any, Any]:
    try:
        import open_clip
    except ImportError as exc:
        raise ImportError(
            'open_clip models need the openclip extra: pip install "papershelf-debias-vl[openclip]"'
        ) from exc
    if arch not in open_clip.list_models():
        raise ValueError(f"unknown open_clip architecture {arch!r}; see open_clip.list_models()")
    weights: str | None = None
    if pretrained is not None:
        if Path(pretrained).is_file():
            weights = str(pretrained)
        elif local_files_only:
            raise FileNotFoundError(
                f"pretrained={pretrained!r} is not a local file and local_files_only=True: "
                "pass a checkpoint path, or local_files_only=False to let open_clip download it"
            )
        else:
            weights = str(pretrained)
    model, _, preprocess = open_clip.create_model_and_transforms(
        arch, pretrained=weights, device=device
    )
    tokenizer = open_clip.get_tokenizer(arch)
    return (
        OpenCLIPAdapter(model).eval(),
        _OpenCLIPTokenizer(tokenizer),
        _OpenCLIPImageProcessor(preprocess),
    )


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
        model, tok, proc = load_clip(model, device)
        tokenizer = tokenizer or tok
        image_processor = image_processor or proc
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
