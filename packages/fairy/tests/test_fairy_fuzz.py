"""Fuzzed contract: every public function gives a finite, correctly shaped result or a
ValueError/TypeError whose message names an argument (never NaN, never an obscure crash)."""

from __future__ import annotations

import contextlib
import math
import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from papershelf.fairy import FairyVideoEditor, select_anchors
from papershelf.fairy.anchors import check_anchor_indices
from papershelf.fairy.attention import anchor_sdpa
from papershelf.fairy.augment import (
    AffineParams,
    apply_affine,
    paired_affine,
    paired_resized_crop,
    sample_affine,
)
from papershelf.fairy.costs import anchor_cache_nbytes, extra_attention_flops, keys_per_query
from papershelf.fairy.metrics import frame_acc, inter_frame_variance, tem_con, warp_error
from papershelf.fairy.testing import tiny_instruct_pix2pix
from papershelf.fairy.video import resize_frames, to_frames_tensor

SETTINGS = settings(
    derandomize=True,
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# scalar settings: plain, numpy scalars, 0-d tensors, and the bad ones
SCALARS = st.one_of(
    st.integers(-3, 12),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([np.int64(3), np.float32(2.5), np.float64(float("nan")), True, False, None]),
    st.builds(torch.tensor, st.integers(-2, 9)),
    st.builds(lambda v: torch.tensor(v, dtype=torch.float32), st.floats(-2, 9)),
    st.just("3"),
)


def _named(exc: Exception, names: tuple[str, ...]) -> bool:
    msg = str(exc)
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", msg) for n in names)


def _check(fn, names, *, shape=None):
    """Run ``fn``; accept a finite result (of ``shape``) or an error naming an argument."""
    try:
        out = fn()
    except (ValueError, TypeError) as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert _named(error, names), f"{type(error).__name__} names none of {names}: {error}"
        return None
    if isinstance(out, torch.Tensor):
        assert torch.isfinite(out).all(), "non-finite output"
        if shape is not None:
            assert tuple(out.shape) == shape
    elif isinstance(out, float):
        assert math.isfinite(out)
    return out


def _tensor(draw, shape, dtype, bad):
    x = torch.rand(
        shape, dtype=dtype, generator=torch.Generator().manual_seed(draw(st.integers(0, 99)))
    )
    if bad != "none" and x.numel():
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = {"nan": math.nan, "inf": math.inf}[bad]
    return x


@st.composite
def videos(draw, min_frames=1):
    n = draw(st.integers(min_frames - 1, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    bad = draw(st.sampled_from(["none", "none", "nan", "inf"]))
    return _tensor(draw, (n, 3, h, w), dtype, bad)


@SETTINGS
@given(n=SCALARS, k=SCALARS, strategy=st.sampled_from(["uniform", "first", "middle", "x"]))
def test_select_anchors(n, k, strategy):
    out = _check(
        lambda: select_anchors(n, k, strategy),
        ("num_frames", "num_anchors", "anchor_strategy"),
    )
    if out is not None:
        assert out == sorted(set(out)) and len(out) == int(k) and all(0 <= i < int(n) for i in out)


@SETTINGS
@given(idx=st.lists(SCALARS, max_size=4), n=st.integers(1, 6))
def test_check_anchor_indices(idx, n):
    _check(lambda: check_anchor_indices(idx, n), ("anchor_indices",))


@SETTINGS
@given(data=st.data(), anchors=st.booleans(), scale=SCALARS)
def test_anchor_sdpa(data, anchors, scale):
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    b, f, h, s, d = (data.draw(st.integers(0, 3)) for _ in range(5))
    bad = data.draw(st.sampled_from(["none", "none", "nan", "inf"]))
    q = _tensor(data.draw, (b, f, h, s, d), dtype, bad)
    k, v = torch.rand_like(q), torch.rand_like(q)
    a = data.draw(st.integers(0, 3))
    ak = torch.rand(b, h, a * s, d, dtype=dtype) if anchors else None
    av = torch.rand(b, h, a * s, d, dtype=dtype) if anchors else None
    scale = scale if data.draw(st.booleans()) else None
    _check(
        lambda: anchor_sdpa(q, k, v, ak, av, scale=scale),
        ("query", "key", "value", "anchor_key", "anchor_value", "scale"),
        shape=(b, f, h, s, d),
    )


@SETTINGS
@given(video=videos(), as_array=st.booleans())
def test_to_frames_tensor_and_resize(video, as_array):
    frames = video.permute(0, 2, 3, 1).numpy() if as_array else video
    out = _check(lambda: to_frames_tensor(frames), ("frames",))
    if out is not None:
        _check(
            lambda: resize_frames(out, 8, 6),
            ("frames", "height", "width"),
            shape=(len(out), 3, 8, 6),
        )


@SETTINGS
@given(video=videos())
def test_tem_con_and_variance(video):
    _check(lambda: tem_con(video), ("frames", "tem_con"))
    _check(lambda: inter_frame_variance(video), ("x",))


@SETTINGS
@given(video=videos(), src=st.sampled_from(["a", "b", None, 3]))
def test_frame_acc(video, src):
    def emb(x):
        return x.flatten(1)[:, :2].float() + 0.1

    def txt(ts):
        return torch.tensor([[1.0, 0.0], [0.0, 1.0]])[: len(ts)]

    out = _check(
        lambda: frame_acc(video, emb, txt, src, "b"),
        ("frames", "source_prompt", "embed_image", "embed_text"),
    )
    if out is not None:
        assert 0.0 <= out <= 1.0


@SETTINGS
@given(video=videos(min_frames=2), flow_bad=st.sampled_from(["none", "nan"]))
def test_warp_error(video, flow_bad):
    n, _, h, w = video.shape
    flow = torch.zeros(max(n - 1, 0), 2, h, w)
    if flow_bad == "nan" and flow.numel():
        flow[0, 0, 0, 0] = math.nan
    _check(lambda: warp_error(video, flow), ("frames", "flow", "warp_error"))


@SETTINGS
@given(rot=SCALARS, tr=SCALARS, shear=SCALARS, lo=SCALARS)
def test_sample_affine(rot, tr, shear, lo):
    p = _check(
        lambda: sample_affine(
            torch.Generator().manual_seed(0),
            max_rotation=rot,
            max_translate=tr,
            max_shear=shear,
            scale_range=(lo, 1.05),
        ),
        ("max_rotation", "max_translate", "max_shear", "scale_range[0]", "scale_range[1]"),
    )
    if p is not None:
        x = torch.rand(1, 3, 8, 8)
        _check(lambda: apply_affine(x, p), ("images", "params"), shape=(1, 3, 8, 8))


@SETTINGS
@given(
    angle=st.floats(allow_nan=True, allow_infinity=True, width=32),
    scale=st.floats(allow_nan=True, allow_infinity=True, width=32),
    video=videos(),
)
def test_paired_affine(angle, scale, video):
    p = AffineParams(angle=angle, translate=(0.0, 0.0), scale=scale, shear=(0.0, 0.0))
    _check(
        lambda: paired_affine(video, video.clone(), p),
        ("source", "target", "images", "params.angle", "params.scale"),
    )


@SETTINGS
@given(video=videos(), resize=SCALARS, crop=SCALARS)
def test_paired_resized_crop(video, resize, crop):
    _check(
        lambda: paired_resized_crop(video, video.clone(), resize=resize, crop=crop),
        ("source", "target", "resize", "crop"),
    )


@SETTINGS
@given(k=SCALARS, steps=SCALARS, tokens=SCALARS, m=SCALARS)
def test_cost_model(k, steps, tokens, m):
    _check(
        lambda: float(anchor_cache_nbytes([(16, 8), (tokens, 4)], k, steps)),
        ("num_anchors", "steps", "shapes[1][0]"),
    )
    _check(lambda: float(keys_per_query("fairy", tokens, 5, k)), ("tokens", "num_anchors"))
    _check(lambda: float(extra_attention_flops([(4, 8)], m)), ("extra_keys_per_token",))


@pytest.fixture(scope="module")
def editor():
    return FairyVideoEditor(tiny_instruct_pix2pix(0))


@settings(
    derandomize=True,
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(
        [
            "num_anchors",
            "chunk_size",
            "guidance_scale",
            "image_guidance_scale",
            "num_inference_steps",
            "resolution",
            "generator",
        ]
    ),
    value=SCALARS,
)
def test_edit_video_settings(editor, name, value):
    video = torch.rand(2, 3, 8, 8)
    kw = {"num_inference_steps": 1, "generator": 0, "resolution": 8, name: value}
    if name == "num_inference_steps":
        with contextlib.suppress(TypeError, ValueError, OverflowError):  # keep the fuzz fast
            kw[name] = min(int(value), 2) if not isinstance(value, bool | str) else value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = _check(lambda: editor.edit_video(video, "x", **kw).frames, (name,))
    if out is not None:
        assert out.shape[0] == 2 and out.shape[1] == 3
