"""Benchmark: papershelf.infoot against the official InfoOT module, imported unmodified.

The official code (github.com/chingyaoc/InfoOT @ 352efd2, MIT) is imported from the checkout
named by ``PAPERSHELF_INFOOT_OFFICIAL`` (the folder holding ``infoot.py``); without it the
script prints a message and exits 0. Get it with::

    git clone https://github.com/chingyaoc/InfoOT /tmp/infoot_official
    PAPERSHELF_INFOOT_OFFICIAL=/tmp/infoot_official \
        uv run --no-sync python packages/infoot/benchmarks/bench_infoot.py --sizes 500 1000 2000

Both sides run on one BLAS thread; times are process time (CPU seconds of this process), the
two sides interleaved (order alternating), min and median over ``--repeats``.

1. **Exact mode**, Fused InfoOT (h=0.5, lam=100, reg=1) and plain InfoOT (h=0.5, reg=0.05),
   ``--steps`` outer iterations on both sides (``tol=None``: fixed count; every official step
   costs the same, 1000 Sinkhorn iterations, so the per-step ratio is the full-run ratio up
   to our one-off eigendecompositions, which a short run over-weights). Couplings compared
   (max |dP| / max P).
2. **Full fits** at ``--plain-n``: the official 50 (Fused) / 100 (plain) iterations against
   our default (outer stop at its fixed point, tol=1e-13), so the one-off kernel factorisations
   weigh what they weigh in a real fit.
3. **Fast mode** (``sinkhorn="fast"``) solved to its own stop against the official full run
   (``--fast-official full``) or the official per-step time times its iteration count
   (``per-step``, default: a full official run at n = 2000 is ~4 min per repeat); coupling
   difference and the downstream 1-NN label transfer (barycentric projection) on both.
4. **Profile** (``--profile``): where one outer step's time goes on each side at each size,
   with the official step's own inputs: the inner Sinkhorn per iteration (POT's
   ``ot.bregman.sinkhorn`` against ours, ``--profile-iters`` iterations each, and the bare
   BLAS floor of its two mat-vecs, ``K @ v`` and ``K.T @ u`` with nothing else), and the
   kernel products (official ``migrad`` against our linearised cost).
5. **Floor** (``--floor``, with the full fits): the least time any implementation of the same
   exact fit needs here: its Sinkhorn iterations (the count it ran, which parity fixes) at the
   speed of two bare BLAS mat-vecs, plus its kernel products at the ranks it used, each timed
   alone. ``official fit / floor`` is the largest speed-up exact mode could reach on this
   machine. With numba importable (a benchmark-only dependency:
   ``uv run --with numba python ...``) it also times a compiled one-pass kernel (eight rows of
   ``K`` per pass give their ``u`` and their share of ``K^T u`` while in L1), the fused pass
   BLAS cannot express.
6. **Device** (``--device cuda``): our fits on a torch device (float64 tensors, wall clock with
   a device synchronize, one warm-up fit first) against the official CPU module per step,
   ``--device-steps`` outer iterations each, at ``--device-sizes``.
"""

# ruff: noqa: B023 -- the closures are timed inside the iteration that defines them
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from papershelf.infoot import FusedInfoOT, InfoOT  # noqa: E402

ENV = "PAPERSHELF_INFOOT_OFFICIAL"


def load_official() -> Any | None:
    """The official ``infoot`` module from ``$PAPERSHELF_INFOOT_OFFICIAL`` (None if unset)."""
    path = os.environ.get(ENV)
    if not path:
        return None
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "infoot_official", os.path.join(path, "infoot.py")
    )
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{ENV}={path} has no infoot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mixtures(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two 3-component 2-D Gaussian mixtures, the target shifted and its labels shuffled."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    ys = np.arange(n) % 3
    yt = rng.permutation(ys)
    Xs = centres[ys] + 0.6 * rng.standard_normal((n, 2))
    Xt = centres[yt] + 0.8 * rng.standard_normal((n, 2)) + [1.5, -1.0]
    return Xs, Xt, ys, yt


def label_transfer(P: np.ndarray, Xt: np.ndarray, ys: np.ndarray, yt: np.ndarray) -> float:
    proj = P @ Xt / P.sum(1)[:, None]
    nearest = ((proj[:, None] - Xt[None]) ** 2).sum(-1).argmin(1)
    return float((yt[nearest] == ys).mean())


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict, dict]:
    """Process times of each callable over ``repeats`` rounds (order reversed every round)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    outs: dict[str, Any] = {}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.process_time()
            outs[name] = fns[name]()
            times[name].append(time.process_time() - t0)
    return times, outs


def fmt(ts: list[float]) -> str:
    return f"{min(ts):.2f} / {statistics.median(ts):.2f}"


def rel(P: np.ndarray, Q: np.ndarray) -> float:
    return float(np.abs(P - Q).max() / np.abs(Q).max())


def profile(off: Any, sizes: list[int], iters: int, repeats: int) -> None:
    """Per-phase times of one outer step (Fused, its second step's inputs), both sides."""
    import ot

    from papershelf.infoot.mi import SpectralKernel, _GradientWorkspace, _marginals
    from papershelf.infoot.sinkhorn import _sinkhorn_scaling_dispatch

    print(f"\n## Profile of one Fused outer step (its second), process time, min of {repeats} "
          f"interleaved; Sinkhorn per iteration over {iters} iterations")  # fmt: skip
    print("| n = m | POT Sinkhorn (us/it) | ours (us/it) | bare 2 mat-vecs (us/it) | "
          "official products (ms) | ours (ms) | official step (ms) | ours (ms) | step ratio | "
          "Sinkhorn share (official / ours) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        Xs, Xt, _, _ = mixtures(n)
        solver = off.FusedInfoOT(Xs, Xt, h=0.5)
        Ks, Kt, C = solver.Ks, solver.Kt, solver.C
        p, q = np.full(n, 1 / n), np.full(n, 1 / n)
        P = ot.bregman.sinkhorn(p, q, C + 100.0 * off.migrad(np.outer(p, q), Ks, Kt), reg=1.0)
        M = C + 100.0 * off.migrad(P, Ks, Kt)  # the second step's cost, on the official side
        K = np.exp(M / -1.0)
        ws = _GradientWorkspace(n, n, np.float64, (SpectralKernel(Ks), SpectralKernel(Kt)))
        marg = _marginals(Ks, Kt)
        u, v = np.full(n, 1 / n), np.full(n, 1 / n)

        def bare() -> None:
            for _ in range(iters):
                np.dot(K, v)
                np.dot(K.T, u)

        fns = {
            "pot": lambda: ot.bregman.sinkhorn(p, q, M, 1.0, numItermax=iters, stopThr=0.0),
            "ours": lambda: _sinkhorn_scaling_dispatch(p, q, M, 1.0, iters, 0.0),
            "bare": bare,
            "off_prod": lambda: off.migrad(P, Ks, Kt),
            "our_prod": lambda: ws.cost(P, Ks, Kt, marg, C, 100.0),
        }
        t, _ = interleaved(fns, repeats)
        it = {k: min(t[k]) / iters * 1e6 for k in ("pot", "ours", "bare")}
        prod = {k: min(t[k]) * 1e3 for k in ("off_prod", "our_prod")}
        step_off = prod["off_prod"] + it["pot"] * 1e-3 * 1000  # the 1000 capped iterations
        step_ours = prod["our_prod"] + it["ours"] * 1e-3 * 1000
        print(f"| {n} | {it['pot']:.0f} | {it['ours']:.0f} | {it['bare']:.0f} | "
              f"{prod['off_prod']:.1f} | {prod['our_prod']:.1f} | {step_off:.0f} | {step_ours:.0f} | "
              f"{step_off / step_ours:.2f}x | {it['pot'] / step_off * 100:.0f}% / "
              f"{it['ours'] / step_ours * 100:.0f}% |", flush=True)  # fmt: skip


def numba_fused() -> Callable[..., None] | None:
    """A compiled fused Sinkhorn pass (numba, benchmark only); None when numba is missing."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(fastmath=True, boundscheck=False, cache=False)
    def iterate(K, a, b, u, v, ktu, n_it):
        n, m = K.shape
        for _ in range(n_it):
            for j in range(m):
                v[j] = b[j] / ktu[j]
                ktu[j] = 0.0
            i = 0
            while i + 8 <= n:  # eight rows, unrolled so that LLVM vectorises along j
                r0, r1, r2, r3 = K[i], K[i + 1], K[i + 2], K[i + 3]
                r4, r5, r6, r7 = K[i + 4], K[i + 5], K[i + 6], K[i + 7]
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
                for j in range(m):
                    vj = v[j]
                    s0 += r0[j] * vj
                    s1 += r1[j] * vj
                    s2 += r2[j] * vj
                    s3 += r3[j] * vj
                    s4 += r4[j] * vj
                    s5 += r5[j] * vj
                    s6 += r6[j] * vj
                    s7 += r7[j] * vj
                u0, u1, u2, u3 = a[i] / s0, a[i + 1] / s1, a[i + 2] / s2, a[i + 3] / s3
                u4, u5, u6, u7 = a[i + 4] / s4, a[i + 5] / s5, a[i + 6] / s6, a[i + 7] / s7
                u[i], u[i + 1], u[i + 2], u[i + 3] = u0, u1, u2, u3
                u[i + 4], u[i + 5], u[i + 6], u[i + 7] = u4, u5, u6, u7
                for j in range(m):
                    ktu[j] += (u0 * r0[j] + u1 * r1[j] + u2 * r2[j] + u3 * r3[j]) + (
                        u4 * r4[j] + u5 * r5[j] + u6 * r6[j] + u7 * r7[j]
                    )
                i += 8
            while i < n:
                r0 = K[i]
                s0 = 0.0
                for j in range(m):
                    s0 += r0[j] * v[j]
                u0 = a[i] / s0
                u[i] = u0
                for j in range(m):
                    ktu[j] += u0 * r0[j]
                i += 1

    return iterate


def fit_floor(est: Any, iters: int, repeats: int) -> dict[str, Any]:
    """Per-phase floors of a finished exact fit: two bare mat-vecs, its products, numba pass."""
    from papershelf.infoot.mi import SpectralKernel, _GradientWorkspace
    from papershelf.infoot.solvers import _LOW_RANK_MIN

    hist = est._history
    P, Ks, Kt = est.coupling_, est.Ks_, est.Kt_
    n, m = P.shape
    K = np.exp(-np.random.default_rng(0).random((n, m)))  # any positive n x m kernel reads alike
    u, v, ktu = np.full(n, 1 / n), np.full(m, 1 / m), np.empty(m)
    spectral = (SpectralKernel(Ks), SpectralKernel(Kt)) if min(n, m) >= _LOW_RANK_MIN else None
    ws = _GradientWorkspace(n, m, np.float64, spectral)
    out = np.empty((n, m))

    def bare() -> None:
        for _ in range(iters):
            np.dot(K, v, out=u)
            np.dot(u, K, out=ktu)

    fns: dict[str, Callable[[], Any]] = {
        "bare": bare, "prod": lambda: ws._product(Ks, P, Kt.T, out),
    }  # fmt: skip
    fused = numba_fused()
    if fused is not None:
        a, b = np.full(n, 1 / n), np.full(m, 1 / m)
        ktu[:] = K.T @ u
        fused(K, a, b, u, v, ktu, 1)  # compile outside the timing
        fns["fused"] = lambda: fused(K, a, b, u, v, ktu, iters)
    t, _ = interleaved(fns, repeats)
    res = {
        "its": float(sum(hist["inner_iterations"])),
        "products": 2.0 * hist["n_iter"],
        "bare_us": min(t["bare"]) / iters * 1e6,
        "prod_ms": min(t["prod"]) * 1e3,
        "rank": str(ws.rank),
    }
    if "fused" in t:
        res["fused_us"] = min(t["fused"]) / iters * 1e6
    return res


def device_rows(off: Any, args: argparse.Namespace) -> None:
    """Our fits on ``args.device`` (torch, float64, wall clock) vs the official CPU per step."""
    import torch

    dev = torch.device(args.device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    k = args.device_steps
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else args.device
    print(f"\n## Device {name}: {k} outer iterations per fit, official CPU (1 thread, process "
          "time) vs ours on the device (float64 tensors, wall clock after a synchronize; one "
          "warm-up fit first)")  # fmt: skip
    print("| variant | n = m | official CPU per step (s) | ours per step (s) | speed-up | "
          "max abs dP / max P |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    warm = torch.as_tensor(mixtures(64)[0], device=dev)
    FusedInfoOT(max_iter=2, tol=None, progress=False).fit(warm, Xt=warm + 1)
    for n in args.device_sizes:
        Xs, Xt, _, _ = mixtures(n)
        xs, xt = torch.as_tensor(Xs, device=dev), torch.as_tensor(Xt, device=dev)
        for variant in ("Fused", "plain"):
            if variant not in args.full_variants:
                continue
            cls = FusedInfoOT if variant == "Fused" else InfoOT
            off_cls = off.FusedInfoOT if variant == "Fused" else off.InfoOT
            t0 = time.process_time()
            P_off = off_cls(Xs, Xt, h=0.5).solve(numIter=k, verbose=False)
            t_off = (time.process_time() - t0) / k
            sync()
            t0 = time.perf_counter()
            P = cls(max_iter=k, tol=None, progress=False).fit(xs, Xt=xt).coupling_
            sync()
            t_dev = (time.perf_counter() - t0) / k
            print(f"| {variant} | {n} | {t_off:.3f} | {t_dev:.3f} | {t_off / t_dev:.1f}x | "
                  f"{rel(P.double().cpu().numpy(), P_off):.1e} |", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--steps", type=int, default=10, help="outer iterations of the exact rows")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--plain-n", type=int, default=500)
    ap.add_argument("--fast-sizes", type=int, nargs="*", default=[1000, 2000])
    ap.add_argument("--fast-variants", nargs="*", default=["Fused", "plain"])
    ap.add_argument("--fast-official", choices=("per-step", "full"), default="per-step")
    ap.add_argument("--full-variants", nargs="*", default=["Fused", "plain"])
    ap.add_argument("--skip", nargs="*", default=[], choices=("exact", "plain", "fast"))
    ap.add_argument("--profile", action="store_true", help="add the per-phase profile")
    ap.add_argument("--profile-iters", type=int, default=1000)
    ap.add_argument("--floor", action="store_true", help="with the full fits: their floor")
    ap.add_argument("--device", default=None, help="also time our fits on this torch device")
    ap.add_argument("--device-sizes", type=int, nargs="+", default=[1000, 2000, 5000])
    ap.add_argument("--device-steps", type=int, default=2)
    args = ap.parse_args()
    off = load_official()
    if off is None:
        print(f"{ENV} is not set: point it at a checkout of github.com/chingyaoc/InfoOT to run "
              "the official module side by side (skipped).")  # fmt: skip
        return
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    warnings.simplefilter("ignore")  # both sides warn at every capped Sinkhorn
    load = os.getloadavg()
    print(f"# {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, 1 BLAS "
          f"thread; numpy {np.__version__}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"python {sys.version.split()[0]}")  # fmt: skip
    per_step: dict[tuple[str, int], float] = {}
    if "exact" not in args.skip:
        print(f"\n## Exact mode, {args.steps} outer iterations, process time (s) min / median of "
              f"{args.repeats} interleaved")  # fmt: skip
        print("| variant | n = m | official (s) | papershelf (s) | speed-up (min) | speed-up (median) "
              "| max abs dP / max P |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for n in args.sizes:
            Xs, Xt, _, _ = mixtures(n)
            for variant in ("Fused", "plain"):
                k = args.steps
                if variant == "Fused":
                    fns = {
                        "official": lambda: off.FusedInfoOT(Xs, Xt, h=0.5).solve(numIter=k, verbose=False),
                        "ours": lambda: FusedInfoOT(max_iter=k, tol=None, progress=False).fit(Xs, Xt=Xt).coupling_,
                    }  # fmt: skip
                else:
                    fns = {
                        "official": lambda: off.InfoOT(Xs, Xt, h=0.5).solve(numIter=k, verbose=False),
                        "ours": lambda: InfoOT(max_iter=k, tol=None, progress=False).fit(Xs, Xt=Xt).coupling_,
                    }  # fmt: skip
                t, o = interleaved(fns, args.repeats)
                per_step[(variant, n)] = min(t["official"]) / k
                print(f"| {variant} | {n} | {fmt(t['official'])} | {fmt(t['ours'])} | "
                      f"{min(t['official']) / min(t['ours']):.2f}x | "
                      f"{statistics.median(t['official']) / statistics.median(t['ours']):.2f}x | "
                      f"{rel(o['ours'], o['official']):.1e} |", flush=True)  # fmt: skip
    if "plain" not in args.skip:
        n = args.plain_n
        Xs, Xt, _, _ = mixtures(n, seed=1)
        print(f"\n## Full fits, n = m = {n}: official 50 (Fused) / 100 (plain) iterations vs ours "
              f"(outer stop at tol=1e-13), process time (s) min / median of {args.repeats} interleaved")  # fmt: skip
        print("| variant | official (s) | papershelf (s) | our outer iterations | speed-up (min) "
              "| speed-up (median) | max abs dP / max P |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        floors = []
        for variant in args.full_variants:
            if variant == "Fused":
                est: Any = FusedInfoOT(progress=False)
                off_fn = lambda: off.FusedInfoOT(Xs, Xt, h=0.5).solve(numIter=50, verbose=False)  # noqa: E731
            else:
                est = InfoOT(progress=False)
                off_fn = lambda: off.InfoOT(Xs, Xt, h=0.5).solve(numIter=100, verbose=False)  # noqa: E731
            t, o = interleaved({"official": off_fn, "ours": lambda: est.fit(Xs, Xt=Xt).coupling_},
                               args.repeats)  # fmt: skip
            print(f"| {variant} | {fmt(t['official'])} | {fmt(t['ours'])} | {est.n_iter_} | "
                  f"{min(t['official']) / min(t['ours']):.2f}x | "
                  f"{statistics.median(t['official']) / statistics.median(t['ours']):.2f}x | "
                  f"{rel(o['ours'], o['official']):.1e} |", flush=True)  # fmt: skip
            if args.floor:
                f = fit_floor(est, 200, max(args.repeats, 3))
                floors.append((variant, min(t["official"]), min(t["ours"]), f))
        if floors:
            print(f"\n## Floor of the exact full fits at n = m = {n}: its Sinkhorn iterations at the "
                  "speed of two bare BLAS mat-vecs plus its kernel products, each timed alone "
                  "(min of interleaved repeats)")  # fmt: skip
            print("| variant | Sinkhorn iterations | 2 bare mat-vecs (us/it) | compiled one-pass "
                  "(us/it) | products (count x ms, ranks) | floor (s) | official fit (s) | "
                  "ceiling (official / floor) | ours (s) | ours / floor |")  # fmt: skip
            print("|---|---|---|---|---|---|---|---|---|---|")
            for variant, t_off, t_ours, f in floors:
                floor = f["its"] * f["bare_us"] * 1e-6 + f["products"] * f["prod_ms"] * 1e-3
                fused = f"{f['fused_us']:.0f}" if "fused_us" in f else "(numba missing)"
                print(f"| {variant} | {f['its']:.0f} | {f['bare_us']:.0f} | {fused} | "
                      f"{f['products']:.0f} x {f['prod_ms']:.1f} {f['rank']} | {floor:.2f} | "
                      f"{t_off:.2f} | {t_off / floor:.2f}x | {t_ours:.2f} | {t_ours / floor:.2f} |",
                      flush=True)  # fmt: skip
    if args.device:
        device_rows(off, args)
    if "fast" not in args.skip:
        print(
            f"\n## Fast mode (sinkhorn='fast') solved to its own stop; official: {args.fast_official}"
        )
        print("| variant | n = m | official (s) | fast (s) | speed-up | outer iterations | "
              "max abs dP / max P | MI official / fast | 1-NN label transfer official / fast |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for n in args.fast_sizes:
            Xs, Xt, ys, yt = mixtures(n)
            for variant, full_iter in (("Fused", 50), ("plain", 100)):
                if variant not in args.fast_variants:
                    continue
                if variant == "Fused":
                    fast = FusedInfoOT(sinkhorn="fast", progress=False)
                    k = full_iter if args.fast_official == "full" else args.steps
                    off_fn = lambda: off.FusedInfoOT(Xs, Xt, h=0.5).solve(numIter=k, verbose=False)  # noqa: E731
                else:
                    fast = InfoOT(sinkhorn="fast", progress=False)
                    k = full_iter if args.fast_official == "full" else args.steps
                    off_fn = lambda: off.InfoOT(Xs, Xt, h=0.5).solve(numIter=k, verbose=False)  # noqa: E731
                t, o = interleaved(
                    {"official": off_fn, "fast": lambda: fast.fit(Xs, Xt=Xt).coupling_},
                    args.repeats,
                )
                t_off = min(t["official"]) * full_iter / k
                ref = o["official"]
                if k != full_iter:  # the full exact plan (= official to <= 1e-10, table 1), once
                    cls = FusedInfoOT if variant == "Fused" else InfoOT
                    ref = cls(max_iter=full_iter, tol=None, progress=False).fit(Xs, Xt=Xt).coupling_
                from papershelf.infoot import kde_mutual_information

                mi_off = kde_mutual_information(ref, fast.Ks_, fast.Kt_)
                print(f"| {variant} | {n} | {t_off:.1f}{'' if k == full_iter else ' (per step x ' + str(full_iter) + ')'} | "
                      f"{fmt(t['fast'])} | {t_off / min(t['fast']):.1f}x | {fast.n_iter_} | "
                      f"{rel(o['fast'], ref):.2f} | {mi_off:.3f} / {fast.mutual_information_:.3f} | "
                      f"{label_transfer(ref, Xt, ys, yt):.3f} / {label_transfer(o['fast'], Xt, ys, yt):.3f} |", flush=True)  # fmt: skip
    if args.profile:
        profile(off, args.sizes, args.profile_iters, max(args.repeats, 3))
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.device:
        print("Device rows: not run; --device cuda times our fits on a GPU (float64 tensors).")


if __name__ == "__main__":
    main()
