"""Benchmark: kV-Margin + kV-GN-Margin for one model, ours vs the official procedure's structure.

The baseline re-implements, in torch, how the official PGDL submissions
(chingyaoc/kV-Margin@0ab9068, ``kV-Margin/complexity.py`` and ``kV-GN-Margin/complexity.py``)
compute the measures, step for step:

* margins: the model is run on 200-sample chunks (kV-Margin: a plain forward; kV-GN-Margin: a
  forward recorded for autograd), and a per-sample Python loop indexes the output tensor
  (``output[i][label[i]]``, ``np.concatenate`` of two slices, ``np.max``) as the official code
  does on TensorFlow eager tensors;
* per class: a full forward for the features (the official ``get_features`` runs the whole
  model to read the feature layer's input) and, for kV-Margin, another full forward recorded
  for autograd (``lipschitz``); runner-up classes from a per-sample loop (``np.argmax`` over
  the logits with the true one replaced by -10000) that stacks ``output[i, y]`` and
  ``output[i, y']`` one sample at a time; two separate gradient computations (``f_y`` and
  ``f_y'``, as the two ``tape.gradient`` calls); W1 from pairwise distances + exact EMD;
* float32, as TensorFlow runs it.

Ours: one ``kv_measures`` call (``official=True``, so both use the same 200 * C subsample,
chunk dropping and random splits): one forward with a hook on the feature layer (layers before
it without autograd), one backward through the layers after it, and the class k-variances.
The values are compared with the baseline (same dtype) and with our own float64 run.

    uv run --no-sync python packages/kv-margin/benchmarks/bench_kv_margin.py [--repeats 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # process CPU time must not count spinning
os.environ.setdefault("OMP_NUM_THREADS", "1")

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


def _taped_forward(model: nn.Sequential, img: torch.Tensor, layer_idx: int):
    """Layer-by-layer forward recorded for autograd, keeping the feature layer's input."""
    with torch.enable_grad():
        inter = [img]
        for k, layer in enumerate(model):
            if k == layer_idx:  # tape.gradient(..., intermediateVal[layer_idx])
                inter[-1] = inter[-1].detach().requires_grad_(True)
                feat = inter[-1]
            inter.append(layer(inter[-1]))
    return inter[-1], feat


def _margin_loop(output: torch.Tensor, label: np.ndarray) -> np.ndarray:
    """The official ``margin_loss`` loop, on tensors."""
    out = output.detach()
    margins = []
    for i in range(len(out)):
        output_y = out[i][label[i]].cpu()  # numpy reads eager tensors through the host
        output_max = np.max(
            np.concatenate([out[i][: label[i]].cpu(), out[i][label[i] + 1 :].cpu()])
        )
        margins.append(output_y - output_max)
    return np.stack(margins)


def _runner_up_stack(output: torch.Tensor, label: np.ndarray) -> torch.Tensor:
    """The official runner-up loop: (f_y, f_y') stacked one sample at a time."""
    out = output.detach()
    outputs = []
    for i in range(len(out)):
        y2 = np.argmax(
            np.concatenate(
                [out[i][: label[i]].cpu(), np.array([-10000.0]), out[i][label[i] + 1 :].cpu()]
            )
        )
        outputs.append(torch.stack([output[i, int(label[i])], output[i, int(y2)]]))
    return torch.stack(outputs)


def _two_tapes(outputs: torch.Tensor, feat: torch.Tensor) -> np.ndarray:
    with torch.enable_grad():
        (g1,) = torch.autograd.grad(outputs[:, 0].sum(), feat, retain_graph=True)  # first tape
        (g2,) = torch.autograd.grad(outputs[:, 1].sum(), feat)  # second tape
    g1 = g1.reshape(len(g1), -1).cpu().numpy()
    g2 = g2.reshape(len(g2), -1).cpu().numpy()
    return np.linalg.norm(g1 - g2, ord=2, axis=1)


def lipschitz(model, img, label, layer_idx) -> float:
    output, feat = _taped_forward(model, img, layer_idx)
    return float(np.max(_two_tapes(_runner_up_stack(output, label), feat)))


def gn_margin_loss(model, img, label, layer_idx) -> np.ndarray:
    output, feat = _taped_forward(model, img, layer_idx)
    margins = _margin_loop(output, label)
    return margins / (_two_tapes(_runner_up_stack(output, label), feat) + 1e-6)


def get_features(model, img, layer_idx) -> np.ndarray:
    with torch.no_grad():  # the official model(img) call: the whole network runs
        inter = [img]
        for layer in model:
            inter.append(layer(inter[-1]))
    return inter[layer_idx].reshape(len(img), -1).cpu().numpy()


def w1_distance(a: np.ndarray, b: np.ndarray) -> float:
    k = len(a)
    uni = np.zeros(k) + 1.0 / k
    return float(ot.emd2(uni, uni, cdist(a, b)))


def official_structure(model: nn.Sequential, images, labels, layer_idx: int, variant: str) -> float:
    """kV-Margin (``"kv"``) or kV-GN-Margin (``"gn"``) computed with the official structure."""
    model.eval()
    rs = np.random.RandomState(0)
    class_size = int(labels.max()) + 1
    w = [np.sum(labels == c) / len(labels) for c in range(class_size)]
    data_size = min(len(images), class_size * 200)
    idx = rs.choice(np.where(labels > -1)[0], data_size, replace=False)
    images, labels = images[idx], labels[idx]
    chunks = []
    for i in range(data_size // 200):
        sl = slice(200 * i, 200 * (i + 1))
        if variant == "kv":
            with torch.no_grad():
                out = model(images[sl])
            chunks.append(_margin_loop(out, labels[sl]))
        else:
            chunks.append(gn_margin_loss(model, images[sl], labels[sl], layer_idx))
    margin_score = np.median(np.concatenate(chunks))
    gamma = 0.0
    for c in range(class_size):
        cidx = rs.permutation(np.where(labels == c)[0])
        k = len(cidx) // 2
        feature = get_features(model, images[cidx], layer_idx)
        kv = w1_distance(feature[:k], feature[k : 2 * k])
        if variant == "kv":
            gamma += w[c] * kv * lipschitz(model, images[cidx], labels[cidx], layer_idx)
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


def floor(model, x, layer) -> float:
    """One forward (layers before phi without autograd) + one backward through the head over
    the 200 * C subsample: the least any exact method must compute."""
    sub = x[:2000]
    with torch.no_grad():
        feat = model[:layer](sub)
    feat.requires_grad_(True)
    with torch.enable_grad():
        out = model[layer:](feat)
        torch.autograd.grad(out[:, 0].sum(), feat)
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device
    dtype = getattr(torch, args.dtype)
    hw = (
        torch.cuda.get_device_name()
        if dev == "cuda"
        else platform.processor() or platform.machine()
    )
    clock = "wall-clock" if dev == "cuda" else "process CPU"
    print(
        f"torch {torch.__version__}, {hw}, {args.threads} CPU thread(s), {args.dtype}, "
        f"{clock} seconds, min of {args.repeats}"
    )
    print(
        "| model | n | measure | official structure (s) | ours (s) | speed-up "
        "| rel. diff vs official | rel. diff vs ours float64 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    floors = []
    for name, build, shape, layer in (
        ("MLP 64-256-256-10", mlp, (64,), 2),
        ("CNN 3x16x16", cnn, (3, 16, 16), 2),
    ):
        torch.manual_seed(0)
        model = build().to(dtype).eval().to(dev)
        model64 = build().double().eval().to(dev)
        model64.load_state_dict(model.state_dict())
        for n in args.sizes:
            g = torch.Generator().manual_seed(n)
            x64 = torch.randn(n, *shape, generator=g, dtype=torch.float64).to(dev)
            x = x64.to(dtype)
            y = torch.randint(0, 10, (n,), generator=g).cpu().numpy()
            ref64 = both_ours(model64, x64, y, layer)
            cases = [
                ("kV-Margin", partial(official_structure, model, x, y, layer, "kv"),
                 partial(lambda *a: (kv_margin(*a, official=True, seed=0).score,), model, x, y, str(layer)), ref64[:1]),
                ("kV-GN-Margin", partial(official_structure, model, x, y, layer, "gn"),
                 partial(lambda *a: (kv_gn_margin(*a, official=True, seed=0).score,), model, x, y, str(layer)), ref64[1:]),
                ("both", partial(both_official, model, x, y, layer), partial(both_ours, model, x, y, layer), ref64),
            ]  # fmt: skip
            for measure, official, ours, ref in cases:
                w_off, c_off, v_off = best_of(official, args.repeats, dev)
                w_our, c_our, v_our = best_of(ours, args.repeats, dev)
                v_off = np.atleast_1d(v_off)
                rel = np.max(np.abs(np.subtract(v_off, v_our)) / np.abs(v_off))
                rel64 = np.max(np.abs(np.subtract(ref, v_our)) / np.abs(ref))
                t_off, t_our = (w_off, w_our) if dev == "cuda" else (c_off, c_our)
                print(
                    f"| {name} | {n} | {measure} | {t_off:.3f} | {t_our:.3f} "
                    f"| {t_off / t_our:.1f}x | {rel:.1e} | {rel64:.1e} |",
                    flush=True,
                )
            if n >= 2000:
                wf, cf, _ = best_of(partial(floor, model, x, layer), args.repeats, dev)
                floors.append((name, n, wf if dev == "cuda" else cf))
    for name, n, t in floors:
        print(f"{name}, n = {n}: one forward + one head backward over 2000 samples = {t:.3f} s")


if __name__ == "__main__":
    main()
