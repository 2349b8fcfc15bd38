"""Closed-form deep-linear trace vs the exact autograd Hessian vs Hutchinson, on the same inputs.

    uv run --no-sync python packages/hessian-trace/benchmarks/bench_trace.py [--sizes 4 8 12 20]
    uv run --no-sync python packages/hessian-trace/benchmarks/bench_trace.py --crossover

The default mode prints a markdown table: median time per evaluation (after one warm-up call,
so the first-call cost of torch.func is not counted) and the speed-up of the closed form.
``--crossover`` times Hutchinson's probes in chunks of 1 (a loop over probes that reuses the
first-order graph), 4, 16 and 64 (one batched backward per chunk), interleaved, process CPU
time, on deep linear networks and MLPs of growing size: where chunking stops paying is the
crossover that sets ``default_batch_size``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from papershelf.core import describe_hardware
from papershelf.hessian_trace import (
    deep_linear_trace,
    hessian_trace_exact,
    hutchinson_trace,
    measurement_loss,
    precompute,
)


def timeit(fn, repeat: int) -> float:
    """Median wall seconds of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def hutchinson_loop(loss, ws, probes: int) -> float:
    """The naive estimator: one double-backward per probe, in a Python loop."""
    leaves = [w.detach().requires_grad_(True) for w in ws]
    total = 0.0
    for _ in range(probes):
        g = torch.autograd.grad(loss(leaves), leaves, create_graph=True)
        v = [torch.randint(0, 2, w.shape, dtype=w.dtype) * 2 - 1 for w in leaves]
        hv = torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), leaves)
        total += float(sum((h * vi).sum() for h, vi in zip(hv, v)))
    return total / probes


def crossover(args: argparse.Namespace) -> None:
    """Per-probe process time of chunked Hutchinson vs a loop over probes (chunk 1)."""
    import os
    import statistics
    import time

    from papershelf.hessian_trace.estimators import default_batch_size

    chunks = [1, 4, 16, 64]
    probes = 64
    print(f"load {os.getloadavg()[0]:.2f} at start; {probes} probes, process CPU ms per probe, "
          f"min / median of {args.repeats} interleaved repeats")  # fmt: skip
    print()
    print("| model | params | " + " | ".join(f"chunk {c} (ms)" for c in chunks)
          + " | best chunk | default chunk | default vs loop |")  # fmt: skip
    print("|---|---|" + "---|" * (len(chunks) + 3))
    cases = []
    for d in args.sizes:
        g = torch.Generator().manual_seed(d)
        ws = [
            torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5 for _ in range(args.depth)
        ]
        a = torch.randn(2 * d * d, d, d, generator=g, dtype=torch.float64)
        b = torch.randn(2 * d * d, generator=g, dtype=torch.float64)
        cases.append(
            (f"DLN d={d} L={args.depth}", ws, lambda p, a=a, b=b: measurement_loss(p, a, b))
        )
    for width in (16, 32, 64, 128):
        g = torch.Generator().manual_seed(width)
        x = torch.randn(128, 10, generator=g, dtype=torch.float64)
        y = torch.randn(128, 1, generator=g, dtype=torch.float64)
        shapes = [(width, 10), (width,), (width, width), (width,), (1, width), (1,)]
        ps = [torch.randn(s, generator=g, dtype=torch.float64) / 3 for s in shapes]

        def mlp_loss(p, x=x, y=y):
            h = torch.tanh(x @ p[0].T + p[1])
            h = torch.tanh(h @ p[2].T + p[3])
            return ((h @ p[4].T + p[5] - y) ** 2).mean()

        cases.append((f"MLP 10-{width}-{width}-1, batch 128", ps, mlp_loss))
    for name, params, loss in cases:
        n_params = sum(t.numel() for t in params)
        times: dict[int, list[float]] = {c: [] for c in chunks}
        for c in chunks:  # warm-up
            hutchinson_trace(loss, params, num_probes=probes, batch_size=c)
        for _ in range(args.repeats):
            for c in chunks:
                t0 = time.process_time()
                hutchinson_trace(loss, params, num_probes=probes, batch_size=c)
                times[c].append(1e3 * (time.process_time() - t0) / probes)
        best = min(chunks, key=lambda c: min(times[c]))
        dflt = default_batch_size(n_params, probes)
        dflt_t = min(times[dflt]) if dflt in times else float("nan")
        cells = " | ".join(
            f"{min(times[c]):.2f} / {statistics.median(times[c]):.2f}" for c in chunks
        )
        print(f"| {name} | {n_params} | {cells} | {best} | {dflt} | {min(times[1]) / dflt_t:.2f}x |",
              flush=True)  # fmt: skip
    print(f"load {os.getloadavg()[0]:.2f} at end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 12, 20])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--crossover", action="store_true", help="chunk size vs loop table")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.crossover:
        crossover(args)
        return
    print(
        f"hardware: {describe_hardware()}, torch {torch.__version__}, "
        f"python {platform.python_version()}, {args.threads} thread(s), float64, depth {args.depth}"
    )
    print()
    print(
        "| d | params | exact Hessian (ms) | Hutchinson vmap, "
        f"{args.probes} probes (ms) | Hutchinson loop (ms) | closed form (ms) | "
        "closed vs exact | closed vs Hutchinson | vmap vs loop |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for d in args.sizes:
        g = torch.Generator().manual_seed(d)
        ws = [
            torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5 for _ in range(args.depth)
        ]
        a = torch.randn(2 * d * d, d, d, generator=g, dtype=torch.float64)
        b = torch.randn(2 * d * d, generator=g, dtype=torch.float64)
        s = precompute(a)

        def loss(p, a=a, b=b):
            return measurement_loss(p, a, b)

        repeat = 5 if d <= 12 else 3
        t_exact = timeit(lambda ws=ws, loss=loss: hessian_trace_exact(loss, ws), repeat)
        t_hutch = timeit(
            lambda ws=ws, loss=loss: hutchinson_trace(loss, ws, num_probes=args.probes), repeat
        )
        t_loop = timeit(lambda ws=ws, loss=loss: hutchinson_loop(loss, ws, args.probes), 1)
        t_closed = timeit(lambda ws=ws, a=a, s=s: deep_linear_trace(ws, a, precomputed=s), 20)
        n_params = sum(w.numel() for w in ws)
        print(
            f"| {d} | {n_params} | {1e3 * t_exact:.1f} | {1e3 * t_hutch:.1f} | {1e3 * t_loop:.1f} | "
            f"{1e3 * t_closed:.3f} | {t_exact / t_closed:.0f}x | {t_hutch / t_closed:.0f}x | "
            f"{t_loop / t_hutch:.1f}x |"
        )


if __name__ == "__main__":
    main()
