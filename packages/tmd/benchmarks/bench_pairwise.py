"""Benchmark: pairwise TMD matrices, papershelf.tmd vs the per-pair procedure of the paper code.

The per-pair baseline follows the official algorithm step by step (chingyaoc/TMD ``tmd.py``):
for every pair of graphs, a Python loop over all node pairs at every level with one POT
``ot.emd2`` per pair of computation trees, and a final ``emd2``. It is written here from the
paper's definition (no official code is shipped); pass ``--official DIR`` to time the official
``tmd.py`` from a local clone instead. Baselines are slow (~0.4 s per molecule-sized pair at
depth 4), so they run on ``--sample-pairs`` random pairs of each matrix and their time for the
whole matrix is extrapolated (per-pair time x number of pairs); values are compared on the
sampled pairs.

    uv run --no-sync python packages/tmd/benchmarks/bench_pairwise.py
    uv run --no-sync python packages/tmd/benchmarks/bench_pairwise.py --graphs 20 --depths 4 \
        --sample-pairs 0          # 0: run the baseline on every pair (no extrapolation)
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import ot
import torch

from papershelf.core import describe_hardware
from papershelf.tmd import molecule_like_graphs, pairwise_tmd


def per_pair_tmd(g1: Any, g2: Any, w: float, depth: int) -> float:
    """The per-pair dynamic programme with one emd2 per pair of trees (the paper code's way)."""
    n1, n2 = len(g1.x), len(g2.x)
    ch1 = [g1.edge_index[1][g1.edge_index[0] == i].tolist() for i in range(n1)]
    ch2 = [g2.edge_index[1][g2.edge_index[0] == j].tolist() for j in range(n2)]
    feat = np.zeros((n1, n2))
    for i in range(n1):
        for j in range(n2):
            feat[i, j] = torch.norm(g1.x[i] - g2.x[j])
    table = np.zeros((n1 + 1, n2 + 1))
    table[:n1, :n2] = feat
    table[:n1, n2] = torch.norm(g1.x, dim=1)
    table[n1, :n2] = torch.norm(g2.x, dim=1)
    for _ in range(depth - 1):
        prev, table = table, np.zeros((n1 + 1, n2 + 1))
        for i in range(n1):
            for j in range(n2):
                a, b = ch1[i], ch2[j]
                da, db = len(a), len(b)
                if da == 0 and db == 0:
                    ot_cost = 0.0
                elif da == 0 or db == 0:
                    ot_cost = prev[n1, b].sum() if da == 0 else prev[a, n2].sum()
                else:
                    d = max(da, db)
                    cost = np.zeros((da + 1, db + 1))
                    cost[:da, :db] = prev[np.ix_(a, b)]
                    cost[da, :db] = prev[n1, b]
                    cost[:da, db] = prev[a, n2]
                    ot_cost = ot.emd2(np.r_[np.ones(da), d - da], np.r_[np.ones(db), d - db], cost)
                table[i, j] = feat[i, j] + w * ot_cost
        for i in range(n1):
            table[i, n2] = float(torch.norm(g1.x[i])) + w * prev[ch1[i], n2].sum()
        for j in range(n2):
            table[n1, j] = float(torch.norm(g2.x[j])) + w * prev[n1, ch2[j]].sum()
    m = max(n1, n2)
    return float(ot.emd2(np.r_[np.ones(n1), m - n1], np.r_[np.ones(n2), m - n2], table))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--graphs", type=int, nargs="+", default=[20, 50, 100, 200])
    p.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument("--w", type=float, default=0.5)
    p.add_argument("--sample-pairs", type=int, default=20)
    p.add_argument("--official", type=Path, default=None, help="folder holding official tmd.py")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    baseline, name = per_pair_tmd, "per-pair emd2 (paper procedure)"
    if args.official is not None:
        spec = importlib.util.spec_from_file_location("official_tmd", args.official / "tmd.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)

        def baseline(g1: Any, g2: Any, w: float, depth: int) -> float:
            return float(mod.TMD(g1, g2, w=w, L=depth))

        name = "official TMD()"
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else platform.machine()  # fmt: skip
    print(f"# {describe_hardware()}: {cpu}; torch threads 1; baseline: {name}")
    print("| graphs | depth | pairs | ours (s) | baseline (s) | speed-up | max rel. diff |")
    print("|---|---|---|---|---|---|---|")
    all_graphs = molecule_like_graphs(max(args.graphs), random_state=args.seed)
    rng = np.random.default_rng(args.seed)
    for n in args.graphs:
        graphs = all_graphs[:n]
        iu, ju = np.triu_indices(n, k=1)
        for depth in args.depths:
            t0 = time.perf_counter()
            ours = pairwise_tmd(graphs, w=args.w, depth=depth, show_progress=False)
            t_ours = time.perf_counter() - t0
            k = len(iu) if args.sample_pairs <= 0 else min(args.sample_pairs, len(iu))
            pick = rng.choice(len(iu), size=k, replace=False)
            t0 = time.perf_counter()
            ref = [baseline(graphs[iu[q]], graphs[ju[q]], args.w, depth) for q in pick]
            t_base = (time.perf_counter() - t0) / k * len(iu)
            rel = np.max(np.abs(ours[iu[pick], ju[pick]] - ref) / np.maximum(np.abs(ref), 1e-12))
            extrap = "" if k == len(iu) else "*"
            print(
                f"| {n} | {depth} | {len(iu)} | {t_ours:.2f} | {t_base:.1f}{extrap} | "
                f"{t_base / t_ours:.0f}x | {rel:.1e} |",
                flush=True,
            )
    print("\n`*`: extrapolated from the sampled pairs (per-pair time x pairs).")


if __name__ == "__main__":
    main()
