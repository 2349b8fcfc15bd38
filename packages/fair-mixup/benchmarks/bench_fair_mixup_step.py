"""Benchmark one training step on Adult: the penalty's cost relative to an ERM step.

    uv run --no-sync python packages/fair-mixup/benchmarks/bench_fair_mixup_step.py \
        [--official /path/to/fair-mixup/checkout] [--repeats 30]

Same data (Adult, seed 0, 85 inputs), batch 500 per group (DP) / per (group, label) (EO),
the official MLP, float32, 1 torch thread. Reports the median wall time of

1. one optimiser step: ERM, GapReg, fair mixup with ``derivative="autograd"`` (the official
   double backward), ``"jvp"`` and ``"finite_difference"``, for DP and EO;
2. batch sampling: the official formulation (``np.where`` over the whole train set every
   iteration, ``np.random.choice``, a host copy into a new tensor; for EO a Python ``set``
   intersection over the train set) re-written here, vs :class:`GroupBatchSampler`;
3. with ``--official``: the official ``train_dp``/``train_eo`` loop itself (``.cuda()`` patched
   to identity, run from the given checkout, never vendored), per iteration, vs ours.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from papershelf.fair_mixup import AdultMLP, GroupBatchSampler, load_adult, train_step


def _median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def _official_style_batch(X, A, y, bs, s, eo, rs):
    """The official sampler's work per group, in the official style (for timing only)."""
    if eo:
        idx = []
        for lab in range(2):
            cell = list(set(np.where(A == s)[0]) & set(np.where(y == lab)[0]))
            idx += rs.choice(cell, size=bs, replace=False).tolist()
    else:
        idx = rs.choice(np.where(A == s)[0], size=bs, replace=False).tolist()
    return torch.tensor(X[idx]).float(), torch.tensor(y[idx]).float()


def _official_style_pair(X, A, y, bs, eo, rs):
    _official_style_batch(X, A, y, bs, 0, eo, rs)
    _official_style_batch(X, A, y, bs, 1, eo, rs)


def _our_pair(sampler, X, y):
    j0, j1 = sampler.sample()
    return X[j0], y[j0], X[j1], y[j1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--official", default=None, help="path to a chingyaoc/fair-mixup checkout")
    args = p.parse_args()
    torch.set_num_threads(1)
    d = load_adult(seed=0)
    X = torch.tensor(d.X_train)
    y = torch.tensor(d.y_train)
    a = torch.tensor(d.a_train)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print(f"# Adult train {tuple(X.shape)}, batch 500 per group / cell, median of {args.repeats}")
    results: dict[str, float] = {}
    for mode in ("dp", "eo"):
        g = torch.Generator().manual_seed(0)
        bs = 500 if mode == "dp" else 250  # EO: 2 x 250 per group = 500 rows per group batch
        sampler = GroupBatchSampler(a, y if mode == "eo" else None, batch_size=bs, generator=g)
        i0, i1 = sampler.sample()
        batch = (X[i0], y[i0], X[i1], y[i1])
        for method, deriv in (
            ("erm", "autograd"),
            ("gapreg", "autograd"),
            ("mixup", "autograd"),
            ("mixup", "jvp"),
            ("mixup", "finite_difference"),
        ):
            model = AdultMLP(X.shape[1], generator=torch.Generator().manual_seed(0))
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)

            step = partial(
                train_step, model, opt, *batch, method=method, mode=mode, lam=0.5,
                derivative=deriv, generator=g,
            )  # fmt: skip

            key = f"{mode} step {method}" + ("" if method != "mixup" else f" ({deriv})")
            results[key] = _median_ms(step, args.repeats)
        erm = results[f"{mode} step erm"]
        for k in [k for k in results if k.startswith(f"{mode} step")]:
            print(f"{k:36s} {results[k]:8.2f} ms   {results[k] / erm:5.2f}x ERM")
        # Sampling: official style vs ours.
        Xn, An, yn = d.X_train.astype(np.float64), d.a_train.astype(float), d.y_train.astype(float)
        rs = np.random.RandomState(0)

        official_sampling = partial(_official_style_pair, Xn, An, yn, bs, mode == "eo", rs)
        our_sampling = partial(_our_pair, sampler, X, y)

        t_off = _median_ms(official_sampling, max(5, args.repeats // 3))
        t_our = _median_ms(our_sampling, args.repeats)
        print(f"{mode} sampling official-style {t_off:8.2f} ms   ours {t_our:6.2f} ms   "
              f"{t_off / t_our:6.1f}x faster")  # fmt: skip
    if args.official:
        _bench_official(args.official, d, args.repeats)


def _bench_official(path: str, d, repeats: int) -> None:
    """Per-iteration time of the official loop vs ours (same data, lam=0.5, mixup)."""
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    sys.path.insert(0, f"{path}/adult")
    import utils as official  # type: ignore[import-not-found]

    from papershelf.fair_mixup import train

    X, y2, A = d.X_train.astype(np.float64), d.y_train.reshape(-1, 1).astype(float), d.a_train
    for mode, fn in (("dp", official.train_dp), ("eo", official.train_eo)):
        niter = 20
        model = AdultMLP(X.shape[1])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        bs = 500 if mode == "dp" else 250
        t0 = time.perf_counter()
        fn(model, torch.nn.BCELoss(), opt, X, A.astype(float), y2, "mixup", 0.5,
           batch_size=bs, niter=niter)  # fmt: skip
        t_off = (time.perf_counter() - t0) / niter * 1e3
        model = AdultMLP(X.shape[1])
        t0 = time.perf_counter()
        train(model, d.X_train, d.y_train, d.a_train, method="mixup", mode=mode, lam=0.5,
              epochs=1, iters_per_epoch=niter, batch_size=bs, select="last", eval_train=False,
              show_progress=False)  # fmt: skip
        t_our = (time.perf_counter() - t0) / niter * 1e3
        print(f"{mode} official loop {t_off:8.2f} ms/iter   ours {t_our:8.2f} ms/iter   "
              f"{t_off / t_our:5.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
