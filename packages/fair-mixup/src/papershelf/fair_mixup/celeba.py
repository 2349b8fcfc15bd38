"""The CelebA path of the paper: a ResNet-18 trunk on the user's own CelebA images.

CelebA cannot be redistributed, so nothing is vendored: point ``root`` to a folder with the
official files ``list_attr_celeba.txt``, ``list_eval_partition.txt`` and ``img_align_celeba/``.
The default ResNet-18 trunk needs ``torchvision`` and reading images needs Pillow
(the ``celeba`` extra: ``pip install "papershelf-fair-mixup[celeba]"``); a GPU is
advisable (the paper trains 99 / 249 epochs).

Official setting (``celeba/``): images resized to 256 x 256 and normalised with the ImageNet
mean/std, ResNet-18 (``pretrained=False``) up to its last block (512 x 8 x 8), head = global
average pool, 512 -> 512 -> 1, ReLU, sigmoid; Adam 1e-3 (separate optimisers for trunk and
head, which for Adam with one learning rate is the same as one optimiser); 64 per group (DP)
or 32 per (group, label) (EO); sensitive attribute ``Male``; targets ``Attractive``,
``Smiling``, ``Wavy_Hair``. Difference: the official loader walks through each group once
per epoch (shuffled, without replacement); here each iteration draws a fresh balanced batch
(:class:`~papershelf.fair_mixup.GroupBatchSampler`), the same law per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from papershelf.core import progress
from papershelf.core.validation import check_int
from papershelf.fair_mixup.metrics import (
    average_precision,
    demographic_parity_gap,
    equalized_odds_gap,
)
from papershelf.fair_mixup.training import GroupBatchSampler, train_step

__all__ = [
    "CelebAAttributes",
    "CelebAImages",
    "CelebAModel",
    "evaluate_celeba",
    "read_celeba_attributes",
    "train_celeba",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CelebAAttributes:
    """The CelebA attribute table.

    Attributes
    ----------
    filenames : tuple of str, length n
    names : tuple of str, length 40
    values : ndarray of int64, shape (n, 40)
        0/1 (the file's -1 becomes 0).
    partition : ndarray of int64, shape (n,)
        0 train, 1 validation, 2 test (official partition).
    """

    filenames: tuple[str, ...]
    names: tuple[str, ...]
    values: np.ndarray
    partition: np.ndarray

    def column(self, name: str) -> np.ndarray:
        """The 0/1 column of attribute ``name``, shape (n,)."""
        if name not in self.names:
            raise ValueError(f"unknown CelebA attribute {name!r}; known: {', '.join(self.names)}")
        return self.values[:, self.names.index(name)]


def read_celeba_attributes(root: str | Path) -> CelebAAttributes:
    """Read ``list_attr_celeba.txt`` and ``list_eval_partition.txt`` from ``root``.

    Parameters
    ----------
    root : str or Path
        The CelebA folder.

    Returns
    -------
    attrs : CelebAAttributes
    """
    root = Path(root)
    attr_file, part_file = root / "list_attr_celeba.txt", root / "list_eval_partition.txt"
    for f in (attr_file, part_file):
        if not f.is_file():
            raise FileNotFoundError(f"root={str(root)!r} has no {f.name}")
    lines = attr_file.read_text(encoding="utf-8").splitlines()
    names = tuple(lines[1].split())
    files, rows = [], []
    for line in lines[2:]:
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise ValueError(f"{attr_file.name}: malformed row {line[:60]!r}")
        files.append(parts[0])
        rows.append([int(v) > 0 for v in parts[1:]])
    split = {}
    for line in part_file.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            split[parts[0]] = int(parts[1])
    missing = [f for f in files if f not in split]
    if missing:
        raise ValueError(f"{part_file.name} has no partition for {len(missing)} image(s)")
    return CelebAAttributes(
        tuple(files),
        names,
        np.array(rows, dtype=np.int64).reshape(len(files), len(names)),
        np.array([split[f] for f in files], dtype=np.int64),
    )


class CelebAImages:
    """Loads CelebA images as normalised tensors, resized as in the official code.

    Parameters
    ----------
    root : str or Path
        The CelebA folder; images are read from ``root / image_dir``.
    filenames : sequence of str
        Image file names, indexed by row.
    image_size : int
        Side of the square resize (official: 256).
    image_dir : str
        Sub-folder of the images.
    """

    def __init__(
        self,
        root: str | Path,
        filenames: tuple[str, ...] | list[str],
        *,
        image_size: int = 256,
        image_dir: str = "img_align_celeba",
    ) -> None:
        image_size = check_int("image_size", image_size, low=1)
        self.folder = Path(root) / image_dir
        if not self.folder.is_dir():
            raise FileNotFoundError(f"no image folder {str(self.folder)!r}")
        self.filenames = tuple(filenames)
        self.image_size = image_size
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.filenames)

    def __getitem__(self, i: int) -> Tensor:
        """Image ``i`` as a float32 tensor of shape (3, image_size, image_size)."""
        try:
            from PIL import Image
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("reading CelebA images needs Pillow: pip install pillow") from err
        with Image.open(self.folder / self.filenames[i]) as raw:
            size = (self.image_size, self.image_size)
            rgb = raw.convert("RGB").resize(size, Image.Resampling.BILINEAR)
            arr = np.asarray(rgb, dtype=np.float32) / 255.0
        x = torch.from_numpy(arr).permute(2, 0, 1)
        return (x - self._mean) / self._std

    def batch(self, idx: Tensor | np.ndarray | list[int]) -> Tensor:
        """Images of the given rows, shape (B, 3, image_size, image_size)."""
        rows = idx.tolist() if hasattr(idx, "tolist") else list(idx)
        return torch.stack([self[int(i)] for i in rows])


class CelebAModel(nn.Module):
    """ResNet-18 trunk (512 x 8 x 8 for 256-pixel inputs) and the official head.

    Parameters
    ----------
    trunk : nn.Module, optional
        Any encoder to ``(B, width, H, W)`` features; by default torchvision's ResNet-18
        (``weights=None``) without its average pool and classifier.
    width : int
        Channels of the trunk's output (512 for ResNet-18).
    """

    def __init__(self, trunk: nn.Module | None = None, width: int = 512) -> None:
        super().__init__()
        if trunk is None:
            try:
                import torchvision
            except ImportError as err:
                raise ImportError(
                    "the default ResNet-18 trunk needs torchvision "
                    "(pip install torchvision), or pass trunk="
                ) from err
            resnet = torchvision.models.resnet18(weights=None)
            trunk = nn.Sequential(*list(resnet.children())[:-2])
        self.trunk = trunk
        self.fc1 = nn.Linear(width, 512)
        self.fc2 = nn.Linear(512, 1)

    def features(self, x: Tensor) -> Tensor:
        """Trunk features, shape (B, width, H, W)."""
        return self.trunk(x)

    def head(self, h: Tensor) -> Tensor:
        """Probabilities from features, shape (B, 1)."""
        pooled = h.mean(dim=(2, 3))
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(pooled))))

    def forward(self, x: Tensor) -> Tensor:
        """Probabilities, shape (B, 1)."""
        return self.head(self.features(x))


def evaluate_celeba(
    model: nn.Module,
    images: CelebAImages,
    rows: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """AP and soft DP/EO gaps of ``model`` on the given image rows (labels ``y``, groups ``a``)."""
    was_training = model.training
    model.eval()
    scores = []
    try:
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                xb = images.batch(rows[i : i + batch_size]).to(device)
                scores.append(model(xb).reshape(-1).cpu())
    finally:
        model.train(was_training)
    s = torch.cat(scores).numpy()
    return {
        "ap": average_precision(y, s),
        "dp_gap": demographic_parity_gap(s, a),
        "eo_gap": equalized_odds_gap(s, y, a),
    }


def train_celeba(
    model: nn.Module,
    images: CelebAImages,
    attrs: CelebAAttributes,
    *,
    target: str = "Attractive",
    sensitive: str = "Male",
    method: Literal["erm", "gapreg", "mixup", "manifold_mixup"] = "mixup",
    mode: Literal["dp", "eo"] = "dp",
    lam: float = 20.0,
    epochs: int = 99,
    iters_per_epoch: int | None = None,
    batch_size: int | None = None,
    lr: float = 1e-3,
    eval_every: int = 5,
    max_eval_rows: int | None = None,
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
    show_progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Train on CelebA's train partition as the official code does; evaluate on val/test.

    Parameters
    ----------
    model : nn.Module
        E.g. :class:`CelebAModel` (``features``/``head`` needed for manifold mixup), on
        ``device``.
    images : CelebAImages
        Rows aligned with ``attrs``.
    attrs : CelebAAttributes
    target, sensitive : str
        Attribute names (official: Attractive / Smiling / Wavy_Hair, and Male).
    method : {"erm", "gapreg", "mixup", "manifold_mixup"}
    mode : {"dp", "eo"}
    lam : float
        Official defaults: 20 (DP), 30 (EO).
    epochs : int
        Official: 99 (DP), 249 (EO).
    iters_per_epoch : int, optional
        Default: the smallest group (DP) or cell (EO) divided by the batch size, i.e. one
        pass, as the official loaders.
    batch_size : int, optional
        Per group (DP, official 64) or per (group, label) (EO, official 32).
    lr : float
        Adam learning rate.
    eval_every : int
        Evaluate every this many epochs (and after the last).
    max_eval_rows : int, optional
        Evaluate on at most this many rows of val/test (first rows), to save time.
    device : str or torch.device
    generator : torch.Generator, optional
    show_progress : bool, optional

    Returns
    -------
    history : list of dict
        ``epoch`` and ``val_*`` / ``test_*`` AP and gaps at each evaluation.
    """
    if len(images) != len(attrs.filenames):
        raise ValueError("images and attrs must have the same rows")
    y_all, a_all = attrs.column(target), attrs.column(sensitive)
    train_rows = np.nonzero(attrs.partition == 0)[0]
    bs = batch_size or (64 if mode == "dp" else 32)
    sampler = GroupBatchSampler(
        a_all[train_rows], y_all[train_rows] if mode == "eo" else None, batch_size=bs,
        generator=generator,
    )  # fmt: skip
    if iters_per_epoch is None:
        iters_per_epoch = max(1, min(len(c) for c in sampler.cells.values()) // bs)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    y_t = torch.as_tensor(y_all, dtype=torch.float32)
    history: list[dict[str, Any]] = []
    evals = {}
    for split_id, split in ((1, "val"), (2, "test")):
        rows = np.nonzero(attrs.partition == split_id)[0][:max_eval_rows]
        evals[split] = (rows, y_all[rows], a_all[rows])
    bar = progress(
        total=epochs * iters_per_epoch, desc=f"celeba {target} {method} {mode}",
        disable=None if show_progress is None else not show_progress,
    )  # fmt: skip
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            for _ in range(iters_per_epoch):
                i0, i1 = sampler.sample()
                r0, r1 = train_rows[i0.numpy()], train_rows[i1.numpy()]
                train_step(
                    model, optimizer,
                    images.batch(r0).to(device), y_t[r0].to(device),
                    images.batch(r1).to(device), y_t[r1].to(device),
                    method=method, mode=mode, lam=lam, generator=generator,
                )  # fmt: skip
                bar.update(1)
            if epoch % eval_every == 0 or epoch == epochs:
                row: dict[str, Any] = {"epoch": epoch}
                for split, (rows, yy, aa) in evals.items():
                    if len(rows):
                        m = evaluate_celeba(model, images, rows, yy, aa, device=device)
                        row.update({f"{split}_{k}": v for k, v in m.items()})
                history.append(row)
    finally:
        bar.close()
    return history
