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

import logging
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from papershelf.core import progress
from papershelf.core.validation import check_int, check_real
from papershelf.tmd.graphs import Neighbors, _Graph, _to_graph, _to_graphs

__all__ = ["TreeDistanceTable", "pairwise_tmd", "pascal_weights", "tmd"]

log = logging.getLogger(__name__)

Weights = float | Sequence[float]
_DP_MAX = 6  # up to 6 children a vectorised subset DP beats one scipy call per pair
_PAIRS_PER_BLOCK = 200_000  # class pairs per vectorised block (bounds memory to tens of MB)
_MIN_PAIRS_PER_TASK = 2_000  # class pairs below which a parallel task costs more than it saves
_GRAPH_PAIRS_PER_TASK = 4_096  # largest chunk of graph pairs per task
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
    n = check_int("depth", depth, low=2) - 1
    eps = check_real("eps", eps, low=0.0, inclusive=False)
    return [eps * math.comb(n, k - 1) / math.comb(n, k) for k in range(1, n + 1)]


def _check_depth(depth: Any) -> int:
    return check_int("depth", depth, low=1)


def _check_weights(w: Any, depth: int) -> np.ndarray:
    """One weight per level 2..depth (``w[k]`` weighs the children when depth-(k+2) trees form).

    A number (Python, numpy or a 0-d tensor) or a sequence / 1-d array / tensor of numbers.
    """
    if isinstance(w, (str, bytes)):
        raise TypeError(f"w must be a number or a sequence of numbers, got {type(w).__name__}")
    if isinstance(w, numbers.Number) or getattr(w, "ndim", None) == 0:
        return np.full(depth - 1, check_real("w", w, low=0.0))
    if getattr(w, "ndim", 1) != 1 or not hasattr(w, "__len__"):
        raise TypeError(f"w must be a number or a sequence of numbers, got {type(w).__name__}")
    ws = np.asarray([check_real(f"w[{k}]", v, low=0.0) for k, v in enumerate(w)])
    if ws.shape != (depth - 1,):
        raise ValueError(
            f"w must be a number or hold depth - 1 = {depth - 1} weights, got {len(ws)}"
        )
    return ws


def _check_n_jobs(n_jobs: Any) -> int | None:
    if n_jobs is None:
        return None
    n = check_int("n_jobs", n_jobs)
    if n == 0:
        raise ValueError("n_jobs must be a non-zero integer or None, got 0")
    return n


def _check_bool_or_none(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    raise TypeError(f"{name} must be True, False or None, got {value!r}")


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
    import torch

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


def _extend(dist: np.ndarray, blank: np.ndarray) -> np.ndarray:
    k = dist.shape[0]
    ext = np.zeros((k + 1, k + 1))
    ext[:k, :k] = dist
    ext[k, :k] = blank
    ext[:k, k] = blank
    return ext


def _table_block(
    feat_class: np.ndarray,
    children: np.ndarray,
    degree: np.ndarray,
    ext: np.ndarray,
    d1: np.ndarray,
    w: float,
    bounds: tuple[int, int],
) -> np.ndarray:
    """Tree distances of the class pairs (a, b), r0 <= a < r1, a < b, of one depth.

    A pure function of its arguments (one task of the parallel table build): arrays go to
    joblib workers as arguments, so large ones are memory-mapped (loky) or scattered once to
    the cluster (Dask).
    """
    a, b = _upper_pairs(len(feat_class), *bounds)
    value = d1[feat_class[a], feat_class[b]]
    dmax = np.maximum(degree[a], degree[b])
    with np.errstate(over="ignore"):  # overflow is checked (and reported) by the caller
        for d in np.unique(dmax):
            sel = np.nonzero(dmax == d)[0]
            ca = children[a[sel], :d]
            cb = children[b[sel], :d]
            cost = ext[ca[:, :, None], cb[:, None, :]]
            value[sel] = value[sel] + w * _batched_assignment(cost)
    return value


def _row_blocks(k: int, target: int) -> list[tuple[int, int]]:
    """Row ranges of the upper triangle of a k x k table with about ``target`` pairs each."""
    blocks, start, acc = [], 0, 0
    for row in range(k):
        acc += k - 1 - row
        if acc >= target or row == k - 1:
            blocks.append((start, row + 1))
            start, acc = row + 1, 0
    return blocks


def _workers(n_jobs: int | None) -> int:
    """Workers joblib would use for ``n_jobs`` (honours ``joblib.parallel_config``)."""
    import joblib

    return max(1, int(joblib.effective_n_jobs(n_jobs)))


def _parallel_map(fn: Any, tasks: Sequence[tuple[Any, ...]], n_jobs: int | None) -> Any:
    """``fn(*task)`` for every task, in order, through joblib (any backend: loky, Dask, Ray).

    Runs in this process when joblib would use one worker. Yields results as they arrive so
    progress bars move.
    """
    if len(tasks) <= 1 or _workers(n_jobs) == 1:
        return (fn(*t) for t in tasks)
    import joblib

    return joblib.Parallel(n_jobs=n_jobs, return_as="generator")(
        joblib.delayed(fn)(*t) for t in tasks
    )


def _overflow(level: int, weights: np.ndarray, float32: bool, blank32: bool = False) -> ValueError:
    """The error for tree distances that exceed the floating-point range."""
    if level == 1:
        kind = "float32" if float32 else "float64"
        return ValueError(
            f"the node features x are too large: their distances overflow {kind} (inf); "
            "rescale x (TMD is homogeneous: TMD(c * x) = c * TMD(x))"
            + (" or pass float64 features with exact_float32=False" if float32 else "")
        )
    depth = len(weights) + 1
    if blank32:
        return ValueError(
            f"w={weights.tolist()} with depth={depth}: the distances to the blank tree exceed "
            f"float32 at depth {level} (exact_float32 rounds them to float32 as the official "
            f"code does); pass exact_float32=False or use smaller weights w"
        )
    return ValueError(
        f"w={weights.tolist()} with depth={depth}: tree distances overflow float64 (inf) at "
        f"depth {level}; they grow like the product of the weights, so use smaller weights w "
        f"or a smaller depth (or rescale the features x: TMD is homogeneous in x)"
    )


@dataclass
class _Tables:
    """Final-depth tree distances between all classes, with the blank row/column appended."""

    dist: np.ndarray  # (K+1, K+1); index K is the blank tree
    node_class: np.ndarray  # (N,)
    offsets: np.ndarray  # (G+1,) node offsets of the graphs
    num_classes: list[int]  # classes per depth (for logging and benchmarks)


def _build_tables(
    graphs: Sequence[_Graph],
    weights: np.ndarray,
    float32: bool,
    show_progress: bool | None,
    n_jobs: int | None = 1,
) -> _Tables:
    depth = len(weights) + 1
    feats, levels = _tree_classes(graphs, depth)
    d1, b1 = _feature_tables(feats, float32)
    if not (np.all(np.isfinite(d1)) and np.all(np.isfinite(b1))):
        raise _overflow(1, weights, float32)
    dist, blank = d1, b1
    total_pairs = sum(len(lv.feat_class) * (len(lv.feat_class) - 1) // 2 for lv in levels[1:])
    workers = _workers(n_jobs) if total_pairs > _MIN_PAIRS_PER_TASK else 1
    bar = progress(
        total=total_pairs,
        desc="TMD tree tables",
        disable=None if show_progress is None else not show_progress,
    )
    for level, (lv, w) in enumerate(zip(levels[1:], weights), start=2):
        k = len(lv.feat_class)
        ext = _extend(dist, blank)
        # distance to the blank tree: ||x|| + w * sum of the children's distances to blank;
        # the paper code keeps these entries in the features' precision (a float32 tensor)
        child_sum = np.zeros(k)
        for j in range(lv.children.shape[1]):
            child_sum = child_sum + ext[-1, lv.children[:, j]]
        root = b1[lv.feat_class]
        with np.errstate(over="ignore"):
            new_blank = root + w * child_sum
            if not np.all(np.isfinite(new_blank)):
                raise _overflow(level, weights, float32)
            if float32:
                new_blank = (root.astype(np.float32) + (w * child_sum).astype(np.float32)).astype(
                    np.float64
                )
                if not np.all(np.isfinite(new_blank)):
                    raise _overflow(level, weights, float32, blank32=True)
        # row blocks of about equal pair counts (row a holds k - 1 - a pairs); with several
        # workers, about four blocks per worker
        pairs = k * (k - 1) // 2
        target = _PAIRS_PER_BLOCK
        if workers > 1:
            target = min(target, max(_MIN_PAIRS_PER_TASK, -(-pairs // (4 * workers))))
        blocks = _row_blocks(k, target)
        args = (lv.feat_class, lv.children, lv.degree, ext, d1, float(w))
        new = np.zeros((k, k))
        results = _parallel_map(_table_block, [(*args, b) for b in blocks], n_jobs)
        for (r0, r1), value in zip(blocks, results):
            a, b = _upper_pairs(k, r0, r1)
            new[a, b] = value
            new[b, a] = value
            bar.update(a.size)
        if not np.all(np.isfinite(new)):
            raise _overflow(level, weights, float32)
        dist, blank = new, new_blank
    bar.close()
    counts = [len(lv.feat_class) for lv in levels]
    log.debug("tree classes per depth: %s", counts)
    offsets = np.cumsum([0] + [g.x.shape[0] for g in graphs])
    return _Tables(_extend(dist, blank), levels[-1].node_class, offsets, counts)


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
    with np.errstate(over="ignore"):
        return float(cost[r, c].sum())


def _resolve_float32(graphs: Sequence[_Graph], exact_float32: bool | None) -> bool:
    if exact_float32 is None:
        return all(g.x.dtype == np.float32 for g in graphs)
    return exact_float32


def _as_float(graphs: Sequence[_Graph], float32: bool) -> list[_Graph]:
    dt = np.float32 if float32 else np.float64
    return [g if g.x.dtype == dt else _Graph(g.x.astype(dt), g.children) for g in graphs]


def _check_dims(graphs: Sequence[_Graph]) -> None:
    dims = {g.x.shape[1] for g in graphs}
    if len(dims) > 1:
        raise ValueError(f"all graphs must have the same feature dimension, got {sorted(dims)}")


def _pairs_from_table(
    dist: np.ndarray, node_class: np.ndarray, offsets: np.ndarray, pairs: np.ndarray
) -> np.ndarray:
    """TMD of graph pairs (i, j), i < j, of one table (one task of the parallel pair step)."""
    out = np.empty(len(pairs))
    for p, (i, j) in enumerate(pairs):
        ca = node_class[offsets[i] : offsets[i + 1]]
        cb = node_class[offsets[j] : offsets[j + 1]]
        out[p] = _graph_ot(dist, ca, cb)
    return out


def _pairs_one_by_one(
    ga: Sequence[_Graph],
    gb: Sequence[_Graph],
    weights: np.ndarray,
    float32: bool,
    pairs: np.ndarray,
) -> np.ndarray:
    """TMD of pairs (ga[i], gb[j]), each with its own two-graph table (memoize=False)."""
    out = np.empty(len(pairs))
    for p, (i, j) in enumerate(pairs):
        t = _build_tables([ga[i], gb[j]], weights, float32, False, 1)
        out[p] = _graph_ot(
            t.dist, t.node_class[t.offsets[0] : t.offsets[1]], t.node_class[t.offsets[1] :]
        )
    return out


def _map_pairs(
    fn: Any,
    args: tuple[Any, ...],
    pairs: np.ndarray,
    n_jobs: int | None,
    show_progress: bool | None,
) -> np.ndarray:
    """``fn(*args, chunk)`` over chunks of ``pairs``, through joblib, with a progress bar."""
    workers = _workers(n_jobs) if len(pairs) > 1 else 1
    chunk = min(_GRAPH_PAIRS_PER_TASK, max(1, -(-len(pairs) // (4 * workers))))
    chunks = [pairs[s : s + chunk] for s in range(0, len(pairs), chunk)]
    bar = progress(
        total=len(pairs),
        desc="TMD pairs",
        disable=None if show_progress is None else not show_progress,
    )
    parts = []
    for part in _parallel_map(fn, [(*args, c) for c in chunks], n_jobs if workers > 1 else 1):
        parts.append(part)
        bar.update(len(part))
    bar.close()
    out = np.concatenate(parts) if parts else np.zeros(0)
    if not np.all(np.isfinite(out)):
        raise ValueError(
            "the distances overflow float64 (inf) in the final transport: use smaller weights "
            "w or rescale the node features x (TMD is homogeneous in x)"
        )
    return out


class TreeDistanceTable:
    r"""Tree distances between all distinct computation trees of a collection, built once.

    The expensive part of a TMD matrix is the table of tree distances between the distinct
    depth-``L`` computation trees (Weisfeiler-Lehman classes on raw features) of all graphs;
    once it exists, the TMD of any two graphs of the collection is one small assignment.
    Build the table once, then compute any block of the matrix with :meth:`pairwise` — here,
    on joblib workers, or on machines of your own (the table pickles; ship it once, e.g. with
    ``dask.distributed.Client.scatter(table, broadcast=True)``, then submit
    ``table.pairwise(rows, cols)`` for each block).

    Parameters
    ----------
    graphs : sequence of graphs, or a torch_geometric Batch
        PyG ``Data``, ``(x, edge_index)`` pairs or networkx graphs (see :func:`tmd`); a
        ``Batch`` is split into its graphs.
    w, depth, neighbors, exact_float32, node_attr
        As in :func:`tmd`.
    n_jobs : int or None
        joblib workers for the row blocks of each depth's table (``None``: one, unless a
        ``joblib.parallel_config`` context says otherwise; ``-1``: all CPUs). Under
        ``joblib.parallel_config(backend="dask")`` the blocks run on the Dask cluster.
    show_progress : bool, optional
        Progress bar (``None``: only on a terminal).

    Attributes
    ----------
    n_graphs : int
        Graphs in the collection (``len(table)``).
    num_classes : tuple of int
        Distinct computation trees per depth 1..L.
    distances : ndarray, shape (K + 1, K + 1)
        Depth-``L`` tree distances between the ``K`` classes, the blank tree last.
    node_class : ndarray, shape (total nodes,)
        Class of every node, graphs concatenated in order.
    offsets : ndarray, shape (n_graphs + 1,)
        Node offsets of the graphs in ``node_class``.

    Examples
    --------
    >>> from papershelf.tmd import TreeDistanceTable, molecule_like_graphs, pairwise_tmd
    >>> graphs = molecule_like_graphs(6, random_state=0)
    >>> table = TreeDistanceTable(graphs, w=0.5, depth=3)
    >>> block = table.pairwise(range(0, 3), range(3, 6))  # rows 0-2 against graphs 3-5
    >>> bool((block == pairwise_tmd(graphs, w=0.5, depth=3)[:3, 3:]).all())
    True
    """

    def __init__(
        self,
        graphs: Sequence[Any],
        *,
        w: Weights = 1.0,
        depth: int = 4,
        neighbors: Neighbors = "out",
        exact_float32: bool | None = None,
        node_attr: str | None = "x",
        n_jobs: int | None = None,
        show_progress: bool | None = None,
    ) -> None:
        depth = _check_depth(depth)
        weights = _check_weights(w, depth)
        exact = _check_bool_or_none("exact_float32", exact_float32)
        n_jobs = _check_n_jobs(n_jobs)
        gs = _to_graphs(graphs, neighbors, node_attr, "graphs")
        if not gs:
            raise ValueError("graphs must hold at least one graph")
        _check_dims(gs)
        float32 = _resolve_float32(gs, exact)
        self._set(_build_tables(_as_float(gs, float32), weights, float32, show_progress, n_jobs),
                  weights, float32)  # fmt: skip

    @classmethod
    def _from_converted(
        cls,
        graphs: Sequence[_Graph],
        weights: np.ndarray,
        float32: bool,
        n_jobs: int | None,
        show_progress: bool | None,
    ) -> TreeDistanceTable:
        table = cls.__new__(cls)
        table._set(_build_tables(graphs, weights, float32, show_progress, n_jobs), weights, float32)
        return table

    def _set(self, t: _Tables, weights: np.ndarray, float32: bool) -> None:
        self.distances = t.dist
        self.node_class = t.node_class
        self.offsets = t.offsets
        self.num_classes = tuple(t.num_classes)
        self.n_graphs = len(t.offsets) - 1
        self.weights = tuple(float(v) for v in weights)
        self.depth = len(weights) + 1
        self.exact_float32 = float32

    def __len__(self) -> int:
        return self.n_graphs

    def __repr__(self) -> str:
        return (
            f"TreeDistanceTable(n_graphs={self.n_graphs}, depth={self.depth}, "
            f"w={list(self.weights)}, classes={self.num_classes[-1]})"
        )

    @property
    def nbytes(self) -> int:
        """Memory held by the table's arrays, in bytes."""
        return int(self.distances.nbytes + self.node_class.nbytes + self.offsets.nbytes)

    def __sizeof__(self) -> int:  # Dask and joblib decide what to scatter by size
        return object.__sizeof__(self) + self.nbytes

    def _index(self, sel: Any, name: str) -> np.ndarray:
        n = self.n_graphs
        if sel is None:
            return np.arange(n)
        if isinstance(sel, slice):
            return np.arange(n)[sel]
        if isinstance(sel, (str, bytes, numbers.Number)):
            raise TypeError(
                f"{name} must be None, a slice or a sequence of graph indices, got "
                f"{type(sel).__name__}"
            )
        idx = np.asarray(sel.detach().cpu().numpy() if hasattr(sel, "detach") else list(sel))
        if idx.size == 0:
            return np.zeros(0, dtype=np.intp)
        if idx.ndim != 1:
            raise ValueError(f"{name} must be 1-d, got shape {idx.shape}")
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"{name} must hold integer graph indices, got dtype {idx.dtype}")
        if idx.min() < -n or idx.max() >= n:
            raise ValueError(f"{name} holds graph indices outside [-{n}, {n})")
        return np.where(idx < 0, idx + n, idx).astype(np.intp)

    def pairwise(
        self,
        rows: Any = None,
        cols: Any = None,
        *,
        n_jobs: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """TMD between the graphs ``rows`` and the graphs ``cols`` of the collection.

        Parameters
        ----------
        rows, cols : None, slice or sequence of int
            Graph indices into the collection (``None``: all). Equal ``rows`` and ``cols``
            compute each pair once.
        n_jobs : int or None
            joblib workers for the graph pairs (as for the constructor).
        show_progress : bool, optional
            Progress bar (``None``: only on a terminal).

        Returns
        -------
        ndarray, shape (len(rows), len(cols))
            Float64 distances; entry ``(a, b)`` is the same number whichever block it is
            computed in (pairs are solved in a fixed orientation), so blocks assemble into
            exactly the full matrix.
        """
        n_jobs = _check_n_jobs(n_jobs)
        r = self._index(rows, "rows")
        c = self._index(cols, "cols")
        out = np.zeros((len(r), len(c)))
        if np.array_equal(r, c):
            pi, pj = np.triu_indices(len(r), k=1)
        else:
            pi, pj = (m.reshape(-1) for m in np.indices((len(r), len(c))))
        ga, gb = r[pi], c[pj]
        lo, hi = np.minimum(ga, gb), np.maximum(ga, gb)
        todo = lo != hi  # a graph against itself is 0 (identical tree multisets)
        key = lo[todo] * self.n_graphs + hi[todo]
        uniq, inverse = np.unique(key, return_inverse=True)
        pairs = np.stack([uniq // self.n_graphs, uniq % self.n_graphs], axis=1)
        values = _map_pairs(_pairs_from_table, (self.distances, self.node_class, self.offsets),
                            pairs, n_jobs, show_progress)  # fmt: skip
        vals = np.zeros(len(pi))
        vals[todo] = values[inverse.reshape(-1)]
        out[pi, pj] = vals
        if np.array_equal(r, c):
            out[pj, pi] = vals
        return out


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
        A PyG ``Batch`` is refused (it holds several graphs): use :func:`pairwise_tmd`.
    w : float or sequence of float
        Weight of the children's transport at each level: a number, or ``depth - 1`` numbers
        where ``w[k]`` is used when depth-``(k+2)`` trees are built (:func:`pascal_weights`
        gives the ones of the stability theorem). Non-negative and finite; numpy scalars and
        0-d tensors are accepted.
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
        length, negative or non-finite weights, ``edge_index`` out of range, and weights or
        features so large that the tree distances overflow float64 (the distance grows like
        the product of the weights: ``w=1e100`` at depth 4 is about 1e300 times the features).
    TypeError
        A graph of an unknown type or a PyG ``Batch``.

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
    depth = _check_depth(depth)
    weights = _check_weights(w, depth)
    exact = _check_bool_or_none("exact_float32", exact_float32)
    if neighbors not in ("out", "in"):
        raise ValueError(f"neighbors must be 'out' or 'in', got {neighbors!r}")
    ga = [_to_graph(g1, neighbors, node_attr, "g1")]
    gb = [_to_graph(g2, neighbors, node_attr, "g2")]
    return float(_pairwise(ga, gb, weights, True, 1, exact, False)[0, 0])


def _pairwise(
    ga: list[_Graph],
    gb: list[_Graph] | None,
    weights: np.ndarray,
    memoize: bool | str,
    n_jobs: int | None,
    exact_float32: bool | None,
    show_progress: bool | None,
) -> np.ndarray:
    symmetric = gb is None
    others = ga if gb is None else gb
    if not ga or not others:
        return np.zeros((len(ga), len(others)))
    _check_dims([*ga, *others])
    float32 = _resolve_float32([*ga, *others], exact_float32)
    ga = _as_float(ga, float32)
    others = ga if symmetric else _as_float(others, float32)
    union = ga if symmetric else [*ga, *others]
    if memoize == "auto":
        _, levels = _tree_classes(union, len(weights) + 1)
        memoize = len(levels[-1].feat_class) <= _AUTO_MAX_CLASSES
    if memoize:
        table = TreeDistanceTable._from_converted(union, weights, float32, n_jobs, show_progress)
        rows = np.arange(len(ga))
        cols = rows if symmetric else np.arange(len(ga), len(ga) + len(others))
        return table.pairwise(rows, cols, n_jobs=n_jobs, show_progress=show_progress)
    if symmetric:
        ii, jj = np.triu_indices(len(ga), k=1)
    else:
        ii, jj = (m.reshape(-1) for m in np.indices((len(ga), len(others))))
    values = _map_pairs(_pairs_one_by_one, (ga, others, weights, float32),
                        np.stack([ii, jj], axis=1), n_jobs, show_progress)  # fmt: skip
    out = np.zeros((len(ga), len(others)))
    out[ii, jj] = values
    if symmetric:
        out[jj, ii] = values
    return out


def pairwise_tmd(
    graphs: Sequence[Any],
    others: Sequence[Any] | None = None,
    *,
    w: Weights = 1.0,
    depth: int = 4,
    memoize: bool | Literal["auto"] = "auto",
    n_jobs: int | None = None,
    neighbors: Neighbors = "out",
    exact_float32: bool | None = None,
    node_attr: str | None = "x",
    show_progress: bool | None = None,
) -> np.ndarray:
    r"""Matrix of Tree Mover's Distances between two collections of graphs.

    Parameters
    ----------
    graphs : sequence of graphs, length Na, or a torch_geometric Batch
        PyG ``Data``, ``(x, edge_index)`` pairs or networkx graphs (see :func:`tmd`); a PyG
        ``Batch`` is split into its graphs.
    others : sequence of graphs (or Batch), length Nb, optional
        Columns of the matrix; ``None`` computes the symmetric matrix of ``graphs`` (upper
        triangle once, zero diagonal).
    w, depth, neighbors, exact_float32, node_attr
        As in :func:`tmd`.
    memoize : bool or "auto"
        ``True``: one :class:`TreeDistanceTable` over the distinct computation trees of all
        graphs, each computed once, then one assignment per graph pair. ``False``: each pair
        on its own (memory stays small for graphs with continuous features, where almost every
        tree is distinct). ``"auto"``: memoize unless there are more than 5,000 distinct trees
        (the tables then take up to ~0.6 GB).
    n_jobs : int or None
        joblib workers for the blocks of the tree tables and for the graph pairs. ``None``
        (default): one, unless a ``joblib.parallel_config`` context sets a backend or a
        number (e.g. ``with joblib.parallel_config(backend="dask"):`` runs the blocks on a
        ``dask.distributed`` cluster); ``-1``: all CPUs; ``1``: in this process. The result is
        the same number for number whatever runs it.
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
    if memoize not in (True, False, "auto") or (
        isinstance(memoize, (int, float)) and not isinstance(memoize, bool)
    ):
        raise ValueError(f"memoize must be True, False or 'auto', got {memoize!r}")
    exact = _check_bool_or_none("exact_float32", exact_float32)
    n_jobs = _check_n_jobs(n_jobs)
    ga = _to_graphs(graphs, neighbors, node_attr, "graphs")
    gb = None if others is None else _to_graphs(others, neighbors, node_attr, "others")
    return _pairwise(ga, gb, weights, memoize, n_jobs, exact, show_progress)
