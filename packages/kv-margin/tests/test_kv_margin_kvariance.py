"""Wasserstein-1 and k-variance: closed forms, exact-solver agreement, invariances, bad input."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from papershelf.kv_margin import class_k_variance, k_variance, wasserstein1


def test_w1_one_dimensional_closed_form():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(1.0, 2.0, size=50)
    closed = np.mean(np.abs(np.sort(x) - np.sort(y)))
    assert wasserstein1(x, y) == pytest.approx(closed, rel=1e-12)
    assert wasserstein1(x, y, method="assignment") == pytest.approx(closed, rel=1e-12)


def test_w1_emd_equals_independent_assignment_solver():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(64, 9)), rng.normal(size=(64, 9)) + 0.3
    cost = cdist(x, y)
    r, c = linear_sum_assignment(cost)
    exact = cost[r, c].mean()
    assert abs(wasserstein1(x, y) - exact) < 1e-12
    assert abs(wasserstein1(x, y, method="assignment") - exact) < 1e-12
    # torch input, trailing dims flattened
    xt = torch.from_numpy(x).reshape(64, 3, 3)
    assert abs(wasserstein1(xt, y) - exact) < 1e-12


def test_w1_unequal_sizes_emd_only():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 2)), rng.normal(size=(15, 2))
    assert wasserstein1(x, y) > 0
    with pytest.raises(ValueError, match="equal size"):
        wasserstein1(x, y, method="assignment")


def test_sinkhorn_close_to_exact():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(60, 5)) + 0.5
    exact = wasserstein1(x, y)
    approx = wasserstein1(x, y, method="sinkhorn")
    assert abs(approx / exact - 1) < 0.05
    approx_t = wasserstein1(torch.from_numpy(x), torch.from_numpy(y), method="sinkhorn")
    assert approx_t == pytest.approx(approx, rel=1e-6)


@pytest.mark.parametrize("as_torch", [False, True])
def test_sinkhorn_default_reg_with_mostly_duplicate_points(as_torch):
    # 90 of the 100 costs are zero (duplicates), so the median is 0; W1 = 0.1, not 0
    x, y = np.zeros((10, 3)), np.zeros((10, 3))
    x[0, 0] = 1.0
    if as_torch:
        x, y = torch.from_numpy(x), torch.from_numpy(y)
    assert wasserstein1(x, y, method="sinkhorn") == pytest.approx(0.1, rel=0.05)
    assert wasserstein1(x, x, method="sinkhorn") == pytest.approx(0.0, abs=1e-12)
    assert wasserstein1(y, y, method="sinkhorn") == 0.0


def test_k_variance_zero_for_point_mass():
    assert k_variance(np.tile([1.0, -2.0, 3.0], (20, 1)), rng=0) == 0.0


def test_k_variance_translation_invariant_and_linear_in_scale():
    x = np.random.default_rng(4).normal(size=(80, 4))
    base = k_variance(x, rng=7)
    assert k_variance(x + 5.0, rng=7) == pytest.approx(base, rel=1e-10)
    assert k_variance(3.0 * x, rng=7) == pytest.approx(3.0 * base, rel=1e-10)


def test_k_variance_decreases_with_m_and_splits_reduce_spread():
    pts = np.random.default_rng(5).uniform(size=(1024, 2))
    means = [k_variance(pts, m=m, n_splits=8, rng=0) for m in (16, 64, 256)]
    assert means[0] > means[1] > means[2]
    single = [k_variance(pts, m=32, rng=s) for s in range(30)]
    averaged = [k_variance(pts, m=32, n_splits=8, rng=s) for s in range(30)]
    assert np.std(averaged) < np.std(single)


def test_k_variance_threads_give_same_value():
    x = np.random.default_rng(6).normal(size=(200, 3))
    assert k_variance(x, n_splits=4, rng=1, n_jobs=2) == k_variance(x, n_splits=4, rng=1)


def test_class_k_variance_follows_official_permutation_order():
    rng = np.random.default_rng(8)
    feats, labels = rng.normal(size=(30, 3)), np.repeat([0, 1, 2], 10)
    got = class_k_variance(feats, labels, rng=np.random.RandomState(0))
    rs = np.random.RandomState(0)
    for c in range(3):
        idx = rs.permutation(np.where(labels == c)[0])
        assert got[c] == pytest.approx(wasserstein1(feats[idx[:5]], feats[idx[5:10]]), abs=1e-14)


def test_k_variance_labels_delegates_to_class_k_variance():
    feats = np.random.default_rng(10).normal(size=(40, 3))
    labels = np.arange(40) % 4
    np.testing.assert_array_equal(
        k_variance(feats, labels=labels, rng=3), class_k_variance(feats, labels, rng=3)
    )


def test_bad_inputs():
    x = np.random.default_rng(9).normal(size=(10, 2))
    with pytest.raises(ValueError, match="m must be >= 1"):
        k_variance(x, m=0)
    with pytest.raises(ValueError, match="fewer than 2m"):
        k_variance(x, m=6)
    with pytest.raises(ValueError, match="method"):
        k_variance(x, method="exact")
    with pytest.raises(ValueError, match="n_splits"):
        k_variance(x, n_splits=0)
    with pytest.raises(ValueError, match="NaN"):
        k_variance(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="feature dimension"):
        wasserstein1(x, x[:, :1])
    labels = np.array([0] * 9 + [1])
    with pytest.raises(ValueError, match="class 1 has 1 point"):
        class_k_variance(x, labels)
    with pytest.raises(ValueError, match="class 0 has 9 points, fewer than 2m"):
        class_k_variance(x, labels, m=5)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        class_k_variance(x, np.arange(10) % 3, n_classes=2)
    with pytest.raises(TypeError, match="labels must be integers"):
        class_k_variance(x, np.zeros(10))
    with pytest.raises(TypeError, match="rng"):
        k_variance(x, rng="zero")


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 4),
    st.integers(0, 2**31 - 1),
)
def test_w1_is_a_metric_on_equal_size_clouds(n, d, seed):
    rng = np.random.default_rng(seed)
    x, y, z = (rng.normal(size=(n, d)) for _ in range(3))
    assert wasserstein1(x, x) == pytest.approx(0.0, abs=1e-12)
    assert wasserstein1(x, y) == pytest.approx(wasserstein1(y, x), abs=1e-12)
    assert wasserstein1(x, z) <= wasserstein1(x, y) + wasserstein1(y, z) + 1e-12
    # a permutation of the points is the same empirical measure
    assert wasserstein1(x[rng.permutation(n)], y) == pytest.approx(wasserstein1(x, y), abs=1e-12)


def test_high_dimensional_cost_matches_cdist():
    # d >= 32 uses the (centred) Gram form with near duplicates recomputed directly
    from papershelf.kv_margin.kvariance import _euclidean_cost

    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(60, 2048)), 0) + 50.0  # far from the origin
    y = np.maximum(rng.normal(size=(70, 2048)), 0) + 50.0
    y[:5] = x[:5] + 1e-9 * rng.normal(size=(5, 2048))  # near duplicates
    y[5] = x[7]  # an exact duplicate
    ref = cdist(x, y)
    got = _euclidean_cost(x, y)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=0)
    assert got[7, 5] == 0.0
    assert wasserstein1(x, y[:60]) == pytest.approx(
        wasserstein1(x, y[:60], method="assignment"), rel=1e-12
    )


def test_sinkhorn_torch_inputs_bad_shapes_are_value_errors():
    # the torch path of method="sinkhorn" raised torch RuntimeErrors / a TypeError
    with pytest.raises(ValueError, match="feature dimension"):
        wasserstein1(torch.zeros(5, 3), torch.zeros(5, 4), method="sinkhorn")
    with pytest.raises(ValueError, match="x must hold at least one point"):
        wasserstein1(torch.zeros(0, 3), torch.zeros(5, 3), method="sinkhorn")
    with pytest.raises(ValueError, match="features must hold at least one point"):
        k_variance(torch.tensor(3.0), method="sinkhorn")
    x = torch.randn(40, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert k_variance(x, method="sinkhorn", rng=0) == pytest.approx(
        k_variance(x.numpy(), method="sinkhorn", rng=0), rel=1e-4
    )  # trailing dimensions flattened as on the numpy path


@pytest.mark.parametrize("method", ["emd", "assignment", "sinkhorn"])
@pytest.mark.parametrize("d", [8, 64])  # cdist and Gram-form costs
def test_huge_scales_exact_and_overflow_a_clear_error(method, d):
    # at 1e160 the squared distances overflowed: "Problem infeasible" / scipy's "cost matrix is
    # infeasible" / Sinkhorn at reg=nan; the points are now rescaled by a power of two first
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, d)), rng.normal(size=(20, d))
    base = wasserstein1(x, y, method=method)
    assert wasserstein1(x * 1e160, y * 1e160, method=method) / 1e160 == pytest.approx(
        base, rel=1e-9
    )
    big = np.full((20, d), 1.5e308)  # distances beyond float64
    with pytest.raises(ValueError, match=r"overflow float64.*rescale"):
        wasserstein1(big, -big, method=method)
    with pytest.raises(ValueError, match=r"overflow float64.*rescale"):
        k_variance(np.concatenate([big, -big]), m=20, method=method, rng=0)
    if method == "sinkhorn":  # torch.cdist on the torch path
        with pytest.raises(ValueError, match=r"overflow float64.*rescale"):
            wasserstein1(torch.from_numpy(x * 1e160), torch.from_numpy(y * 1e160), method=method)


def test_bfloat16_features_and_models():
    # torch's .numpy() refuses bfloat16: the exact solvers raised "unsupported ScalarType"
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    assert k_variance(x, rng=0) == k_variance(x.float(), rng=0)
    assert wasserstein1(x[:30], x[30:], method="assignment") == wasserstein1(
        x[:30].float(), x[30:].float(), method="assignment"
    )
    from torch import nn

    from papershelf.kv_margin import kv_measures

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    y = model(x.float()).argmax(1)
    res = kv_measures(model.to(torch.bfloat16), x, y, "2")
    assert np.isfinite(res["kv"].score) and np.isfinite(res["gn"].score)


@pytest.mark.parametrize("scale", [1e-10, 1e-12, 1e-200])
@pytest.mark.parametrize("d", [8, 64])
def test_emd_exact_for_tiny_feature_scales(scale, d):
    # POT's network simplex uses absolute tolerances: at scale 1e-12 / 1e-200 the EMD was off
    # by 4e-4 / 60% (silently at d = 64), breaking W1(c x, c y) = c W1(x, y)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, d)), rng.normal(size=(400, d)) + 0.1
    exact = wasserstein1(x, y, method="assignment")
    assert wasserstein1(x * scale, y * scale) / scale == pytest.approx(exact, rel=1e-12)
