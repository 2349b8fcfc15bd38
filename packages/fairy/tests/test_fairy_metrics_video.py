"""Consistency metrics, anchor selection and video I/O."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from papershelf.fairy import load_video, select_anchors, write_video
from papershelf.fairy.metrics import frame_acc, inter_frame_variance, tem_con, warp_error
from papershelf.fairy.testing import synthetic_video
from papershelf.fairy.video import read_video, to_frames_tensor


def test_select_anchors_uniform_and_bounds():
    assert select_anchors(120, 3) == [0, 60, 119]
    assert select_anchors(8, 3) == [0, 4, 7]
    assert select_anchors(5, 5) == [0, 1, 2, 3, 4]
    assert select_anchors(1, 1) == [0]
    assert select_anchors(10, 3, "first") == [0, 1, 2]
    assert select_anchors(10, 2, "middle") == [4, 5]
    for n in range(1, 30):
        for k in range(1, n + 1):
            a = select_anchors(n, k)
            assert len(set(a)) == k and a == sorted(a) and 0 <= a[0] and a[-1] < n


def test_select_anchors_errors():
    with pytest.raises(ValueError, match="num_anchors must be >= 1"):
        select_anchors(5, 0)
    with pytest.raises(ValueError, match="must not exceed"):
        select_anchors(2, 3)
    with pytest.raises(TypeError, match="num_frames"):
        select_anchors(5.0, 2)  # type: ignore[arg-type]


def test_tem_con_and_warp_error_of_an_identity_edit():
    frames = torch.rand(1, 3, 16, 16).expand(5, 3, 16, 16).clone()
    assert tem_con(frames) == pytest.approx(1.0)
    assert warp_error(frames, torch.zeros(4, 2, 16, 16)) == pytest.approx(0.0, abs=1e-7)


def test_warp_error_with_known_translation():
    base = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    # frame t is the base shifted right by 2t pixels
    frames = torch.cat([torch.roll(base, 2 * t, dims=-1) for t in range(4)])
    flow = torch.zeros(3, 2, 16, 20)
    flow[:, 0] = -2.0  # pixel x of frame t+1 came from x - 2 in frame t
    assert warp_error(frames, flow) == pytest.approx(0.0, abs=1e-6)
    assert warp_error(frames, torch.zeros_like(flow)) > 0.1


def test_tem_con_lower_for_a_flickering_video():
    video, _ = synthetic_video(10, 32, 32, seed=1)
    flicker = video + 0.3 * torch.rand(video.shape, generator=torch.Generator().manual_seed(0))
    assert tem_con(flicker) < tem_con(video)


def test_frame_acc_with_injected_embeddings():
    frames = torch.zeros(4, 3, 2, 2)
    frames[:3, 0] = 1.0  # three "red" frames, one black

    def embed_image(x):
        return torch.stack([x[:, 0].mean((1, 2)), 1 - x[:, 0].mean((1, 2))], dim=1)

    def embed_text(prompts):
        return torch.tensor([[0.0, 1.0] if p == "source" else [1.0, 0.0] for p in prompts])

    assert frame_acc(frames, embed_image, embed_text, "source", "red") == pytest.approx(0.75)


def test_inter_frame_variance():
    x = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    assert inter_frame_variance(x) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="N >= 2"):
        inter_frame_variance(torch.zeros(1, 3))


def test_synthetic_video_shapes():
    video, vel = synthetic_video(6, 24, 40, num_squares=3, speed=2.0)
    assert video.shape == (6, 3, 24, 40) and vel.shape == (3, 2)
    assert 0 <= float(video.min()) and float(video.max()) <= 1
    assert np.allclose(np.linalg.norm(vel, axis=1), 2.0)


def test_frame_conversion_round_trip():
    video, _ = synthetic_video(3, 16, 16)
    u8 = (video.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    back = to_frames_tensor(list(u8))
    assert torch.allclose(back, video, atol=1 / 255)
    assert torch.equal(to_frames_tensor(u8), back)
    with pytest.raises(TypeError, match="frames"):
        to_frames_tensor("video.mp4")
    with pytest.raises(ValueError, match="empty"):
        to_frames_tensor([])


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_video_files_round_trip(tmp_path, suffix):
    video, _ = synthetic_video(4, 32, 32)
    path = write_video(video, tmp_path / f"v{suffix}", fps=8)
    frames = read_video(path)
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
    err = np.abs(to_frames_tensor(frames).numpy() - video.numpy()).mean()
    assert err < 0.08  # lossy codecs / GIF palette
    assert len(read_video(path, max_frames=2)) == 2


@pytest.mark.parametrize(("suffix", "fps"), [(".mp4", 24.0), (".mp4", 25.0), (".gif", 10.0)])
def test_load_video_keeps_the_frame_rate(tmp_path, suffix, fps):
    video, _ = synthetic_video(5, 24, 32)
    path = write_video(video, tmp_path / f"v{suffix}", fps=fps)
    frames, got = load_video(path)
    assert frames.dtype == np.uint8 and frames.shape == (5, 24, 32, 3)
    assert got == pytest.approx(fps)


def test_video_io_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        load_video(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="max_frames"):
        load_video(tmp_path / "missing.mp4", max_frames=0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="fps"):
            write_video(torch.rand(2, 3, 8, 8), tmp_path / "x.mp4", fps=bad)
    odd = write_video(torch.rand(3, 3, 7, 9), tmp_path / "odd.mp4", fps=12)
    assert load_video(odd)[0].shape == (3, 8, 10, 3)  # padded to even sizes for yuv420p
