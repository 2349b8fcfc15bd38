"""Graph variant: synthetic graph families, the InfoGraph GIN model, training and the experiment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.datasets import FakeDataset

from papershelf.core import ReproduceContext
from papershelf.hard_negatives.graph import (
    GRAPH_FAMILIES,
    GraphExperimentConfig,
    InfoGraph,
    InfoGraphConfig,
    graph_records,
    infograph_jsd,
    infograph_jsd_hard,
    run_graph,
    run_graph_experiment,
    svm_accuracy,
    synthetic_graph_classes,
    train_infograph,
)


def test_synthetic_families_are_balanced_undirected_and_equally_dense():
    graphs = synthetic_graph_classes(30, node_features="degree", seed=1)
    labels = np.array([int(g.y) for g in graphs])
    assert len(graphs) == 120 and np.bincount(labels).tolist() == [30] * len(GRAPH_FAMILIES)
    for g in graphs[:20]:
        ei = g.edge_index
        assert bool((ei[0] != ei[1]).all())  # no self-loops
        pairs = set(map(tuple, ei.T.tolist()))
        assert pairs == {(v, u) for u, v in pairs}  # both directions
        assert g.x.shape == (g.num_nodes, 11) and bool((g.x.sum(1) == 1).all())
        assert 12 <= g.num_nodes <= 30
    for label in range(4):
        deg = [g.edge_index.shape[1] / g.num_nodes for g in graphs if int(g.y) == label]
        assert 3.0 < np.mean(deg) < 5.0  # mean degree 4 for every family
    again = synthetic_graph_classes(30, seed=1)  # same graphs, constant features
    assert all(torch.equal(a.edge_index, b.edge_index) for a, b in zip(graphs, again))
    assert all(g.x.shape == (g.num_nodes, 1) and bool((g.x == 1).all()) for g in again)


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="min_nodes"):
        synthetic_graph_classes(5, min_nodes=3)
    with pytest.raises(ValueError, match="max_nodes"):
        synthetic_graph_classes(5, min_nodes=10, max_nodes=8)
    with pytest.raises(ValueError, match="mean_degree"):
        synthetic_graph_classes(5, mean_degree=20.0)
    with pytest.raises(ValueError, match="node_features"):
        synthetic_graph_classes(5, node_features="random")  # type: ignore[arg-type]


def test_infograph_shapes_and_loss_on_a_fake_dataset_batch():
    torch.manual_seed(0)
    data = FakeDataset(num_graphs=6, avg_num_nodes=10, num_channels=5, num_classes=2)
    batch = Batch.from_data_list(list(data))
    model = InfoGraph(InfoGraphConfig(in_channels=5, hidden_dim=8, num_layers=2))
    l_enc, g_enc = model(batch.x, batch.edge_index, batch.batch, batch.num_graphs)
    assert l_enc.shape == (batch.num_nodes, 16) and g_enc.shape == (6, 16)
    for loss in (
        infograph_jsd(l_enc, g_enc, batch.batch),
        infograph_jsd_hard(l_enc, g_enc, batch.batch, beta=2.0, weight_sign=-1),
    ):
        grads = torch.autograd.grad(
            loss, list(model.parameters()), allow_unused=True, retain_graph=True
        )
        assert torch.isfinite(loss)
        assert all(g is None or bool(torch.isfinite(g).all()) for g in grads)
    emb = model.eval().embed(batch.x, batch.edge_index, batch.batch, batch.num_graphs)
    assert emb.shape == (6, 16) and not emb.requires_grad


def test_encoder_pools_by_sum():
    """Duplicating a graph's nodes (a disjoint copy) doubles its pooled embedding."""
    model = InfoGraph(InfoGraphConfig(in_channels=3, hidden_dim=4, num_layers=2)).eval()
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    ei = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    one = model.embed(x, ei, torch.zeros(4, dtype=torch.long))
    two = model.embed(
        torch.cat([x, x]), torch.cat([ei, ei + 4], 1), torch.zeros(8, dtype=torch.long)
    )
    torch.testing.assert_close(two, 2 * one)


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="hidden_dim"):
        InfoGraphConfig(in_channels=3, hidden_dim=0)
    model = InfoGraph(InfoGraphConfig(in_channels=3))
    with pytest.raises(ValueError, match="x must have shape"):
        model(
            torch.randn(4, 2), torch.zeros(2, 0, dtype=torch.long), torch.zeros(4, dtype=torch.long)
        )


def test_training_lowers_the_loss():
    graphs = synthetic_graph_classes(8, min_nodes=6, max_nodes=10, seed=0)
    cfg = GraphExperimentConfig(epochs=15, batch_size=32, hidden_dim=8, num_layers=2)
    batch = Batch.from_data_list(graphs)

    def loss_fn(l_enc, g_enc, b):
        return infograph_jsd_hard(l_enc, g_enc, b, beta=1.0, weight_sign=-1)

    def loss_of(model):
        model.train()  # batch statistics: the running ones lag after 15 steps
        with torch.no_grad():
            return loss_fn(
                *model(batch.x, batch.edge_index, batch.batch, batch.num_graphs), batch.batch
            )

    torch.manual_seed(3)
    start = loss_of(InfoGraph(InfoGraphConfig(1, 8, 2)))
    trained = train_infograph(graphs, loss_fn, cfg, seed=3)
    assert not trained.training
    assert loss_of(trained) < start - 1.0


def test_svm_accuracy_on_separable_data():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (20, 3)), rng.normal(3, 0.1, (20, 3))])
    y = np.repeat([0, 1], 20)
    assert svm_accuracy(x, y, outer_folds=4, inner_folds=2, c_grid=(1.0,)) == 100.0


TINY = dict(
    n_per_class=6,
    min_nodes=6,
    max_nodes=8,
    hidden_dim=4,
    num_layers=1,
    betas=(0.0, 2.0),
    svm_c=(1.0,),
    outer_folds=2,
    inner_folds=2,
)


def test_tiny_experiment_records_and_figure(tmp_path):
    cfg = GraphExperimentConfig(epochs=1, **TINY)
    result = run_graph_experiment(cfg, seeds=(0, 1))
    assert set(result.accuracy) == {
        "InfoGraph (JSD)",
        "JSD_hard beta=0 (tau+=0.5)",
        "JSD_hard beta=2, code sign (tau+=0.5)",
        "JSD_hard beta=2, paper sign (tau+=0.5)",
    }
    assert all(len(v) == 2 and all(0 <= a <= 100 for a in v) for v in result.accuracy.values())
    records = graph_records(result)
    claims = [r for r in records if r.claim is not None]
    assert len(claims) == 2 and all(r.claim_holds in (True, False) for r in claims)
    assert all(not r.comparable for r in records)
    ctx = ReproduceContext(out_dir=tmp_path, seeds=(0, 1))
    assert len(run_graph(ctx, cfg)) == len(records)
    assert (tmp_path / "hcl_graph_beta.png").is_file()


def test_cli_prints_the_table_and_writes_json_and_figure(tmp_path, monkeypatch, capsys):
    import json

    from papershelf.hard_negatives.graph import __main__ as cli

    monkeypatch.setattr(
        cli, "GraphExperimentConfig", lambda **kw: GraphExperimentConfig(**TINY, **kw)
    )
    cli.main(["--seeds", "0", "1", "--epochs", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| InfoGraph (JSD) |" in out and "claim holds" in out
    payload = json.loads((tmp_path / "graph_results.json").read_text())
    assert payload["seeds"] == [0, 1] and len(payload["records"]) == 8
    assert (tmp_path / "hcl_graph_beta.png").is_file()
