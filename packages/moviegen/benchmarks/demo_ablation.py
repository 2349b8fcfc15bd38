"""Rerun the quick text-to-video demo with some of its settings changed (the README's ablations).

Usage::

    uv run python packages/moviegen/benchmarks/demo_ablation.py '{"data": {"jitter": 2}}' --seeds 0 1

The JSON object overrides keys of ``papershelf.moviegen.reproduce.QUICK`` (``data`` is merged
key by key, so ``{"data": {"jitter": null}}`` gives uniform starts). The cast demos are skipped;
the script prints each T2V record's per-seed values and verdict, and the CPU and wall time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from papershelf.core import ReproduceContext
from papershelf.moviegen import reproduce


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("override", help="JSON object overriding reproduce.QUICK")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    override = json.loads(args.override)
    if not isinstance(override, dict) or not set(override) <= set(reproduce.QUICK):
        raise SystemExit(
            f"override must be a JSON object with keys of QUICK: {sorted(reproduce.QUICK)}"
        )
    data = {**reproduce.QUICK["data"], **override.pop("data", {})}
    reproduce.QUICK = {**reproduce.QUICK, **override, "data": data}
    reproduce.run_cast = lambda ctx: []  # the T2V demo only
    torch.set_num_threads(1)
    cpu, wall = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        ctx = ReproduceContext(Path(out), seeds=tuple(args.seeds), show_progress=False)
        for r in reproduce.run(ctx):
            print(f"{r.experiment} | {r.metric} | {[round(v, 3) for v in r.values]} | {r.status}")
    print(f"cpu {time.process_time() - cpu:.0f} s, wall {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
