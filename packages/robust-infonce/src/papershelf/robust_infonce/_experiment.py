"""The noisy-view experiments of the quick reproduction (needs the ``reproduce`` extra).

Noisy views here are positive pairs made of two different instances of *different classes*,
at a controlled rate. Why different classes: if the partner is an image drawn uniformly at
random, the noisy pairs add the same constant to the density ratio ``p(x, x') / p(x) p(x')`` of
every pair, the ranking InfoNCE estimates is unchanged, and the noise costs it little (about one
point at 60% on digits, measured in 0.1.0). A partner that is always of another class raises the
ratio of cross-class pairs above that of same-class pairs of different instances, so the noise
pulls classes together; that is the symmetric-noise regime the paper's robustness argument
addresses (RINCE's pull on a positive is weighted by ``e^{q s^+}``, small for low-similarity,
i.e. noisy, pairs).

Two settings:

* **latent classes** (the headline, synthetic and fast): points ``x = R [u; v]`` with a class
  part ``u = mu_y + spread * eps`` (``class_dim`` dimensions) and a nuisance part ``v`` of larger
  scale, rotated by a fixed random orthogonal ``R``. A view keeps ``u`` (plus a small jitter) and
  redraws ``v``, so the only information two clean views share is ``u``: an encoder that learns
  it separates the classes, raw features do not (5-shot probe on raw inputs ~35%).
* **digits**: scikit-learn's bundled digits with the contrastive-bench augmentations and MLP
  (``train_noisy_views``), used by ``benchmarks/noisy_view_search.py``.

The labels are used only to generate the noise (the experimenter's control), never by a loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "LatentClassConfig",
    "LatentClasses",
    "NoisyViewConfig",
    "few_shot_probe",
    "make_latent_classes",
    "other_class_partners",
    "run_latent",
    "train_noisy_views",
]

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class NoisyViewConfig:
    """Training setting of the noisy-view runs (the digits harness's defaults otherwise)."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    hidden: int = 256
    proj: tuple[int, int] = (128, 64)
    noise_rate: float = 0.0  # share of positive pairs whose view 2 is an image of another class
    # "resampled": each step, each pair is noisy with probability noise_rate and gets a fresh
    # partner; "fixed": a share noise_rate of the images keeps one wrong partner for the run
    mode: str = "resampled"
    partner: str = "other-class"  # or "random": any training image (the 0.1 design)


def other_class_partners(
    idx: Tensor, labels: Tensor, by_class: list[Tensor], generator: torch.Generator
) -> Tensor:
    """For each index, a uniformly random training image of a uniformly random *other* class."""
    k = len(by_class)
    cls = labels[idx]
    other = (cls + torch.randint(1, k, cls.shape, generator=generator)) % k
    counts = torch.tensor([len(b) for b in by_class])
    offsets = torch.cumsum(counts, 0) - counts
    flat = torch.cat(by_class)
    pick = (torch.rand(cls.shape, generator=generator) * counts[other]).long()
    return flat[offsets[other] + pick]


def train_noisy_views(
    loss_fn: LossFn, x: Tensor, labels: Tensor, cfg: NoisyViewConfig, seed: int
) -> nn.Module:
    """SimCLR-style training where a share ``cfg.noise_rate`` of pairs are cross-class images.

    The same ``seed`` gives every loss the same initialisation, batches, noisy pairs and
    augmentations (the loss never touches the generator), so results pair by seed.
    """
    from papershelf.contrastive_bench.digits import Encoder, augment

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = Encoder(cfg.hidden, cfg.proj)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = x.shape[0]
    classes = torch.unique(labels)
    remap = torch.searchsorted(classes, labels)
    by_class = [torch.nonzero(remap == c).squeeze(1) for c in range(len(classes))]
    if cfg.mode not in ("fixed", "resampled"):
        raise ValueError(f"mode must be 'fixed' or 'resampled', got {cfg.mode!r}")
    if cfg.partner not in ("other-class", "random"):
        raise ValueError(f"partner must be 'other-class' or 'random', got {cfg.partner!r}")

    def wrong(i: Tensor) -> Tensor:
        if cfg.partner == "random":
            return torch.randint(0, n, i.shape, generator=g)
        return other_class_partners(i, remap, by_class, g)

    partner = torch.arange(n)
    if cfg.mode == "fixed" and cfg.noise_rate > 0:
        noisy = torch.randperm(n, generator=g)[: round(cfg.noise_rate * n)]
        partner[noisy] = wrong(noisy)
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=g)
        for start in range(0, n - cfg.batch_size + 1, cfg.batch_size):  # drop_last
            idx = order[start : start + cfg.batch_size]
            other = partner[idx].clone()
            if cfg.mode == "resampled" and cfg.noise_rate > 0:
                flip = torch.rand(len(idx), generator=g) < cfg.noise_rate
                other[flip] = wrong(idx[flip])
            _, z1 = model(augment(x[idx], g))
            _, z2 = model(augment(x[other], g))
            loss = loss_fn(z1, z2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


# ----------------------------------------------------------------------------- latent classes
@dataclass(frozen=True)
class LatentClassConfig:
    """The latent-class setting: data, views, encoder and training (defaults: the quick run)."""

    classes: int = 10
    class_dim: int = 8  # dimensions of the class part u
    nuisance_dim: int = 24  # dimensions of the nuisance part v (redrawn in every view)
    separation: float = 1.0  # class means mu_y ~ N(0, separation^2 I)
    spread: float = 0.5  # within-class std of u
    nuisance_scale: float = 2.0  # std of v
    jitter: float = 0.2  # view noise on u
    n_train: int = 2000
    n_test: int = 1000
    steps: int = 300  # Adam steps of batch_size pairs
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    hidden: int = 128  # encoder d -> hidden -> hidden (BN, ReLU); the probe reads this layer
    out: int = 32  # projector hidden -> hidden -> out
    noise_rate: float = 0.0  # share of pairs whose view 2 is an instance of another class
    partner: str = "other-class"  # or "random": any training point
    shots: int = 5
    draws: int = 5


class LatentClasses(NamedTuple):
    """One draw of the latent-class data (inputs already rotated)."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    rotation: Tensor  # (d, d) orthogonal: x = [u; v] @ rotation


def make_latent_classes(cfg: LatentClassConfig, seed: int) -> LatentClasses:
    """Draw class means, train/test points and the rotation from ``seed`` (balanced classes)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    d = cfg.class_dim + cfg.nuisance_dim
    means = cfg.separation * torch.randn(cfg.classes, cfg.class_dim, generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g))

    def draw(n: int) -> tuple[Tensor, Tensor]:
        y = torch.arange(n) % cfg.classes
        u = means[y] + cfg.spread * torch.randn(n, cfg.class_dim, generator=g)
        v = cfg.nuisance_scale * torch.randn(n, cfg.nuisance_dim, generator=g)
        return torch.cat([u, v], 1) @ rotation, y

    xtr, ytr = draw(cfg.n_train)
    xte, yte = draw(cfg.n_test)
    return LatentClasses(xtr, ytr, xte, yte, rotation)


def _latent_view(
    x: Tensor, data: LatentClasses, cfg: LatentClassConfig, g: torch.Generator
) -> Tensor:
    """A view: keep the class part (plus jitter), redraw the nuisance part."""
    z = x @ data.rotation.T
    u = z[:, : cfg.class_dim] + cfg.jitter * torch.randn(len(x), cfg.class_dim, generator=g)
    v = cfg.nuisance_scale * torch.randn(len(x), cfg.nuisance_dim, generator=g)
    return torch.cat([u, v], 1) @ data.rotation


def _latent_encoder(d: int, cfg: LatentClassConfig) -> tuple[nn.Module, nn.Module]:
    h = cfg.hidden
    body = nn.Sequential(
        nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU()
    )
    head = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, cfg.out))
    return body, head


def few_shot_probe(
    f_train: Tensor,
    y_train: Tensor,
    f_test: Tensor,
    y_test: Tensor,
    *,
    shots: int,
    draws: int,
    seed: int,
) -> float:
    """Test accuracy (%) of logistic regression on ``shots`` labels per class, mean of ``draws``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ftr, fte = f_train.double().numpy(), f_test.double().numpy()
    ytr, yte = y_train.numpy(), y_test.numpy()
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(draws):
        pick = np.concatenate(
            [rng.choice(np.flatnonzero(ytr == c), shots, replace=False) for c in np.unique(ytr)]
        )
        scaler = StandardScaler().fit(ftr[pick])
        clf = LogisticRegression(max_iter=1000).fit(scaler.transform(ftr[pick]), ytr[pick])
        accs.append(100.0 * float(clf.score(scaler.transform(fte), yte)))
    return float(np.mean(accs))


def run_latent(loss_fn: LossFn | None, cfg: LatentClassConfig, seed: int) -> float:
    """Train on the latent classes with ``loss_fn`` and return the 5-shot probe accuracy (%).

    ``loss_fn=None`` probes the raw inputs. The seed fixes the data draw, initialisation, batches,
    noisy pairs, views and probe draws, identically for every loss (the loss never draws).
    """
    data = make_latent_classes(cfg, seed)
    if loss_fn is None:
        return few_shot_probe(
            data.x_train,
            data.y_train,
            data.x_test,
            data.y_test,
            shots=cfg.shots,
            draws=cfg.draws,
            seed=seed,
        )
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    body, head = _latent_encoder(data.x_train.shape[1], cfg)
    params = [*body.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    by_class = [torch.nonzero(data.y_train == c).squeeze(1) for c in range(cfg.classes)]
    n = data.x_train.shape[0]
    for _ in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=g)
        other = idx.clone()
        if cfg.noise_rate > 0:
            flip = torch.rand(cfg.batch_size, generator=g) < cfg.noise_rate
            if cfg.partner == "random":
                other[flip] = torch.randint(0, n, (int(flip.sum()),), generator=g)
            else:
                other[flip] = other_class_partners(idx[flip], data.y_train, by_class, g)
        z1 = head(body(_latent_view(data.x_train[idx], data, cfg, g)))
        z2 = head(body(_latent_view(data.x_train[other], data, cfg, g)))
        loss = loss_fn(z1, z2)
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"the loss became {float(loss.detach())} during training")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    body.eval()
    with torch.no_grad():
        ftr, fte = body(data.x_train), body(data.x_test)
    return few_shot_probe(
        ftr, data.y_train, fte, data.y_test, shots=cfg.shots, draws=cfg.draws, seed=seed
    )


def with_noise(cfg: LatentClassConfig, rate: float) -> LatentClassConfig:
    """``cfg`` at another noisy-view rate."""
    return replace(cfg, noise_rate=rate)
