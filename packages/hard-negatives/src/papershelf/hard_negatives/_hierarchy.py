"""A hierarchical many-class setting where hard negatives are mostly *true* negatives.

HCL's argument (Robinson et al., ICLR 2021, Sec. 3) needs two things that scikit-learn's digits
lack: many classes (so that few of an anchor's "negatives" share its class: a low false-negative
rate ``tau_plus``) and a structure in which the hardest negatives are *other* classes close to
the anchor's, which uniform negative sampling rarely contrasts against. This module generates
such data offline: ``n_super`` superclasses, each with ``fine_per_super`` fine classes, in a
latent space; observations are a fixed random nonlinear map of the latent point to 64 dimensions
plus nuisance noise. The fine classes of one superclass ("siblings") are the hard true negatives;
the false-negative rate is ``1 / (n_super * fine_per_super)`` under uniform class sampling and is
controlled by those two counts (or by ``class_weights``).

The evaluation is a few-shot linear probe of the *fine* class on frozen encoder features. The
negative-weight shares (:func:`negative_weight_shares`) measure where HCL's importance weights
put the negative mass: on false negatives (same fine class), on siblings (same superclass, other
fine class) or on the rest.

Needs torch, NumPy and scikit-learn (the ``reproduce`` extra); nothing is downloaded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from papershelf.contrastive_bench.digits import Encoder  # the digits harness's MLP

__all__ = [
    "HierarchyConfig",
    "HierarchyData",
    "make_hierarchy",
    "augment_views",
    "train_hierarchy",
    "fine_probe",
    "negative_weight_shares",
    "weight_shares",
]

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class HierarchyConfig:
    """The generated data, its augmentations, and the training and probe settings."""

    n_super: int = 10  # superclasses
    fine_per_super: int = 8  # fine classes per superclass: 80 fine classes, tau_plus = 1/80
    latent_dim: int = 16
    super_scale: float = 1.0  # spread of the superclass centres
    fine_scale: float = 0.45  # spread of the fine-class centres around their superclass centre
    within_scale: float = 0.2  # spread of the samples around their fine-class centre
    obs_dim: int = 64  # observation = fixed random 2-layer tanh network of the latent point
    # structured nuisance (a fixed random rank-`nuisance_rank` subspace, like lighting or
    # background): every stored sample carries one draw, every view gets a fresh one (the
    # augmentation re-renders it), so the raw observations are a poor few-shot input
    nuisance: float = 1.0
    nuisance_rank: int = 16
    train_per_class: int = 40
    test_per_class: int = 20
    # augmentation: Gaussian jitter, random feature dropout and per-sample gain
    view_noise: float = 0.5
    view_dropout: float = 0.2
    view_gain: float = 0.2
    data_seed: int = 0  # the data set is fixed; run seeds vary init, batches, views, probe draws
    # training
    steps: int = 300
    batch_size: int = 256  # 510 negatives per anchor, as the official image code
    lr: float = 1e-3  # Adam, as the official code
    weight_decay: float = 1e-6
    hidden: int = 256
    proj: tuple[int, int] = (128, 64)
    # probe
    shots: int = 5
    draws: int = 3
    probe_alpha: float = 10.0  # ridge penalty of the probe (standardised features)
    class_weights: tuple[float, ...] | None = field(default=None)  # None: uniform fine classes

    @property
    def n_fine(self) -> int:
        """Number of fine classes."""
        return self.n_super * self.fine_per_super

    @property
    def false_negative_rate(self) -> float:
        """Expected share of an anchor's negatives that share its fine class (the true tau+)."""
        p = self._class_probs()
        return float((p**2).sum())

    def _class_probs(self) -> np.ndarray:
        if self.class_weights is None:
            return np.full(self.n_fine, 1.0 / self.n_fine)
        w = np.asarray(self.class_weights, dtype=np.float64)
        if w.shape != (self.n_fine,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"class_weights must be {self.n_fine} non-negative numbers with a positive sum"
            )
        return w / w.sum()


@dataclass
class HierarchyData:
    """Generated observations (float32) with fine and superclass labels."""

    x_train: Tensor  # (n_train, obs_dim): signal + one nuisance draw (what a probe sees)
    fine_train: Tensor  # (n_train,) int64
    x_test: Tensor
    fine_test: Tensor
    super_of_fine: Tensor  # (n_fine,) superclass of each fine class
    signal_train: Tensor  # (n_train, obs_dim): the nuisance-free signal, views are made from it
    nuisance_basis: Tensor  # (nuisance_rank, obs_dim), scaled: a view adds N(0, I) @ basis

    @property
    def super_train(self) -> Tensor:
        return self.super_of_fine[self.fine_train]


def make_hierarchy(cfg: HierarchyConfig = HierarchyConfig()) -> HierarchyData:
    """Generate the data set of ``cfg`` (deterministic in ``cfg.data_seed``).

    Class ``c`` belongs to superclass ``c // fine_per_super``. Training classes are drawn with
    ``cfg.class_weights`` (uniform by default); the test set is balanced.
    """
    rng = np.random.default_rng(cfg.data_seed)
    d = cfg.latent_dim
    supers = rng.normal(0.0, cfg.super_scale, (cfg.n_super, d))
    fine = np.repeat(supers, cfg.fine_per_super, 0) + rng.normal(
        0.0, cfg.fine_scale, (cfg.n_fine, d)
    )
    w1 = rng.normal(0.0, 1.0 / math.sqrt(d), (d, cfg.obs_dim))
    w2 = rng.normal(0.0, 1.0 / math.sqrt(cfg.obs_dim), (cfg.obs_dim, cfg.obs_dim))
    b1 = rng.normal(0.0, 0.5, cfg.obs_dim)

    basis = rng.normal(0.0, 1.0, (cfg.nuisance_rank, cfg.obs_dim))
    basis *= cfg.nuisance / np.sqrt(cfg.nuisance_rank)

    def signal(labels: np.ndarray) -> np.ndarray:
        z = fine[labels] + rng.normal(0.0, cfg.within_scale, (len(labels), d))
        return np.tanh(2.0 * z @ w1 + b1) @ w2

    def nuisance(n: int) -> np.ndarray:
        return rng.normal(0.0, 1.0, (n, cfg.nuisance_rank)) @ basis

    n_train = cfg.train_per_class * cfg.n_fine
    y_train = rng.choice(cfg.n_fine, size=n_train, p=cfg._class_probs())
    y_test = np.repeat(np.arange(cfg.n_fine), cfg.test_per_class)
    s_train, s_test = signal(y_train), signal(y_test)
    x_train, x_test = s_train + nuisance(n_train), s_test + nuisance(len(y_test))
    sd = s_train.std(0).mean()  # one global scale keeps signal and nuisance comparable
    mu = s_train.mean(0)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return HierarchyData(
        x_train=t((x_train - mu) / sd),
        fine_train=torch.from_numpy(y_train.astype(np.int64)),
        x_test=t((x_test - mu) / sd),
        fine_test=torch.from_numpy(y_test.astype(np.int64)),
        super_of_fine=torch.arange(cfg.n_fine) // cfg.fine_per_super,
        signal_train=t((s_train - mu) / sd),
        nuisance_basis=t(basis / sd),
    )


def augment_views(
    x: Tensor, cfg: HierarchyConfig, generator: torch.Generator, basis: Tensor | None = None
) -> Tensor:
    """One random view of each signal row: a fresh nuisance draw (``basis``), gain
    ``1 +- view_gain``, feature dropout ``view_dropout`` and Gaussian jitter ``view_noise``."""
    n, d = x.shape
    if basis is not None:
        x = x + torch.randn(n, basis.shape[0], generator=generator) @ basis
    gain = 1.0 + cfg.view_gain * (2.0 * torch.rand(n, 1, generator=generator) - 1.0)
    keep = (torch.rand(n, d, generator=generator) >= cfg.view_dropout).to(x.dtype)
    noise = cfg.view_noise * torch.randn(n, d, generator=generator)
    return x * gain * keep + noise


def train_hierarchy(
    loss_fn: LossFn, data: HierarchyData, cfg: HierarchyConfig, seed: int
) -> Encoder:
    """SimCLR-style training for ``cfg.steps`` steps (batches without replacement per epoch)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = Encoder(cfg.hidden, cfg.proj, in_features=cfg.obs_dim)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x, basis = data.signal_train, data.nuisance_basis
    n = x.shape[0]
    model.train()
    order = torch.randperm(n, generator=g)
    pos = 0
    for _ in range(cfg.steps):
        if pos + cfg.batch_size > n:  # drop_last, new epoch
            order, pos = torch.randperm(n, generator=g), 0
        idx = order[pos : pos + cfg.batch_size]
        pos += cfg.batch_size
        xb = x[idx]
        _, z1 = model(augment_views(xb, cfg, g, basis))
        _, z2 = model(augment_views(xb, cfg, g, basis))
        loss = loss_fn(z1, z2)
        if not torch.isfinite(loss):
            raise FloatingPointError("the training loss became NaN or inf")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return model


def _features(model: Encoder | None, x: Tensor) -> np.ndarray:
    if model is None:
        return x.numpy().astype(np.float64)
    with torch.no_grad():
        return model(x)[0].numpy().astype(np.float64)


def fine_probe(
    model: Encoder | None, data: HierarchyData, cfg: HierarchyConfig, seed: int
) -> float:
    """Few-shot (``cfg.shots`` per fine class) linear probe accuracy (%) of the fine class.

    A ridge classifier (least squares on one-hot targets, ``alpha = cfg.probe_alpha``, with
    bias) on frozen features standardised on the labelled examples, mean over ``cfg.draws``
    draws of the labelled examples (drawn with ``seed``); ``model=None`` probes the raw
    observations. Closed form, so 80 classes cost milliseconds (a logistic regression costs
    seconds per draw here).
    """
    ftr, fte = _features(model, data.x_train), _features(model, data.x_test)
    ytr, yte = data.fine_train.numpy(), data.fine_test.numpy()
    classes = np.unique(ytr)
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(cfg.draws):
        pick = np.concatenate(
            [
                rng.choice(idx, min(cfg.shots, len(idx)), replace=False)
                for idx in (np.flatnonzero(ytr == c) for c in classes)
            ]
        )
        a = ftr[pick]
        mu, sd = a.mean(0), a.std(0) + 1e-8
        a = np.hstack([(a - mu) / sd, np.ones((len(pick), 1))])
        b = np.hstack([(fte - mu) / sd, np.ones((len(fte), 1))])
        targets = (ytr[pick][:, None] == classes[None, :]).astype(np.float64)
        reg = cfg.probe_alpha * np.eye(a.shape[1])
        reg[-1, -1] = 0.0  # no penalty on the bias
        w = np.linalg.solve(a.T @ a + reg, a.T @ targets)
        accs.append(float((classes[(b @ w).argmax(1)] == yte).mean() * 100.0))
    return float(np.mean(accs))


def negative_weight_shares(
    model: Encoder,
    data: HierarchyData,
    cfg: HierarchyConfig,
    *,
    beta: float,
    temperature: float,
    seed: int,
    mass: bool = False,
) -> tuple[float, float]:
    """:func:`weight_shares` of a trained model on one augmented training batch.

    Shares on negatives of the same fine class (false negatives) and on siblings (same
    superclass, other fine class), averaged over anchors; ``mass`` as in :func:`weight_shares`.

    Returns
    -------
    (false_negative_share, sibling_share) : tuple of float
    """
    g = torch.Generator().manual_seed(20_000 + seed)
    n = data.x_train.shape[0]
    idx = torch.randperm(n, generator=g)[: cfg.batch_size]
    xb, basis = data.signal_train[idx], data.nuisance_basis
    with torch.no_grad():
        z1 = F.normalize(model(augment_views(xb, cfg, g, basis))[1].double(), dim=1)
        z2 = F.normalize(model(augment_views(xb, cfg, g, basis))[1].double(), dim=1)
    return weight_shares(
        z1,
        z2,
        data.fine_train[idx],
        beta=beta,
        temperature=temperature,
        groups=data.super_train[idx],
    )


def weight_shares(
    z1: Tensor,
    z2: Tensor,
    labels: Tensor,
    *,
    beta: float,
    temperature: float,
    groups: Tensor | None = None,
    mass: bool = False,
) -> tuple[float, float]:
    """Shares of HCL's negative weights on false negatives and on siblings.

    In the two-view layout (2N anchors, each with 2N - 2 negatives), HCL samples negative j of
    anchor i from ``q_beta(j) ∝ exp(beta s_ij)`` (``beta = 0``: uniform, so the false-negative
    share is the class's share of the batch). With ``mass=True`` the share is of the reweighted
    negative mass ``R_i = sum_j q_beta(j) exp(s_ij)`` instead, the softmax of
    ``(1 + beta) s_ij``: how the loss's gradient splits over the negatives.

    Parameters
    ----------
    z1, z2 : Tensor, shape (N, D)
        Unit-norm embeddings of two views.
    labels : Tensor of int, shape (N,)
        Class of each pair; a negative with the anchor's class is a false negative.
    beta, temperature : float
    groups : Tensor of int, shape (N,), optional
        Superclass of each pair; a negative of another class in the anchor's group is a sibling.

    Returns
    -------
    (false_negative_share, sibling_share) : tuple of float
        Averaged over anchors (the sibling share is 0 without ``groups``).
    """
    m = z1.shape[0]
    z = torch.cat([z1, z2])
    s = z @ z.T / temperature
    f2 = torch.cat([labels, labels])
    valid = ~torch.eye(2 * m, dtype=torch.bool)
    partner = torch.cat([torch.arange(m, 2 * m), torch.arange(m)])
    valid[torch.arange(2 * m), partner] = False
    scale = (1.0 + beta) if mass else beta
    w = torch.softmax((scale * s).masked_fill(~valid, float("-inf")), dim=1)
    same = f2[:, None] == f2[None, :]
    fn_share = float((w * same).sum(1).mean())
    if groups is None:
        return fn_share, 0.0
    g2 = torch.cat([groups, groups])
    sibling = (g2[:, None] == g2[None, :]) & ~same
    return fn_share, float((w * sibling).sum(1).mean())


def run_method(
    loss_fn: LossFn,
    data: HierarchyData,
    cfg: HierarchyConfig,
    seeds: Sequence[int],
) -> tuple[list[float], list[Encoder], float]:
    """Train and probe one loss on every seed: (5-shot accuracies %, models, CPU seconds)."""
    accs, models = [], []
    start = time.process_time()
    for seed in seeds:
        model = train_hierarchy(loss_fn, data, cfg, seed)
        accs.append(fine_probe(model, data, cfg, seed))
        models.append(model)
    return accs, models, time.process_time() - start
