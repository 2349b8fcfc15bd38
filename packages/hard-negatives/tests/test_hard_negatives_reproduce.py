"""The README quickstart runs, the registry is light, and the reproduction runs on a tiny setting."""

from __future__ import annotations

import sys
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

    code = "import sys, papershelf.hard_negatives._registry as r; print(r.REPRODUCTION.name, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["hard-negatives", "False"]


def test_quick_run_on_a_tiny_setting(tmp_path, monkeypatch):
    from papershelf.hard_negatives import reproduce

    real = reproduce.load_digits_split

    def small(classes):
        xtr, ytr, xte, yte = real(classes)
        return xtr[:200], ytr[:200], xte[:100], yte[:100]

    monkeypatch.setattr(reproduce, "load_digits_split", small)
    tiny = reproduce.DigitsConfig(classes=(3, 5, 8, 9), epochs=2, batch_size=64, draws=1)
    monkeypatch.setattr(reproduce, "SETTINGS", {"tiny": (tiny, 0.25)})
    monkeypatch.setattr(reproduce, "BETAS", (0.0, 1.0))
    from papershelf.hard_negatives.graph import GraphExperimentConfig

    graph = GraphExperimentConfig(
        n_per_class=6,
        epochs=1,
        batch_size=8,
        hidden_dim=4,
        num_layers=1,
        betas=(0.0, 1.0),
        svm_c=(1.0,),
        outer_folds=2,
        inner_folds=2,
    )
    monkeypatch.setattr(reproduce, "GRAPH_CONFIG", graph)
    ctx = ReproduceContext(out_dir=tmp_path, seeds=(0, 1))
    records = reproduce.run(ctx)
    names = [r.experiment for r in records]
    assert "tiny: HCL beta=1 (tau+=0.25)" in names
    assert "tiny: SimCLR" in names
    digits = [r for r in records if r.claim is not None and r.experiment.startswith("tiny")]
    assert len(digits) == 3 and all(r.claim_holds in (True, False) for r in digits)
    assert (tmp_path / "hcl_beta.png").is_file()
    # then the graph variant, on the tiny graph setting
    assert "graphs: InfoGraph (JSD)" in names
    assert "graphs: JSD_hard beta=1, paper sign (tau+=0.5) minus InfoGraph" in names
    assert (tmp_path / "hcl_graph_beta.png").is_file()


def test_full_mode_explains_what_it_needs(tmp_path, monkeypatch):
    from papershelf.hard_negatives import reproduce

    monkeypatch.delenv("PAPERSHELF_DATA", raising=False)
    with pytest.raises(RuntimeError, match=r"torchvision|PAPERSHELF_DATA"):
        reproduce.run(ReproduceContext(out_dir=tmp_path, full=True))
