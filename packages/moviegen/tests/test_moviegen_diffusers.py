"""diffusers-native models and pipeline: exact save/load round trips, scheduler parity, outputs."""

import json

import pytest
import torch
from diffusers import DiffusionPipeline
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput

from papershelf.core.testing import slow
from papershelf.moviegen.config import preset, tae_preset
from papershelf.moviegen.pipeline import MovieGenPipeline, default_scheduler
from papershelf.moviegen.sampler import euler_sample
from papershelf.moviegen.schedules import linear_quadratic_t
from papershelf.moviegen.tae import TemporalAutoencoder, temporal_tiled_decode
from papershelf.moviegen.text import (
    HFTextEncoder,
    MultiTextConditioner,
    TextContext,
    WordEncoder,
    tiny_text_encoders,
)
from papershelf.moviegen.transformer import MovieGenTransformer


def _perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (zero-initialised heads would hide a lost tensor)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _text(b: int, names: dict[str, int], length: int = 3) -> TextContext:
    g = torch.Generator().manual_seed(1)
    return TextContext(
        {k: torch.randn(b, length, d, generator=g) for k, d in names.items()},
        {k: torch.ones(b, length, dtype=torch.bool) for k in names},
    )


@pytest.mark.parametrize("extra", [0, 8])
def test_transformer_round_trip_is_exact(tmp_path, extra):
    cfg = preset("tiny", extra_in_channels=extra, text_dims={"b": 8, "a": 4}, max_pos=(4, 4, 4))
    model = _perturb(MovieGenTransformer(cfg)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = MovieGenTransformer.from_pretrained(tmp_path).eval()
    assert loaded.cfg == model.cfg
    _same_state(model, loaded)
    x = torch.randn(2, 8, 2, 4, 4)
    cond = torch.randn(2, extra, 2, 4, 4) if extra else None
    text = _text(2, cfg.text_dims)
    t = torch.tensor([0.2, 0.9])
    assert torch.equal(model(x, t, text, cond), loaded(x, t, text, cond))
    out = model(x, t, text, cond, return_dict=True)
    assert torch.equal(out.sample, model(x, t, text, cond))


def test_transformer_config_kwargs_equal_dataclass():
    a = MovieGenTransformer(preset("tiny"))
    b = MovieGenTransformer.from_config(a.config)
    assert b.cfg == a.cfg and a.state_dict().keys() == b.state_dict().keys()
    with pytest.raises(TypeError, match="cfg"):
        MovieGenTransformer({"dim": 4})


def test_tae_round_trip_outputs_and_tiling(tmp_path):
    tae = _perturb(TemporalAutoencoder(tae_preset("tiny", channels=(8, 8), norm_groups=4)))
    tae.register_to_config(scaling_factor=0.7)
    tae.eval().save_pretrained(tmp_path)
    loaded = TemporalAutoencoder.from_pretrained(tmp_path).eval()
    _same_state(tae, loaded)
    assert loaded.config.scaling_factor == 0.7 and loaded.cfg == tae.cfg
    x = torch.rand(1, 3, 16, 32, 32) * 2 - 1
    enc = tae.encode(x)
    assert isinstance(enc, AutoencoderKLOutput)
    z = enc.latent_dist.mode()
    assert torch.equal(z, loaded.encode(x).latent_dist.mode())
    assert torch.equal(enc.mode(), z)  # the old shortcut still works
    dec = tae.decode(z, num_frames=15)
    assert isinstance(dec, DecoderOutput) and dec.sample.shape == (1, 3, 15, 32, 32)
    assert torch.equal(dec.sample, loaded.decode(z, num_frames=15).sample)
    s1 = enc.latent_dist.sample(torch.Generator().manual_seed(3))
    s2 = enc.latent_dist.sample(torch.Generator().manual_seed(3))
    assert torch.equal(s1, s2) and not torch.equal(s1, z)
    # enable_tiling switches decode to the paper's blended temporal tiles
    tae.enable_tiling(tile_latent_frames=4, tile_latent_overlap=2)
    zz = torch.randn(1, 8, 6, 8, 8)
    tiled = tae.decode(zz).sample
    assert torch.equal(tiled, temporal_tiled_decode(tae, zz, 4, 2))
    tae.disable_tiling()
    assert not torch.equal(tae.decode(zz).sample, tiled)  # untiled differs at the seams
    with pytest.raises(ValueError, match="tile_latent_overlap"):
        tae.enable_tiling(tile_latent_frames=2, tile_latent_overlap=2)
    with pytest.raises(ValueError, match="scaling_factor"):
        TemporalAutoencoder(tae_preset("tiny"), scaling_factor=float("nan"))


def test_text_conditioner_round_trip_with_tokenizers(tmp_path):
    cond = MultiTextConditioner(tiny_text_encoders(0))
    cond.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer_ul2").is_dir()
    loaded = MultiTextConditioner.from_pretrained(tmp_path)
    prompts = ['a sign that reads "OPEN"', "b"]
    a, b = cond(prompts), loaded(prompts)
    for k in a.states:
        assert torch.equal(a.states[k], b.states[k]) and torch.equal(a.masks[k], b.masks[k])
    words = MultiTextConditioner({"w": WordEncoder(["x", "y"], dim=4)})
    words.save_pretrained(tmp_path / "w")
    w2 = MultiTextConditioner.from_pretrained(tmp_path / "w")
    assert torch.equal(words(["x y"]).states["w"], w2(["x y"]).states["w"])


def test_tiny_text_encoders_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = tiny_text_encoders(3)
    assert torch.equal(state, torch.random.get_rng_state())
    b = tiny_text_encoders(3)
    assert torch.equal(a["ul2"].model.shared.weight, b["ul2"].model.shared.weight)


def test_long_prompt_metaclip_reads_256_tokens():
    enc = tiny_text_encoders(0, long_prompt=True)["metaclip"]
    assert enc.max_length == 256
    assert enc.model.config.max_position_embeddings == 256
    words = "word " * 30  # 150 byte tokens: beyond CLIP's 77 positions
    h1, m1 = enc([words + "red"])
    h2, _ = enc([words + "blue"])
    assert h1.shape == (1, 256, 32) and int(m1.sum()) > 150
    # a word at positions 150+ changes the encoding: the tail is read, not truncated
    assert torch.equal(h1[:, :150], h2[:, :150])  # causal CLIP: the prefix is unchanged
    assert not torch.allclose(h1[:, 150:156], h2[:, 150:156])


def test_hf_text_encoder_from_pretrained_offline_and_pinned(tmp_path):
    enc = tiny_text_encoders(0)["metaclip"]
    enc.model.save_pretrained(tmp_path)
    enc.tokenizer.save_pretrained(tmp_path)
    loaded = HFTextEncoder.from_pretrained(
        tmp_path, max_length=32, local_files_only=True, revision="main"
    )
    a, b = enc(["a red disc"]), loaded(["a red disc"])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    stretched = HFTextEncoder.from_pretrained(
        tmp_path, max_length=64, local_files_only=True, max_position_embeddings=64
    )
    assert stretched(["x"])[0].shape == (1, 64, 32)
    with pytest.raises(OSError):
        HFTextEncoder.from_pretrained("papershelf/no-such-model", 8, local_files_only=True)


def _pipe(text_encoder=None):
    cond = text_encoder or MultiTextConditioner({"words": WordEncoder(["red", "disc"], dim=8)})
    model = MovieGenTransformer(
        preset("tiny", in_channels=8, max_pos=(4, 4, 4), text_dims=cond.text_dims)
    )
    tae = TemporalAutoencoder(tae_preset("tiny", channels=(8, 8), norm_groups=4))
    pipe = MovieGenPipeline(_perturb(model), _perturb(tae, 1), default_scheduler(), cond)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_pipeline_scheduler_equals_euler_sample():
    pipe = _pipe()
    g = torch.Generator
    lat = pipe(
        ["red disc", "disc"],
        num_inference_steps=6,
        guidance_scale=3.0,
        generator=g().manual_seed(0),
        output_type="latent",
    ).frames
    ref = euler_sample(
        pipe.transformer,
        tuple(lat.shape),
        pipe.text_encoder(["red disc", "disc"]),
        guidance=3.0,
        t_grid=linear_quadratic_t(6, 250),
        generator=g().manual_seed(0),
    )
    torch.testing.assert_close(lat, ref, atol=1e-5, rtol=0)
    # guidance 1 is the conditional pass alone
    one = pipe(
        "red disc",
        num_inference_steps=3,
        guidance_scale=1.0,
        generator=g().manual_seed(0),
        output_type="latent",
    ).frames
    ref1 = euler_sample(
        pipe.transformer,
        tuple(one.shape),
        pipe.text_encoder(["red disc"]),
        guidance=1.0,
        t_grid=linear_quadratic_t(3, 250),
        generator=g().manual_seed(0),
    )
    torch.testing.assert_close(one, ref1, atol=1e-5, rtol=0)


def test_pipeline_callback_replaces_latents():
    pipe = _pipe()
    seen = []

    def cb(p, i, t, kw):
        seen.append(i)
        return {"latents": torch.zeros_like(kw["latents"])} if i == 2 else kw

    out = pipe(
        "red disc",
        num_inference_steps=3,
        callback_on_step_end=cb,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    ).frames
    assert seen == [0, 1, 2] and torch.equal(out, torch.zeros_like(out))


def test_pipeline_save_load_exact_and_diffusion_pipeline_loads_our_class(tmp_path):
    pipe = _pipe(MultiTextConditioner(tiny_text_encoders(0)))
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["moviegen_pipeline", "MovieGenPipeline"]
    kw = dict(num_inference_steps=3, guidance_scale=2.0, output_type="pt")
    ref = pipe('a "HI" sign', generator=torch.Generator().manual_seed(0), **kw).frames
    ours = MovieGenPipeline.from_pretrained(tmp_path)
    generic = DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(ours) is MovieGenPipeline and type(generic) is MovieGenPipeline
    for loaded in (ours, generic):
        loaded.set_progress_bar_config(disable=True)
        for name in ("transformer", "vae", "text_encoder"):
            _same_state(getattr(pipe, name), getattr(loaded, name))
        out = loaded('a "HI" sign', generator=torch.Generator().manual_seed(0), **kw).frames
        assert torch.equal(out, ref)


def test_export_to_video_takes_the_pipeline_output(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    from diffusers.utils import export_to_video

    pipe = _pipe()
    frames = pipe(
        "red disc", num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    ).frames
    path = export_to_video(list(frames[0]), str(tmp_path / "clip.mp4"), fps=8)
    assert (tmp_path / "clip.mp4").stat().st_size > 0 and path.endswith(".mp4")


def test_pipeline_upsampler_stage_doubles_the_resolution():
    from papershelf.moviegen.cast import SpatialUpsampler, UpsamplerConfig

    pipe = _pipe()
    up = SpatialUpsampler(
        UpsamplerConfig(max_frames=4, max_h=32, max_w=32, window=4, overlap=2, steps=2)
    )

    def kw():
        return dict(
            num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt"
        )

    low = pipe("red disc", **kw()).frames
    pipe.register_modules(upsampler=up)
    high = pipe("red disc", **kw()).frames
    assert low.shape == (1, 8, 3, 32, 32) and high.shape == (1, 8, 3, 64, 64)
    skipped = pipe("red disc", upsample=False, **kw()).frames
    assert torch.equal(skipped, low)


def _upsampler(pipe, seed=2):
    """A T2V-initialised upsampler on the pipeline's TAE latents, position tables x2."""
    from papershelf.moviegen.cast import SpatialUpsampler

    up = SpatialUpsampler.from_t2v(
        pipe.transformer, window=4, overlap=2, steps=2, max_pos=(4, 8, 8)
    )
    return _perturb(up, seed).eval()  # the conditioning channels weigh something too


@pytest.mark.parametrize("kind", ["t2v", "standalone"])
def test_upsampler_round_trip_is_exact(tmp_path, kind):
    from papershelf.moviegen.cast import SpatialUpsampler, UpsamplerConfig

    if kind == "t2v":
        up = _upsampler(_pipe())
    else:
        up = _perturb(SpatialUpsampler(UpsamplerConfig(max_frames=4, window=4, overlap=1)))
    up.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = SpatialUpsampler.from_pretrained(tmp_path).eval()
    assert loaded.cfg == up.cfg and loaded.transformer.cfg == up.transformer.cfg
    _same_state(up, loaded)
    c = up.cfg.latent_channels
    x, cond, t = torch.randn(2, c, 3, 8, 8), torch.randn(2, c, 3, 8, 8), torch.rand(2)
    text = _text(2, up.cfg.text_dims) if up.text_conditioned else None
    assert torch.equal(up(x, t, cond, text), loaded(x, t, cond, text))
    assert torch.equal(up(x, t, cond, text, return_dict=True).sample, up(x, t, cond, text))


def test_pipeline_with_upsampler_round_trip_and_export(tmp_path):
    pipe = _pipe()
    pipe.register_modules(upsampler=_upsampler(pipe))
    kw = dict(num_frames=8, num_inference_steps=2, guidance_scale=2.0, output_type="pt")
    high = pipe("red disc", generator=torch.Generator().manual_seed(0), **kw).frames
    low = pipe("red disc", upsample=False, generator=torch.Generator().manual_seed(0), **kw)
    assert high.shape == (1, 8, 3, 64, 64) and low.frames.shape == (1, 8, 3, 32, 32)
    # any target size, e.g. the paper's 768 -> 1080 rows (x1.40625); here 32 -> 48 (x1.5)
    g = torch.Generator().manual_seed(0)
    mid = pipe("red disc", generator=g, upsample_size=(48, 48), **kw).frames
    assert mid.shape == (1, 8, 3, 48, 48)
    with pytest.raises(ValueError, match="size"):
        pipe("red disc", upsample_size=(48,), **kw)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["upsampler"] == ["papershelf.moviegen.cast.upsampler", "SpatialUpsampler"]
    assert (tmp_path / "upsampler" / "diffusion_pytorch_model.safetensors").exists()
    for loaded in (
        MovieGenPipeline.from_pretrained(tmp_path),
        DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True),
    ):
        assert type(loaded) is MovieGenPipeline
        for name in ("transformer", "vae", "text_encoder", "upsampler"):
            _same_state(getattr(pipe, name), getattr(loaded, name))
        loaded.set_progress_bar_config(disable=True)
        out = loaded("red disc", generator=torch.Generator().manual_seed(0), **kw).frames
        assert torch.equal(out, high)
    pytest.importorskip("imageio_ffmpeg")
    from diffusers.utils import export_to_video

    frames = pipe("red disc", generator=torch.Generator().manual_seed(0), num_inference_steps=2)
    clip = frames.frames[0]
    assert clip.shape == (8, 64, 64, 3)
    export_to_video(list(clip), str(tmp_path / "hires.mp4"), fps=8)
    assert (tmp_path / "hires.mp4").stat().st_size > 0


def test_pipeline_refuses_a_mismatched_upsampler():
    from papershelf.moviegen.cast import SpatialUpsampler

    pipe = _pipe()
    other = MovieGenTransformer(preset("tiny", in_channels=8, text_dims={"x": 3}))
    with pytest.raises(ValueError, match="text encoders"):
        MovieGenPipeline(
            pipe.transformer,
            pipe.vae,
            default_scheduler(),
            pipe.text_encoder,
            upsampler=SpatialUpsampler.from_t2v(other, window=4),
        )
    wide = MovieGenTransformer(
        preset("tiny", in_channels=16, text_dims=pipe.text_encoder.text_dims)
    )
    with pytest.raises(ValueError, match="latent channels"):
        MovieGenPipeline(
            pipe.transformer,
            pipe.vae,
            default_scheduler(),
            pipe.text_encoder,
            upsampler=SpatialUpsampler.from_t2v(wide, window=4),
        )


def test_generic_loader_needs_trust_remote_code_ours_runs_no_folder_code(tmp_path):
    pipe = _pipe()
    pipe.save_pretrained(tmp_path)
    # diffusers imports a pipeline class outside diffusers only from a code file of the
    # folder, and only with trust_remote_code (dynamic_modules_utils.get_cached_module_file)
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(tmp_path)
    # MovieGenPipeline.from_pretrained never executes the folder's file: a shim that would
    # raise on import does not matter to it
    (tmp_path / "moviegen_pipeline.py").write_text("raise RuntimeError('executed')\n")
    loaded = MovieGenPipeline.from_pretrained(tmp_path)
    assert type(loaded) is MovieGenPipeline
    _same_state(pipe.transformer, loaded.transformer)
    with pytest.raises(RuntimeError, match="executed"):
        DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True)


@slow  # a fresh interpreter imports torch + diffusers: ~10-30 s on this CPU
def test_diffusion_pipeline_loads_our_class_in_a_fresh_interpreter(tmp_path):
    """Nothing of papershelf imported beforehand: the shim brings in the pipeline module,
    which makes every component's module (upsampler included) resolvable."""
    import subprocess
    import sys

    pipe = _pipe()
    pipe.register_modules(upsampler=_upsampler(pipe))
    pipe.save_pretrained(tmp_path)
    code = (
        "import sys, torch\n"
        "torch.set_num_threads(1)\n"
        "from diffusers import DiffusionPipeline\n"
        "assert not any(m.startswith('papershelf') for m in sys.modules)\n"
        f"p = DiffusionPipeline.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)\n"
        "print(type(p).__name__, type(p.upsampler).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["MovieGenPipeline", "SpatialUpsampler"]
