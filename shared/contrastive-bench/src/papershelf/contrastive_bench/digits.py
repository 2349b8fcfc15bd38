"""A small offline SimCLR harness: scikit-learn's bundled digits, augmentations in torch, an MLP
encoder, and linear probes, for any contrastive loss ``loss_fn(z1, z2)``.

Shared by the quick reproductions of robust-infonce and hard-negatives, which compare their
losses on the same harness; it holds no paper's loss. Needs torch and scikit-learn (the
``contrastive`` extra, which both packages' ``reproduce`` extras cover).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class DigitsConfig:
    """The training setting of the digits experiments."""

    classes: Sequence[int] = tuple(range(10))  # which digits to train and probe on
    epochs: int = 60
    batch_size: int = 256  # 2 * 256 - 2 = 510 negatives per anchor, as the official image code
    lr: float = 1e-3  # Adam, as the official image code
    weight_decay: float = 1e-6
    hidden: int = 256  # encoder 64 -> hidden -> hidden (BN, ReLU); the probe reads this layer
    proj: tuple[int, int] = (128, 64)  # projector hidden -> proj[0] -> proj[1]
    noisy_view_rate: float = 0.0  # share of pairs whose view 2 comes from another image
    # "fixed": a fixed share of images keeps one fixed wrong partner for the whole run (persistent
    # false-positive pairs, as mismatched pairs in a data set); "resampled": every step, each pair
    # is noisy with probability noisy_view_rate, with a fresh random partner
    noisy_mode: str = "fixed"
    shots: int = 5  # labels per class of the few-label probe
    draws: int = 5  # few-label probe draws averaged
    extra: dict[str, Any] = field(default_factory=dict)


def load_digits_split(
    classes: Sequence[int] = tuple(range(10)),
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Stratified 67/33 split of the bundled digits (fixed split): images (n, 1, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    keep = np.isin(data.target, np.asarray(classes))
    x = data.images[keep].astype(np.float32) / 16.0
    y = data.target[keep]
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.33, stratify=y, random_state=0)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return t(xtr)[:, None], t(ytr), t(xte)[:, None], t(yte)


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random affine (+-15 deg, scale 0.9-1.1, +-1 px), intensity x[0.8, 1.2], noise 0.1, 3x3 cutout."""
    n = x.shape[0]
    u = lambda *s: torch.rand(*s, generator=generator)  # noqa: E731
    angle = (u(n) * 2 - 1) * math.radians(15)
    scale = 0.9 + 0.2 * u(n)
    shift = (u(n, 2) * 2 - 1) * (2.0 / 8)  # 1 px of 8 in [-1, 1] coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    out = out * (0.8 + 0.4 * u(n, 1, 1, 1)) + 0.1 * torch.randn(out.shape, generator=generator)
    cut = u(n) < 0.5
    r, c = (u(n) * 6).long(), (u(n) * 6).long()
    rows = torch.arange(8)[None, :, None]
    cols = torch.arange(8)[None, None, :]
    box = (
        (rows >= r[:, None, None])
        & (rows < r[:, None, None] + 3)
        & (cols >= c[:, None, None])
        & (cols < c[:, None, None] + 3)
    )
    return out.masked_fill((box & cut[:, None, None])[:, None], 0.0)


class Encoder(nn.Module):
    """MLP encoder 64 -> hidden -> hidden (BN, ReLU) and projector hidden -> proj[0] -> proj[1]."""

    def __init__(
        self, hidden: int = 256, proj: tuple[int, int] = (128, 64), in_features: int = 64
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Linear(hidden, proj[0]), nn.BatchNorm1d(proj[0]), nn.ReLU(), nn.Linear(*proj)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(x)
        return h, self.head(h)


def train_contrastive(
    loss_fn: LossFn | Callable[[Tensor, Tensor, int], Tensor],
    x: Tensor,
    cfg: DigitsConfig,
    seed: int,
    *,
    epoch_aware: bool = False,
) -> Encoder:
    """SimCLR-style training; with ``noisy_view_rate`` p, view 2 of a share p of the pairs is an
    augmentation of another training image (a false positive pair), see ``noisy_mode``."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = Encoder(cfg.hidden, cfg.proj)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = x.shape[0]
    if cfg.noisy_mode not in ("fixed", "resampled"):
        raise ValueError(f"noisy_mode must be 'fixed' or 'resampled', got {cfg.noisy_mode!r}")
    partner = torch.arange(n)
    if cfg.noisy_mode == "fixed" and cfg.noisy_view_rate > 0:
        noisy_idx = torch.randperm(n, generator=g)[: round(cfg.noisy_view_rate * n)]
        # a fixed partner that is never the image itself
        partner[noisy_idx] = (noisy_idx + torch.randint(1, n, (len(noisy_idx),), generator=g)) % n
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(n, generator=g)
        for start in range(0, n - cfg.batch_size + 1, cfg.batch_size):  # drop_last, as official
            idx = order[start : start + cfg.batch_size]
            other = partner[idx]
            if cfg.noisy_mode == "resampled" and cfg.noisy_view_rate > 0:
                noisy = torch.rand(len(idx), generator=g) < cfg.noisy_view_rate
                other[noisy] = torch.randint(0, n, (int(noisy.sum()),), generator=g)
            _, z1 = model(augment(x[idx], g))
            _, z2 = model(augment(x[other], g))
            loss = loss_fn(z1, z2, epoch) if epoch_aware else loss_fn(z1, z2)  # type: ignore[call-arg]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


def _features(model: Encoder | None, x: Tensor) -> np.ndarray:
    if model is None:
        return x.flatten(1).numpy().astype(np.float64)
    with torch.no_grad():
        return model(x)[0].numpy().astype(np.float64)


def linear_probe(
    model: Encoder | None,
    xtr: Tensor,
    ytr: Tensor,
    xte: Tensor,
    yte: Tensor,
    *,
    shots: int = 5,
    draws: int = 5,
    seed: int = 0,
) -> tuple[float, float]:
    """Logistic regression on frozen standardised features: (all-label accuracy %, few-label %).

    ``model=None`` probes the raw pixels.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ftr, fte = _features(model, xtr), _features(model, xte)
    ytr_np, yte_np = ytr.numpy(), yte.numpy()

    def fit_score(a: np.ndarray, b: np.ndarray) -> float:
        scaler = StandardScaler().fit(ftr[a])
        clf = LogisticRegression(max_iter=2000, C=1.0)
        clf.fit(scaler.transform(ftr[a]), ytr_np[a])
        return float(clf.score(scaler.transform(fte), yte_np) * 100.0)

    full = fit_score(np.arange(len(ytr_np)), np.arange(len(yte_np)))
    rng = np.random.default_rng(seed)
    few = []
    for _ in range(draws):
        pick = np.concatenate(
            [
                rng.choice(np.flatnonzero(ytr_np == c), shots, replace=False)
                for c in np.unique(ytr_np)
            ]
        )
        few.append(fit_score(pick, np.arange(len(yte_np))))
    return full, float(np.mean(few))
