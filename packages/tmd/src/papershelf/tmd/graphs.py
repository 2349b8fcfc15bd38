"""Graph inputs: PyTorch Geometric ``Data``, ``(x, edge_index)`` pairs and networkx graphs.

Every public function of :mod:`papershelf.tmd` accepts any of these; they are turned into a
small internal record (node features and, per node, its children in the computation tree).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["from_networkx", "one_hot"]

Neighbors = Literal["out", "in"]


@dataclass(frozen=True)
class _Graph:
    """Node features and computation-tree children of one graph (internal)."""

    x: np.ndarray  # (n, d), the caller's floating dtype (float32 or float64)
    children: tuple[np.ndarray, ...]  # children[v]: node ids in edge order, repeats kept


def one_hot(labels: Sequence[int] | np.ndarray | torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot node features from integer node labels (the TU-dataset convention).

    Parameters
    ----------
    labels : array-like of int, shape (n,)
        Node labels in ``[0, num_classes)``.
    num_classes : int
        Feature dimension.

    Returns
    -------
    Tensor, shape (n, num_classes), float32
        Row ``v`` is the indicator of ``labels[v]``; float32 like the features of PyG's
        ``TUDataset``.

    Examples
    --------
    >>> one_hot([0, 2], num_classes=3)
    tensor([[1., 0., 0.],
            [0., 0., 1.]])
    """
    import torch

    from papershelf.core.validation import check_int

    lab = _as_numpy(labels)
    if lab.ndim != 1 or (lab.size and not np.issubdtype(lab.dtype, np.integer)):
        raise TypeError("labels must be a 1-d sequence of integers")
    num_classes = check_int("num_classes", num_classes, low=1)
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, num_classes={num_classes})")
    out = torch.zeros((lab.size, int(num_classes)), dtype=torch.float32)
    out[torch.arange(lab.size), torch.as_tensor(lab, dtype=torch.long)] = 1.0
    return out


def from_networkx(
    graph: Any, node_attr: str | None = "x", *, num_classes: int | None = None
) -> Any:
    """Convert a networkx graph to a PyTorch Geometric ``Data`` (``x``, ``edge_index``).

    Parameters
    ----------
    graph : networkx.Graph or networkx.DiGraph
        Undirected edges are stored in both directions (PyG's convention); directed edges once,
        from source to target.
    node_attr : str or None
        Node attribute holding the features: a vector per node, or an integer label per node
        when ``num_classes`` is given (one-hot encoded). ``None`` gives every node the
        constant feature ``[1.0]`` (unattributed graphs).
    num_classes : int, optional
        One-hot encode integer labels into this many classes.

    Returns
    -------
    torch_geometric.data.Data
        ``x`` of shape (n, d), float32 (the dtype of PyG's datasets), nodes in
        ``graph.nodes`` order; ``edge_index`` of shape (2, E), int64.
    """
    import torch
    from torch_geometric.data import Data

    if not hasattr(graph, "nodes") or not hasattr(graph, "edges"):
        raise TypeError(f"graph must be a networkx graph, got {type(graph).__name__}")
    nodes: list[Hashable] = list(graph.nodes)
    if not nodes:
        raise ValueError("graph has no nodes")
    index = {v: i for i, v in enumerate(nodes)}
    if node_attr is None:
        x = torch.ones((len(nodes), 1), dtype=torch.float32)
    else:
        missing = [v for v in nodes if node_attr not in graph.nodes[v]]
        if missing:
            raise ValueError(
                f"node_attr={node_attr!r}: attribute missing on node {missing[0]!r} "
                "(use node_attr=None for constant features)"
            )
        values = [graph.nodes[v][node_attr] for v in nodes]
        if num_classes is not None:
            x = one_hot([int(v) for v in values], num_classes)
        else:
            arr = np.asarray(values, dtype=np.float64)
            if arr.ndim == 1:
                arr = arr[:, None]
            x = torch.as_tensor(arr, dtype=torch.float32)
    pairs = [(index[u], index[v]) for u, v in graph.edges()]
    if not graph.is_directed():
        pairs = pairs + [(v, u) for u, v in pairs if u != v]
    edge_index = (
        torch.tensor(pairs, dtype=torch.long).t().contiguous()
        if pairs
        else torch.zeros((2, 0), dtype=torch.long)
    )
    return Data(x=x, edge_index=edge_index)


def _as_numpy(a: Any) -> np.ndarray:
    """An array-like or a torch tensor (any device) as a numpy array, without importing torch."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        return np.asarray(a.detach().cpu().numpy())
    return np.asarray(a)


def _is_batch(g: Any) -> bool:
    """A PyTorch Geometric ``Batch`` (several graphs stored as one disconnected graph)."""
    return hasattr(g, "to_data_list") and hasattr(g, "num_graphs") and hasattr(g, "ptr")


def _is_one_graph(g: Any) -> bool:
    """A single graph (PyG ``Data``, networkx, or an ``(x, edge_index)`` pair of arrays)."""
    if hasattr(g, "is_directed") or any(c.__name__ == "Data" for c in type(g).__mro__):
        return True
    return (
        isinstance(g, tuple) and len(g) == 2 and getattr(g[0], "ndim", None) == 2
        and getattr(g[1], "ndim", None) in (1, 2)
    )  # fmt: skip


def _to_graph(g: Any, neighbors: Neighbors, node_attr: str | None, what: str) -> _Graph:
    """Validate one input graph and build its internal record."""
    if _is_batch(g):
        raise TypeError(
            f"{what} is a torch_geometric Batch of {g.num_graphs} graphs, not one graph: pass "
            f"the batch to pairwise_tmd (it is split into its graphs) or one graph, e.g. "
            f"batch[0] or batch.get_example(0)"
        )
    if hasattr(g, "nodes") and hasattr(g, "edges") and hasattr(g, "is_directed"):
        try:
            g = from_networkx(g, node_attr)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{what}: {err}") from err
    if isinstance(g, tuple) and len(g) == 2:
        x_raw, ei_raw = g
    elif hasattr(g, "edge_index") and hasattr(g, "x"):
        x_raw, ei_raw = g.x, g.edge_index
    else:
        raise TypeError(
            f"{what} must be a torch_geometric Data, an (x, edge_index) pair or a networkx "
            f"graph, got {type(g).__name__}"
        )
    if x_raw is None:
        raise ValueError(f"{what} has no node features x (use e.g. x = torch.ones(n, 1))")
    if hasattr(x_raw, "detach") and str(getattr(x_raw, "dtype", "")) in (
        "torch.float16",
        "torch.bfloat16",
    ):
        x_raw = x_raw.float()  # exact; numpy has no bfloat16
    x = _as_numpy(x_raw)
    if x.ndim != 2:
        raise ValueError(f"{what}.x must have shape (n, d), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{what} has no nodes")
    if x.dtype not in (np.float32, np.float64) and np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32 if x.dtype.itemsize < 4 else np.float64)  # float16, longdouble
    if x.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.bool_)):
            raise TypeError(f"{what}.x must be real-valued, got dtype {x.dtype}")
        # float32 (PyG's feature dtype) holds every integer up to 2**24 exactly; larger ones
        # (counts, ids) go to float64 rather than being rounded together
        exact32 = x.size == 0 or (-(2**24) <= int(x.min()) and int(x.max()) <= 2**24)
        x = x.astype(np.float32 if exact32 else np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}.x contains NaN or inf")
    n = x.shape[0]
    ei = np.zeros((2, 0), dtype=np.int64) if ei_raw is None else _as_numpy(ei_raw)
    if ei.size == 0:
        ei = np.zeros((2, 0), dtype=np.int64)
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise ValueError(f"{what}.edge_index must have shape (2, E), got shape {ei.shape}")
    if not np.issubdtype(ei.dtype, np.integer):
        raise TypeError(f"{what}.edge_index must hold integers, got dtype {ei.dtype}")
    if ei.size and (ei.min() < 0 or ei.max() >= n):
        raise ValueError(f"{what}.edge_index refers to nodes outside [0, {n})")
    src, dst = (ei[0], ei[1]) if neighbors == "out" else (ei[1], ei[0])
    order = np.argsort(src, kind="stable")  # keep edge order within a node, like the paper code
    starts = np.searchsorted(src[order], np.arange(n + 1))
    dst_sorted = dst[order].astype(np.int64)
    children = tuple(dst_sorted[starts[v] : starts[v + 1]] for v in range(n))
    return _Graph(x=np.ascontiguousarray(x), children=children)


def _to_graphs(
    graphs: Sequence[Any], neighbors: Neighbors, node_attr: str | None, name: str
) -> list[_Graph]:
    if neighbors not in ("out", "in"):
        raise ValueError(f"neighbors must be 'out' or 'in', got {neighbors!r}")
    if _is_batch(graphs):
        graphs = graphs.to_data_list()  # type: ignore[attr-defined]  # a PyG Batch: its graphs
    elif isinstance(graphs, (str, bytes)) or not (
        hasattr(graphs, "__len__") and hasattr(graphs, "__getitem__")
    ):
        raise TypeError(f"{name} must be a sequence of graphs, got {type(graphs).__name__}")
    elif _is_one_graph(graphs):
        raise TypeError(
            f"{name} must be a sequence of graphs, got one graph ({type(graphs).__name__}); "
            f"wrap it in a list"
        )
    return [_to_graph(graphs[i], neighbors, node_attr, f"{name}[{i}]") for i in range(len(graphs))]
