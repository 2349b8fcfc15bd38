"""The math of TMD: closed forms, pseudometric axioms, invariances, weights, consistency."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import torch

from papershelf.tmd import from_networkx, one_hot, pairwise_tmd, pascal_weights, tmd


def und(n: int, edges: list[tuple[int, int]]) -> torch.Tensor:
    e = [(a, b) for a, b in edges] + [(b, a) for a, b in edges]
    return (
        torch.tensor(e, dtype=torch.long).reshape(-1, 2).t()
        if e
        else torch.zeros((2, 0), dtype=torch.long)
    )


def cycle(n: int) -> list[tuple[int, int]]:
    return [(k, (k + 1) % n) for k in range(n)]


def random_graph(rng: np.random.Generator, n: int, d: int = 3, p: float = 0.3) -> tuple:
    edges = [(a, b) for a in range(n) for b in range(a + 1, n) if rng.random() < p]
    x = torch.as_tensor(rng.integers(0, d, size=n))
    return one_hot(x, d).double(), und(n, edges)


def test_depth_one_constant_features_is_size_difference() -> None:
    a = (torch.ones(5, 1), und(5, []))
    b = (torch.ones(8, 1), und(8, cycle(8)))
    assert tmd(a, b, depth=1) == 3.0


def test_single_nodes_and_blank() -> None:
    x1, x2 = torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 1.0]])
    e = torch.zeros((2, 0), dtype=torch.long)
    for depth in (1, 2, 4):
        assert tmd((x1, e), (x2, e), depth=depth) == pytest.approx(np.hypot(3, 3))
    # a single node against a two-node graph: the extra node costs its distance to blank
    two = (torch.tensor([[3.0, 4.0], [0.0, 2.0]]), und(2, [(0, 1)]))
    # depth 2, w = 1: node 0 matches node 0 (features equal) but has one blank child -> 2;
    # node 1 goes to blank: ||(0, 2)|| + 1 * ||(3, 4)|| = 7
    assert tmd((x1, e), two, w=1.0, depth=2) == pytest.approx(2.0 + 7.0)


def test_star_by_hand() -> None:
    # star with 3 leaves vs star with 2 leaves, constant features, depth 2, w = 0.5
    s3 = (torch.ones(4, 1), und(4, [(0, 1), (0, 2), (0, 3)]))
    s2 = (torch.ones(3, 1), und(3, [(0, 1), (0, 2)]))
    # centres: 0.5 * (one unmatched leaf, distance to blank 1) = 0.5; leaves match leaves;
    # one leaf of s3 goes to blank: 1 + 0.5 * 1 = 1.5
    assert tmd(s3, s2, w=0.5, depth=2) == pytest.approx(2.0)


def test_zero_weight_reduces_to_feature_ot() -> None:
    rng = np.random.default_rng(0)
    a, b = random_graph(rng, 7), random_graph(rng, 9)
    base = tmd(a, b, depth=1)
    for depth in (2, 3, 4):
        assert tmd(a, b, w=0.0, depth=depth) == pytest.approx(base, abs=1e-12)


def test_pseudometric_and_wl_equivalence() -> None:
    x6 = torch.ones(6, 1)
    c6 = (x6, und(6, cycle(6)))
    two_c3 = (x6, und(6, [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)]))
    assert tmd(c6, two_c3, depth=4) == 0.0  # non-isomorphic, 1-WL equivalent: not a metric
    rng = np.random.default_rng(1)
    graphs = [random_graph(rng, int(rng.integers(3, 10))) for _ in range(14)]
    d = pairwise_tmd(graphs, w=0.5, depth=3)
    assert np.all(d >= 0)
    assert np.array_equal(d, d.T)
    assert np.all(np.diag(d) == 0)
    # triangle inequality on all triples
    viol = d[:, None, :] - (d[:, :, None] + d[None, :, :])
    assert viol.max() <= 1e-9


def test_invariant_to_node_relabelling() -> None:
    rng = np.random.default_rng(2)
    for _ in range(3):
        x, ei = random_graph(rng, 9)
        perm = torch.as_tensor(rng.permutation(9))
        inv = torch.argsort(perm)
        relabelled = (x[perm], inv[ei])  # new node k is old node perm[k]
        assert tmd((x, ei), relabelled, depth=4) == 0.0
        other = random_graph(rng, 7)
        assert tmd((x, ei), other, depth=3) == pytest.approx(tmd(relabelled, other, depth=3))


def test_monotone_in_depth_and_homogeneous() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = (torch.as_tensor(rng.normal(size=(6, 2))), und(6, cycle(6)))
        b = (torch.as_tensor(rng.normal(size=(8, 2))), und(8, [(0, k) for k in range(1, 8)]))
        vals = [tmd(a, b, w=0.7, depth=L) for L in (1, 2, 3, 4)]
        assert all(v1 <= v2 + 1e-12 for v1, v2 in itertools.pairwise(vals))
        scaled = tmd((2.5 * a[0], a[1]), (2.5 * b[0], b[1]), w=0.7, depth=3)
        assert scaled == pytest.approx(2.5 * vals[2], rel=1e-13)


def test_isolated_nodes_with_float_and_list_weights() -> None:
    # the official code crashed here with a list w before its 2023-08-04 fix
    a = (torch.eye(3), und(3, [(0, 1)]))  # node 2 isolated
    b = (torch.eye(3), und(3, [(0, 1), (1, 2)]))
    assert tmd(a, b, w=0.5, depth=3) == pytest.approx(tmd(a, b, w=[0.5, 0.5], depth=3))
    assert tmd(a, b, w=[0.5, 2.0], depth=3) > 0


def test_pascal_weights() -> None:
    assert pascal_weights(2) == [1.0]
    assert pascal_weights(3) == [0.5, 2.0]
    assert pascal_weights(4) == pytest.approx([1 / 3, 1.0, 3.0])
    assert pascal_weights(4, eps=2.0) == pytest.approx([2 / 3, 2.0, 6.0])


def test_memoized_equals_per_pair_equals_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    import joblib

    from papershelf.tmd import distance

    monkeypatch.setattr(distance, "_MIN_PAIRS_PER_TASK", 5)
    rng = np.random.default_rng(4)
    graphs = [random_graph(rng, int(rng.integers(2, 9))) for _ in range(8)]
    others = [random_graph(rng, int(rng.integers(2, 9))) for _ in range(3)]
    memo = pairwise_tmd(graphs, others, depth=3, memoize=True)
    single = pairwise_tmd(graphs, others, depth=3, memoize=False)
    with joblib.parallel_config(backend="threading"):  # the joblib path without process start-up
        par = pairwise_tmd(graphs, others, depth=3, memoize=True, n_jobs=2)
    assert np.array_equal(memo, single)
    assert np.array_equal(memo, par)
    assert memo[2, 1] == tmd(graphs[2], others[1], depth=3)


def test_joblib_workers_and_parallel_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """n_jobs runs the table blocks and the pairs through joblib, same values bit for bit;
    n_jobs=None follows joblib.parallel_config (here a threading backend that records calls)."""
    import threading

    import joblib

    from papershelf.tmd import distance

    rng = np.random.default_rng(8)
    graphs = [random_graph(rng, int(rng.integers(3, 10))) for _ in range(12)]
    ref = pairwise_tmd(graphs, w=0.5, depth=4)
    monkeypatch.setattr(distance, "_MIN_PAIRS_PER_TASK", 10)  # several blocks per level
    assert np.array_equal(pairwise_tmd(graphs, w=0.5, depth=4, n_jobs=2), ref)  # loky processes
    with joblib.parallel_config(backend="threading"):
        assert np.array_equal(pairwise_tmd(graphs, w=0.5, depth=4, memoize=False, n_jobs=2), ref)

    seen: list[tuple[str, str]] = []
    real_block, real_pairs = distance._table_block, distance._pairs_from_table

    def block(*args: object) -> object:
        seen.append(("table", threading.current_thread().name))
        return real_block(*args)  # type: ignore[arg-type]

    def pairs(*args: object) -> object:
        seen.append(("pairs", threading.current_thread().name))
        return real_pairs(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(distance, "_table_block", block)
    monkeypatch.setattr(distance, "_pairs_from_table", pairs)
    assert np.array_equal(pairwise_tmd(graphs, w=0.5, depth=4), ref)
    assert {t for _, t in seen} == {threading.current_thread().name}  # serial by default
    seen.clear()
    with joblib.parallel_config(backend="threading", n_jobs=2):
        out = pairwise_tmd(graphs, w=0.5, depth=4)  # n_jobs=None: the context decides
    assert np.array_equal(out, ref)
    assert {kind for kind, _ in seen} == {"table", "pairs"}
    assert threading.current_thread().name not in {t for _, t in seen}
    seen.clear()
    with joblib.parallel_config(backend="threading", n_jobs=2):
        pairwise_tmd(graphs, w=0.5, depth=4, n_jobs=1)  # an explicit 1 stays in this thread
    assert {t for _, t in seen} == {threading.current_thread().name}


def test_neighbor_direction() -> None:
    path = (torch.eye(3), torch.tensor([[0, 1], [1, 2]]))  # directed 0 -> 1 -> 2
    rev = (torch.eye(3), torch.tensor([[1, 2], [0, 1]]))  # directed 2 -> 1 -> 0
    assert tmd(path, rev, neighbors="out", depth=3) > 0
    assert tmd(path, path, neighbors="in", depth=3) == 0
    # out-children of the path are the in-children of its reverse
    assert tmd(path, (torch.eye(3), und(3, [(0, 1), (1, 2)])), neighbors="out", depth=3) == (
        pytest.approx(tmd(rev, (torch.eye(3), und(3, [(0, 1), (1, 2)])), neighbors="in", depth=3))
    )
    und_path = (torch.eye(3), und(3, [(0, 1), (1, 2)]))
    other = (torch.eye(3)[[0, 0, 2]], und(3, [(0, 1), (0, 2)]))
    assert tmd(und_path, other, neighbors="in") == tmd(und_path, other, neighbors="out")


def test_networkx_input_and_one_hot() -> None:
    g = nx.cycle_graph(5)
    for v in g.nodes:
        g.nodes[v]["x"] = [1.0, float(v % 2)]
    data = from_networkx(g)
    assert data.x.shape == (5, 2)
    assert data.edge_index.shape == (2, 10)
    assert tmd(g, data) == 0.0
    labelled = nx.path_graph(4)
    nx.set_node_attributes(labelled, {0: 0, 1: 2, 2: 1, 3: 0}, "atom")
    d = from_networkx(labelled, "atom", num_classes=3)
    assert d.x.tolist() == one_hot([0, 2, 1, 0], 3).tolist()
    plain = from_networkx(nx.path_graph(3), node_attr=None)
    assert tmd(plain, (torch.ones(3, 1), und(3, [(0, 1), (1, 2)]))) == 0.0


def test_networkx_collections_and_attributes() -> None:
    """networkx graphs in pairwise_tmd with a named node attribute, DiGraphs, no attribute."""
    rng = np.random.default_rng(9)
    nx_graphs, data = [], []
    for _ in range(5):
        g = nx.gnp_random_graph(int(rng.integers(2, 8)), 0.4, seed=int(rng.integers(1000)))
        labels = rng.integers(0, 3, g.number_of_nodes())
        for v in g.nodes:
            g.nodes[v]["feat"] = one_hot([int(labels[v])], 3)[0].tolist()
        nx_graphs.append(g)
        data.append(from_networkx(g, "feat"))
    d_nx = pairwise_tmd(nx_graphs, w=0.5, depth=3, node_attr="feat")
    assert np.array_equal(d_nx, pairwise_tmd(data, w=0.5, depth=3))
    mixed = pairwise_tmd(data[:2], nx_graphs, w=0.5, depth=3, node_attr="feat")
    assert np.array_equal(mixed, d_nx[:2])
    # scalar attributes become 1-d features; None gives constant features
    path = nx.path_graph(3)
    nx.set_node_attributes(path, {0: 1.0, 1: 2.0, 2: 1.0}, "h")
    assert tmd(path, (torch.tensor([[1.0], [2.0], [1.0]]), und(3, [(0, 1), (1, 2)])),
               node_attr="h") == 0.0  # fmt: skip
    assert tmd(nx.cycle_graph(6), nx.cycle_graph(6), node_attr=None) == 0.0
    assert tmd(nx.path_graph(3), nx.path_graph(3), node_attr=None, w=1.0, depth=2) == 0.0
    # DiGraph: edges once, source -> target, so children are out-neighbours
    dig = nx.DiGraph([(0, 1), (1, 2)])
    assert from_networkx(dig, None).edge_index.tolist() == [[0, 1], [1, 2]]
    assert tmd(dig, (torch.ones(3, 1), torch.tensor([[0, 1], [1, 2]])), node_attr=None) == 0.0
    assert tmd(dig, nx.path_graph(3), node_attr=None, depth=2) > 0


def test_classes_are_wl_colours() -> None:
    """The memoisation classes are PyG's WLConv colour classes (undirected, one-hot labels)."""
    from torch_geometric.nn import WLConv

    from papershelf.tmd.distance import _tree_classes
    from papershelf.tmd.graphs import _to_graph

    rng = np.random.default_rng(5)
    x, ei = random_graph(rng, 12, d=3, p=0.25)
    _, levels = _tree_classes([_to_graph((x, ei), "out", None, "g")], 4)
    colours = x.argmax(dim=1)
    conv = WLConv()
    for lv in levels[1:]:
        colours = conv(colours, ei)
        same_ours = lv.node_class[:, None] == lv.node_class[None, :]
        same_wl = (colours[:, None] == colours[None, :]).numpy()
        assert np.array_equal(same_ours, same_wl)


def test_gin_stability_bound_with_pascal_weights() -> None:
    """||h(Ga) - h(Gb)|| <= prod_l K_l * TMD^{L}_{pascal} for random bias-free GINs."""
    from papershelf.tmd.stability import GIN

    rng = np.random.default_rng(6)
    graphs = [random_graph(rng, int(rng.integers(1, 9)), d=3) for _ in range(16)]
    worst = 0.0
    for layers in (1, 2, 3):
        d = pairwise_tmd(graphs, w=pascal_weights(layers + 1), depth=layers + 1)
        for seed, hidden in ((0, 4), (1, 8), (2, 16)):
            torch.manual_seed(seed)
            model = GIN(3, hidden=hidden, num_layers=layers, bias=False).double()
            with torch.no_grad():
                emb = torch.cat([model.embed(x, ei) for x, ei in graphs])
            gap = torch.cdist(emb, emb).numpy()
            ratio = gap / np.maximum(model.lipschitz_bound() * d, 1e-300)
            worst = max(worst, float(ratio.max()))
    assert 0.0 < worst <= 1.0 + 1e-12


def _identity_gin(layers: int) -> torch.nn.Module:
    """A bias-free GIN whose MLPs are identities on non-negative inputs (K_l = 1)."""
    from papershelf.tmd.stability import GIN

    model = GIN(3, hidden=3, num_layers=layers, bias=False).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m.in_features == m.out_features == 3:
                m.weight.copy_(torch.eye(3))
    return model


def test_gin_bound_is_tight_and_needs_pascal_weights() -> None:
    """On one-hot features the identity GIN attains the bound (ratio 1) with the Pascal weights,
    and breaks it with uniform weights: the test sees the weights, not just a loose bound."""
    rng = np.random.default_rng(0)
    graphs = [random_graph(rng, int(rng.integers(1, 9)), p=0.35) for _ in range(30)]
    for layers in (1, 2, 3):
        model = _identity_gin(layers)
        assert model.lipschitz_bound() == pytest.approx(1.0)
        with torch.no_grad():
            emb = torch.cat([model.embed(x, ei) for x, ei in graphs])
        gap = torch.cdist(emb, emb).numpy()[~np.eye(len(graphs), dtype=bool)]

        def ratio(w: object, gap: np.ndarray = gap, depth: int = layers + 1) -> float:
            d = pairwise_tmd(graphs, w=w, depth=depth)  # type: ignore[arg-type]
            return float((gap / np.maximum(d[~np.eye(len(graphs), dtype=bool)], 1e-300)).max())

        assert ratio(pascal_weights(layers + 1)) == pytest.approx(1.0, abs=1e-12)
        assert ratio(0.5) > 1.5  # too small weights: the "bound" fails
        if layers >= 2:
            assert ratio(1.0) > 1.3


def test_auto_memoize_falls_back_to_per_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    from papershelf.tmd import distance

    rng = np.random.default_rng(7)
    graphs = [(torch.as_tensor(rng.normal(size=(5, 2))), und(5, cycle(5))) for _ in range(4)]
    memo = pairwise_tmd(graphs, depth=3, memoize=True)
    monkeypatch.setattr(distance, "_AUTO_MAX_CLASSES", 3)
    calls = []
    one_by_one = distance._pairs_one_by_one

    def spy(*args: object) -> np.ndarray:
        calls.append(len(args[-1]))  # type: ignore[arg-type]
        return one_by_one(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(distance, "_pairs_one_by_one", spy)
    assert np.array_equal(pairwise_tmd(graphs, depth=3, memoize="auto"), memo)
    assert sum(calls) == 6  # all pairs went the per-pair way


def test_docstring_examples() -> None:
    import doctest

    from papershelf.tmd import distance, graphs, kernel

    for mod in (distance, graphs, kernel):
        result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, mod.__name__
        assert result.attempted > 0
