"""``python -m papershelf.hard_negatives.graph``: run the small graph experiment, print a table.

Writes ``graph_results.json`` (the records) and ``hcl_graph_beta.png`` to ``--out``. Needs the
``graph`` and ``reproduce`` extras.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch

from papershelf.core import progress
from papershelf.hard_negatives.graph._experiment import (
    GraphExperimentConfig,
    graph_figure,
    graph_records,
    run_graph_experiment,
)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m papershelf.hard_negatives.graph", description=__doc__
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="default: GraphExperimentConfig's")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("graph-results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = GraphExperimentConfig(**({} if args.epochs is None else {"epochs": args.epochs}))
    started = time.perf_counter()
    result = run_graph_experiment(cfg, args.seeds, progress=progress)
    wall = time.perf_counter() - started
    records = graph_records(result)
    args.out.mkdir(parents=True, exist_ok=True)
    fig = graph_figure(result)
    fig.savefig(args.out / "hcl_graph_beta.png")
    payload = {
        "config": asdict(cfg),
        "seeds": list(args.seeds),
        "wall_s": wall,
        "platform": f"{platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)",
        "records": [r.to_dict() for r in records],
    }
    (args.out / "graph_results.json").write_text(json.dumps(payload, indent=1))
    print(f"seeds {list(args.seeds)}, {wall:.0f} s wall, {payload['platform']}")
    print("| Method | SVM accuracy (%) | Note |")
    print("|---|---|---|")
    for r in records:
        if r.claim is None:
            sd = statistics.stdev(r.values) if len(r.values) > 1 else 0.0
            name = r.experiment.removeprefix("graphs: ")
            print(f"| {name} | {statistics.fmean(r.values):.2f} ± {sd:.2f} | {r.note} |")
    for r in records:
        if r.claim is not None:
            print(
                f"- {r.experiment.removeprefix('graphs: ')}: {r.note}; claim holds: {r.claim_holds}"
            )


if __name__ == "__main__":
    main()
