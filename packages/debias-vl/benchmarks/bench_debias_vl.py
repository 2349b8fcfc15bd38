"""Benchmark: building and applying the calibrated projection, ours vs the official formulation.

Official formulation (re-implemented here from the paper/official description, not copied):
P0 = I - B (B^T B)^-1 B^T with an explicit inverse, M accumulated pair by pair as
z_i z_i^T + z_j z_j^T - z_i z_j^T - z_j z_i^T, P = P0 @ inv(lam M + I), applied densely to every
token state. Ours: exact SVD basis, M as one (S, d)^T (S, d) product, one ``linalg.solve``,
and for many token states the low-rank factors (Woodbury).

Run:  uv run --no-sync python packages/debias-vl/benchmarks/bench_debias_vl.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import platform
import time

import numpy as np
import torch

from papershelf.debias_vl import calibrated_projection, low_rank_projection


def official_build(spurious: np.ndarray, candidates: np.ndarray, S: list, lam: float) -> np.ndarray:
    _, _, vh = np.linalg.svd(spurious, full_matrices=False)
    B = vh.T
    P0 = np.eye(B.shape[0]) - B @ np.linalg.inv(B.T @ B) @ B.T
    d = candidates.shape[1]
    M = np.zeros((d, d))
    for i, j in S:
        zi, zj = candidates[i][:, None], candidates[j][:, None]
        M += zi @ zi.T + zj @ zj.T - zi @ zj.T - zj @ zi.T
    M /= len(S)
    return P0 @ np.linalg.inv(lam * M + np.eye(d))


def timeit(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    print(
        f"hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"1 thread; torch {torch.__version__}, numpy {np.__version__}"
    )
    print(
        "\nBuild P* (k=8 spurious prompts, 160 candidates, 80 pairs, lam=1000), median of "
        f"{args.repeat}"
    )
    print(f"{'d':>6} {'official (s)':>13} {'ours (s)':>9} {'ratio':>6} {'max |diff|':>11}")
    for d in (512, 768, 1024):
        spurious = unit(rng.normal(size=(8, d)))
        candidates = unit(rng.normal(size=(160, d)))
        S = [(2 * i, 2 * i + 1) for i in range(80)]
        pairs = np.stack([candidates[0::2], candidates[1::2]], axis=1)
        t_off, P_off = timeit(
            lambda V=spurious, C=candidates, S=S: official_build(V, C, S, 1000.0), args.repeat
        )
        t_ours, P = timeit(
            lambda V=spurious, Z=pairs: calibrated_projection(V, Z, lam=1000.0), args.repeat
        )
        print(
            f"{d:>6} {t_off:>13.3f} {t_ours:>9.3f} {t_off / t_ours:>6.2f} "
            f"{np.abs(P - P_off).max():>11.1e}"
        )

    print("\nThe last step alone at d=1024 (given P0 and M): P0 @ inv(G) vs solve(G, P0).T")
    d = 1024
    spurious = unit(rng.normal(size=(8, d)))
    candidates = unit(rng.normal(size=(160, d)))
    D = candidates[0::2] - candidates[1::2]
    M = D.T @ D / len(D)
    G = 1000.0 * M + np.eye(d)
    _, _, vh = np.linalg.svd(spurious, full_matrices=False)
    P0 = np.eye(d) - vh.T @ vh
    t_inv, A = timeit(lambda: P0 @ np.linalg.inv(G), args.repeat)
    t_sol, Bm = timeit(lambda: np.linalg.solve(G, P0).T, args.repeat)
    print(
        f"  inv + matmul {t_inv:.3f} s, solve {t_sol:.3f} s, ratio {t_inv / t_sol:.2f}, "
        f"max |diff| {np.abs(A - Bm).max():.1e}"
    )

    pairs = np.stack([candidates[0::2], candidates[1::2]], axis=1)
    P = torch.from_numpy(calibrated_projection(None, pairs, lam=500.0)).float()
    lr = low_rank_projection(None, pairs, lam=500.0)
    print(
        "\nApply (I + lam M)^-1 to (B, 77, 1024) float32 token states (SD recipe, 80 pairs), "
        f"median of {args.repeat}"
    )
    P64 = P.double()
    print(
        f"{'B*77':>6} {'dense (ms)':>11} {'low-rank (ms)':>14} {'ratio':>6} {'max |diff|':>11} "
        f"{'rel. diff':>10} {'dense err':>10} {'lr err':>10}"
    )
    for b in (1, 4, 16, 64):
        x = torch.randn(b, 77, d, generator=torch.Generator().manual_seed(b))
        t_dense, y_dense = timeit(lambda x=x: x @ P.T, args.repeat)
        t_lr, y_lr = timeit(lambda x=x: lr.apply(x), args.repeat)
        diff = float((y_dense - y_lr).abs().max())
        rel = diff / float(y_dense.abs().max())
        # both float32 paths against the float64 product: rounding, not approximation error
        truth = x.double() @ P64.T
        err_d = float((y_dense.double() - truth).abs().max())
        err_l = float((y_lr.double() - truth).abs().max())
        print(
            f"{b * 77:>6} {1e3 * t_dense:>11.2f} {1e3 * t_lr:>14.2f} {t_dense / t_lr:>6.2f} "
            f"{diff:>11.1e} {rel:>10.1e} {err_d:>10.1e} {err_l:>10.1e}"
        )


if __name__ == "__main__":
    main()
