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
    with pytest.raises(ValueError, match="non-negative"):
        tmd(G, G, w=-0.5, depth=3)
    with pytest.raises(ValueError, match="non-negative"):
        tmd(G, G, w=[1.0, -1.0], depth=3)
    with pytest.raises(TypeError, match="w must"):
        tmd(G, G, w="1", depth=3)  # type: ignore[arg-type]


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
