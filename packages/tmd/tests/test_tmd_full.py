"""The ``--full`` TU path, offline: local TU files, clear errors, the paper's SVM protocol.

A tiny TU-format dataset (MUTAG-style: integer node labels, graph labels -1/1) is written into
``tmp_path`` and read back through PyG's ``TUDataset``; any download attempt fails the tests.
``data/official_svc_reference.json`` holds the accuracies, chosen bandwidths and validation
sums printed by the official ``svc.py --rs 0..9`` (numbers only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from papershelf.core import ReproduceContext
from papershelf.tmd import (
    load_tu_dataset,
    molecule_like_graphs,
    pairwise_tmd,
    svm_split_accuracy,
    tu_data_root,
)

SVC_REF = json.loads((Path(__file__).parent / "data" / "official_svc_reference.json").read_text())


def write_tu(root: Path, name: str, graphs: list[Any], attributes: bool = False) -> Path:
    """Write graphs (one-hot ``x``, ``y`` in {0, 1}) as ``<root>/<name>/raw/<name>_*.txt``.

    ``attributes``: also a continuous ``_node_attributes.txt`` column (as PROTEINS has), which
    PyG drops by default (``use_node_attr=False``): ``x`` stays the one-hot node labels.
    """
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    edges, indicator, node_labels, graph_labels = [], [], [], []
    offset = 0
    for k, g in enumerate(graphs, start=1):
        edges += [f"{s + offset + 1}, {t + offset + 1}" for s, t in g.edge_index.t().tolist()]
        indicator += [str(k)] * g.num_nodes
        node_labels += [str(int(v)) for v in g.x.argmax(dim=1)]
        graph_labels.append(str(2 * int(g.y) - 1))  # MUTAG's labels are -1 / 1
        offset += g.num_nodes
    parts = {"A": edges, "graph_indicator": indicator, "node_labels": node_labels,
             "graph_labels": graph_labels}  # fmt: skip
    if attributes:
        parts["node_attributes"] = [f"{0.5 * k:.1f}" for k in range(offset)]
    for part, lines in parts.items():
        (raw / f"{name}_{part}.txt").write_text("\n".join(lines) + "\n")
    return raw


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make PyG's TUDataset download raise (and record the attempt)."""
    from torch_geometric.datasets import tu_dataset

    attempts: list[str] = []

    def offline(src: str, *args: Any, **kwargs: Any) -> None:
        attempts.append(src)
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(tu_dataset.fs, "cp", offline)
    return attempts


def _edges(g: Any) -> set[tuple[int, int]]:
    return set(map(tuple, g.edge_index.t().tolist()))


def test_local_tu_files_are_read_without_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_download: list[str]
) -> None:
    monkeypatch.setenv("PAPERSHELF_DATA", str(tmp_path))
    assert tu_data_root() == tmp_path / "TUDataset"
    graphs = molecule_like_graphs(14, min_nodes=4, max_nodes=9, random_state=0)
    write_tu(tmp_path / "TUDataset", "MUTAG", graphs)
    tu = load_tu_dataset("MUTAG")  # root from $PAPERSHELF_DATA
    assert not no_download
    assert len(tu) == 14
    for g, h in zip(graphs, tu):
        assert int(h.y) == int(g.y)
        assert _edges(h) == _edges(g)
        assert torch.equal(h.x, g.x)  # all 7 node labels occur: the same one-hot columns
    assert np.array_equal(pairwise_tmd(tu, w=0.5, depth=3), pairwise_tmd(graphs, w=0.5, depth=3))


def test_missing_dataset_says_where_to_put_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_download: list[str]
) -> None:
    monkeypatch.setenv("PAPERSHELF_DATA", str(tmp_path))
    raw = tmp_path / "TUDataset" / "PTC_MR" / "raw"
    with pytest.raises(FileNotFoundError) as err:
        load_tu_dataset("PTC_MR")
    msg = str(err.value)
    assert str(raw) in msg and "PTC_MR_A.txt" in msg and "PTC_MR_graph_labels.txt" in msg
    assert "PAPERSHELF_DATA" in msg and "download=True" in msg
    assert not no_download and not raw.exists()  # nothing tried, nothing created
    # the --full runner stops before any work with the same kind of message
    from papershelf.tmd import reproduce

    monkeypatch.setenv("PAPERSHELF_TMD_DATASETS", "MUTAG, PTC_MR")
    with pytest.raises(FileNotFoundError, match=r"MUTAG: MUTAG_A\.txt.*PTC_MR: PTC_MR_A\.txt"):
        reproduce.run(ReproduceContext(out_dir=tmp_path / "out", full=True, show_progress=False))
    assert not no_download


def test_failed_download_is_a_clear_error(tmp_path: Path, no_download: list[str]) -> None:
    with pytest.raises(RuntimeError, match=r"downloading TU dataset 'MUTAG'.*failed") as err:
        load_tu_dataset("MUTAG", root=tmp_path, download=True)
    assert no_download and no_download[0].endswith("/MUTAG.zip")
    assert str(tmp_path / "MUTAG" / "raw") in str(err.value)


def test_full_run_end_to_end_on_local_tu_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_download: list[str]
) -> None:
    """``papershelf reproduce tmd --full``'s runner on tiny local MUTAG / PTC_MR / PROTEINS."""
    from papershelf.tmd import reproduce

    monkeypatch.setenv("PAPERSHELF_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("PAPERSHELF_TMD_DATASETS", raising=False)
    for seed, name in enumerate(("MUTAG", "PTC_MR", "PROTEINS")):
        graphs = molecule_like_graphs(20, min_nodes=4, max_nodes=10, random_state=10 + seed)
        write_tu(tmp_path / "data" / "TUDataset", name, graphs, attributes=name == "PROTEINS")
    monkeypatch.setattr(reproduce, "_full_sizes", {"svm_graphs": 24, "folds": 3, "n_train": 24,
                        "n_eval": 10, "epochs": 2, "pairs": 30, "tu_n_jobs": 1})  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    records = reproduce.run(ReproduceContext(out_dir=out, full=True, show_progress=False))
    assert not no_download
    tu = [r for r in records if "(TU)" in r.experiment]
    assert [r.experiment.split(",")[1].strip() for r in tu] == ["MUTAG (TU)", "PTC_MR (TU)",
                                                                 "PROTEINS (TU)"]  # fmt: skip
    for rec, name in zip(tu, ("MUTAG", "PTC_MR", "PROTEINS")):
        # the paper's protocol: w = 0.5, depth 4, lambda grid, C = 1, inner 90/10 splits, 10 runs
        assert rec.config["w"] == 0.5 and rec.config["depth"] == 4
        assert rec.config["gammas"] == [0.01, 0.05, 0.1] and rec.config["C"] == 1.0
        assert rec.config["inner_splits"] == 10 and rec.config["test_fraction"] == 0.1
        assert rec.config["runs"] == 10 and rec.config["split_seeds"] == list(range(10))
        assert len(rec.values) == 10 and rec.status == "not comparable"
        graphs = load_tu_dataset(name, tmp_path / "data" / "TUDataset")
        assert all(torch.all(g.x.sum(dim=1) == 1) for g in graphs)  # one-hot labels only
        dist = np.load(out / f"tmd_{name}_L4_w0.5.npy")
        assert np.array_equal(dist, pairwise_tmd(graphs, w=0.5, depth=4))
        y = np.array([int(g.y) for g in graphs])
        assert rec.values == [svm_split_accuracy(dist, y, s).accuracy for s in range(10)]


def test_svm_split_protocol_matches_official_svc() -> None:
    """Same splits, bandwidths, validation sums and accuracies as the official svc.py."""
    graphs = molecule_like_graphs(100, min_nodes=6, max_nodes=14, random_state=7)
    y = np.array([int(g.y) for g in graphs])
    fp = SVC_REF["fingerprint"]
    assert sum(g.num_nodes for g in graphs) == fp["nodes"], "generator changed: re-run svc.py"
    assert sum(g.edge_index.shape[1] for g in graphs) == fp["directed_edges"]
    assert int(y.sum()) == fp["positives"]
    dist = pairwise_tmd(graphs, **SVC_REF["tmd"])
    for run in SVC_REF["runs"]:
        res = svm_split_accuracy(dist, y, run["rs"])
        assert res.accuracy == pytest.approx(run["accuracy"], abs=1e-12)
        assert res.gamma == run["lam"]
        np.testing.assert_allclose(np.array(res.validation_scores) * 10, run["best_k_count"],
                                   rtol=1e-12)  # fmt: skip


def test_svm_split_accuracy_bad_input() -> None:
    with pytest.raises(ValueError, match="dist"):
        svm_split_accuracy(np.zeros((12, 11)), np.zeros(12), 0)
    with pytest.raises(ValueError, match="y must"):
        svm_split_accuracy(np.zeros((12, 12)), np.zeros(11), 0)
    with pytest.raises(ValueError, match="at least 10"):
        svm_split_accuracy(np.zeros((9, 9)), np.zeros(9), 0)
    with pytest.raises(TypeError, match="seed"):
        svm_split_accuracy(np.zeros((12, 12)), np.arange(12) % 2, 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name"):
        load_tu_dataset("")
