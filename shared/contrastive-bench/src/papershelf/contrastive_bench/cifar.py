"""Paper-scale SimCLR for ``--full``: a torchvision ResNet with a CIFAR stem on CIFAR-10 or STL10.

Shared by robust-infonce and hard-negatives (the loss is a parameter). The recipe is the official
HCL/DCL image code (``github.com/joshr17/HCL``, ``image/``): ResNet-50 with a 3x3 stride-1 stem
and no max-pool, projection head 2048 -> 512 (BN, ReLU) -> 128, batch 256, Adam 1e-3 with weight
decay 1e-6, 400 epochs, SimCLR augmentations at 32x32 (STL10 is cropped to 32x32 for training,
as the official code does), then a linear classifier on the frozen encoder trained on augmented
images for 100 epochs (Adam 1e-3, batch 512).

Data are read from the standard on-disk formats by the small readers below; nothing is
downloaded and torchvision's dataset classes are not used (they check md5 sums, so they cannot
run on generated test data). The folder is ``$PAPERSHELF_DATA`` (or ``PaperScaleConfig.data_root``)::

    cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch   (CIFAR-10, python version)
    stl10_binary/train_X.bin, train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin   (STL10)

Needs the ``cifar`` extra (torchvision) and a GPU for reasonable run times. Every size of the
run can be made small through :class:`PaperScaleConfig` (or the ``$PAPERSHELF_FULL_OVERRIDES``
JSON object), which is how the tests run the whole ``--full`` path on CPU in seconds.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from papershelf.core.io import DATA_ENV, data_root

__all__ = [
    "DATA_ENV",
    "OVERRIDES_ENV",
    "SMOKE_OVERRIDES",
    "PaperScaleConfig",
    "PaperScaleData",
    "SimCLRNet",
    "linear_probe",
    "load_data",
    "read_cifar10",
    "read_stl10",
    "run_grid",
    "train_and_probe",
    "train_simclr",
    "write_fake_cifar10",
    "write_fake_stl10",
]

LossFn = Callable[[Tensor, Tensor], Tensor]

OVERRIDES_ENV = "PAPERSHELF_FULL_OVERRIDES"  # JSON object of PaperScaleConfig fields
# the smallest run of the whole --full path (seconds on a CPU, with write_fake_cifar10 /
# write_fake_stl10 data): for tests and smoke runs, e.g. OVERRIDES_ENV=json.dumps(SMOKE_OVERRIDES)
SMOKE_OVERRIDES: dict[str, int | str] = {
    "arch": "resnet18",
    "epochs": 1,
    "batch_size": 2,
    "max_steps": 1,
    "linear_epochs": 1,
    "linear_batch_size": 4,
    "max_linear_steps": 1,
    "max_images": 8,
    "workers": 0,
}

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
STL10_DIR = "stl10_binary"
STL10_FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin")
STL10_SIZE = 96
# the official code normalises STL10 with the CIFAR-10 statistics too
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
DATASETS = ("cifar10", "stl10")
LINEAR_PROTOCOLS = ("official", "features")


class Images(Protocol):
    """Images as ``len(x)`` and ``x[i] -> ndarray (H, W, 3) uint8``."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> np.ndarray: ...


@dataclass
class PaperScaleConfig:
    """SimCLR training and linear evaluation at paper scale (official HCL image-code defaults).

    The ``max_*`` fields cap the run for tests and smoke checks; a run with any cap set is not
    the paper's setting (:attr:`is_paper_scale` is then ``False``).
    """

    dataset: str = "cifar10"  # "cifar10" | "stl10" (SimCLR on train+unlabeled, as the HCL code)
    arch: str = "resnet50"  # torchvision name; conv1 -> 3x3 stride 1, no max-pool, no fc
    epochs: int = 400
    batch_size: int = 256  # 2 * 256 - 2 = 510 negatives per anchor
    lr: float = 1e-3  # Adam, as the official image code
    weight_decay: float = 1e-6
    proj_hidden: int = 512
    feature_dim: int = 128
    blur: bool = True  # official: 3x3 Gaussian blur, sigma ~ U(0.1, 2), p = 0.5 (cv2 there)
    linear_epochs: int = 100
    linear_batch_size: int = 512
    lin_lr: float = 1e-3  # Adam, weight decay 1e-6, as the official linear.py
    # "official": linear.py's protocol: the classifier reads the frozen encoder on augmented
    # training images, with the encoder's BatchNorm in train mode (its running statistics keep
    # moving, as in the official code); "features": features of un-augmented images computed
    # once in eval mode (much cheaper, a common variant)
    linear_protocol: str = "official"
    workers: int = 8  # DataLoader worker processes (0: load in the main process)
    max_images: int | None = None  # use only the first n images of each split
    max_steps: int | None = None  # SimCLR steps per epoch
    max_linear_steps: int | None = None  # classifier steps per linear epoch
    data_root: str | None = None  # None: $PAPERSHELF_DATA

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.linear_protocol not in LINEAR_PROTOCOLS:
            raise ValueError(
                f"linear_protocol must be one of {LINEAR_PROTOCOLS}, got {self.linear_protocol!r}"
            )
        if not isinstance(self.arch, str) or not self.arch.startswith(("resnet", "wide_resnet")):
            raise ValueError(f"arch must name a torchvision ResNet, got {self.arch!r}")
        minimum = {
            "epochs": 1,
            "batch_size": 2,
            "proj_hidden": 1,
            "feature_dim": 1,
            "linear_epochs": 1,
            "linear_batch_size": 1,
            "workers": 0,
        }
        for name, low in minimum.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("max_images", "max_steps", "max_linear_steps"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        for name in ("lr", "weight_decay", "lin_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if not isinstance(self.blur, bool):
            raise ValueError(f"blur must be a bool, got {self.blur!r}")

    @property
    def is_paper_scale(self) -> bool:
        """``True`` unless a ``max_*`` cap shrinks the run."""
        return self.max_images is None and self.max_steps is None and self.max_linear_steps is None

    def with_overrides(self, overrides: Mapping[str, Any] | str | None = None) -> PaperScaleConfig:
        """A copy with fields replaced.

        Parameters
        ----------
        overrides : mapping or str, optional
            Field values, or a JSON object as text. ``None`` reads ``$PAPERSHELF_FULL_OVERRIDES``
            (no variable: an unchanged copy), e.g.
            ``PAPERSHELF_FULL_OVERRIDES='{"arch": "resnet18", "epochs": 1, "max_steps": 2}'``.
        """
        source = "overrides"
        if overrides is None:
            overrides = os.environ.get(OVERRIDES_ENV) or "{}"
            source = OVERRIDES_ENV
        if isinstance(overrides, str):
            try:
                overrides = json.loads(overrides)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{source} is not valid JSON: {exc}") from exc
        if not isinstance(overrides, Mapping):
            raise ValueError(f"{source} must be a JSON object of PaperScaleConfig fields")
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"{source} names unknown PaperScaleConfig fields: {unknown}")
        return dataclasses.replace(self, **overrides)


# ---------------------------------------------------------------------------------------------
# data: the standard on-disk formats, read without torchvision


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The CIFAR-10 batches are pickles: allow only the numpy names an array needs."""

    ALLOWED = frozenset({"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):  # bytes in protocol-2 pickles from Python 3
            return super().find_class(module, name)
        if module.split(".")[0] != "numpy" or name not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR-10 batch")
        if module.startswith("numpy.core") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core" + module[len("numpy.core") :]  # files pickled by numpy 1
        return super().find_class(module, name)


def _missing(folder: Path, names: Sequence[str], what: str, hint: str) -> FileNotFoundError:
    absent = [n for n in names if not (folder / n).is_file()]
    return FileNotFoundError(
        f"{what} not found: {folder} lacks {', '.join(absent)} (expected {', '.join(names)}; "
        f"{hint}; nothing is downloaded)"
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as fh:
        batch = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a CIFAR-10 batch (a pickled dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path} is not a CIFAR-10 batch: no 'data' and 'labels' entries")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(
            f"{path}: expected 'data' of shape (n, 3072) and n labels, got {data.shape} "
            f"and {labels.shape}"
        )
    # rows are channel-major 3 x 32 x 32; images are (n, 32, 32, 3)
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels


def read_cifar10(root: str | os.PathLike[str]) -> PaperScaleData:
    """Read CIFAR-10 from its python-version pickles under ``root/cifar-10-batches-py``.

    Parameters
    ----------
    root : path
        The folder that holds ``cifar-10-batches-py/`` (``data_batch_1`` ... ``data_batch_5``,
        ``test_batch``, from ``cifar-10-python.tar.gz``).

    Returns
    -------
    PaperScaleData
        50000 training images (uint8, shape (n, 32, 32, 3)) used both for SimCLR and for the
        linear classifier, and 10000 test images, with labels in 0..9.

    References
    ----------
    A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
    """
    folder = Path(root) / CIFAR10_DIR
    names = (*CIFAR10_TRAIN, CIFAR10_TEST)
    if not all((folder / n).is_file() for n in names):
        raise _missing(
            folder, names, "CIFAR-10", "unpack cifar-10-python.tar.gz into $PAPERSHELF_DATA"
        )
    parts = [_read_cifar_batch(folder / n) for n in CIFAR10_TRAIN]
    train = np.concatenate([p[0] for p in parts])
    train_labels = np.concatenate([p[1] for p in parts])
    test, test_labels = _read_cifar_batch(folder / CIFAR10_TEST)
    return PaperScaleData("cifar10", train, train, train_labels, test, test_labels)


class _ColumnMajorImages:
    """STL10 ``*_X.bin``: uint8 images of 3 x 96 x 96, each channel stored column-major."""

    def __init__(self, path: Path) -> None:
        per_image = 3 * STL10_SIZE * STL10_SIZE
        size = path.stat().st_size
        if size == 0 or size % per_image:
            raise ValueError(f"{path}: size {size} is not a multiple of {per_image} (3x96x96)")
        # memory-mapped: unlabeled_X.bin alone is 2.8 GB
        self.raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // per_image, 3, 96, 96))

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i: int) -> np.ndarray:
        # stored (c, w, h); images are (h, w, c)
        return np.ascontiguousarray(self.raw[i].transpose(2, 1, 0))


class _Joined:
    """Several image collections read as one."""

    def __init__(self, *parts: Images) -> None:
        self.parts = parts
        self.ends = list(np.cumsum([len(p) for p in parts]))

    def __len__(self) -> int:
        return int(self.ends[-1]) if self.ends else 0

    def __getitem__(self, i: int) -> np.ndarray:
        k = bisect.bisect_right(self.ends, i)
        return self.parts[k][i - (int(self.ends[k - 1]) if k else 0)]


def _read_stl_labels(path: Path, n: int) -> np.ndarray:
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1  # stored 1..10
    if len(labels) != n or (n and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"{path}: expected {n} labels in 1..10")
    return labels


def read_stl10(root: str | os.PathLike[str], *, unlabeled: bool = True) -> PaperScaleData:
    """Read STL10 from its binary version under ``root/stl10_binary`` (memory-mapped).

    Parameters
    ----------
    root : path
        The folder that holds ``stl10_binary/`` (from ``stl10_binary.tar.gz``).
    unlabeled : bool, default True
        SimCLR trains on ``train`` + the 100000 ``unlabeled`` images (the official HCL split
        ``train+unlabeled``); ``False`` uses the 5000 labelled training images only.

    Returns
    -------
    PaperScaleData
        SimCLR images, the 5000 labelled training images and the 8000 test images, all 96x96
        (images (h, w, 3) uint8; labels 0..9).

    References
    ----------
    A. Coates, H. Lee, A. Y. Ng, "An Analysis of Single-Layer Networks in Unsupervised Feature
    Learning", AISTATS 2011.
    """
    folder = Path(root) / STL10_DIR
    names = STL10_FILES if unlabeled else STL10_FILES[:4]
    if not all((folder / n).is_file() for n in names):
        raise _missing(folder, names, "STL10", "unpack stl10_binary.tar.gz into $PAPERSHELF_DATA")
    train = _ColumnMajorImages(folder / "train_X.bin")
    test = _ColumnMajorImages(folder / "test_X.bin")
    train_labels = _read_stl_labels(folder / "train_y.bin", len(train))
    test_labels = _read_stl_labels(folder / "test_y.bin", len(test))
    pretrain: Images = train
    if unlabeled:
        pretrain = _Joined(train, _ColumnMajorImages(folder / "unlabeled_X.bin"))
    return PaperScaleData("stl10", pretrain, train, train_labels, test, test_labels)


@dataclass
class PaperScaleData:
    """The images of a paper-scale run: SimCLR images, labelled training and test images."""

    name: str
    pretrain: Images  # SimCLR training images (labels unused)
    train: Images  # the linear classifier's training images
    train_labels: np.ndarray
    test: Images
    test_labels: np.ndarray
    num_classes: int = 10


def _data_root(cfg: PaperScaleConfig) -> Path:
    root = cfg.data_root or data_root()  # $PAPERSHELF_DATA: cifar-10-batches-py/, stl10_binary/
    if not root or not os.path.isdir(root):
        expected = CIFAR10_DIR if cfg.dataset == "cifar10" else STL10_DIR
        raise RuntimeError(
            f"--full needs a local {cfg.dataset} copy: set {DATA_ENV} to the folder that holds "
            f"{expected}/ (got {root!r}; nothing is downloaded)"
        )
    return Path(root)


def load_data(cfg: PaperScaleConfig) -> PaperScaleData:
    """Read ``cfg.dataset`` from ``cfg.data_root`` or ``$PAPERSHELF_DATA``."""
    root = _data_root(cfg)
    return read_cifar10(root) if cfg.dataset == "cifar10" else read_stl10(root)


def _import_torchvision() -> ModuleType:
    try:
        import torchvision
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "--full trains a torchvision ResNet: install the cifar extra "
            "(pip install 'papershelf-core[cifar]', torchvision matching your torch build)"
        ) from exc
    return torchvision


def _transforms(tv: ModuleType, cfg: PaperScaleConfig) -> tuple[Any, Any]:
    """The official SimCLR augmentations (at 32x32) and the plain test transform."""
    T = tv.transforms
    augment = [
        T.ToPILImage(),
        T.RandomResizedCrop(32),
        T.RandomHorizontalFlip(p=0.5),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
    ]
    if cfg.blur:
        augment.append(T.RandomApply([T.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.5))
    tail = [T.ToTensor(), T.Normalize(MEAN, STD)]
    return T.Compose(augment + tail), T.Compose([T.ToPILImage(), *tail])


class _TwoViews(torch.utils.data.Dataset):
    """Two augmentations of an image; with probability ``noisy_rate`` view 2 is another image."""

    def __init__(self, images: Images, n: int, transform: Any, noisy_rate: float) -> None:
        self.images, self.n, self.transform, self.noisy_rate = images, n, transform, noisy_rate

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        j = i
        if self.noisy_rate > 0 and float(torch.rand(1)) < self.noisy_rate:
            j = int(torch.randint(0, self.n, (1,)))
        return self.transform(self.images[i]), self.transform(self.images[j])


class _Labelled(torch.utils.data.Dataset):
    def __init__(self, images: Images, labels: np.ndarray, n: int, transform: Any) -> None:
        self.images, self.labels, self.n, self.transform = images, labels, n, transform

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.transform(self.images[i]), int(self.labels[i])


class SimCLRNet(nn.Module):
    """ResNet backbone with a CIFAR stem and the official projection head (BN, ReLU).

    ``forward(x)`` with x of shape (B, 3, H, W) returns the L2-normalised backbone features
    (B, width) and projections (B, feature_dim), as the official ``Model``.
    """

    def __init__(self, cfg: PaperScaleConfig, tv: ModuleType | None = None) -> None:
        super().__init__()
        tv = tv or _import_torchvision()
        builder = getattr(tv.models, cfg.arch, None)
        if builder is None:
            raise ValueError(f"arch {cfg.arch!r} is not a torchvision model")
        net = builder(weights=None)
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
        self.width = int(net.fc.in_features)
        net.fc = nn.Identity()
        self.backbone = net
        self.head = nn.Sequential(
            nn.Linear(self.width, cfg.proj_hidden, bias=False),
            nn.BatchNorm1d(cfg.proj_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.proj_hidden, cfg.feature_dim),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.backbone(x)
        return F.normalize(h, dim=1), F.normalize(self.head(h), dim=1)


def _count(n: int, cap: int | None) -> int:
    return n if cap is None else min(n, cap)


def _loader(data: Any, cfg: PaperScaleConfig, device: torch.device, **kw: Any) -> Any:
    return torch.utils.data.DataLoader(
        data,
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.workers > 0,
        **kw,
    )


def _progress(ctx: Any, it: range, desc: str) -> Any:
    return ctx.progress(it, total=len(it), desc=desc) if ctx is not None else it


def train_simclr(
    model: SimCLRNet,
    loss_fn: LossFn,
    data: PaperScaleData,
    cfg: PaperScaleConfig,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    noisy_rate: float = 0.0,
    ctx: Any = None,
) -> list[float]:
    """Train ``model`` with SimCLR on ``data.pretrain``; return the mean loss of each epoch.

    Parameters
    ----------
    model : SimCLRNet
        Trained in place (on ``device``).
    loss_fn : callable
        ``loss_fn(z1, z2) -> scalar`` on the two views' L2-normalised projections, shape (B, d).
    data, cfg : PaperScaleData, PaperScaleConfig
    seed : int
        Seeds the shuffling, the augmentations and the noisy views.
    noisy_rate : float, default 0
        Probability that view 2 of a pair is an augmentation of another random image (a
        false-positive pair, the noisy views of RINCE).
    ctx : ReproduceContext, optional
        For the progress bar.
    """
    if not 0.0 <= noisy_rate <= 1.0:
        raise ValueError(f"noisy_rate must be in [0, 1], got {noisy_rate}")
    tv = _import_torchvision()
    device = torch.device(device)
    augment, _ = _transforms(tv, cfg)
    n = _count(len(data.pretrain), cfg.max_images)
    if n < cfg.batch_size:
        raise ValueError(
            f"batch_size={cfg.batch_size} exceeds the {n} SimCLR images of {data.name} "
            "(the last incomplete batch is dropped, as the official code)"
        )
    torch.manual_seed(seed)
    loader = _loader(
        _TwoViews(data.pretrain, n, augment, noisy_rate),
        cfg,
        device,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    losses = []
    for _ in _progress(ctx, range(cfg.epochs), f"SimCLR {data.name} seed {seed}"):
        model.train()
        total, steps = torch.zeros((), device=device), 0
        for x1, x2 in loader:
            _, z1 = model(x1.to(device, non_blocking=True))
            _, z2 = model(x2.to(device, non_blocking=True))
            loss = loss_fn(z1, z2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
            steps += 1
            if cfg.max_steps is not None and steps >= cfg.max_steps:
                break
        losses.append(float(total) / steps)
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(f"SimCLR loss became {losses[-1]} at epoch {len(losses)}")
    return losses


def _accuracy(clf: nn.Module, feats: Tensor, labels: Tensor) -> float:
    with torch.no_grad():
        return float((clf(feats).argmax(1) == labels).double().mean())


def linear_probe(
    model: SimCLRNet,
    data: PaperScaleData,
    cfg: PaperScaleConfig,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    ctx: Any = None,
) -> float:
    """Top-1 accuracy (a fraction in [0, 1]) of a linear classifier on the frozen backbone.

    ``cfg.linear_protocol="official"`` follows the official ``linear.py``: the classifier is
    trained on augmented training images for ``cfg.linear_epochs`` epochs (Adam, batch
    ``cfg.linear_batch_size``) with the encoder frozen but in train mode, and evaluated once
    at the end on the test images without augmentation (STL10 test images at 96x96, as there).
    ``"features"`` trains on features of un-augmented images computed once in eval mode.
    """
    tv = _import_torchvision()
    device = torch.device(device)
    augment, plain = _transforms(tv, cfg)
    model.to(device)
    backbone = model.backbone
    n_train = _count(len(data.train), cfg.max_images)
    n_test = _count(len(data.test), cfg.max_images)
    torch.manual_seed(seed)
    clf = nn.Linear(model.width, data.num_classes).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=cfg.lin_lr, weight_decay=1e-6)

    def features(images: Images, labels: np.ndarray, n: int) -> tuple[Tensor, Tensor]:
        loader = _loader(
            _Labelled(images, labels, n, plain), cfg, device, batch_size=cfg.linear_batch_size
        )
        backbone.eval()
        out, ys = [], []
        with torch.no_grad():
            for x, y in loader:
                out.append(backbone(x.to(device, non_blocking=True)).float())
                ys.append(y.to(device))
        return torch.cat(out), torch.cat(ys)

    def step(h: Tensor, y: Tensor) -> None:
        loss = F.cross_entropy(clf(h), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    epochs = _progress(ctx, range(cfg.linear_epochs), f"linear probe seed {seed}")
    if cfg.linear_protocol == "features":
        ftr, ytr = features(data.train, data.train_labels, n_train)
        g = torch.Generator(device=device).manual_seed(seed)
        for _ in epochs:
            order = torch.randperm(len(ytr), device=device, generator=g)
            for k, idx in enumerate(order.split(cfg.linear_batch_size)):
                if cfg.max_linear_steps is not None and k >= cfg.max_linear_steps:
                    break
                step(ftr[idx], ytr[idx])
    else:
        for p in backbone.parameters():
            p.requires_grad_(False)
        loader = _loader(
            _Labelled(data.train, data.train_labels, n_train, augment),
            cfg,
            device,
            batch_size=cfg.linear_batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        for _ in epochs:
            backbone.train()  # as linear.py: BatchNorm statistics follow the augmented images
            for k, (x, y) in enumerate(loader):
                if cfg.max_linear_steps is not None and k >= cfg.max_linear_steps:
                    break
                with torch.no_grad():
                    h = backbone(x.to(device, non_blocking=True))
                step(h, y.to(device))
        for p in backbone.parameters():
            p.requires_grad_(True)
    fte, yte = features(data.test, data.test_labels, n_test)
    return _accuracy(clf, fte, yte)


def train_and_probe(
    ctx: Any,
    loss_fn: LossFn,
    cfg: PaperScaleConfig,
    seed: int,
    noisy_rate: float = 0.0,
    data: PaperScaleData | None = None,
) -> float:
    """Train SimCLR with ``loss_fn`` and return the linear-probe top-1 accuracy in [0, 1].

    ``data`` defaults to :func:`load_data` ``(cfg)``; ``ctx`` (a ``ReproduceContext``) gives the
    device and the progress bars.
    """
    data = load_data(cfg) if data is None else data
    device = getattr(ctx, "device", "cpu")
    torch.manual_seed(seed)
    model = SimCLRNet(cfg)
    train_simclr(
        model, loss_fn, data, cfg, seed=seed, device=device, noisy_rate=noisy_rate, ctx=ctx
    )
    return linear_probe(model, data, cfg, seed=seed, device=device, ctx=ctx)


def run_grid(
    ctx: Any, methods: Sequence[tuple[str, LossFn, float]], cfg: PaperScaleConfig
) -> dict[str, list[float]]:
    """Linear top-1 accuracy in [0, 1] per method name over ``ctx.seeds``.

    ``methods`` are ``(name, loss_fn, noisy_rate)``. The data are read once, before any
    training, so a missing data set fails at once.
    """
    _import_torchvision()
    data = load_data(cfg)
    out: dict[str, list[float]] = {}
    for name, loss_fn, noisy in methods:
        for seed in ctx.seeds:
            out.setdefault(name, []).append(train_and_probe(ctx, loss_fn, cfg, seed, noisy, data))
    return out


# ---------------------------------------------------------------------------------------------
# generated folders in the standard formats, for tests and smoke runs


def write_fake_cifar10(root: str | os.PathLike[str], *, per_batch: int = 20, seed: int = 0) -> Path:
    """Write random images in the CIFAR-10 python format: ``root/cifar-10-batches-py``.

    Five training batches and a test batch of ``per_batch`` images each, labels cycling
    through 0..9, and ``batches.meta``. Returns the ``cifar-10-batches-py`` folder.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR10_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate((*CIFAR10_TRAIN, CIFAR10_TEST)):
        batch = {
            "batch_label": f"fake batch {i}",
            "labels": [int(k % 10) for k in range(per_batch)],
            "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            "filenames": [f"fake_{i}_{k}.png" for k in range(per_batch)],
        }
        with (folder / name).open("wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    meta = {"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": per_batch}
    with (folder / "batches.meta").open("wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return folder


def write_fake_stl10(
    root: str | os.PathLike[str],
    *,
    n_train: int = 20,
    n_test: int = 20,
    n_unlabeled: int = 20,
    seed: int = 0,
) -> Path:
    """Write random 96x96 images in the STL10 binary format: ``root/stl10_binary``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / STL10_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tofile(folder / f"{split}_X.bin")
        if split != "unlabeled":
            (np.arange(n) % 10 + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    return folder
