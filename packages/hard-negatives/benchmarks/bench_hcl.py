"""HCL loss speed: this package's log-space loss vs the official formulation, same inputs.

The official formulation is re-implemented here as the official ``criterion`` computes it: the
negative mask rebuilt on every call by a Python loop, raw ``exp`` similarities, a ``clone``,
``masked_select`` of the negatives, importance weights via ``exp(beta * log(neg))``.
Per-thread CPU time (robust to other load), min over rounds, 1 thread.

    uv run --no-sync python packages/hard-negatives/benchmarks/bench_hcl.py
"""

# ruff: noqa: B023  (the timing closures only run inside their own loop iteration)
from __future__ import annotations

import argparse
import math
import platform

import torch
import torch.nn.functional as F

from papershelf.core.timing import time_call
from papershelf.hard_negatives import hcl_loss, nt_xent_loss


def official_style_mask(n: int) -> torch.Tensor:
    mask = torch.ones((n, 2 * n), dtype=torch.bool)
    for i in range(n):
        mask[i, i] = 0
        mask[i, i + n] = 0
    return torch.cat((mask, mask), 0)


def official_style_hcl(z1, z2, tau_plus, beta, t):
    n = z1.shape[0]
    z = torch.cat([z1, z2], dim=0)
    neg = torch.exp(torch.mm(z, z.t().contiguous()) / t)
    _old = neg.clone()  # the official code keeps an unused copy
    neg = neg.masked_select(official_style_mask(n)).view(2 * n, -1)
    pos = torch.exp(torch.sum(z1 * z2, dim=-1) / t)
    pos = torch.cat([pos, pos], dim=0)
    m = 2 * n - 2
    imp = (beta * neg.log()).exp()
    reweight_neg = (imp * neg).sum(dim=-1) / imp.mean(dim=-1)
    ng = (-tau_plus * m * pos + reweight_neg) / (1 - tau_plus)
    ng = torch.clamp(ng, min=m * math.e ** (-1 / t))
    return (-torch.log(pos / (pos + ng))).mean()


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
    beta, tau_plus, t = 1.0, 0.1, 0.5
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread, "
        f"d={args.dim}, beta={beta}, tau_plus={tau_plus}, t={t}; per-thread CPU ms, "
        f"min of {args.rounds}"
    )
    print(
        "| N (pairs) | official fwd | ours fwd | speed-up | official fwd+bwd | ours fwd+bwd | "
        "speed-up | NT-Xent (ours) fwd+bwd |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        g = torch.Generator().manual_seed(n)
        a = F.normalize(torch.randn(n, args.dim, generator=g), dim=1)
        b = F.normalize(a + 0.5 * torch.randn(n, args.dim, generator=g), dim=1)
        z1, z2 = a.clone().requires_grad_(), b.clone().requires_grad_()
        off_val = official_style_hcl(z1, z2, tau_plus, beta, t).item()
        kw = dict(beta=beta, tau_plus=tau_plus, temperature=t, normalize=False)
        our_val = hcl_loss(z1, z2, **kw).item()
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

        off = lambda: official_style_hcl(z1, z2, tau_plus, beta, t)  # noqa: E731
        ours = lambda: hcl_loss(z1, z2, **kw)  # noqa: E731
        nce = lambda: nt_xent_loss(z1, z2, temperature=t, normalize=False)  # noqa: E731
        of, uf = cpu_ms(fwd(off), args.rounds), cpu_ms(fwd(ours), args.rounds)
        ob, ub = cpu_ms(fwd_bwd(off), args.rounds), cpu_ms(fwd_bwd(ours), args.rounds)
        nb = cpu_ms(fwd_bwd(nce), args.rounds)
        print(
            f"| {n} | {of:.1f} | {uf:.1f} | {of / uf:.2f}x | {ob:.1f} | {ub:.1f} | {ob / ub:.2f}x | {nb:.1f} |"
        )


if __name__ == "__main__":
    main()
