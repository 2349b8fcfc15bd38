"""Video data at scale: frames decoded on demand, fps sampling with the fps in the prompt,
aspect-preserving resize + center crop into buckets, the distributed bucket sampler, the
latent / text-embedding cache round trip."""

import numpy as np
import pytest
import torch

from papershelf.moviegen.cache import LatentCache, cache_dataset, main
from papershelf.moviegen.data_video import (
    DistributedBucketSampler,
    VideoClipDataset,
    check_video,
    resize_center_crop,
)

av = pytest.importorskip("av")


def _write(path, n=60, fps=30, width=64, height=32, gop=6):
    """Frame i: brightness 4 i in the first channel; column c: 255 c / (W - 1) in the second
    (so crops can be located); lossless FFV1."""
    c = av.open(str(path), "w")
    s = c.add_stream("ffv1", rate=fps)
    s.width, s.height, s.pix_fmt = width, height, "bgr0"
    s.codec_context.gop_size = gop
    cols = np.round(np.linspace(0, 255, width)).astype(np.uint8)
    for i in range(n):
        img = np.zeros((height, width, 3), np.uint8)
        img[..., 0] = 4 * i
        img[..., 1] = cols[None, :]
        for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(pkt)
    for pkt in s.encode():
        c.mux(pkt)
    c.close()
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    _write(root / "wide.mkv", width=64, height=32)  # 2:1
    _write(root / "tall.mkv", width=32, height=48, n=45)  # 2:3
    _write(root / "short.mkv", n=5)  # too short for 8 frames at 10 fps
    (root / "wide.txt").write_text("a wide clip")
    return root


def _frame_ids(video):
    """Source frame numbers from the brightness code (pixels back to 0..255)."""
    r = (video[0, :, 0, 0] + 1) * 127.5
    return [round(float(v) / 4) for v in r]


def test_fps_sampling_decodes_only_the_frames_it_needs(videos):
    ds = VideoClipDataset(videos, fps=10, durations=(4, 8), sizes=[(32, 32)])
    assert ds.skipped == [str(videos / "short.mkv")] and len(ds) == 2
    i = [it[0].path for it in ds.items].index(str(videos / "wide.mkv"))
    item = ds[i]
    assert item["bucket"] == (8, 32, 32) and item["video"].shape == (3, 8, 32, 32)
    assert item["video"].dtype == torch.float32 and item["video"].abs().max() <= 1
    assert _frame_ids(item["video"]) == [0, 3, 6, 9, 12, 15, 18, 21]  # 30 fps -> 10 fps
    assert item["caption"] == "FPS-10 a wide clip"
    assert ds.last_decoded == 22  # up to frame 21 of 60, never the whole file

    centre = VideoClipDataset(videos, fps=10, durations=(8,), sizes=[(32, 32)], start="center")
    ids = _frame_ids(centre[i]["video"])
    assert ids[0] > 0 and np.all(np.diff(ids) == 3)
    assert centre.last_decoded <= 22 + 6  # from the keyframe (GOP 6) before the first frame
    rnd = VideoClipDataset(videos, fps=10, durations=(8,), sizes=[(32, 32)], start="random")
    a = [_frame_ids(rnd[k]["video"]) for k in range(2)]
    assert a == [_frame_ids(rnd[k]["video"]) for k in range(2)]  # deterministic
    with pytest.raises(ValueError, match="slower than the target fps"):
        VideoClipDataset(videos, fps=60, durations=(4,))


def test_aspect_ratio_is_kept_by_resize_and_center_crop(videos):
    ds = VideoClipDataset(
        videos, fps=10, durations=(4,), sizes=[(16, 32), (32, 32), (48, 32)], prefix_fps=False
    )
    by_name = {it[0].path.rsplit("/", 1)[-1]: k for k, it in enumerate(ds.items)}
    wide, tall = ds[by_name["wide.mkv"]], ds[by_name["tall.mkv"]]
    assert wide["bucket"][1:] == (16, 32) and tall["bucket"][1:] == (48, 32)
    assert wide["caption"] == "a wide clip" and tall["caption"] == ""
    # 64x32 -> exact 2:1 bucket: scaled by 1/2, nothing cropped; the column code spans 0..255
    g = (wide["video"][1, 0, 0] + 1) * 127.5
    assert float(g[0]) < 8 and float(g[-1]) > 247
    # into a square bucket a 2:1 frame is scaled to 32 x 64 and the middle half kept
    sq = VideoClipDataset(videos, fps=10, durations=(4,), sizes=[(32, 32)])[by_name["wide.mkv"]]
    g = (sq["video"][1, 0, 0] + 1) * 127.5
    assert 55 < float(g[0]) < 75 and 180 < float(g[-1]) < 200  # columns 16..47 of 64
    x = torch.rand(2, 3, 10, 40)
    assert resize_center_crop(x, (10, 20)).shape == (2, 3, 10, 20)
    torch.testing.assert_close(resize_center_crop(x, (10, 20)), x[..., 10:30])


def test_video_dtype_and_empty_errors():
    ok = torch.zeros(1, 3, 2, 8, 8)
    check_video(ok)
    with pytest.raises(TypeError, match="uint8"):
        check_video(ok.to(torch.uint8))
    with pytest.raises(TypeError, match="float64"):
        check_video(ok.double())
    with pytest.raises(ValueError, match="empty"):
        check_video(ok[:0])
    with pytest.raises(ValueError, match="NaN"):
        check_video(ok * float("nan"))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        check_video(ok[0])


def test_distributed_bucket_sampler_is_disjoint_deterministic_and_resumable():
    keys = [("a",)] * 23 + [("b",)] * 17 + [("c",)] * 9
    R = 3
    per_rank = [DistributedBucketSampler(keys, 4, num_replicas=R, rank=r, seed=5) for r in range(R)]
    batches = [list(s) for s in per_rank]
    assert len({len(b) for b in batches}) == 1 and len(batches[0]) == len(per_rank[0])
    flat = [i for b in batches for batch in b for i in batch]
    assert len(flat) == len(set(flat))  # disjoint across ranks and batches
    for b in batches:
        for batch in b:
            assert len(batch) == 4 and len({keys[i] for i in batch}) == 1
    total_full = 23 // 4 + 17 // 4 + 9 // 4
    assert len(flat) == 4 * (total_full - total_full % R)
    again = DistributedBucketSampler(keys, 4, num_replicas=R, rank=1, seed=5)
    assert list(again) == batches[1]  # deterministic
    again.set_epoch(1)
    assert list(again) != batches[1]  # a new shuffle per epoch

    s = DistributedBucketSampler(keys, 4, num_replicas=R, rank=2, seed=5)
    s.set_epoch(3)
    full = list(s)
    s.set_epoch(3)
    it = iter(s)
    head = [next(it), next(it)]
    state = s.state_dict()
    resumed = DistributedBucketSampler(keys, 4, num_replicas=R, rank=2, seed=5)
    resumed.load_state_dict(state)
    assert head + list(resumed) == full
    with pytest.raises(ValueError, match="batch_size"):
        DistributedBucketSampler(keys, 2, num_replicas=R, rank=2, seed=5).load_state_dict(state)
    with pytest.raises(ValueError, match="rank"):
        DistributedBucketSampler(keys, 4, num_replicas=2, rank=2)


class _ToyTAE(torch.nn.Module):
    """Stands in for the TAE: a 2x spatial average pool, posterior std = 0.1."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def encode(self, x):
        from papershelf.moviegen.tae import DiagonalGaussian

        mean = torch.nn.functional.avg_pool3d(x, (1, 2, 2)) * self.w
        return DiagonalGaussian(mean, torch.full_like(mean, 2 * np.log(0.1)))


def test_latent_cache_round_trip(videos, tmp_path):
    from papershelf.moviegen import MultiTextConditioner, WordEncoder

    ds = VideoClipDataset(videos, fps=10, durations=(4, 8), sizes=[(16, 32), (32, 32)])
    cond = MultiTextConditioner({"w": WordEncoder(["wide", "clip"], dim=5, max_length=4)})
    tae = _ToyTAE()
    cache_dataset(ds, tae, cond, tmp_path / "cache", shard_size=1, show_progress=False)
    assert len(list((tmp_path / "cache").glob("shard-*.safetensors"))) == 2
    lc = LatentCache(tmp_path / "cache")
    assert len(lc) == len(ds) and lc.encoders() == ["w"]
    for i in range(len(ds)):
        item = ds[i]
        latent, text, caption = lc[i]
        assert caption == item["caption"]
        torch.testing.assert_close(latent, tae.encode(item["video"][None]).mean[0])
        ref = cond([caption])
        torch.testing.assert_close(text["w"][0], ref.states["w"][0])
        assert torch.equal(text["w"][1], ref.masks["w"][0])
    x1, ctx = lc.batch([0])
    assert x1.shape == (1, *lc.bucket_keys()[0]) and ctx.batch_size == 1
    noisy = LatentCache(tmp_path / "cache", sample=True)
    g = torch.Generator().manual_seed(0)
    d = noisy.__getitem__(0, g)[0] - lc[0][0]
    assert 0.05 < float(d.std()) < 0.15  # drawn from the cached posterior (std 0.1)
    with pytest.raises(ValueError, match="one bucket"):
        lc.batch([0, 1])
    with pytest.raises(ValueError, match="empty batch"):
        lc.batch([])
    with pytest.raises(TypeError, match="float64"):
        cache_dataset([{"video": item["video"].double(), "caption": "x"}], tae, cond, tmp_path)
    with pytest.raises(ValueError, match="empty"):
        cache_dataset([], tae, cond, tmp_path / "none")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_cache_command_line_on_a_folder(videos, tmp_path):
    assert (
        main(
            [
                str(videos),
                str(tmp_path / "c"),
                "--fps",
                "10",
                "--durations",
                "8",
                "--sizes",
                "32x32",
                "--tae-preset",
                "tiny",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    lc = LatentCache(tmp_path / "c")
    assert len(lc) == 2 and lc.encoders() == ["byt5", "metaclip", "ul2"]
    latent, _, caption = lc[0]
    assert latent.shape[1:] == (4, 8, 8) and caption.startswith("FPS-10")
