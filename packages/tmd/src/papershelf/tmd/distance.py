r"""Tree Mover's Distance (Chuang & Jegelka, NeurIPS 2022), exact and memoized.

TMD compares two graphs through their computation trees. With :math:`T_v^1 = x_v` and
:math:`T_v^\ell` the tree rooted at :math:`x_v` whose children are the depth-:math:`(\ell-1)`
trees of :math:`v`'s neighbours, the tree distance is

.. math::

    \mathrm{TD}_w(T_a, T_b) = \lVert x_a - x_b \rVert
        + w_\ell \, \mathrm{OT}_{\mathrm{TD}}\big(\rho(\mathcal{T}_a, \mathcal{T}_b)\big),

where :math:`\mathcal{T}_a` is the multiset of children, :math:`\rho` pads the smaller multiset
with blank trees (all-zero features) and :math:`\mathrm{OT}` is unnormalised optimal transport
with unit mass per tree. The graph distance is
:math:`\mathrm{TMD}^L_w(G_a, G_b) = \mathrm{OT}_{\mathrm{TD}}(\rho(\mathcal{T}^L_a, \mathcal{T}^L_b))`
over the depth-:math:`L` trees of all nodes.

Padded multisets have equal size and unit masses, so every OT here is an assignment problem:
small ones (at most 5 children) are solved by enumerating permutations in vectorised batches,
larger ones with :func:`scipy.optimize.linear_sum_assignment`. Identical computation trees
(the Weisfeiler-Lehman colour classes on raw features, what PyG's ``WLConv`` computes) share one
row of the distance table, across all graphs of a :func:`pairwise_tmd` call.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from papershelf.core import progress
from papershelf.tmd.graphs import Neighbors, _Graph, _to_graphs

__all__ = ["pairwise_tmd", "pascal_weights", "tmd"]

log = logging.getLogger(__name__)

Weights = float | Sequence[float]
_DP_MAX = 6  # up to 6 children a vectorised subset DP beats one scipy call per pair
_PAIRS_PER_BLOCK = 200_000  # class pairs per vectorised block (bounds memory to tens of MB)
_AUTO_MAX_CLASSES = (
    5_000  # memoize="auto": largest class table (5000^2 float64 = 200 MB, x3 at peak)
)


def pascal_weights(depth: int, eps: float = 1.0) -> list[float]:
    r"""The layer weights under which TMD bounds a GIN's output change (Pascal's triangle).

    .. math:: w^{(l)} = \varepsilon \, \binom{L-1}{l-1} \Big/ \binom{L-1}{l},
              \qquad l = 1, \dots, L-1.

    With these weights and depth ``L``, an ``(L-1)``-layer GIN with sum aggregation, sum
    readout and update maps :math:`\phi_l` (with :math:`\phi_l(0) = 0`) of Lipschitz constants
    :math:`K_l` satisfies :math:`\lVert h(G_a) - h(G_b) \rVert \le \prod_l K_l \cdot
    \mathrm{TMD}^L_w(G_a, G_b)` (the paper's stability theorem; checked by this package's tests).

    Parameters
    ----------
    depth : int
        TMD depth ``L`` >= 2.
    eps : float
        Overall scale (the paper's :math:`\varepsilon`), > 0.

    Returns
    -------
    list of float, length depth - 1
        ``[1]`` for L = 2, ``[1/2, 2]`` for L = 3, ``[1/3, 1, 3]`` for L = 4.

    References
    ----------
    Chuang & Jegelka, "Tree Mover's Distance", NeurIPS 2022; official ``stability.py``.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 2:
        raise ValueError(f"depth must be an integer >= 2, got {depth!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    n = int(depth) - 1
    return [eps * math.comb(n, k - 1) / math.comb(n, k) for k in range(1, n + 1)]


def _check_depth(depth: Any) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise TypeError(f"depth must be an integer, got {type(depth).__name__}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return int(depth)


def _check_weights(w: Any, depth: int) -> np.ndarray:
    """One weight per level 2..depth (``w[k]`` weighs the children when depth-(k+2) trees form)."""
    if isinstance(w, (int, float, np.integer, np.floating)) and not isinstance(w, bool):
        ws = np.full(depth - 1, float(w))
    elif isinstance(w, (Sequence, np.ndarray, torch.Tensor)) and not isinstance(w, str):
        ws = np.asarray([float(v) for v in w], dtype=np.float64)
        if ws.shape != (depth - 1,):
            raise ValueError(
                f"w must be a number or hold depth - 1 = {depth - 1} weights, got {len(ws)}"
            )
    else:
        raise TypeError(f"w must be a number or a sequence of numbers, got {type(w).__name__}")
    if not np.all(np.isfinite(ws)) or np.any(ws < 0):
        raise ValueError(f"w must be finite and non-negative, got {w!r}")
    return ws


@cache
def _subsets_by_size(d: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """(subset, its size - 1, its members) for every non-empty subset of d columns, by size."""
    subsets = sorted(range(1, 1 << d), key=lambda s: (s.bit_count(), s))
    return [(s, s.bit_count() - 1, tuple(j for j in range(d) if s >> j & 1)) for s in subsets]


def _batched_assignment(cost: np.ndarray) -> np.ndarray:
    """Minimum over permutations of sum_i cost[p, i, perm(i)], for cost of shape (P, d, d).

    Small d: a dynamic programme over column subsets, vectorised over the batch (f[S] is the
    cheapest way to give rows 0..|S|-1 the columns S; d 2^d array operations). Rows are added
    in order, so each candidate sum is formed exactly as a sequential sum. Larger d: scipy's
    assignment solver, one problem at a time.
    """
    n, d, _ = cost.shape
    if d == 0:
        return np.zeros(n)
    if d == 1:
        return cost[:, 0, 0].copy()
    if d <= _DP_MAX:
        cols = [np.ascontiguousarray(cost[:, :, j]) for j in range(d)]  # cols[j][:, row]
        best: dict[int, np.ndarray] = {0: np.zeros(n)}
        for s, row, members in _subsets_by_size(d):
            val = None
            for j in members:
                cand = best[s ^ (1 << j)] + cols[j][:, row]
                val = cand if val is None else np.minimum(val, cand, out=val)
            best[s] = val  # type: ignore[assignment]
        return best[(1 << d) - 1]
    out = np.empty(n)
    for p in range(n):
        r, c = linear_sum_assignment(cost[p])
        out[p] = cost[p][r, c].sum()
    return out


@dataclass
class _Level:
    """Computation-tree classes of one depth (internal)."""

    node_class: np.ndarray  # (N,) class of every node of every graph
    feat_class: np.ndarray  # (K,) feature class of the root of each class
    children: np.ndarray  # (K, maxdeg) child classes of the previous depth, blank-padded, sorted
    degree: np.ndarray  # (K,)


def _tree_classes(graphs: Sequence[_Graph], depth: int) -> tuple[np.ndarray, list[_Level]]:
    """WL refinement on raw features: identical depth-l computation trees share a class.

    Returns the distinct feature vectors (K1, d) and one :class:`_Level` per depth.
    """
    x_all = np.concatenate([g.x for g in graphs], axis=0)
    feats, fc = np.unique(x_all, axis=0, return_inverse=True)
    fc = fc.reshape(-1)
    offsets = np.cumsum([0] + [g.x.shape[0] for g in graphs])
    degrees = np.concatenate([[len(c) for c in g.children] for g in graphs]).astype(np.intp)
    maxdeg = int(degrees.max()) if degrees.size else 0
    nodes = np.full((x_all.shape[0], maxdeg), -1, dtype=np.intp)
    for off, g in zip(offsets[:-1], graphs):
        for v, ch in enumerate(g.children):
            nodes[off + v, : len(ch)] = ch + off
    levels = [
        _Level(fc, np.arange(len(feats)), np.zeros((len(feats), 0), np.intp), np.zeros(len(feats)))
    ]
    for _ in range(depth - 1):
        prev = levels[-1]
        k_prev = len(prev.feat_class)
        ch = np.where(nodes >= 0, prev.node_class[np.maximum(nodes, 0)], k_prev)
        ch.sort(axis=1)  # multiset of child classes; the blank (k_prev) sorts last
        key = np.concatenate([fc[:, None], ch], axis=1)
        uniq, inverse = np.unique(key, axis=0, return_inverse=True)
        children = uniq[:, 1:]
        levels.append(
            _Level(inverse.reshape(-1), uniq[:, 0], children, (children != k_prev).sum(axis=1))
        )
    return feats, levels


def _feature_tables(feats: np.ndarray, float32: bool) -> tuple[np.ndarray, np.ndarray]:
    """Level-1 distances between feature classes and their norms (distance to the blank tree).

    Computed with torch norms in the features' precision, as the paper code does, so that
    float32 features give the same float32-rounded numbers.
    """
    t = torch.as_tensor(feats, dtype=torch.float32 if float32 else torch.float64)
    norms = torch.linalg.vector_norm(t, dim=1).double().numpy()
    k = t.shape[0]
    dist = np.empty((k, k))
    step = max(1, 2_000_000 // max(1, k * t.shape[1]))
    for r in range(0, k, step):
        diff = t[r : r + step, None, :] - t[None, :, :]
        dist[r : r + step] = torch.linalg.vector_norm(diff, dim=-1).double().numpy()
    return dist, norms


def _upper_pairs(k: int, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
    """All (a, b) with r0 <= a < r1 and a < b < k."""
    rows = np.arange(r0, r1)
    counts = k - 1 - rows
    a = np.repeat(rows, counts)
    starts = np.cumsum(counts) - counts
    b = np.arange(counts.sum()) - np.repeat(starts, counts) + np.repeat(rows + 1, counts)
    return a, b


@dataclass
class _Tables:
    """Final-depth tree distances between all classes, with the blank row/column appended."""

    dist: np.ndarray  # (K+1, K+1); index K is the blank tree
    node_class: np.ndarray  # (N,)
    offsets: np.ndarray  # (G+1,) node offsets of the graphs
    num_classes: list[int]  # classes per depth (for logging and benchmarks)


def _extend(dist: np.ndarray, blank: np.ndarray) -> np.ndarray:
    k = dist.shape[0]
    ext = np.zeros((k + 1, k + 1))
    ext[:k, :k] = dist
    ext[k, :k] = blank
    ext[:k, k] = blank
    return ext


def _table_block(bounds: tuple[int, int]) -> tuple[int, int, np.ndarray]:
    """Tree distances of the class pairs (a, b), r0 <= a < r1, a < b, of one level.

    Reads the level's inputs from the worker state (set by the parent, or inherited by fork).
    """
    st = _LEVEL
    lv: _Level = st["level"]
    ext, d1, w = st["ext"], st["d1"], st["w"]
    a, b = _upper_pairs(len(lv.feat_class), *bounds)
    value = d1[lv.feat_class[a], lv.feat_class[b]]
    dmax = np.maximum(lv.degree[a], lv.degree[b])
    for d in np.unique(dmax):
        sel = np.nonzero(dmax == d)[0]
        ca = lv.children[a[sel], :d]
        cb = lv.children[b[sel], :d]
        cost = ext[ca[:, :, None], cb[:, None, :]]
        value[sel] = value[sel] + w * _batched_assignment(cost)
    return bounds[0], bounds[1], value


_LEVEL: dict[str, Any] = {}


def _init_level(state: dict[str, Any]) -> None:
    _LEVEL.clear()
    _LEVEL.update(state)


def _build_tables(
    graphs: Sequence[_Graph],
    weights: np.ndarray,
    float32: bool,
    show_progress: bool | None,
    n_jobs: int = 1,
) -> _Tables:
    depth = len(weights) + 1
    feats, levels = _tree_classes(graphs, depth)
    d1, b1 = _feature_tables(feats, float32)
    dist, blank = d1, b1
    total_pairs = sum(len(lv.feat_class) * (len(lv.feat_class) - 1) // 2 for lv in levels[1:])
    bar = progress(
        total=total_pairs,
        desc="TMD tree tables",
        disable=None if show_progress is None else not show_progress,
    )
    for lv, w in zip(levels[1:], weights):
        k = len(lv.feat_class)
        ext = _extend(dist, blank)
        # distance to the blank tree: ||x|| + w * sum of the children's distances to blank;
        # the paper code keeps these entries in the features' precision (a float32 tensor)
        child_sum = np.zeros(k)
        for j in range(lv.children.shape[1]):
            child_sum = child_sum + ext[-1, lv.children[:, j]]
        root = b1[lv.feat_class]
        if float32:
            new_blank = (root.astype(np.float32) + (w * child_sum).astype(np.float32)).astype(
                np.float64
            )
        else:
            new_blank = root + w * child_sum
        # row blocks of about equal pair counts (row a holds k - 1 - a pairs)
        blocks, start, acc = [], 0, 0
        for row in range(k):
            acc += k - 1 - row
            if acc >= _PAIRS_PER_BLOCK or row == k - 1:
                blocks.append((start, row + 1))
                start, acc = row + 1, 0
        state = {"level": lv, "ext": ext, "d1": d1, "w": float(w)}
        new = np.zeros((k, k))
        with contextlib.ExitStack() as stack:
            if n_jobs > 1 and len(blocks) > 1:
                pool = stack.enter_context(_pool(n_jobs, _init_level, state))
                results = pool.map(_table_block, blocks)
            else:
                _init_level(state)
                results = map(_table_block, blocks)
            for r0, r1, value in results:
                a, b = _upper_pairs(k, r0, r1)
                new[a, b] = value
                new[b, a] = value
                bar.update(a.size)
        _LEVEL.clear()
        dist, blank = new, new_blank
    bar.close()
    counts = [len(lv.feat_class) for lv in levels]
    log.debug("tree classes per depth: %s", counts)
    offsets = np.cumsum([0] + [g.x.shape[0] for g in graphs])
    return _Tables(_extend(dist, blank), levels[-1].node_class, offsets, counts)


def _pool(n_jobs: int, initializer: Any, state: dict[str, Any]) -> ProcessPoolExecutor:
    """Worker processes that inherit ``state`` by fork on Linux (pickled elsewhere)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    return ProcessPoolExecutor(n_jobs, mp_context=ctx, initializer=initializer, initargs=(state,))


def _graph_ot(ext: np.ndarray, ca: np.ndarray, cb: np.ndarray) -> float:
    """Unnormalised OT between two multisets of trees, padded with blanks: an assignment."""
    blank = ext.shape[0] - 1
    n = max(len(ca), len(cb))
    ra = np.full(n, blank)
    rb = np.full(n, blank)
    ra[: len(ca)] = ca
    rb[: len(cb)] = cb
    cost = ext[ra[:, None], rb[None, :]]
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].sum())


def _resolve_float32(graphs: Sequence[_Graph], exact_float32: bool | None) -> bool:
    if exact_float32 is None:
        return all(g.x.dtype == np.float32 for g in graphs)
    if not isinstance(exact_float32, bool):
        raise TypeError(f"exact_float32 must be True, False or None, got {exact_float32!r}")
    return exact_float32


def _as_float(graphs: Sequence[_Graph], float32: bool) -> list[_Graph]:
    dt = np.float32 if float32 else np.float64
    return [g if g.x.dtype == dt else _Graph(g.x.astype(dt), g.children) for g in graphs]


def tmd(
    g1: Any,
    g2: Any,
    *,
    w: Weights = 1.0,
    depth: int = 4,
    neighbors: Neighbors = "out",
    exact_float32: bool | None = None,
    node_attr: str | None = "x",
) -> float:
    r"""Tree Mover's Distance :math:`\mathrm{TMD}^L_w(G_1, G_2)` between two attributed graphs.

    Parameters
    ----------
    g1, g2 : torch_geometric.data.Data, (x, edge_index) pair, or networkx graph
        ``x`` : array-like, shape (n, d), node features (the same ``d`` for both graphs);
        ``edge_index`` : int array-like, shape (2, E). Undirected graphs store both directions.
    w : float or sequence of float
        Weight of the children's transport at each level: a number, or ``depth - 1`` numbers
        where ``w[k]`` is used when depth-``(k+2)`` trees are built (:func:`pascal_weights`
        gives the ones of the stability theorem). Non-negative.
    depth : int
        Depth ``L`` >= 1 of the computation trees; ``L = 1`` is OT between node features.
    neighbors : {"out", "in"}
        Children of node ``v``: targets of edges leaving ``v`` (the paper code) or sources of
        edges entering it (PyG's message-passing direction). Equal on undirected graphs.
    exact_float32 : bool, optional
        Round level-1 distances and distances to the blank tree to float32 as the official
        code does with float32 features (``None``: when both graphs have float32 features).
        ``False`` computes in float64 throughout; values differ by less than 4e-8 relative
        (measured on the official reference values).
    node_attr : str or None
        Feature attribute of networkx inputs (see :func:`~papershelf.tmd.from_networkx`).

    Returns
    -------
    float
        The distance (a pseudometric: symmetric, zero for 1-WL-indistinguishable graphs).

    Raises
    ------
    ValueError
        Empty graphs, mismatched feature dimensions, ``depth < 1``, a weight list of the wrong
        length, negative weights, ``edge_index`` out of range.

    References
    ----------
    C.-Y. Chuang and S. Jegelka, "Tree Mover's Distance: Bridging Graph Metrics and Stability
    of Graph Neural Networks", NeurIPS 2022, arXiv:2210.01906.

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(3, 1)
    >>> path = (x, torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]))
    >>> tri = (x, torch.tensor([[0, 1, 1, 2, 2, 0], [1, 0, 2, 1, 0, 2]]))
    >>> round(tmd(path, tri, w=1.0, depth=2), 6)
    2.0
    """
    return float(
        pairwise_tmd(
            [g1],
            [g2],
            w=w,
            depth=depth,
            neighbors=neighbors,
            exact_float32=exact_float32,
            node_attr=node_attr,
            memoize=True,
            show_progress=False,
        )[0, 0]
    )


# ----------------------------------------------------------------------------- pairwise
_WORKER: dict[str, Any] = {}


def _init_worker(state: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    _WORKER.clear()
    _WORKER.update(state)


def _pairs_from_tables(pairs: np.ndarray) -> np.ndarray:
    t: _Tables = _WORKER["tables"]
    off_a, off_b = _WORKER["off_a"], _WORKER["off_b"]
    out = np.empty(len(pairs))
    for p, (i, j) in enumerate(pairs):
        ca = t.node_class[t.offsets[off_a + i] : t.offsets[off_a + i + 1]]
        cb = t.node_class[t.offsets[off_b + j] : t.offsets[off_b + j + 1]]
        out[p] = _graph_ot(t.dist, ca, cb)
    return out


def _pairs_one_by_one(pairs: np.ndarray) -> np.ndarray:
    ga, gb, weights, float32 = _WORKER["ga"], _WORKER["gb"], _WORKER["w"], _WORKER["f32"]
    out = np.empty(len(pairs))
    for p, (i, j) in enumerate(pairs):
        t = _build_tables([ga[i], gb[j]], weights, float32, False)
        out[p] = _graph_ot(
            t.dist, t.node_class[t.offsets[0] : t.offsets[1]], t.node_class[t.offsets[1] :]
        )
    return out


def _n_workers(n_jobs: int | None) -> int:
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
    cpus = os.cpu_count() or 1
    return int(n_jobs) if n_jobs > 0 else max(1, cpus + 1 + int(n_jobs))


def _map_pairs(
    fn: Any,
    state: dict[str, Any],
    pairs: np.ndarray,
    n_jobs: int,
    show_progress: bool | None,
    desc: str,
) -> np.ndarray:
    chunk = max(1, min(256, len(pairs) // (4 * n_jobs) or 1))
    chunks = [pairs[s : s + chunk] for s in range(0, len(pairs), chunk)]
    disable = None if show_progress is None else not show_progress
    if n_jobs == 1 or len(chunks) == 1:
        _WORKER.clear()
        _WORKER.update(state)
        parts = [fn(c) for c in progress(chunks, total=len(chunks), desc=desc, disable=disable)]
    else:
        with _pool(n_jobs, _init_worker, state) as pool:
            parts = list(
                progress(pool.map(fn, chunks), total=len(chunks), desc=desc, disable=disable)
            )
    _WORKER.clear()
    return np.concatenate(parts) if parts else np.zeros(0)


def pairwise_tmd(
    graphs: Sequence[Any],
    others: Sequence[Any] | None = None,
    *,
    w: Weights = 1.0,
    depth: int = 4,
    memoize: bool | Literal["auto"] = "auto",
    n_jobs: int | None = 1,
    neighbors: Neighbors = "out",
    exact_float32: bool | None = None,
    node_attr: str | None = "x",
    show_progress: bool | None = None,
) -> np.ndarray:
    r"""Matrix of Tree Mover's Distances between two collections of graphs.

    Parameters
    ----------
    graphs : sequence of graphs, length Na
        PyG ``Data``, ``(x, edge_index)`` pairs or networkx graphs (see :func:`tmd`).
    others : sequence of graphs, length Nb, optional
        Columns of the matrix; ``None`` computes the symmetric matrix of ``graphs`` (upper
        triangle once, zero diagonal).
    w, depth, neighbors, exact_float32, node_attr
        As in :func:`tmd`.
    memoize : bool or "auto"
        ``True``: one table of tree distances over the distinct computation trees of all
        graphs, each computed once, then one assignment per graph pair. ``False``: each pair
        on its own (memory stays small for graphs with continuous features, where almost every
        tree is distinct). ``"auto"``: memoize unless there are more than 5,000 distinct trees
        (the tables then take up to ~0.6 GB).
    n_jobs : int or None
        Worker processes for the blocks of the tree tables and the per-pair assignments
        (``-1``: all CPUs; fork on Linux). ``1`` or ``None``: no pool.
    show_progress : bool, optional
        Progress bars (``None``: only on a terminal).

    Returns
    -------
    ndarray, shape (Na, Nb)
        ``D[i, j] = tmd(graphs[i], others[j])``, float64; exactly the values :func:`tmd`
        returns pair by pair.

    References
    ----------
    Chuang & Jegelka, NeurIPS 2022 (arXiv:2210.01906), Section 3; the official
    ``pairwise_dist.py`` computes the same matrix with one ``TMD`` call per pair.
    """
    depth = _check_depth(depth)
    weights = _check_weights(w, depth)
    if memoize not in (True, False, "auto"):
        raise ValueError(f"memoize must be True, False or 'auto', got {memoize!r}")
    workers = _n_workers(n_jobs)
    ga = _to_graphs(graphs, neighbors, node_attr, "graphs")
    gb = ga if others is None else _to_graphs(others, neighbors, node_attr, "others")
    if not ga or not gb:
        return np.zeros((len(ga), len(gb)))
    dims = {g.x.shape[1] for g in (*ga, *gb)}
    if len(dims) > 1:
        raise ValueError(f"all graphs must have the same feature dimension, got {sorted(dims)}")
    float32 = _resolve_float32([*ga, *gb], exact_float32)
    ga = _as_float(ga, float32)
    gb = ga if others is None else _as_float(gb, float32)
    symmetric = others is None
    if symmetric:
        ii, jj = np.triu_indices(len(ga), k=1)
    else:
        ii, jj = (m.reshape(-1) for m in np.indices((len(ga), len(gb))))
    pairs = np.stack([ii, jj], axis=1)
    union = ga if symmetric else [*ga, *gb]
    if memoize == "auto":
        _, levels = _tree_classes(union, depth)
        memoize = len(levels[-1].feat_class) <= _AUTO_MAX_CLASSES
    if memoize:
        tables = _build_tables(union, weights, float32, show_progress, workers)
        state = {"tables": tables, "off_a": 0, "off_b": 0 if symmetric else len(ga)}
        values = _map_pairs(_pairs_from_tables, state, pairs, workers, show_progress, "TMD pairs")
    else:
        state = {"ga": ga, "gb": gb, "w": weights, "f32": float32}
        values = _map_pairs(_pairs_one_by_one, state, pairs, workers, show_progress, "TMD pairs")
    out = np.zeros((len(ga), len(gb)))
    out[ii, jj] = values
    if symmetric:
        out[jj, ii] = values
    return out
