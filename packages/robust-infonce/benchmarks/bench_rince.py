"""RINCE loss speed: this package's log-space loss vs the official SimCLR formulation, same inputs.

The official formulation is re-implemented here as the official code computes it: the negative
mask rebuilt on every call with Python loops and ``np.delete``, a float mask multiplied into raw
``exp`` similarities. Per-thread CPU time (robust to other load), min over rounds, 1 thread.

    uv run --no-sync python packages/robust-infonce/benchmarks/bench_rince.py
"""

# ruff: noqa: B023  (the timing closures only run inside their own loop iteration)
from __future__ import annotations

import argparse
import platform

import numpy as np
import torch
import torch.nn.functional as F

from papershelf.core.timing import time_call
from papershelf.robust_infonce import info_nce_loss, rince_loss


def official_style_mask(n: int) -> torch.Tensor:
    """The official SimCLR negative mask (one process): rebuilt by Python loops on every call."""
    total, num_pos = 2 * n, 2
    mask = torch.zeros(total, total)
    all_idx = np.arange(total)
    pos_members = n * np.arange(num_pos)
    for anchor in range(num_pos):
        for img in range(n):
            neg = torch.tensor(np.delete(all_idx, img + pos_members)).long()
            mask[anchor * n + img, neg] = 1
    return mask


def official_style_rince(z1, z2, q, lam, t):
    z = torch.cat([z1, z2])
    sim = torch.exp(z @ z.T / t)
    neg = torch.sum(sim * official_style_mask(z1.shape[0]), 1)
    pos = torch.exp((z1 * z2).sum(-1) / t)
    pos = torch.cat([pos, pos])
    return (-(pos**q) / q).mean() + ((lam * (pos + neg)) ** q / q).mean()


def cpu_ms(fn, rounds: int) -> float:
    """Per-thread CPU milliseconds, min of ``rounds`` after one warm-up call."""
    return time_call(fn, rounds) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    q, lam, t = 0.5, 0.01, 0.5
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread, "
        f"d={args.dim}, q={q}, lam={lam}, t={t}; per-thread CPU ms, min of {args.rounds}"
    )
    print(
        "| N (pairs) | official fwd | ours fwd | speed-up | official fwd+bwd | ours fwd+bwd | "
        "speed-up | InfoNCE (ours) fwd+bwd |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        g = torch.Generator().manual_seed(n)
        a = F.normalize(torch.randn(n, args.dim, generator=g), dim=1)
        b = F.normalize(a + 0.5 * torch.randn(n, args.dim, generator=g), dim=1)
        z1, z2 = a.clone().requires_grad_(), b.clone().requires_grad_()
        off_val = official_style_rince(z1, z2, q, lam, t).item()
        our_val = rince_loss(z1, z2, q=q, lam=lam, temperature=t, normalize=False).item()
        assert abs(off_val - our_val) <= 1e-4 * abs(off_val), (off_val, our_val)

        def fwd(fn):
            def run():
                with torch.no_grad():
                    fn()

            return run

        def fwd_bwd(fn):
            def run():
                z1.grad = z2.grad = None
                fn().backward()

            return run

        off = lambda: official_style_rince(z1, z2, q, lam, t)  # noqa: E731
        ours = lambda: rince_loss(z1, z2, q=q, lam=lam, temperature=t, normalize=False)  # noqa: E731
        nce = lambda: info_nce_loss(z1, z2, temperature=t, normalize=False)  # noqa: E731
        of, uf = cpu_ms(fwd(off), args.rounds), cpu_ms(fwd(ours), args.rounds)
        ob, ub = cpu_ms(fwd_bwd(off), args.rounds), cpu_ms(fwd_bwd(ours), args.rounds)
        nb = cpu_ms(fwd_bwd(nce), args.rounds)
        print(
            f"| {n} | {of:.1f} | {uf:.1f} | {of / uf:.2f}x | {ob:.1f} | {ub:.1f} | {ob / ub:.2f}x | {nb:.1f} |"
        )


if __name__ == "__main__":
    main()
