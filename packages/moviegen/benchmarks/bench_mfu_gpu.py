"""Model FLOPs utilisation of one bf16 training step on a GPU (skips without CUDA).

    uv run --no-sync python packages/moviegen/benchmarks/bench_mfu_gpu.py [--preset 1b]

FLOPs per step = 6 N_matmul * tokens (forward + backward of every Linear) + 12 L d s^2 B
(self-attention scores and values, forward + backward; s = tokens per sample) + the
cross-attention term 12 L d s l B (l = text length). MFU = achieved / peak, with the peak
dense bf16 rate given by --peak-tflops (H100 SXM: 989).
"""

from __future__ import annotations

import argparse
import time

import torch

from papershelf.moviegen import MovieGenTransformer, TextContext, preset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="1b")
    ap.add_argument("--grid", type=int, nargs=3, default=(16, 32, 32), help="latent T H W")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--text-len", type=int, default=128)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--checkpointing", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return
    T, H, W = args.grid
    cfg = preset(
        args.preset,
        max_pos=(T, H // 2, W // 2),
        text_dims={"t5": 4096},
        gradient_checkpointing=args.checkpointing,
    )
    model = MovieGenTransformer(cfg).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    B, Lt = args.batch, args.text_len
    x = torch.randn(B, 16, T, H, W, device="cuda")
    t = torch.rand(B, device="cuda")
    text = TextContext(
        {"t5": torch.randn(B, Lt, 4096, device="cuda")},
        {"t5": torch.ones(B, Lt, dtype=torch.bool, device="cuda")},
    )

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x, t, text).float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / args.iters
    s = T * (H // 2) * (W // 2)
    d, L = cfg.dim, cfg.num_layers
    n_matmul = sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2)
    flops = 6 * n_matmul * B * s + 12 * L * d * s * s * B + 12 * L * d * s * Lt * B
    print(
        f"{args.preset}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f}B params, "
        f"{B} x {s} tokens, {dt * 1e3:.1f} ms / step, "
        f"{flops / dt / 1e12:.1f} TFLOP/s, MFU {flops / dt / 1e12 / args.peak_tflops:.1%} "
        f"of {args.peak_tflops} TFLOP/s, peak memory "
        f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
    )


if __name__ == "__main__":
    main()
