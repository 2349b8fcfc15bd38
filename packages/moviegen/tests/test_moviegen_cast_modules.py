"""Cast members: shapes, conditioning paths, zero-init, MultiDiffusion, presets, bad input."""

from __future__ import annotations

import itertools

import pytest
import torch

from papershelf.core.testing import slow
from papershelf.moviegen.cast import (
    AUDIO_PRESETS,
    DACVAE1D,
    EDIT_PRESETS,
    PT2V_PRESETS,
    PT2V_STAGES,
    UPSAMPLER_PRESETS,
    VAE_PRESETS,
    AudioDiT,
    CastDiT,
    DACVAEConfig,
    DiTConfig,
    EditConditioning,
    EditModel,
    PersonalizedVideoModel,
    SpatialUpsampler,
    UpsamplerConfig,
    apply_stage,
    audio_param_count,
    degrade,
    dit_param_count,
    edit_param_count,
    integrate,
    multidiffusion_velocity,
    multidiffusion_weights,
    pt2v_param_count,
    upsampler_param_count,
    window_starts,
)
from papershelf.moviegen.cast._synth import (
    bouncing_clips,
    depth_to_space,
    moving_shapes,
    nearest_colour,
    space_to_depth,
)
from papershelf.moviegen.config import preset
from papershelf.moviegen.schedules import linear_quadratic_t
from papershelf.moviegen.text import TextContext
from papershelf.moviegen.transformer import MovieGenTransformer


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randomize_out(net: torch.nn.Module) -> None:
    with torch.no_grad():
        (net.out if isinstance(net, CastDiT) else net.proj_out).weight.normal_(0, 0.1)


def _perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def n_params(m: torch.nn.Module, skip: str | None = None) -> int:
    return sum(p.numel() for n, p in m.named_parameters() if not (skip and n.startswith(skip)))


# ------------------------------------------------------------------ MultiDiffusion / solvers
@pytest.mark.parametrize(
    ("length", "window", "overlap"), [(8, 4, 2), (28, 16, 8), (5, 14, 4), (30, 14, 4)]
)
@pytest.mark.parametrize("kind", ["uniform", "triangular"])
def test_multidiffusion_weights_sum_to_one(length, window, overlap, kind):
    starts, w = multidiffusion_weights(length, window, overlap, kind)
    assert torch.allclose(w.sum(0), torch.ones(length, dtype=torch.float64))
    assert starts[0] == 0 and starts[-1] + min(window, length) == length
    assert all(b - a <= window - overlap for a, b in itertools.pairwise(starts))


def test_triangular_weights_peak_at_window_centres():
    starts, w = multidiffusion_weights(28, 16, 8, "triangular")
    assert starts == [0, 8, 12]
    assert w[1, 12] > w[0, 12] and w[0, 4] == 1.0


def test_single_window_multidiffusion_equals_plain():
    x = torch.randn(2, 3, 5)
    t = torch.rand(2)

    def f(xs, tt, s):
        return xs * tt[:, None, None] + s + 1

    out = multidiffusion_velocity(f, x, t, dim=2, window=8, overlap=2, kind="triangular")
    assert torch.allclose(out, f(x, t, 0))


def test_multidiffusion_of_a_position_wise_field_is_exact():
    x = torch.randn(1, 2, 30)
    for kind in ("uniform", "triangular"):
        out = multidiffusion_velocity(lambda xs, tt, s: 2 * xs, x, torch.zeros(1), 2, 14, 4, kind)
        assert torch.allclose(out, 2 * x, atol=1e-6)


def test_integrate_lands_on_point_mass():
    mu = torch.tensor([[1.5, -2.0]])

    def v(x, t):  # analytic field of data delta_mu (sigma_min = 0)
        return (mu - x) / (1 - t[:, None]).clamp_min(1e-6)

    x0 = torch.randn(1, 2, generator=gen())
    for method in ("euler", "midpoint"):
        out = integrate(v, x0, linear_quadratic_t(50), method)
        assert torch.allclose(out, mu, atol=1e-4)


def test_solver_and_window_errors():
    with pytest.raises(ValueError, match="method"):
        integrate(lambda x, t: x, torch.zeros(1), torch.linspace(0, 1, 3), "rk4")
    with pytest.raises(ValueError, match="increasing"):
        integrate(lambda x, t: x, torch.zeros(1), torch.tensor([0.0, 0.5, 0.4]))
    with pytest.raises(ValueError, match="overlap"):
        window_starts(10, 4, 4)
    with pytest.raises(ValueError, match="kind"):
        multidiffusion_weights(10, 4, 1, "hann")


def test_dit_param_count_and_zero_velocity_at_init():
    for mlp in ("swiglu", "gelu"):
        cfg = DiTConfig(in_dim=10, out_dim=6, dim=32, depth=2, heads=4, ffn_dim=40, mlp=mlp)
        net = CastDiT(cfg)
        assert n_params(net) == dit_param_count(cfg)
        out = net(torch.randn(2, 5, 10), torch.rand(2), torch.zeros(5, 32))
        assert out.shape == (2, 5, 6) and torch.count_nonzero(out) == 0
    with pytest.raises(ValueError, match="divisible"):
        DiTConfig(in_dim=1, out_dim=1, dim=30, heads=4)


# ------------------------------------------------------------------ upsampler
def test_upsampler_shapes_zero_init_and_count():
    cfg = UPSAMPLER_PRESETS["tiny"]
    up = SpatialUpsampler(cfg)
    assert isinstance(up.transformer, MovieGenTransformer)  # one backbone for the cast
    assert n_params(up) == upsampler_param_count(cfg)
    _randomize_out(up.transformer)
    x = torch.randn(2, cfg.latent_channels, 4, 4, 4)
    c1, c2 = torch.randn_like(x), torch.randn_like(x)
    t = torch.rand(2)
    # Zero-init conditioning channels: at init the model ignores the low-res latent.
    assert torch.equal(up(x, t, c1), up(x, t, c2))
    with torch.no_grad():
        up.transformer.patchify.weight[:, cfg.latent_channels :].normal_(0, 0.1)
    assert not torch.allclose(up(x, t, c1), up(x, t, c2))  # the channels are wired in
    lr = torch.rand(1, 3, 6, 4, 4) * 2 - 1
    assert up.condition(lr).shape == (1, cfg.latent_channels, 6, 4, 4)
    out = up.upsample(lr, steps=3, generator=gen())
    assert out.shape == (1, 3, 6, 8, 8)
    assert torch.equal(out, up.upsample(lr, steps=3, generator=gen()))
    # a non-integer factor through size=: bilinear to the target, then the codec
    frames = lr.transpose(1, 2).reshape(6, 3, 4, 4)
    big = torch.nn.functional.interpolate(frames, size=(6, 6), mode="bilinear")
    ref = space_to_depth(big.reshape(1, 6, 3, 6, 6).transpose(1, 2))
    assert torch.equal(up.condition(lr, size=(6, 6)), ref)
    assert up.upsample(lr, steps=2, generator=gen(), size=(6, 6)).shape == (1, 3, 6, 6, 6)
    with pytest.raises(ValueError, match="size"):
        up.upsample(lr, steps=2, size=(6, 0))


def test_upsampler_paper_preset_is_7b():
    assert 6.5e9 < upsampler_param_count(UPSAMPLER_PRESETS["7b"]) < 7.5e9


def test_upsampler_single_window_equals_plain_euler():
    cfg = UPSAMPLER_PRESETS["tiny"]
    up = SpatialUpsampler(cfg)
    _randomize_out(up.transformer)
    with torch.no_grad():
        up.transformer.patchify.weight.normal_(0, 0.1)
    lr = torch.rand(1, 3, 4, 4, 4)
    got = up.upsample(lr, steps=4, generator=gen(3))
    cond = up.condition(lr)
    x0 = torch.randn(cond.shape, generator=gen(3))
    from papershelf.moviegen.schedules import linear_t

    with torch.no_grad():
        ref = up.decode(integrate(lambda x, t: up(x, t, cond), x0, linear_t(4)))
    assert torch.allclose(got, ref, atol=1e-6)


def _t2v_for_upsampler(channels: int = 12) -> MovieGenTransformer:
    cfg = preset("tiny", in_channels=channels, max_pos=(4, 4, 4), text_dims={"w": 9})
    return _perturb(MovieGenTransformer(cfg)).eval()


def test_upsampler_from_t2v_loads_every_key_and_is_t2v_at_init():
    t2v = _t2v_for_upsampler()
    up = SpatialUpsampler.from_t2v(t2v, window=4, overlap=2).eval()
    src, dst = t2v.state_dict(), up.transformer.state_dict()
    assert set(src) == set(dst)  # one backbone: every T2V key, nothing renamed
    assert set(up.state_dict()) == {f"transformer.{k}" for k in src}
    for k in src:
        if k == "patchify.weight":  # T2V's input channels, then the zero-init low-res latent
            assert torch.equal(dst[k][:, :12], src[k]) and not bool(dst[k][:, 12:].any())
        else:
            assert torch.equal(src[k], dst[k]), k
    x, t = torch.randn(2, 12, 3, 4, 4), torch.rand(2)
    text = TextContext({"w": torch.randn(2, 3, 9)}, {"w": torch.ones(2, 3, dtype=torch.bool)})
    ref = t2v(x, t, text)
    for _ in range(2):  # any low-resolution input: exactly the T2V velocity at initialisation
        assert torch.equal(up(x, t, torch.randn_like(x), text), ref)
    assert up.text_conditioned and up.cfg.codec == "vae" and up.cfg.window == 4
    # grown position tables for the higher resolution keep every other key
    big = SpatialUpsampler.from_t2v(t2v, window=4, overlap=2, max_pos=(4, 8, 8))
    assert big.transformer.pos_h.shape == (8, t2v.cfg.dim) and big.cfg.max_h == 8
    assert big.config.transformer_config["max_pos"] == [4, 8, 8]
    assert torch.equal(big.transformer.pos_h[0], t2v.pos_h[0])  # end rows kept
    assert torch.equal(big.transformer.blocks[0].ffn.w1.weight, t2v.blocks[0].ffn.w1.weight)


def test_upsampler_vae_codec_is_the_tae_frame_by_frame():
    from papershelf.moviegen.config import tae_preset
    from papershelf.moviegen.tae import TemporalAutoencoder

    tae = _perturb(TemporalAutoencoder(tae_preset("tiny", channels=(8, 8), norm_groups=4)))
    tae.register_to_config(scaling_factor=0.5)
    tae.eval()
    up = SpatialUpsampler.from_t2v(_t2v_for_upsampler(channels=8), window=4, overlap=2)
    video = torch.rand(2, 3, 3, 16, 16, generator=gen(4)) * 2 - 1
    z = up.encode(video, tae)
    assert z.shape == (2, 8, 3, 4, 4)
    with torch.no_grad():
        for f in range(3):  # each frame is a one-frame video; latents divided by the scale
            ref = tae.encode(video[:, :, f : f + 1]).latent_dist.mode()[:, :, 0] / 0.5
            torch.testing.assert_close(z[:, :, f], ref, atol=1e-6, rtol=0)
            dec = tae.decode(z[:, :, f : f + 1] * 0.5, num_frames=1).sample[:, :, 0]
            torch.testing.assert_close(up.decode(z, tae)[:, :, f], dec, atol=1e-6, rtol=0)
    lr = torch.rand(1, 3, 2, 8, 8, generator=gen(5)) * 2 - 1
    bilinear = torch.nn.functional.interpolate(
        lr[:, :, 0], scale_factor=2, mode="bilinear", align_corners=False
    )
    ref = up.encode(bilinear[:, :, None], tae)[:, :, 0]
    torch.testing.assert_close(up.condition(lr, tae)[:, :, 0], ref, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="latent channels"):
        SpatialUpsampler.from_t2v(_t2v_for_upsampler(), window=4).encode(video, tae)


def test_degrade_shapes_determinism_and_identity_limit():
    hr, _, _ = moving_shapes(3, 4, 8, obj=3, generator=gen())
    a = degrade(hr, generator=gen(1))
    assert a.shape == (3, 3, 4, 4, 4) and torch.equal(a, degrade(hr, generator=gen(1)))
    clean = degrade(hr, p_blur=0, p_noise=0, quantize=False, generator=gen(1))
    assert torch.allclose(clean, torch.nn.functional.avg_pool3d(hr, (1, 2, 2)), atol=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        degrade(torch.zeros(1, 3, 2, 7, 8))


def test_upsampler_bad_input():
    up = SpatialUpsampler(UPSAMPLER_PRESETS["tiny"])
    x = torch.zeros(1, 12, 4, 4, 4)
    with pytest.raises(ValueError, match="cond"):
        up(x, torch.zeros(1), torch.zeros(1, 12, 4, 4, 2))
    with pytest.raises(ValueError, match="position tables"):
        up(torch.zeros(1, 12, 9, 4, 4), torch.zeros(1), torch.zeros(1, 12, 9, 4, 4))
    with pytest.raises(ValueError, match="overlap"):
        UpsamplerConfig(window=4, overlap=4)
    with pytest.raises(ValueError, match="steps"):
        up.upsample(torch.zeros(1, 3, 2, 4, 4), steps=1)
    with pytest.raises(ValueError, match="lowres"):
        up.upsample(torch.zeros(1, 4, 2, 4, 4))
    with pytest.raises(ValueError, match="codec"):
        UpsamplerConfig(codec="jpeg")
    with pytest.raises(ValueError, match="12 latent channels"):
        UpsamplerConfig(latent_channels=16)
    with pytest.raises(TypeError, match="cfg"):
        SpatialUpsampler()
    t = torch.zeros(1)
    text = TextContext({"w": torch.zeros(1, 1, 9)}, {"w": torch.ones(1, 1, dtype=torch.bool)})
    with pytest.raises(ValueError, match="text=None"):
        up(x, t, x, text)
    t2v = _t2v_for_upsampler()
    cond_up = SpatialUpsampler.from_t2v(t2v, window=4, overlap=2)
    with pytest.raises(TypeError, match="TextContext"):
        cond_up(x, t, x)
    with pytest.raises(ValueError, match="vae="):
        cond_up.upsample(torch.zeros(1, 3, 2, 4, 4), text=text)
    with pytest.raises(ValueError, match="extra_in_channels"):
        SpatialUpsampler.from_t2v(cond_up.transformer)
    with pytest.raises(ValueError, match="patch"):
        SpatialUpsampler.from_t2v(MovieGenTransformer(preset("tiny", patch=(2, 2, 2))))
    with pytest.raises(TypeError, match="MovieGenTransformer"):
        SpatialUpsampler.from_t2v(up)  # type: ignore[arg-type]


# ------------------------------------------------------------------ audio
@pytest.mark.parametrize("n", [1, 31, 32, 100, 512])
def test_dacvae_hop(n):
    vae = DACVAE1D(VAE_PRESETS["tiny"])
    mean, logvar = vae.encode(torch.randn(2, 1, n))
    assert mean.shape == logvar.shape == (2, 8, -(-n // 32))
    assert vae.decode(mean, n).shape == (2, 1, n)


def test_dacvae_paper_hop_and_bad_input():
    assert VAE_PRESETS["paper"].hop == 1920  # 48 kHz -> 25 Hz
    assert DACVAEConfig(strides=(3, 5), channels=(4, 4, 4)).hop == 15
    with pytest.raises(ValueError, match="channels"):
        DACVAEConfig(strides=(2, 2), channels=(4, 4))
    with pytest.raises(ValueError, match="wav"):
        DACVAE1D(VAE_PRESETS["tiny"]).encode(torch.zeros(2, 100))


def test_audio_dit_conditioning_paths():
    cfg = AUDIO_PRESETS["tiny"]
    dit = AudioDiT(cfg)
    assert n_params(dit) == audio_param_count(cfg)
    assert 11.5e9 < audio_param_count(AUDIO_PRESETS["13b"]) < 13.5e9
    _randomize_out(dit.net)
    x, t = torch.randn(2, 8, 16), torch.rand(2)
    video, text = torch.randn(2, 16, cfg.video_dim), torch.randn(2, 1, cfg.text_dim)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :4] = True
    base = dit(x, t, video, text)
    # Zero-init context and mask columns: at init the model ignores the masked context.
    assert torch.equal(base, dit(x, t, video, text, context=torch.randn_like(x), mask=mask))
    assert not torch.allclose(base, dit(x, t, torch.randn_like(video), text))
    assert not torch.allclose(base, dit(x, t, video, torch.randn_like(text)))
    # Video at another frame rate is resampled to the audio frames.
    assert dit(x, t, torch.randn(2, 32, cfg.video_dim), text).shape == x.shape


def test_audio_generate_keeps_context_and_is_deterministic():
    dit = AudioDiT(AUDIO_PRESETS["tiny"])
    _randomize_out(dit.net)
    video, text = torch.randn(1, 28, 64), torch.randn(1, 1, 2)
    ctx = torch.randn(1, 8, 28)
    mask = torch.zeros(1, 28, dtype=torch.bool)
    mask[:, :5] = True
    kw = dict(steps=3, window=16, overlap=8, context=ctx, mask=mask)
    a = dit.generate(video, text, 28, generator=gen(), **kw)
    assert torch.equal(a[:, :, :5], ctx[:, :, :5])
    assert torch.equal(a, dit.generate(video, text, 28, generator=gen(), **kw))
    assert dit.generate(
        video, text, 28, steps=2, guidance=3.0, window=16, overlap=8, generator=gen()
    ).shape == (1, 8, 28)


def test_audio_bad_input():
    dit = AudioDiT(AUDIO_PRESETS["tiny"])
    x = torch.zeros(1, 8, 16)
    with pytest.raises(ValueError, match="max_len"):
        dit(torch.zeros(1, 8, 17), torch.zeros(1), torch.zeros(1, 17, 64), torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="video"):
        dit(x, torch.zeros(1), torch.zeros(1, 16, 5), torch.zeros(1, 1, 2))
    with pytest.raises(ValueError, match="guidance"):
        dit.generate(torch.zeros(1, 16, 64), torch.zeros(1, 1, 2), 16, guidance=0.5)


# ------------------------------------------------------------------ PT2V
def test_pt2v_reference_tokens_join_text():
    cfg = PT2V_PRESETS["tiny"]
    m = PersonalizedVideoModel(cfg)
    text, ref = torch.randn(2, 3, cfg.text_dim), torch.rand(2, 3, 8, 8)
    ctx, mask = m.context(text, ref)
    n_img = (cfg.image_size // cfg.vision_patch) ** 2
    assert ctx.shape == (2, 3 + n_img, cfg.dim) and bool(mask.all())
    ctx0, mask0 = m.context(text, None)
    assert ctx0.shape == ctx.shape and not bool(mask0[:, 3:].any()) and bool(mask0[:, :3].all())
    assert torch.allclose(ctx[:, :3], ctx0[:, :3])  # text tokens unchanged by the reference
    _randomize_out(m.transformer)
    x, t = torch.randn(2, 12, 4, 4, 4), torch.rand(2)
    assert not torch.allclose(m(x, t, text, ref), m(x, t, text, torch.rand(2, 3, 8, 8)))
    assert m.sample((2, 12, 4, 4, 4), text, ref, steps=2, generator=gen()).shape == x.shape
    # CFG against the reference-free branch: w = 1 is the conditional pass
    a = m.sample((1, 12, 2, 4, 4), text[:1], ref[:1], steps=2, generator=gen(), guidance=1.0)
    b = m.sample((1, 12, 2, 4, 4), text[:1], ref[:1], steps=2, generator=gen(), guidance=3.0)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="guidance"):
        m.sample((1, 12, 2, 4, 4), text[:1], ref[:1], steps=2, guidance=float("nan"))


def _t2v(extra: int = 0) -> MovieGenTransformer:
    cfg = preset("tiny", in_channels=12, patch=(1, 1, 1), max_pos=(4, 4, 4), text_dims={"w": 9})
    return _perturb(MovieGenTransformer(cfg)).eval()


def test_pt2v_from_t2v_loads_every_key_and_is_t2v_without_reference():
    t2v = _t2v()
    m = PersonalizedVideoModel.from_t2v(t2v).eval()
    src, dst = t2v.state_dict(), m.transformer.state_dict()
    assert set(src) == set(dst)  # one backbone: every T2V key, nothing renamed
    assert all(torch.equal(src[k], dst[k]) for k in src)
    x, t, text = torch.randn(2, 12, 2, 4, 4), torch.rand(2), torch.randn(2, 3, 9)
    tc = TextContext({"w": text}, {"w": torch.ones(2, 3, dtype=torch.bool)})
    assert torch.equal(m(x, t, text, None), t2v(x, t, tc))  # exactly T2V at initialisation
    assert not torch.allclose(m(x, t, text, torch.rand(2, 3, 8, 8)), t2v(x, t, tc))


def test_edit_from_t2v_loads_every_key_and_is_t2v_at_init():
    t2v = _t2v()
    m = EditModel.from_t2v(t2v, n_tasks=3).eval()
    src, dst = t2v.state_dict(), m.transformer.state_dict()
    assert set(src) == set(dst)
    for k in src:
        if k == "patchify.weight":  # T2V's input channels, then zero-initialised conditioning
            assert torch.equal(dst[k][:, :12], src[k]) and not bool(dst[k][:, 12:].any())
        else:
            assert torch.equal(src[k], dst[k]), k
    x, t, text = torch.randn(2, 12, 2, 4, 4), torch.rand(2), torch.randn(2, 3, 9)
    tc = TextContext({"w": text}, {"w": torch.ones(2, 3, dtype=torch.bool)})
    task = torch.tensor([0, 2])
    ref = t2v(x, t, tc)
    # any input video, any task: the conditioning weighs zero; tokens masked -> exactly T2V
    out = m(x, t, torch.randn_like(x), text, task, task_tokens=False)
    assert torch.equal(out, ref)
    # the appended task tokens renormalise the cross-attention (the paper appends them)
    assert m(x, t, torch.randn_like(x), text, task).shape == ref.shape
    with pytest.raises(ValueError, match="patch"):
        EditModel.from_t2v(MovieGenTransformer(preset("tiny", patch=(2, 2, 2))))


def test_pt2v_stages_and_counts():
    m = PersonalizedVideoModel(PT2V_PRESETS["tiny"])
    assert [s.freeze_vision for s in PT2V_STAGES] == [True, True, False]
    assert [s.cross_paired for s in PT2V_STAGES] == [False, False, True]
    assert PT2V_STAGES[0].num_frames == 8
    frozen = apply_stage(m, PT2V_STAGES[0])
    assert not any(p.requires_grad for p in m.conditioner.vision.parameters())
    assert len(apply_stage(m, PT2V_STAGES[2])) > len(frozen)
    assert n_params(m, "conditioner.vision") == pt2v_param_count(m.cfg)
    assert 29.0e9 < pt2v_param_count(PT2V_PRESETS["30b"]) < 30.5e9
    with pytest.raises(ValueError):
        m.context(torch.zeros(1, 1, 9), torch.zeros(1, 3, 16, 16))


# ------------------------------------------------------------------ Edit
def test_edit_adds_four_task_tokens_and_zero_init_source():
    cfg = EDIT_PRESETS["tiny"]
    m = EditModel(cfg)
    assert n_params(m) == edit_param_count(cfg)
    assert 29.0e9 < edit_param_count(EDIT_PRESETS["30b"]) < 30.5e9
    text = torch.randn(2, 3, cfg.text_dim)
    task = torch.tensor([0, 1])
    ctx, mask, temb = m.context(text, task)
    assert ctx.shape[1] == 3 + 4 and mask.shape == (2, 7) and temb.shape == (2, cfg.dim)
    assert not bool(temb.any())  # zero-initialised time offset
    _randomize_out(m.transformer)
    x, t = torch.randn(2, 12, 4, 4, 4), torch.rand(2)
    # Zero-init input-video columns: at init the editor ignores the input video.
    assert torch.equal(
        m(x, t, torch.randn_like(x), text, task), m(x, t, torch.randn_like(x), text, task)
    )
    assert not torch.allclose(m(x, t, x, text, task), m(x, t, x, text, task.flip(0)))
    out = m.edit(torch.randn(1, 12, 1, 4, 4), text[:1], task[:1], steps=2, generator=gen())
    assert out.shape == (1, 12, 1, 4, 4)
    cfg_out = m.edit(
        torch.randn(1, 12, 1, 4, 4), text[:1], task[:1], steps=2, generator=gen(), guidance=3.0
    )
    assert cfg_out.shape == out.shape and not torch.allclose(cfg_out, out)
    with pytest.raises(ValueError, match="guidance"):
        m.edit(torch.randn(1, 12, 1, 4, 4), text[:1], task[:1], guidance=0.5)


def test_edit_bad_input():
    cond = EditConditioning(2, 8)
    with pytest.raises(ValueError, match="task ids"):
        cond(torch.tensor([2]))
    with pytest.raises(TypeError, match="integer"):
        cond(torch.tensor([0.0]))
    m = EditModel(EDIT_PRESETS["tiny"])
    with pytest.raises(ValueError, match="cond"):
        m(
            torch.zeros(1, 12, 1, 4, 4),
            torch.zeros(1),
            torch.zeros(1, 12, 2, 4, 4),
            torch.zeros(1, 1, 13),
            torch.tensor([1]),
        )


# ------------------------------------------------------------------ synthetic data
def test_synthetic_data():
    v, c, _ = moving_shapes(8, 4, 8, obj=3, generator=gen())
    assert torch.equal(nearest_colour(v), c)
    assert torch.equal(depth_to_space(space_to_depth(v)), v)
    video, events = bouncing_clips(16, 28, generator=gen())
    x = (video[:, 0, :, 0] > 0).float().argmax(-1)
    assert torch.equal(events, (x == 0) | (x == 14))
    assert bool(events.any())


def test_pt2v_and_edit_sampling_is_deterministic():
    torch.manual_seed(0)
    pt2v, edit = PersonalizedVideoModel(PT2V_PRESETS["tiny"]), EditModel(EDIT_PRESETS["tiny"])
    _randomize_out(pt2v.transformer)
    _randomize_out(edit.transformer)
    text, ref = torch.randn(2, 1, 9), torch.rand(2, 3, 8, 8)
    a = pt2v.sample((2, 12, 2, 4, 4), text, ref, steps=3, generator=gen(7))
    assert torch.equal(a, pt2v.sample((2, 12, 2, 4, 4), text, ref, steps=3, generator=gen(7)))
    assert not torch.equal(a, pt2v.sample((2, 12, 2, 4, 4), text, ref, steps=3, generator=gen(8)))
    src, instr, task = torch.randn(2, 12, 2, 4, 4), torch.randn(2, 1, 13), torch.tensor([1, 0])
    b = edit.edit(src, instr, task, steps=3, generator=gen(7))
    assert torch.equal(b, edit.edit(src, instr, task, steps=3, generator=gen(7)))


@slow  # the first meta-device build in a process costs ~15 s of one-off setup on this CPU
def test_paper_presets_closed_form_counts_match_meta_models():
    presets = [
        (SpatialUpsampler, upsampler_param_count, UPSAMPLER_PRESETS["7b"], None),
        (AudioDiT, audio_param_count, AUDIO_PRESETS["13b"], None),
        (PersonalizedVideoModel, pt2v_param_count, PT2V_PRESETS["30b"], "conditioner.vision"),
        (EditModel, edit_param_count, EDIT_PRESETS["30b"], None),
    ]
    with torch.device("meta"):
        for build, count, cfg, skip in presets:
            assert n_params(build(cfg), skip) == count(cfg)
