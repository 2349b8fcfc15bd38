"""The paper's CLIP metrics (Tem-Con, Frame-Acc) on a tiny random CLIP built in code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from papershelf.fairy.metrics import (
    clip_frame_acc,
    clip_image_embedder,
    clip_preprocess,
    clip_tem_con,
    clip_text_embedder,
)
from papershelf.fairy.testing import synthetic_video, tiny_clip_tokenizer


@pytest.fixture(scope="module")
def clip():
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    text = dict(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=1000,
        max_position_embeddings=16,
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        image_size=30,
        patch_size=6,
    )
    cfg = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    return CLIPModel(cfg).eval(), tiny_clip_tokenizer(16)


def test_preprocess_matches_transformers_clip_image_processor(clip):
    from transformers import CLIPImageProcessor

    model, _ = clip
    video, _ = synthetic_video(3, 40, 56, seed=0)
    ours = clip_preprocess(video, 30)
    proc = CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30})
    u8 = (video.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    ref = proc(images=list(u8), return_tensors="pt")["pixel_values"]
    assert ours.shape == ref.shape == (3, 3, 30, 30)
    # PIL's uint8 bicubic vs torch's float bicubic: a few grey levels at edges
    assert (ours - ref).abs().mean() < 0.05
    e_ours = clip_image_embedder(model)(video)
    with torch.no_grad():
        e_ref = model.get_image_features(pixel_values=ref)
    e_ref = e_ref if isinstance(e_ref, torch.Tensor) else e_ref.pooler_output
    cos = torch.nn.functional.cosine_similarity(e_ours, e_ref, dim=1)
    assert cos.min() > 0.99


def test_clip_tem_con(clip):
    model, _ = clip
    still = synthetic_video(1, 32, 32, seed=1)[0].repeat(4, 1, 1, 1)
    assert clip_tem_con(still, model) == pytest.approx(1.0, abs=1e-6)
    video, _ = synthetic_video(6, 32, 32, seed=1, speed=3.0)
    tc = clip_tem_con(video, model)
    assert -1.0 <= tc < 1.0
    assert clip_tem_con(video.flip(0), model) == pytest.approx(tc, abs=1e-6)
    shuffled = video[torch.tensor([0, 5, 1, 4, 2, 3])]
    assert clip_tem_con(shuffled, model) < tc  # consecutive frames of a motion are closest


def test_clip_frame_acc(clip):
    model, tok = clip
    video, _ = synthetic_video(6, 32, 32, seed=2, speed=3.0)
    acc = clip_frame_acc(video, model, tok, "a red square", "a blue square")
    swapped = clip_frame_acc(video, model, tok, "a blue square", "a red square")
    assert 0.0 <= acc <= 1.0 and acc + swapped == pytest.approx(1.0)
    img = torch.nn.functional.normalize(clip_image_embedder(model)(video), dim=1)
    txt = torch.nn.functional.normalize(
        clip_text_embedder(model, tok)(["a red square", "a blue square"]), dim=1
    )
    sims = img @ txt.T
    assert acc == pytest.approx(float((sims[:, 1] > sims[:, 0]).float().mean()))
    assert clip_frame_acc(video, model, tok, "same", "same") == 0.0


def test_clip_metric_errors(clip):
    model, tok = clip
    with pytest.raises(ValueError, match="at least 2"):
        clip_tem_con(torch.rand(1, 3, 32, 32), model)
    with pytest.raises(ValueError, match="NaN"):
        clip_tem_con(torch.full((2, 3, 32, 32), float("nan")), model)
    with pytest.raises(TypeError, match="target_prompt"):
        clip_frame_acc(torch.rand(2, 3, 32, 32), model, tok, "a", None)
