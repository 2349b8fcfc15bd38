"""Graph loss speed ("JSD_hard"): this package's closed form vs the official formulation.

The official ``local_global_loss_`` is re-implemented here as it computes: positive and negative
(n_nodes, n_graphs) float masks filled by a Python loop over the nodes on every call, scores
multiplied by the masks, softplus terms over the whole matrices, weights
``exp(-2 beta q / max(max q, |min q|))`` divided by their row mean. Ours indexes the positives,
uses one softmax per row and skips the loop. Inputs: graphs of 20 nodes, d = 96 (hidden 32 x 3
layers, the official encoder), beta = 2, tau_plus = 0.5, weight_sign = -1 (the code).
Per-thread CPU time (robust to other load), min over rounds, 1 thread.

    uv run --no-sync python packages/hard-negatives/benchmarks/bench_graph.py
"""

# ruff: noqa: B023  (the timing closures only run inside their own loop iteration)
from __future__ import annotations

import argparse
import math
import platform
import time

import torch
import torch.nn.functional as F

from papershelf.hard_negatives.graph import infograph_jsd_hard

LOG2 = math.log(2.0)


def official_style_masks(batch: torch.Tensor, n_graphs: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = batch.shape[0]
    pos_mask = torch.zeros((n, n_graphs))
    neg_mask = torch.ones((n, n_graphs))
    for nodeidx, graphidx in enumerate(batch):
        pos_mask[nodeidx][graphidx] = 1.0
        neg_mask[nodeidx][graphidx] = 0.0
    return pos_mask, neg_mask


def official_style_loss(l_enc, g_enc, batch, beta, tau_plus=0.5, masks=None):
    n, g = l_enc.shape[0], g_enc.shape[0]
    pos_mask, neg_mask = masks if masks is not None else official_style_masks(batch, g)
    res = torch.mm(l_enc, g_enc.t())
    p = res * pos_mask
    ep = LOG2 - F.softplus(-p) - (tau_plus / (1 - tau_plus)) * (F.softplus(-p) + p)
    q = res * neg_mask
    eq = F.softplus(-q) + q
    reweight = -2 * q / max(q.max(), q.min().abs())
    reweight = (beta * reweight).exp()
    reweight = reweight / reweight.mean(dim=1).view(-1, 1)
    eq = reweight * eq / (1 - tau_plus) - LOG2
    return eq.sum() / (n * (g - 1)) - ep.sum() / n


def cpu_ms(fn, rounds: int) -> float:
    """Per-thread CPU milliseconds, min of ``rounds`` after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--graphs", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--nodes-per-graph", type=int, default=20)
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    beta, tau_plus = 2.0, 0.5
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread, "
        f"d={args.dim}, {args.nodes_per_graph} nodes per graph, beta={beta}, "
        f"tau_plus={tau_plus}, weight_sign=-1; per-thread CPU ms, min of {args.rounds}"
    )
    print(
        "| graphs (nodes) | official fwd | of which mask loop | ours fwd | speed-up | "
        "official fwd+bwd | ours fwd+bwd | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n_graphs in args.graphs:
        gen = torch.Generator().manual_seed(n_graphs)
        n = n_graphs * args.nodes_per_graph
        batch = torch.arange(n_graphs).repeat_interleave(args.nodes_per_graph)
        l_enc = (torch.randn(n, args.dim, generator=gen) / 4).requires_grad_()
        g_enc = (torch.randn(n_graphs, args.dim, generator=gen) / 4).requires_grad_()
        off = lambda: official_style_loss(l_enc, g_enc, batch, beta, tau_plus)  # noqa: E731
        ours = lambda: infograph_jsd_hard(  # noqa: E731
            l_enc, g_enc, batch, beta=beta, tau_plus=tau_plus, weight_sign=-1
        )
        ref, val = off().item(), ours().item()
        assert abs(ref - val) <= 1e-4 * max(1.0, abs(ref)), (ref, val)

        def fwd(fn):
            def run():
                with torch.no_grad():
                    fn()

            return run

        def fwd_bwd(fn):
            def run():
                l_enc.grad = g_enc.grad = None
                fn().backward()

            return run

        of, uf = cpu_ms(fwd(off), args.rounds), cpu_ms(fwd(ours), args.rounds)
        loop = cpu_ms(lambda: official_style_masks(batch, n_graphs), args.rounds)
        ob, ub = cpu_ms(fwd_bwd(off), args.rounds), cpu_ms(fwd_bwd(ours), args.rounds)
        print(
            f"| {n_graphs} ({n}) | {of:.1f} | {loop:.1f} | {uf:.1f} | {of / uf:.1f}x | "
            f"{ob:.1f} | {ub:.1f} | {ob / ub:.1f}x |"
        )


if __name__ == "__main__":
    main()
