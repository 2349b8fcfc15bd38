"""The README quickstart runs, the registry is light, and the reproduction runs on a tiny setting."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

from papershelf.core import ReproduceContext
from papershelf.core.testing import run_readme_quickstart

HERE = Path(__file__).parent


def test_readme_quickstart_runs():
    ns = run_readme_quickstart(HERE.parent / "README.md")
    assert ns["per_anchor"].shape == (64,)
    assert ns["loss"].ndim == 0


def test_registry_does_not_import_torch():
    import subprocess

    code = "import sys, papershelf.robust_infonce._registry as r; print(r.REPRODUCTION.name, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["robust-infonce", "False"]


def test_package_import_is_lazy_and_old_names_still_import():
    import subprocess

    code = (
        "import sys, papershelf.robust_infonce as m; a = 'torch' in sys.modules; "
        "f = m.rince_from_logits; g = m.gather_with_grad; "
        "print(a, 'torch' in sys.modules, sorted(m.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().split(maxsplit=2) == [
        "False",
        "True",
        "['RINCELoss', '__version__', 'info_nce_loss', 'rince_loss']",
    ]


def test_quick_run_on_a_tiny_setting(tmp_path, monkeypatch):
    from papershelf.robust_infonce import reproduce

    tiny = replace(reproduce.QUICK, steps=3, batch_size=64, n_train=200, n_test=100, draws=1)
    monkeypatch.setattr(reproduce, "QUICK", tiny)
    monkeypatch.setattr(reproduce, "LOSSES", {"InfoNCE": {}, "RINCE q=0.5": {"q": 0.5}})
    records = reproduce.run(ReproduceContext(out_dir=tmp_path, seeds=(0, 1)))
    names = [r.experiment for r in records]
    assert "latent classes, 60% noisy views (other-class partners): RINCE q=0.5" in names
    assert "latent classes, clean views: InfoNCE" in names
    claims = [r for r in records if r.claim is not None]
    assert len(claims) == 3
    assert all(c.verdict in ("holds", "not shown", "contradicted") for c in claims)
    assert all(c.interval is not None and c.seeds == [0, 1] for c in claims)
    assert [r.experiment for r in records if r.headline] == [
        "latent classes, 60% noisy views (other-class partners): RINCE q=0.5 minus InfoNCE"
    ]
    assert all(0 <= r.mean <= 100 for r in records if r.claim is None)
    assert all(len(r.values) == 2 for r in records if r.claim is None)
    assert (tmp_path / "rince_noisy_views.png").is_file()


def test_one_seed_is_respected_and_claims_are_not_shown(tmp_path, monkeypatch):
    from papershelf.robust_infonce import reproduce

    tiny = replace(reproduce.QUICK, steps=2, batch_size=32, n_train=100, n_test=50, draws=1)
    monkeypatch.setattr(reproduce, "QUICK", tiny)
    monkeypatch.setattr(reproduce, "LOSSES", {"InfoNCE": {}, "RINCE q=0.5": {"q": 0.5}})
    records = reproduce.run(ReproduceContext(out_dir=tmp_path, seeds=(7,)))
    assert all(r.seeds == [7] for r in records)
    assert all(r.verdict == "not shown" for r in records if r.claim is not None)


def test_noise_partners_are_always_of_another_class():
    import torch

    from papershelf.robust_infonce._experiment import other_class_partners

    labels = torch.arange(300) % 7
    by_class = [torch.nonzero(labels == c).squeeze(1) for c in range(7)]
    g = torch.Generator().manual_seed(0)
    idx = torch.arange(300)
    partners = other_class_partners(idx, labels, by_class, g)
    assert (labels[partners] != labels[idx]).all()
    counts = torch.bincount(labels[partners], minlength=7)
    assert counts.min() > 20  # every other class is drawn


def test_latent_views_keep_the_class_part_and_redraw_the_nuisance():
    import torch

    from papershelf.robust_infonce._experiment import (
        LatentClassConfig,
        _latent_view,
        make_latent_classes,
    )

    cfg = LatentClassConfig(n_train=50, n_test=10, jitter=0.0)
    data = make_latent_classes(cfg, 0)
    g = torch.Generator().manual_seed(0)
    v1 = _latent_view(data.x_train, data, cfg, g) @ data.rotation.T
    v2 = _latent_view(data.x_train, data, cfg, g) @ data.rotation.T
    x = data.x_train @ data.rotation.T
    k = cfg.class_dim
    torch.testing.assert_close(v1[:, :k], x[:, :k])
    torch.testing.assert_close(v2[:, :k], x[:, :k])
    assert (v1[:, k:] - v2[:, k:]).abs().mean() > 1.0


def test_full_mode_explains_what_it_needs(tmp_path, monkeypatch):
    pytest.importorskip("papershelf.contrastive_bench")
    from papershelf.robust_infonce import reproduce

    monkeypatch.delenv("PAPERSHELF_DATA", raising=False)
    with pytest.raises(RuntimeError, match=r"torchvision|PAPERSHELF_DATA"):
        reproduce.run(ReproduceContext(out_dir=tmp_path, full=True))
