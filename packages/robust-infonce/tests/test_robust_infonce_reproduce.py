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


def test_quick_run_on_a_tiny_setting(tmp_path, monkeypatch):
    from papershelf.robust_infonce import reproduce

    real = reproduce.load_digits_split

    def small(classes):
        xtr, ytr, xte, yte = real(classes)
        return xtr[:300], ytr[:300], xte[:150], yte[:150]

    monkeypatch.setattr(reproduce, "load_digits_split", small)
    monkeypatch.setattr(
        reproduce, "QUICK", replace(reproduce.QUICK, epochs=2, batch_size=128, draws=1)
    )
    monkeypatch.setattr(reproduce, "NOISE_RATES", (0.0, 0.6))
    monkeypatch.setattr(reproduce, "RESAMPLED_RATES", (0.6,))
    monkeypatch.setattr(reproduce, "LOSSES", {"InfoNCE": {}, "RINCE q=1.0": {"q": 1.0}})
    ctx = ReproduceContext(out_dir=tmp_path, seeds=(0, 1))
    records = reproduce.run(ctx)
    names = [r.experiment for r in records]
    assert "digits, 60% noisy views (fixed): RINCE q=1.0" in names
    assert "digits, 60% noisy views (resampled): InfoNCE" in names
    claim = [r for r in records if r.claim is not None]
    assert len(claim) == 3 and all(c.claim_holds in (True, False) for c in claim)
    assert all(0 <= r.mean <= 100 for r in records if r.claim is None)
    assert (tmp_path / "rince_noisy_views.png").is_file()


def test_full_mode_explains_what_it_needs(tmp_path, monkeypatch):
    from papershelf.robust_infonce import reproduce

    monkeypatch.delenv("PAPERSHELF_DATA", raising=False)
    with pytest.raises(RuntimeError, match=r"torchvision|PAPERSHELF_DATA"):
        reproduce.run(ReproduceContext(out_dir=tmp_path, full=True))
