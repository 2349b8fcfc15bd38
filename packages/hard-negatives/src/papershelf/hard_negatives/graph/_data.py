"""Offline graph classification data: four random-graph families with the same mean degree.

The TU datasets of the paper (MUTAG, PROTEINS, ...) are downloads; these classes are generated
in a second and differ only in structure (degree spread, clustering, communities), not in size
or density. Node features are constant by default, so that everything an encoder knows about a
graph it has to read from the structure; ``node_features="degree"`` gives one-hot degrees, as
the official code uses for TU datasets without node attributes (the degree histogram alone then
separates the families fairly well).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch_geometric.data import Data

__all__ = ["GRAPH_FAMILIES", "synthetic_graph_classes"]

GRAPH_FAMILIES = ("Erdos-Renyi", "two-block SBM", "Watts-Strogatz", "Barabasi-Albert")


def _erdos_renyi(n: int, k: float, rng: np.random.Generator) -> set[tuple[int, int]]:
    p = k / (n - 1)
    i, j = np.triu_indices(n, 1)
    keep = rng.random(len(i)) < p
    return set(zip(i[keep].tolist(), j[keep].tolist()))


def _two_block(n: int, k: float, rng: np.random.Generator) -> set[tuple[int, int]]:
    # 4/5 of a node's expected degree inside its half, 1/5 across
    half = n // 2
    p_in, p_out = 0.8 * k / (half - 1), 0.2 * k / (n - half)
    i, j = np.triu_indices(n, 1)
    same = (i < half) == (j < half)
    keep = rng.random(len(i)) < np.where(same, p_in, p_out)
    return set(zip(i[keep].tolist(), j[keep].tolist()))


def _watts_strogatz(n: int, k: float, rng: np.random.Generator) -> set[tuple[int, int]]:
    reach = max(1, round(k / 2))
    edges: set[tuple[int, int]] = set()
    for u in range(n):
        for step in range(1, reach + 1):
            v = (u + step) % n
            if rng.random() < 0.2:  # rewire the far end
                v = int(rng.integers(n))
            if v != u:
                edges.add((min(u, v), max(u, v)))
    return edges


def _barabasi_albert(n: int, k: float, rng: np.random.Generator) -> set[tuple[int, int]]:
    m = max(1, round(k / 2))
    edges = {(i, j) for i in range(m + 1) for j in range(i + 1, m + 1)}  # seed clique
    ends = [v for e in edges for v in e]  # a node appears once per incident edge
    for u in range(m + 1, n):
        targets: set[int] = set()
        while len(targets) < m:
            targets.add(ends[int(rng.integers(len(ends)))])
        for v in targets:
            edges.add((v, u))
            ends += [u, v]
    return edges


_GENERATORS = (_erdos_renyi, _two_block, _watts_strogatz, _barabasi_albert)


def synthetic_graph_classes(
    n_per_class: int = 100,
    *,
    min_nodes: int = 12,
    max_nodes: int = 30,
    mean_degree: float = 4.0,
    node_features: Literal["constant", "degree"] = "constant",
    max_degree: int = 10,
    seed: int = 0,
) -> list[Data]:
    """Random graphs from four families (labels 0-3, :data:`GRAPH_FAMILIES`), shuffled.

    Parameters
    ----------
    n_per_class : int, default 100
        Graphs per family.
    min_nodes, max_nodes : int, default 12, 30
        Node count of each graph, uniform in ``[min_nodes, max_nodes]``.
    mean_degree : float, default 4.0
        Expected mean degree of every family.
    node_features : {"constant", "degree"}, default "constant"
        ``"constant"``: ``x`` is a column of ones, shape (n_nodes, 1). ``"degree"``: one-hot
        degrees ``min(degree, max_degree)``, shape (n_nodes, max_degree + 1).
    max_degree : int, default 10
        Cap of the one-hot degree features.
    seed : int, default 0
        Seed of the generator.

    Returns
    -------
    list of torch_geometric.data.Data
        ``x`` (n_nodes, 1) or (n_nodes, max_degree + 1) float32, ``edge_index`` (2, 2 * n_edges) with both
        directions, ``y`` (1,) int64.
    """
    if n_per_class < 1 or min_nodes < 4 or max_nodes < min_nodes:
        raise ValueError(
            "need n_per_class >= 1 and 4 <= min_nodes <= max_nodes, got "
            f"n_per_class={n_per_class}, min_nodes={min_nodes}, max_nodes={max_nodes}"
        )
    if node_features not in ("constant", "degree"):
        raise ValueError(
            f"node_features must be 'constant' or 'degree', got node_features={node_features!r}"
        )
    if not 1.0 <= mean_degree < min_nodes - 1:
        raise ValueError(f"mean_degree must lie in [1, min_nodes - 1), got {mean_degree}")
    rng = np.random.default_rng(seed)
    graphs = []
    for label, make in enumerate(_GENERATORS):
        for _ in range(n_per_class):
            n = int(rng.integers(min_nodes, max_nodes + 1))
            edges = np.array(sorted(make(n, mean_degree, rng)), dtype=np.int64).reshape(-1, 2)
            edge_index = torch.from_numpy(np.concatenate([edges, edges[:, ::-1]]).T.copy())
            if node_features == "constant":
                x = torch.ones(n, 1)
            else:
                degree = torch.bincount(edge_index[0], minlength=n).clamp(max=max_degree)
                x = torch.nn.functional.one_hot(degree, max_degree + 1).float()
            graphs.append(Data(x=x, edge_index=edge_index, y=torch.tensor([label])))
    order = rng.permutation(len(graphs))
    return [graphs[i] for i in order]
