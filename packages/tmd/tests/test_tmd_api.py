"""Estimators, the README quickstart and a tiny run of the reproduction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from papershelf.core import ReproduceContext
from papershelf.core.testing import run_readme_quickstart
from papershelf.tmd import TMDSVC, TreeMoversKernel, molecule_like_graphs, pairwise_tmd

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart() -> None:
    ns = run_readme_quickstart(README)
    assert ns["D"].shape == (40, 40)
    assert ns["scores"].shape == (4,) and np.all((0.0 <= ns["scores"]) & (ns["scores"] <= 1.0))


def test_svc_protocol_and_precomputed() -> None:
    from sklearn.base import clone

    graphs = molecule_like_graphs(30, max_nodes=14, random_state=1)
    y = np.array([int(g.y) for g in graphs])
    est = TMDSVC(depth=2, random_state=0, gammas=(0.05, 0.1))
    params = est.get_params()
    assert clone(est).get_params() == params
    assert est.set_params(C=2.0).C == 2.0
    est.fit(graphs[:24], y[:24])
    pred = est.predict(graphs[24:])
    dist = pairwise_tmd(graphs, w=0.5, depth=2)
    pre = TMDSVC(depth=2, random_state=0, gammas=(0.05, 0.1), C=2.0, metric="precomputed")
    pre.fit(dist[:24, :24], y[:24])
    assert pre.gamma_ == est.gamma_
    assert np.array_equal(pre.predict(dist[24:, :24]), pred)
    assert np.allclose(pre.decision_function(dist[24:, :24]), est.decision_function(graphs[24:]))
    with pytest.raises(ValueError, match="20 features, but TMDSVC is expecting 24"):
        pre.predict(dist[24:, :20])


def test_kernel() -> None:
    graphs = molecule_like_graphs(6, max_nodes=12, random_state=2)
    k = TreeMoversKernel(gamma=0.05, depth=2).fit_transform(graphs)
    d = pairwise_tmd(graphs, w=0.5, depth=2)
    assert np.allclose(k, np.exp(-0.05 * d))
    kern = TreeMoversKernel(gamma=0.05, depth=2).fit(graphs[:4])
    assert np.allclose(kern.transform(graphs[4:]), np.exp(-0.05 * d[4:, :4]))


def test_molecule_like_graphs() -> None:
    graphs = molecule_like_graphs(10, random_state=3)
    assert sorted(int(g.y) for g in graphs) == [0] * 5 + [1] * 5
    for g in graphs:
        deg = np.bincount(g.edge_index[0].numpy(), minlength=g.num_nodes)
        assert deg.max() <= 4 and 10 <= g.num_nodes <= 27
        assert g.x.sum(dim=1).eq(1).all()


def test_reproduce_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner end to end on a tiny setting (patched sizes)."""
    from papershelf.tmd import reproduce

    monkeypatch.setattr(reproduce, "_quick_sizes", {"svm_graphs": 24, "folds": 3,
                        "n_train": 24, "n_eval": 10, "epochs": 2, "pairs": 30})  # fmt: skip
    records = reproduce.run(ReproduceContext(out_dir=tmp_path, show_progress=False))
    assert len(records) == 9
    assert sum(r.headline for r in records) == 1
    claims = [r for r in records if r.claim is not None]
    assert len(claims) == 5
    # one seed cannot show a stochastic claim; the bound is a deterministic check
    assert [r.status for r in claims[:4]] == ["not shown"] * 4
    assert claims[4].status in ("holds", "contradicted")
    assert (tmp_path / "tmd_reproduction.png").is_file()


@pytest.mark.slow
def test_svm_depth_two_beats_depth_one_on_structural_label() -> None:
    """Spec check: the label needs neighbourhoods, so depth-2 TMD-SVM beats depth 1 (~25 s)."""
    from papershelf.tmd.reproduce import _svm_cv

    graphs = molecule_like_graphs(120, random_state=0)
    y = np.array([int(g.y) for g in graphs])
    acc = {L: np.mean(_svm_cv(pairwise_tmd(graphs, w=0.5, depth=L), y, 10, 0)) for L in (1, 2)}
    assert acc[2] > acc[1] + 0.05


def test_import_is_lazy_and_old_names_stay_reachable() -> None:
    """``import papershelf.tmd`` loads no torch, scipy or scikit-learn (issue 23)."""
    import subprocess
    import sys

    code = (
        "import sys, papershelf.tmd as t\n"
        "heavy = {'torch', 'scipy', 'sklearn', 'torch_geometric'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert len(t.__all__) <= 8, t.__all__\n"
        "from papershelf.tmd import (SplitResult, TreeMoversKernel, from_networkx, one_hot,\n"
        "    load_tu_dataset, svm_split_accuracy, tu_data_root)\n"
        "assert 'sklearn' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_sklearn_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['sklearn'] = None  # as if scikit-learn were not installed\n"
        "from papershelf.tmd import tmd\n"
        "try:\n"
        "    from papershelf.tmd import TMDSVC\n"
        "except ImportError as err:\n"
        "    assert 'pip install \"papershelf-tmd[sklearn]\"' in str(err), err\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
