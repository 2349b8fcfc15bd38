"""The search for a setting where noisy views hurt InfoNCE, and RINCE vs InfoNCE there.

Runs a grid of (setting, partner kind, noisy-view rate, temperature, loss) over seeds and prints
one markdown row per cell: the 5-shot probe accuracy (mean ± sd over seeds) and the paired
difference to InfoNCE in the same cell with its interval and verdict (``claim_test``).

* ``latent``: the quick reproduction's synthetic latent classes
  (:func:`papershelf.robust_infonce._experiment.run_latent`).
* ``digits``: scikit-learn digits with the contrastive-bench augmentations and MLP
  (:func:`papershelf.robust_infonce._experiment.train_noisy_views`; needs the workspace member
  papershelf-contrastive-bench, i.e. a clone of the repository).

``--partner other-class`` pairs two instances of different classes; ``random`` pairs any two
images (the 0.1 design, under which the noise barely hurts InfoNCE). Processes run in parallel
(``--procs``), one torch thread each.

    uv run --no-sync python packages/robust-infonce/benchmarks/noisy_view_search.py \\
        --setting latent --rates 0 0.6 --temperatures 0.5 0.2 --qs 0 0.5 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import torch

from papershelf.core.records import claim_test


def _one(job: tuple[str, str, float, float, float, int, int]) -> float:
    setting, partner, rate, t, q, seed, length = job
    torch.set_num_threads(1)
    from papershelf.robust_infonce import info_nce_loss, rince_loss
    from papershelf.robust_infonce._experiment import (
        LatentClassConfig,
        NoisyViewConfig,
        run_latent,
        train_noisy_views,
    )

    def loss_fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if q == 0:
            return info_nce_loss(a, b, temperature=t)
        return rince_loss(a, b, q=q, lam=0.01, temperature=t)

    if setting == "latent":
        cfg = replace(LatentClassConfig(), noise_rate=rate, partner=partner, steps=length)
        return run_latent(loss_fn, cfg, seed)
    from papershelf.contrastive_bench.digits import linear_probe, load_digits_split

    xtr, ytr, xte, yte = load_digits_split()
    dcfg = NoisyViewConfig(epochs=length, noise_rate=rate, partner=partner)
    model = train_noisy_views(loss_fn, xtr, ytr, dcfg, seed)
    return linear_probe(model, xtr, ytr, xte, yte, shots=5, draws=5, seed=seed)[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--setting", choices=["latent", "digits"], default="latent")
    ap.add_argument("--partner", choices=["other-class", "random"], default="other-class")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.6])
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.5])
    ap.add_argument("--qs", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--length", type=int, default=None, help="steps (latent) or epochs (digits)")
    ap.add_argument("--procs", type=int, default=2)
    args = ap.parse_args()
    length = args.length or (300 if args.setting == "latent" else 30)
    qs = sorted(set(args.qs) | {0.0})
    cells = list(itertools.product(args.rates, args.temperatures, qs))
    jobs = [
        (args.setting, args.partner, r, t, q, s, length) for r, t, q in cells for s in args.seeds
    ]
    with ProcessPoolExecutor(args.procs) as pool:
        results = list(pool.map(_one, jobs))
    acc: dict[tuple[float, float, float], list[float]] = {}
    for job, value in zip(jobs, results, strict=True):
        acc.setdefault((job[2], job[3], job[4]), []).append(value)
    print(
        f"{args.setting}, {args.partner} partners, {length} {'steps' if args.setting == 'latent' else 'epochs'}, "
        f"seeds {args.seeds}; 5-shot probe accuracy (%)"
    )
    print("| noisy rate | t | loss | 5-shot (mean ± sd) | minus InfoNCE [90% interval] | verdict |")
    print("|---|---|---|---|---|---|")
    for rate, t, q in cells:
        vals = acc[(rate, t, q)]
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        row = f"| {rate:g} | {t:g} | {'InfoNCE' if q == 0 else f'RINCE q={q:g}'} | {statistics.fmean(vals):.2f} ± {sd:.2f} |"
        if q == 0:
            print(row + " – | – |")
            continue
        test = claim_test(vals, acc[(rate, t, 0.0)])
        print(row + f" {test.diff:+.2f} [{test.low:+.2f}, {test.high:+.2f}] | {test.verdict} |")


if __name__ == "__main__":
    main()
