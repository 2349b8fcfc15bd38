"""HCL loss speed: this package's loss vs the official ``criterion`` of joshr17/HCL, same inputs.

Rows per batch size N (pairs), forward and forward+backward:

- ``official``: ``image/main.py``'s ``criterion`` imported unmodified from a checkout of
  github.com/joshr17/HCL (``--official PATH`` or ``$HCL_OFFICIAL_DIR``; its heavy imports
  ``pandas``, ``utils`` and ``model`` are stubbed, the loss needs none of them). It rebuilds the
  negative mask by a Python loop on every call.
- ``official, mask once``: the same ``criterion`` with ``get_negative_mask`` memoised, so the
  mask is built once per N. ``official / official-mask-once`` is what mask reuse alone buys.
- ``ours``: :func:`papershelf.hard_negatives.hcl_loss` (up to 2N = 256 anchors one autograd
  node for the whole loss over the full logit matrix, negatives by a cached mask; above it one
  fused matmul + two softmax passes, the negatives excluded as diagonals; hand-written
  backwards). ``official-mask-once / ours`` is what the fused kernel buys beyond mask reuse.

Without a checkout the official rows are skipped with a message (``ours`` still runs). The calls
are interleaved round by round, the order rotating every round (official, mask once, ours; then
mask once, ours, official; ...). With ``--device cpu`` (default) they are timed in CPU time of
this thread (one torch thread), so other load on a shared machine affects them alike; min and
median over rounds. The load average is printed.

With ``--device cuda[:i]`` the inputs (float32, the same values) live on that GPU and the
official module's ``device`` global is set to it, as its ``__main__`` does, so ``criterion``
builds its mask on the CPU and moves it there with ``.to(device)`` on every call (as released);
in the mask-once row the memoised mask is the moved one (a careful user keeps it on the GPU).
Timing is wall clock (``time.perf_counter``) around each sample with ``torch.cuda.synchronize()``
before and after, after three warm-up calls per row and pass; the header names the GPU.

    uv run --no-sync python packages/hard-negatives/benchmarks/bench_hcl.py --official /path/to/HCL
    python packages/hard-negatives/benchmarks/bench_hcl.py --official /path/to/HCL \
        --device cuda --sizes 256 1024 4096
"""

# ruff: noqa: B023  (the timing closures only run inside their own loop iteration)
from __future__ import annotations

import argparse
import functools
import importlib
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from papershelf.hard_negatives import hcl_loss


def load_official(root: Path) -> types.ModuleType:
    """``image/main.py`` of the official repository, imported unmodified.

    Its module-level imports of ``pandas``, ``utils`` (torchvision datasets, OpenCV) and
    ``model`` (torchvision ResNet) are stubbed when they are not installed: ``criterion`` uses
    none of them. ``criterion`` reads the module globals ``temperature`` and ``device``, which the
    official script sets in its ``__main__`` block; we set them the same way.
    """
    image = root / "image"
    if not (image / "main.py").is_file():
        raise FileNotFoundError(f"{image / 'main.py'} not found (a checkout of joshr17/HCL?)")
    for name, attrs in (("pandas", {}), ("utils", {}), ("model", {"Model": None})):
        try:
            importlib.import_module(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.__dict__.update(attrs)
            sys.modules[name] = stub
    sys.path.insert(0, str(image))
    try:
        spec = importlib.util.spec_from_file_location("hcl_official_main", image / "main.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(image))
    module.device = torch.device("cpu")  # main() sets --device
    return module


def _timed(fn: Callable[[], object], calls: int = 1, device: torch.device | None = None) -> float:
    """Seconds per call, the mean of ``calls`` back-to-back calls: CPU time of this thread, or on
    a CUDA ``device`` wall clock between two ``torch.cuda.synchronize()``."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize(device)
        return (time.perf_counter() - t0) / calls
    t0 = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - t0) / calls


def _ms(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--official",
        type=Path,
        default=os.environ.get("HCL_OFFICIAL_DIR") or None,
        help="checkout of joshr17/HCL (default: $HCL_OFFICIAL_DIR)",
    )
    ap.add_argument(
        "--device",
        default="cpu",
        help="cpu (CPU time of this thread, default) or cuda[:i] (wall clock between CUDA syncs)",
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument(
        "--calls",
        type=int,
        default=0,
        help="calls per timing sample (default: 2048 // N, at least 1)",
    )
    args = ap.parse_args()
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        ap.error(f"--device: {e}")
    if device.type not in ("cpu", "cuda"):
        ap.error(f"--device must be cpu or cuda[:i], got {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    cuda = device.type == "cuda"
    torch.set_num_threads(1)
    beta, tau_plus, t = 1.0, 0.1, 0.5  # official defaults
    official = None
    if args.official is None:
        print("official rows skipped: pass --official PATH or set HCL_OFFICIAL_DIR")
    elif not (args.official / "image" / "main.py").is_file():
        print(f"official rows skipped: no image/main.py under {args.official} (joshr17/HCL)")
    else:
        official = load_official(args.official)
        official.temperature = t
        official.device = device  # as the official __main__ sets its global
    load = os.getloadavg()
    host = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 torch thread"
    if cuda:
        where = f"device {device} = {torch.cuda.get_device_name(device)} (host: {host})"
        timing = "wall-clock ms per call between CUDA syncs (3 warm-up calls)"
    else:
        where, timing = f"device cpu, {host}", "CPU ms of this thread per call"
    print(
        f"torch {torch.__version__}, {where}, d={args.dim}, beta={beta}, "
        f"tau_plus={tau_plus}, t={t}, float32; {timing}, min / median of "
        f"{args.rounds} interleaved rounds (order rotating; each sample the mean of "
        f"{args.calls or '2048 // N'} calls); load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}"
    )
    print(
        "| N | pass | official | official, mask once | ours | mask reuse (off / once) | "
        "fused kernel (once / ours) | total (off / ours) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        g = torch.Generator().manual_seed(n)
        a = F.normalize(torch.randn(n, args.dim, generator=g), dim=1)  # same values any device
        b = F.normalize(a + 0.5 * torch.randn(n, args.dim, generator=g), dim=1)
        z1 = a.to(device).requires_grad_()
        z2 = b.to(device).requires_grad_()
        kw = dict(beta=beta, tau_plus=tau_plus, temperature=t, normalize=False)
        calls: dict[str, Callable[[], torch.Tensor]] = {"ours": lambda: hcl_loss(z1, z2, **kw)}
        if official is not None:
            off = official.criterion
            mask_fn = official.get_negative_mask
            # the mask built once, where the loss runs (`.to(device)` inside is then a no-op)
            cached = functools.lru_cache(maxsize=None)(lambda bs, f=mask_fn: f(bs).to(device))

            def run_official(masker, off=off, mask_fn=mask_fn):
                def call() -> torch.Tensor:
                    official.get_negative_mask = masker
                    try:
                        return off(z1, z2, tau_plus, n, beta, "hard")
                    finally:
                        official.get_negative_mask = mask_fn

                return call

            calls = {
                "official": run_official(mask_fn),
                "official, mask once": run_official(cached),
                **calls,
            }
            ref = calls["official"]().item()
            ours_val = calls["ours"]().item()
            assert abs(ref - ours_val) <= (1e-4 if cuda else 1e-5) * abs(ref), (ref, ours_val)
        for pass_name in ("fwd", "fwd+bwd"):

            def wrap(fn: Callable[[], torch.Tensor]) -> Callable[[], object]:
                if pass_name == "fwd":

                    def f() -> object:
                        with torch.no_grad():
                            return fn()

                    return f

                def fb() -> object:
                    z1.grad = z2.grad = None
                    fn().backward()
                    return None

                return fb

            wrapped = {k: wrap(v) for k, v in calls.items()}
            for fn in wrapped.values():  # warm-up
                for _ in range(3 if cuda else 1):
                    fn()
            times: dict[str, list[float]] = {k: [] for k in wrapped}
            names = list(wrapped)
            reps = args.calls or max(1, 2048 // n)
            for r in range(args.rounds):
                # the order rotates every round: each call runs equally often right after each
                # other one (the Python mask loop of the first row flushes caches for its successor)
                for k in names[r % len(names) :] + names[: r % len(names)]:
                    times[k].append(_timed(wrapped[k], reps, device) * 1e3)
            best = {k: min(v) for k, v in times.items()}
            med = {k: statistics.median(v) for k, v in times.items()}
            cell = lambda k: f"{_ms(best[k])} / {_ms(med[k])}" if k in best else "-"  # noqa: E731
            if official is not None:
                ratios = (
                    f"{best['official'] / best['official, mask once']:.2f}x | "
                    f"{best['official, mask once'] / best['ours']:.2f}x "
                    f"(median {med['official, mask once'] / med['ours']:.2f}x) | "
                    f"{best['official'] / best['ours']:.2f}x"
                )
            else:
                ratios = "- | - | -"
            print(
                f"| {n} | {pass_name} | {cell('official')} | {cell('official, mask once')} | "
                f"{cell('ours')} | {ratios} |",
                flush=True,
            )
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
