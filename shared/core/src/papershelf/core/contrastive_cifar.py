"""Paper-scale SimCLR on CIFAR-10 for ``--full``: a torchvision ResNet with a CIFAR stem.

Shared by robust-infonce and hard-negatives (the loss is a parameter).

Needs a GPU for reasonable run times, ``torchvision`` (not a declared dependency: it must match
the installed torch build, so install it yourself) and a local copy of CIFAR-10 in the folder
named by the ``PAPERSHELF_DATA`` environment variable (``torchvision.datasets.CIFAR10`` layout;
nothing is downloaded).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class PaperScaleConfig:
    """SimCLR training and linear evaluation at paper scale (official image-code defaults)."""

    arch: str = "resnet50"  # torchvision name; conv1 -> 3x3 stride 1, no max-pool, no fc
    epochs: int = 400
    batch_size: int = 256
    lr: float = 1e-3  # Adam, as the official image code
    weight_decay: float = 1e-6
    proj_hidden: int = 512
    feature_dim: int = 128
    linear_epochs: int = 100  # Adam 1e-3, batch 512 on frozen features
    workers: int = 8


def _import_torchvision() -> ModuleType:
    try:
        return importlib.import_module("torchvision")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "--full runs SimCLR on CIFAR-10 and needs torchvision (pip install torchvision matching "
            "your torch build) and a local CIFAR-10 copy in $PAPERSHELF_DATA"
        ) from exc


def _data_root() -> str:
    root = os.environ.get("PAPERSHELF_DATA")
    if not root or not os.path.isdir(root):
        raise RuntimeError(
            "--full needs a local CIFAR-10 copy: set PAPERSHELF_DATA to the folder that holds "
            "cifar-10-batches-py (nothing is downloaded)"
        )
    return root


class _TwoViews(torch.utils.data.Dataset):
    """Two augmentations of an image; with probability ``noisy_rate`` view 2 is another image."""

    def __init__(self, base: Any, transform: Any, noisy_rate: float) -> None:
        self.base, self.transform, self.noisy_rate = base, transform, noisy_rate

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        img, _ = self.base[i]
        j = i
        if self.noisy_rate > 0 and float(torch.rand(1)) < self.noisy_rate:
            j = int(torch.randint(0, len(self.base), (1,)))
        other, _ = self.base[j]
        return self.transform(img), self.transform(other)


class SimCLRNet(nn.Module):
    """ResNet backbone with a CIFAR stem and the official projection head (BN, ReLU)."""

    def __init__(self, tv: ModuleType, cfg: PaperScaleConfig) -> None:
        super().__init__()
        net = getattr(tv.models, cfg.arch)(weights=None)
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
        width = net.fc.in_features
        net.fc = nn.Identity()
        self.backbone = net
        self.head = nn.Sequential(
            nn.Linear(width, cfg.proj_hidden, bias=False),
            nn.BatchNorm1d(cfg.proj_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.proj_hidden, cfg.feature_dim),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.backbone(x)
        return F.normalize(h, dim=1), F.normalize(self.head(h), dim=1)


def train_and_probe(
    ctx: Any, loss_fn: LossFn, cfg: PaperScaleConfig, seed: int, noisy_rate: float = 0.0
) -> float:
    """Train SimCLR with ``loss_fn`` and return the linear-probe top-1 accuracy (%) on the test set."""
    tv = _import_torchvision()
    root = _data_root()
    T = tv.transforms
    norm = T.Normalize([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])
    train_tf = T.Compose(
        [
            T.RandomResizedCrop(32),
            T.RandomHorizontalFlip(p=0.5),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.ToTensor(),
            norm,
        ]
    )
    test_tf = T.Compose([T.ToTensor(), norm])
    torch.manual_seed(seed)
    base = tv.datasets.CIFAR10(root, train=True, download=False)
    loader = torch.utils.data.DataLoader(
        _TwoViews(base, train_tf, noisy_rate),
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=cfg.workers,
        pin_memory=True,
    )
    device = torch.device(ctx.device)
    model = SimCLRNet(tv, cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for _ in ctx.progress(range(cfg.epochs), total=cfg.epochs, desc=f"SimCLR seed {seed}"):
        model.train()
        for x1, x2 in loader:
            _, z1 = model(x1.to(device, non_blocking=True))
            _, z2 = model(x2.to(device, non_blocking=True))
            loss = loss_fn(z1, z2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return _linear_probe(tv, model, root, test_tf, cfg, device)


def _features(
    model: SimCLRNet, data: Any, device: torch.device, workers: int
) -> tuple[Tensor, Tensor]:
    loader = torch.utils.data.DataLoader(data, batch_size=512, num_workers=workers)
    feats, labels = [], []
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            feats.append(model.backbone(x.to(device)).float())
            labels.append(y.to(device))
    return torch.cat(feats), torch.cat(labels)


def _linear_probe(
    tv: ModuleType,
    model: SimCLRNet,
    root: str,
    tf: Any,
    cfg: PaperScaleConfig,
    device: torch.device,
) -> float:
    ftr, ytr = _features(
        model, tv.datasets.CIFAR10(root, train=True, transform=tf), device, cfg.workers
    )
    fte, yte = _features(
        model, tv.datasets.CIFAR10(root, train=False, transform=tf), device, cfg.workers
    )
    clf = nn.Linear(ftr.shape[1], 10).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3, weight_decay=1e-6)
    for _ in range(cfg.linear_epochs):
        for idx in torch.randperm(len(ytr), device=device).split(512):
            loss = F.cross_entropy(clf(ftr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float((clf(fte).argmax(1) == yte).float().mean() * 100.0)


def run_grid(
    ctx: Any, methods: Sequence[tuple[str, LossFn, float]], cfg: PaperScaleConfig
) -> dict[str, list[float]]:
    """Linear top-1 (%) per method name over ``ctx.seeds``; methods are (name, loss, noisy rate)."""
    out: dict[str, list[float]] = {}
    for name, loss_fn, noisy in methods:
        for seed in ctx.seeds:
            out.setdefault(name, []).append(train_and_probe(ctx, loss_fn, cfg, seed, noisy))
    return out
