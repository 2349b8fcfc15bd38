# ruff: noqa: B023  (the per-size closures are called within their own loop iteration)
"""Benchmark: kV-Margin + kV-GN-Margin for one model, ours vs the official TensorFlow code.

Three implementations on the same Keras model (weights drawn from a fixed ``RandomState``),
the same data and the same official settings (200·C subsample, ``np.random.seed(0)`` draws,
shallow feature layer = Keras layer 2):

1. **official TensorFlow** (``chingyaoc/kV-Margin@0ab9068``, ``kV-Margin/complexity.py`` and
   ``kV-GN-Margin/complexity.py``, imported unmodified): run in a separate TensorFlow
   interpreter by ``official_tf_worker.py``. Needs ``PAPERSHELF_KV_OFFICIAL_DIR`` (the
   checkout) and ``PAPERSHELF_TF_PYTHON`` (a Python with ``tensorflow-cpu``, POT and
   scikit-learn; not a papershelf dependency); the rows are skipped with a message otherwise.
   Its time is the whole ``complexity(model, dataset)`` call (it reads the ``tf.data``
   dataset into numpy first, as the PGDL ingestion requires), process CPU seconds of the
   worker, one TensorFlow thread.
2. **torch re-implementation of the official structure** (kept as the second baseline),
   step for step after the official code:

   * margins: the model is run on 200-sample chunks (kV-Margin: a plain forward; kV-GN-Margin:
     a forward recorded for autograd), and a per-sample Python loop indexes the output tensor
     (``output[i][label[i]]``, ``np.concatenate`` of two slices, ``np.max``);
   * per class: a full forward for the features (the official ``get_features`` runs the whole
     model to read the feature layer's input) and, for kV-Margin, another full forward
     recorded for autograd (``lipschitz``); runner-up classes from a per-sample loop
     (``np.argmax`` over the logits with the true one replaced by -10000) that stacks
     ``output[i, y]`` and ``output[i, y']`` one sample at a time; two separate gradient
     computations (the two ``tape.gradient`` calls); W1 from pairwise distances + exact EMD;
   * float32, as TensorFlow runs it.
3. **ours**: one ``kv_margin`` / ``kv_gn_margin`` / ``kv_measures`` call with
   ``official=True, seed=0`` on the torch twin of the Keras model
   (``pgdl.keras_to_torch``): one forward with a hook on the feature layer (layers before it
   without autograd), one backward through the layers after it, and the class k-variances.

Repeats are interleaved (official, re-implementation, ours, then again); process CPU seconds,
min and median over repeats after one warm-up call each.

    PAPERSHELF_KV_OFFICIAL_DIR=/path/to/kV-Margin PAPERSHELF_TF_PYTHON=/tmp/tf-venv/bin/python \
        uv run --no-sync python packages/kv-margin/benchmarks/bench_kv_margin.py [--repeats 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # process CPU time must not count spinning
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time

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


# Keras layer lists (the PGDL config format). The official layer scan takes the first of
# Keras indices 2-5 whose config has "strides": a pure Dense network has none (the official
# code then fails), so the MLP carries a 1x1 max-pooling identity at index 2, whose input is
# the first hidden layer's output (256-d features); the CNN's index 2 is its strided conv
# (features: the 32x16x16 output of conv 1, 8192-d).
MODELS: dict[str, dict] = {
    "MLP 64-256-256-10": {
        "input_shape": [64],
        "model_config": [
            {"layer_name": "Dense", "units": 256, "activation": "relu"},
            {"layer_name": "Reshape", "target_shape": [1, 1, 256]},
            {"layer_name": "MaxPooling2D", "pool_size": 1},
            {"layer_name": "Flatten"},
            {"layer_name": "Dense", "units": 256, "activation": "relu"},
            {"layer_name": "Dense", "units": 10},
        ],
        "weights": [(64, 256), (256,), (256, 256), (256,), (256, 10), (10,)],
    },
    "CNN 16x16x3": {
        "input_shape": [16, 16, 3],
        "model_config": [
            {"layer_name": "Conv2D", "filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"layer_name": "Conv2D", "filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"layer_name": "Conv2D", "filters": 32, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"},
            {"layer_name": "Conv2D", "filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"},
            {"layer_name": "GlobalAveragePooling2D"},
            {"layer_name": "Dense", "units": 10},
        ],
        "weights": [(3, 3, 3, 16), (16,), (3, 3, 16, 32), (32,), (3, 3, 32, 32), (32,),
                    (3, 3, 32, 64), (64,), (64, 10), (10,)],
    },
}  # fmt: skip
LAYER = 2  # official shallow scan on both models


def keras_weights(shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """He-scaled kernels and small biases from a fixed RandomState (float32, Keras layout)."""
    rs = np.random.RandomState(1)
    out = []
    for shape in shapes:
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if len(shape) > 1 else 0.1
        out.append((rs.randn(*shape) * scale).astype(np.float32))
    return out


def torch_model(spec: dict, weights: list[np.ndarray], dtype: torch.dtype) -> nn.Sequential:
    from papershelf.kv_margin.pgdl import keras_to_torch

    per_layer, it = [], iter(weights)
    for cfg in spec["model_config"]:
        k = 2 if cfg["layer_name"] in ("Dense", "Conv2D") else 0
        per_layer.append([next(it) for _ in range(k)])
    return keras_to_torch(spec["model_config"], spec["input_shape"], per_layer, dtype=dtype)


class OfficialTF:
    """The official TensorFlow ``complexity()`` in a worker process (``official_tf_worker.py``)."""

    def __init__(self, python: str, spec: dict, weights: list[np.ndarray], x: np.ndarray,
                 y: np.ndarray, tmp: str) -> None:  # fmt: skip
        path = os.path.join(tmp, "model.npz")
        meta = dict(spec, n_weights=len(weights))
        del meta["weights"]
        np.savez(
            path, spec=json.dumps(meta), x=x, y=y, **{f"w{i}": w for i, w in enumerate(weights)}
        )
        worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "official_tf_worker.py")
        self.proc = subprocess.Popen(
            [python, worker, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        hello = json.loads(self.proc.stdout.readline())
        self.version = hello["tensorflow"]

    def __call__(self, variant: str) -> tuple[float, float]:
        """(score, worker process CPU seconds) of one official ``complexity()`` call."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"variant": variant, "shallow": True}) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        return out["score"], out["cpu"]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def cpu_call(fn) -> tuple[object, float]:
    c = time.process_time()
    val = fn()
    return val, time.process_time() - c


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


def _stats(ts: list[float]) -> str:
    return f"{min(ts):.3f} / {statistics.median(ts):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    official_dir = os.environ.get("PAPERSHELF_KV_OFFICIAL_DIR")
    tf_python = os.environ.get("PAPERSHELF_TF_PYTHON")
    have_tf = bool(official_dir and tf_python)
    if not have_tf:
        print(
            "official TensorFlow rows skipped: set PAPERSHELF_KV_OFFICIAL_DIR (a checkout of "
            "chingyaoc/kV-Margin) and PAPERSHELF_TF_PYTHON (a Python with tensorflow-cpu, pot, "
            "scikit-learn)"
        )
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s), float32, process CPU seconds min / median of "
        f"{args.repeats} interleaved repeats; load {os.getloadavg()[0]:.2f} at start"
    )
    header = "| model | n | measure | official TF (s) | torch re-impl. (s) | ours (s) | vs TF | vs re-impl. | score rel. diff vs TF |"
    rows, floors, tf_version = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            spec = MODELS[name]
            weights = keras_weights(spec["weights"])
            model = torch_model(spec, weights, torch.float32)
            for n in args.sizes:
                rs = np.random.RandomState(n)
                x_keras = rs.randn(n, *spec["input_shape"]).astype(np.float32)
                y = rs.randint(0, 10, size=n).astype(np.int64)
                xt = torch.from_numpy(x_keras)
                x = xt.permute(0, 3, 1, 2).contiguous() if xt.ndim == 4 else xt
                tf_run = OfficialTF(tf_python, spec, weights, x_keras, y, tmp) if have_tf else None
                tf_version = tf_run.version if tf_run else None
                ours = {
                    "kV-Margin": lambda: (kv_margin(model, x, y, str(LAYER), official=True, seed=0).score,),
                    "kV-GN-Margin": lambda: (kv_gn_margin(model, x, y, str(LAYER), official=True, seed=0).score,),
                    "both": lambda: tuple(r.score for r in kv_measures(model, x, y, str(LAYER), official=True, seed=0).values()),
                }  # fmt: skip
                reimpl = {
                    "kV-Margin": lambda: (official_structure(model, x, y, LAYER, "kv"),),
                    "kV-GN-Margin": lambda: (official_structure(model, x, y, LAYER, "gn"),),
                }
                t_tf: dict[str, list[float]] = {"kV-Margin": [], "kV-GN-Margin": [], "both": []}
                t_re = {k: [] for k in t_tf}
                t_our = {k: [] for k in t_tf}
                v_tf: dict[str, float] = {}
                v_our: dict[str, tuple] = {}
                for rep in range(args.repeats + 1):  # repeat 0 is the warm-up
                    if tf_run is not None:
                        (s_kv, c_kv), (s_gn, c_gn) = tf_run("kv"), tf_run("gn")
                        v_tf = {"kV-Margin": s_kv, "kV-GN-Margin": s_gn}
                        if rep:
                            t_tf["kV-Margin"].append(c_kv)
                            t_tf["kV-GN-Margin"].append(c_gn)
                            t_tf["both"].append(c_kv + c_gn)
                    re_kv, re_gn = (
                        cpu_call(reimpl["kV-Margin"])[1],
                        cpu_call(reimpl["kV-GN-Margin"])[1],
                    )
                    for key in ours:
                        v_our[key], t = cpu_call(ours[key])
                        if rep:
                            t_our[key].append(t)
                    if rep:
                        t_re["kV-Margin"].append(re_kv)
                        t_re["kV-GN-Margin"].append(re_gn)
                        t_re["both"].append(re_kv + re_gn)
                if tf_run is not None:
                    tf_run.close()
                for key in ("kV-Margin", "kV-GN-Margin", "both"):
                    mo, mr = min(t_our[key]), min(t_re[key])
                    if v_tf:
                        ref = [v_tf["kV-Margin"], v_tf["kV-GN-Margin"]]
                        ref = ref if key == "both" else [v_tf[key]]
                        rel = max(abs(a - b) / abs(a) for a, b in zip(ref, v_our[key]))
                        tf_cols = (
                            f"{_stats(t_tf[key])} | ",
                            f"{min(t_tf[key]) / mo:.0f}x | ",
                            f"{rel:.1e}",
                        )
                    else:
                        tf_cols = ("skipped | ", "– | ", "–")
                    row = (
                        f"| {name} | {n} | {key} | {tf_cols[0]}{_stats(t_re[key])} | {_stats(t_our[key])} "
                        f"| {tf_cols[1]}{mr / mo:.1f}x | {tf_cols[2]} |"
                    )
                    rows.append(row)
                    print(row, flush=True)
                if n >= 2000:
                    floors.append(
                        (
                            name,
                            n,
                            min(cpu_call(lambda: floor(model, x, LAYER))[1] for _ in range(3)),
                        )
                    )
    print()
    if tf_version:
        print(f"official: chingyaoc/kV-Margin@0ab9068 on TensorFlow {tf_version} (CPU, 1 thread)")
    print(header)
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    for name, n, t in floors:
        print(f"{name}, n = {n}: one forward + one head backward over 2000 samples = {t:.3f} s")
    print(f"load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
