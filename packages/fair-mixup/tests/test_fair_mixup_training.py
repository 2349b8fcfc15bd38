"""Adult loader, batch sampler, training helper, README quickstart and a tiny reproduction."""

from __future__ import annotations

import gzip
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from papershelf.core import ReproduceContext
from papershelf.core.testing import run_readme_quickstart, slow
from papershelf.fair_mixup import (
    AdultMLP,
    GroupBatchSampler,
    evaluate,
    load_adult,
    read_adult,
    train,
    train_step,
)

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def adult():
    return load_adult(seed=0)


def test_adult_fixed_encoding(adult):
    assert adult.X_train.shape == (27132, 85)
    assert adult.X_val.shape == adult.X_test.shape == (9045, 85)
    assert len(adult.feature_names) == 85
    assert not any(n.startswith("sex") for n in adult.feature_names)
    # Every continuous column gets its own bins: each one-hot block sums to one per row.
    for i in range(5):
        block = adult.X_train[:, 10 * i : 10 * (i + 1)]
        assert np.all(block.sum(1) == 1)
    # Per-column edges spread age over all 10 bins (the official shared edges do not for
    # hours-per-week, whose standardised values fall in few of age's bins).
    assert np.all(adult.X_train[:, :10].sum(0) > 0)
    assert set(np.unique(adult.X_train[:, 50:])) <= {0.0, 1.0}


def test_official_encoding_reuses_age_bin_edges():
    off = load_adult(seed=0, preprocessing="official")
    fixed = load_adult(seed=0)
    # Same age block; hours-per-week (column 4) differs because of the shared edges.
    np.testing.assert_array_equal(off.X_train[:, :10], fixed.X_train[:, :10])
    assert not np.array_equal(off.X_train[:, 40:50], fixed.X_train[:, 40:50])


def test_read_adult_from_a_user_folder(tmp_path):
    src = resources.files("papershelf.fair_mixup").joinpath("data")
    with gzip.open(str(src.joinpath("adult.data.gz")), "rb") as fh:
        (tmp_path / "adult.data").write_bytes(fh.read())
    shutil.copy(str(src.joinpath("adult.test.gz")), tmp_path / "adult.test.gz")
    table = read_adult(tmp_path)
    assert table.features.shape == (45222, 40)
    assert int(table.a.sum()) == 30527 and int(table.y.sum()) == 11208
    with pytest.raises(FileNotFoundError, match="not a folder"):
        read_adult(tmp_path / "nope")


def test_loader_bad_input():
    with pytest.raises(ValueError, match="preprocessing"):
        load_adult(preprocessing="raw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        load_adult(seed=-1)


def test_sampler_cells_are_pure_and_balanced():
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([0, 1] * 50)
    y = torch.tensor([0, 0, 1, 1] * 25)
    s = GroupBatchSampler(a, y, batch_size=10, generator=g)
    for _ in range(5):
        i0, i1 = s.sample()
        assert i0.shape == i1.shape == (20,)
        assert torch.all(a[i0] == 0) and torch.all(a[i1] == 1)
        assert torch.all(y[i0[:10]] == 0) and torch.all(y[i0[10:]] == 1)
        assert torch.all(y[i1[:10]] == 0) and torch.all(y[i1[10:]] == 1)
        assert len(set(i0.tolist())) == 20  # without replacement
    with pytest.raises(ValueError, match="fewer than batch_size"):
        GroupBatchSampler(a, y, batch_size=26)
    with pytest.raises(ValueError, match="binary"):
        GroupBatchSampler(a + 1)


def _toy(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 6)) + a[:, None] * 0.8
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0.4).astype(int)
    return x.astype(np.float32), y, a


@pytest.mark.parametrize("method", ["erm", "gapreg", "mixup", "manifold_mixup", "adversarial"])
@pytest.mark.parametrize("mode", ["dp", "eo"])
def test_train_runs_every_method(method, mode):
    x, y, a = _toy()
    g = torch.Generator().manual_seed(0)
    model = AdultMLP(6, hidden=16, generator=g)
    res = train(
        model, x, y, a, method=method, mode=mode, lam=0.5, epochs=2, iters_per_epoch=3,
        batch_size=20, val=(x, y, a), generator=g, show_progress=False,
    )  # fmt: skip
    assert len(res.history) == 2 and res.selected_epoch == 2
    assert {"val_ap", "val_gap", "train_gap"} <= set(res.selected)
    assert set(res.state_dict) == set(model.state_dict())


def test_training_is_seeded_and_mixup_lowers_the_gap():
    x, y, a = _toy(600)
    out = {}
    for method, lam in (("erm", 0.0), ("mixup", 3.0), ("mixup", 3.0)):
        g = torch.Generator().manual_seed(1)
        model = AdultMLP(6, hidden=32, generator=g)
        r = train(
            model, x, y, a, method=method, lam=lam, epochs=3, iters_per_epoch=40,
            batch_size=64, select="last", generator=g, show_progress=False,
        )  # fmt: skip
        out.setdefault(method, []).append(r.selected["train_dp_gap"])
    assert out["mixup"][0] == out["mixup"][1]
    assert out["mixup"][0] < out["erm"][0]


def test_train_bad_input():
    x, y, a = _toy(100)
    model = AdultMLP(6, hidden=8)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        train(model, x, y, a, lam=-0.1, select="last")
    with pytest.raises(ValueError, match="method"):
        train(model, x, y, a, method="fair", select="last")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="val"):
        train(model, x, y, a)
    with pytest.raises(ValueError, match="one entry per row"):
        train(model, x, y[:50], a, select="last")
    with pytest.raises(ValueError, match="model must return scores"):
        train(torch.nn.Linear(6, 2), x, y, a, select="last", batch_size=10)
    with pytest.raises(ValueError, match="group a=0"):
        train(model, x, y, np.ones(100, dtype=int), select="last", batch_size=10)
    with pytest.raises(ValueError, match="binary"):
        evaluate(model, x, y * 2, a)


def test_readme_quickstart_runs():
    ns = run_readme_quickstart(README)
    assert "penalty" in ns


def test_tiny_reproduction(tmp_path):
    from papershelf.fair_mixup.reproduce import Profile, _run

    prof = Profile(
        epochs=2, iters=2, batch_size=50, dp_lams=(0.5,), eo_lams=(1.0,), small_rows=600,
        small_batch=50, small_lams=(1.0,), small_epochs=1,
    )  # fmt: skip
    ctx = ReproduceContext(out_dir=tmp_path, seeds=(0, 1), show_progress=False)
    records = _run(ctx, prof)
    assert (tmp_path / "tradeoff.png").is_file()
    names = {r.experiment for r in records}
    assert "Adult DP: Fair mixup lam=0.5" in names
    claims = [r for r in records if r.claim is not None]
    assert len(claims) == 3 and sum(r.headline for r in records) == 1
    head = next(r for r in records if r.headline)
    assert head.experiment == "Adult DP: fair mixup vs GapReg at matched test gap"
    for r in claims:  # every claim row is a paired test over the seeds that have a shared range
        assert r.verdict in ("holds", "not shown", "contradicted")
        assert len(r.values) == len(r.seeds) and set(r.seeds) <= {0, 1}
        assert (r.interval is not None) == (len(r.seeds) >= 2)


def test_per_seed_matched_difference_and_claim():
    from papershelf.core.records import claim_test
    from papershelf.fair_mixup.reproduce import matched_difference, per_seed_matched

    a = [[(0.0, 0.7), (0.1, 0.8)], [(0.0, 0.6), (0.2, 0.8)]]
    b = [[(0.0, 0.6), (0.1, 0.7)], [(0.0, 0.59), (0.2, 0.79)]]
    diffs = per_seed_matched(a, b)
    assert diffs == pytest.approx([0.1, 0.01])
    assert diffs[0] == matched_difference(a[0], b[0])
    assert claim_test(diffs).verdict == "not shown"  # two seeds, very different gains
    assert claim_test([0.1, 0.11, 0.09]).verdict == "holds"


def test_sweep_runs_erm_once_per_seed():
    from types import SimpleNamespace

    from papershelf.fair_mixup import sweep

    x, y, a = _toy(300)

    def data(seed):
        return SimpleNamespace(X_train=x, y_train=y, a_train=a, X_val=x, y_val=y, a_val=a,
                               X_test=x, y_test=y, a_test=a)  # fmt: skip

    runs = sweep(
        data, methods=("erm", "mixup"), lams=(0.5, 1.0), seeds=(0, 1), epochs=2,
        iters_per_epoch=2, batch_size=20, show_progress=False,
        model_fn=lambda d, g: AdultMLP(d, hidden=8, generator=g),
    )  # fmt: skip
    assert [(r.method, r.lam, r.seed) for r in runs] == [
        ("erm", 0.0, 0), ("mixup", 0.5, 0), ("mixup", 1.0, 0),
        ("erm", 0.0, 1), ("mixup", 0.5, 1), ("mixup", 1.0, 1),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="lams"):
        sweep(data, lams=(-1.0,))


@slow
def test_tiny_full_profile_paths(tmp_path):
    from dataclasses import replace

    from papershelf.fair_mixup.reproduce import FULL, _run

    # The full profile's methods and selection rules, at toy sizes.
    prof = replace(
        FULL, epochs=2, iters=1, batch_size=40, dp_lams=(0.5,), eo_lams=(1.0,),
        small_rows=600, small_batch=40, small_lams=(0.5, 2.0), small_epochs=1,
    )  # fmt: skip
    ctx = ReproduceContext(out_dir=tmp_path, seeds=(0,), show_progress=False)
    names = {r.experiment for r in _run(ctx, prof)}
    assert "Adult EO: Manifold mixup lam=1" in names
    assert "Adult DP: Adversarial lam=0.5" in names
    assert any("select=last" in n for n in names)


def test_saturated_model_gives_finite_loss_and_penalty():
    # Scores of exactly 0 and 1: the official BCE would take log(0); torch clamps it, and the
    # mixup penalty of a saturated sigmoid is 0, not NaN.
    x, y, a = _toy(200)
    model = AdultMLP(6, hidden=8)
    with torch.no_grad():
        model.fc3.weight.mul_(1e6)
        model.fc3.bias.fill_(0.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.tensor(x), torch.tensor(y)
    i0, i1 = np.nonzero(a == 0)[0][:20], np.nonzero(a == 1)[0][:20]
    for method in ("mixup", "gapreg"):
        out = train_step(model, opt, xt[i0], yt[i0], xt[i1], yt[i1], method=method, t=0.5)
        assert all(np.isfinite(v) for v in out.values())
