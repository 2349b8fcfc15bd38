"""Throughput of the ``--full`` SimCLR recipe on this machine, to size a paper-scale run.

Times SimCLR steps (two augmented views, forward, loss, backward, Adam) and linear-probe steps of
:mod:`papershelf.contrastive_bench.cifar` on generated data in the real formats (real CIFAR-10 and
STL10 sizes, random pixels: throughput does not depend on the pixel values), with data loading
in worker processes as in a real run, and extrapolates to the paper's epochs. Seconds per step
are the difference of a long and a short run divided by the extra steps, so loader start-up and
warm-up cancel.

    python packages/robust-infonce/benchmarks/bench_full_throughput.py --device cuda

(with ``shared/core/src`` and the packages' ``src`` importable, e.g. ``uv run``).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from papershelf.contrastive_bench.cifar import (
    PaperScaleConfig,
    SimCLRNet,
    linear_probe,
    load_data,
    train_simclr,
    write_fake_cifar10,
    write_fake_stl10,
)
from papershelf.robust_infonce import rince_loss


def _seconds_per_step(fn, short: int, long: int) -> float:
    t0 = time.perf_counter()
    fn(short)
    t1 = time.perf_counter()
    fn(long)
    t2 = time.perf_counter()
    return ((t2 - t1) - (t1 - t0)) / (long - short)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--short", type=int, default=5)
    parser.add_argument("--long", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256, help="paper: 256")
    parser.add_argument("--linear-batch-size", type=int, default=512, help="paper: 512")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the data (smoke runs)")
    args = parser.parse_args()
    k = lambda n: max(int(n * args.scale), 16)  # noqa: E731
    root = tempfile.mkdtemp(prefix="papershelf-bench-")
    write_fake_cifar10(root, per_batch=k(10_000))  # 50000 + 10000 images, as CIFAR-10
    # STL10: 5000 + 8000 images, and 100000 unlabeled in the real one
    write_fake_stl10(root, n_train=k(5000), n_test=k(8000), n_unlabeled=k(5000))
    loss = lambda z1, z2: rince_loss(z1, z2, q=0.5, lam=0.01, temperature=0.5)  # noqa: E731
    if args.device.startswith("cuda"):
        print(torch.cuda.get_device_name(), "torch", torch.__version__)
    # (name, config, SimCLR images per epoch in the real data set)
    runs = [
        ("robust-infonce: CIFAR-10 ResNet-18", PaperScaleConfig(arch="resnet18"), 50_000),
        ("hard-negatives: STL10 ResNet-50", PaperScaleConfig(dataset="stl10"), 105_000),
    ]
    for name, base, n_pretrain in runs:
        base = base.with_overrides(
            {
                "data_root": root,
                "workers": args.workers,
                "epochs": 1,
                "batch_size": args.batch_size,
                "linear_batch_size": args.linear_batch_size,
            }
        )
        data = load_data(base)
        model = SimCLRNet(base)

        def simclr(steps: int, base=base, model=model, data=data) -> None:
            cfg = base.with_overrides({"max_steps": steps})
            train_simclr(model, loss, data, cfg, seed=0, device=args.device)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        def probe(steps: int, base=base, model=model, data=data) -> None:
            cfg = base.with_overrides({"max_linear_steps": steps})
            linear_probe(model, data, cfg, seed=0, device=args.device)

        step = _seconds_per_step(simclr, args.short, args.long)
        lin = _seconds_per_step(probe, args.short // 2 or 1, args.long // 4 or 2)
        if step <= 0 or lin <= 0:
            print(f"{name}: timing noise exceeds the difference; raise --long")
            continue
        steps_per_epoch = n_pretrain // base.batch_size
        n_train = 50_000 if base.dataset == "cifar10" else 5000
        lin_epoch = lin * -(-n_train // base.linear_batch_size)
        paper = PaperScaleConfig()
        total_h = step * steps_per_epoch * paper.epochs / 3600
        print(
            f"{name}: {step * 1000:.0f} ms per SimCLR step of {base.batch_size} pairs "
            f"({base.batch_size / step:.0f} pairs/s, {args.workers} loader workers); "
            f"{steps_per_epoch} steps per epoch -> {step * steps_per_epoch:.0f} s per epoch, "
            f"{total_h:.1f} h for {paper.epochs} epochs per seed and loss; "
            f"linear probe {lin * 1000:.0f} ms per step of {base.linear_batch_size} "
            f"-> {lin_epoch * paper.linear_epochs / 60:.1f} min for {paper.linear_epochs} epochs"
        )


if __name__ == "__main__":
    main()
