"""RINCE loss speed against the official SimCLR loss, same inputs, interleaved rounds.

Where the speed comes from is split into rows:

* ``official, mask per call``: the official ``SimCLR.sym_loss`` as released; it calls
  ``compute_neg_mask()``, which rebuilds the negative mask with Python loops on every call.
* ``official, mask once``: the same ``sym_loss`` with ``compute_neg_mask`` returning a mask
  built once (what a careful user of the official code would do): raw ``exp``, mask multiply.
* ``ours, plain autograd``: this package's log-space loss with the exclusion as an index, but
  logits -> logsumexp through ordinary autograd (no fused kernel).
* ``ours (fused)``: the default path, one autograd node for the whole loss whose backward
  reuses the forward's ``exp`` buffer: up to 2N = 192 anchors the whole logit matrix in one
  GEMM (fewest torch calls), above it three of its four blocks (least arithmetic).

The official module is imported **unmodified** from a checkout of chingyaoc/RINCE given by
``--official PATH`` or ``$RINCE_OFFICIAL`` (its training-only imports, pytorch-lightning,
pl_bolts and diffdist, are stubbed). Its ``compute_neg_mask`` builds the mask on the CPU and
ends with ``.cuda(non_blocking=True)``: with ``--device cpu`` that call is made a no-op while
the mask is built; with ``--device cuda[:i]`` it is left as it is (the current CUDA device is set
to ``--device``), so the per-call row includes the official host-to-device copy of the mask and
the mask-once row holds its mask on the device. Without the checkout the official rows use a
re-implementation in this script (same CPU build, then ``.to(device)``) and say so.

The official mask loop is O(N^2) in Python (the construction took 3.6 s at N = 4096 on a
2-core Xeon): the ``mask per call`` row is timed up to ``--per-call-max`` pairs (2048) and shows
``-`` above it.

Timing, ``--device cpu`` (default): process CPU time, one torch thread, implementations
interleaved round by round (order rotating), the minimum and median over rounds; the machine's
load average is printed. ``--device cuda``: the same inputs (float32) and interleaving on the
GPU, wall clock (``time.perf_counter``) around each sample with ``torch.cuda.synchronize()``
before and after, three warm-up calls per implementation and pass first; the header names the
GPU.

    RINCE_OFFICIAL=/path/to/RINCE uv run --no-sync python \
        packages/robust-infonce/benchmarks/bench_rince.py --rounds 15
    RINCE_OFFICIAL=/path/to/RINCE python packages/robust-infonce/benchmarks/bench_rince.py \
        --device cuda --sizes 256 1024 4096
"""

# ruff: noqa: B023  (the timing closures only run inside their own loop iteration)
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from papershelf.robust_infonce import info_nce_loss, rince_loss
from papershelf.robust_infonce._loss import _rince_from_lse


class _Stub(types.ModuleType):
    """A module whose every attribute is a fresh empty class (for training-only imports)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


def load_official(checkout: str) -> Any:
    """The official ``SimCLR`` class from ``ImageNet/simclr/simclr_module.py``, unmodified."""
    folder = os.path.join(checkout, "ImageNet", "simclr")
    if not os.path.isfile(os.path.join(folder, "simclr_module.py")):
        raise SystemExit(f"no ImageNet/simclr/simclr_module.py under {checkout}")
    for name in (
        "pytorch_lightning",
        "pytorch_lightning.callbacks",
        "pytorch_lightning.plugins",
        "pytorch_lightning.plugins.environments",
        "pl_bolts",
        "pl_bolts.models",
        "pl_bolts.models.self_supervised",
        "pl_bolts.models.self_supervised.resnets",
        "pl_bolts.optimizers",
        "pl_bolts.optimizers.lars",
        "pl_bolts.optimizers.lr_scheduler",
        "pl_bolts.transforms",
        "pl_bolts.transforms.dataset_normalizations",
        "diffdist",
        "diffdist.functional",
    ):
        sys.modules.setdefault(name, _Stub(name))
    saved = sys.modules.pop("distributed", None)  # the checkout's own distributed.py, not dask's
    sys.path.insert(0, folder)
    try:
        module = importlib.import_module("simclr_module")
    finally:
        sys.path.remove(folder)
        sys.modules.pop("distributed", None)
        if saved is not None:
            sys.modules["distributed"] = saved
    return module.SimCLR


@contextlib.contextmanager
def _cuda_is_identity(device: torch.device) -> Iterator[None]:
    """``Tensor.cuda`` a no-op on a CPU run; on a CUDA run the official call is left as it is."""
    if device.type != "cpu":
        yield
        return
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = cuda  # type: ignore[method-assign]


class _Host:
    """The attributes ``sym_loss``/``compute_neg_mask`` read from the Lightning module."""

    def __init__(self, simclr: Any, n: int, cache: bool, device: torch.device) -> None:
        self.num_nodes, self.gpus, self.num_pos, self.batch_size = 1, 1, 2, n
        self._simclr, self._mask, self._device = simclr, None, device
        if cache:
            self._mask = self._build()

    def _build(self) -> torch.Tensor:
        os.environ.setdefault("LOCAL_RANK", "0")
        with _cuda_is_identity(self._device):
            mask: torch.Tensor = self._simclr.compute_neg_mask(self)
        return mask

    def compute_neg_mask(self) -> torch.Tensor:
        return self._build() if self._mask is None else self._mask


def _reimplemented_mask(n: int) -> torch.Tensor:
    """The official mask construction, re-implemented (used without a checkout)."""
    total = 2 * n
    mask = torch.zeros(total, total)
    all_idx = np.arange(total)
    for anchor in range(2):
        for img in range(n):
            neg = torch.tensor(np.delete(all_idx, img + n * np.arange(2))).long()
            mask[anchor * n + img, neg] = 1
    return mask


def _reimplemented_sym_loss(
    host: Any, z1: torch.Tensor, z2: torch.Tensor, lam: float, q: float, t: float
) -> torch.Tensor:
    z = torch.cat([z1, z2])
    sim = torch.exp(z @ z.T / t)
    neg = torch.sum(sim * host.compute_neg_mask(), 1)
    pos = torch.exp((z1 * z2).sum(-1) / t)
    pos = torch.cat([pos, pos])
    return (-(pos**q) / q).mean() + ((lam * (pos + neg)) ** q / q).mean()


class _ReHost:
    def __init__(self, n: int, cache: bool, device: torch.device) -> None:
        self.n, self.device = n, device
        self._mask = self._build() if cache else None

    def _build(self) -> torch.Tensor:  # built on the CPU, then moved, as the official code does
        return _reimplemented_mask(self.n).to(self.device)

    def compute_neg_mask(self) -> torch.Tensor:
        return self._build() if self._mask is None else self._mask


def plain_autograd_rince(z1: torch.Tensor, z2: torch.Tensor, q: float, lam: float, t: float):
    """Our log-space loss with an index exclusion, through ordinary autograd (no fused kernel)."""
    n = z1.shape[0]
    z = torch.cat([z1, z2])
    logits = z @ z.T / t
    rows = torch.arange(2 * n, device=z.device)
    minus_inf = torch.tensor(-torch.inf, dtype=z.dtype, device=z.device)
    logits = logits.index_put((rows, rows), minus_inf)  # self excluded
    pos = (z1 * z2).sum(1) / t
    pos = torch.cat([pos, pos])
    return _rince_from_lse(torch.logsumexp(logits, 1), pos, q, lam).mean()


def _interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, calls: int = 1, device: str = "cpu"
) -> dict[str, list[float]]:
    """Ms per call, round by round, each sample the mean of ``calls`` back-to-back calls; the
    order rotates every round, so that each implementation runs equally often right after each
    other one (caches warmed or flushed by its predecessor, e.g. the Python mask loop, are not
    always the same one's). On the CPU process time after one warm-up call each; on CUDA wall
    clock between two ``torch.cuda.synchronize()`` after three warm-up calls each."""
    cuda = torch.device(device).type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    for fn in fns.values():  # warm-up
        for _ in range(3 if cuda else 1):
            fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = fns[name]
            sync()
            t0 = clock()
            for _ in range(calls):
                fn()
            sync()
            out[name].append((clock() - t0) * 1e3 / calls)
    return out


def _ms(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument(
        "--calls",
        type=int,
        default=0,
        help="calls per timing sample (default: 2048 // N, at least 1)",
    )
    ap.add_argument(
        "--official",
        default=os.environ.get("RINCE_OFFICIAL"),
        help="checkout of chingyaoc/RINCE (default: $RINCE_OFFICIAL)",
    )
    ap.add_argument(
        "--device",
        default="cpu",
        help="cpu (process time, default) or cuda[:i] (wall clock between CUDA syncs)",
    )
    ap.add_argument(
        "--per-call-max",
        type=int,
        default=2048,
        help="largest N whose official mask-per-call row is timed (its mask loop is O(N^2))",
    )
    args = ap.parse_args()
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        ap.error(f"--device: {e}")
    if device.type not in ("cpu", "cuda"):
        ap.error(f"--device must be cpu or cuda[:i], got {args.device!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            ap.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
        if device.index is not None:
            torch.cuda.set_device(device)  # the official `.cuda()` goes to the current device
    torch.set_num_threads(1)
    q, lam, t = 0.5, 0.01, 0.5
    official_file = os.path.join(args.official or "", "ImageNet", "simclr", "simclr_module.py")
    if args.official and not os.path.isfile(official_file):
        print(f"no {official_file}: the official rows use this script's re-implementation")
    elif not args.official:
        print(
            "RINCE_OFFICIAL is not set (nor --official): the official rows use this script's "
            "re-implementation"
        )
    if args.official and os.path.isfile(official_file):
        simclr = load_official(args.official)
        source = f"official SimCLR.sym_loss imported unmodified from {args.official}"
        host = lambda n, cache: _Host(simclr, n, cache, device)  # noqa: E731
        sym_loss = simclr.sym_loss
    else:
        source = "official formulation re-implemented in this script (no checkout given)"
        host = lambda n, cache: _ReHost(n, cache, device)  # noqa: E731
        sym_loss = _reimplemented_sym_loss
    load0 = os.getloadavg()
    cpu = f"{platform.processor() or platform.machine()}, 1 thread"
    if device.type == "cuda":
        where = f"device {device} = {torch.cuda.get_device_name(device)} (host: {cpu})"
        timing = "wall-clock ms per call between CUDA syncs, 3 warm-up calls"
    else:
        where, timing = f"device cpu, {cpu}", "process CPU ms per call"
    print(
        f"torch {torch.__version__}, {where}, float32, d={args.dim}, q={q}, lam={lam}, t={t}; "
        f"{source}; {timing} over {args.rounds} interleaved rounds (order rotating; each sample "
        f"the mean of {args.calls or '2048 // N'} calls), min / median; load average at start "
        f"{load0[0]:.1f}"
    )
    print(
        "| N (pairs) | pass | official, mask per call | official, mask once | "
        "ours, plain autograd | ours (fused) | fused vs mask once | InfoNCE (ours) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        g = torch.Generator().manual_seed(n)
        a = F.normalize(torch.randn(n, args.dim, generator=g), dim=1)  # same values any device
        b = F.normalize(a + 0.5 * torch.randn(n, args.dim, generator=g), dim=1)
        z1 = a.to(device).requires_grad_()
        z2 = b.to(device).requires_grad_()
        per_call, once = host(n, False), host(n, True)
        impls: dict[str, Callable[[], torch.Tensor]] = {
            "per_call": lambda: sym_loss(per_call, z1, z2, lam, q, t),
            "once": lambda: sym_loss(once, z1, z2, lam, q, t),
            "plain": lambda: plain_autograd_rince(z1, z2, q, lam, t),
            "fused": lambda: rince_loss(z1, z2, q=q, lam=lam, temperature=t, normalize=False),
            "nce": lambda: info_nce_loss(z1, z2, temperature=t, normalize=False),
        }
        if n > args.per_call_max:
            del impls["per_call"]
            print(f"N = {n} > --per-call-max {args.per_call_max}: mask-per-call row not timed")
        ref = impls["once"]().item()
        for name in ("per_call", "plain", "fused"):
            if name not in impls:
                continue
            val = impls[name]().item()
            assert abs(val - ref) <= 1e-4 * abs(ref), (name, val, ref)

        def fwd(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
            def run() -> None:
                with torch.no_grad():
                    fn()

            return run

        def fwd_bwd(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
            def run() -> None:
                z1.grad = z2.grad = None
                fn().backward()

            return run

        for label, wrap in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
            calls = args.calls or max(1, 2048 // n)
            ms = _interleaved(
                {k: wrap(f) for k, f in impls.items()}, args.rounds, calls, str(device)
            )
            cell = {k: f"{_ms(min(v))} / {_ms(statistics.median(v))}" for k, v in ms.items()}
            cell.setdefault("per_call", "-")
            ratio = min(ms["once"]) / min(ms["fused"])
            ratio_med = statistics.median(ms["once"]) / statistics.median(ms["fused"])
            print(
                f"| {n} | {label} | {cell['per_call']} | {cell['once']} | {cell['plain']} | "
                f"{cell['fused']} | {ratio:.2f}x / {ratio_med:.2f}x | {cell['nce']} |",
                flush=True,
            )
    load1 = os.getloadavg()
    print(
        f"load average at end {load1[0]:.1f} (1 min), {load1[1]:.1f} (5 min); {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
