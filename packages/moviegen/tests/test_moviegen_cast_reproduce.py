"""Cast reproduction: a smoke run of ``run_cast`` on a tiny budget, and slow learning tests."""

from __future__ import annotations

import torch

from papershelf.core import ReproduceContext
from papershelf.core.testing import slow
from papershelf.moviegen.cast import reproduce as cast_rep

TINY = dict(
    up_steps=2, up_batch=2, up_lr=1e-3, up_eval=3,
    vae_steps=2, video_tae_steps=2, audio_sample_steps=2, audio_guidance=3.0,
    audio_steps=2, audio_batch=4, audio_lr=1e-3, audio_eval=4,
    pt2v_steps=(1, 1, 1), pt2v_batch=2, pt2v_lr=1e-3, pt2v_eval=4,
    edit_steps=(2, 1, 1), edit_batch=2, edit_lr=1e-3, edit_eval=4, bt_pool=4,
    sample_steps=2,
)  # fmt: skip


def test_run_cast_smoke(tmp_path, monkeypatch):
    monkeypatch.setattr(cast_rep, "QUICK", TINY)
    recs = cast_rep.run_cast(ReproduceContext(out_dir=tmp_path, seeds=(0,)))
    assert len(recs) == 12
    assert all(r.package == "moviegen" for r in recs)
    assert sum(not r.comparable for r in recs) == 8  # the demos; the 4 preset sizes compare
    assert all(r.status == "within tolerance" for r in recs[-4:])
    for name in ("upsampler", "audio", "pt2v", "edit"):
        assert (tmp_path / f"cast_{name}.png").stat().st_size > 0


def test_event_metrics_score_real_audio_perfectly():
    g = torch.Generator().manual_seed(0)
    d = cast_rep._audio_data(64, 28, g)
    pred = cast_rep.detect_events(d["wav"], 28)
    assert cast_rep.event_f1(pred, d["events"]) == 1.0
    assert cast_rep.event_f1(pred, d["events"].roll(1, 0)) < 0.3
    assert (cast_rep.sound_type(d["wav"], pred) == d["sound"]).float().mean() > 0.95
    assert torch.equal(cast_rep.hum_class(d["wav"]), d["hum"])


def _hp(**kw):
    hp = dict(cast_rep.QUICK)
    hp.update(kw)
    return hp


@slow
def test_upsampler_learns_to_beat_bilinear(tmp_path):
    res = cast_rep.demo_upsampler(_hp(), 0, ReproduceContext(out_dir=tmp_path))
    assert sum(res["losses"][-50:]) < 0.3 * sum(res["losses"][:10]) * 5
    assert res["psnr"] > res["psnr_bilinear"]


@slow
def test_audio_learns_synchronized_events(tmp_path):
    res = cast_rep.demo_audio(_hp(audio_eval=32), 0, ReproduceContext(out_dir=tmp_path))
    assert res["sync_f1"] > 0.5 > 2 * res["chance_f1"]
    # the long-clip hum claim is reported as "not shown" at this budget (0.72 vs 0.78 in the
    # committed run); here only that both scores are measured as fractions
    assert 0.0 <= res["hum_md"] <= 1.0 and 0.0 <= res["hum_independent"] <= 1.0


@slow
def test_pt2v_learns_identity_from_reference(tmp_path):
    res = cast_rep.demo_pt2v(_hp(pt2v_eval=32), 0, ReproduceContext(out_dir=tmp_path))
    assert res["acc_ref"] > 0.8 and res["acc_noref"] < 0.6


@slow
def test_edit_learns_colour_edits(tmp_path):
    res = cast_rep.demo_edit(_hp(edit_eval=32), 0, ReproduceContext(out_dir=tmp_path))
    final = res["per_stage"][-1]
    assert final["acc"] > 0.8 and final["iou"] > 0.8


def test_quick_profile_keys_are_complete():
    assert set(TINY) == set(cast_rep.QUICK) == set(cast_rep.FULL)
