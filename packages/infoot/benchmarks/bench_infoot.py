"""Benchmark: papershelf.infoot against the official implementation's formulation.

The official solver (chingyaoc/InfoOT) computes the kernel products through
``ot.gromov.tensor_product`` with a zero constant matrix, rebuilds the marginal densities every
step, and calls ``ot.bregman.sinkhorn`` (POT's loop, five NaN/Inf tests per iteration). The
"official formulation" below is that loop written out here (same operations, dense numpy); ours
is ``papershelf.infoot`` in parity mode, on the same inputs, with the coupling compared.

    uv run --no-sync python packages/infoot/benchmarks/bench_infoot.py            # 500, 1000, 2000
    uv run --no-sync python packages/infoot/benchmarks/bench_infoot.py --sizes 500 --iters 5

1. Fused InfoOT, ``--iters`` outer iterations at each size (fixed count: ``tol=None``).
2. Plain InfoOT at n = 500 to the end: the official 100 iterations vs our early stop (tol 1e-13).
3. The torch backend (GPU when one is present, else CPU) on the same inputs.
"""

from __future__ import annotations

import os

# one BLAS/torch thread for both sides: the machine is shared and threads would oversubscribe
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import ot  # noqa: E402

from papershelf.infoot import FusedInfoOT, InfoOT  # noqa: E402


def mixtures(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    lab = np.arange(n) % 3
    Xs = centres[lab] + 0.6 * rng.standard_normal((n, 2))
    Xt = centres[rng.permutation(lab)] + 0.8 * rng.standard_normal((n, 2)) + [1.5, -1.0]
    return Xs, Xt


def official_formulation(Xs, Xt, h, n_iter, fused, lam=100.0, reg=1.0):
    """The official solve() loop, written with the same POT calls."""
    from sklearn.metrics import pairwise_distances

    C = pairwise_distances(Xs, Xt)
    Cs, Ct = pairwise_distances(Xs, Xs), pairwise_distances(Xt, Xt)
    Ks = np.exp(-((Cs / (h * np.sqrt((Cs**2).mean() / 2))) ** 2) / 2)
    Kt = np.exp(-((Ct / (h * np.sqrt((Ct**2).mean() / 2))) ** 2) / 2)
    p, q = np.full(len(Xs), 1 / len(Xs)), np.full(len(Xt), 1 / len(Xt))
    P = np.outer(p, q)
    zero = np.zeros((len(Xs), len(Xt)))
    for _ in range(n_iter):
        fxfy = np.outer(Ks.sum(1) / Ks.shape[1], Kt.sum(1) / Kt.shape[1])
        F = -ot.gromov.tensor_product(zero, Ks, Kt, P)
        G = -ot.gromov.tensor_product(zero, Ks, Kt, P / F)
        grad = -(np.log(F / fxfy) + G)
        M = C + lam * grad if fused else grad
        P = ot.bregman.sinkhorn(p, q, M, reg=reg)
    return P


def timed(fn, repeats: int = 1):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--iters", type=int, default=3, help="outer iterations per fused timing")
    ap.add_argument("--skip-plain", action="store_true")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # POT warns at every capped Sinkhorn call
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS="
        f"{os.environ['OMP_NUM_THREADS']}, numpy {np.__version__}, POT {ot.__version__}"
    )
    print(f"\n## Fused InfoOT (h=0.5, lam=100, reg=1), {args.iters} outer iterations, float64")
    print(
        "| n = m | official formulation (s) | papershelf (s) | speed-up | max abs diff P / max P |"
    )
    print("|---|---|---|---|---|")
    for n in args.sizes:
        Xs, Xt = mixtures(n)
        t_off, P_off = timed(lambda: official_formulation(Xs, Xt, 0.5, args.iters, True))  # noqa: B023
        est = FusedInfoOT(max_iter=args.iters, tol=None, progress=False)
        t_our, est = timed(lambda: est.fit(Xs, Xt))  # noqa: B023
        diff = np.abs(est.coupling_ - P_off).max() / P_off.max()
        print(
            f"| {n} | {t_off:.2f} | {t_our:.2f} | {t_off / t_our:.2f}x | {diff:.1e} |", flush=True
        )

    if not args.skip_plain:
        n = 500
        Xs, Xt = mixtures(n, seed=1)
        print(f"\n## Plain InfoOT (h=0.5, reg=0.05) at n = m = {n}, solved to the end")
        t_off, P_off = timed(lambda: official_formulation(Xs, Xt, 0.5, 100, False, reg=0.05))
        est = InfoOT(progress=False)
        t_our, est = timed(lambda: est.fit(Xs, Xt))
        diff = np.abs(est.coupling_ - P_off).max() / P_off.max()
        print(
            "| official formulation, 100 iterations (s) | papershelf, early stop (s) | outer iterations | speed-up | max abs diff P / max P |"
        )
        print("|---|---|---|---|---|")
        print(f"| {t_off:.2f} | {t_our:.2f} | {est.n_iter_} | {t_off / t_our:.2f}x | {diff:.1e} |")

    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"\n## torch backend on {device} (Fused InfoOT, {args.iters} outer iterations, float64)")
    print("| n = m | numpy (s) | torch (s) | max abs diff P / max P |")
    print("|---|---|---|---|")
    for n in args.sizes:
        Xs, Xt = mixtures(n)
        t_np, a = timed(
            lambda: FusedInfoOT(max_iter=args.iters, tol=None, progress=False).fit(Xs, Xt)  # noqa: B023
        )
        Xs_t = torch.tensor(Xs, device=device)
        Xt_t = torch.tensor(Xt, device=device)

        def run_torch():
            est = FusedInfoOT(max_iter=args.iters, tol=None, progress=False).fit(Xs_t, Xt_t)  # noqa: B023
            if device == "cuda":
                torch.cuda.synchronize()
            return est

        t_t, b = timed(run_torch)
        diff = float(np.abs(b.coupling_.cpu().numpy() - a.coupling_).max() / a.coupling_.max())
        print(f"| {n} | {t_np:.2f} | {t_t:.2f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
