"""``papershelf reproduce fairy``: Fairy's speed and consistency claims where no weights are needed.

Quick mode (2 CPU cores, about a minute or two), on a tiny random InstructPix2Pix:

1. scaling of time per frame and memory (anchor cache, UNet batch) with the number of frames,
   Fairy against frame-wise editing, Text2Video-Zero cross-frame attention and full
   cross-frame attention; plus per-frame attention time at a Stable Diffusion 1.5 layer shape
   up to the paper's 120 frames;
2. chunked = all-at-once editing, and locality (a non-anchor frame changes only itself);
3. consistency: inter-frame variance of an attention layer's output with and without anchors,
   and Tem-Con of a synthetic moving-squares video (frame-wise vs anchors; random weights, so
   not comparable with the paper);
4. an actual 120-frame edit (16x16, tiny model) timed beside the paper's 13.8 s on 8 A100s.

``--full``: the same at larger sizes (64x64, 4 steps, up to 120 frames), and, when
``FAIRY_IP2P_PATH`` names a local InstructPix2Pix checkpoint (e.g. a download of
``timbrooks/instruct-pix2pix``) and ``FAIRY_VIDEO`` a video file, a real edit of that video
(``FAIRY_INSTRUCTION``, default "turn it into a watercolor painting"), written to the output
folder with its Tem-Con. ``FAIRY_SIZE`` (longer side, default 512), ``FAIRY_STEPS`` (10) and
``FAIRY_MAX_FRAMES`` (120) change the paper's setting.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import numpy as np
import torch

from papershelf.core import ReproduceContext, ResultRecord
from papershelf.fairy.attention import AnchorAttentionState, AnchorAttnProcessor
from papershelf.fairy.costs import (
    METHODS,
    anchor_cache_nbytes,
    attn1_shapes,
    peak_rss_increase,
    sd15_attn1_shapes,
    time_attention_per_frame,
)
from papershelf.fairy.editor import FairyVideoEditor
from papershelf.fairy.metrics import inter_frame_variance, tem_con
from papershelf.fairy.testing import synthetic_video, tiny_instruct_pix2pix

__all__ = ["module_level_variance", "run", "time_t2v_zero"]

log = logging.getLogger(__name__)
PKG = "fairy"
PROMPT = "make it snowy"


def module_level_variance(
    num_anchors: int,
    *,
    num_frames: int = 8,
    tokens: int = 64,
    channels: int = 32,
    noise: float = 0.5,
    seed: int = 0,
) -> float:
    """Inter-frame variance of one attention layer's output for similar frames.

    Frames share a random content and differ by Gaussian noise of std ``noise``; the layer is
    a randomly initialised diffusers ``Attention`` (4 heads). ``num_anchors=0`` is plain
    self-attention; otherwise the first ``num_anchors`` uniformly spaced frames are anchors.
    """
    from diffusers.models.attention_processor import Attention

    from papershelf.fairy.anchors import select_anchors

    torch.manual_seed(seed)
    attn: Any = Attention(query_dim=channels, heads=4, dim_head=channels // 4).eval()
    g = torch.Generator().manual_seed(seed + 1)
    content = torch.randn(1, tokens, channels, generator=g)
    x = content + noise * torch.randn(num_frames, tokens, channels, generator=g)
    st = AnchorAttentionState()
    attn.set_processor(AnchorAttnProcessor(st, "layer"))
    with torch.no_grad():
        if num_anchors == 0:
            return inter_frame_variance(attn(x))
        st.begin("record", num_anchors)
        st.call_index = 0
        attn(x[select_anchors(num_frames, num_anchors)])
        st.begin("replay", num_frames)
        st.call_index = 0
        return inter_frame_variance(attn(x))


def _clock(device: str) -> Any:
    # CPU process time: on a shared machine wall time mostly measures the neighbours. The
    # `papershelf` command runs the quick profile on one thread (`--threads` to change), so
    # process time there is the work of that one thread.
    return time.perf_counter if device.startswith("cuda") else time.process_time


def time_t2v_zero(pipe: Any, video: torch.Tensor, steps: int, seed: int = 0) -> float:
    """Seconds to edit ``video`` the Text2Video-Zero way: all frames in one batch, every frame
    attending to the first frame's keys/values (diffusers' ``CrossFrameAttnProcessor2_0``).

    CPU process time on the CPU, wall time on CUDA.
    """
    from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_zero import (
        CrossFrameAttnProcessor2_0,
    )

    n = video.shape[0]
    originals = dict(pipe.unet.attn_processors)
    pipe.unet.set_attn_processor(CrossFrameAttnProcessor2_0(batch_size=3))
    try:
        t0 = time.perf_counter()
        with torch.no_grad():
            pipe(
                prompt=[PROMPT] * n,
                image=video,
                num_inference_steps=steps,
                generator=[torch.Generator().manual_seed(seed) for _ in range(n)],
                output_type="latent",
            )
        return time.perf_counter() - t0
    finally:
        pipe.unet.set_attn_processor(originals)


def _scaling_tiny(
    ctx: ReproduceContext, pipe: Any, sizes: list[int], hw: int, steps: int, chunk: int
) -> dict[str, Any]:
    editor = FairyVideoEditor(pipe)
    out: dict[str, Any] = {m: {"time": [], "max_batch": []} for m in METHODS}
    clock = _clock(ctx.device)
    out["cache_mb"] = []
    modes = {"fairy": "cache", "frame-wise": "frame-wise", "full": "full"}
    measure_memory = sys.platform.startswith("linux") and not ctx.device.startswith("cuda")
    for m in METHODS:
        out[m]["peak_mb"] = []
    for n in ctx.progress(sizes, desc="scaling (tiny IP2P)"):
        video, _ = synthetic_video(n, hw, hw, seed=0)
        for method, mode in modes.items():
            best = float("inf")
            for _ in range(2):  # best of two: the machine is shared
                t0 = clock()
                res = editor.edit_video(
                    video,
                    PROMPT,
                    num_inference_steps=steps,
                    generator=0,
                    chunk_size=chunk,
                    anchor_mode=mode,
                    output_type="latent",
                )
                best = min(best, clock() - t0)
            out[method]["time"].append(best)
            out[method]["max_batch"].append(res.max_unet_batch)
            if method == "fairy":
                out["cache_mb"].append(res.cache_nbytes / 1e6)
        out["t2v-zero"]["time"].append(min(time_t2v_zero(pipe, video, steps) for _ in range(2)))
        if measure_memory:  # peak resident memory of one edit, 1 step, in a forked child
            for method, mode in modes.items():
                out[method]["peak_mb"].append(
                    1e-6
                    * peak_rss_increase(
                        lambda mode=mode, video=video: editor.edit_video(
                            video,
                            PROMPT,
                            num_inference_steps=1,
                            generator=0,
                            chunk_size=chunk,
                            anchor_mode=mode,
                            output_type="latent",
                        )
                    )
                )
            out["t2v-zero"]["peak_mb"].append(
                1e-6 * peak_rss_increase(lambda video=video: time_t2v_zero(pipe, video, 1))
            )
        out["t2v-zero"]["max_batch"].append(3 * n)
    return out


def _chunk_scaling(
    ctx: ReproduceContext, editor: FairyVideoEditor, hw: int, steps: int, n: int = 15
) -> dict[str, Any]:
    clock = _clock(ctx.device)
    video, _ = synthetic_video(n, hw, hw, seed=0)
    out: dict[str, Any] = {"frames": n, "chunk": [1, 2, 4, n - 3], "time": [], "max_batch": []}
    for c in ctx.progress(out["chunk"], desc="chunk size"):
        best = float("inf")
        for _ in range(2):
            t0 = clock()
            r = editor.edit_video(
                video,
                PROMPT,
                num_inference_steps=steps,
                generator=0,
                chunk_size=c,
                output_type="latent",
            )
            best = min(best, clock() - t0)
        out["time"].append(best / n)
        out["max_batch"].append(r.max_unet_batch)
    return out


def _scaling_sd15(
    ctx: ReproduceContext, sizes: list[int], tokens: int, channels: int
) -> dict[str, list[float]]:
    res: dict[str, list[float]] = {m: [] for m in METHODS}
    for n in ctx.progress(sizes, desc="scaling (SD-1.5 attn1 shape)"):
        for m in METHODS:
            res[m].append(time_attention_per_frame(m, n, tokens, channels, chunk=1, repeats=2))
    return res


def _equivalence(editor: FairyVideoEditor, hw: int, steps: int) -> dict[str, float]:
    video, _ = synthetic_video(8, hw, hw, seed=1)
    ref = editor.edit_video(video, PROMPT, num_inference_steps=steps, generator=0).frames
    diffs = {}
    for c in (1, 2, 3):
        out = editor.edit_video(
            video, PROMPT, num_inference_steps=steps, generator=0, chunk_size=c
        ).frames
        diffs[f"chunk {c}"] = float((out - ref).abs().max())
    rec = editor.edit_video(
        video, PROMPT, num_inference_steps=steps, generator=0, chunk_size=2, anchor_mode="recompute"
    ).frames
    diffs["recompute"] = float((rec - ref).abs().max())
    other = video.clone()
    other[3] = 1.0 - other[3]
    pert = editor.edit_video(other, PROMPT, num_inference_steps=steps, generator=0).frames
    keep = [i for i in range(8) if i != 3]
    diffs["locality"] = float((pert[keep] - ref[keep]).abs().max())
    diffs["perturbed frame"] = float((pert[3] - ref[3]).abs().max())
    return diffs


def _figure(
    ctx: ReproduceContext,
    tiny: dict[str, Any],
    sizes: list[int],
    sd: dict[str, Any],
    sd_sizes: list[int],
    variances: dict[int, float],
    frames: dict[str, torch.Tensor],
    chunks: dict[str, Any],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"fairy": "C0", "frame-wise": "C2", "t2v-zero": "C1", "full": "C3"}
    fig = plt.figure(figsize=(14, 7.2))
    grid = fig.add_gridspec(2, 3)
    ax = {
        (r, c): fig.add_subplot(grid[r, c]) for r in range(2) for c in range(3) if (r, c) != (1, 2)
    }
    ax[1, 1].set_subplotspec(grid[1, 1:])
    a = ax[0, 0]
    for m in METHODS:
        a.plot(sizes, tiny[m]["time"], "o-", c=colours[m], label=m)
    a.set(xlabel="frames N", ylabel="CPU seconds", title="tiny IP2P: time to edit N frames")
    a.legend(fontsize=8)
    a = ax[0, 1]
    key, label = ("peak_mb", "peak memory added (MB, RSS)")
    if not tiny["fairy"]["peak_mb"]:
        key, label = ("max_batch", "largest UNet batch (memory proxy)")
    for m in METHODS:
        a.plot(sizes, tiny[m][key], "o-", c=colours[m], label=m)
    a.set(xlabel="frames N", ylabel=label, title="memory of one edit; anchor cache")
    b = a.twinx()
    b.plot(sizes, tiny["cache_mb"], "s--", c="k", label="Fairy anchor cache (MB)")
    b.set_ylabel("anchor cache (MB)")
    b.set_ylim(0, max(tiny["cache_mb"]) * 2)
    a.legend(fontsize=7, loc="upper left")
    b.legend(fontsize=7, loc="lower right")
    a = ax[1, 0]
    for m in METHODS:
        a.loglog(sd_sizes, np.array(sd[m]) * 1e3, "o-", c=colours[m], label=m)
    a.set(
        xlabel="frames N",
        ylabel="ms per frame (one attn1 call)",
        title=f"SD-1.5 attn1 shape ({sd['tokens']} tok x {sd['channels']} ch), CPU",
    )
    a.legend(fontsize=8)
    a = ax[0, 2]
    a.plot(chunks["chunk"], np.array(chunks["time"]) * 1e3, "o-", c="C0", label="ms per frame")
    a.set(
        xlabel="chunk size",
        ylabel="CPU ms per frame",
        xscale="log",
        title=f"Fairy, N={chunks['frames']}: chunk size",
    )
    b = a.twinx()
    b.plot(chunks["chunk"], chunks["max_batch"], "s--", c="k", label="max UNet batch")
    b.set_ylabel("largest UNet batch")
    a.legend(fontsize=7, loc="upper center")
    b.legend(fontsize=7, loc="center right")
    a = ax[1, 1]
    row = torch.cat([torch.cat(list(frames[k][:6]), dim=2) for k in frames], dim=1)
    a.imshow(row.permute(1, 2, 0).clamp(0, 1).numpy())
    a.set_yticks([(i + 0.5) * frames["input"].shape[-2] for i in range(len(frames))])
    a.set_yticklabels(list(frames))
    a.set_xticks([])
    ks = ", ".join(f"K={k}: {v:.2g}" for k, v in variances.items())
    a.set_title(f"synthetic video (random weights)\nattn-layer variance {ks}", fontsize=9)
    fig.tight_layout()
    ctx.save_figure(fig, "fairy_scaling.png", dpi=80)
    plt.close(fig)


def _real_edit(ctx: ReproduceContext) -> list[ResultRecord]:
    path, video_path = os.environ.get("FAIRY_IP2P_PATH"), os.environ.get("FAIRY_VIDEO")
    if not path or not video_path:
        log.warning(
            "set FAIRY_IP2P_PATH (local InstructPix2Pix checkpoint) and FAIRY_VIDEO to "
            "edit a real video with --full; skipping the real edit"
        )
        return []
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    from papershelf.fairy.video import read_video, write_video

    dtype = torch.float16 if ctx.device.startswith("cuda") else torch.float32
    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(
        path, torch_dtype=dtype, safety_checker=None, local_files_only=True
    ).to(ctx.device)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    longer = int(os.environ.get("FAIRY_SIZE", "512"))
    steps = int(os.environ.get("FAIRY_STEPS", "10"))
    frames = read_video(video_path, max_frames=int(os.environ.get("FAIRY_MAX_FRAMES", "120")))
    from PIL import Image

    h, w = frames[0].shape[:2]
    f = longer / max(h, w)  # paper: longer side 512, aspect kept; multiples of 8
    size = (int(w * f) // 8 * 8, int(h * f) // 8 * 8)
    frames = [
        np.asarray(Image.fromarray(fr).resize(size, Image.Resampling.BICUBIC)) for fr in frames
    ]
    instr = os.environ.get("FAIRY_INSTRUCTION", "turn it into a watercolor painting")
    res = FairyVideoEditor(pipe).edit_video(
        frames, instr, num_inference_steps=steps, generator=0, chunk_size=8
    )
    try:
        import imageio  # noqa: F401  (MP4 needs the video extra)

        name = "fairy_edit.mp4"
    except ImportError:
        name = "fairy_edit.gif"
    write_video(res.frames, ctx.path(name), fps=30)
    src = torch.stack(
        [torch.from_numpy(np.array(a)).permute(2, 0, 1).float() / 255 for a in frames]
    )
    return [
        ResultRecord(
            PKG,
            f"real edit ({len(frames)} frames, {size[0]}x{size[1]}, {steps} steps, {ctx.device})",
            "seconds",
            [res.timings["total"]],
            paper_value=78.0,
            higher_is_better=False,
            comparable=False,
            paper_note="120 frames 512x384 on 1 A100 (8 A100: 13.8 s)",
            note=f"instruction {instr!r}; Tem-Con (pixels) source "
            f"{tem_con(src):.4f}, edit {tem_con(res.frames):.4f}; video: {name}",
        ),
    ]


def run(ctx: ReproduceContext) -> list[ResultRecord]:
    """Run the reproduction (see the module docstring)."""
    torch.manual_seed(0)
    return _run(ctx)


def _run(ctx: ReproduceContext) -> list[ResultRecord]:
    full = ctx.full
    # K = 3 anchors + whole chunks of non-anchor frames, so every size runs full chunks
    sizes = [11, 19, 35, 67, 123] if full else [7, 15, 31]
    hw, steps, chunk = (64, 4, 8) if full else (32, 2, 4)
    pipe = tiny_instruct_pix2pix(0).to(ctx.device)
    editor = FairyVideoEditor(pipe)
    records: list[ResultRecord] = []
    cfg = {
        "frames": sizes,
        "size": hw,
        "steps": steps,
        "chunk": chunk,
        "anchors": 3,
        "model": "tiny random InstructPix2Pix (testing.tiny_instruct_pix2pix)",
    }

    # 1. scaling on the tiny pipeline
    tiny = _scaling_tiny(ctx, pipe, sizes, hw, steps, chunk)
    # marginal cost of one more frame: the slope of time over N, first and last interval
    t = {m: np.array(tiny[m]["time"]) for m in METHODS}
    nn = np.array(sizes, dtype=float)
    slope = {m: np.diff(t[m]) / np.diff(nn) for m in METHODS}
    flat = float(slope["fairy"][-1] / slope["fairy"][0])
    records.append(
        ResultRecord(
            PKG,
            f"tiny IP2P {hw}x{hw}, {steps} steps, N={sizes[0]}..{sizes[-1]}",
            f"Fairy time per added frame, N {sizes[-2]}->{sizes[-1]} / N {sizes[0]}->{sizes[1]}",
            [flat],
            claim="time grows linearly in the number of frames (ratio in [0.6, 1.5])",
            claim_holds=0.6 <= flat <= 1.5,
            config=cfg,
            note="CPU ms per added frame (last interval): "
            + ", ".join(f"{m} {1e3 * slope[m][-1]:.0f}" for m in METHODS),
        )
    )
    ratio_fw = float(np.polyfit(nn, t["fairy"], 1)[0] / np.polyfit(nn, t["frame-wise"], 1)[0])
    records.append(
        ResultRecord(
            PKG,
            f"tiny IP2P {hw}x{hw}, {steps} steps",
            "Fairy / frame-wise time per frame",
            [ratio_fw],
            claim="anchor attention costs a small constant factor over frame-wise editing (<= 2)",
            claim_holds=ratio_fw <= 2.0,
            config=cfg,
            note="ratio of the least-squares slopes of CPU time over N; frame-wise InstructPix2Pix "
            "is the lower bound",
        )
    )
    shapes = attn1_shapes(pipe.unet, hw // pipe.vae_scale_factor, hw // pipe.vae_scale_factor)
    closed = anchor_cache_nbytes(shapes, 3, steps, 3, 4) / 1e6
    same = (
        max(tiny["cache_mb"]) - min(tiny["cache_mb"]) == 0
        and abs(tiny["cache_mb"][0] - closed) < 1e-9
    )
    records.append(
        ResultRecord(
            PKG,
            f"tiny IP2P {hw}x{hw}, {steps} steps",
            "anchor cache (MB)",
            [tiny["cache_mb"][-1]],
            claim="cache size independent of N and equal to sum_l 2 K S_l C_l T B bytes",
            claim_holds=bool(same),
            config=cfg,
            note=f"measured {tiny['cache_mb']} MB for N={sizes}; closed form {closed:.3f} MB; "
            f"max UNet batch Fairy {tiny['fairy']['max_batch']}, full/T2V-Zero "
            f"{tiny['full']['max_batch']}",
        )
    )

    if tiny["fairy"]["peak_mb"]:
        grow = {m: tiny[m]["peak_mb"][-1] / tiny[m]["peak_mb"][0] for m in METHODS}
        records.append(
            ResultRecord(
                PKG,
                f"tiny IP2P {hw}x{hw}, 1 step, N={sizes[0]}..{sizes[-1]}, CPU",
                f"Fairy peak memory, N={sizes[-1]} / N={sizes[0]}",
                [grow["fairy"]],
                claim="Fairy's peak memory is flat in N (ratio <= 1.5), unlike running all "
                "frames in one batch",
                claim_holds=grow["fairy"] <= 1.5,
                config=cfg,
                note="peak resident memory added by one edit (forked child), MB at N="
                f"{sizes[-1]}: "
                + ", ".join(f"{m} {tiny[m]['peak_mb'][-1]:.0f} (x{grow[m]:.1f})" for m in METHODS),
            )
        )

    # SD-1.5 shapes: per-frame attention time up to 120 frames; cache size estimate
    sd_sizes = [8, 16, 32, 64, 120]
    # the 1/32 level; at 768 tokens full attention over 120 frames needs GBs of scores on CPU
    tokens, channels = 192, 1280
    sd = _scaling_sd15(ctx, sd_sizes, tokens, channels)
    sd.update({"tokens": tokens, "channels": channels})  # type: ignore[dict-item]
    r120 = sd["full"][-1] / sd["fairy"][-1]
    f120 = sd["fairy"][-1] / sd["fairy"][0]
    sd_cache = anchor_cache_nbytes(sd15_attn1_shapes(384, 512), 3, 10, 3, 2) / 1e9
    records.append(
        ResultRecord(
            PKG,
            f"SD-1.5 attn1 shape ({tokens} tokens x {channels} ch, 8 heads), 120 frames, CPU",
            "full cross-frame / Fairy attention time per frame",
            [r120],
            claim="Fairy's per-frame attention cost is constant in N while full cross-frame "
            "attention grows linearly (quadratic in total)",
            claim_holds=bool(f120 < 1.5 and sd["full"][-1] / sd["full"][0] > 5),
            note=f"Fairy N=120 / N=8: {f120:.2f}; T2V-Zero / Fairy at 120: "
            f"{sd['t2v-zero'][-1] / sd['fairy'][-1]:.2f}; SD-1.5 anchor cache at 512x384 fp16, "
            f"K=3, 10 steps, 3 branches: {sd_cache:.2f} GB (closed form)",
        )
    )

    # time and batch against the chunk size, at a fixed N
    chunks = _chunk_scaling(ctx, editor, hw, steps)
    records.append(
        ResultRecord(
            PKG,
            f"tiny IP2P {hw}x{hw}, {steps} steps, N={chunks['frames']}, chunk 1..all",
            "time per frame, chunk 1 / all non-anchor frames in one call",
            [chunks["time"][0] / chunks["time"][-1]],
            claim="the chunk size, not N, sets the UNet batch: 3 x max(K, chunk)",
            claim_holds=all(
                b == 3 * max(3, c) for c, b in zip(chunks["chunk"], chunks["max_batch"])
            ),
            note="CPU ms per frame "
            + ", ".join(
                f"chunk {c}: {1e3 * t:.0f} (batch {b})"
                for c, t, b in zip(chunks["chunk"], chunks["time"], chunks["max_batch"])
            ),
        )
    )

    # 2. chunked = all-at-once; locality
    eq = _equivalence(editor, 32, 2)
    worst = max(eq[k] for k in ("chunk 1", "chunk 2", "chunk 3"))
    records.append(
        ResultRecord(
            PKG,
            "8 frames, anchors [0, 4, 7], chunk 1/2/3 vs all at once",
            "max |difference| (pixels in [0, 1])",
            [worst],
            claim="chunked editing equals all-at-once editing (atol 1e-5)",
            claim_holds=worst < 1e-5,
            note=f"anchor_mode='recompute' vs cache: {eq['recompute']:.2g}",
        )
    )
    records.append(
        ResultRecord(
            PKG,
            "8 frames, non-anchor frame 3 inverted",
            "max change in the other 7 frames",
            [eq["locality"]],
            claim="editing a frame depends only on itself and the anchors",
            claim_holds=eq["locality"] == 0.0,
            note=f"change in frame 3 itself: {eq['perturbed frame']:.3g}",
        )
    )

    # 3. consistency
    variances = {
        k: float(np.mean([module_level_variance(k, seed=s) for s in range(3)]))
        for k in (0, 1, 3, 5)
    }
    lower = all(variances[k] < variances[0] for k in (1, 3, 5))
    records.append(
        ResultRecord(
            PKG,
            "one attention layer, 8 similar frames (shared content + noise 0.5), 3 seeds",
            "inter-frame output variance, anchors K=3 / self-attention",
            [variances[3] / variances[0]],
            claim="anchor attention makes outputs of similar frames more alike",
            claim_holds=lower,
            note=", ".join(f"K={k}: {v:.3g}" for k, v in variances.items()) + " (K=0: self-attn)",
        )
    )
    n_tc, tc_steps = (16, 4) if full else (12, 3)
    video, _ = synthetic_video(n_tc, hw, hw, seed=2)
    fw = editor.edit_video(
        video, PROMPT, num_inference_steps=tc_steps, generator=0, anchor_mode="frame-wise"
    ).frames
    fa = editor.edit_video(video, PROMPT, num_inference_steps=tc_steps, generator=0).frames
    tc_src, tc_fw, tc_fa = tem_con(video), tem_con(fw), tem_con(fa)
    tc_note = f"random weights: no semantic edit; pixel-space Tem-Con (source video {tc_src:.4f})"
    records.append(
        ResultRecord(
            PKG,
            f"synthetic {n_tc}-frame video, tiny random IP2P",
            "Tem-Con, frame-wise editing",
            [tc_fw],
            paper_value=0.959,
            comparable=False,
            note=tc_note,
            paper_note="CLIP Tem-Con, 150 videos, frame-wise editing (ablation)",
        )
    )
    records.append(
        ResultRecord(
            PKG,
            f"synthetic {n_tc}-frame video, tiny random IP2P",
            "Tem-Con, anchor attention K=3",
            [tc_fa],
            paper_value=0.968,
            comparable=False,
            note=tc_note,
            paper_note="CLIP Tem-Con, + anchor attention, before equivariant fine-tuning",
        )
    )

    # 4. an actual 120-frame edit
    n120, hw120 = 120, 16
    v120, _ = synthetic_video(n120, hw120, hw120, seed=3)
    t0 = time.perf_counter()
    r = editor.edit_video(
        v120,
        PROMPT,
        num_inference_steps=10 if full else 2,
        generator=0,
        chunk_size=24,
        output_type="latent",
    )
    t120 = time.perf_counter() - t0
    records.append(
        ResultRecord(
            PKG,
            f"120 frames {hw120}x{hw120}, tiny IP2P, {10 if full else 2} steps, {ctx.device}",
            "seconds to edit the video (wall)",
            [t120],
            paper_value=13.8,
            higher_is_better=False,
            comparable=False,
            paper_note="120 frames 512x384, 10 steps, 8 A100 (78 s on 1 A100)",
            note=f"anchors {r.anchor_indices}; the paper's weights and GPUs are not available",
        )
    )

    records += _real_edit(ctx) if full else []

    frames = {"input": video, "frame-wise": fw, "Fairy K=3": fa}
    _figure(ctx, tiny, sizes, sd, sd_sizes, variances, frames, chunks)
    return records
