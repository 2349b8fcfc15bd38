"""README quickstart, registry entry, reproduction helpers, costs, and torch.distributed editing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

import papershelf.fairy as fairy
from papershelf.core.testing import run_readme_quickstart, slow
from papershelf.fairy.costs import anchor_cache_nbytes, keys_per_query, sd15_attn1_shapes
from papershelf.fairy.testing import tiny_instruct_pix2pix

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_runs():
    ns = run_readme_quickstart(README)
    assert ns["out"].frames.shape == (12, 3, 24, 32)
    assert ns["out"].max_unet_batch == 3 * 4
    assert ns["fps"] == 24.0 and ns["frames"].shape == (12, 24, 32, 3)


def test_public_api():
    assert fairy.__version__ == "0.2.0"
    for name in fairy.__all__:
        assert hasattr(fairy, name)
    # 0.1 names stay importable from the top level
    for name in ("AnchorAttentionState", "AnchorAttnProcessor", "anchor_sdpa", "read_video"):
        assert hasattr(fairy, name)
    with pytest.raises(AttributeError, match="nosuch"):
        fairy.nosuch  # noqa: B018


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, papershelf.fairy, papershelf.fairy._registry; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'numpy', 'av') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_flops_closed_form_equals_counted_on_a_small_unet():
    """The closed form used for SD-1.5 (extra attention FLOPs of K anchors) equals a counted
    replay, on a small UNet of the same family on the meta device."""
    from papershelf.fairy.attention import anchor_attention
    from papershelf.fairy.costs import attn1_shapes, extra_attention_flops, unet_flops

    unet = tiny_instruct_pix2pix(0).unet
    base = unet_flops(unet, 8, 8, text_tokens=4)
    with anchor_attention(unet) as state:
        state.begin("record", 3)
        unet_flops(unet, 8, 8, batch=3, text_tokens=4)
        state.begin("replay", 1)
        fairy = unet_flops(unet, 8, 8, text_tokens=4)
    assert fairy - base == extra_attention_flops(attn1_shapes(unet, 8, 8), 3) > 0


def test_sd15_ip2p_unet_on_meta():
    from papershelf.fairy.costs import sd15_ip2p_unet

    unet = sd15_ip2p_unet()
    assert unet.config.in_channels == 8 and next(unet.parameters()).is_meta
    assert (
        sum(p.numel() for p in unet.parameters()) == 859_520_964 + 4 * 320 * 3 * 3
    )  # SD-1.5 + 4 image-latent input channels


def test_t2v_zero_chunked_baseline_runs():
    from papershelf.fairy.reproduce import time_t2v_zero
    from papershelf.fairy.testing import synthetic_video

    pipe = tiny_instruct_pix2pix(0)
    seconds, batch = time_t2v_zero(pipe, synthetic_video(5, 16, 16)[0], 1, chunk_size=2)
    assert seconds > 0 and batch == 9
    assert all(
        type(p).__name__ != "CrossFrameAttnProcessor2_0" for p in pipe.unet.attn_processors.values()
    )


def test_registry_is_light():
    from papershelf.fairy._registry import REPRODUCTION

    assert REPRODUCTION.name == "fairy"
    assert REPRODUCTION.run == "papershelf.fairy.reproduce:run"
    assert "wu2024fairy" in REPRODUCTION.bibtex


def test_sd15_cache_estimate_matches_spec():
    shapes = sd15_attn1_shapes(384, 512)
    assert len(shapes) == 16 and shapes[0] == (3072, 320) and shapes[-1] == (48, 1280)
    per = anchor_cache_nbytes(shapes, 1, 1, 1, 2)
    assert per == pytest.approx(34.65e6, rel=1e-3)  # ~35 MB per anchor, step and branch (fp16)
    assert anchor_cache_nbytes(shapes, 3, 10, 3, 2) == 90 * per  # ~3.1 GB at the paper setting
    assert keys_per_query("full", 10, 120) == 1200
    assert keys_per_query("fairy", 10, 120, 3) == 40
    with pytest.raises(ValueError, match="method"):
        keys_per_query("tokenflow", 10, 5)


def test_module_level_variance_decreases_with_anchors():
    from papershelf.fairy.reproduce import module_level_variance

    v0 = module_level_variance(0)
    assert all(module_level_variance(k) < v0 for k in (1, 3))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@slow
@pytest.mark.parametrize("model", ["recolour", "tiny"])
def test_distributed_equals_single_process(tmp_path, model):
    """2 gloo processes: each records the anchors itself, edits and decodes its own segment;
    rank 0 gathers the whole video, equal to one process's edit (on the recolour model a
    rank with wrong anchors would differ by far more than the tolerance)."""
    import torch.multiprocessing as mp

    from papershelf.fairy import FairyVideoEditor
    from papershelf.fairy.testing import (
        distributed_edit_worker,
        synthetic_video,
        tiny_instruct_pix2pix,
    )
    from papershelf.fairy.toy import recolour_instruct_pix2pix

    args = (2, _free_port(), str(tmp_path), 7, 2, 2, model)
    mp.spawn(distributed_edit_worker, args=args, nprocs=2, join=True)
    if model == "recolour":
        pipe, video = recolour_instruct_pix2pix(), synthetic_video(7, 32, 32, seed=0, speed=4.0)[0]
    else:
        pipe, video = tiny_instruct_pix2pix(0), synthetic_video(7, 32, 32, seed=0)[0]
    ref = FairyVideoEditor(pipe).edit_video(
        video, "make it snowy", num_inference_steps=2, generator=0, chunk_size=2
    )
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert r0["indices"] == list(range(7)) and r1["indices"] == [3, 4, 5, 6]
    assert torch.allclose(r0["frames"], ref.frames, atol=1e-5)
    assert torch.allclose(r1["frames"], ref.frames[3:], atol=1e-5)


def test_full_mode_real_edit_path(tmp_path, monkeypatch):
    """The --full real-video path, on a saved tiny pipeline and a 3-frame GIF."""
    from papershelf.core import ReproduceContext
    from papershelf.fairy.reproduce import _real_edit
    from papershelf.fairy.testing import synthetic_video, tiny_instruct_pix2pix
    from papershelf.fairy.video import write_video

    tiny_instruct_pix2pix(0).save_pretrained(tmp_path / "ip2p")
    write_video(synthetic_video(3, 24, 32)[0], tmp_path / "in.gif", fps=8)
    monkeypatch.setenv("FAIRY_IP2P_PATH", str(tmp_path / "ip2p"))
    monkeypatch.setenv("FAIRY_VIDEO", str(tmp_path / "in.gif"))
    monkeypatch.setenv("FAIRY_SIZE", "32")
    monkeypatch.setenv("FAIRY_STEPS", "2")
    (tmp_path / "out").mkdir()
    recs = _real_edit(ReproduceContext(out_dir=tmp_path / "out"))
    assert len(recs) == 1 and recs[0].status == "not comparable"
    assert "32x24" in recs[0].experiment
    assert (tmp_path / "out" / "fairy_edit.mp4").is_file()


def test_peak_rss_increase_sees_an_allocation():
    from papershelf.fairy.costs import peak_rss_increase

    def alloc():
        x = torch.ones(50_000_000 // 4)  # 50 MB, touched
        return float(x.sum())

    assert peak_rss_increase(alloc) > 40e6
    assert peak_rss_increase(lambda: None) < 20e6
