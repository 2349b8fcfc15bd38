"""Bad input gives clear errors naming the argument."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from papershelf.tmd import TMDSVC, from_networkx, one_hot, pairwise_tmd, pascal_weights, tmd

G = (torch.ones(3, 2), torch.tensor([[0, 1], [1, 2]]))


@pytest.mark.parametrize(
    ("g", "match"),
    [
        ((torch.ones(0, 2), torch.zeros(2, 0, dtype=torch.long)), "no nodes"),
        ((torch.ones(3), torch.zeros(2, 0, dtype=torch.long)), r"shape \(n, d\)"),
        ((torch.ones(3, 2), torch.tensor([[0, 3], [1, 0]])), "outside"),
        ((torch.ones(3, 2), torch.tensor([[0, -1], [1, 0]])), "outside"),
        ((torch.ones(3, 2), torch.tensor([0, 1])), r"\(2, E\)"),
        ((torch.tensor([[1.0, float("nan")]]), torch.zeros(2, 0, dtype=torch.long)), "NaN"),
        ((None, torch.zeros(2, 0, dtype=torch.long)), "no node features"),
    ],
)
def test_bad_graphs(g: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tmd(g, G)


def test_not_a_graph() -> None:
    with pytest.raises(TypeError, match=r"g1|graphs"):
        tmd("graph", G)
    with pytest.raises(TypeError, match="edge_index"):
        tmd((torch.ones(2, 1), torch.tensor([[0.0], [1.0]])), G)


def test_feature_dimension_mismatch() -> None:
    with pytest.raises(ValueError, match="feature dimension"):
        tmd(G, (torch.ones(2, 3), torch.zeros(2, 0, dtype=torch.long)))


@pytest.mark.parametrize("depth", [0, -1])
def test_depth_below_one(depth: int) -> None:
    with pytest.raises(ValueError, match="depth"):
        tmd(G, G, depth=depth)
    with pytest.raises(TypeError, match="depth"):
        tmd(G, G, depth=2.0)  # type: ignore[arg-type]


def test_weights() -> None:
    with pytest.raises(ValueError, match="depth - 1 = 3"):
        tmd(G, G, w=[1.0, 1.0], depth=4)
    with pytest.raises(ValueError, match=r"w must be >= 0, got -0\.5"):
        tmd(G, G, w=-0.5, depth=3)
    with pytest.raises(ValueError, match=r"w\[1\] must be >= 0"):
        tmd(G, G, w=[1.0, -1.0], depth=3)
    with pytest.raises(TypeError, match="w must"):
        tmd(G, G, w="1", depth=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="w must be a number, got NaN"):
        tmd(G, G, w=float("nan"), depth=3)
    with pytest.raises(ValueError, match=r"w\[0\] must be finite"):
        tmd(G, G, w=np.array([np.inf, 1.0]), depth=3)
    with pytest.raises(TypeError, match="w must be a number, got a bool"):
        tmd(G, G, w=True, depth=3)


def test_numpy_and_tensor_scalar_settings() -> None:
    """Settings built by numpy grids or kept as 0-d tensors equal Python numbers."""
    g2 = (torch.eye(3)[:, :2], torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]))
    ref = tmd(G, g2, w=0.5, depth=3)
    assert tmd(G, g2, w=np.float32(0.5), depth=np.int64(3)) == ref
    assert tmd(G, g2, w=torch.tensor(0.5), depth=torch.tensor(3)) == ref
    assert tmd(G, g2, w=torch.tensor([0.5, 0.5]), depth=3) == ref
    assert tmd(G, g2, w=np.array([0.5, 0.5], dtype=np.float32), depth=3) == ref
    assert pascal_weights(np.int64(3), eps=np.float32(1.0)) == [0.5, 2.0]
    assert np.array_equal(pairwise_tmd([G, g2], w=np.float64(0.5), depth=np.int32(3),
                                       n_jobs=np.int64(1)), pairwise_tmd([G, g2], w=0.5, depth=3))  # fmt: skip


def test_huge_weights_are_a_clear_error_not_scipy_infeasible() -> None:
    """Issue 22: w=1e100 overflowed the tables and scipy said "cost matrix is infeasible"."""
    g2 = (torch.ones(5, 2, dtype=torch.float64), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))
    g1 = (torch.ones(3, 2, dtype=torch.float64), torch.tensor([[0, 1], [1, 2]]))
    # float32 features (PyG's default): the official float32 rounding of the distances to the
    # blank tree overflows first (this is the case)
    f32 = (torch.ones(5, 2), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))
    with pytest.raises(ValueError, match=r"w=\[1e\+100, 1e\+100, 1e\+100\] with depth=4.*"
                       "exact_float32=False"):  # fmt: skip
        tmd(G, f32, w=1e100, depth=4)
    with pytest.raises(ValueError, match=r"w=\[1e\+200, 1e\+200\] with depth=3: tree distances "
                       "overflow float64"):  # fmt: skip
        tmd(g1, g2, w=1e200, depth=3)
    with pytest.raises(ValueError, match="overflow float64"):
        pairwise_tmd([g1, g2], w=[1.0, 1e200, 1e200], depth=4, memoize=False)
    assert np.isfinite(tmd(G, f32, w=1e100, depth=4, exact_float32=False))
    # within range, large weights still give the exact (finite) value: with equal node counts
    # and features, every depth-2 cost is w * sqrt(2) * |degree difference|
    star = (torch.ones(3, 2, dtype=torch.float64), torch.tensor([[0, 0], [1, 2]]))
    big = tmd(g1, star, w=1e100, depth=2)
    assert big == pytest.approx(1e100 * tmd(g1, star, w=1.0, depth=2)) and big > 0
    with pytest.raises(ValueError, match="node features x are too large"):
        tmd((torch.full((2, 2), 1e300, dtype=torch.float64), torch.zeros(2, 0, dtype=torch.long)),
            (torch.full((1, 2), -1e300, dtype=torch.float64), torch.zeros(2, 0, dtype=torch.long)),
            depth=1)  # fmt: skip


def test_batches() -> None:
    """Issue 19: a PyG Batch is split into its graphs by pairwise_tmd and refused by tmd."""
    from torch_geometric.data import Batch

    from papershelf.tmd import molecule_like_graphs

    graphs = molecule_like_graphs(4, max_nodes=12, random_state=0)
    batch = Batch.from_data_list(graphs)
    ref = pairwise_tmd(graphs, depth=3)
    assert np.array_equal(pairwise_tmd(batch, depth=3), ref)
    assert np.array_equal(
        pairwise_tmd(batch, Batch.from_data_list(graphs[:2]), depth=3), ref[:, :2]
    )
    with pytest.raises(TypeError, match=r"g1 is a torch_geometric Batch of 4 graphs.*pairwise_tmd"):
        tmd(batch, graphs[0])
    with pytest.raises(TypeError, match=r"g2 is a torch_geometric Batch"):
        tmd(graphs[0], batch)
    with pytest.raises(TypeError, match=r"graphs\[1\] is a torch_geometric Batch"):
        pairwise_tmd([graphs[0], batch])
    with pytest.raises(TypeError, match="graphs must be a sequence of graphs, got one graph"):
        pairwise_tmd(graphs[0])


def test_other_arguments() -> None:
    with pytest.raises(ValueError, match="neighbors"):
        tmd(G, G, neighbors="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="memoize"):
        pairwise_tmd([G], memoize="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_jobs"):
        pairwise_tmd([G], n_jobs=0)
    with pytest.raises(TypeError, match="exact_float32"):
        tmd(G, G, exact_float32=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth"):
        pascal_weights(1)
    with pytest.raises(ValueError, match="num_classes"):
        one_hot([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="node_attr"):
        from_networkx(nx.path_graph(3), node_attr="label")
    labelled = nx.path_graph(2)
    nx.set_node_attributes(labelled, [1.0], "x")
    with pytest.raises(ValueError, match=r"others\[1\]: node_attr='x'"):
        pairwise_tmd([labelled], [labelled, nx.path_graph(2)])
    with pytest.raises(ValueError, match=r"graphs\[0\]: graph has no nodes"):
        pairwise_tmd([nx.Graph()], node_attr=None)
    with pytest.raises(ValueError, match="at least two classes"):
        TMDSVC(metric="precomputed").fit(np.zeros((4, 4)), [1, 1, 1, 1])
    with pytest.raises(ValueError, match="gammas"):
        TMDSVC(metric="precomputed", gammas=(0.0,)).fit(np.zeros((4, 4)), [0, 1, 0, 1])


def test_large_integer_features_are_not_rounded_to_float32() -> None:
    # float32 cannot tell 2**24 + 1 from 2**24: such features used to give TMD 0, even with
    # exact_float32=False; small integers (atom types) keep PyG's float32 convention
    no_edges = np.zeros((2, 0), dtype=np.int64)
    a, b = (np.array([[2**24 + 1]]), no_edges), (np.array([[2**24]]), no_edges)
    assert tmd(a, b, depth=1) == 1.0
    assert tmd(a, b, depth=2, exact_float32=False) == 1.0
    c = (np.array([[2**40 + 1, 3]]), np.array([[0], [0]]))
    d = (np.array([[2**40, 3]]), np.array([[0], [0]]))
    assert tmd(c, d, w=1.0, depth=2) == 2.0  # the root and its self-loop child
    small = [(np.array([[1], [2]]), no_edges), (np.array([[0], [5]]), no_edges)]
    as32 = [(x.astype(np.float32), e) for x, e in small]
    assert (pairwise_tmd(small, depth=2) == pairwise_tmd(as32, depth=2)).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda x: x.to(torch.float16),
        lambda x: x.to(torch.bfloat16),
        lambda x: x.numpy().astype(np.float16),
    ],
)
def test_half_precision_features_are_accepted(make) -> None:
    # were "x must be real-valued, got dtype float16" / torch's "unsupported ScalarType BFloat16"
    edges = torch.tensor([[0, 1], [1, 0]])
    x1, x2 = torch.tensor([[1.0, 0.5], [2.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.5, 0.25]])
    g1, g2 = (make(x1), edges), (make(x2), edges)
    assert tmd(g1, g2, depth=2) == tmd((x1, edges), (x2, edges), depth=2)  # exact in float32
