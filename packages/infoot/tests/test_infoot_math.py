"""The math of InfoOT: MI identities, gradient, Sinkhorn, marginals, invariances."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import ot
import pytest
from sklearn.metrics import pairwise_distances

import papershelf.infoot.sinkhorn as sk
from papershelf.core.testing import assert_close
from papershelf.infoot import (
    FusedInfoOT,
    InfoOT,
    bandwidth,
    density_ratio,
    fused_infoot_plan,
    gaussian_kernels,
    info_ot,
    kde_mutual_information,
    label_block_distances,
    mi_gradient,
    pairwise_euclidean,
    sinkhorn_log,
    sinkhorn_scaling,
)
from papershelf.infoot.mi import _GradientWorkspace, _marginals, _mi_and_gradient


def mixture(n, rng, shift=(0.0, 0.0), scale=0.5):
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    labels = np.arange(n) % 3
    X = centres[labels] + scale * rng.standard_normal((n, 2)) + np.asarray(shift)
    return X, labels


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    Xs, ys = mixture(24, rng)
    Xt, yt = mixture(18, rng, shift=(1.0, -0.5))
    Ks, Kt = gaussian_kernels(pairwise_euclidean(Xs), pairwise_euclidean(Xt), 0.5)
    return Xs, ys, Xt, yt, Ks, Kt


# -- kernels ----------------------------------------------------------------------------------
def test_pairwise_euclidean_matches_sklearn():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(13, 5)), rng.normal(size=(7, 5))
    assert_close(pairwise_euclidean(X, Y), pairwise_distances(X, Y), rtol=0, atol=0)
    D = pairwise_euclidean(X)
    assert_close(D, pairwise_distances(X, X), rtol=0, atol=0)
    assert np.all(np.diag(D) == 0)


def test_label_block_distances_and_kernel_become_class_indicator():
    rng = np.random.default_rng(2)
    X, y = mixture(30, rng)
    C = label_block_distances(X, y, delta=5000.0)
    loop = np.array(
        [
            [np.linalg.norm(a - b) + 5000.0 * (la != lb) for b, lb in zip(X, y)]
            for a, la in zip(X, y)
        ]
    )
    assert_close(C, loop, rtol=1e-12, atol=1e-9)
    Ks, _ = gaussian_kernels(C, C, 0.5)
    same = y[:, None] == y[None, :]
    assert Ks[same].mean() > 0.99 and Ks[~same].max() < 0.01


def test_bandwidth_rule():
    C = np.array([[0.0, 3.0], [3.0, 0.0]])
    assert bandwidth(C, 0.5) == pytest.approx(0.5 * np.sqrt(9.0 / 2 / 2))


# -- mutual information -----------------------------------------------------------------------
def test_independent_coupling_has_ratio_one_and_zero_mi(small):
    _, _, _, _, Ks, Kt = small
    P = np.full((24, 18), 1 / (24 * 18))
    assert np.abs(density_ratio(P, Ks, Kt) - 1).max() < 1e-13
    assert abs(kde_mutual_information(P, Ks, Kt)) < 1e-14


def test_mi_gradient_matches_finite_differences(small):
    _, _, _, _, Ks, Kt = small
    rng = np.random.default_rng(3)
    P = rng.uniform(0.5, 1.5, size=(24, 18))
    P /= P.sum()
    G = mi_gradient(P, Ks, Kt)

    def mi(Q):  # without the P > 0 mask, smooth in every entry
        return float(np.sum(Q * np.log(density_ratio(Q, Ks, Kt))))

    eps = 1e-7
    for i, j in [(0, 0), (5, 17), (23, 3), (11, 9)]:
        E = np.zeros_like(P)
        E[i, j] = eps
        fd = (mi(P + E) - mi(P - E)) / (2 * eps)
        assert fd == pytest.approx(G[i, j], rel=1e-6, abs=1e-7)


def test_plain_infoot_mi_increases_over_iterations(small):
    Xs, _, Xt, _, _, _ = small
    est = InfoOT(h=0.5, reg=0.05, max_iter=30, tol=None).fit(Xs, Xt=Xt)
    mis = np.array(est.log_["mutual_information"])
    assert mis[0] == pytest.approx(0.0, abs=1e-14)
    # the linearised steps are not proximal, so monotonicity is not guaranteed: measured dips
    # are below 1e-4 of the final value (one of 5e-5 here), against a rise from 0 to about 1
    assert np.all(np.diff(mis) > -1e-4 * mis[-1])
    assert np.all(np.diff(mis[10:]) > -1e-4 * mis[-1]) and mis[-1] > mis[10]
    assert mis[-1] == pytest.approx(est.mutual_information_) and est.mutual_information_ > 0.5


def test_fused_mi_positive_and_plan_is_a_distribution(small):
    Xs, _, Xt, _, _, _ = small
    est = FusedInfoOT(max_iter=20).fit(Xs, Xt=Xt)
    P = est.coupling_
    assert est.mutual_information_ > 0
    assert P.min() >= 0 and P.sum() == pytest.approx(1.0, abs=1e-12)


# -- Sinkhorn ----------------------------------------------------------------------------------
@pytest.mark.parametrize("max_iter", [7, 1000])
def test_sinkhorn_scaling_equals_pot(max_iter):
    rng = np.random.default_rng(4)
    M = rng.uniform(0, 3, size=(20, 15))
    a, b = np.full(20, 1 / 20), rng.dirichlet(np.ones(15))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ot.bregman.sinkhorn(a, b, M, 0.05, numItermax=max_iter)
    ours = sinkhorn_scaling(a, b, M, 0.05, max_iter=max_iter)
    assert_close(ours.plan, ref, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("block_bytes", [None, 8 * 15 * 3])
@pytest.mark.parametrize(("max_iter", "reg"), [(1000, 0.05), (1000, 1.0), (13, 0.05)])
def test_one_pass_numpy_sinkhorn_follows_pot_iterations(monkeypatch, block_bytes, max_iter, reg):
    """The numpy loop (whole mat-vecs, or one pass in row blocks) runs POT's iterations: same
    count, same plan."""
    rng = np.random.default_rng(7)
    M = rng.uniform(0, 3, size=(23, 15))
    a, b = np.full(23, 1 / 23), rng.dirichlet(np.ones(15))
    if block_bytes is not None:  # 3-row blocks: 8 of them
        monkeypatch.setattr(sk, "_WHOLE_BYTES", 0)
        monkeypatch.setattr(sk, "_BLOCK_BYTES", block_bytes)
    with np.errstate(all="ignore"):
        ref = sk._sinkhorn_scaling(a, b, M, reg, max_iter, 1e-9)  # POT's sequence, dense
        ours = sk._sinkhorn_scaling_numpy(a, b, M, reg, max_iter, 1e-9)
    assert (ours.n_iter, ours.converged) == (ref.n_iter, ref.converged)
    assert ours.converged == (max_iter == 1000)  # 13 iterations: truncated, as in parity
    assert_close(ours.plan, ref.plan, rtol=1e-13, atol=1e-17)
    assert ours.err == pytest.approx(ref.err, rel=1e-6)


@pytest.mark.parametrize("block_bytes", [None, 8 * 8 * 3])
@pytest.mark.parametrize("max_iter", [1000, 776, 771])
def test_one_pass_sinkhorn_stops_at_pots_failing_iteration(monkeypatch, block_bytes, max_iter):
    """Scalings that overflow mid-run (POT: at iteration 776, between two of our tests):
    POT's count and the scalings of the iteration before; no false alarm on the last finite
    iterate (max_iter=776: entries near 1e308, whose sum overflows)."""
    rng = np.random.default_rng(30)
    M = rng.uniform(0, 1, size=(10, 8))
    M[:5, 4:] += rng.uniform(800, 900)  # exp(-M) = 0 off two blocks whose masses differ:
    M[5:, :4] += rng.uniform(800, 900)  # no plan exists, the scalings grow geometrically
    a, b = np.full(10, 0.1), np.r_[np.full(4, 0.2), np.full(4, 0.05)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = ot.bregman.sinkhorn(a, b, M, 1.0, numItermax=max_iter)
    failed = [
        int(str(w.message).rsplit(" ", 1)[1])
        for w in caught
        if "numerical errors" in str(w.message)
    ]
    assert failed == ([776] if max_iter == 1000 else [])
    if block_bytes is not None:  # 3-row blocks: 4 of them
        monkeypatch.setattr(sk, "_WHOLE_BYTES", 0)
        monkeypatch.setattr(sk, "_BLOCK_BYTES", block_bytes)
    with np.errstate(all="ignore"):
        ours = sk._sinkhorn_scaling_numpy(a, b, M, 1.0, max_iter, 1e-9)
    assert ours.numerical_error == bool(failed)
    assert ours.n_iter == (failed[0] + 1 if failed else max_iter)
    assert_close(ours.plan, ref, rtol=1e-13, atol=0.0)


@pytest.mark.parametrize("max_iter", [1000, 776])
def test_torch_sinkhorn_no_false_alarm_near_overflow(max_iter):
    """The torch path (tests every 10 iterations and after the last): the last finite iterate
    (entries near 1e308) is no failure; the real one is reported."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(30)
    M = rng.uniform(0, 1, size=(10, 8))
    M[:5, 4:] += rng.uniform(800, 900)
    M[5:, :4] += rng.uniform(800, 900)
    a, b = np.full(10, 0.1), np.r_[np.full(4, 0.2), np.full(4, 0.05)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ot.bregman.sinkhorn(a, b, M, 1.0, numItermax=max_iter)
    res = sk._sinkhorn_scaling(*(torch.from_numpy(x) for x in (a, b, M)), 1.0, max_iter, 1e-9)
    assert res.numerical_error == (max_iter == 1000)
    if max_iter == 776:
        assert res.n_iter == 776
        assert_close(res.plan.numpy(), ref, rtol=1e-13, atol=0.0)


@pytest.mark.parametrize("solver", [sinkhorn_scaling, sinkhorn_log])
def test_sinkhorn_rejects_empty_marginals(solver):
    with pytest.raises(ValueError, match="non-empty"):
        solver(np.ones(0), np.full(3, 1 / 3), np.zeros((0, 3)), 1.0)


def test_numpy_cost_workspace_is_bitwise_the_generic_formula(small):
    _, _, _, _, Ks, Kt = small
    rng = np.random.default_rng(8)
    P = rng.dirichlet(np.ones(24 * 18)).reshape(24, 18)
    C = rng.uniform(size=(24, 18))
    marg = _marginals(Ks, Kt)
    ws = _GradientWorkspace(24, 18, np.float64)
    for lam, cost in [(100.0, C), (1.0, None)]:
        mi, grad = _mi_and_gradient(P, Ks, Kt, marg)
        M = -grad if cost is None else cost + lam * -grad
        mi_ws, M_ws = ws.cost(P, Ks, Kt, marg, cost, lam)
        assert mi_ws == mi and np.array_equal(M_ws, M)


def test_sinkhorn_scaling_overflow_returns_previous_iterate_and_log_form_is_stable():
    rng = np.random.default_rng(5)
    M = rng.uniform(0, 10, size=(10, 8))
    M[:, 0] += 900.0  # exp(-M / reg) underflows to 0 in a whole column
    a, b = np.full(10, 0.1), np.full(8, 0.125)
    res = sinkhorn_scaling(a, b, M, 1.0)
    assert res.numerical_error
    log_res = sinkhorn_log(a, b, M, 1.0, tol=1e-10)
    assert log_res.converged and np.isfinite(log_res.plan).all()
    assert_close(log_res.plan.sum(1), a, atol=1e-12)
    assert_close(log_res.plan.sum(0), b, atol=1e-10)
    ref = ot.bregman.sinkhorn_log(a, b, M, 1.0, stopThr=1e-12, numItermax=100000)
    assert_close(log_res.plan, ref, rtol=1e-6, atol=1e-12)


def test_scaling_underflow_warns_with_advice():
    """A whole column of exp(-M/reg) underflows: POT's fallback, reported once per fit."""
    M = np.zeros((6, 5))
    M[:, 0] = 2000.0
    Ks = np.eye(6)
    Kt = np.eye(5)
    with pytest.warns(RuntimeWarning, match="sinkhorn='log'"):
        fused_infoot_plan(M, Ks, Kt, lam=0.0, reg=1.0, max_iter=1)


# -- marginals: parity vs converged ------------------------------------------------------------
def test_parity_mode_rows_exact_columns_not_and_converged_mode_exact():
    ref = json.loads(
        (Path(__file__).parent / "data" / "infoot_official_reference.json").read_text()
    )
    Xs, Xt = np.asarray(ref["inputs"]["Xs"]), np.asarray(ref["inputs"]["Xt"])
    n, m = len(Xs), len(Xt)
    P = FusedInfoOT(max_iter=20).fit(Xs, Xt=Xt).coupling_
    assert np.abs(P.sum(1) - 1 / n).max() < 1e-12
    assert np.abs(P.sum(0) - 1 / m).sum() > 1e-2  # the 1000-iteration cap of the official code
    conv = FusedInfoOT(max_iter=8, sinkhorn="log").fit(Xs, Xt=Xt)
    Q = conv.coupling_
    assert np.abs(Q.sum(1) - 1 / n).sum() < 1e-8
    assert np.abs(Q.sum(0) - 1 / m).sum() < 1e-8
    assert conv.log_["unconverged"] == 0


def test_lam_zero_is_entropic_ot(small):
    Xs, _, Xt, _, Ks, Kt = small
    C = pairwise_euclidean(Xs, Xt)
    P = fused_infoot_plan(C, Ks, Kt, lam=0.0, reg=1.0, max_iter=5)
    ref = ot.sinkhorn(np.full(24, 1 / 24), np.full(18, 1 / 18), C, 1.0)
    assert_close(P, ref, rtol=1e-13, atol=1e-17)


def test_outer_loop_stops_at_fixed_point(small):
    Xs, _, Xt, _, _, _ = small
    full = InfoOT(max_iter=100, tol=None).fit(Xs, Xt=Xt)
    early = InfoOT(max_iter=100).fit(Xs, Xt=Xt)
    assert early.n_iter_ < 100 and early.log_["stopped_early"]
    assert np.abs(early.coupling_ - full.coupling_).max() <= 1e-12 * full.coupling_.max()


# -- invariances -------------------------------------------------------------------------------
def test_plain_infoot_invariant_to_scaling_and_shifting_either_domain(small):
    Xs, _, Xt, _, _, _ = small
    P = info_ot(Xs, Xt, max_iter=20, tol=None)
    P2 = info_ot(3.0 * Xs + 7.0, Xt - 2.0, max_iter=20, tol=None)
    assert np.abs(P - P2).max() <= 1e-9 * P.max()


def test_permuting_source_permutes_rows(small):
    Xs, _, Xt, _, _, _ = small
    perm = np.random.default_rng(6).permutation(len(Xs))
    P = FusedInfoOT(max_iter=10).fit(Xs, Xt=Xt).coupling_
    Pp = FusedInfoOT(max_iter=10).fit(Xs[perm], Xt=Xt).coupling_
    assert_close(Pp, P[perm], rtol=1e-8, atol=1e-14)


def test_small_reg_scaling_form_fails_loudly_log_form_works():
    """reg = 0.002: exp(-M/reg) overflows in the official scaling form; the log form is fine."""
    ref = json.loads(
        (Path(__file__).parent / "data" / "infoot_official_reference.json").read_text()
    )
    Xs, Xt = np.asarray(ref["inputs"]["Xs"]), np.asarray(ref["inputs"]["Xt"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FloatingPointError, match="sinkhorn='log'"):
            InfoOT(reg=0.002, max_iter=3).fit(Xs, Xt=Xt)
    est = InfoOT(reg=0.002, max_iter=3, sinkhorn="log").fit(Xs, Xt=Xt)
    P = est.coupling_
    assert np.isfinite(P).all() and P.min() >= 0
    assert np.abs(P.sum(0) - 1 / 30).sum() < 1e-12 and np.abs(P.sum(1) - 1 / 40).sum() < 1e-12
    assert est.mutual_information_ > 0.5
