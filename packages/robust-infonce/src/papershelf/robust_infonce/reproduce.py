"""``papershelf reproduce robust-infonce``: does RINCE resist noisy views that hurt InfoNCE?

Quick mode (offline, CPU, about a minute at ``--seeds 5``): SimCLR-style training on a synthetic
latent-class data set (:mod:`papershelf.robust_infonce._experiment`) where a view keeps an
instance's class part and redraws its nuisance part, with and without **noisy views**: a share
``NOISE_RATE`` of the positive pairs are two instances of *different classes*. First the
experiment checks that the noise measurably hurts InfoNCE (clean minus noisy, paired over seeds);
then it tests the paper's claim there: RINCE beats InfoNCE under noisy views, and its gain is
larger under noise than on clean views. Frozen encoder features are read by a 5-shot
logistic-regression probe. ``--seeds N`` is used as given (claims need at least 2 seeds).

``--full`` runs SimCLR at paper scale with InfoNCE and RINCE q=0.5 at 0/30/60% noisy views
(each pair's second view is another random image with that probability): ResNet-18 with a CIFAR
stem on CIFAR-10 read from ``$PAPERSHELF_DATA/cifar-10-batches-py``, batch 256, 400 epochs, the
official HCL/DCL image recipe (RINCE released no CIFAR code), linear evaluation on the frozen
encoder; see :mod:`papershelf.contrastive_bench.cifar`. ``$PAPERSHELF_FULL_OVERRIDES`` (a JSON
object of ``PaperScaleConfig`` fields) shrinks it for smoke runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from papershelf.core import ReproduceContext, ResultRecord
from papershelf.core.records import claim_test
from papershelf.robust_infonce._experiment import LatentClassConfig, run_latent, with_noise
from papershelf.robust_infonce._loss import info_nce_loss, rince_loss

PACKAGE = "robust-infonce"
TEMPERATURE = 0.5  # the official cifar10 branch forces 0.5; 0.1 at ImageNet scale
LAM = 0.01  # official (SimCLR and MoCo v3)
LOSSES: dict[str, dict[str, float]] = {
    "InfoNCE": {},
    "RINCE q=0.5": {"q": 0.5},
    "RINCE q=1.0": {"q": 1.0},
}
NOISE_RATE = 0.6  # share of positive pairs made of two instances of different classes
QUICK = LatentClassConfig()
HEADLINE_LOSS = "RINCE q=0.5"  # the package default
PAPER_NOTE = (
    "paper: RINCE beats InfoNCE under noisy views (CIFAR-10, ImageNet, video, graphs); its tables "
    "are in the PDF only, so no paper number is set beside ours"
)


def _loss_fn(name: str) -> Callable[..., Any]:
    kw = LOSSES[name]
    if not kw:
        return lambda z1, z2: info_nce_loss(z1, z2, temperature=TEMPERATURE)
    return lambda z1, z2: rince_loss(z1, z2, q=kw["q"], lam=LAM, temperature=TEMPERATURE)


def _label(p: float) -> str:
    return "clean views" if p == 0 else f"{p:.0%} noisy views (other-class partners)"


def _require_reproduce_extra() -> None:
    import importlib.util

    missing = [m for m in ("sklearn", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"papershelf reproduce robust-infonce needs {', '.join(missing)}: "
            'pip install "papershelf-robust-infonce[reproduce]"'
        )


def run(ctx: ReproduceContext) -> list[ResultRecord]:
    """Run the reproduction; see the module docstring."""
    _require_reproduce_extra()
    if ctx.full:
        return _run_full(ctx)
    seeds = list(ctx.seeds)
    cfg = QUICK
    rates = (0.0, NOISE_RATE)
    grid = [(p, name) for p in rates for name in LOSSES]
    acc: dict[tuple[float, str], list[float]] = {}
    started = time.perf_counter()
    raw = [run_latent(None, cfg, seed) for seed in seeds]
    for p, name in ctx.progress(grid, total=len(grid), desc="robust-infonce latent classes"):
        acc[(p, name)] = [run_latent(_loss_fn(name), with_noise(cfg, p), seed) for seed in seeds]
    runtime = time.perf_counter() - started
    config: dict[str, Any] = {
        "data": (
            f"synthetic latent classes: {cfg.classes} classes, class part {cfg.class_dim}-d "
            f"(separation {cfg.separation}, spread {cfg.spread}), nuisance {cfg.nuisance_dim}-d "
            f"(scale {cfg.nuisance_scale}) redrawn in every view, random rotation; "
            f"{cfg.n_train} train / {cfg.n_test} test points per seed"
        ),
        "encoder": f"MLP {cfg.class_dim + cfg.nuisance_dim}-{cfg.hidden}-{cfg.hidden} (BN, ReLU), "
        f"projector {cfg.hidden}-{cfg.hidden}-{cfg.out}",
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "temperature": TEMPERATURE,
        "lam": LAM,
        "optimizer": f"Adam {cfg.lr:g}, wd {cfg.weight_decay:g}",
        "probe": f"logistic regression, {cfg.shots} labels per class x {cfg.draws} draws",
    }
    records: list[ResultRecord] = []
    for (p, name), vals in acc.items():
        records.append(
            ResultRecord(
                package=PACKAGE,
                experiment=f"latent classes, {_label(p)}: {name}",
                metric="5-shot linear probe accuracy (%)",
                values=vals,
                comparable=False,
                config={**config, "noisy_view_rate": p, "loss": name, **LOSSES[name]},
                seeds=seeds,
            )
        )
    records.append(
        ResultRecord(
            package=PACKAGE,
            experiment="latent classes, raw inputs (no training)",
            metric="5-shot linear probe accuracy (%)",
            values=raw,
            comparable=False,
            config=config,
            seeds=seeds,
        )
    )
    noisy, clean = NOISE_RATE, 0.0
    # 1. the setting can show the effect: noisy views hurt InfoNCE
    hurt = claim_test(acc[(clean, "InfoNCE")], acc[(noisy, "InfoNCE")])
    records.append(
        ResultRecord.from_claim_test(
            hurt,
            package=PACKAGE,
            experiment=f"latent classes: InfoNCE clean minus {noisy:.0%} noisy views",
            metric="5-shot accuracy drop (points)",
            claim="noisy views (other-class partners) hurt InfoNCE",
            comparable=False,
            paper_note="paper: InfoNCE degrades under noisy views (its motivation)",
            config={**config, "noisy_view_rate": noisy},
            seeds=seeds,
        )
    )
    # 2. the paper's claim where the noise hurts: RINCE beats InfoNCE under noisy views
    for name in (n for n in LOSSES if n != "InfoNCE"):
        test = claim_test(acc[(noisy, name)], acc[(noisy, "InfoNCE")])
        records.append(
            ResultRecord.from_claim_test(
                test,
                package=PACKAGE,
                experiment=f"latent classes, {_label(noisy)}: {name} minus InfoNCE",
                metric="5-shot accuracy difference (points)",
                claim=f"{name} beats InfoNCE under noisy views",
                comparable=False,
                headline=name == HEADLINE_LOSS,
                paper_note=PAPER_NOTE,
                config={**config, "noisy_view_rate": noisy, "loss": name, **LOSSES[name]},
                seeds=seeds,
                runtime_s=runtime,
            )
        )
    # 3. robustness proper: RINCE's gain over InfoNCE is larger under noise than on clean views
    for name in (n for n in LOSSES if n != "InfoNCE"):
        gain = {
            p: [r - i for r, i in zip(acc[(p, name)], acc[(p, "InfoNCE")], strict=True)]
            for p in rates
        }
        test = claim_test(gain[noisy], gain[clean])
        records.append(
            ResultRecord.from_claim_test(
                test,
                package=PACKAGE,
                experiment=f"latent classes: {name} gain over InfoNCE, {noisy:.0%} noisy minus clean",
                metric="change of the 5-shot gain (points)",
                claim=f"the gain of {name} over InfoNCE is larger under noisy views than on clean views",
                comparable=False,
                paper_note="paper: RINCE is robust to noisy views, where InfoNCE degrades",
                note=(
                    f"gain {statistics.fmean(gain[clean]):+.2f} clean, "
                    f"{statistics.fmean(gain[noisy]):+.2f} noisy"
                ),
                config={**config, "noisy_view_rate": noisy, "loss": name, **LOSSES[name]},
                seeds=seeds,
            )
        )
    _figure(ctx, acc, raw, seeds)
    return records


def _figure(
    ctx: ReproduceContext,
    acc: dict[tuple[float, str], list[float]],
    raw: list[float],
    seeds: list[int],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.8), dpi=100)
    for j, p in enumerate((0.0, NOISE_RATE)):
        for i, name in enumerate(LOSSES):
            x = i + 0.38 * (j - 0.5)
            vals = acc[(p, name)]
            ax.bar(
                x,
                statistics.fmean(vals),
                width=0.36,
                color=f"C{i}",
                alpha=1.0 if p == 0 else 0.45,
                hatch="" if p == 0 else "//",
                label=_label(p) if i == 0 else None,
            )
            ax.plot([x] * len(vals), vals, "k.", ms=4)
    ax.axhline(statistics.fmean(raw), color="grey", ls=":", label="raw inputs")
    ax.set_xticks(range(len(LOSSES)), list(LOSSES))
    lows = [min(v) for v in acc.values()] + raw
    ax.set_ylim(max(0.0, min(lows) - 5.0), 100.0)
    ax.set_ylabel("5-shot linear probe accuracy (%)")
    ax.set_title(
        f"Latent classes, t={TEMPERATURE}, λ={LAM}, {len(seeds)} seeds (bars: mean, dots: seeds)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    ctx.save_figure(fig, "rince_noisy_views.png")
    plt.close(fig)


# the --full setting: ResNet-18 on CIFAR-10 with the official HCL/DCL image recipe; the noisy-view
# rates are resampled every time a pair is drawn (the CIFAR experiment of the paper has no code)
FULL_LOSSES = ("InfoNCE", "RINCE q=0.5")
FULL_NOISE_RATES = (0.0, 0.3, 0.6)


def _cifar_harness() -> Any:
    try:
        from papershelf.contrastive_bench import cifar
    except ImportError as exc:
        from papershelf.core.registry import ReproduceError

        raise ReproduceError(
            "--full needs the CIFAR harness of the unpublished workspace member "
            "papershelf-contrastive-bench: run it from a clone of the papershelf repository "
            "(uv run papershelf reproduce robust-infonce --full)"
        ) from exc
    return cifar


def full_config() -> Any:
    """The ``--full`` configuration, after ``$PAPERSHELF_FULL_OVERRIDES``."""
    PaperScaleConfig = _cifar_harness().PaperScaleConfig

    return PaperScaleConfig(dataset="cifar10", arch="resnet18", epochs=400).with_overrides()


def _run_full(ctx: ReproduceContext) -> list[ResultRecord]:
    import dataclasses

    run_grid = _cifar_harness().run_grid
    cfg = full_config()
    cells = [(p, name) for p in FULL_NOISE_RATES for name in FULL_LOSSES]
    methods = [(f"{name}, {p:.0%} noisy views", _loss_fn(name), p) for p, name in cells]
    acc = {k: [100.0 * a for a in v] for k, v in run_grid(ctx, methods, cfg).items()}
    config = {
        **{k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("data_root", "workers")},
        "temperature": TEMPERATURE,
        "lam": LAM,
        "noisy_views": "view 2 is another random image with probability p, drawn every epoch",
    }
    scale = "" if cfg.is_paper_scale else " (capped run, not the paper scale)"
    records = [
        ResultRecord(
            package=PACKAGE,
            experiment=f"CIFAR-10 SimCLR {cfg.arch}, "
            f"{'clean views' if p == 0 else f'{p:.0%} noisy views (resampled)'}: {name}{scale}",
            metric="linear probe top-1 (%)",
            values=acc[f"{name}, {p:.0%} noisy views"],
            comparable=False,
            paper_note=PAPER_NOTE,
            config={**config, "noisy_view_rate": p, "loss": name, **LOSSES[name]},
            seeds=list(ctx.seeds),
        )
        for p, name in cells
    ]
    p_max = max(FULL_NOISE_RATES)
    for name in FULL_LOSSES[1:]:
        test = claim_test(
            acc[f"{name}, {p_max:.0%} noisy views"], acc[f"InfoNCE, {p_max:.0%} noisy views"]
        )
        records.append(
            ResultRecord.from_claim_test(
                test,
                package=PACKAGE,
                experiment=f"CIFAR-10, {p_max:.0%} noisy views: {name} minus InfoNCE{scale}",
                metric="top-1 difference (points)",
                claim=f"{name} beats InfoNCE under noisy views",
                comparable=False,
                paper_note=PAPER_NOTE,
                config={**config, "noisy_view_rate": p_max},
                seeds=list(ctx.seeds),
                headline=True,
            )
        )
    _full_figure(ctx, acc, cfg.arch)
    return records


def _full_figure(ctx: ReproduceContext, acc: dict[str, list[float]], arch: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
    fig, ax = plt.subplots(figsize=(5.0, 3.5), dpi=100)
    for i, name in enumerate(FULL_LOSSES):
        vals = [acc[f"{name}, {p:.0%} noisy views"] for p in FULL_NOISE_RATES]
        ax.errorbar(
            [p + 0.01 * (i - 0.5) for p in FULL_NOISE_RATES],
            [statistics.fmean(v) for v in vals],
            yerr=[sd(v) for v in vals],
            marker="o",
            capsize=3,
            label=name,
        )
    ax.set_xlabel("noisy-view rate p")
    ax.set_ylabel("linear probe top-1 (%)")
    ax.set_title(f"CIFAR-10 SimCLR, {arch}, {len(ctx.seeds)} seeds (mean ± sd)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "rince_cifar10_noisy_views.png")
    plt.close(fig)
