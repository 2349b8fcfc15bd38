"""The reproduction end to end on a tiny budget, and the pipeline's input checks."""

import pytest
import torch

from papershelf.core import ReproduceContext
from papershelf.core.testing import slow
from papershelf.moviegen import (
    MovieGenPipeline,
    MovieGenTransformer,
    MultiTextConditioner,
    TemporalAutoencoder,
    WordEncoder,
    preset,
    save_video,
    tae_preset,
)
from papershelf.moviegen import reproduce as rep


@slow
def test_run_smoke_on_a_tiny_budget(tmp_path, monkeypatch):
    tiny = dict(rep.QUICK, tae_steps=20, pool=64, dit_steps=60, n_samples=4, sample_steps=4)
    monkeypatch.setattr(rep, "QUICK", tiny)
    records = rep.run(ReproduceContext(out_dir=tmp_path, show_progress=False))
    names = {r.metric for r in records}
    assert "colour accuracy" in names and "OPL on val latents" in names
    assert (tmp_path / "samples_grid.png").exists() and (tmp_path / "loss_curves.png").exists()
    assert len(list(tmp_path.glob("*.gif"))) == 2


def _pipe():
    torch.manual_seed(0)
    tae = TemporalAutoencoder(tae_preset("tiny"))
    cond = MultiTextConditioner({"words": WordEncoder(["red", "disc"], dim=8)})
    model = MovieGenTransformer(
        preset("tiny", in_channels=8, max_pos=(4, 4, 4), text_dims=cond.text_dims)
    )
    return MovieGenPipeline(tae, model, cond, decode_tile=2, decode_overlap=1)


def test_pipeline_bad_inputs_and_determinism(tmp_path):
    pipe = _pipe()
    with pytest.raises(ValueError, match="divisible"):
        pipe(["red disc"], num_frames=8, height=30, width=32, steps=2)
    with pytest.raises(ValueError, match="guidance"):
        pipe(["red disc"], num_frames=8, height=32, width=32, steps=2, guidance=0.5)
    with pytest.raises(ValueError, match="non-empty"):
        pipe([""], num_frames=8, height=32, width=32, steps=2)
    with pytest.raises(ValueError, match="steps"):
        pipe(["red disc"], num_frames=8, height=32, width=32, steps=1)
    a = pipe(["red disc"], 8, 32, 32, steps=2, generator=torch.Generator().manual_seed(0))
    b = pipe(["red disc"], 8, 32, 32, steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == (1, 3, 8, 32, 32)
    assert save_video(a[0], tmp_path / "a.gif").stat().st_size > 0
    assert save_video(a[0], tmp_path / "a.mp4").stat().st_size > 0  # imageio-ffmpeg
    with pytest.raises(ValueError, match="video must be"):
        save_video(a, tmp_path / "b.gif")


def test_pipeline_refuses_mismatched_parts():
    pipe = _pipe()
    other = MovieGenTransformer(preset("tiny", in_channels=4, text_dims={"words": 8}))
    with pytest.raises(ValueError, match="latent channels"):
        MovieGenPipeline(pipe.tae, other, pipe.conditioner)
