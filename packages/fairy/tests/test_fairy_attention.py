"""Module-level tests of anchor attention: the math of Eq. (2), the processor, installation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from papershelf.core.testing import assert_close
from papershelf.fairy import (
    AnchorAttentionState,
    AnchorAttnProcessor,
    anchor_attention,
    anchor_sdpa,
)
from papershelf.fairy.attention import install_anchor_attention
from papershelf.fairy.metrics import inter_frame_variance


def _qkv(b=2, f=3, h=2, s=5, d=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, f, h, s, d, generator=g, dtype=dtype) for _ in range(3)]


def test_duplicate_keys_leave_attention_unchanged():
    q, k, v = _qkv()
    f = q.shape[1]
    plain = anchor_sdpa(q, k, v, None, None)
    # every frame attends to [K; K]: each logit appears twice, the softmax is unchanged
    for i in range(f):
        dup = anchor_sdpa(q[:, i : i + 1], k[:, i : i + 1], v[:, i : i + 1], k[:, i], v[:, i])
        assert_close(dup, plain[:, i : i + 1], atol=1e-12, rtol=0)


def test_anchor_sdpa_matches_explicit_softmax():
    q, k, v = _qkv(seed=1)
    ak = torch.randn(2, 2, 7, 4, dtype=torch.float64)
    av = torch.randn(2, 2, 7, 4, dtype=torch.float64)
    out = anchor_sdpa(q, k, v, ak, av)
    for bi in range(2):
        for fi in range(3):
            kk = torch.cat([k[bi, fi], ak[bi]], dim=1)  # (h, s + 7, d)
            vv = torch.cat([v[bi, fi], av[bi]], dim=1)
            w = torch.softmax(q[bi, fi] @ kk.transpose(1, 2) / 2.0, dim=-1)
            assert_close(out[bi, fi], w @ vv, atol=1e-12, rtol=0)


def test_anchor_sdpa_without_anchors_is_self_attention():
    q, k, v = _qkv(seed=2)
    ref = F.scaled_dot_product_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1))
    assert_close(anchor_sdpa(q, k, v, None, None).flatten(0, 1), ref, atol=1e-12, rtol=0)


def test_anchor_sdpa_bad_shapes():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="anchor_key"):
        anchor_sdpa(q, k, v, torch.zeros(3, 2, 5, 4, dtype=q.dtype), torch.zeros(3, 2, 5, 4))
    with pytest.raises(ValueError, match="both"):
        anchor_sdpa(q, k, v, k[:, 0], None)
    with pytest.raises(ValueError, match=r"\(B, F, H, S, d\)"):
        anchor_sdpa(q[0], k, v, None, None)


def _attn(seed=0):
    torch.manual_seed(seed)
    return Attention(query_dim=16, heads=2, dim_head=8).eval()


def _call(attn, proc, x, **kw):
    attn.set_processor(proc)
    with torch.no_grad():
        return attn(x, **kw)


def test_off_mode_equals_diffusers_processor():
    attn = _attn()
    x = torch.randn(6, 10, 16)
    ctx = torch.randn(6, 4, 16)
    st = AnchorAttentionState()
    ours = AnchorAttnProcessor(st, "a")
    assert_close(_call(attn, ours, x), _call(attn, AttnProcessor2_0(), x), atol=1e-6)
    # cross-attention is untouched in every mode
    st.begin("full", 2)
    assert_close(
        _call(attn, ours, x, encoder_hidden_states=ctx),
        _call(attn, AttnProcessor2_0(), x, encoder_hidden_states=ctx),
        atol=1e-6,
    )


def test_record_replay_and_joint_agree():
    attn = _attn(1)
    g = torch.Generator().manual_seed(0)
    branches, k, m, s, c = 3, 2, 4, 10, 16
    anchors = torch.randn(branches, k, s, c, generator=g)
    frames = torch.randn(branches, m, s, c, generator=g)
    st = AnchorAttentionState()
    proc = AnchorAttnProcessor(st, "layer")
    st.begin("record", k)
    st.call_index = 0
    out_anchor = _call(attn, proc, anchors.flatten(0, 1))
    assert st.cache_nbytes() == 2 * branches * k * s * c * 4
    st.begin("replay", m)
    st.call_index = 0
    out_frames = _call(attn, proc, frames.flatten(0, 1))
    st.begin("joint", k + m, k)
    st.call_index = 0
    both = _call(attn, proc, torch.cat([anchors, frames], dim=1).flatten(0, 1)).view(
        branches, k + m, s, c
    )
    assert_close(both[:, :k], out_anchor.view(branches, k, s, c), atol=1e-6)
    assert_close(both[:, k:], out_frames.view(branches, m, s, c), atol=1e-6)
    # a frame processed alone gets the same output as inside the batch (locality)
    st.begin("replay", 1)
    st.call_index = 0
    alone = _call(attn, proc, frames[:, 2])
    assert_close(alone, out_frames.view(branches, m, s, c)[:, 2], atol=1e-6)


def test_all_frames_as_anchors_is_full_cross_frame_attention():
    attn = _attn(2)
    x = torch.randn(3 * 4, 6, 16)
    st = AnchorAttentionState()
    proc = AnchorAttnProcessor(st, "l")
    st.begin("record", 4)
    st.call_index = 0
    rec = _call(attn, proc, x)
    # explicit: every frame of a branch attends to the concatenation of all its frames
    q = attn.to_q(x).view(3, 4, 6, 2, 8).permute(0, 1, 3, 2, 4)
    kk = attn.to_k(x).view(3, 4, 6, 2, 8).permute(0, 3, 1, 2, 4).reshape(3, 2, 24, 8)
    vv = attn.to_v(x).view(3, 4, 6, 2, 8).permute(0, 3, 1, 2, 4).reshape(3, 2, 24, 8)
    w = torch.softmax(q @ kk.unsqueeze(1).transpose(-1, -2) / 8**0.5, dim=-1)
    o = (w @ vv.unsqueeze(1)).permute(0, 1, 3, 2, 4).reshape(12, 6, 16)
    assert_close(rec, attn.to_out[0](o), atol=1e-5)


def test_anchors_lower_inter_frame_variance():
    """Sec. 3.2: frames with similar content attend to shared anchors -> more similar outputs."""
    attn = _attn(3)
    g = torch.Generator().manual_seed(0)
    n, s, c = 8, 16, 16
    content = torch.randn(1, s, c, generator=g)
    x = content + 0.5 * torch.randn(n, s, c, generator=g)
    st = AnchorAttentionState()
    proc = AnchorAttnProcessor(st, "l")
    plain = _call(attn, proc, x)
    st.begin("record", 3)
    st.call_index = 0
    _call(attn, proc, x[[0, 4, 7]])
    st.begin("replay", n)
    st.call_index = 0
    anchored = _call(attn, proc, x)
    assert inter_frame_variance(anchored) < 0.7 * inter_frame_variance(plain)


def test_replay_before_record_and_bad_modes():
    st = AnchorAttentionState()
    with pytest.raises(RuntimeError, match="replay before record"):
        st.begin("replay", 2)
    with pytest.raises(ValueError, match="mode"):
        st.begin("sideways", 2)
    with pytest.raises(ValueError, match="frames_in_call"):
        st.begin("record", 0)
    with pytest.raises(ValueError, match="num_anchors"):
        st.begin("joint", 2, 3)
    with pytest.raises(TypeError, match="AnchorAttentionState"):
        AnchorAttnProcessor("state", "x")  # type: ignore[arg-type]


def test_self_attention_mask_is_rejected():
    attn = _attn()
    st = AnchorAttentionState()
    st.begin("full", 2)
    with pytest.raises(ValueError, match="mask"):
        _call(
            attn,
            AnchorAttnProcessor(st, "l"),
            torch.randn(2, 4, 16),
            attention_mask=torch.ones(2, 4),
        )


def test_batch_not_multiple_of_frames():
    attn = _attn()
    st = AnchorAttentionState()
    st.begin("full", 3)
    with pytest.raises(RuntimeError, match="multiple"):
        _call(attn, AnchorAttnProcessor(st, "l"), torch.randn(4, 4, 16))


@pytest.fixture(scope="module")
def unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=8,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8,
        attention_head_dim=4,
        norm_num_groups=4,
    ).eval()


def test_install_replaces_only_attn1_and_restores(unet):
    before = dict(unet.attn_processors)
    with anchor_attention(unet) as st:
        now = unet.attn_processors
        for k, p in now.items():
            if k.endswith("attn1.processor"):
                assert isinstance(p, AnchorAttnProcessor)
                assert p.state is st
            else:
                assert p is before[k]
    assert all(unet.attn_processors[k] is before[k] for k in before)
    assert not unet._forward_pre_hooks
    with pytest.raises(KeyError), anchor_attention(unet):
        raise KeyError("boom")
    assert all(unet.attn_processors[k] is before[k] for k in before)
    assert not unet._forward_pre_hooks


def test_step_bookkeeping_checks_timesteps(unet):
    x = torch.randn(3, 8, 8, 8)
    ctx = torch.randn(3, 4, 8)
    with torch.no_grad(), anchor_attention(unet) as st:
        st.begin("record", 1)
        unet(x, 10, encoder_hidden_states=ctx)
        unet(x, 5, encoder_hidden_states=ctx)
        assert st.recorded_timesteps == [10.0, 5.0]
        st.begin("replay", 1)
        unet(x, 10, encoder_hidden_states=ctx)
        with pytest.raises(RuntimeError, match="timestep mismatch"):
            unet(x, 7, encoder_hidden_states=ctx)
        st.begin("replay", 1)
        unet(x, 10, encoder_hidden_states=ctx)
        unet(x, 5, encoder_hidden_states=ctx)
        with pytest.raises(RuntimeError, match="more UNet calls"):
            unet(x, 1, encoder_hidden_states=ctx)


def test_install_needs_self_attention():
    class NoAttn:
        def __init__(self):
            self.attn_processors = {"down.attn2.processor": object()}

    with pytest.raises(ValueError, match="attn1"):
        install_anchor_attention(NoAttn(), AnchorAttentionState())
