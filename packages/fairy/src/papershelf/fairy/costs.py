"""Cost model and attention timings: Fairy vs frame-wise, Text2Video-Zero and full cross-frame.

Per self-attention layer with S tokens per frame, K anchors and N frames, one frame attends to

=====================  ===============  =========================================
method                 keys per query   frames in one UNet batch
=====================  ===============  =========================================
frame-wise IP2P        S                chunk (any)
Fairy (anchors)        S + K S          chunk (any); anchors cached, size fixed
Text2Video-Zero        S (frame 0's)    all N (the first frame must be in batch)
full cross-frame       N S              all N
=====================  ===============  =========================================

so Fairy's time per frame and memory are constant in N, full cross-frame attention's time per
frame grows linearly (total quadratically), and Text2Video-Zero's memory grows with N.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from papershelf.core.validation import check_int

__all__ = [
    "METHODS",
    "SD15_IP2P_UNET_CONFIG",
    "extra_attention_flops",
    "flop_table",
    "sd15_ip2p_unet",
    "unet_flops",
    "peak_rss_increase",
    "anchor_cache_nbytes",
    "attn1_shapes",
    "keys_per_query",
    "sd15_attn1_shapes",
    "time_attention_per_frame",
]

METHODS = ("frame-wise", "fairy", "t2v-zero", "full")


SD15_IP2P_UNET_CONFIG: dict[str, Any] = {
    # Stable Diffusion 1.5's UNet (runwayml/stable-diffusion-v1-5 unet/config.json) with the
    # 8 input channels of InstructPix2Pix (timbrooks/instruct-pix2pix); 859.5M parameters
    "sample_size": 64,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}


def sd15_ip2p_unet(device: str = "meta") -> Any:
    """The InstructPix2Pix (SD-1.5) UNet architecture with no weights (``meta`` device).

    Built in code from :data:`SD15_IP2P_UNET_CONFIG`; on the ``meta`` device tensors have shapes
    but no storage, so FLOPs can be counted for the real architecture on any machine.
    """
    from diffusers import UNet2DConditionModel

    with torch.device(device):
        unet: Any = UNet2DConditionModel(**SD15_IP2P_UNET_CONFIG)
    return unet.eval()


def unet_flops(
    unet: Any,
    latent_height: int,
    latent_width: int,
    *,
    batch: int = 1,
    text_tokens: int = 77,
    timestep: int = 500,
) -> int:
    """FLOPs of one UNet forward (``torch.utils.flop_counter``), on the UNet's device.

    With anchor attention installed (:func:`~papershelf.fairy.attention.anchor_attention`)
    this counts the anchor keys too. 1 multiply-add = 2 FLOPs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    p = next(unet.parameters())
    cfg = unet.config
    x = torch.zeros(
        batch, cfg.in_channels, latent_height, latent_width, device=p.device, dtype=p.dtype
    )
    ctx = torch.zeros(batch, text_tokens, cfg.cross_attention_dim, device=p.device, dtype=p.dtype)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(x, timestep, encoder_hidden_states=ctx)
    return int(counter.get_total_flops())


def extra_attention_flops(shapes: list[tuple[int, int]], extra_keys_per_token: int) -> int:
    r"""FLOPs a frame adds when each ``attn1`` query sees ``extra_keys_per_token * S`` more keys.

    :math:`\sum_l 4\,S_l \cdot (m S_l) \cdot C_l` (scores and weighted sum, 2 FLOPs per
    multiply-add); ``m = K`` for Fairy's replay, ``m = N - 1`` for full cross-frame attention.
    """
    m = check_int("extra_keys_per_token", extra_keys_per_token, low=0)
    return sum(4 * s * m * s * c for s, c in _check_shapes(shapes))


def flop_table(
    sizes: tuple[tuple[int, int], ...] = ((288, 512), (384, 512), (720, 1280)),
    *,
    num_anchors: int = 3,
    num_frames: int = 120,
    chunk: int = 8,
    steps: int = 10,
    branches: int = 3,
    count_fairy: bool = True,
) -> list[dict[str, float]]:
    """Per-frame FLOPs and cache sizes of each method on the SD-1.5 InstructPix2Pix UNet.

    Counted on the ``meta`` device (no weights): one UNet forward per method and size.
    ``count_fairy=False`` uses the closed form :func:`extra_attention_flops` for Fairy's replay
    instead of a counted run (the tests check they agree).

    Returns
    -------
    list of dict
        Per (height, width): ``tflops_frame_wise`` (one frame, one branch, one step),
        ``tflops_fairy`` (replay), ``tflops_fairy_amortised`` (+ the anchor pass spread over
        ``num_frames``), ``tflops_t2v_zero_chunked`` (frame 0 re-run in every chunk),
        ``tflops_full`` (every frame attends to all ``num_frames``), ``cache_gb`` (fp16 anchor
        cache, ``steps`` x ``branches``), ``cache_step_gb`` (one step: ``anchor_mode="recompute"``
        keeps only this), ``max_attn1_tokens``.
    """
    from papershelf.fairy.attention import anchor_attention

    unet = sd15_ip2p_unet("meta")
    rows = []
    for h, w in sizes:
        lh, lw = h // 8, w // 8
        shapes = attn1_shapes(unet, lh, lw, device="meta")
        base = unet_flops(unet, lh, lw)
        if count_fairy:
            with anchor_attention(unet) as state:
                state.begin("record", num_anchors)
                anchor = unet_flops(unet, lh, lw, batch=num_anchors)
                state.begin("replay", 1)
                fairy = unet_flops(unet, lh, lw)
        else:
            fairy = base + extra_attention_flops(shapes, num_anchors)
            anchor = num_anchors * base + num_anchors * extra_attention_flops(
                shapes, num_anchors - 1
            )
        per_step = anchor_cache_nbytes(shapes, num_anchors, 1, branches, 2)
        rows.append(
            {
                "height": h,
                "width": w,
                "max_attn1_tokens": max(s for s, _ in shapes),
                "tflops_frame_wise": base / 1e12,
                "tflops_fairy": fairy / 1e12,
                "tflops_fairy_amortised": (fairy * (num_frames - num_anchors) + anchor)
                / num_frames
                / 1e12,
                "tflops_t2v_zero_chunked": base * (chunk + 1) / chunk / 1e12,
                "tflops_full": (base + extra_attention_flops(shapes, num_frames - 1)) / 1e12,
                "cache_gb": per_step * steps / 1e9,
                "cache_step_gb": per_step / 1e9,
            }
        )
    return rows


def _check_shapes(shapes: Any) -> list[tuple[int, int]]:
    if isinstance(shapes, str | bytes) or not hasattr(shapes, "__iter__"):
        raise TypeError(f"shapes must be a list of (tokens, channels), got {type(shapes).__name__}")
    out = []
    for i, sc in enumerate(shapes):
        if not hasattr(sc, "__len__") or len(sc) != 2:
            raise ValueError(f"shapes[{i}] must be a (tokens, channels) pair, got {sc!r}")
        out.append(
            (check_int(f"shapes[{i}][0]", sc[0], low=1), check_int(f"shapes[{i}][1]", sc[1], low=1))
        )
    return out


def sd15_attn1_shapes(height: int = 384, width: int = 512) -> list[tuple[int, int]]:
    """``(tokens, channels)`` of the 16 self-attention layers of the Stable Diffusion 1.5 UNet.

    Five layers at 1/8 resolution (320 channels), five at 1/16 (640), five at 1/32 (1280) and
    the mid block at 1/64 (1280); 8 heads everywhere. InstructPix2Pix shares this UNet.
    """
    if height % 64 or width % 64:
        raise ValueError(f"height and width must be multiples of 64, got {height}x{width}")
    out = []
    for div, ch, count in ((8, 320, 5), (16, 640, 5), (32, 1280, 5), (64, 1280, 1)):
        out += [((height // div) * (width // div), ch)] * count
    return out


def attn1_shapes(
    unet: Any, height: int, width: int, cross_dim: int | None = None, device: str = "cpu"
) -> list[tuple[int, int]]:
    """``(tokens, channels)`` of every ``attn1`` layer of ``unet`` for latents of size (height, width).

    Found by one forward pass with hooks (batch 1, zeros) on ``device`` (``"meta"`` for a
    UNet built there).
    """
    shapes: list[tuple[int, int]] = []
    hooks = [
        m.register_forward_pre_hook(
            lambda mod, args, kw: shapes.append((args[0].shape[1], args[0].shape[2])),
            with_kwargs=True,
        )
        for name, m in unet.named_modules()
        if name.endswith("attn1")
    ]
    cfg = unet.config
    ctx = torch.zeros(1, 4, cross_dim or cfg.cross_attention_dim, device=device)
    x = torch.zeros(1, cfg.in_channels, height, width, device=device)
    try:
        with torch.no_grad():
            unet(x, 1, encoder_hidden_states=ctx)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def anchor_cache_nbytes(
    shapes: list[tuple[int, int]],
    num_anchors: int,
    steps: int,
    branches: int = 3,
    bytes_per_element: int = 4,
) -> int:
    r"""Closed form of the anchor cache: :math:`\sum_l 2 K S_l C_l \cdot T \cdot B \cdot b`.

    Parameters
    ----------
    shapes : list of (tokens, channels)
        The ``attn1`` layers.
    num_anchors, steps, branches : int
        K, UNet calls T and guidance branches B (3 for InstructPix2Pix with CFG).
    bytes_per_element : int
        4 for float32, 2 for float16.
    """
    num_anchors = check_int("num_anchors", num_anchors, low=1)
    steps = check_int("steps", steps, low=1)
    branches = check_int("branches", branches, low=1)
    bytes_per_element = check_int("bytes_per_element", bytes_per_element, low=1)
    shapes = _check_shapes(shapes)
    return sum(2 * num_anchors * s * c for s, c in shapes) * steps * branches * bytes_per_element


def keys_per_query(method: str, tokens: int, num_frames: int, num_anchors: int = 3) -> int:
    """Key/value tokens each query attends to (see the module table)."""
    tokens = check_int("tokens", tokens, low=1)
    num_frames = check_int("num_frames", num_frames, low=1)
    num_anchors = check_int("num_anchors", num_anchors, low=0)
    if method in ("frame-wise", "t2v-zero"):
        return tokens
    if method == "fairy":
        return tokens * (1 + num_anchors)
    if method == "full":
        return tokens * num_frames
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def time_attention_per_frame(
    method: str,
    num_frames: int,
    tokens: int,
    channels: int,
    *,
    heads: int = 8,
    num_anchors: int = 3,
    chunk: int = 2,
    repeats: int = 3,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> float:
    """Seconds per frame of one self-attention call for a video of ``num_frames`` frames.

    Times ``scaled_dot_product_attention`` for ``chunk`` frames, each attending to
    :func:`keys_per_query` keys, and divides by ``chunk`` (the per-frame cost of each method
    depends on N only through the key count, so a chunk measures it exactly). Best of
    ``repeats``; CPU process time on the CPU (run with one torch thread), wall time on CUDA.
    """
    g = torch.Generator().manual_seed(seed)
    d = channels // heads
    n_keys = keys_per_query(method, tokens, num_frames, num_anchors)
    q = torch.randn(chunk, heads, tokens, d, generator=g).to(device, dtype)
    k = torch.randn(chunk, heads, n_keys, d, generator=g).to(device, dtype)
    v = torch.randn(chunk, heads, n_keys, d, generator=g).to(device, dtype)
    cuda = device.startswith("cuda")
    # CPU: process time, which a busy shared machine disturbs far less than wall time
    clock = time.perf_counter if cuda else time.process_time
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = clock()
        F.scaled_dot_product_attention(q, k, v)
        if cuda:
            torch.cuda.synchronize()
        best = min(best, clock() - t0)
    return best / chunk


def _child_peak(queue: Any, fn: Callable[[], Any]) -> None:
    import resource

    with open("/proc/self/statm") as f:
        base = int(f.read().split()[1]) * resource.getpagesize()
    try:
        fn()
        queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base)
    except BaseException as exc:  # pragma: no cover - reported to the parent
        queue.put(exc)


def peak_rss_increase(fn: Callable[[], Any]) -> int:
    """Peak resident memory (bytes) that ``fn()`` adds, measured in a forked child (Linux, CPU).

    The child starts as a copy of this process, notes its resident set, runs ``fn`` and reports
    its peak resident set minus that start, so each measurement starts from the same state and
    nothing stays allocated in the caller. Use it with one torch thread (forking a process with
    a running OpenMP pool is unsafe).
    """
    if not sys.platform.startswith("linux"):
        raise OSError("peak_rss_increase needs Linux (fork and /proc)")
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_peak, args=(queue, fn))
    proc.start()
    out = queue.get()
    proc.join()
    if isinstance(out, BaseException):
        raise out
    return int(out)
