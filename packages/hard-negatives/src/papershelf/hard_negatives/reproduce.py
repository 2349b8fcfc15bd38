"""``papershelf reproduce hard-negatives``: SimCLR vs DCL vs HCL across beta on digits.

Quick mode (offline, CPU, a few minutes): SimCLR-style training of an MLP on scikit-learn's
bundled digits, in two settings: all 10 digits (about 10% of a batch's "negatives" share the
anchor's class, the official tau_plus = 0.1), and 4 mutually confusable digits 3/5/8/9 (25% false
negatives, tau_plus = 0.25, and every true negative is a hard one). Frozen features are read by a
linear probe with all labels and with 5 labels per class. Then the graph variant: InfoGraph
with the JSD_hard loss across beta and both weight signs on four generated random-graph families
(:func:`papershelf.hard_negatives.graph.run_graph`). Needs the ``reproduce`` extra.

``--full`` runs the official image recipe at paper scale: STL10 (SimCLR on train+unlabeled
cropped to 32x32, read from ``$PAPERSHELF_DATA/stl10_binary``), ResNet-50 with a CIFAR stem,
batch 256, 400 epochs, t=0.5, tau_plus=0.1, then the official linear evaluation (100 epochs on
the frozen encoder): SimCLR, DCL and HCL beta in {0.5, 1, 2}, beside the official README's
numbers; see :mod:`papershelf.contrastive_bench.cifar`. ``$PAPERSHELF_FULL_OVERRIDES`` (a JSON
object of ``PaperScaleConfig`` fields) changes it, e.g. ``{"dataset": "cifar10"}``, or shrinks it
for smoke runs.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace

import torch

from papershelf.contrastive_bench.digits import (
    DigitsConfig,
    augment,
    linear_probe,
    load_digits_split,
    train_contrastive,
)
from papershelf.core import ReproduceContext, ResultRecord, paired_difference
from papershelf.hard_negatives._loss import hcl_loss, nt_xent_loss

PACKAGE = "hard-negatives"
TEMPERATURE = 0.5  # official default
BETAS = (0.0, 0.5, 1.0, 2.0)  # 0 is DCL
GRAPH_CONFIG = None  # the graph experiment's settings (None: GraphExperimentConfig() defaults)
# official README, STL10, ResNet-50, batch 256, 400 epochs, linear top-1 (%)
PAPER_STL10 = {"SimCLR": 80.15, 0.0: 84.26, 0.5: 86.38, 1.0: 87.44, 2.0: 87.09}
PAPER_NOTE = (
    "paper: STL10, ResNet-50, 400 epochs, linear top-1 (official README table); not comparable"
)
SETTINGS: dict[str, tuple[DigitsConfig, float]] = {
    # name: (training setting, tau_plus = the true share of same-class "negatives")
    "10 digits": (DigitsConfig(epochs=40), 0.1),
    "confusable digits 3/5/8/9": (
        DigitsConfig(classes=(3, 5, 8, 9), epochs=80, batch_size=128),
        0.25,
    ),
}


def _method_name(beta: float | None) -> str:
    if beta is None:
        return "SimCLR"
    return "DCL" if beta == 0.0 else f"HCL beta={beta:g}"


def _loss_fn(beta: float | None, tau_plus: float):
    if beta is None:
        return lambda z1, z2: nt_xent_loss(z1, z2, temperature=TEMPERATURE)
    return lambda z1, z2: hcl_loss(z1, z2, beta=beta, tau_plus=tau_plus, temperature=TEMPERATURE)


def clamped_share(
    model, x: torch.Tensor, batch_size: int, beta: float, tau_plus: float, seed: int
) -> float:
    """Share of anchors whose debiased negative mass hits the clamp, on one augmented batch."""
    g = torch.Generator().manual_seed(10_000 + seed)
    idx = torch.randperm(len(x), generator=g)[:batch_size]
    with torch.no_grad():
        z1 = torch.nn.functional.normalize(model(augment(x[idx], g))[1].double(), dim=1)
        z2 = torch.nn.functional.normalize(model(augment(x[idx], g))[1].double(), dim=1)
    n = len(idx)
    z = torch.cat([z1, z2])
    sim = z @ z.T / TEMPERATURE
    keep = ~torch.eye(2 * n, dtype=torch.bool)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    keep[torch.arange(2 * n), partner] = False
    neg = sim[keep].view(2 * n, -1)
    pos = sim[torch.arange(2 * n), partner]
    m = neg.shape[1]
    mass = m * torch.exp((1 + beta) * neg).sum(1) / torch.exp(beta * neg).sum(1)
    ng = (mass - tau_plus * m * pos.exp()) / (1 - tau_plus)
    return float((ng < m * math.exp(-1 / TEMPERATURE)).double().mean())


def run(ctx: ReproduceContext) -> list[ResultRecord]:
    """Run the reproduction; see the module docstring."""
    if ctx.full:
        return _run_full(ctx)
    seeds = ctx.seeds if len(ctx.seeds) > 1 else (0, 1, 2)
    methods: list[float | None] = [None, *BETAS]
    grid = [(s, b) for s in SETTINGS for b in methods]
    five: dict[tuple[str, float | None], list[float]] = {}
    full: dict[tuple[str, float | None], list[float]] = {}
    clamped: dict[tuple[str, float | None], list[float]] = {}
    raw: dict[str, tuple[float, float]] = {}
    data = {}
    for name, (cfg, _) in SETTINGS.items():
        data[name] = load_digits_split(cfg.classes)
        raw[name] = linear_probe(None, *data[name], shots=cfg.shots, draws=cfg.draws)
    started = time.perf_counter()
    for setting, beta in ctx.progress(grid, total=len(grid), desc="hard-negatives digits"):
        cfg, tau_plus = SETTINGS[setting]
        xtr, ytr, xte, yte = data[setting]
        for seed in seeds:
            model = train_contrastive(_loss_fn(beta, tau_plus), xtr, cfg, seed)
            acc_full, acc_five = linear_probe(
                model, xtr, ytr, xte, yte, shots=cfg.shots, draws=cfg.draws, seed=seed
            )
            five.setdefault((setting, beta), []).append(acc_five)
            full.setdefault((setting, beta), []).append(acc_full)
            if beta is not None:
                share = clamped_share(model, xtr, cfg.batch_size, beta, tau_plus, seed)
                clamped.setdefault((setting, beta), []).append(share)
    runtime = time.perf_counter() - started

    records: list[ResultRecord] = []
    for (setting, beta), vals in five.items():
        cfg, tau_plus = SETTINGS[setting]
        config = {
            "data": f"sklearn digits {list(cfg.classes)}, stratified 67/33",
            "encoder": "MLP 64-256-256 (BN, ReLU), projector 256-128-64",
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "temperature": TEMPERATURE,
            "beta": beta,
            "tau_plus": 0.0 if beta is None else tau_plus,
            "optimizer": "Adam 1e-3, wd 1e-6",
            "probe": f"logistic regression on standardised 256-d features; {cfg.shots}-shot x {cfg.draws} draws",
        }
        key = "SimCLR" if beta is None else beta
        on_ten = setting == "10 digits"
        records.append(
            ResultRecord(
                package=PACKAGE,
                experiment=f"{setting}: {_method_name(beta)}"
                + ("" if beta is None else f" (tau+={tau_plus})"),
                metric="5-shot linear probe accuracy (%)",
                values=vals,
                paper_value=PAPER_STL10[key] if on_ten else None,
                comparable=False,
                paper_note=PAPER_NOTE if on_ten else "",
                note=f"all-label probe {statistics.fmean(full[(setting, beta)]):.2f}%"
                + (
                    ""
                    if beta is None
                    else f"; rows at the clamp after training {statistics.fmean(clamped[(setting, beta)]):.0%}"
                ),
                config=config,
                seeds=list(seeds),
                runtime_s=runtime / len(grid),
            )
        )
    for setting in SETTINGS:
        records.append(
            ResultRecord(
                package=PACKAGE,
                experiment=f"{setting}: raw pixels (no training)",
                metric="5-shot linear probe accuracy (%)",
                values=[raw[setting][1]],
                comparable=False,
                note=f"all-label probe {raw[setting][0]:.2f}%",
            )
        )
        for better, worse, claim in [
            (1.0, None, "HCL (beta=1) beats SimCLR"),
            (0.0, None, "DCL beats SimCLR"),
            (1.0, 0.0, "HCL (beta=1) beats DCL"),
        ]:
            diff, se, holds = paired_difference(five[(setting, better)], five[(setting, worse)])
            records.append(
                ResultRecord(
                    package=PACKAGE,
                    experiment=f"{setting}: {_method_name(better)} minus {_method_name(worse)}",
                    metric="5-shot accuracy difference (points)",
                    values=[diff],
                    claim=f"{claim} by more than 2 standard errors",
                    claim_holds=holds,
                    comparable=False,
                    paper_note="paper (STL10): HCL 87.44 > DCL 84.26 > SimCLR 80.15",
                    note=f"difference {diff:+.2f} ± {se:.2f} (paired standard error over {len(seeds)} seeds)",
                    seeds=list(seeds),
                )
            )
    _figure(ctx, five, seeds, raw)
    # the graph variant (InfoGraph + JSD_hard) on generated graph families; imported here so the
    # digits part needs no torch-geometric
    from papershelf.hard_negatives.graph import run_graph

    records += run_graph(ctx, GRAPH_CONFIG)
    return records


def _figure(ctx: ReproduceContext, five, seeds, raw) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(
        1, len(SETTINGS), figsize=(4.5 * len(SETTINGS), 3.4), dpi=110, squeeze=False
    )
    axes = list(grid[0])
    for ax, (setting, (_, tau_plus)) in zip(axes, SETTINGS.items()):
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        means = [statistics.fmean(five[(setting, b)]) for b in BETAS]
        ax.errorbar(
            BETAS,
            means,
            yerr=[sd(five[(setting, b)]) for b in BETAS],
            marker="o",
            capsize=3,
            label=f"DCL (beta=0) / HCL, tau+={tau_plus}",
        )
        base = five[(setting, None)]
        m, s = statistics.fmean(base), sd(base)
        ax.axhline(m, color="C3", label="SimCLR (mean ± sd)")
        ax.axhspan(m - s, m + s, color="C3", alpha=0.15)
        ax.axhline(raw[setting][1], color="grey", ls=":", label="raw pixels")
        ax.set_xlabel("hardness beta")
        ax.set_title(f"{setting}, {len(seeds)} seeds", fontsize=9)
    axes[0].set_ylabel("5-shot linear probe accuracy (%)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig, "hcl_beta.png")
    plt.close(fig)


FULL_TAU_PLUS = 0.1  # official default
FULL_TOLERANCE = 1.0  # points of linear top-1 below the paper still "within tolerance"


def full_config():
    """The ``--full`` configuration (the official HCL image recipe), after
    ``$PAPERSHELF_FULL_OVERRIDES``."""
    from papershelf.contrastive_bench.cifar import PaperScaleConfig

    return PaperScaleConfig(dataset="stl10", arch="resnet50", epochs=400).with_overrides()


def _is_paper_setting(cfg) -> bool:
    from papershelf.contrastive_bench.cifar import PaperScaleConfig

    paper = PaperScaleConfig(dataset="stl10", arch="resnet50", epochs=400)
    return replace(cfg, workers=paper.workers, data_root=None) == paper


def _run_full(ctx: ReproduceContext) -> list[ResultRecord]:
    import dataclasses

    from papershelf.contrastive_bench.cifar import run_grid

    cfg = full_config()
    comparable = _is_paper_setting(cfg)
    methods: list[float | None] = [None, *BETAS]
    grid = [(_method_name(b), _loss_fn(b, FULL_TAU_PLUS), 0.0) for b in methods]
    acc = {k: [100.0 * a for a in v] for k, v in run_grid(ctx, grid, cfg).items()}
    data = "STL10" if cfg.dataset == "stl10" else "CIFAR-10"
    scale = "" if cfg.is_paper_scale else " (capped run, not the paper scale)"
    config = {
        **{k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("data_root", "workers")},
        "temperature": TEMPERATURE,
    }
    note = (
        "the official recipe and data"
        if comparable
        else PAPER_NOTE + f" (ours: {data}, {cfg.arch}, {cfg.epochs} epochs)"
    )
    records = [
        ResultRecord(
            package=PACKAGE,
            experiment=f"{data} SimCLR recipe, {cfg.arch}: {_method_name(b)}{scale}",
            metric="linear probe top-1 (%)",
            values=acc[_method_name(b)],
            paper_value=PAPER_STL10["SimCLR" if b is None else b],
            tolerance=FULL_TOLERANCE,
            comparable=comparable,
            paper_note=note,
            config={
                **config,
                "beta": b,
                "tau_plus": 0.0 if b is None else FULL_TAU_PLUS,
            },
            seeds=list(ctx.seeds),
        )
        for b in methods
    ]
    for better, worse, claim in [
        (1.0, None, "HCL (beta=1) beats SimCLR"),
        (0.0, None, "DCL beats SimCLR"),
        (1.0, 0.0, "HCL (beta=1) beats DCL"),
    ]:
        diff, se, holds = paired_difference(acc[_method_name(better)], acc[_method_name(worse)])
        records.append(
            ResultRecord(
                package=PACKAGE,
                experiment=f"{data}: {_method_name(better)} minus {_method_name(worse)}{scale}",
                metric="top-1 difference (points)",
                values=[diff],
                claim=f"{claim} by more than 2 standard errors",
                claim_holds=holds,
                comparable=False,
                paper_note="paper (STL10): HCL 87.44 > DCL 84.26 > SimCLR 80.15",
                note=f"difference {diff:+.2f} ± {se:.2f} (paired standard error over "
                f"{len(ctx.seeds)} seeds)",
                config=config,
                seeds=list(ctx.seeds),
            )
        )
    _full_figure(ctx, acc, f"{data}, {cfg.arch}, {cfg.epochs} epochs{scale}")
    return records


def _full_figure(ctx: ReproduceContext, acc: dict[str, list[float]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
    fig, ax = plt.subplots(figsize=(5.0, 3.5), dpi=100)
    vals = [acc[_method_name(b)] for b in BETAS]
    ax.errorbar(
        BETAS,
        [statistics.fmean(v) for v in vals],
        yerr=[sd(v) for v in vals],
        marker="o",
        capsize=3,
        label=f"ours: DCL (beta=0) / HCL, tau+={FULL_TAU_PLUS}",
    )
    ax.plot(BETAS, [PAPER_STL10[b] for b in BETAS], "o--", mfc="none", color="C0", alpha=0.6)
    ax.plot([], [], "o--", mfc="none", color="grey", label="official README (STL10), hollow")
    base = acc["SimCLR"]
    m, s = statistics.fmean(base), sd(base)
    ax.axhline(m, color="C3", label="ours: SimCLR (mean ± sd)")
    ax.axhspan(m - s, m + s, color="C3", alpha=0.15)
    ax.axhline(PAPER_STL10["SimCLR"], color="C3", ls="--", alpha=0.6)
    ax.set_xlabel("hardness beta")
    ax.set_ylabel("linear probe top-1 (%)")
    ax.set_title(f"{title}, {len(ctx.seeds)} seeds", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig, "hcl_full_beta.png")
    plt.close(fig)
