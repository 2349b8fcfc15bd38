"""Fairy vs frame-wise, Text2Video-Zero and full cross-frame attention, on the same inputs.

    uv run --no-sync python packages/fairy/benchmarks/bench_fairy.py            # CPU, 1 thread
    uv run --no-sync python packages/fairy/benchmarks/bench_fairy.py --device cuda --threads 0

Part 1 edits synthetic videos of N frames with the tiny random InstructPix2Pix
(``testing.tiny_instruct_pix2pix``) four ways and reports time per frame (one clock for all:
CPU process time on the CPU, wall time after synchronisation on CUDA), the largest UNet batch,
the anchor cache and peak memory. Methods run interleaved. The Text2Video-Zero baseline is
diffusers' own ``CrossFrameAttnProcessor2_0`` in its chunked long-video mode (frame 0
prepended to every chunk). Part 2 times one self-attention call per frame at Stable Diffusion
1.5 layer shapes (512x384 input) for N up to 120, the paper's setting. Part 3 prints FLOPs per
frame and cache sizes of the real SD-1.5 InstructPix2Pix UNet at 512x288, 512x384 and 1280x720,
counted on the meta device (no weights; ``--count-fairy`` also counts Fairy's replay instead of
its closed form, slow).

GPU (not measured in this repository's CI; what to run on a CUDA machine)::

    uv run --no-sync python packages/fairy/benchmarks/bench_fairy.py --device cuda --threads 0 \
        --gpu-sd15 --frames 120

(``--gpu-sd15 --device cpu --sd15-size 64x64 --sd15-steps 1 --frames 2`` runs the same code on
the CPU in float32 as a smoke test; ``tools/gpu_checks.py`` runs both.)
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from papershelf.core import describe_hardware
from papershelf.fairy import FairyVideoEditor
from papershelf.fairy.costs import (
    METHODS,
    flop_table,
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
    clock = time.perf_counter if device == "cuda" else time.process_time

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    print(f"\n## tiny InstructPix2Pix, {size}x{size}, {steps} steps, chunk {chunk}, {device}\n")
    print(
        "| N | method | ms / frame | max UNet batch | anchor cache MB | peak MB (CPU: RSS added) |"
    )
    print("|---|---|---|---|---|---|")
    editor.edit_video(
        synthetic_video(4, size, size)[0], "warm up", num_inference_steps=1, generator=0
    )
    for n in frames:
        video = synthetic_video(n, size, size, seed=0)[0].to(device)
        for m in METHODS:  # interleaved: all methods at one N before the next N
            if m == "t2v-zero":

                def run(video=video):
                    return time_t2v_zero(pipe, video, steps, chunk_size=chunk)

                sync()
                t0 = clock()
                _, batch = run()
                sync()
                t, cache = clock() - t0, 0.0
            else:

                def run(video=video, m=m):
                    return editor.edit_video(
                        video,
                        "make it snowy",
                        height=size,
                        width=size,
                        num_inference_steps=steps,
                        generator=0,
                        chunk_size=chunk,
                        anchor_mode=modes[m],
                        output_type="latent",
                    )

                sync()
                t0 = clock()
                r = run()
                sync()
                t, batch, cache = clock() - t0, r.max_unet_batch, r.cache_nbytes / 1e6
            peak = _peak(device, run)
            print(f"| {n} | {m} | {1e3 * t / n:.1f} | {batch} | {cache:.2f} | {peak:.0f} |")


def bench_flops(count_fairy: bool) -> None:
    print("\n## SD-1.5 InstructPix2Pix UNet on the meta device: per frame, branch and step\n")
    print(
        "| size | largest attn1 tokens | frame-wise TFLOP | Fairy TFLOP | Fairy / frame-wise "
        "| T2V-Zero chunk 8 | full (N=120) | fp16 anchor cache GB (10 steps) | recompute GB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in flop_table(count_fairy=count_fairy):
        print(
            f"| {r['width']}x{r['height']} | {r['max_attn1_tokens']} | "
            f"{r['tflops_frame_wise']:.3f} | {r['tflops_fairy']:.3f} | "
            f"{r['tflops_fairy'] / r['tflops_frame_wise']:.2f} | "
            f"{r['tflops_t2v_zero_chunked']:.3f} | {r['tflops_full']:.2f} | "
            f"{r['cache_gb']:.2f} | {r['cache_step_gb']:.2f} |"
        )


def bench_gpu_sd15(
    frames: int, steps: int, chunk: int, device: str = "cuda", height: int = 384, width: int = 512
) -> None:
    """Random-weight SD-1.5 InstructPix2Pix, 512x384: seconds and peak memory.

    fp16 on CUDA (the GPU figure); float32 on the CPU, only as a smoke run at a tiny size.
    """
    from diffusers import EulerAncestralDiscreteScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    from papershelf.fairy.costs import sd15_ip2p_unet
    from papershelf.fairy.pipeline import FairyPipeline
    from papershelf.fairy.testing import tiny_clip_tokenizer
    from papershelf.fairy.toy import PixelPoolVAE

    cuda = device.startswith("cuda")
    dtype = torch.float16 if cuda else torch.float32
    unet = sd15_ip2p_unet(device).to(dtype)  # random init on the device itself
    text = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
            vocab_size=1000,
        )
    )
    pipe = FairyPipeline(
        vae=PixelPoolVAE(8),
        text_encoder=text,
        tokenizer=tiny_clip_tokenizer(77),
        unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(steps_offset=1),
    ).to(device, dtype)
    video = synthetic_video(frames, height, width)[0]
    kw = dict(height=height, width=width, generator=0, output_type="latent")
    pipe(video[:2], "warm up", num_inference_steps=1, **kw)  # kernels chosen, caches filled
    for mode in ("cache", "frame-wise"):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        pipe(
            video,
            "edit",
            num_inference_steps=steps,
            chunk_size=chunk,
            anchor_mode=mode,
            **kw,
        )
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")
        name = torch.cuda.get_device_name() if cuda else "cpu (smoke run)"
        print(
            f"| SD-1.5 IP2P arch, random {str(dtype)[6:]}, {width}x{height}, {frames} frames, "
            f"{steps} steps, chunk {chunk} | {mode} | {seconds:.1f} s | peak {peak:.2f} GB | "
            f"{name} |"
        )


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
    p.add_argument("--no-flops", action="store_true", help="skip the meta-device FLOP table")
    p.add_argument("--count-fairy", action="store_true", help="count Fairy's FLOPs (slow)")
    p.add_argument("--gpu-sd15", action="store_true", help="random-weight SD-1.5 IP2P run")
    p.add_argument("--sd15-size", default="512x384", help="--gpu-sd15: WIDTHxHEIGHT")
    p.add_argument("--sd15-steps", type=int, default=10, help="--gpu-sd15: sampling steps")
    args = p.parse_args()
    width, height = (int(v) for v in args.sd15_size.split("x"))
    if args.gpu_sd15 and args.device == "cpu" and width * height > 128 * 128:
        p.error("--gpu-sd15 needs --device cuda (on the CPU only a smoke run: --sd15-size 64x64)")
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"hardware: {describe_hardware()}; torch threads {torch.get_num_threads()}; "
        f"load average {load:.1f}"
    )
    if args.gpu_sd15:
        bench_gpu_sd15(max(args.frames), args.sd15_steps, args.chunk, args.device, height, width)
        return
    bench_pipeline(args.frames, args.size, args.steps, args.chunk, args.device)
    bench_attention(args.attn_frames, args.levels, args.device, args.repeats)
    if not args.no_flops:
        bench_flops(args.count_fairy)


if __name__ == "__main__":
    main()
