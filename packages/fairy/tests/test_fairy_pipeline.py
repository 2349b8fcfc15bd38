"""The user's path: an InstructPix2Pix folder through FairyPipeline.from_pretrained, a clip file in,
a clip file out at the source frame rate; defaults (size, chunk, K), prompts, guidance checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from papershelf.core.testing import assert_close, slow
from papershelf.fairy import FairyPipeline, FairyVideoEditor, load_video, write_video
from papershelf.fairy.testing import synthetic_video, tiny_instruct_pix2pix

PROMPT = "make it snowy"


@pytest.fixture(scope="module")
def ip2p_dir(tmp_path_factory):
    """A tiny InstructPix2Pix saved with diffusers' save_pretrained (real classes, random weights)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny-ip2p"
    tiny_instruct_pix2pix(0).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    """A 40-frame, 24 fps, 48x64 MP4 of moving squares."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_video(synthetic_video(40, 48, 64, seed=0)[0], path, fps=24)
    return path


@pytest.fixture(scope="module")
def fairy_pipe(ip2p_dir):
    return FairyPipeline.from_pretrained(ip2p_dir, local_files_only=True)


def _edit_file(pipe, clip_file, tmp_path, **kw):
    dst = tmp_path / "out.mp4"
    res = pipe.edit_video_file(clip_file, dst, PROMPT, generator=0, **kw)
    return res, dst


def test_folder_to_clip_file_with_defaults(fairy_pipe, clip_file, tmp_path):
    """Done-when of the issue: a saved folder, FairyPipeline.from_pretrained, a 40-frame 24 fps
    clip edited to a 24 fps clip with default settings (2 steps to stay fast; the slow test
    below runs the default 10); the UNet batch stays at 3 * chunk_size (8), not 3 * 40."""
    assert isinstance(fairy_pipe, FairyPipeline) and fairy_pipe.unet.config.in_channels == 8
    res, dst = _edit_file(fairy_pipe, clip_file, tmp_path, num_inference_steps=2)
    frames, fps = load_video(dst)
    assert fps == 24.0 and frames.shape == (40, 24, 32, 3)
    assert res.size == (24, 32)  # longer side -> sample_size * vae factor = 32, aspect kept
    assert res.max_unet_batch == 3 * 8
    assert res.anchor_indices == [0, 20, 39]
    assert res.frame_indices == list(range(40))


@slow
def test_folder_to_clip_file_all_defaults(fairy_pipe, clip_file, tmp_path):
    res, dst = _edit_file(fairy_pipe, clip_file, tmp_path)
    assert load_video(dst)[1] == 24.0
    assert res.max_unet_batch == 3 * 8


def test_loaded_pipeline_equals_in_memory_editor(fairy_pipe):
    video = synthetic_video(5, 32, 32, seed=1)[0]
    a = fairy_pipe(video, PROMPT, num_inference_steps=2, generator=0).frames
    b = FairyVideoEditor(tiny_instruct_pix2pix(0)).edit_video(
        video, PROMPT, num_inference_steps=2, generator=0
    )
    assert_close(a, b.frames, atol=1e-5)
    plain = fairy_pipe.edit_images(
        prompt=[PROMPT],
        image=video[:1],
        num_inference_steps=2,
        generator=[torch.Generator().manual_seed(0)],
        output_type="pt",
    ).images
    assert plain.shape == (1, 3, 32, 32)


def test_text_to_image_pipelines_are_rejected(tmp_path):
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    ip2p = tiny_instruct_pix2pix(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    sd = StableDiffusionPipeline(
        vae=ip2p.vae,
        text_encoder=ip2p.text_encoder,
        tokenizer=ip2p.tokenizer,
        unet=unet,
        scheduler=ip2p.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    with pytest.raises(TypeError, match=r"InstructPix2Pix.*takes 4"):
        FairyVideoEditor(sd)
    sd.save_pretrained(tmp_path / "sd")
    with pytest.raises(TypeError, match="text-to-image"):
        FairyPipeline.from_pretrained(tmp_path / "sd", local_files_only=True)


def test_default_size_longer_side_and_overrides():
    ed = FairyVideoEditor(tiny_instruct_pix2pix(0))
    assert ed.default_resolution == 32  # sample_size 16 x VAE factor 2 (SD-1.5: 64 x 8 = 512)
    assert ed.target_size(1080, 1920, resolution=512) == (288, 512)
    assert ed.target_size(480, 640, resolution=512) == (384, 512)
    assert ed.target_size(1920, 1080, resolution=512) == (512, 288)
    assert ed.target_size(480, 640, height=240) == (240, 320)
    assert ed.target_size(480, 640, width=100) == (76, 100)
    assert ed.target_size(480, 640, height=64, width=64) == (64, 64)
    out = ed.edit_video(torch.rand(2, 3, 90, 160), PROMPT, num_inference_steps=1, generator=0)
    assert out.size == (18, 32) and out.frames.shape == (2, 3, 18, 32)


def test_short_clips_clamp_the_anchors():
    ed = FairyVideoEditor(tiny_instruct_pix2pix(0))
    for n in (1, 2):
        out = ed.edit_video(torch.rand(n, 3, 32, 32), PROMPT, num_inference_steps=1, generator=0)
        assert out.anchor_indices == list(range(n)) and out.frames.shape[0] == n


def test_negative_prompt_and_prompt_embeds():
    pipe = tiny_instruct_pix2pix(0)
    ed = FairyVideoEditor(pipe)
    video = synthetic_video(4, 32, 32, seed=2)[0]
    kw = {"num_inference_steps": 2, "generator": 0, "chunk_size": 2}
    base = ed.edit_video(video, PROMPT, **kw).frames
    neg = ed.edit_video(video, PROMPT, negative_prompt="blurry", **kw).frames
    assert (neg - base).abs().max() > 1e-4  # the negative prompt reaches the uncond. branch
    ids = pipe.tokenizer(
        PROMPT,
        padding="max_length",
        max_length=pipe.tokenizer.model_max_length,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        embeds = pipe.text_encoder(ids)[0]
    via_embeds = ed.edit_video(video, prompt_embeds=embeds, **kw).frames
    assert_close(via_embeds, base, atol=1e-5)
    with pytest.raises(ValueError, match="not both"):
        ed.edit_video(video, PROMPT, prompt_embeds=embeds, **kw)
    with pytest.raises(ValueError, match="prompt_embeds"):
        ed.edit_video(video, prompt_embeds=embeds.repeat(2, 1, 1), **kw)
    with pytest.raises(ValueError, match="negative_prompt_embeds"):
        ed.edit_video(video, prompt_embeds=embeds, negative_prompt="x", **kw)


def test_guidance_settings_are_checked():
    ed = FairyVideoEditor(tiny_instruct_pix2pix(0))
    video = torch.rand(2, 3, 32, 32)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="guidance_scale"):
            ed.edit_video(video, PROMPT, guidance_scale=bad, num_inference_steps=1)
        with pytest.raises(ValueError, match="image_guidance_scale"):
            ed.edit_video(video, PROMPT, image_guidance_scale=bad, num_inference_steps=1)
    with pytest.warns(UserWarning, match="guidance is off"):
        ed.edit_video(video, PROMPT, image_guidance_scale=0.5, num_inference_steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        out = ed.edit_video(
            video, PROMPT, guidance_scale=1.0, image_guidance_scale=1.0, num_inference_steps=1
        )
    assert out.max_unet_batch == 2  # one branch: guidance off, as asked
    out = ed.edit_video(video, PROMPT, guidance_scale=np.float32(7.5), num_inference_steps=1)
    assert out.max_unet_batch == 3 * 2
