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


def test_package_import_is_lazy_and_old_names_stay_reachable():
    import subprocess

    code = (
        "import sys, papershelf.hard_negatives as h; lazy = 'torch' not in sys.modules; "
        "names = [h.hcl_from_logits, h.hcl_from_labels, h.beta_schedule, h.ClampCollapseWarning, "
        "h.gather_with_grad, h.HardNegativeLoss]; print(lazy, 'torch' in sys.modules, len(h.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "6"]


def test_quick_run_on_a_tiny_setting(tmp_path, monkeypatch):
    from papershelf.hard_negatives import reproduce

    real = reproduce.load_digits_split

    def small(classes):
        xtr, ytr, xte, yte = real(classes)
        return xtr[:200], ytr[:200], xte[:100], yte[:100]

    monkeypatch.setattr(reproduce, "load_digits_split", small)
    monkeypatch.setattr(
        reproduce, "DIGITS", reproduce.DigitsConfig(epochs=1, batch_size=64, draws=1)
    )
    tiny = reproduce.HierarchyConfig(
        n_super=3,
        fine_per_super=2,
        train_per_class=12,
        test_per_class=4,
        steps=3,
        batch_size=16,
        hidden=16,
        proj=(8, 4),
        draws=1,
    )
    monkeypatch.setattr(reproduce, "HIERARCHY", tiny)
    monkeypatch.setattr(reproduce, "SIMCLR_TEMPERATURES", (0.5, 0.2))
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
    assert "hierarchy 6 fine / 3 super: HCL beta=1 (t=0.5, tau+=1/6)" in names
    assert "hierarchy 6 fine / 3 super: SimCLR t=0.2" in names
    headline = [r for r in records if r.headline]
    assert len(headline) == 1 and headline[0].claim is not None
    assert headline[0].experiment == "hierarchy 6 fine / 3 super: HCL beta=1 minus SimCLR"
    assert headline[0].paper_value == pytest.approx(87.44 - 80.15)
    claims = [r for r in records if r.claim is not None]
    assert all(r.verdict in ("holds", "not shown", "contradicted") for r in claims)
    assert all(r.interval is not None and r.seeds == [0, 1] for r in claims)
    shares = [r for r in records if "false-negative share" in r.experiment]
    assert len(shares) == 6 and all(0.0 <= v <= 100.0 for r in shares for v in r.values)
    assert "digits (negative regime): HCL beta=1 minus SimCLR" in names
    assert (tmp_path / "hcl_hierarchy.png").is_file()
    # then the graph variant, on the tiny graph setting
    assert "graphs: InfoGraph (JSD)" in names
    assert "graphs: JSD_hard beta=1, paper sign (tau+=0.5) minus InfoGraph" in names
    assert (tmp_path / "hcl_graph_beta.png").is_file()


def test_one_seed_is_refused_not_changed(tmp_path):
    from papershelf.core.registry import ReproduceError
    from papershelf.hard_negatives import reproduce

    with pytest.raises(ReproduceError, match="--seeds"):
        reproduce.run(ReproduceContext(out_dir=tmp_path, seeds=(0,)))


def test_hierarchy_weight_shares_closed_form():
    import torch

    from papershelf.hard_negatives._hierarchy import HierarchyConfig, make_hierarchy, weight_shares

    # identical embeddings within a class: at beta -> large all the mass goes to the class
    z = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), dim=1
    )
    labels = torch.tensor([0, 0, 1, 1])
    # each anchor has 6 negatives: 2 of its class (cosine 1), 4 of the other (cosine 0)
    fn0, _ = weight_shares(z, z, labels, beta=0.0, temperature=0.5)
    assert fn0 == pytest.approx(2 / 6, rel=1e-6)  # uniform sampling: the count share
    e = torch.exp(torch.tensor(2.0))
    fn0, _ = weight_shares(z, z, labels, beta=0.0, temperature=0.5, mass=True)
    assert fn0 == pytest.approx(float(2 * e / (2 * e + 4)), rel=1e-6)  # InfoNCE's softmax
    fn1, _ = weight_shares(z, z, labels, beta=1.0, temperature=0.5)
    assert fn1 == pytest.approx(float(2 * e / (2 * e + 4)), rel=1e-6)  # q_1 = softmax(s)
    fn, sib = weight_shares(
        z, z, labels, beta=20.0, temperature=0.5, groups=torch.tensor([0, 0, 0, 0])
    )
    assert fn == pytest.approx(1.0, abs=1e-6) and sib == pytest.approx(0.0, abs=1e-6)
    cfg = HierarchyConfig(n_super=2, fine_per_super=3, train_per_class=5, test_per_class=2)
    data = make_hierarchy(cfg)
    assert data.x_train.shape == (30, cfg.obs_dim) and data.x_test.shape == (12, cfg.obs_dim)
    assert data.super_train.tolist() == (data.fine_train // 3).tolist()
    assert cfg.false_negative_rate == pytest.approx(1 / 6)
    again = make_hierarchy(cfg)
    assert torch.equal(data.x_train, again.x_train)


def test_full_mode_explains_what_it_needs(tmp_path, monkeypatch):
    from papershelf.hard_negatives import reproduce

    monkeypatch.delenv("PAPERSHELF_DATA", raising=False)
    with pytest.raises(RuntimeError, match=r"torchvision|PAPERSHELF_DATA"):
        reproduce.run(ReproduceContext(out_dir=tmp_path, full=True))
