"""Benchmark: papershelf.infoot against the official implementation's formulation.

The official solver (chingyaoc/InfoOT @ 352efd2, ``infoot.py``) computes the kernel products
through ``ot.gromov.tensor_product`` with a zero constant matrix, rebuilds the marginal
densities every step, and calls ``ot.bregman.sinkhorn`` (POT's loop). The "official
formulation" below is that loop written out here (same calls, dense numpy); ours is
``papershelf.infoot`` in parity mode on the same inputs, and the couplings are compared.

    uv run --no-sync python packages/infoot/benchmarks/bench_infoot.py            # 500 1000 2000
    uv run --no-sync python packages/infoot/benchmarks/bench_infoot.py --sizes 500 --repeats 2

1. Fused InfoOT, ``--iters`` outer iterations at each size (fixed count: ``tol=None``), timed
   ``--repeats`` times with the two sides interleaved (order alternating); the table gives the
   minimum of each side, their ratio and the range of the per-repeat ratios.
2. Where one outer step's time goes, on both sides (same plan, same cost matrix).
3. Plain InfoOT at ``--plain-n`` solved to the end: the official 100 iterations against our
   default (outer early stop at ``tol=1e-13``).
4. The torch backend (GPU when one is present, else CPU) on the same inputs.

Both sides run on one BLAS thread (threadpoolctl when installed; the environment variables
below are set before numpy is imported in any case).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from contextlib import nullcontext  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import ot  # noqa: E402

from papershelf.infoot import (  # noqa: E402
    FusedInfoOT,
    InfoOT,
    sinkhorn_scaling,
)
from papershelf.infoot.mi import _GradientWorkspace, _marginals  # noqa: E402

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # the environment variables above still hold
    threadpool_limits = threadpool_info = None


def mixtures(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two 3-component 2-D Gaussian mixtures, the target shifted and its labels shuffled."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    lab = np.arange(n) % 3
    Xs = centres[lab] + 0.6 * rng.standard_normal((n, 2))
    Xt = centres[rng.permutation(lab)] + 0.8 * rng.standard_normal((n, 2)) + [1.5, -1.0]
    return Xs, Xt


def _official_kernels(Xs, Xt, h):
    from sklearn.metrics import pairwise_distances

    C = pairwise_distances(Xs, Xt)
    Cs, Ct = pairwise_distances(Xs, Xs), pairwise_distances(Xt, Xt)
    Ks = np.exp(-((Cs / (h * np.sqrt((Cs**2).mean() / 2))) ** 2) / 2)
    Kt = np.exp(-((Ct / (h * np.sqrt((Ct**2).mean() / 2))) ** 2) / 2)
    return C, Ks, Kt


def _official_migrad(P, Ks, Kt):
    """The official ``migrad`` (negative gradient), same calls."""
    fxfy = np.outer(Ks.sum(1) / Ks.shape[1], Kt.sum(1) / Kt.shape[1])
    zero = np.zeros((len(Ks), len(Kt)))
    F = -ot.gromov.tensor_product(zero, Ks, Kt, P)
    G = -ot.gromov.tensor_product(zero, Ks, Kt, P / F)
    return -(np.log(F / fxfy) + G)


def official_formulation(Xs, Xt, h, n_iter, fused, lam=100.0, reg=1.0):
    """The official ``solve()`` loop (FusedInfoOT / InfoOT), written with the same POT calls."""
    C, Ks, Kt = _official_kernels(Xs, Xt, h)
    p = np.zeros(len(Xs)) + 1.0 / len(Xs)
    q = np.zeros(len(Xt)) + 1.0 / len(Xt)
    P = np.outer(p, q)
    for _ in range(n_iter):
        grad = _official_migrad(P, Ks, Kt)
        P = ot.bregman.sinkhorn(p, q, C + lam * grad if fused else grad, reg=reg)
    return P


def fused_ours(Xs: Any, Xt: Any, n_iter: int) -> Any:
    """papershelf's Fused InfoOT, parity mode, a fixed number of outer iterations."""
    return FusedInfoOT(max_iter=n_iter, tol=None, progress=False).fit(Xs, Xt).coupling_


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict, dict, list]:
    """Run the callables in turn ``repeats`` times (order reversed every other round)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs: dict[str, Any] = {}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            outs[name] = fns[name]()
            times[name].append(time.perf_counter() - t0)
    ratios = [a / b for a, b in zip(*times.values())] if len(fns) == 2 else []
    return {k: min(v) for k, v in times.items()}, outs, ratios


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    return interleaved({"f": fn}, repeats)[0]["f"]


def profile_step(n: int, repeats: int) -> tuple[float, float, float, float]:
    """One fused outer step at a realistic plan: (official products, POT Sinkhorn, ours, ours)."""
    Xs, Xt = mixtures(n)
    C, Ks, Kt = _official_kernels(Xs, Xt, 0.5)
    p = np.full(n, 1.0 / n)
    P = ot.bregman.sinkhorn(p, p, C, 1.0)  # the plan after the first step (lam = 0 part)
    M = C + 100.0 * _official_migrad(P, Ks, Kt)
    ws = _GradientWorkspace(n, n, np.float64)
    marg = _marginals(Ks, Kt)
    t_grad_off = best_of(lambda: C + 100.0 * _official_migrad(P, Ks, Kt), repeats)
    t_grad_our = best_of(lambda: ws.cost(P, Ks, Kt, marg, C, 100.0), repeats)
    t_sk_off = best_of(lambda: ot.bregman.sinkhorn(p, p, M, 1.0), repeats)
    t_sk_our = best_of(lambda: sinkhorn_scaling(p, p, M, 1.0), repeats)
    return t_grad_off, t_sk_off, t_grad_our, t_sk_our


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--iters", type=int, default=3, help="outer iterations per fused timing")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats (min is kept)")
    ap.add_argument("--plain-n", type=int, default=500)
    ap.add_argument("--plain-repeats", type=int, default=2)
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--skip-profile", action="store_true")
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # POT warns at every capped Sinkhorn call
    limit = threadpool_limits(1) if threadpool_limits is not None else nullcontext()
    with limit:
        blas = (
            ", ".join(f"{d['internal_api']} {d['version']} x{d['num_threads']}" for d in threadpool_info())
            if threadpool_info is not None
            else f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
        )  # fmt: skip
        print(
            f"# {platform.machine()} ({platform.processor() or 'cpu'}), {os.cpu_count()} cores; "
            f"BLAS: {blas}; numpy {np.__version__}, POT {ot.__version__}"
        )
        run(args)


def run(args: argparse.Namespace) -> None:
    print(
        f"\n## Fused InfoOT (h=0.5, lam=100, reg=1), {args.iters} outer iterations, float64, "
        f"min of {args.repeats} interleaved runs"
    )
    print("| n = m | official formulation (s) | papershelf (s) | speed-up | per-run ratios | "
          "max abs diff P / max P |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        Xs, Xt = mixtures(n)
        best, outs, ratios = interleaved(
            {
                "official": partial(official_formulation, Xs, Xt, 0.5, args.iters, True),
                "ours": partial(fused_ours, Xs, Xt, args.iters),
            },
            args.repeats,
        )
        P_off, P_our = outs["official"], outs["ours"]
        diff = np.abs(P_our - P_off).max() / P_off.max()
        print(
            f"| {n} | {best['official']:.2f} | {best['ours']:.2f} | "
            f"{best['official'] / best['ours']:.2f}x | {min(ratios):.2f}-{max(ratios):.2f} | "
            f"{diff:.1e} |",
            flush=True,
        )

    if not args.skip_profile:
        print("\n## One fused outer step (s): where the time goes")
        print("| n = m | official: kernel products + cost | official: POT Sinkhorn (1000 it.) | "
              "ours: cost step | ours: one-pass Sinkhorn |")  # fmt: skip
        print("|---|---|---|---|---|")
        for n in args.sizes:
            g_off, s_off, g_our, s_our = profile_step(n, args.repeats)
            print(f"| {n} | {g_off:.3f} | {s_off:.3f} | {g_our:.3f} | {s_our:.3f} |", flush=True)

    if not args.skip_plain:
        n = args.plain_n
        Xs, Xt = mixtures(n, seed=1)
        print(f"\n## Plain InfoOT (h=0.5, reg=0.05) at n = m = {n}, solved to the end")
        est = InfoOT(progress=False)
        best, outs, ratios = interleaved(
            {
                "official": lambda: official_formulation(Xs, Xt, 0.5, 100, False, reg=0.05),
                "ours": lambda: est.fit(Xs, Xt).coupling_,
            },
            args.plain_repeats,
        )
        P_off = outs["official"]
        diff = np.abs(outs["ours"] - P_off).max() / P_off.max()
        print("| official, 100 iterations (s) | papershelf, tol=1e-13 (s) | outer iterations | "
              "speed-up | max abs diff P / max P | plan change at the last step |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        print(
            f"| {best['official']:.2f} | {best['ours']:.2f} | {est.n_iter_} | "
            f"{best['official'] / best['ours']:.2f}x | {diff:.1e} | {est.log_['delta'][-1]:.1e} |",
            flush=True,
        )

    if args.skip_torch:
        return
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"\n## torch backend on {device} (Fused InfoOT, {args.iters} outer iterations, float64)")
    print("| n = m | numpy (s) | torch (s) | max abs diff P / max P |")
    print("|---|---|---|---|")
    for n in args.sizes:
        Xs, Xt = mixtures(n)
        Xs_t, Xt_t = torch.tensor(Xs, device=device), torch.tensor(Xt, device=device)

        def run_torch(Xs_t: Any = Xs_t, Xt_t: Any = Xt_t) -> np.ndarray:
            P = fused_ours(Xs_t, Xt_t, args.iters)
            if device == "cuda":
                torch.cuda.synchronize()
            return P.cpu().numpy()

        run_torch()  # warm-up (CUDA context, kernels)
        best, outs, _ = interleaved(
            {
                "numpy": partial(fused_ours, Xs, Xt, args.iters),
                "torch": run_torch,
            },
            args.repeats,
        )
        diff = float(np.abs(outs["torch"] - outs["numpy"]).max() / outs["numpy"].max())
        print(f"| {n} | {best['numpy']:.2f} | {best['torch']:.2f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
