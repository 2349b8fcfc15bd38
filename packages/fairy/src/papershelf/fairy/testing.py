"""Offline stand-ins: a tiny random InstructPix2Pix pipeline and a synthetic moving-shapes video.

Nothing here downloads weights. The tiny pipeline has the architecture of diffusers'
InstructPix2Pix (8-channel UNet input: noisy latent + image latent, CLIP text encoder,
AutoencoderKL, Euler-Ancestral scheduler) at about 2.2M random parameters; it is meant
for tests, benchmarks and the quick reproduction, not for editing real videos.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "distributed_edit_worker",
    "synthetic_video",
    "tiny_clip_tokenizer",
    "tiny_instruct_pix2pix",
]


def _byte_symbols() -> list[str]:
    # The byte-level alphabet of GPT-2 / CLIP BPE: printable bytes map to themselves, the
    # others to code points from 256 up, so every byte has a visible one-character symbol.
    keep = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def tiny_clip_tokenizer(max_length: int = 16) -> Any:
    """An offline byte-level ``CLIPTokenizer`` (no merges; 514 tokens).

    Parameters
    ----------
    max_length : int, default 16
        ``model_max_length`` of the tokenizer (the text encoder's context length).
    """
    from transformers import CLIPTokenizer

    syms = _byte_symbols()
    vocab = {s: i for i, s in enumerate(syms)}
    vocab.update({s + "</w>": len(syms) + i for i, s in enumerate(syms)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(d) / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        return CLIPTokenizer(
            str(Path(d) / "vocab.json"), str(Path(d) / "merges.txt"), model_max_length=max_length
        )


def tiny_text_encoder(seed: int = 0) -> Any:
    """A tiny random ``CLIPTextModel`` (hidden 32, 5 layers, 4 heads, context 16; 68k parameters)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    return CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=5,
            vocab_size=1000,
            max_position_embeddings=16,
        )
    ).eval()


def tiny_instruct_pix2pix(seed: int = 0, *, block_out_channels: tuple[int, ...] = (32, 64)) -> Any:
    """A tiny randomly initialised ``StableDiffusionInstructPix2PixPipeline`` on the CPU.

    Parameters
    ----------
    seed : int, default 0
        Seed of the random weights.
    block_out_channels : tuple of int, default (32, 64)
        UNet widths; the VAE has ``len`` - 1 downsamplings, so the VAE factor is 2 here.

    Returns
    -------
    diffusers.StableDiffusionInstructPix2PixPipeline
        UNet (1.4M parameters, 6 ``attn1`` layers; ``sample_size`` 16, so the editor's
        default longer side is 16 x 2 = 32 pixels), VAE (0.7M), 5-layer CLIP text encoder
        (hidden 32), byte-level tokenizer, Euler-Ancestral scheduler; no safety checker.
    """
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )

    n = len(block_out_channels)
    torch.manual_seed(seed)
    unet: Any = UNet2DConditionModel(
        block_out_channels=block_out_channels,
        layers_per_block=2,
        sample_size=16,
        in_channels=8,
        out_channels=4,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=min(32, block_out_channels[0]),
    )
    torch.manual_seed(seed + 1)
    vae: Any = AutoencoderKL(
        block_out_channels=list(block_out_channels),
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * n,
        up_block_types=["UpDecoderBlock2D"] * n,
        latent_channels=4,
        norm_num_groups=min(32, block_out_channels[0]),
    )
    text_encoder = tiny_text_encoder(seed + 2)
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
    )
    pipe: Any = StableDiffusionInstructPix2PixPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder,
        tokenizer=tiny_clip_tokenizer(16),
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def synthetic_video(
    num_frames: int,
    height: int = 32,
    width: int = 32,
    *,
    num_squares: int = 2,
    speed: float = 1.0,
    seed: int = 0,
) -> tuple[torch.Tensor, np.ndarray]:
    """A video of coloured squares translating over a smooth background.

    Parameters
    ----------
    num_frames, height, width : int
        Video shape.
    num_squares : int, default 2
        Number of squares.
    speed : float, default 1.0
        Pixels per frame (each square moves along a random direction with this speed).
    seed : int, default 0

    Returns
    -------
    frames : Tensor, shape (num_frames, 3, height, width)
        Float32 values in [0, 1].
    velocities : ndarray, shape (num_squares, 2)
        Per-square motion ``(dy, dx)`` in pixels per frame (the known ground-truth motion).
    """
    if num_frames < 1 or height < 4 or width < 4:
        raise ValueError(
            f"need num_frames >= 1 and a size of at least 4x4, got {num_frames}, {height}x{width}"
        )
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack(
        [0.3 + 0.2 * xx / width, 0.3 + 0.2 * yy / height, np.full_like(xx, 0.5)], axis=0
    )
    side = max(2, min(height, width) // 4)
    colours = rng.uniform(0.0, 1.0, size=(num_squares, 3)).astype(np.float32)
    starts = rng.uniform(0, [height - side, width - side], size=(num_squares, 2))
    angles = rng.uniform(0, 2 * np.pi, size=num_squares)
    vel = speed * np.stack([np.sin(angles), np.cos(angles)], axis=1)
    video = np.empty((num_frames, 3, height, width), dtype=np.float32)
    for t in range(num_frames):
        frame = background.copy()
        for c, p0, v in zip(colours, starts, vel):
            # bounce inside the frame so squares stay visible on long videos
            y, x = (p0 + v * t) % (2 * np.array([height - side, width - side]))
            y = y if y <= height - side else 2 * (height - side) - y
            x = x if x <= width - side else 2 * (width - side) - x
            y0, x0 = round(y), round(x)
            frame[:, y0 : y0 + side, x0 : x0 + side] = c[:, None, None]
        video[t] = frame
    return torch.from_numpy(video), vel


def distributed_edit_worker(
    rank: int,
    world_size: int,
    port: int,
    out_dir: str,
    num_frames: int = 7,
    steps: int = 2,
    chunk_size: int = 2,
    model: str = "tiny",
) -> None:
    """One rank of a ``torch.distributed`` (gloo, CPU) edit of a synthetic video.

    For ``torch.multiprocessing.spawn``; ``model`` is ``"tiny"`` (random tiny IP2P) or
    ``"recolour"`` (:func:`papershelf.fairy.toy.recolour_instruct_pix2pix`, where anchors
    matter); saves the frames every rank returns to
    ``out_dir/rank{rank}.pt`` (a dict: ``frames`` and ``indices``, the whole video on rank 0,
    the rank's own segment elsewhere). Used by the tests to check that distributed editing
    equals single-process editing.
    """
    import os

    import torch.distributed as dist

    from papershelf.fairy.editor import FairyVideoEditor

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        video = synthetic_video(num_frames, 32, 32, seed=0)[0]
        if model == "recolour":
            from papershelf.fairy.toy import recolour_instruct_pix2pix

            pipe = recolour_instruct_pix2pix()
            video = synthetic_video(num_frames, 32, 32, seed=0, speed=4.0)[0]
        else:
            pipe = tiny_instruct_pix2pix(0)
        res = FairyVideoEditor(pipe).edit_video(
            video,
            "make it snowy",
            num_inference_steps=steps,
            generator=0,
            chunk_size=chunk_size,
            distributed=True,
        )
        torch.save({"frames": res.frames, "indices": res.frame_indices}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()
