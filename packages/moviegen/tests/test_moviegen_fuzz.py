"""Fuzzed contract: public functions give a finite, well-shaped result or a clear error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from papershelf.moviegen.config import preset, tae_preset
from papershelf.moviegen.eval import colour_accuracy, motion_consistency, psnr, shape_scores
from papershelf.moviegen.flow import interpolate, sample_t_logit_normal, target_velocity
from papershelf.moviegen.pipeline import MovieGenPipeline, default_scheduler
from papershelf.moviegen.sampler import euler_sample
from papershelf.moviegen.schedules import linear_quadratic_t
from papershelf.moviegen.tae import TemporalAutoencoder, outlier_penalty_loss
from papershelf.moviegen.text import MultiTextConditioner, TextContext, WordEncoder
from papershelf.moviegen.transformer import MovieGenTransformer

FUZZ = settings(derandomize=True, max_examples=12, deadline=None)
NAMES = ("guidance", "r", "z", "x", "t", "video", "shape", "num", "steps", "height", "width",
         "prompt", "output_type", "n_emulated", "n_linear", "cond", "text", "latent", "sigma")  # fmt: skip

SCALARS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-3, 20),
    st.booleans(),
    st.sampled_from([np.float32(2.0), np.float64(float("nan")), torch.tensor(1.5), "x", None]),
)


def _clear(err: Exception) -> bool:
    msg = str(err).lower()
    return any(n in msg for n in NAMES)


def _outcome(fn, check) -> None:
    try:
        out = fn()
    except (ValueError, TypeError) as e:
        assert _clear(e), f"unclear error: {e!r}"
        return
    check(out)


def _finite(x: torch.Tensor) -> None:
    assert bool(torch.isfinite(x).all())


_MODEL = MovieGenTransformer(preset("tiny", text_dims={"w": 4}, max_pos=(4, 4, 4))).eval()
with torch.no_grad():
    _MODEL.proj_out.weight.normal_(0, 0.1)
_TEXT = TextContext({"w": torch.randn(2, 3, 4)}, {"w": torch.ones(2, 3, dtype=torch.bool)})


@FUZZ
@given(g=SCALARS)
def test_euler_sample_guidance(g):
    def run():
        return euler_sample(
            _MODEL,
            (2, 8, 1, 4, 4),
            _TEXT,
            guidance=g,
            t_grid=linear_quadratic_t(3, 10),
            generator=torch.Generator().manual_seed(0),
        )

    _outcome(run, lambda out: (_finite(out), out.shape == (2, 8, 1, 4, 4)))


@FUZZ
@given(r=SCALARS, dtype=st.sampled_from([torch.float32, torch.float64]),
       nan=st.booleans(), ndim=st.sampled_from([3, 4, 5]))  # fmt: skip
def test_outlier_penalty_loss(r, dtype, nan, ndim):
    z = torch.randn((2, 4, 3, 5, 5)[:ndim], dtype=dtype)
    if nan:
        z[0, 0, 0] = float("nan")
    _outcome(lambda: outlier_penalty_loss(z, r), lambda out: (_finite(out), out.ndim == 0))


@FUZZ
@given(t=st.one_of(st.floats(-1, 2, allow_nan=False), st.just(float("nan"))),
       shape=st.sampled_from([(2, 8, 1, 4, 4), (2, 8, 3, 4, 4), (2, 7, 1, 4, 4), (2, 8, 1, 3, 4)]))  # fmt: skip
def test_transformer_inputs(t, shape):
    x = torch.randn(shape)
    _outcome(lambda: _MODEL(x, torch.full((2,), t), _TEXT),
             lambda out: (_finite(out), out.shape == x.shape))  # fmt: skip


_TAE = TemporalAutoencoder(tae_preset("tiny", channels=(8, 8), norm_groups=4)).eval()


@FUZZ
@given(shape=st.sampled_from([(1, 3, 8, 32, 32), (1, 3, 3, 16, 16), (0, 3, 8, 32, 32),
                              (1, 3, 8, 30, 32), (1, 4, 8, 32, 32), (3, 8, 32, 32)]),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.uint8]))  # fmt: skip
def test_tae_encode_decode(shape, dtype):
    x = (
        (torch.rand(shape) * 2 - 1).to(dtype)
        if dtype != torch.uint8
        else torch.zeros(shape, dtype=dtype)
    )

    def run():
        with torch.no_grad():
            z = _TAE.encode(x).latent_dist.mode()
            return z, _TAE.decode(z, num_frames=shape[2]).sample

    def check(out):
        z, y = out
        _finite(z)
        _finite(y)
        assert y.shape == x.shape

    _outcome(run, check)


@FUZZ
@given(steps=SCALARS, n_emulated=SCALARS)
def test_linear_quadratic_t(steps, n_emulated):
    def check(t):
        assert t[0] == 0 and t[-1] == 1 and bool((t.diff() > 0).all())

    _outcome(lambda: linear_quadratic_t(steps, n_emulated), check)


@FUZZ
@given(shape=st.sampled_from([(2, 3), (4,), (1, 2, 2)]), sigma=SCALARS)
def test_flow_interpolate(shape, sigma):
    x1, x0, t = torch.randn(shape), torch.randn(shape), torch.rand(shape[0])

    def run():
        return interpolate(x1, x0, t, sigma), target_velocity(x1, x0, sigma)

    _outcome(run, lambda out: [(_finite(o), o.shape == x1.shape) for o in out])


@FUZZ
@given(num=st.integers(-2, 5))
def test_logit_normal(num):
    _outcome(lambda: sample_t_logit_normal(num, torch.Generator().manual_seed(0)),
             lambda t: (bool(((t > 0) & (t < 1)).all()), t.shape == (num,)))  # fmt: skip


@FUZZ
@given(video=st.sampled_from(["ok", "nan", "short"]))
def test_metrics(video):
    v = torch.rand(2, 3, 4, 8, 8) * 2 - 1
    if video == "nan":
        v[0, 0, 0, 0, 0] = float("nan")
    shapes = ["square", "disc"] if video != "short" else ["square"]

    def run():
        return (psnr(v, v.clone()), shape_scores(v, shapes), motion_consistency(v, ["left", "up"]),
                colour_accuracy(v, ["red", "blue"]))  # fmt: skip

    def check(out):
        assert bool(torch.isfinite(out[0]).all()) or video == "nan"
        assert 0 <= out[1]["shape_accuracy"] <= 1 and 0 <= out[3] <= 1

    _outcome(run, check)


_PIPE = MovieGenPipeline(_MODEL, TemporalAutoencoder(tae_preset("tiny", channels=(8, 8), norm_groups=4),
                         latent_channels=8) if False else _TAE,
                         default_scheduler(), MultiTextConditioner({"w": WordEncoder(["a"], dim=4)}))  # fmt: skip
_PIPE.set_progress_bar_config(disable=True)


@FUZZ
@given(g=SCALARS, neg=st.sampled_from([None, "a"]),
       output_type=st.sampled_from(["np", "pt", "pil", "latent", "mp4", None]),
       steps=st.sampled_from([1, 2, 2.0, "2"]))  # fmt: skip
def test_pipeline_contract(g, neg, output_type, steps):
    def run():
        return _PIPE("a", negative_prompt=neg, num_frames=2, height=32, width=32,
                     num_inference_steps=steps, guidance_scale=g, output_type=output_type,
                     generator=torch.Generator().manual_seed(0)).frames  # fmt: skip

    def check(frames):
        if isinstance(frames, torch.Tensor):
            _finite(frames)
        elif isinstance(frames, np.ndarray):
            assert np.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1

    _outcome(run, check)


def test_nan_guidance_is_refused_everywhere():
    for bad in (float("nan"), math.inf, 0.5):
        with pytest.raises(ValueError, match="guidance"):
            euler_sample(_MODEL, (2, 8, 1, 4, 4), _TEXT, guidance=bad)
    with pytest.raises(ValueError, match="guidance_scale"):
        _PIPE("a", guidance_scale=float("nan"), num_frames=2, height=32, width=32)
    with pytest.raises(ValueError, match="negative_prompt"):
        _PIPE("a", negative_prompt="a", guidance_scale=0.5, num_frames=2, height=32, width=32)
    with pytest.raises(ValueError, match="output_type"):
        _PIPE("a", output_type="gif", num_frames=2, height=32, width=32)
