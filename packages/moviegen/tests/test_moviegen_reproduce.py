"""The reproduction end to end on a tiny budget, and the pipeline's input checks."""

import pytest
import torch

from papershelf.core import ReproduceContext
from papershelf.core.testing import slow
from papershelf.moviegen import reproduce as rep
from papershelf.moviegen.config import preset, tae_preset
from papershelf.moviegen.pipeline import MovieGenPipeline, default_scheduler, save_video
from papershelf.moviegen.tae import TemporalAutoencoder
from papershelf.moviegen.text import MultiTextConditioner, WordEncoder
from papershelf.moviegen.transformer import MovieGenTransformer


@slow
def test_run_smoke_on_a_tiny_budget(tmp_path, monkeypatch):
    tiny = dict(rep.QUICK, tae_steps=20, pool=64, dit_steps=60, n_samples=4, sample_steps=4)
    monkeypatch.setattr(rep, "QUICK", tiny)
    monkeypatch.setattr(rep, "run_cast", lambda ctx: [])
    records = rep.run(ReproduceContext(out_dir=tmp_path, show_progress=False, seeds=(0, 1)))
    names = {r.metric.split(" (")[0] for r in records}
    assert {"colour accuracy", "direction accuracy", "shape accuracy"} <= names
    scored = [r for r in records if r.metric.split(" (")[0].endswith("accuracy")]
    assert all(r.verdict is not None for r in scored)  # claim rows carry a verdict
    assert sum(bool(getattr(r, "headline", False)) for r in records) == 1
    for r in scored:  # the scorer's ceiling on the data clips is in every claim row
        assert "scorer on the data clips 1.000" in r.note, r.note
    rec = next(r for r in records if r.metric.startswith("reconstructions keep the shape"))
    assert 0.0 <= rec.values[0] <= 1.0 and "shape accuracy of the reconstructions" in rec.note
    assert (tmp_path / "samples_grid.png").exists() and (tmp_path / "loss_curves.png").exists()


def _pipe():
    torch.manual_seed(0)
    tae = TemporalAutoencoder(tae_preset("tiny", channels=(8, 8), norm_groups=4))
    cond = MultiTextConditioner({"words": WordEncoder(["red", "disc"], dim=8)})
    model = MovieGenTransformer(
        preset("tiny", in_channels=8, max_pos=(4, 4, 4), text_dims=cond.text_dims)
    )
    with torch.no_grad():  # a non-trivial velocity field (the output head starts at zero)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    pipe = MovieGenPipeline(model, tae, default_scheduler(), cond)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_pipeline_bad_inputs_and_determinism(tmp_path):
    pipe = _pipe()
    kw = dict(num_frames=8, height=32, width=32, num_inference_steps=2)
    with pytest.raises(ValueError, match="divisible"):
        pipe("red disc", **dict(kw, height=30))
    with pytest.raises(ValueError, match="guidance_scale"):
        pipe("red disc", guidance_scale=float("nan"), **kw)
    with pytest.raises(ValueError, match="negative_prompt needs guidance_scale"):
        pipe("red disc", negative_prompt="disc", guidance_scale=1.0, **kw)
    with pytest.raises(ValueError, match="output_type"):
        pipe("red disc", output_type="mp4", **kw)
    with pytest.raises(ValueError, match="non-empty"):
        pipe("", **kw)
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe("red disc", **dict(kw, num_inference_steps=1))
    with pytest.raises(TypeError, match="num_frames"):
        pipe("red disc", **dict(kw, num_frames=8.0))
    g = torch.Generator
    a = pipe("red disc", generator=g().manual_seed(0), output_type="pt", **kw).frames
    b = pipe("red disc", generator=g().manual_seed(0), output_type="pt", **kw).frames
    assert torch.equal(a, b) and a.shape == (1, 8, 3, 32, 32)  # diffusers' (B, T, C, H, W)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    n = pipe("red disc", generator=g().manual_seed(0), output_type="np", **kw).frames
    assert n.shape == (1, 8, 32, 32, 3)
    pil = pipe("red disc", generator=g().manual_seed(0), output_type="pil", **kw).frames
    assert len(pil) == 1 and len(pil[0]) == 8 and pil[0][0].size == (32, 32)
    c = pipe(
        "red disc", negative_prompt="disc", generator=g().manual_seed(0), output_type="pt", **kw
    )
    assert not torch.equal(c.frames, a)  # the negative prompt replaces the null text
    clip = a[0].permute(1, 0, 2, 3) * 2 - 1
    assert save_video(clip, tmp_path / "a.gif").stat().st_size > 0
    with pytest.raises(ValueError, match="video must be"):
        save_video(a, tmp_path / "b.gif")


def test_pipeline_refuses_mismatched_parts():
    pipe = _pipe()
    other = MovieGenTransformer(preset("tiny", in_channels=4, text_dims={"words": 8}))
    with pytest.raises(ValueError, match="latent channels"):
        MovieGenPipeline(other, pipe.vae, default_scheduler(), pipe.text_encoder)
