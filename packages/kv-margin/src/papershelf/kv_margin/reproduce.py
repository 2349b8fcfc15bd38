"""Reproduction: do k-variance normalized margins rank generalization gaps better than margins?

The PGDL task models of the paper (about 20 GB) are not available offline. The quick profile
trains a sweep of one-hidden-layer MLPs on scikit-learn's bundled digits, varying width,
learning rate, weight decay, training-set size and label noise, each trained with full-batch
Adam until it fits its (noisy) training labels, so that the generalization gap has real spread.
It then scores every model with kV-Margin, kV-GN-Margin, the raw (negated median) margin and
the squared Frobenius norm of the weights, and ranks them against the gap with Kendall's tau,
the granulated tau and the PGDL conditional-mutual-information score.

Quick: 32 models (two values per axis). ``--full``: the 72-model grid of the spec
(width {64, 256} x lr {1e-3, 3e-3} x weight decay {0, 1e-4} x train size {200, 500, 1000}
x label noise {0, 0.1, 0.2}) and k-variance averaged over 5 splits as well.

``--full`` with the environment variable ``PAPERSHELF_PGDL_DIR`` set to downloaded PGDL data
(a task folder such as ``public_data/input_data/task1_v4``, or a folder of task folders) scores
the PGDL task models instead, as the official submissions do, and compares the PGDL score with
the official README's; ``PAPERSHELF_PGDL_REFERENCE`` names the ``reference_data`` folder when
the ``model_configs.json`` files are not inside the task folders.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from papershelf.core import ReproduceContext, ResultRecord
from papershelf.core.records import claim_test
from papershelf.kv_margin.kvariance import k_variance
from papershelf.kv_margin.measure import kv_gn_margin, kv_margin
from papershelf.kv_margin.metrics import granulated_kendall_tau, kendall_tau, pgdl_cmi

log = logging.getLogger(__name__)

__all__ = ["SweepConfig", "run", "run_sweep", "train_to_fit"]

# official README, PGDL CMI score x 100, tasks 1, 2, 4, 5, 6, 7, 8, 9 ("1st" = shallow layer)
PAPER_PGDL = {
    "kV-Margin": (5.83, 29.11, 36.45, 17.51, 6.27, 2.11, 1.89, 13.89),
    "kV-GN-Margin": (18.17, 45.24, 30.78, 15.66, 4.48, 3.91, 0.58, 21.85),
}
# the whole official README table, by task number ("8th" = deep layer)
PAPER_TASKS = (1, 2, 4, 5, 6, 7, 8, 9)
PAPER_PGDL_TABLE = {
    **{f"{k} 1st": v for k, v in PAPER_PGDL.items()},
    "kV-Margin 8th": (29.72, 27.19, 6.01, 15.10, 0.81, 1.71, 0.37, 1.43),
    "kV-GN-Margin 8th": (41.09, 46.28, 6.71, 15.99, 1.11, 5.93, 0.66, 8.14),
}
PGDL_ENV, PGDL_REFERENCE_ENV = "PAPERSHELF_PGDL_DIR", "PAPERSHELF_PGDL_REFERENCE"
PGDL_TOLERANCE = 1.0  # CMI x 100: same seed and procedure; float32 ties may still flip a pair


@dataclass
class SweepConfig:
    """The hyper-parameter grid and training budget of the digits sweep."""

    width: tuple[int, ...] = (64, 256)
    lr: tuple[float, ...] = (1e-3, 3e-3)
    weight_decay: tuple[float, ...] = (0.0, 1e-4)
    train_size: tuple[int, ...] = (200, 1000)
    label_noise: tuple[float, ...] = (0.0, 0.2)
    fit_accuracy: float = 0.99  # PGDL models are trained to (near) interpolation
    max_steps: int = 5000  # full-batch Adam steps; the noisiest 1000-sample fits need ~2-3k
    n_test: int = 597  # digits has 1797 images: a fixed clean test set, 1200 for training pools
    n_splits: tuple[int, ...] = (1,)  # k-variance splits to evaluate (1 = official)
    meta: dict[str, Any] = field(default_factory=dict)

    def check(self) -> SweepConfig:
        """Raise ``ValueError`` for a grid the digits data cannot support."""
        pool = 1797 - self.n_test
        if not 0 < self.n_test < 1797:
            raise ValueError(f"n_test must lie in (0, 1797), got {self.n_test}")
        if any(not 20 <= n <= pool for n in self.train_size):
            raise ValueError(f"every train_size must lie in [20, {pool}], got {self.train_size}")
        if any(not 0.0 <= r < 0.9 for r in self.label_noise):
            raise ValueError(f"label_noise rates must lie in [0, 0.9), got {self.label_noise}")
        if not self.grid_axes_nonempty():
            raise ValueError("every axis of the grid needs at least one value")
        return self

    def grid_axes_nonempty(self) -> bool:
        return all(
            len(v)
            for v in (self.width, self.lr, self.weight_decay, self.train_size, self.label_noise)
        )

    def grid(self) -> list[dict[str, Any]]:
        axes = {
            "width": self.width,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "train_size": self.train_size,
            "label_noise": self.label_noise,
        }
        return [dict(zip(axes, vals, strict=True)) for vals in itertools.product(*axes.values())]


FULL = SweepConfig(train_size=(200, 500, 1000), label_noise=(0.0, 0.1, 0.2), n_splits=(1, 5))


def _mlp(width: int, n_in: int = 64, n_out: int = 10) -> nn.Sequential:
    # phi = the first hidden layer: the input of module "2"
    return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, n_out))


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def train_to_fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    weight_decay: float,
    fit_accuracy: float = 0.99,
    max_steps: int = 5000,
) -> int:
    """Full-batch Adam on cross-entropy until the training accuracy reaches ``fit_accuracy``.

    Returns the number of steps taken.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    for step in range(1, max_steps + 1):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if step % 25 == 0 and _accuracy(model, x, y) >= fit_accuracy:
            return step
    return max_steps


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def _noisy(y: np.ndarray, rate: float, rng: np.random.Generator, n_classes: int = 10) -> np.ndarray:
    """Symmetric label noise: a fraction ``rate`` of labels moved to a different random class."""
    y = y.copy()
    flip = rng.random(len(y)) < rate
    y[flip] = (y[flip] + rng.integers(1, n_classes, flip.sum())) % n_classes
    return y


def run_sweep(
    cfg: SweepConfig, seed: int = 0, progress: Any = None
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Train the sweep and score every model; returns per-model rows and measure arrays."""
    cfg.check()
    X, Y = _load_digits()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    test, pool = perm[: cfg.n_test], perm[cfg.n_test :]
    x_te, y_te = torch.from_numpy(X[test]), torch.from_numpy(Y[test])
    configs = cfg.grid()
    it = progress(configs, total=len(configs), desc="digits sweep") if progress else configs
    rows = []
    for i, hp in enumerate(it):
        g = np.random.default_rng([seed, i])
        idx = g.choice(pool, hp["train_size"], replace=False)
        x_tr = torch.from_numpy(X[idx])
        y_tr = torch.from_numpy(_noisy(Y[idx], hp["label_noise"], g))
        torch.manual_seed(seed * 1000 + i)
        model = _mlp(hp["width"])
        t0 = time.perf_counter()
        steps = train_to_fit(
            model,
            x_tr,
            y_tr,
            lr=hp["lr"],
            weight_decay=hp["weight_decay"],
            fit_accuracy=cfg.fit_accuracy,
            max_steps=cfg.max_steps,
        )
        t_train = time.perf_counter() - t0
        model.eval()
        train_acc = _accuracy(model, x_tr, y_tr)
        row = {
            **hp,
            "steps": steps,
            "train_acc": train_acc,
            "test_acc": _accuracy(model, x_te, y_te),
            "train_s": t_train,
        }
        row["gap"] = row["train_acc"] - row["test_acc"]
        t0 = time.perf_counter()
        for k in cfg.n_splits:
            sfx = "" if k == 1 else f" ({k} splits)"
            kv = kv_margin(model, x_tr, y_tr, "2", seed=seed, n_splits=k)
            gn = kv_gn_margin(model, x_tr, y_tr, "2", seed=seed, n_splits=k)
            row["kV-Margin" + sfx] = kv.score
            row["kV-GN-Margin" + sfx] = gn.score
            if k == 1:
                row["-median margin"] = -float(np.median(kv.margins))
                row["sum ||W||_F^2"] = float(
                    sum((p.detach() ** 2).sum() for p in model.parameters() if p.ndim > 1)
                )
        row["measure_s"] = time.perf_counter() - t0
        rows.append(row)
    names = [k for k in rows[0] if k.startswith(("kV", "-median", "sum "))]
    measures = {k: np.array([r[k] for r in rows]) for k in names}
    return rows, measures


def estimator_statistics(
    seed: int = 0,
    n: int = 2000,
    dim: int = 64,
    ms: tuple[int, ...] = (25, 100, 400),
    splits: int = 10,
) -> dict[int, tuple[float, float]]:
    """k-variance of synthetic 10-cluster ReLU features against m: (mean, CV of one split)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(10, dim)) * 2.0
    feats = np.maximum(centers[rng.integers(0, 10, n)] + rng.normal(size=(n, dim)), 0.0)
    out = {}
    for m in ms:
        vals = [
            k_variance(feats, m=m, rng=np.random.default_rng([seed, m, s])) for s in range(splits)
        ]
        out[m] = (float(np.mean(vals)), float(np.std(vals) / np.mean(vals)))
    return out


def _axes(rows: list[dict[str, Any]], cfg: SweepConfig) -> dict[str, list[Any]]:
    axes = ("width", "lr", "weight_decay", "train_size", "label_noise")
    return {a: [r[a] for r in rows] for a in axes if len(getattr(cfg, a)) > 1}


def _figure(
    ctx: ReproduceContext, rows: list[dict[str, Any]], measures: dict[str, np.ndarray]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gap = np.array([r["gap"] for r in rows])
    noise = np.array([r["label_noise"] for r in rows])
    names = ["kV-Margin", "kV-GN-Margin", "-median margin", "sum ||W||_F^2"]
    fig, axs = plt.subplots(1, 4, figsize=(13, 3.4))
    fig.subplots_adjust(top=0.74, bottom=0.15, left=0.05, right=0.9, wspace=0.3)
    for ax, name in zip(axs, names, strict=True):
        sc = ax.scatter(measures[name], gap, c=noise, cmap="viridis", s=14)
        ax.set_title(f"{name}\ntau = {kendall_tau(measures[name], gap):+.3f}", fontsize=9)
        ax.set_xlabel("measure", fontsize=8)
        ax.tick_params(labelsize=7)
    axs[0].set_ylabel("generalization gap")
    fig.colorbar(sc, cax=fig.add_axes((0.92, 0.15, 0.012, 0.59)), label="label noise")
    fig.suptitle(
        "Digits MLP sweep: measure vs gap (a larger measure should mean a larger gap)", fontsize=10
    )
    ctx.save_figure(fig, "kv_margin_digits_scatter.png", dpi=80)
    plt.close(fig)


def pgdl_task_dirs(root: str | Path) -> list[Path]:
    """PGDL task folders under ``root`` (``root`` itself if it holds ``dataset_1``)."""
    r = Path(root)
    if (r / "dataset_1").is_dir():
        return [r]
    tasks = sorted(d for d in r.iterdir() if (d / "dataset_1").is_dir()) if r.is_dir() else []
    if not tasks:
        raise ValueError(f"{PGDL_ENV}={root}: no PGDL task folder (with dataset_1) found there")
    return tasks


def run_pgdl(
    ctx: ReproduceContext, root: str | Path, reference: str | Path | None = None
) -> list[ResultRecord]:
    """Score every model of the PGDL tasks under ``root`` and compare with the official README."""
    from papershelf.kv_margin.pgdl import score_pgdl_task

    t0 = time.perf_counter()
    results = []
    for task in pgdl_task_dirs(root):
        results.append(score_pgdl_task(task, reference=reference, device=ctx.device,
                                       progress=ctx.progress))  # fmt: skip
    runtime = time.perf_counter() - t0
    recs: list[ResultRecord] = []
    for res in results:
        m = re.match(r"task(\d+)", res.task)
        col = PAPER_TASKS.index(int(m.group(1))) if m and int(m.group(1)) in PAPER_TASKS else None
        config = {"task": res.task, "models": len(res.model_ids), "layers": res.layers,
                  "procedure": "official=True, seed=0 (np.random.seed(0) draws)"}  # fmt: skip
        if res.gap is None:
            raise ValueError(f"{res.task}: no model_configs.json; set {PGDL_REFERENCE_ENV}")
        for name, vals in res.scores.items():
            paper = PAPER_PGDL_TABLE[name][col] if col is not None else None
            recs.append(ResultRecord(
                package="kv-margin", experiment=f"PGDL {res.task}: {name}",
                metric="PGDL CMI score x100", values=[100 * res.cmi[name]], paper_value=paper,
                higher_is_better=True, tolerance=PGDL_TOLERANCE, comparable=paper is not None,
                paper_note="" if paper is not None else "task not in the official README",
                note=f"Kendall tau {kendall_tau(vals, res.gap):+.3f}; {len(vals)} models",
                config=config, seeds=[0], runtime_s=runtime,
            ))  # fmt: skip
    _pgdl_figure(ctx, results)
    return recs


def _pgdl_figure(ctx: ReproduceContext, results: list[Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, len(results), figsize=(3.4 * len(results), 3.2), squeeze=False)
    for ax, res in zip(axs[0], results, strict=True):
        for name, marker in (("kV-Margin 1st", "o"), ("kV-GN-Margin 1st", "^")):
            v = res.scores[name]
            z = (v - v.mean()) / (v.std() + 1e-12)  # standardised: the two measures share an axis
            ax.scatter(z, res.gap, s=10, marker=marker, label=f"{name} ({100 * res.cmi[name]:.1f})")
        ax.set_title(res.task, fontsize=9)
        ax.set_xlabel("standardised measure", fontsize=8)
        ax.legend(fontsize=6)
    axs[0, 0].set_ylabel("generalization gap")
    fig.tight_layout()
    ctx.save_figure(fig, "kv_margin_pgdl_scatter.png", dpi=80)
    plt.close(fig)


def _require_extra() -> None:
    """The reproduction's optional dependencies, or an ImportError naming the extra."""
    import importlib.util

    missing = [m for m in ("sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"papershelf reproduce kv-margin needs {', '.join(missing)}: "
            'pip install "papershelf-kv-margin[reproduce]"'
        )


def run(ctx: ReproduceContext) -> list[ResultRecord]:
    """Run the digits sweep (quick: 32 models; ``--full``: 72 models) and compare the measures.

    With ``--full`` and ``PAPERSHELF_PGDL_DIR`` set, score the PGDL tasks there instead.
    """
    _require_extra()
    if ctx.full and os.environ.get(PGDL_ENV):
        return run_pgdl(ctx, os.environ[PGDL_ENV], os.environ.get(PGDL_REFERENCE_ENV) or None)
    cfg = FULL if ctx.full else SweepConfig()
    per_seed: list[tuple[list[dict[str, Any]], dict[str, np.ndarray]]] = []
    t0 = time.perf_counter()
    for seed in ctx.seeds:
        per_seed.append(run_sweep(cfg, seed, progress=ctx.progress))
    runtime = time.perf_counter() - t0
    rows, measures = per_seed[0]
    _figure(ctx, rows, measures)
    config = {
        "models": len(rows),
        "grid": {
            k: list(getattr(cfg, k))
            for k in ("width", "lr", "weight_decay", "train_size", "label_noise")
        },
        "feature_layer": "input of the output Linear (first hidden layer)",
        "fit_accuracy": cfg.fit_accuracy,
    }
    gaps = [np.array([r["gap"] for r in rs]) for rs, _ in per_seed]
    note_gap = (
        f"gap range {min(g.min() for g in gaps):.3f}-{max(g.max() for g in gaps):.3f} over "
        f"{len(rows)} models; digits sweep, not PGDL"
    )
    recs: list[ResultRecord] = []

    def rec(**kw: Any) -> ResultRecord:
        r = ResultRecord(
            package="kv-margin", config=config, seeds=list(ctx.seeds), runtime_s=runtime, **kw
        )
        recs.append(r)
        return r

    taus: dict[str, list[float]] = {}
    for name in measures:
        taus[name] = [kendall_tau(m[name], g) for (_, m), g in zip(per_seed, gaps, strict=True)]
        gtau = [
            granulated_kendall_tau(m[name], g, _axes(rs, cfg))["mean"]
            for (rs, m), g in zip(per_seed, gaps, strict=True)
        ]
        rec(
            experiment=f"digits sweep: {name}",
            metric="Kendall tau vs gap",
            values=taus[name],
            higher_is_better=True,
            comparable=False,
            note=note_gap,
        )
        rec(
            experiment=f"digits sweep: {name}",
            metric="granulated tau (mean over axes)",
            values=gtau,
            higher_is_better=True,
            comparable=False,
        )
    for name in ("kV-Margin", "kV-GN-Margin"):
        ours = float(np.mean(taus[name]))
        raw = float(np.mean(taus["-median margin"]))
        diffs = [a - b for a, b in zip(taus[name], taus["-median margin"], strict=True)]
        test = claim_test(taus[name], taus["-median margin"], direction="greater")
        paper = PAPER_PGDL.get(name)
        recs.append(
            ResultRecord.from_claim_test(
                test,
                package="kv-margin",
                experiment=f"digits sweep: {name} vs raw margin",
                metric="Kendall tau difference (paired over seeds)",
                claim="normalizing the margin by k-variance ranks gaps better than the raw margin",
                values=diffs,
                headline=name == "kV-Margin",
                comparable=False,
                paper_note=""
                if paper is None
                else f"paper: PGDL CMI x100 {float(np.mean(paper)):.2f} (mean of tasks 1-9, "
                "shallow layer, official README), a different benchmark",
                note=f"tau {ours:+.3f} vs {raw:+.3f}",
                config=config,
                seeds=list(ctx.seeds),
                runtime_s=runtime,
            )
        )
    for name in measures:
        cmi = [
            100 * float(pgdl_cmi(m[name], g, _axes(rs, cfg)))
            for (rs, m), g in zip(per_seed, gaps, strict=True)
        ]
        paper = PAPER_PGDL.get(name)
        rec(
            experiment=f"digits sweep: {name}",
            metric="PGDL CMI score x100",
            values=cmi,
            paper_value=None if paper is None else float(np.mean(paper)),
            comparable=False,
            paper_note=""
            if paper is None
            else "mean of PGDL tasks 1-9, shallow layer (official README): a different benchmark",
            note="min over ordered pairs of swept axes",
        )
    per_stats = [estimator_statistics(seed) for seed in ctx.seeds]
    ms = sorted(per_stats[0])
    ratios = [st[ms[-1]][0] / st[ms[0]][0] for st in per_stats]
    stats = per_stats[0]
    recs.append(
        ResultRecord.from_claim_test(
            claim_test(ratios, direction="less", margin=1.0),
            package="kv-margin",
            experiment="k-variance of 10-cluster ReLU features (n=2000, d=64)",
            metric=f"W1 between disjoint halves, m = {ms[-1]} / m = {ms[0]} (ratio)",
            claim="the k-variance shrinks as the sample size m grows (ratio < 1)",
            values=ratios,
            note="seed 0: "
            + ", ".join(
                f"m={m}: {stats[m][0]:.3f} (CV of one split {100 * stats[m][1]:.1f}%)" for m in ms
            ),
            config=config,
            seeds=list(ctx.seeds),
            runtime_s=runtime,
        )
    )
    return recs
