"""Transformer training throughput (tokens / s): ours vs diffusers' WanTransformer3DModel at
matched shapes, and SDPA vs a naive softmax(QK^T)V attention inside our model.

    uv run --no-sync python packages/moviegen/benchmarks/bench_transformer.py [--device cuda]

Wan 2.1 is the closest open peer (cross-attention to text, shared time MLP + per-block
table, 1x2x2 patches); it differs by RoPE, LayerNorm + GELU FFN. Matched: layers, width,
heads, tokens, text length, dtype; the FFN either at the same width (Wan then has 2/3 of our
FFN weights) or at the same parameter count (Wan's GELU FFN 1.5x wider). Models are timed in
interleaved rounds (process CPU time on CPU); the ratio is taken per round. On CPU the "tiny" and "small" configs run;
with --device cuda the 1B-class config (24 L, d 1536) runs too, in bf16.

    uv run --no-sync python packages/moviegen/benchmarks/bench_transformer.py --cpu-1b

measures the 1B preset's full training step on CPU alone (float32, gradient checkpointing,
SGD without momentum, or ``--optim adamw`` whose two float32 moments add 8 bytes per
parameter), with the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from papershelf.moviegen import MovieGenTransformer, TextContext, preset
from papershelf.moviegen import transformer as tmod


def naive_sdpa(q, k, v, attn_mask=None):
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf"))
    return s.softmax(-1) @ v


def _time(step, iters: int, device: str) -> float:
    """Seconds per call: process CPU time on the CPU (robust on a shared box), wall time on GPU."""
    clock = time.perf_counter if device == "cuda" else time.process_time
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = clock()
    for _ in range(iters):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (clock() - t0) / iters


def _wan(cfg, ffn_dim: int, qk_norm: str | None, device: str, dtype: torch.dtype):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=cfg.num_heads,
        attention_head_dim=cfg.head_dim,
        in_channels=16,
        out_channels=16,
        text_dim=64,
        freq_dim=256,
        ffn_dim=ffn_dim,
        num_layers=cfg.num_layers,
        qk_norm=qk_norm,
        rope_max_seq_len=64,
    ).to(device, dtype)


def bench(
    name: str,
    grid: tuple[int, int, int],
    batch: int,
    iters: int,
    device: str,
    dtype: torch.dtype,
    rounds: int = 7,
) -> None:
    """Interleaved rounds: each round times every model once (``iters`` steps each).

    Wan rows: matched width (``ffn_dim`` equal to ours, Wan's default qk RMSNorm, and
    without it as ours has none), and matched FFN parameters (a GELU FFN of width 1.5 f has
    the 3 d f weights of our SwiGLU of width f).
    """
    cfg = preset(
        name, in_channels=16, max_pos=(grid[0], grid[1] // 2, grid[2] // 2), text_dims={"t5": 64}
    )
    T, H, W = grid
    tokens = batch * T * (H // 2) * (W // 2)
    x = torch.randn(batch, 16, T, H, W, device=device, dtype=dtype)
    t = torch.rand(batch, device=device)
    txt = torch.randn(batch, 16, 64, device=device, dtype=dtype)
    text = TextContext({"t5": txt}, {"t5": torch.ones(batch, 16, dtype=torch.bool, device=device)})

    torch.manual_seed(0)
    ours = MovieGenTransformer(cfg).to(device, dtype)
    f_params = round(1.5 * cfg.ffn_dim)
    wans = {
        f"Wan, width-matched FFN {cfg.ffn_dim}, qk-norm": _wan(
            cfg, cfg.ffn_dim, "rms_norm_across_heads", device, dtype
        ),
        f"Wan, width-matched FFN {cfg.ffn_dim}": _wan(cfg, cfg.ffn_dim, None, device, dtype),
        f"Wan, param-matched FFN {f_params}": _wan(cfg, f_params, None, device, dtype),
    }

    def step_ours() -> None:
        ours(x, t, text).float().square().mean().backward()

    def step_naive() -> None:
        orig = tmod.F.scaled_dot_product_attention
        tmod.F.scaled_dot_product_attention = naive_sdpa  # type: ignore[assignment]
        try:
            step_ours()
        finally:
            tmod.F.scaled_dot_product_attention = orig  # type: ignore[assignment]

    def step_of(wan):
        def step() -> None:
            out = wan(x, (t * 1000), txt, return_dict=False)[0]
            out.float().square().mean().backward()

        return step

    steps = {"ours (SDPA)": step_ours, "ours (naive attention)": step_naive}
    steps.update({k: step_of(w) for k, w in wans.items()})
    for fn in steps.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for k, fn in steps.items():
            times[k].append(_time(fn, iters, device))
    n_ours = sum(p.numel() for p in ours.parameters())
    print(
        f"\n{name}: {cfg.num_layers} L, d {cfg.dim}, FFN {cfg.ffn_dim}, {cfg.num_heads} heads, "
        f"{tokens} tokens / step, {dtype}, {device}; {rounds} interleaved rounds of {iters} "
        f"steps; params ours {n_ours / 1e6:.3f}M"
    )
    mine = times["ours (SDPA)"]
    for k, v in times.items():
        n = n_ours if k.startswith("ours") else sum(p.numel() for p in wans[k].parameters())
        ratios = sorted(a / b for a, b in zip(mine, v))
        med = statistics.median(v)
        print(
            f"  {k:40s} {n / 1e6:7.3f}M params  median {med * 1e3:8.1f} ms/step "
            f"(min {min(v) * 1e3:8.1f})  {tokens / med:8.0f} tok/s  ours/this per round: "
            f"median {statistics.median(ratios):.3f}x [{ratios[0]:.3f}, {ratios[-1]:.3f}]"
        )


def bench_1b_cpu(grid: tuple[int, int, int], batch: int, iters: int, optim: str) -> None:
    """Full training step (forward, backward, optimizer update) of the 1B preset on CPU."""
    T, H, W = grid
    cfg = preset(
        "1b",
        in_channels=16,
        max_pos=(T, H // 2, W // 2),
        text_dims={"t5": 64},
        gradient_checkpointing=True,
    )
    tokens = batch * T * (H // 2) * (W // 2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 16, T, H, W, generator=g)
    t = torch.rand(batch, generator=g)
    text = TextContext(
        {"t5": torch.randn(batch, 16, 64, generator=g)},
        {"t5": torch.ones(batch, 16, dtype=torch.bool)},
    )
    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = MovieGenTransformer(cfg)
    build_s = time.perf_counter() - t0
    n = sum(p.numel() for p in model.parameters())
    if optim == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, foreach=False)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=False)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = (model(x, t, text) - x).square().mean()
        loss.backward()
        opt.step()
        return float(loss.detach())

    times = []
    for i in range(iters + 1):
        s0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - s0)
        print(f"  step {i}: {times[-1]:.1f} s, loss {loss:.4f}", flush=True)
    per = sum(times[1:]) / iters
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"\n1b on CPU ({torch.get_num_threads()} thread(s), float32, gradient checkpointing, "
        f"{optim}): {cfg.num_layers} L, d {cfg.dim}, FFN {cfg.ffn_dim}, {n / 1e9:.3f}B params, "
        f"{tokens} tokens / step; build {build_s:.1f} s; {per:.1f} s / train step "
        f"(mean of {iters} after 1 warm-up), {tokens / per:.1f} tokens/s; "
        f"peak RSS {peak_gib:.2f} GiB (weights + grads = {8 * n / 2**30:.2f} GiB; AdamW "
        f"moments {8 * n / 2**30:.2f} GiB)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cpu-1b", action="store_true", help="only the 1B preset on CPU")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--optim", choices=["sgd", "adamw"], default="sgd")
    args = ap.parse_args()
    if args.cpu_1b:
        torch.set_num_threads(args.threads)
        bench_1b_cpu((4, 16, 16), 1, max(1, min(args.iters, 2)), args.optim)
    elif args.device == "cpu":
        torch.set_num_threads(1)
        bench("tiny", (4, 8, 8), 16, args.iters, "cpu", torch.float32, args.rounds)
        bench("small", (4, 16, 16), 8, args.iters, "cpu", torch.float32, args.rounds)
    else:
        bench("small", (8, 32, 32), 8, args.iters, args.device, torch.bfloat16, args.rounds)
        bench("1b", (8, 32, 32), 4, args.iters, args.device, torch.bfloat16, args.rounds)


if __name__ == "__main__":
    main()
