"""The reproduction: metric helpers, one fast experiment, and (slow) a tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest

from papershelf.core.registry import ReproduceContext
from papershelf.core.testing import slow
from papershelf.infoot import reproduce


def test_metrics():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    assert reproduce.foscttm(X, X, np.arange(3)) == 0.0
    assert reproduce.foscttm(X, X, np.array([2, 2, 0])) > 0.3
    scores = np.array([[3.0, 2.0, 1.0]])
    assert reproduce.precision_at(scores, np.array([1]), np.array([1, 0, 1]), 2) == 0.5
    assert reproduce.one_nn_accuracy(X, np.array([0, 0, 1]), X + 0.1, np.array([0, 0, 1])) == 1.0


def test_outlier_experiment_tiny():
    res, _ = reproduce.outliers(0, 30, 3)
    key = "source projected onto the inlier target support"
    assert res["Fused InfoOT, conditional"][key] >= res["Fused InfoOT, barycentric"][key]
    assert res["Fused InfoOT, conditional"]["label transfer accuracy"] > 0.9


@slow
def test_run_tiny(tmp_path, monkeypatch):
    monkeypatch.setattr(
        reproduce,
        "QUICK_SIZES",
        {
            "da": (40, 40, 40),
            "converged_iter": 50,
            "toy": (30, 3),
            "retrieval": (40, 40, 10),
            "cross": 30,
            "manifold": (30, 1.0),
        },
    )
    records = reproduce.run(ReproduceContext(out_dir=tmp_path, seeds=(0,), show_progress=False))
    assert (tmp_path / "infoot_toy.png").is_file()
    names = {r.metric for r in records}
    assert "FOSCTTM: InfoOT" in names and "nearest neighbour P@15" in names
    assert all(r.claim_holds is not None for r in records if r.claim is not None)
    assert sum(r.claim is not None for r in records) == 8  # 5 of the paper, 3 of fast mode
    fast = [r for r in records if r.claim is not None and "fast mode" in r.claim]
    assert {r.metric for r in fast} == {
        "1-NN accuracy: Fused InfoOT, labels, fast, barycentric",
        "1-NN accuracy: Fused InfoOT, labels, fast, conditional",
        "InfoOT conditional score (query bandwidth), fast mode P@15",
    }
    for r in records:
        assert all(0.0 <= v <= 1.0 for v in r.values), r.metric


def test_registry_is_light():
    from papershelf.infoot._registry import REPRODUCTION

    assert REPRODUCTION.name == "infoot"
    assert REPRODUCTION.run == "papershelf.infoot.reproduce:run"


@pytest.mark.parametrize("sizes", [reproduce.QUICK_SIZES, reproduce.FULL_SIZES])
def test_size_tables_complete(sizes):
    assert set(sizes) == {"da", "converged_iter", "toy", "retrieval", "cross", "manifold"}


def test_manifold_views_are_aligned_copies_of_one_manifold():
    for kind in reproduce.MANIFOLDS:
        Xs, Xt, match = reproduce.manifold_views(kind, 0, 40, noise=0.0)
        assert Xs.shape == (40, 100) and Xt.shape == (40, 50)
        # noise-free views are linear images of the same points: matched rows, same rank
        assert np.linalg.matrix_rank(np.c_[Xs, Xt[match]]) <= 3
    with pytest.raises(ValueError, match="kind must be"):
        reproduce.manifold_views("torus", 0, 10, 1.0)


def test_office_caltech_protocol_on_tiny_fake_features(tmp_path, monkeypatch):
    """The --full loader and protocol run on files laid out like the official DeCAF .mat files."""
    import scipy.io

    monkeypatch.setattr(reproduce, "OFFICE_DOMAINS", ("caltech", "dslr"))
    rng = np.random.default_rng(0)
    for i, d in enumerate(reproduce.OFFICE_DOMAINS):
        labels = np.arange(1, 13) % 3 + 1
        feas = np.eye(3)[labels - 1] * 4 + 0.3 * rng.standard_normal((12, 3)) + 0.2 * i
        scipy.io.savemat(tmp_path / f"{d}_decaf.mat", {"feas": feas, "labels": labels[:, None]})
    records = reproduce.office_caltech(tmp_path, (0,), lambda x, **_: x)
    assert len(records) == 2 * 2
    assert all(0.0 <= r.values[0] <= 1.0 for r in records)
    assert np.mean([r.values[0] for r in records]) > 0.5


def test_unseen_query_retrieval_beats_nearest_neighbours_small():
    """The paper's unseen-sample claim on a CI-sized digits stand-in (P@15)."""
    out = reproduce.retrieval(0, 100, 100, 30)
    nn = out["nearest neighbour P@15"]
    assert out["InfoOT conditional score (query bandwidth) P@15"] > nn + 0.1
    assert out["InfoOT conditional score (train bandwidth) P@15"] > nn + 0.1
