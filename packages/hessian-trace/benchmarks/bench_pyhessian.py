"""``HessianTrace`` against PyHessian's ``hessian(...).trace()`` on the same CNN, data and probes count.

PyHessian (Yao et al., 2020) is installed in a separate, benchmark-only environment (it is not a
papershelf dependency)::

    python3 -m venv /tmp/pyhessian-venv
    /tmp/pyhessian-venv/bin/pip install pyhessian torch
    PAPERSHELF_PYHESSIAN_PYTHON=/tmp/pyhessian-venv/bin/python \\
        uv run --no-sync python packages/hessian-trace/benchmarks/bench_pyhessian.py

Every measurement runs in a fresh process (``--worker``), so the peak memory is that call's
own: peak resident set size during the trace minus the resident size before it (after the
model and data are built and a 2-probe warm-up has run). Runs are interleaved (ours, PyHessian,
ours, ...); process CPU seconds, one thread. Both estimate the Hessian trace of the mean
cross-entropy of a ~10k-parameter CNN on one batch of 128 32x32x3 images (PyHessian's ``data=``
mode) and on 4 such batches (its ``dataloader=`` mode), with the same number of Rademacher
probes (PyHessian ``tol=0``, so it runs all ``maxIter`` probes; ours ``tol=0``). Ours is also
run with its tolerance stop (``tol=0.05``: relative standard error 5%, at most 400 probes). Without
``PAPERSHELF_PYHESSIAN_PYTHON`` the PyHessian rows are skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_data(path: str, batches: int) -> None:
    import numpy as np

    rs = np.random.RandomState(0)
    shapes = {
        "0.weight": (32, 3, 3, 3), "0.bias": (32,), "2.weight": (32, 32, 3, 3), "2.bias": (32,),
        "6.weight": (10, 32), "6.bias": (10,),
    }  # fmt: skip
    arrays = {}
    for k, s in shapes.items():
        fan_in = int(np.prod(s[1:])) if len(s) > 1 else 1
        arrays[k] = (rs.randn(*s) * (np.sqrt(2.0 / fan_in) if len(s) > 1 else 0.1)).astype("f4")
    arrays["x"] = rs.randn(batches * 128, 3, 32, 32).astype("f4")
    arrays["y"] = rs.randint(0, 10, size=batches * 128).astype("i8")
    np.savez(path, **arrays)


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(1)
    data = np.load(args.data)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2, padding=1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    model.load_state_dict({k: torch.from_numpy(data[k]) for k in model.state_dict()})
    model.eval()
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    batches = [(x[i : i + 128], y[i : i + 128]) for i in range(0, len(x), 128)]
    crit = nn.CrossEntropyLoss()
    torch.manual_seed(args.seed)
    if args.worker == "pyhessian":
        from pyhessian import hessian

        def run(probes: int) -> tuple[float, float, int]:
            if len(batches) == 1:
                h = hessian(model, crit, data=batches[0], cuda=False)
            else:
                h = hessian(model, crit, dataloader=batches, cuda=False)
            vals = h.trace(maxIter=probes, tol=0.0)
            se = statistics.stdev(vals) / len(vals) ** 0.5
            return statistics.fmean(vals), se, len(vals)
    else:
        from papershelf.hessian_trace import HessianTrace

        gen = torch.Generator().manual_seed(args.seed)

        def run(probes: int) -> tuple[float, float, int]:
            est = HessianTrace(model, crit, batches).trace(
                max_probes=probes, tol=args.tol, min_probes=10, generator=gen, show_progress=False
            )
            return est.trace, est.stderr, est.n_probes

    before = _rss_mb()
    run(2)  # warm-up: first-call autograd set-up is not counted
    c, w = time.process_time(), time.perf_counter()
    tr, se, n = run(args.probes)
    cpu, wall = time.process_time() - c, time.perf_counter() - w
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"trace": tr, "se": se, "n": n, "cpu": cpu, "wall": wall,
                      "peak_mb": peak - before, "torch": torch.__version__}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=["ours", "pyhessian"])
    ap.add_argument("--data")
    ap.add_argument("--probes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=0.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    pyh = os.environ.get("PAPERSHELF_PYHESSIAN_PYTHON")
    if not pyh:
        print("PyHessian rows skipped: set PAPERSHELF_PYHESSIAN_PYTHON to a Python with pyhessian")
    print(f"load {os.getloadavg()[0]:.2f} at start; {args.probes} probes; process CPU s "
          f"min / median of {args.repeats} interleaved fresh processes")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nb in (1, 4):
            path = os.path.join(tmp, f"data{nb}.npz")
            make_data(path, nb)
            runs: dict[str, list[dict]] = {"ours": [], "ours, tol=0.05": [], "PyHessian": []}
            for rep in range(args.repeats):
                jobs = [
                    ("ours", sys.executable, "ours", 0.0),
                    ("ours, tol=0.05", sys.executable, "ours", 0.05),
                ]
                if pyh:
                    jobs.append(("PyHessian", pyh, "pyhessian", 0.0))
                for label, py, kind, tol in jobs:
                    cmd = [py, os.path.abspath(__file__), "--worker", kind, "--data", path,
                           "--probes", str(args.probes if tol == 0 else 400), "--seed", str(rep),
                           "--tol", str(tol)]  # fmt: skip
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                    runs[label].append(json.loads(out.strip().splitlines()[-1]))
            for label, rs in runs.items():
                if not rs:
                    continue
                cpu = [r["cpu"] for r in rs]
                rows.append(
                    f"| {nb} x 128 | {label} (torch {rs[0]['torch']}) | "
                    + ", ".join(f"{r['trace']:.2f} ± {r['se']:.2f} ({r['n']})" for r in rs)
                    + f" | {min(cpu):.2f} / {statistics.median(cpu):.2f} | "
                    f"{max(r['peak_mb'] for r in rs):.0f} |"
                )
                print(rows[-1], flush=True)
    print()
    print(
        "| data | estimator | trace ± s.e. (probes), per repeat | CPU s min / median | peak extra memory (MB) |"
    )
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"load {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
