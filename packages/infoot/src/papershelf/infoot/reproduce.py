"""``papershelf reproduce infoot``: the paper's three claims on data available offline.

Quick mode (default, under a minute on 2 CPU cores), per seed:

1. Domain adaptation on scikit-learn digits under a synthetic domain shift (contrast x1.5,
   brightness +4, Gaussian noise sd 2): 1-NN accuracy on held-out target digits after projecting
   the labelled source onto the target, Fused InfoOT (barycentric / conditional, with and without
   source labels, parity, converged and fast inner solver) against exact OT and entropic OT
   from POT. Fast mode (``sinkhorn="fast"``) is checked for non-inferiority to parity mode
   (it loses at most 0.02 accuracy; the same for the retrieval P@15 below).
2. Robustness to outliers on a 2-D toy (3 clusters, 10% far outliers in the source): where the
   projections of the outliers land, barycentric vs conditional.
3. Unseen samples: cross-domain retrieval of shifted digits for source digits never seen in
   ``fit`` (conditional score, P@1/5/15) against nearest neighbours.
4. Alignment across dimensions (the paper's single-cell claim), plain InfoOT against entropic
   Gromov-Wasserstein (FOSCTTM): simulated manifolds (bifurcation, circular frustum, Swiss roll)
   seen through two random linear views of 100 and 50 dimensions plus noise, in the manner of
   the MMD-MA / SCOT simulations; and 64-d digits against a 16-d nonlinear view, a setting that
   keeps too little geometry for either method (reported without a claim).

A figure shows the couplings and the outlier projections on the 2-D toy.

``--full``: the same stand-ins at the scale of the developer spec (600 source digits), and the
paper's Office-Caltech DeCAF protocol when the user provides the feature files
(``$INFOOT_DECAF_DIR/{caltech,amazon,webcam,dslr}_decaf.mat``, as in the official repository).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from papershelf.core import ResultRecord, make_rng
from papershelf.core.records import claim_test
from papershelf.core.registry import ReproduceContext
from papershelf.infoot import FusedInfoOT, InfoOT

log = logging.getLogger(__name__)

PKG = "infoot"
DA_PAPER_NOTE = "paper: Office-Caltech DeCAF6 (table not read offline)"


# -- data -------------------------------------------------------------------------------------
def shifted_digits(rng: np.random.Generator, n_source: int, n_target: int, n_test: int):
    """Source digits and a disjoint set of shifted target digits (fit part and test part)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    idx = rng.permutation(len(X))
    s, t = idx[:n_source], idx[n_source : n_source + n_target + n_test]
    Xt = X[t] * 1.5 + 4.0 + 2.0 * rng.standard_normal(X[t].shape)
    return (X[s], y[s]), (Xt[:n_target], y[t][:n_target]), (Xt[n_target:], y[t][n_target:])


def toy_clusters(rng: np.random.Generator, n: int, shift: tuple[float, float], scale: float = 0.5):
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    labels = np.arange(n) % 3
    return centres[labels] + scale * rng.standard_normal((n, 2)) + np.asarray(shift), labels


# -- metrics ----------------------------------------------------------------------------------
def one_nn_accuracy(X_train, y_train, X_test, y_test) -> float:
    d = (X_test**2).sum(1)[:, None] - 2 * X_test @ X_train.T + (X_train**2).sum(1)[None]
    return float((y_train[d.argmin(1)] == y_test).mean())


def precision_at(scores: np.ndarray, y_query: np.ndarray, y_target: np.ndarray, k: int) -> float:
    top = np.argsort(-scores, axis=1)[:, :k]
    return float((y_target[top] == y_query[:, None]).mean())


def foscttm(X_proj: np.ndarray, Xt: np.ndarray, match: np.ndarray) -> float:
    """Fraction of samples closer than the true match (0 is perfect, 0.5 is random)."""
    d = np.sqrt(np.maximum((X_proj**2).sum(1)[:, None] - 2 * X_proj @ Xt.T + (Xt**2).sum(1), 0))
    true = d[np.arange(len(d)), match]
    return float((d < true[:, None]).mean())


# -- experiments ------------------------------------------------------------------------------
def domain_adaptation(seed: int, n_source: int, n_target: int, n_test: int, converged_iter: int):
    import ot

    rng = make_rng(seed)
    (Xs, ys), (Xt, _), (Xte, yte) = shifted_digits(rng, n_source, n_target, n_test)
    out: dict[str, float] = {"no adaptation": one_nn_accuracy(Xs, ys, Xte, yte)}
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    emd = ot.da.EMDTransport().fit(Xs=Xs, Xt=Xt)
    out["exact OT (EMD), barycentric"] = one_nn_accuracy(emd.transform(Xs=Xs), ys, Xte, yte)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = ot.da.SinkhornTransport(reg_e=0.1, norm="max").fit(Xs=Xs, Xt=Xt)
    out["entropic OT (Sinkhorn), barycentric"] = one_nn_accuracy(sk.transform(Xs=Xs), ys, Xte, yte)
    times["baselines"] = time.perf_counter() - t0
    configs: list[tuple[str, dict[str, Any], Any]] = [
        ("Fused InfoOT, labels", {}, ys),
        ("Fused InfoOT, no labels", {}, None),
        (
            "Fused InfoOT, labels, converged",
            {"sinkhorn": "log", "inner_max_iter": converged_iter},
            ys,
        ),
        ("Fused InfoOT, labels, fast", {"sinkhorn": "fast"}, ys),
    ]
    stats: dict[str, Any] = {}
    for name, kw, labels in configs:
        t0 = time.perf_counter()
        est = FusedInfoOT(h=0.5, lam=100.0, reg=1.0, **kw).fit(Xs, labels, Xt)
        times[name] = time.perf_counter() - t0
        for method in ("barycentric", "conditional"):
            out[f"{name}, {method}"] = one_nn_accuracy(
                est.transform(Xs, method=method), ys, Xte, yte
            )
        P = est.coupling_
        stats[name] = {
            "column_l1_error": float(np.abs(P.sum(0) - 1 / P.shape[1]).sum()),
            "n_iter": est.n_iter_,
            "mutual_information": est.mutual_information_,
            "transport_cost": float((P * est.cost_).sum()),
        }
    return out, times, stats


def outliers(seed: int, n: int, n_out: int):
    """Target with far outliers: where do the source points get projected?"""
    import ot

    rng = make_rng(seed)
    Xs, ys = toy_clusters(rng, n, (0.0, 0.0))
    Xt_in, yt = toy_clusters(rng, n, (1.5, -1.0))
    angle = rng.uniform(0, 2 * np.pi, n_out)
    Xo = np.c_[np.cos(angle), np.sin(angle)] * rng.uniform(8, 12, (n_out, 1)) + [3.5, 0.2]
    Xt = np.vstack([Xt_in, Xo])
    est = FusedInfoOT().fit(Xs, Xt=Xt)
    emd = ot.da.EMDTransport(metric="euclidean").fit(Xs=Xs, Xt=Xt)
    nn_spacing = np.sort(np.linalg.norm(Xt_in[:, None] - Xt_in[None], axis=-1), axis=1)[:, 1]
    radius = float(np.quantile(nn_spacing, 0.95))

    def landing(proj: np.ndarray) -> dict[str, float]:
        d = np.linalg.norm(proj[:, None] - Xt_in[None], axis=-1)
        return {
            "source projected onto the inlier target support": float((d.min(1) <= radius).mean()),
            "label transfer accuracy": float((yt[d.argmin(1)] == ys).mean()),
        }

    res = {
        "Fused InfoOT, barycentric": landing(est.transform(Xs, method="barycentric")),
        "Fused InfoOT, conditional": landing(est.transform(Xs, method="conditional")),
        "exact OT, barycentric": landing(emd.transform(Xs=Xs)),
    }
    return res, (Xs, ys, Xt, yt, n, est, emd)


def retrieval(seed: int, n_source: int, n_target: int, n_query: int):
    rng = make_rng(seed)
    (Xs_all, ys_all), (Xt, yt), _ = shifted_digits(rng, n_source + n_query, n_target, 0)
    Xs, Xq, yq = Xs_all[:n_source], Xs_all[n_source:], ys_all[n_source:]
    out: dict[str, float] = {}
    d = (Xq**2).sum(1)[:, None] - 2 * Xq @ Xt.T + (Xt**2).sum(1)[None]
    for k in (1, 5, 15):
        out[f"nearest neighbour P@{k}"] = precision_at(-d, yq, yt, k)
    est = FusedInfoOT(h=0.5, reg=5.0).fit(Xs, Xt=Xt)
    for mode in ("query", "train"):
        # the bandwidth mode only enters conditional_score: no refit needed
        score = est.set_params(oos_bandwidth=mode).conditional_score(Xq)
        for k in (1, 5, 15):
            out[f"InfoOT conditional score ({mode} bandwidth) P@{k}"] = precision_at(
                score, yq, yt, k
            )
    fast = FusedInfoOT(h=0.5, reg=5.0, sinkhorn="fast", oos_bandwidth="query").fit(Xs, Xt=Xt)
    score = fast.conditional_score(Xq)
    for k in (1, 5, 15):
        out[f"InfoOT conditional score (query bandwidth), fast mode P@{k}"] = precision_at(
            score, yq, yt, k
        )
    return out


# entropic GW regularisation on max-normalised distances (the session-1 setting; a grid of
# 1e-3 / 5e-3 / 2e-2 is in the README)
GW_EPSILON = 5e-3


def digits_views(seed: int, n: int):
    """``n`` digits (64-d) and a 16-d nonlinear view ``tanh(X W / 4)``, target rows shuffled.

    Returns ``(Xs, Xt, match, ys, yt)`` with source ``i`` matching target ``match[i]``.
    """
    from sklearn.datasets import load_digits

    rng = make_rng(seed)
    X, y = load_digits(return_X_y=True)
    idx = rng.permutation(len(X))[:n]
    Xs = X[idx]
    W = rng.standard_normal((64, 16)) / 8.0
    perm = rng.permutation(n)
    Xt = np.tanh(Xs @ W / 4.0)[perm]
    return Xs, Xt, np.argsort(perm), y[idx], y[idx][perm]


def cross_dimension(seed: int, n: int):
    Xs, Xt, match, _, _ = digits_views(seed, n)
    t0 = time.perf_counter()
    est = InfoOT(h=0.5, reg=0.05).fit(Xs, Xt=Xt)
    t_info = time.perf_counter() - t0
    out = {"InfoOT": foscttm(est.transform(Xs, method="barycentric"), Xt, match)}
    t0 = time.perf_counter()
    G = _gw_alignment(Xs, Xt, GW_EPSILON)
    t_gw = time.perf_counter() - t0
    out["entropic GW"] = foscttm(G @ Xt / G.sum(1, keepdims=True), Xt, match)
    return out, {"InfoOT": t_info, "entropic GW": t_gw}


MANIFOLDS = ("bifurcation", "circular frustum", "Swiss roll")


def manifold_views(kind: str, seed: int, n: int, noise: float, dims: tuple[int, int] = (100, 50)):
    """Two views of different dimension of one low-dimensional manifold (single-cell style).

    In the manner of the simulations of MMD-MA and SCOT that the paper aligns: ``n`` points on
    a bifurcating trajectory (2-D), a circular frustum or a Swiss roll (3-D), standardised,
    mapped to ``dims[0]`` and ``dims[1]`` dimensions by random Gaussian matrices, plus
    Gaussian noise of sd ``noise``; the target rows are shuffled. Returns
    ``(Xs, Xt, match)`` with source ``i`` matching target ``match[i]``.
    """
    rng = make_rng(seed)
    if kind == "bifurcation":  # a trunk that splits into two branches of different length
        s, branch = rng.random(n), rng.integers(0, 2, n)
        trunk = s < 0.4
        x = np.where(trunk, s / 0.4 * 5, 5 + (s - 0.4) / 0.6 * np.where(branch, 6, 3))
        Z = np.c_[x, np.where(trunk, 0.0, (x - 5) * np.where(branch, 1.0, -1.5))]
    elif kind == "circular frustum":
        t, z = 2 * np.pi * rng.random(n), rng.random(n)
        Z = np.c_[(1 + z) * np.cos(t), (1 + z) * np.sin(t), 3 * z]
    elif kind == "Swiss roll":
        t = 1.5 * np.pi * (1 + 2 * rng.random(n))
        Z = np.c_[t * np.cos(t), 10 * rng.random(n), t * np.sin(t)]
    else:
        raise ValueError(f"kind must be one of {MANIFOLDS}, got {kind!r}")
    Z = (Z - Z.mean(0)) / Z.std(0)
    views = [
        Z @ rng.standard_normal((Z.shape[1], d)) + noise * rng.standard_normal((n, d)) for d in dims
    ]
    perm = rng.permutation(n)
    return views[0], views[1][perm], np.argsort(perm)


def _gw_alignment(Xs: np.ndarray, Xt: np.ndarray, epsilon: float) -> np.ndarray:
    """Entropic GW (POT, PGD solver) on max-normalised Euclidean distances; returns the plan."""
    import ot

    Cs = ot.dist(Xs, Xs, metric="euclidean")
    Ct = ot.dist(Xt, Xt, metric="euclidean")
    p, q = np.full(len(Xs), 1 / len(Xs)), np.full(len(Xt), 1 / len(Xt))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ot.gromov.entropic_gromov_wasserstein(
            Cs / Cs.max(), Ct / Ct.max(), p, q, "square_loss", epsilon=epsilon, max_iter=200
        )


def manifold_alignment(seed: int, n: int, noise: float) -> dict[str, dict[str, float]]:
    """FOSCTTM of plain InfoOT (official defaults) and entropic GW on each simulated manifold."""
    out: dict[str, dict[str, float]] = {}
    for kind in MANIFOLDS:
        Xs, Xt, match = manifold_views(kind, seed, n, noise)
        est = InfoOT(h=0.5, reg=0.05, progress=False).fit(Xs, Xt=Xt)
        G = _gw_alignment(Xs, Xt, GW_EPSILON)
        out[kind] = {
            "InfoOT": foscttm(est.transform(Xs, method="barycentric"), Xt, match),
            "entropic GW": foscttm(G @ Xt / G.sum(1, keepdims=True), Xt, match),
        }
    return out


# -- figure -----------------------------------------------------------------------------------
def toy_figure(ctx: ReproduceContext, toy: tuple) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Xs, ys, Xt, yt, n, est, emd = toy
    colours = np.array(["tab:blue", "tab:orange", "tab:green"])
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, P, title in (
        (axes[0], emd.coupling_, "exact OT coupling"),
        (axes[1], est.coupling_, "Fused InfoOT coupling"),
    ):
        i, j = np.nonzero(P > 0.5 * P.max(axis=1, keepdims=True))
        for a, b in zip(i[::2], j[::2]):
            ax.plot(*np.c_[Xs[a], Xt[b]], color="0.6", lw=0.4, alpha=0.6)
        ax.scatter(*Xs.T, c=colours[ys], s=8, marker="o", label="source")
        ax.scatter(*Xt[:n].T, c=colours[yt], s=10, marker="x", label="target")
        ax.scatter(*Xt[n:].T, c="k", s=12, marker="^", label="target outliers")
        ax.set_title(title)
    for ax in axes:
        ax.set_xlim(-9, 16)
        ax.set_ylim(-12, 12)
    ax = axes[2]
    ax.scatter(*Xt[:n].T, c="0.75", s=8, marker="x", label="target")
    ax.scatter(*Xt[n:].T, c="k", s=14, marker="^", label="target outliers")
    ax.scatter(*est.transform(Xs, method="barycentric").T, c="tab:red", s=6, label="barycentric")
    ax.scatter(*est.transform(Xs, method="conditional").T, c="tab:purple", s=6, label="conditional")
    ax.set_title("source projected onto a target with outliers")
    ax.legend(fontsize=7, loc="lower left")
    for a in axes:
        a.set_aspect("equal", adjustable="box")
        a.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    ctx.save_figure(fig, "infoot_toy.png", dpi=80)
    plt.close(fig)


# -- Office-Caltech (full mode, user-provided features) ----------------------------------------
OFFICE_DOMAINS = ("caltech", "amazon", "webcam", "dslr")


def office_caltech(decaf_dir: Path, seeds: tuple[int, ...], bar: Any) -> list[ResultRecord]:
    """The official ``domain_adapt.py`` protocol on every ordered domain pair."""
    import scipy.io

    feats = {}
    for d in OFFICE_DOMAINS:
        mat = scipy.io.loadmat(decaf_dir / f"{d}_decaf.mat")
        feats[d] = (np.asarray(mat["feas"], dtype=np.float64), mat["labels"].reshape(-1))
    records = []
    pairs = [(s, t) for s in OFFICE_DOMAINS for t in OFFICE_DOMAINS if s != t]
    for src, tgt in bar(pairs, desc="Office-Caltech pairs"):
        accs: dict[str, list[float]] = {"barycentric": [], "conditional": []}
        for seed in seeds:
            X1, Y1 = feats[src]
            X2, Y2 = feats[tgt]
            idx = np.random.RandomState(seed).permutation(len(X2))
            X2, Y2 = X2[idx], Y2[idx]
            cut = int(len(X2) * 0.9)
            est = FusedInfoOT(h=0.5).fit(X1, Y1, X2[:cut])
            for method in accs:
                accs[method].append(
                    one_nn_accuracy(est.transform(X1, method=method), Y1, X2[cut:], Y2[cut:])
                )
        for method, vals in accs.items():
            records.append(
                ResultRecord(
                    PKG,
                    f"Office-Caltech DeCAF {src}->{tgt}",
                    f"1-NN accuracy, {method}",
                    vals,
                    higher_is_better=True,
                    comparable=True,
                    paper_note="paper table not transcribed offline; compare by hand",
                    config={"h": 0.5, "lam": 100.0, "reg": 1.0, "labels": True},
                    seeds=list(seeds),
                )
            )
    return records


# -- runner -----------------------------------------------------------------------------------
# (source, target, held-out target); inner cap of the converged mode; (points, outliers);
# (fit, targets, unseen queries); points in the digits cross-dimension alignment; (points,
# noise sd) of the simulated manifolds
QUICK_SIZES: dict[str, Any] = {
    "da": (200, 200, 400),
    "converged_iter": 1000,
    "toy": (120, 12),
    "retrieval": (240, 320, 100),
    "cross": 150,
    "manifold": (200, 1.0),
}
FULL_SIZES: dict[str, Any] = {
    "da": (600, 600, 597),
    "converged_iter": 10_000,
    "toy": (300, 30),
    "retrieval": (600, 800, 100),
    "cross": 600,
    "manifold": (600, 1.0),
}


# fast mode (issue 20) may lose at most this much accuracy against the parity mode
FAST_MARGIN = 0.02


def _fast_claim(
    fast: list[float], parity: list[float], experiment: str, metric: str, parity_name: str,
    seeds: tuple[int, ...], times: dict[str, list[float]] | None, rec: dict[str, Any],
) -> ResultRecord:  # fmt: skip
    """Non-inferiority of ``sinkhorn="fast"``: mean(fast - parity) > -FAST_MARGIN."""
    test = claim_test(fast, parity, direction="greater", margin=-FAST_MARGIN)
    note = f"parity mode {float(np.mean(parity)):.3f}"
    if times is not None:
        t_fast = float(np.mean(times["Fused InfoOT, labels, fast"]))
        t_par = float(np.mean(times["Fused InfoOT, labels"]))
        note += f"; fit {t_fast:.2f} s vs {t_par:.2f} s in parity mode"
    return ResultRecord.from_claim_test(
        test, package=PKG, experiment=experiment, metric=metric,
        claim=f"fast mode (sinkhorn='fast') loses at most {FAST_MARGIN} against the parity "
        f"mode ({parity_name})",
        seeds=list(seeds), note=note, **rec,
    )  # fmt: skip


def run(ctx: ReproduceContext) -> list[ResultRecord]:
    """Run the InfoOT reproduction; see the module docstring."""
    from papershelf.infoot.solvers import InfoOTConvergenceWarning

    # parity mode stops every inner Sinkhorn at the official cap on purpose: one warning per
    # fit would flood the progress bar (the README and log_ carry the information)
    warnings.filterwarnings("ignore", category=InfoOTConvergenceWarning)
    full = ctx.full
    sizes = FULL_SIZES if full else QUICK_SIZES
    seeds = tuple(ctx.seeds)
    da: dict[str, list[float]] = {}
    da_stats: list[dict[str, Any]] = []
    da_times: dict[str, list[float]] = {}
    out_toy: dict[str, dict[str, list[float]]] = {}
    ret: dict[str, list[float]] = {}
    cross: dict[str, list[float]] = {}
    cross_times: dict[str, list[float]] = {}
    toy_for_figure = None
    manifold: dict[str, dict[str, list[float]]] = {}
    steps = [(s, e) for s in seeds for e in ("da", "toy", "retrieval", "cross", "manifold")]
    for seed, exp in ctx.progress(steps, total=len(steps), desc="infoot experiments"):
        if exp == "da":
            n_s, n_t, n_te = sizes["da"]
            acc, times, stats = domain_adaptation(seed, n_s, n_t, n_te, sizes["converged_iter"])
            for k, v in acc.items():
                da.setdefault(k, []).append(v)
            for k, v in times.items():
                da_times.setdefault(k, []).append(v)
            da_stats.append(stats)
        elif exp == "toy":
            res, toy = outliers(seed, *sizes["toy"])
            if toy_for_figure is None:
                toy_for_figure = toy
            for method, metrics in res.items():
                for k, v in metrics.items():
                    out_toy.setdefault(method, {}).setdefault(k, []).append(v)
        elif exp == "retrieval":
            for k, v in retrieval(seed, *sizes["retrieval"]).items():
                ret.setdefault(k, []).append(v)
        elif exp == "manifold":
            for kind, metrics in manifold_alignment(seed, *sizes["manifold"]).items():
                for k, v in metrics.items():
                    manifold.setdefault(kind, {}).setdefault(k, []).append(v)
        else:
            res, times = cross_dimension(seed, sizes["cross"])
            for k, v in res.items():
                cross.setdefault(k, []).append(v)
            for k, v in times.items():
                cross_times.setdefault(k, []).append(v)

    records: list[ResultRecord] = []
    mean = lambda v: float(np.mean(v))  # noqa: E731
    n_s, n_t, n_te = sizes["da"]
    da_exp = f"domain adaptation, shifted digits ({n_s} source, {n_t} target, {n_te} held out)"
    emd = mean(da["exact OT (EMD), barycentric"])
    for k, v in da.items():
        rec: dict[str, Any] = dict(
            values=v, higher_is_better=True, comparable=False, paper_note=DA_PAPER_NOTE
        )
        if k.startswith("Fused InfoOT, labels, fast, "):
            parity = f"Fused InfoOT, labels, {k.split(', ')[-1]}"
            records.append(
                _fast_claim(
                    v, da[parity], da_exp, f"1-NN accuracy: {k}", parity, seeds, da_times, rec
                )
            )
            continue
        if k in ("Fused InfoOT, labels, barycentric", "Fused InfoOT, labels, conditional"):
            # the official domain_adapt.py setting; the claim is fixed before looking at numbers
            test = claim_test(v, da["exact OT (EMD), barycentric"], direction="greater")
            records.append(
                ResultRecord.from_claim_test(
                    test, package=PKG, experiment=da_exp, metric=f"1-NN accuracy: {k}",
                    claim=f"{k.split(', ')[-1]} projection of Fused InfoOT (official DA setting) "
                    "beats exact OT",
                    seeds=list(seeds), note=f"exact OT (EMD) {emd:.3f}", **rec,
                )
            )  # fmt: skip
            continue
        records.append(ResultRecord(PKG, da_exp, f"1-NN accuracy: {k}", seeds=list(seeds), **rec))
    par = np.mean([s["Fused InfoOT, labels"]["column_l1_error"] for s in da_stats])
    conv = np.mean([s["Fused InfoOT, labels, converged"]["column_l1_error"] for s in da_stats])
    records.append(
        ResultRecord(
            PKG,
            da_exp,
            "column-marginal L1 error of the coupling, parity (official) inner solver",
            [par],
            higher_is_better=False,
            comparable=False,
            note=f"converged mode (sinkhorn='log'): {conv:.1e}. Accuracy rows marked 'converged' "
            "use it",
            config={"timings_s": {k: mean(v) for k, v in da_times.items()}},
        )
    )

    n_toy, n_out = sizes["toy"]
    toy_exp = f"2-D toy: 3 clusters, {n_toy} points each side, {n_out} far outliers in the target"
    key = "source projected onto the inlier target support"
    mean(out_toy["Fused InfoOT, conditional"][key])
    bary = mean(out_toy["Fused InfoOT, barycentric"][key])
    for method, metrics in out_toy.items():
        for k, v in metrics.items():
            rec = dict(values=v, comparable=False, higher_is_better=True)
            if method == "Fused InfoOT, conditional" and k == key:
                test = claim_test(v, out_toy["Fused InfoOT, barycentric"][key], direction="greater")
                records.append(
                    ResultRecord.from_claim_test(
                        test, package=PKG, experiment=toy_exp, metric=f"{k}: {method}",
                        claim="the conditional projection is robust to target outliers: more "
                        "source points land on the inlier target support than with the "
                        "barycentric one",
                        seeds=list(seeds), note=f"barycentric: {bary:.2f}", **rec,
                    )
                )  # fmt: skip
                continue
            records.append(ResultRecord(PKG, toy_exp, f"{k}: {method}", seeds=list(seeds), **rec))

    n_fit, n_tg, n_q = sizes["retrieval"]
    ret_exp = f"retrieval of unseen source digits in shifted digits ({n_fit} fit, {n_tg} targets, {n_q} queries)"
    nn15 = mean(ret["nearest neighbour P@15"])
    for k, v in ret.items():
        rec = dict(values=v, comparable=False, higher_is_better=True,
                   paper_note="paper: Office-Caltech DeCAF retrieval (table not read offline)")  # fmt: skip
        if k == "InfoOT conditional score (query bandwidth), fast mode P@15":
            parity = "InfoOT conditional score (query bandwidth) P@15"
            records.append(_fast_claim(v, ret[parity], ret_exp, k, parity, seeds, None, rec))
            continue
        if k == "InfoOT conditional score (query bandwidth) P@15":
            # the headline: the paper's retrieval claim, the one this offline stand-in can show
            test = claim_test(v, ret["nearest neighbour P@15"], direction="greater")
            records.append(
                ResultRecord.from_claim_test(
                    test, package=PKG, experiment=ret_exp, metric=k,
                    claim="InfoOT's conditional score generalises to unseen queries and beats "
                    "nearest-neighbour retrieval at P@15",
                    seeds=list(seeds), note=f"nearest neighbour P@15 {nn15:.3f}",
                    headline=True, **rec,
                )
            )  # fmt: skip
            continue
        records.append(ResultRecord(PKG, ret_exp, k, seeds=list(seeds), **rec))

    cross_exp = (
        f"cross-dimension alignment: {sizes['cross']} digits (64-d) vs a 16-d nonlinear view"
    )
    sc_note = "paper: single-cell alignment vs SCOT (table not read offline)"
    for k, v in cross.items():
        rec = dict(values=v, comparable=False, higher_is_better=False, paper_note=sc_note,
                   config={"time_s": mean(cross_times[k])})  # fmt: skip
        if k == "InfoOT":
            # the 16-d view keeps little of the digits' geometry (README: distance rank
            # correlation ~0.5): neither method recovers instances, so no claim is read here
            rec["note"] = "both near random (0.5); the view keeps little geometry"
        records.append(ResultRecord(PKG, cross_exp, f"FOSCTTM: {k}", seeds=list(seeds), **rec))

    n_man, noise = sizes["manifold"]
    per_seed: dict[str, list[list[float]]] = {}
    for kind, metrics in manifold.items():
        man_exp = (
            f"simulated single-cell-style alignment, {kind}: {n_man} points, 100-d vs 50-d "
            f"views, noise sd {noise}"
        )
        for k, v in metrics.items():
            per_seed.setdefault(k, []).append(v)
            records.append(
                ResultRecord(PKG, man_exp, f"FOSCTTM: {k}", values=v, seeds=list(seeds),
                             comparable=False, higher_is_better=False, paper_note=sc_note)
            )  # fmt: skip
    if per_seed:
        avg = {k: np.mean(v, axis=0).tolist() for k, v in per_seed.items()}
        gw = mean(avg["entropic GW"])
        test = claim_test(avg["InfoOT"], avg["entropic GW"], direction="less")
        info_all = np.ravel(per_seed["InfoOT"])
        gw_all = np.ravel(per_seed["entropic GW"])
        records.append(
            ResultRecord.from_claim_test(
                test, package=PKG,
                experiment=f"simulated single-cell-style alignment, mean of {', '.join(manifold)}",
                metric="FOSCTTM: InfoOT", values=avg["InfoOT"], seeds=list(seeds),
                comparable=False, higher_is_better=False, paper_note=sc_note,
                claim="InfoOT aligns domains of different dimension better (lower FOSCTTM) "
                "than entropic GW",
                note=f"entropic GW {gw:.3f}; InfoOT lower in {int((info_all < gw_all).sum())} of "
                f"{info_all.size} manifold-seed pairs; random 0.5",
            )
        )  # fmt: skip

    if toy_for_figure is not None:
        toy_figure(ctx, toy_for_figure)

    if full:
        decaf = os.environ.get("INFOOT_DECAF_DIR")
        if decaf and Path(decaf).is_dir():
            records += office_caltech(Path(decaf), seeds, ctx.progress)
        else:
            log.warning(
                "--full: set INFOOT_DECAF_DIR to a folder with {caltech,amazon,webcam,dslr}_decaf.mat "
                "(the official repository's DeCAF6 features) to run the Office-Caltech protocol"
            )
    return records
