"""Fairy vs frame-wise, Text2Video-Zero and full cross-frame attention, on the same inputs.

    uv run --no-sync python packages/fairy/benchmarks/bench_fairy.py            # CPU, 1 thread
    uv run --no-sync python packages/fairy/benchmarks/bench_fairy.py --device cuda --threads 0

Part 1 edits synthetic videos of N frames with the tiny random InstructPix2Pix
(``testing.tiny_instruct_pix2pix``) four ways and reports time per frame, the largest UNet
batch, the anchor cache and (on CUDA) peak memory. Part 2 times one self-attention call per
frame at Stable Diffusion 1.5 layer shapes (512x384 input) for N up to 120, the paper's
setting, and prints the ratio full cross-frame / Fairy there. The Text2Video-Zero baseline is
diffusers' own ``CrossFrameAttnProcessor2_0`` (all frames in one batch, keys of frame 0).
"""

from __future__ import annotations

import argparse
import time

import torch

from papershelf.core import describe_hardware
from papershelf.fairy import FairyVideoEditor
from papershelf.fairy.costs import (
    METHODS,
    peak_rss_increase,
    sd15_attn1_shapes,
    time_attention_per_frame,
)
from papershelf.fairy.reproduce import time_t2v_zero
from papershelf.fairy.testing import synthetic_video, tiny_instruct_pix2pix


def _peak(device: str, fn) -> float:
    """Peak memory (MB) of fn: CUDA allocator peak, or resident memory added (forked child)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        fn()
        return torch.cuda.max_memory_allocated() / 1e6
    return peak_rss_increase(fn) / 1e6


def bench_pipeline(frames: list[int], size: int, steps: int, chunk: int, device: str) -> None:
    pipe = tiny_instruct_pix2pix(0).to(device)
    editor = FairyVideoEditor(pipe)
    modes = {"fairy": "cache", "frame-wise": "frame-wise", "full": "full"}
    # CPU: process time (robust on a shared machine); CUDA: wall time
    clock = time.perf_counter if device == "cuda" else time.process_time
    print(f"\n## tiny InstructPix2Pix, {size}x{size}, {steps} steps, chunk {chunk}, {device}\n")
    print(
        "| N | method | ms / frame (CPU time on CPU) | max UNet batch | anchor cache MB | peak MB (CPU: RSS added) |"
    )
    print("|---|---|---|---|---|---|")
    editor.edit_video(
        synthetic_video(4, size, size)[0], "warm up", num_inference_steps=1, generator=0
    )
    for n in frames:
        video = synthetic_video(n, size, size, seed=0)[0].to(device)
        for m in METHODS:
            if m == "t2v-zero":

                def run(video=video):
                    return time_t2v_zero(pipe, video, steps)

                t, batch, cache = run(), 3 * n, 0.0
            else:

                def run(video=video, m=m):
                    return editor.edit_video(
                        video,
                        "make it snowy",
                        num_inference_steps=steps,
                        generator=0,
                        chunk_size=chunk,
                        anchor_mode=modes[m],
                        output_type="latent",
                    )

                t0 = clock()
                r = run()
                t, batch, cache = clock() - t0, r.max_unet_batch, r.cache_nbytes / 1e6
            peak = _peak(device, run)
            print(f"| {n} | {m} | {1e3 * t / n:.1f} | {batch} | {cache:.2f} | {peak:.0f} |")


def bench_attention(frames: list[int], levels: list[int], device: str, repeats: int) -> None:
    shapes = sorted(set(sd15_attn1_shapes(384, 512)), reverse=True)
    print(f"\n## SD-1.5 attn1 shapes (512x384 input, 8 heads), one call, {device}\n")
    print(
        "| tokens x channels | N | "
        + " | ".join(f"{m} ms/frame" for m in METHODS)
        + " | full / Fairy |"
    )
    print("|---|---|" + "---|" * (len(METHODS) + 1))
    for s, c in (shapes[i] for i in levels):
        for n in frames:
            t = {
                m: time_attention_per_frame(m, n, s, c, chunk=1, repeats=repeats, device=device)
                for m in METHODS
            }
            print(
                f"| {s} x {c} | {n} | "
                + " | ".join(f"{1e3 * t[m]:.2f}" for m in METHODS)
                + f" | {t['full'] / t['fairy']:.1f} |"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: leave as is)")
    p.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16, 32])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--attn-frames", type=int, nargs="+", default=[8, 32, 120])
    p.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=[2, 3],
        help="SD-1.5 attn1 levels: 0=3072x320, 1=768x640, 2=192x1280, 3=48x1280",
    )
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"hardware: {describe_hardware()}; torch threads {torch.get_num_threads()}")
    bench_pipeline(args.frames, args.size, args.steps, args.chunk, args.device)
    bench_attention(args.attn_frames, args.levels, args.device, args.repeats)


if __name__ == "__main__":
    main()
