"""Trainer (resume, EMA, accumulation, bf16), data, metrics and the README quickstart."""

from pathlib import Path

import pytest
import torch

from papershelf.core.testing import assert_close, run_readme_quickstart
from papershelf.moviegen import MovieGenTransformer, TextContext, preset
from papershelf.moviegen.data import BucketSampler, MovingShapes
from papershelf.moviegen.eval import colour_accuracy, motion_consistency, net_win_rate, psnr
from papershelf.moviegen.train import FlowMatchingTrainer

README = Path(__file__).resolve().parents[1] / "README.md"


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = preset("tiny", in_channels=4, max_pos=(4, 4, 4), text_dims={"a": 6}, **kw)
    return MovieGenTransformer(cfg)


def _batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(4, 4, 2, 4, 4, generator=g),
            TextContext(
                {"a": torch.randn(4, 3, 6, generator=g)}, {"a": torch.ones(4, 3, dtype=torch.bool)}
            ),
        )
        for _ in range(n)
    ]


def test_checkpoint_resume_is_exact(tmp_path):
    data = _batches(4)
    ref = FlowMatchingTrainer(_model(), lr=1e-3, ema_decay=0.9, total_steps=4, warmup_steps=1)
    ref.fit(data, 4, show_progress=False)

    a = FlowMatchingTrainer(_model(), lr=1e-3, ema_decay=0.9, total_steps=4, warmup_steps=1)
    a.fit(data[:2], 2, show_progress=False)
    a.save(tmp_path / "ckpt.pt")
    b = FlowMatchingTrainer(
        _model(seed=5), lr=1e-3, ema_decay=0.9, total_steps=4, warmup_steps=1
    ).load(tmp_path / "ckpt.pt")
    b.fit(data[2:], 2, show_progress=False)
    assert b.step_count == 4 and b.losses == ref.losses
    for p, q in zip(b.model.parameters(), ref.model.parameters()):
        assert torch.equal(p, q)
    for p, q in zip(b.ema.model.parameters(), ref.ema.model.parameters()):
        assert torch.equal(p, q)


def test_mismatched_checkpoint_is_refused(tmp_path):
    a = FlowMatchingTrainer(_model(), lr=1e-3)
    a.save(tmp_path / "a.pt")
    b = FlowMatchingTrainer(_model(num_layers=3), lr=1e-3)
    with pytest.raises(ValueError, match="checkpoint is for"):
        b.load(tmp_path / "a.pt")


def test_loss_falls_and_bf16_and_accumulation_run():
    from papershelf.moviegen import flow_matching_loss

    data = _batches(1) * 20
    tr = FlowMatchingTrainer(
        _model(), lr=3e-3, grad_accum=2, mixed_precision="bf16", cfg_dropout=0.0
    )

    def fixed_loss():
        with torch.no_grad():
            return float(
                flow_matching_loss(
                    tr.model,
                    *data[0],
                    cfg_dropout=0.0,
                    generator=torch.Generator().manual_seed(123),
                )
            )

    before = fixed_loss()
    tr.fit(data, 20, show_progress=False)
    assert fixed_loss() < 0.9 * before
    with pytest.raises(ValueError, match="divisible by grad_accum"):
        FlowMatchingTrainer(_model(), grad_accum=3).step(*data[0])
    with pytest.raises(ValueError, match="mixed_precision"):
        FlowMatchingTrainer(_model(), mixed_precision="fp8")


def test_ema_tracks_weights():
    tr = FlowMatchingTrainer(_model(), lr=1e-2, ema_decay=0.5)
    before = [p.clone() for p in tr.ema.model.parameters()]
    tr.step(*_batches(1)[0])
    for e, p, b in zip(tr.ema.model.parameters(), tr.model.parameters(), before):
        assert_close(e, 0.5 * b + 0.5 * p.detach(), atol=1e-6)


def test_moving_shapes_are_scored_perfectly_by_the_metrics():
    data = MovingShapes()
    video, _, labels = data.batch(32, generator=torch.Generator().manual_seed(0))
    assert video.shape == (32, 3, 8, 32, 32) and video.min() == -1 and video.max() == 1
    assert colour_accuracy(video, [lb[0] for lb in labels]) == 1.0
    m = motion_consistency(video, [lb[2] for lb in labels])
    assert m["direction_accuracy"] == 1.0 and m["constant_velocity"] == 1.0
    wrong = {"left": "right", "right": "left", "up": "down", "down": "up"}
    assert motion_consistency(video, [wrong[lb[2]] for lb in labels])["direction_accuracy"] == 0
    again, _, _ = data.batch(32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(video, again)


def test_metrics_closed_forms():
    x = torch.zeros(2, 3, 1, 2, 2)
    assert_close(psnr(x, x + 0.2), torch.full((2,), 20.0), rtol=1e-6)
    assert net_win_rate(60, 20, 20) == 40.0
    with pytest.raises(ValueError):
        net_win_rate(0, 0, 0)


def test_bucket_sampler_keeps_buckets_pure():
    sizes = [(64, 256, 256), (256, 144, 256), (64, 256, 256), (250, 150, 256), (120, 256, 192)]
    s = BucketSampler(sizes, batch_size=2, generator=torch.Generator().manual_seed(0))
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(5))
    for b in batches:
        assert len({s.bucket_of(i) for i in b}) == 1
    assert len(s) == len(batches)


def test_readme_quickstart_runs():
    ns = run_readme_quickstart(README)
    assert ns["video"].shape == (2, 3, 8, 32, 32)


def test_video_folder_reads_saved_clips(tmp_path):
    from papershelf.moviegen import save_video
    from papershelf.moviegen.data import VideoFolder

    video, prompts, _ = MovingShapes().batch(1, generator=torch.Generator().manual_seed(0))
    save_video(video[0], tmp_path / "clip.gif")
    (tmp_path / "clip.txt").write_text(prompts[0])
    clip, caption = VideoFolder(tmp_path, num_frames=8, height=32, width=32)[0]
    assert caption == prompts[0] and clip.shape == (3, 8, 32, 32)
    assert float((clip - video[0]).abs().max()) < 0.02  # GIF palette quantisation only
    with pytest.raises(ValueError, match="fewer than"):
        VideoFolder(tmp_path, num_frames=9, height=32, width=32)[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no video files"):
        VideoFolder(empty, num_frames=8, height=32, width=32)
