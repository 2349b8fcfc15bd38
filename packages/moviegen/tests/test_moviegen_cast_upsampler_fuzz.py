"""Fuzzed contract of the spatial upsampler: a finite, well-shaped result or a clear error."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from papershelf.moviegen.cast import UPSAMPLER_PRESETS, SpatialUpsampler

FUZZ = settings(derandomize=True, max_examples=16, deadline=None)
NAMES = ("lowres", "steps", "window", "overlap", "x", "t", "cond", "text", "schedule")

_UP = SpatialUpsampler(UPSAMPLER_PRESETS["tiny"]).eval()
with torch.no_grad():  # non-zero velocities and conditioning weights
    _UP.transformer.proj_out.weight.normal_(0, 0.1)
    _UP.transformer.patchify.weight.normal_(0, 0.1)


def _outcome(fn, check) -> None:
    try:
        out = fn()
    except (ValueError, TypeError) as e:
        assert any(n in str(e).lower() for n in NAMES), f"unclear error: {e!r}"
        return
    check(out)


@FUZZ
@given(
    shape=st.tuples(st.integers(1, 2), st.sampled_from([3, 4]), st.integers(1, 6),
                    st.sampled_from([2, 3, 4]), st.sampled_from([2, 4])),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int64]),
    bad=st.sampled_from([None, "nan", "inf"]),
    steps=st.sampled_from([None, 2, 3, np.int64(2), 1, 2.0, "2", True]),
    window=st.sampled_from([None, None, 2, 4, 0, 5]),
    overlap=st.sampled_from([None, None, 0, 1, 3, -1]),
)  # fmt: skip
def test_upsample_contract(shape, dtype, bad, steps, window, overlap):
    lowres = (torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(dtype)
    if bad and dtype.is_floating_point:
        lowres.view(-1)[0] = float(bad)

    def run():
        return _UP.upsample(
            lowres, steps=steps, window=window, overlap=overlap,
            generator=torch.Generator().manual_seed(1),
        )  # fmt: skip

    def check(out):
        B, _, T, h, w = shape
        assert out.shape == (B, 3, T, 2 * h, 2 * w) and out.dtype == dtype
        assert bool(torch.isfinite(out).all())

    _outcome(run, check)


@FUZZ
@given(
    t=st.one_of(st.floats(0, 1), st.floats(-1, 2), st.just(float("nan"))),
    frames=st.integers(1, 6),
    same=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_forward_contract(t, frames, same, dtype):
    x = torch.randn(2, 12, frames, 4, 4, dtype=dtype)
    cond = torch.randn(2, 12, frames if same else frames + 1, 4, 4, dtype=dtype)

    def check(out):
        assert out.shape == x.shape and out.dtype == dtype and bool(torch.isfinite(out).all())

    _outcome(lambda: _UP(x, torch.full((2,), t), cond), check)
