"""Benchmark: pairwise_tmd on a dask.distributed cluster (joblib's Dask backend), 1 vs 2 workers.

For each worker count a ``LocalCluster`` of worker processes (one thread each) is started and
warmed up (the workers import the package once); then the same matrix is computed serially
(``n_jobs=1``, this process) and under ``joblib.parallel_config(backend="dask")``,
interleaved, ``--repeats`` times. Reports wall-clock seconds (the quantity that parallelism
changes), the speed-up over the serial run of the same round, that the matrices are equal bit
for bit, and the load average (on a shared machine, read the ratios, not the absolute times).

    uv run --no-sync python packages/tmd/benchmarks/bench_dask.py --graphs 300 --depth 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import joblib
import numpy as np
from distributed import Client, LocalCluster

from papershelf.core import describe_hardware
from papershelf.tmd import TreeDistanceTable, molecule_like_graphs, pairwise_tmd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=300)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    graphs = molecule_like_graphs(args.graphs, random_state=0)
    table = TreeDistanceTable(graphs, w=0.5, depth=args.depth, n_jobs=1, show_progress=False)
    print(f"{args.graphs} molecule-like graphs, depth {args.depth}, w = 0.5: "
          f"{table.num_classes[-1]} distinct depth-{args.depth} trees, "
          f"{args.graphs * (args.graphs - 1) // 2} pairs")  # fmt: skip
    print(f"hardware: {describe_hardware()}; load average at start {os.getloadavg()}")
    rows = []
    for n_workers in args.workers:
        with (
            LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,  # fmt: skip
            Client(cluster) as client,
        ):
            with joblib.parallel_config(backend="dask"):
                pairwise_tmd(graphs[:20], w=0.5, depth=2, show_progress=False)  # warm-up
            serial_s, dask_s, loads = [], [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                ref = pairwise_tmd(graphs, w=0.5, depth=args.depth, n_jobs=1, show_progress=False)
                serial_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                with joblib.parallel_config(backend="dask"):
                    out = pairwise_tmd(graphs, w=0.5, depth=args.depth, show_progress=False)
                dask_s.append(time.perf_counter() - t0)
                loads.append(os.getloadavg()[0])
                assert np.array_equal(out, ref), "the cluster's matrix differs from the serial one"
            rows.append((n_workers, statistics.median(serial_s), statistics.median(dask_s),
                         statistics.median(loads)))  # fmt: skip
            del client
    print("\n| Dask workers | serial (s) | Dask (s) | speed-up | equal | load avg |")
    print("|---|---|---|---|---|---|")
    for n_workers, s, d, load in rows:
        print(f"| {n_workers} | {s:.1f} | {d:.1f} | {s / d:.2f}x | bit for bit | {load:.1f} |")


if __name__ == "__main__":
    main()
