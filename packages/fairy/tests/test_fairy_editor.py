"""End-to-end properties of Fairy editing on a tiny random InstructPix2Pix (8 frames, 32x32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from papershelf.core.testing import assert_close
from papershelf.fairy import FairyVideoEditor, anchor_attention
from papershelf.fairy.testing import synthetic_video, tiny_instruct_pix2pix

STEPS = 2
PROMPT = "make it snowy"


@pytest.fixture(scope="module")
def pipe():
    return tiny_instruct_pix2pix(0)


@pytest.fixture(scope="module")
def editor(pipe):
    return FairyVideoEditor(pipe)


@pytest.fixture(scope="module")
def video():
    return synthetic_video(8, 32, 32, seed=0)[0]


@pytest.fixture(scope="module")
def reference(editor, video):
    return editor.edit_video(video, PROMPT, num_inference_steps=STEPS, generator=0)


def _edit(editor, video, **kw):
    kw.setdefault("num_inference_steps", STEPS)
    kw.setdefault("generator", 0)
    return editor.edit_video(video, PROMPT, **kw)


def test_single_anchor_equal_to_frame_is_plain_instruct_pix2pix(editor, pipe, video):
    frame = video[2:3]
    ours = _edit(editor, frame, num_anchors=1).frames
    plain = pipe(
        prompt=[PROMPT],
        image=frame,
        num_inference_steps=STEPS,
        generator=[torch.Generator().manual_seed(0)],
        output_type="pt",
    ).images
    assert_close(ours, plain, atol=1e-5)


def test_copy_of_the_anchor_gets_the_anchor_output(editor, video):
    clip = torch.stack([video[0], video[5], video[0]])
    out = _edit(editor, clip, anchor_indices=[0]).frames
    assert_close(out[2], out[0], atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_chunked_equals_all_at_once(editor, video, reference, chunk_size):
    out = _edit(editor, video, chunk_size=chunk_size)
    assert out.anchor_indices == reference.anchor_indices == [0, 4, 7]
    assert_close(out.frames, reference.frames, atol=1e-5)


def test_recompute_mode_equals_cache_mode(editor, video, reference):
    out = _edit(editor, video, anchor_mode="recompute", chunk_size=2)
    assert out.cache_nbytes == 0
    assert out.max_unet_batch == 3 * (3 + 2)
    assert_close(out.frames, reference.frames, atol=1e-5)


def test_one_shared_generator_breaks_chunk_invariance(pipe, video):
    """Why the editor gives every frame its own generator: with one shared generator the
    ancestral noise a frame gets depends on its position in the batch."""
    outs = []
    for chunk in (1, 3):
        with torch.no_grad(), anchor_attention(pipe.unet) as st:
            st.begin("record", 1)
            pipe(
                prompt=[PROMPT],
                image=video[:1],
                num_inference_steps=STEPS,
                generator=[torch.Generator().manual_seed(0)],
                output_type="latent",
            )
            lat = []
            g = torch.Generator().manual_seed(0)
            for i in range(1, 4, chunk):
                st.begin("replay", chunk)
                lat.append(
                    pipe(
                        prompt=[PROMPT] * chunk,
                        image=video[i : i + chunk],
                        num_inference_steps=STEPS,
                        generator=g,
                        output_type="latent",
                    ).images
                )
        outs.append(torch.cat(lat))
    assert (outs[0] - outs[1]).abs().max() > 1e-3


def test_changing_a_non_anchor_frame_changes_only_that_frame(editor, video, reference):
    other = video.clone()
    other[3] = 1.0 - other[3]
    out = _edit(editor, other).frames
    changed = [i for i in range(8) if not torch.equal(out[i], reference.frames[i])]
    assert changed == [3]


def test_changing_an_anchor_changes_every_frame(editor, video, reference):
    other = video.clone()
    other[4] = 1.0 - other[4]
    out = _edit(editor, other).frames
    assert all(not torch.equal(out[i], reference.frames[i]) for i in range(8))


def _attn1_shapes(unet, h, w):
    """(tokens, channels) of every attn1 layer at latent size (h, w), found with hooks."""
    shapes = []
    hooks = [
        m.register_forward_pre_hook(
            lambda mod, args, kw: shapes.append(args[0].shape[1:]), with_kwargs=True
        )
        for n, m in unet.named_modules()
        if n.endswith("attn1")
    ]
    with torch.no_grad():
        unet(torch.zeros(1, 8, h, w), 1, encoder_hidden_states=torch.zeros(1, 4, 32))
    for hk in hooks:
        hk.remove()
    return shapes


def test_cache_size_closed_form_and_constant_in_frames(editor, pipe, video):
    k, steps, branches = 3, STEPS, 3
    per_anchor = sum(s * c for s, c in _attn1_shapes(pipe.unet, 16, 16))
    expected = 2 * k * per_anchor * steps * branches * 4  # float32
    sizes = {n: _edit(editor, video[:n]).cache_nbytes for n in (4, 8)}
    assert sizes[4] == sizes[8] == expected


def test_unet_batch_bounded_by_chunk(editor, video):
    out = _edit(editor, video, chunk_size=2)
    assert out.max_unet_batch == 3 * max(3, 2)  # anchor pass 3K, replay 3 * chunk
    out = _edit(
        editor, video, chunk_size=4, guidance_scale=1.0, image_guidance_scale=1.0
    )  # 1 branch
    assert out.max_unet_batch == 4


def test_output_types(editor, video):
    clip = video[:3]
    pt = _edit(editor, clip).frames
    arr = _edit(editor, clip, output_type="np").frames
    pil = _edit(
        editor, (clip.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8), output_type="pil"
    ).frames
    assert arr.dtype == np.uint8 and arr.shape == (3, 32, 32, 3)
    assert np.abs(arr.astype(int) - (pt.permute(0, 2, 3, 1).numpy() * 255).round()).max() <= 1
    assert len(pil) == 3 and pil[0].size == (32, 32)
    lat = _edit(editor, clip, output_type="latent").frames
    assert lat.shape == (3, 4, 16, 16)


def test_generator_object_and_seed_agree(editor, video):
    clip = video[:2]
    g = torch.Generator().manual_seed(123)
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(123)))
    a = _edit(editor, clip, generator=g, num_anchors=1).frames
    b = _edit(editor, clip, generator=seed, num_anchors=1).frames
    assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA generator")
def test_cuda_generator_object_draws_its_seed(editor, video):
    # Regression: the seed was drawn as a CPU tensor from the generator, which fails for
    # diffusers' usual torch.Generator("cuda") ("Expected a 'cpu' device type for generator").
    clip = video[:2]
    g = torch.Generator("cuda").manual_seed(123)
    twin = torch.Generator("cuda").manual_seed(123)
    seed = int(torch.randint(0, 2**62, (1,), generator=twin, device="cuda"))
    a = _edit(editor, clip, generator=g, num_anchors=1).frames
    b = _edit(editor, clip, generator=seed, num_anchors=1).frames
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"num_anchors": 0}, ValueError, "num_anchors"),
        ({"num_anchors": 2.0}, TypeError, "num_anchors"),
        ({"anchor_indices": [0, 0]}, ValueError, "distinct"),
        ({"anchor_indices": [8]}, ValueError, "out of range"),
        ({"anchor_indices": []}, ValueError, "at least one"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"chunk_size": None}, TypeError, "chunk_size"),
        ({"guidance_scale": float("nan")}, ValueError, "guidance_scale"),
        ({"guidance_scale": float("inf")}, ValueError, "guidance_scale"),
        ({"image_guidance_scale": -1.0}, ValueError, "image_guidance_scale"),
        ({"num_inference_steps": 0}, ValueError, "num_inference_steps"),
        ({"height": 31}, ValueError, "height must be a multiple"),
        ({"resolution": 1}, ValueError, "resolution"),
        ({"negative_prompt": ["x"]}, TypeError, "negative_prompt"),
        ({"anchor_mode": "share"}, ValueError, "anchor_mode"),
        ({"output_type": "gif"}, ValueError, "output_type"),
        ({"anchor_strategy": "random"}, ValueError, "anchor_strategy"),
        ({"generator": 1.5}, TypeError, "generator"),
        ({"distributed": True}, RuntimeError, "torch.distributed"),
        # regression: these reached diffusers (a TypeError printing the whole pipeline config,
        # or a ValueError about generator counts) instead of naming pipe_kwargs
        ({"pipe_kwargs": {"generator": 1}}, ValueError, "pipe_kwargs"),
        ({"pipe_kwargs": {"num_images_per_prompt": 2}}, ValueError, "pipe_kwargs"),
        ({"pipe_kwargs": {"output_type": "pil"}}, ValueError, "pipe_kwargs"),
        ({"pipe_kwargs": [("eta", 0.0)]}, TypeError, "pipe_kwargs"),
    ],
)
def test_bad_arguments(editor, video, kwargs, err, match):
    with pytest.raises(err, match=match):
        _edit(editor, video, **kwargs)


def test_bad_frames(editor, video):
    frames = [video[0], video[1, :, :30, :30]]
    with pytest.raises(ValueError, match="same size"):
        _edit(editor, frames)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _edit(editor, video * 2)
    with pytest.raises(TypeError, match="InstructPix2Pix"):
        FairyVideoEditor(object())
    with pytest.raises(TypeError, match="instruction"):
        editor.edit_video(video, "")


def test_pipe_kwargs_reach_every_pipeline_call(editor, video):
    steps = []
    out = _edit(
        editor,
        video[:3],
        num_anchors=1,
        chunk_size=1,
        pipe_kwargs={"callback_on_step_end": lambda p, i, t, kw: steps.append(i) or kw},
    )
    assert out.frames.shape[0] == 3 and steps == [0, 1] * 3  # anchor call + 2 chunk calls
