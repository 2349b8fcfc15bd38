"""README quickstart, the measures-at-once helper, and a smoke test of the digits sweep."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from papershelf.core.testing import run_readme_quickstart, slow
from papershelf.kv_margin import kv_gn_margin, kv_margin, kv_measures
from papershelf.kv_margin.reproduce import SweepConfig, run_sweep

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart():
    ns = run_readme_quickstart(README)
    assert np.isfinite(ns["res"].score) and ns["res"].score < 0  # fitted labels: positive margins
    assert ns["res"].normalized_margins.shape == (500,)


def test_kv_measures_equal_the_single_measures():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3)).double()
    x = torch.randn(90, 6, dtype=torch.float64)
    y = torch.arange(90) % 3
    both = kv_measures(model, x, y, "2", seed=4, n_splits=2)
    assert both["kv"].score == kv_margin(model, x, y, "2", seed=4, n_splits=2).score
    assert both["gn"].score == kv_gn_margin(model, x, y, "2", seed=4, n_splits=2).score


def test_tiny_sweep_smoke():
    cfg = SweepConfig(
        width=(16,), lr=(3e-3,), weight_decay=(0.0,), train_size=(150,), label_noise=(0.0, 0.3),
        max_steps=600, fit_accuracy=0.95,
    )  # fmt: skip
    rows, measures = run_sweep(cfg, seed=0)
    assert len(rows) == 2
    clean, noisy = rows
    assert noisy["gap"] > clean["gap"]  # label noise makes the gap
    for name, vals in measures.items():
        assert np.all(np.isfinite(vals)), name
    # fitted models have positive median margins, so the measures are negative; the noisy model
    # has a smaller normalized margin, i.e. a larger measure
    assert measures["kV-Margin"][1] > measures["kV-Margin"][0]


@slow
def test_quick_reproduction_runs(tmp_path):
    from papershelf.core import ReproduceContext
    from papershelf.kv_margin.reproduce import run

    recs = run(ReproduceContext(out_dir=tmp_path))
    assert (tmp_path / "kv_margin_digits_scatter.png").is_file()
    assert any(r.claim is not None for r in recs)
    assert all(np.isfinite(r.mean) for r in recs)


def test_bad_sweep_config():
    with pytest.raises(ValueError, match="train_size"):
        SweepConfig(train_size=(5000,)).check()
