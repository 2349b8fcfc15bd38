"""Closed-form deep-linear trace vs the exact autograd Hessian vs Hutchinson, on the same inputs.

    uv run python packages/hessian-trace/benchmarks/bench_trace.py [--sizes 4 8 12 20] [--depth 3]

Prints a markdown table: median wall time per evaluation (after one warm-up call, so the
first-call cost of torch.func is not counted) and the speed-up of the closed form.
"""

from __future__ import annotations

import argparse
import platform

import torch

from papershelf.core import describe_hardware
from papershelf.core.timing import time_call
from papershelf.hessian_trace import (
    deep_linear_trace,
    hessian_trace_exact,
    hutchinson_trace,
    measurement_loss,
    precompute,
)


def timeit(fn, repeat: int) -> float:
    """Median wall seconds of ``repeat`` calls after one warm-up call."""
    return time_call(fn, repeat, clock="wall", stat="median")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 12, 20])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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
