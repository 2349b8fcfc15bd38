"""Benchmark: kV-Margin + kV-GN-Margin for one model, ours vs the official procedure's structure.

The baseline re-implements, in torch, how the official PGDL submissions compute the measures:
the model is run layer by layer in 200-sample chunks for the margins, margins and runner-up
classes come from per-sample Python loops, the features are recomputed with a new forward per
class, and the margin gradients come from two separate gradient computations per class
(``f_y`` and ``f_{y'}``), with W1 from pairwise distances + exact EMD. Ours: one forward with a
hook on the feature layer and one backward (``papershelf.kv_margin``, ``official=True`` so both
use the same 200 * C subsample, chunk dropping and random splits). Both run in float64 so the
values can be compared to round-off.

    uv run --no-sync python packages/kv-margin/benchmarks/bench_kv_margin.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import time
from functools import partial

import numpy as np
import ot
import torch
from scipy.spatial.distance import cdist
from torch import nn

from papershelf.kv_margin import kv_gn_margin, kv_margin, kv_measures


def _official_forward(model: nn.Sequential, img: torch.Tensor, layer_idx: int):
    """Layer-by-layer forward that keeps the intermediate values, as the official code does."""
    inter = [img]
    for layer in model:
        inter.append(layer(inter[-1]))
    return inter[-1], inter[layer_idx]


def _runner_up_loop(output: torch.Tensor, label: np.ndarray) -> tuple[list, list]:
    margins, pairs = [], []
    for i in range(len(output)):
        o = output[i].detach().cpu().numpy()
        others = np.concatenate([o[: label[i]], o[label[i] + 1 :]])
        margins.append(o[label[i]] - np.max(others))
        masked = np.concatenate([o[: label[i]], np.array([-10000.0]), o[label[i] + 1 :]])
        pairs.append((int(label[i]), int(np.argmax(masked))))
    return margins, pairs


def _grad_norms(model, img, label, layer_idx):
    feat_in = img
    with torch.enable_grad():
        inter = [feat_in]
        for k, layer in enumerate(model):
            if k == layer_idx:
                inter[-1] = inter[-1].detach().requires_grad_(True)
                feat = inter[-1]
            inter.append(layer(inter[-1]))
        output = inter[-1]
        margins, pairs = _runner_up_loop(output, label)
        out1 = torch.stack([output[i, a] for i, (a, _) in enumerate(pairs)])
        out2 = torch.stack([output[i, b] for i, (_, b) in enumerate(pairs)])
        (g1,) = torch.autograd.grad(out1.sum(), feat, retain_graph=True)  # first tape
        (g2,) = torch.autograd.grad(out2.sum(), feat)  # second tape
    diff = (g1 - g2).reshape(len(img), -1).cpu().numpy()
    return np.asarray(margins), np.linalg.norm(diff, axis=1)


def _w1(a: np.ndarray, b: np.ndarray) -> float:
    k = len(a)
    uni = np.full(k, 1.0 / k)
    return float(ot.emd2(uni, uni, cdist(a, b)))


def official_structure(model: nn.Sequential, images, labels, layer_idx: int, variant: str) -> float:
    """kV-Margin (``"kv"``) or kV-GN-Margin (``"gn"``) computed with the official structure."""
    model.eval()
    rs = np.random.RandomState(0)
    C = int(labels.max()) + 1
    w = [np.sum(labels == c) / len(labels) for c in range(C)]
    size = min(len(images), C * 200)
    idx = rs.choice(np.where(labels > -1)[0], size, replace=False)
    images, labels = images[idx], labels[idx]
    chunks = []
    for i in range(size // 200):
        sl = slice(200 * i, 200 * (i + 1))
        if variant == "kv":
            with torch.no_grad():
                out = model(images[sl])
            chunks.append(np.asarray(_runner_up_loop(out, labels[sl])[0]))
        else:
            m, g = _grad_norms(model, images[sl], labels[sl], layer_idx)
            chunks.append(m / (g + 1e-6))
    margin_score = np.median(np.concatenate(chunks))
    gamma = 0.0
    for c in range(C):
        cidx = rs.permutation(np.where(labels == c)[0])
        k = len(cidx) // 2
        with torch.no_grad():
            _, feat = _official_forward(model, images[cidx], layer_idx)
        feat = feat.reshape(len(cidx), -1).cpu().numpy()
        kv = _w1(feat[:k], feat[k : 2 * k])
        if variant == "kv":
            _, g = _grad_norms(model, images[cidx], labels[cidx], layer_idx)
            gamma += w[c] * kv * g.max()
        else:
            gamma += w[c] * kv
    return float(-margin_score / gamma)


def mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


def best_of(fn, repeats: int, device: str) -> tuple[float, float, object]:
    """Min over repeats of wall-clock and process CPU seconds (the latter is steadier on a
    shared machine), after one warm-up call."""
    val = fn()
    walls, cpus = [], []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        w, c = time.perf_counter(), time.process_time()
        val = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), val


def both_official(model, x, y, layer):
    return (
        official_structure(model, x, y, layer, "kv"),
        official_structure(model, x, y, layer, "gn"),
    )


def both_ours(model, x, y, layer):
    res = kv_measures(model, x, y, str(layer), official=True, seed=0)
    return res["kv"].score, res["gn"].score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device
    hw = (
        torch.cuda.get_device_name()
        if dev == "cuda"
        else platform.processor() or platform.machine()
    )
    print(
        f"torch {torch.__version__}, {hw}, {args.threads} CPU thread(s), float64, min of {args.repeats}"
    )
    print("| model | n | measure | official structure (s) | ours (s) | speed-up | max rel. diff |")
    print("|---|---|---|---|---|---|---|")
    for name, build, shape, layer in (
        ("MLP 64-256-256-10", mlp, (64,), 2),
        ("CNN 3x16x16", cnn, (3, 16, 16), 2),
    ):
        torch.manual_seed(0)
        model = build().double().eval().to(dev)
        for n in args.sizes:
            g = torch.Generator().manual_seed(n)
            x = torch.randn(n, *shape, generator=g, dtype=torch.float64).to(dev)
            y = torch.randint(0, 10, (n,), generator=g).cpu().numpy()
            cases = [
                ("kV-Margin", partial(official_structure, model, x, y, layer, "kv"),
                 partial(lambda *a: kv_margin(*a, official=True, seed=0).score, model, x, y, str(layer))),
                ("kV-GN-Margin", partial(official_structure, model, x, y, layer, "gn"),
                 partial(lambda *a: kv_gn_margin(*a, official=True, seed=0).score, model, x, y, str(layer))),
                ("both", partial(both_official, model, x, y, layer), partial(both_ours, model, x, y, layer)),
            ]  # fmt: skip
            for measure, official, ours in cases:
                w_off, c_off, v_off = best_of(official, args.repeats, dev)
                w_our, c_our, v_our = best_of(ours, args.repeats, dev)
                rel = np.max(np.abs(np.subtract(v_off, v_our)) / np.abs(v_off))
                t_off, t_our = (w_off, w_our) if dev == "cuda" else (c_off, c_our)
                print(
                    f"| {name} | {n} | {measure} | {t_off:.3f} | {t_our:.3f} "
                    f"| {t_off / t_our:.1f}x | {rel:.1e} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
