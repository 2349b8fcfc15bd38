"""Graph-classification data: synthetic molecule-like graphs (offline) and the TU datasets.

The synthetic set stands in for MUTAG-like data where nothing can be downloaded: random trees
of bounded degree with a few ring-closing edges, one-hot atom types, and a label that depends
on structure (whether some bond joins a type-0 and a type-1 atom), so that depth-1 TMD (OT on
node features) cannot see it and depth-2 trees can.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from papershelf.core.io import DATA_ENV, data_root
from papershelf.core.validation import check_int
from papershelf.tmd.graphs import one_hot

__all__ = ["load_tu_dataset", "molecule_like_graphs", "tu_data_root", "tu_raw_files"]

_DEFAULT_TYPE_PROBS = (0.3, 0.15, 0.15, 0.15, 0.1, 0.1, 0.05)


def _one_graph(
    rng: np.random.Generator, n: int, probs: np.ndarray, max_degree: int, rings: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    degree = np.zeros(n, dtype=int)
    edges: list[tuple[int, int]] = []
    for v in range(1, n):  # random tree: attach each atom to an earlier one with a free valence
        free = np.nonzero(degree[:v] < max_degree)[0]
        u = int(rng.choice(free))
        edges.append((u, v))
        degree[u] += 1
        degree[v] += 1
    have = set(edges)
    for _ in range(rings):  # ring closures between atoms that still have a free valence
        free = np.nonzero(degree < max_degree)[0]
        if len(free) < 2:
            break
        u, v = (int(t) for t in rng.choice(free, size=2, replace=False))
        if (min(u, v), max(u, v)) in have or abs(u - v) < 3:
            continue
        edges.append((min(u, v), max(u, v)))
        have.add((min(u, v), max(u, v)))
        degree[u] += 1
        degree[v] += 1
    types = rng.choice(len(probs), size=n, p=probs)
    return types, edges


def molecule_like_graphs(
    n_graphs: int,
    *,
    min_nodes: int = 10,
    max_nodes: int = 27,
    type_probs: Sequence[float] = _DEFAULT_TYPE_PROBS,
    max_degree: int = 4,
    rings: int = 2,
    balanced: bool = True,
    random_state: int | np.random.Generator | None = None,
) -> list[Any]:
    """Random molecule-like graphs with a structural binary label.

    Parameters
    ----------
    n_graphs : int
        Number of graphs.
    min_nodes, max_nodes : int
        Node counts are uniform in ``[min_nodes, max_nodes]`` (MUTAG: 10 to 28).
    type_probs : sequence of float
        Probabilities of the atom types (one-hot features of this length; MUTAG has 7).
    max_degree : int
        Valence bound.
    rings : int
        Attempted ring-closing edges per graph.
    balanced : bool
        Draw until both labels have ``n_graphs // 2`` graphs (label 1 gets the odd one).
    random_state : int or numpy Generator, optional
        Seed.

    Returns
    -------
    list of torch_geometric.data.Data
        ``x`` (n, len(type_probs)) float32 one-hot, ``edge_index`` (2, 2E) undirected,
        ``y`` (1,) long: 1 when some edge joins a type-0 and a type-1 atom.
    """
    from torch_geometric.data import Data

    n_graphs = check_int("n_graphs", n_graphs, low=1)
    min_nodes = check_int("min_nodes", min_nodes, low=1)
    max_nodes = check_int("max_nodes", max_nodes, low=1)
    max_degree = check_int("max_degree", max_degree)
    rings = check_int("rings", rings, low=0)
    if not 1 <= min_nodes <= max_nodes:
        raise ValueError(f"need 1 <= min_nodes <= max_nodes, got {min_nodes}, {max_nodes}")
    probs = np.asarray(type_probs, dtype=np.float64)
    if (
        probs.ndim != 1
        or len(probs) < 2
        or not np.all(np.isfinite(probs))
        or np.any(probs < 0)
        or not np.isclose(probs.sum(), 1)
    ):
        raise ValueError("type_probs must be >= 2 non-negative probabilities summing to 1")
    if max_degree < 2:
        raise ValueError(f"max_degree must be >= 2, got {max_degree}")
    rng = np.random.default_rng(random_state)
    want = {0: n_graphs // 2, 1: n_graphs - n_graphs // 2} if balanced else None
    out: list[Any] = []
    have = {0: 0, 1: 0}
    for _ in range(1000 * n_graphs):
        if len(out) == n_graphs:
            break
        n = int(rng.integers(min_nodes, max_nodes + 1))
        types, edges = _one_graph(rng, n, probs, max_degree, rings)
        label = int(any({int(types[u]), int(types[v])} == {0, 1} for u, v in edges))
        if want is not None and have[label] >= want[label]:
            continue
        have[label] += 1
        e = np.array(edges, dtype=np.int64).reshape(-1, 2)
        ei = torch.as_tensor(np.concatenate([e, e[:, ::-1]]).T.copy())
        out.append(Data(x=one_hot(types, len(probs)), edge_index=ei, y=torch.tensor([label])))
    if len(out) < n_graphs:
        raise RuntimeError("could not draw a balanced set; change type_probs or sizes")
    order = rng.permutation(len(out))
    return [out[i] for i in order]


TU_ENV = DATA_ENV  # PAPERSHELF_DATA, shared by every package's --full data
TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets"  # where PyG's TUDataset downloads from


def tu_data_root() -> Path:
    """The folder that holds the TU datasets: ``$PAPERSHELF_DATA/TUDataset``.

    Without the ``PAPERSHELF_DATA`` environment variable, ``./data/TUDataset`` (the folder of
    PyG's examples).

    Returns
    -------
    pathlib.Path
        Dataset ``NAME`` is read from ``<root>/NAME/raw/NAME_A.txt`` and the other TU files.
    """
    return (data_root() or Path("data")) / "TUDataset"


def tu_raw_files(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The raw files PyG's ``TUDataset`` needs for ``name`` (it downloads when one is missing).

    Parameters
    ----------
    name : str
        TU dataset name, e.g. ``"MUTAG"``.
    root : str or path, optional
        Dataset root (default :func:`tu_data_root`).

    Returns
    -------
    list of pathlib.Path
        ``<root>/<name>/raw/<name>_A.txt`` and ``..._graph_indicator.txt``, then the graph
        labels (needed for classification); node labels, when present, become one-hot ``x``.
    """
    raw = Path(root if root is not None else tu_data_root()) / name / "raw"
    return [raw / f"{name}_{part}.txt" for part in ("A", "graph_indicator", "graph_labels")]


def _missing_message(name: str, missing: list[Path]) -> str:
    raw = missing[0].parent.absolute()
    return (
        f"TU dataset {name!r} not found: {', '.join(p.name for p in missing)} missing in {raw}. "
        f"Put the TU files there ({name}_A.txt, {name}_graph_indicator.txt, "
        f"{name}_graph_labels.txt and, if the dataset has them, {name}_node_labels.txt: the "
        f"contents of {TU_URL}/{name}.zip), or set {TU_ENV} to the folder whose TUDataset/ "
        f"holds them, or call load_tu_dataset({name!r}, download=True) once with network access"
    )


def load_tu_dataset(
    name: str, root: str | os.PathLike[str] | None = None, *, download: bool = False
) -> list[Any]:
    """A TU graph-classification dataset (MUTAG, PTC_MR, PROTEINS, ...) via PyTorch Geometric.

    Reads ``<root>/<name>/raw/<name>_*.txt`` (the TU format: ``_A`` edges, ``_graph_indicator``,
    ``_graph_labels``, ``_node_labels``) through PyG's ``TUDataset``, which caches a processed
    copy in ``<root>/<name>/processed``. Nothing is downloaded unless ``download=True``.

    Parameters
    ----------
    name : str
        TU dataset name, e.g. ``"MUTAG"``.
    root : str or path, optional
        Dataset root; default :func:`tu_data_root` (``$PAPERSHELF_DATA/TUDataset``).
    download : bool
        Let PyG download ``name`` from the TU collection when its files are missing (needs the
        network). ``False``: a missing dataset raises :class:`FileNotFoundError` saying where
        to put the files.

    Returns
    -------
    list of torch_geometric.data.Data
        Graphs with ``x`` (node labels one-hot, float32; a constant ``[1.0]`` per node for
        unlabelled graphs such as IMDB-BINARY), ``edge_index`` (both directions) and ``y``
        (labels mapped to 0, 1, ...).

    Raises
    ------
    FileNotFoundError
        Files missing and ``download=False``.
    RuntimeError
        The download failed (no network, unknown name).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    base = Path(root) if root is not None else tu_data_root()
    files = tu_raw_files(name, base)
    missing = [p for p in files if not p.is_file()]
    if missing and not download:
        raise FileNotFoundError(_missing_message(name, missing))
    from torch_geometric.datasets import TUDataset

    try:
        ds = TUDataset(str(base), name=name)
    except Exception as err:
        if not missing:
            raise
        raise RuntimeError(
            f"downloading TU dataset {name!r} from {TU_URL}/{name}.zip failed ({err!r}); "
            + _missing_message(name, [p for p in files if not p.is_file()] or missing)
        ) from err
    if ds.num_node_features == 0:  # unattributed graphs (IMDB): constant features
        from torch_geometric.data import Data

        return [Data(x=torch.ones(g.num_nodes, 1), edge_index=g.edge_index, y=g.y) for g in ds]
    return [ds[i] for i in range(len(ds))]
