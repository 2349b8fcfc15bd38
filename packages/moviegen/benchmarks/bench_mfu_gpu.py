"""Model FLOPs utilisation of Movie Gen transformer training steps on GPUs.

One GPU (bf16 autocast, fused AdamW)::

    uv run --no-sync python packages/moviegen/benchmarks/bench_mfu_gpu.py --preset 1b

A node, on one mesh (FSDP2 with the bf16 / fp32-reduce policy, TP, CP)::

    torchrun --nproc-per-node 8 packages/moviegen/benchmarks/bench_mfu_gpu.py \\
        --preset 5b --dp 4 --tp 2 --cp 1 --ac selective

FLOPs per step come from :func:`papershelf.moviegen.train.training_flops` (model FLOPs:
every matrix product of forward + backward, attention included, activation recomputation
not counted; a test checks it against ``torch.utils.flop_counter.FlopCounterMode``). The
earlier estimate, 6 N_matmul per video token, counted the text projections, the
cross-attention keys / values and the adaLN head once per *video* token and overstated
the FLOPs (12% at this script's default grid). MFU = FLOPs / step time / GPUs / peak, with
the dense bf16 peak per GPU given by --peak-tflops (H100 SXM: 989).

``--device cpu`` runs the same code path on the CPU (gloo under torchrun) with a small
preset: a smoke test of the plumbing, not a performance figure.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from papershelf.moviegen import MovieGenTransformer, TextContext, preset
from papershelf.moviegen.train import (
    bf16_policy,
    data_parallel_rank,
    make_mesh,
    parallelize,
    training_flops,
)

#: Community text lengths of the paper's three encoders (UL2, long-prompt MetaCLIP, ByT5).
TEXT_LENGTHS = {"ul2": 512, "metaclip": 256, "byt5": 100}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="1b")
    ap.add_argument("--grid", type=int, nargs=3, default=(16, 32, 32), help="latent T H W")
    ap.add_argument("--batch", type=int, default=2, help="per data-parallel rank")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--ac", choices=["none", "full", "selective"], default="none")
    ap.add_argument("--dp", type=int, default=None)
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--cp", type=int, default=1)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: skipped (use --device cpu for a smoke run)")
        return
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
        if args.device == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dev = (
        torch.device(args.device, torch.cuda.current_device())
        if args.device == "cuda"
        else torch.device("cpu")
    )
    T, H, W = args.grid
    cfg = preset(args.preset, max_pos=(T, H // 2, W // 2))
    if set(cfg.text_dims) != set(TEXT_LENGTHS):
        lengths = dict.fromkeys(cfg.text_dims, 16)
    else:
        lengths = dict(TEXT_LENGTHS)
    torch.manual_seed(0)
    model = MovieGenTransformer(cfg).to(dev)
    mesh = None
    if distributed:
        mesh = make_mesh(args.dp, tp=args.tp, cp=args.cp, device_type=dev.type)
        parallelize(
            model,
            mesh,
            mp_policy=bf16_policy() if dev.type == "cuda" else None,
            activation_checkpointing=None if args.ac == "none" else args.ac,
        )
    elif args.ac != "none":
        from papershelf.moviegen.train import apply_activation_checkpointing

        apply_activation_checkpointing(model, args.ac)
    dp_rank, dp = data_parallel_rank(mesh)
    fused = dev.type == "cuda" and not distributed
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=fused or None)
    B = args.batch
    g = torch.Generator().manual_seed(dp_rank)
    C = cfg.in_channels
    x = torch.randn(B, C, T, H, W, generator=g).to(dev)
    t = torch.rand(B, generator=g).to(dev)
    text = TextContext(
        {k: torch.randn(B, n, cfg.text_dims[k], generator=g).to(dev) for k, n in lengths.items()},
        {k: torch.ones(B, n, dtype=torch.bool, device=dev) for k, n in lengths.items()},
    )
    autocast = dev.type == "cuda" and not distributed  # FSDP's policy casts when sharded

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model(x, t, text).float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    sync()
    dt = (time.perf_counter() - t0) / args.iters
    s = (T // cfg.patch[0]) * (H // cfg.patch[1]) * (W // cfg.patch[2])
    flops = training_flops(cfg, B, (T, H, W), lengths) * dp  # all data shards
    n_matmul = sum(p.numel() for p in model.parameters() if p.ndim == 2)
    lt = sum(lengths.values())
    L, d = cfg.num_layers, cfg.dim
    old = (6 * n_matmul * B * s + 12 * L * d * s * s * B + 12 * L * d * s * lt * B) * dp
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
    rank0 = not distributed or torch.distributed.get_rank() == 0
    if rank0:
        n = sum(p.numel() for p in model.parameters())
        name = torch.cuda.get_device_name() if dev.type == "cuda" else "CPU"
        print(
            f"{args.preset} on {world} x {name} (dp {dp}, tp {args.tp}, cp {args.cp}, "
            f"AC {args.ac}): {n / 1e9:.2f}B params, {B * dp} x {s} tokens + {lt} text tokens, "
            f"{dt * 1e3:.1f} ms / step, {B * dp * s / dt:.0f} video tokens/s, "
            f"{flops / dt / 1e12 / world:.1f} TFLOP/s per device, "
            f"MFU {flops / dt / 1e12 / world / args.peak_tflops:.1%} of {args.peak_tflops} "
            f"TFLOP/s; old 6N estimate {old / flops:.3f}x the exact count; "
            f"peak memory {peak_mem:.1f} GiB"
        )
    if distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
