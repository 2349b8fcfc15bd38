"""Anchors matter end to end, on the hand-built "recolour" edit model (papershelf.fairy.toy).

The random tiny InstructPix2Pix barely reacts to anchors, so properties checked there cannot
tell a correct replay from a wrong one. Here the edit is decided by the pooled sampling noise
under each object, and anchor attention pools across frames: consistency gains are large and a
replay of the wrong step's anchors breaks the checks below (shown by running that mutant).
"""

from __future__ import annotations

import pytest
import torch

from papershelf.core.records import claim_test
from papershelf.core.testing import assert_close
from papershelf.fairy import FairyVideoEditor
from papershelf.fairy import attention as attention_module
from papershelf.fairy.metrics import tem_con
from papershelf.fairy.testing import synthetic_video
from papershelf.fairy.toy import PixelPoolVAE, RecolourUNet, recolour_instruct_pix2pix

KW = {"num_inference_steps": 6, "chunk_size": 4, "image_guidance_scale": 1.0}


@pytest.fixture(scope="module")
def editor():
    return FairyVideoEditor(recolour_instruct_pix2pix())


def _video(seed, n=12, size=64):
    return synthetic_video(n, size, size, seed=seed, speed=4.0)[0]


def test_attention_is_sharp_and_pools_objects():
    """attn1 of the recolour UNet attends to tokens of the same colour only."""
    unet = RecolourUNet()
    from diffusers.models.attention_processor import AttnProcessor

    c = torch.tensor([[0.5, -0.2, 0.1], [0.5, -0.2, 0.1], [-0.4, 0.3, 0.0]])
    tokens = torch.cat(
        [
            torch.tensor([[1.0, 0, 0, 0], [3.0, 0, 0, 0], [-7.0, 0, 0, 0]]),
            c,
            -0.5 * (c * c).sum(1, keepdim=True),
            torch.ones(3, 1),
        ],
        dim=1,
    )[None]
    unet.attn1.set_processor(AttnProcessor())
    out = unet.attn1(tokens)[0]
    assert_close(out[0, 0], torch.tensor(2.0), atol=1e-4)  # mean of the two matching tokens
    assert_close(out[2, 0], torch.tensor(-7.0), atol=1e-4)  # alone in its colour


def test_pixel_vae_round_trip():
    vae = PixelPoolVAE(4)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = vae.encode(x).latent_dist.mode()
    assert z.shape == (2, 4, 4, 4) and torch.all(z[:, 3] == 0)
    assert_close(vae.decode(z).sample[:, :, ::4, ::4], torch.nn.functional.avg_pool2d(x, 4))
    with pytest.raises(ValueError, match="factor"):
        PixelPoolVAE(3)


def test_fairy_beats_frame_wise_on_temporal_consistency(editor):
    """The claim the reproduction reports: paired over seeds, interval excludes zero."""
    fairy, frame_wise = [], []
    for seed in range(4):
        v = _video(seed)
        kw = {**KW, "generator": seed}
        frame_wise.append(
            tem_con(editor.edit_video(v, "recolour", anchor_mode="frame-wise", **kw).frames)
        )
        fairy.append(tem_con(editor.edit_video(v, "recolour", **kw).frames))
    test = claim_test(fairy, frame_wise, direction="greater")
    assert test.verdict == "holds", test
    assert test.diff > 0.02


def _replay_previous_step(monkeypatch):
    """The mutant: replay uses the anchors recorded one UNet call earlier."""
    orig = attention_module.AnchorAttnProcessor._cross_frame

    def mutant(self, q, k, v, scale):
        st = self.state
        if st.mode != "replay":
            return orig(self, q, k, v, scale)
        i = st.call_index
        st.call_index = max(i - 1, 0)
        try:
            return orig(self, q, k, v, scale)
        finally:
            st.call_index = i

    monkeypatch.setattr(attention_module.AnchorAttnProcessor, "_cross_frame", mutant)


def _copy_gap(editor):
    v = _video(1, n=6, size=32)
    clip = torch.stack([v[0], v[3], v[0]])
    out = editor.edit_video(clip, "recolour", anchor_indices=[0], generator=1, **KW).frames
    return float((out[2] - out[0]).abs().max())


def _recompute_gap(editor):
    v = _video(2, n=8, size=32)
    kw = {**KW, "generator": 2}
    a = editor.edit_video(v, "recolour", **kw).frames
    b = editor.edit_video(v, "recolour", anchor_mode="recompute", **kw).frames
    return float((a - b).abs().max())


def test_copy_of_the_anchor_gets_the_anchor_output(editor):
    assert _copy_gap(editor) < 1e-5


def test_recompute_equals_cache(editor):
    assert _recompute_gap(editor) < 1e-5


def test_wrong_step_replay_is_caught(editor, monkeypatch):
    """The two checks above fail on a replay of the previous step's anchors."""
    _replay_previous_step(monkeypatch)
    assert _copy_gap(editor) > 0.05
    assert _recompute_gap(editor) > 0.05
