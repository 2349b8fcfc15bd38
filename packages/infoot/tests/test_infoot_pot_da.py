"""POT's ot.da drop-in (issue 19.2), solver reliability (issue 22.2/22.10), low-rank products."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import ot
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from papershelf.infoot import FusedInfoOT, InfoOT
from papershelf.infoot.kernels import gaussian_kernels, label_block_distances, pairwise_euclidean
from papershelf.infoot.mi import SpectralKernel, _GradientWorkspace, _marginals
from papershelf.infoot.sinkhorn import (
    SinkhornConvergenceWarning,
    sinkhorn_log,
    sinkhorn_scaling,
    sinkhorn_warm,
)
from papershelf.infoot.solvers import InfoOTConvergenceWarning, fused_infoot_plan

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _da(seed=0, n=80, m=60, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    ys, yt = np.arange(n) % 3, rng.permutation(np.arange(m) % 3)
    Xs = centres[ys] + 0.5 * rng.standard_normal((n, 2))
    Xt = centres[yt] + 0.5 * rng.standard_normal((m, 2)) + [1.5, -1.0]
    return Xs.astype(dtype), ys, Xt.astype(dtype), yt


def pot_user_script(Transport, Xs, ys, Xt, yt):
    """What a POT user writes for ot.da.SinkhornTransport, unchanged but for the class."""
    ot_da = Transport()
    ot_da.fit(Xs, ys, Xt)  # positional, as in POT's examples
    ot_da.fit(Xs=Xs, ys=ys, Xt=Xt, yt=yt)  # keywords
    transp_Xs = ot_da.transform(Xs=Xs)
    new = ot_da.transform(Xs=Xs[:5] + 0.05, batch_size=2)
    back = ot_da.inverse_transform(Xt=Xt)
    labels = ot_da.transform_labels(ys)
    both = ot_da.fit_transform(Xs, ys, Xt)
    acc = float((labels.argmax(1) == yt).mean())
    return ot_da.coupling_, transp_Xs, new, back, labels, both, acc


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_script_runs_with_sinkhorn_transport_and_ours(dtype):
    Xs, ys, Xt, yt = _da(dtype=dtype)
    results = {}
    for Transport in (ot.da.SinkhornTransport, FusedInfoOT, InfoOT):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[Transport.__name__] = pot_user_script(Transport, Xs, ys, Xt, yt)
    pot = results["SinkhornTransport"]
    for name in ("FusedInfoOT", "InfoOT"):
        ours = results[name]
        for a, b in zip(ours[:6], pot[:6], strict=True):
            assert a.shape == b.shape and np.isfinite(a).all()
        assert ours[1].dtype == dtype and ours[2].dtype == dtype
        np.testing.assert_allclose(ours[4].sum(1), 1.0, rtol=1e-6)
    assert results["FusedInfoOT"][6] >= 0.95  # label propagation works as POT's does
    assert pot[6] >= 0.95


def test_float32_default_fused_matches_float64_of_rounded_data():
    Xs, _ys, Xt, _yt = _da(dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = FusedInfoOT(max_iter=10).fit(Xs, Xt=Xt).coupling_
        b = FusedInfoOT(max_iter=10).fit(Xs.astype(np.float64), Xt=Xt.astype(np.float64)).coupling_
    assert np.isfinite(a).all() and np.abs(a - b).max() <= 1e-14 * b.max()


# -- solver warnings and errors -------------------------------------------------------------------
def test_unconverged_inner_sinkhorn_warns_once_per_fit_like_pot():
    Xs, _ys, Xt, _yt = _da()
    with pytest.warns(ConvergenceWarning) as rec:
        FusedInfoOT(max_iter=5).fit(Xs, Xt=Xt)
    ours = [w for w in rec if issubclass(w.category, InfoOTConvergenceWarning)]
    assert len(ours) == 1 and "inner Sinkhorn stopped" in str(ours[0].message)
    M = pairwise_euclidean(Xs, Xt)
    a, b = np.full(80, 1 / 80), np.full(60, 1 / 60)
    with pytest.warns(SinkhornConvergenceWarning):
        sinkhorn_scaling(a, b, M, 0.01, max_iter=20)


def test_small_reg_log_sinkhorn_that_does_not_converge_warns():
    """Issue 22.2: sinkhorn='log' at small reg returned an unconverged plan silently."""
    Xs, _ys, Xt, _yt = _da()
    with pytest.warns(InfoOTConvergenceWarning, match="inner Sinkhorn stopped"):
        est = InfoOT(reg=0.002, max_iter=4, sinkhorn="log", inner_max_iter=50).fit(Xs, Xt=Xt)
    assert not est.converged_ and est.log_["unconverged"] == 4
    M = pairwise_euclidean(Xs, Xt)
    a, b = np.full(80, 1 / 80), np.full(60, 1 / 60)
    with pytest.warns(SinkhornConvergenceWarning, match="did not converge"):
        res = sinkhorn_log(a, b, M, 0.001, max_iter=30)
    assert not res.converged


def test_sinkhorn_log_with_nan_cost_raises():
    """Issue 22.2: sinkhorn_log(a, b, M*nan, 0.1) ran 10,000 iterations and returned NaN."""
    a, b = np.full(4, 0.25), np.full(3, 1 / 3)
    M = np.ones((4, 3))
    for solver in (sinkhorn_log, sinkhorn_scaling):
        with pytest.raises(ValueError, match="M"):
            solver(a, b, M * np.nan, 0.1)
        with pytest.raises(ValueError, match="reg"):
            solver(a, b, M, float("nan"))
        with pytest.raises(ValueError, match="shape"):
            solver(a, b, M.T, 0.1)


def test_nan_source_labels_rejected():
    """Issue 22.10: source labels with NaN were accepted (a NaN class of its own)."""
    Xs, ys, Xt, _yt = _da()
    bad = ys.astype(float)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="ys"):
        FusedInfoOT(max_iter=2).fit(Xs, bad, Xt)


def test_numpy_scalar_lam_message_and_acceptance():
    """Issue 22.9: FusedInfoOT(lam=np.float32(100)) said 'lam must be a finite number'."""
    Xs, _ys, Xt, _yt = _da()
    P = FusedInfoOT(lam=np.float32(100), max_iter=np.int64(2)).fit(Xs, Xt=Xt).coupling_
    assert np.isfinite(P).all()
    with pytest.raises(ValueError, match="lam"):
        FusedInfoOT(lam=np.float32("nan")).fit(Xs, Xt=Xt)


# -- exact low-rank kernel products ---------------------------------------------------------------
def test_low_rank_products_equal_dense_within_the_bound():
    rng = np.random.default_rng(3)
    X, _, Y, _ = _da(n=400, m=350)
    Ks, Kt = gaussian_kernels(pairwise_euclidean(X), pairwise_euclidean(Y), 0.5)
    P = rng.random((400, 350))
    P /= P.sum()
    marg = _marginals(Ks, Kt)
    dense = _GradientWorkspace(400, 350, np.float64)
    low = _GradientWorkspace(400, 350, np.float64, (SpectralKernel(Ks), SpectralKernel(Kt)))
    C = rng.random((400, 350))
    mi_d, M_d = dense.cost(P, Ks, Kt, marg, C, 100.0)
    mi_l, M_l = low.cost(P, Ks, Kt, marg, C, 100.0)
    r = low.ranks
    assert all(x is not None for x in r) and max(max(x) for x in r) < 200  # truly low rank
    assert abs(mi_l - mi_d) <= 1e-12  # the MI is O(1) at most (log n); here ~4e-5
    assert np.abs(M_l - M_d).max() <= 1e-10 * np.abs(M_d).max()
    # the transposed problem takes the other association of the factors (target rank first)
    swapped = _GradientWorkspace(350, 400, np.float64, (SpectralKernel(Kt), SpectralKernel(Ks)))
    assert low._source_first != swapped._source_first
    mi_t, M_t = swapped.cost(P.T.copy(), Kt, Ks, marg.T.copy(), C.T.copy(), 100.0)
    assert abs(mi_t - mi_d) <= 1e-12
    assert np.abs(M_t.T - M_d).max() <= 1e-10 * np.abs(M_d).max()
    # a tolerance no rank can meet falls back to the dense product
    strict = _GradientWorkspace(
        400, 350, np.float64, (SpectralKernel(Ks, 1e-30), SpectralKernel(Kt))
    )
    strict.cost(P, Ks, Kt, marg, C, 100.0)
    assert strict.ranks == [None, None]


def test_spectral_kernel_cholesky_subspace_matches_eigh():
    """The pivoted-Cholesky Rayleigh-Ritz factors: eigh's rank and eigenvalues, the bound met."""
    X, ys, Y, _ = _da(n=400, m=350)
    Ks, Kt = gaussian_kernels(pairwise_euclidean(X), pairwise_euclidean(Y), 0.5)
    for K in (Ks, Kt):
        S = SpectralKernel(K)
        w = np.linalg.eigvalsh(K)[::-1]
        assert S.method == "cholesky" and S.rank == int((w > S.err / 10).sum())
        assert S.residual <= S.err
        assert_allclose(S.w, w[: S.rank], rtol=0, atol=1e-12 * w[0])
        assert_allclose(S.U.T @ S.U, np.eye(S.rank), rtol=0, atol=1e-13)
        assert np.linalg.norm(K - (S.U * S.w) @ S.U.T) == pytest.approx(S.residual, rel=1e-12)
    # an indefinite kernel (label-refined distances are not Euclidean): eigh, then dense
    S = SpectralKernel(gaussian_kernels(label_block_distances(X, ys, 5000.0), Y[:5], 0.5)[0])
    assert S.method == "eigh" and S.rank is None
    # a full-rank one (the pivoted Cholesky keeps all columns): eigh, which finds it exact
    S = SpectralKernel(np.diag(np.linspace(1.0, 2.0, 40)))
    assert S.method == "eigh" and S.rank == 40 and S.residual <= S.err


def test_spectral_kernel_power_step_rescues_a_coarse_subspace(monkeypatch):
    """A subspace 1000x too coarse misses the bound; one power step meets it (no eigh)."""
    import papershelf.infoot.mi as mi

    X, _, _, _ = _da(n=300)
    K = gaussian_kernels(pairwise_euclidean(X), pairwise_euclidean(X), 0.5)[0]
    basis, ritz = mi._cholesky_basis, mi._ritz_pairs
    residuals = []

    def spy(K, Q, floor):
        w, U = ritz(K, Q, floor)
        residuals.append(np.linalg.norm(K - (U * w) @ U.T))
        return w, U

    monkeypatch.setattr(mi, "_cholesky_basis", lambda K, floor: basis(K, 1000 * floor))
    monkeypatch.setattr(mi, "_ritz_pairs", spy)
    S = mi.SpectralKernel(K)
    assert len(residuals) == 2 and residuals[0] > S.err >= residuals[1] == S.residual
    assert S.method == "cholesky" and S.rank is not None


def test_low_rank_solver_equals_dense_solver():
    X, _, Y, _ = _da(seed=4, n=500, m=450)
    Ks, Kt = gaussian_kernels(pairwise_euclidean(X), pairwise_euclidean(Y), 0.5)
    C = pairwise_euclidean(X, Y)
    P_low, log = fused_infoot_plan(C, Ks, Kt, max_iter=4, tol=None, log=True)
    P_dense = fused_infoot_plan(C, Ks, Kt, max_iter=4, tol=None, low_rank=False)
    assert any(r is not None for r in log["kernel_ranks"])
    assert np.abs(P_low - P_dense).max() <= 1e-10 * P_dense.max()


def test_fast_mode_stops_at_its_fixed_point_and_keeps_the_downstream_result():
    Xs, ys, Xt, _yt = _da(n=150, m=140)
    exact = FusedInfoOT(max_iter=50, tol=None).fit(Xs, Xt=Xt)
    fast = FusedInfoOT(sinkhorn="fast").fit(Xs, Xt=Xt)
    assert fast.log_["delta"][-1] <= 1e-3 or fast.n_iter_ == 50
    assert np.abs(fast.coupling_.sum(0) - 1 / 140).sum() < 2e-3  # columns met (parity: not)
    same = (fast.transform_labels(ys).argmax(1) == exact.transform_labels(ys).argmax(1)).mean()
    assert same >= 0.97


def test_fast_sinkhorn_absorbs_scalings_on_a_badly_scaled_cost():
    # a cost ~300 reg wide: in float32 most kernel entries are 0 and, without absorbing the
    # scalings into the potentials, they overflowed (FloatingPointError at iteration 270)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(50, 2))
    M = 60.0 * ((x[:, None] - y[None]) ** 2).sum(-1)
    a, b = np.full(60, 1 / 60), np.full(50, 1 / 50)
    res = sinkhorn_warm(a, b, M, 1.0, max_iter=5000, tol=1e-3)
    ref = sinkhorn_log(a, b, M, 1.0, tol=1e-9, max_iter=100_000)
    assert res.converged and np.isfinite(res.plan).all()
    assert_allclose(res.plan.sum(1), a, rtol=1e-5)  # rows exact after the u update
    assert np.abs(res.plan.sum(0) - b).sum() < 1e-3
    assert np.abs(res.plan - ref.plan).sum() < 0.02
    f, g = res.potentials  # the potentials carry the absorbed scalings: the plan is theirs
    assert_allclose(np.exp((f[:, None] + g[None, :] - M) / 1.0), res.plan, rtol=1e-4, atol=1e-12)


def test_fast_mode_fits_with_source_labels():
    # the label-block source kernel makes the cost span ~550 reg: fast mode used to overflow
    from papershelf.infoot.reproduce import make_rng, one_nn_accuracy, shifted_digits

    (Xs, ys), (Xt, _), (Xte, yte) = shifted_digits(make_rng(0), 200, 200, 400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exact = FusedInfoOT().fit(Xs, ys, Xt)
        fast = FusedInfoOT(sinkhorn="fast").fit(Xs, ys, Xt)
    assert np.isfinite(fast.coupling_).all()
    for method in ("barycentric", "conditional"):
        acc_fast = one_nn_accuracy(fast.transform(Xs, method=method), ys, Xte, yte)
        acc_exact = one_nn_accuracy(exact.transform(Xs, method=method), ys, Xte, yte)
        assert abs(acc_fast - acc_exact) <= 0.02


def test_import_is_lazy():
    code = (
        "import sys, papershelf.infoot as m; "
        "bad = [k for k in ('torch', 'ot', 'sklearn', 'scipy') if k in sys.modules]; "
        "assert not bad, bad; m.FusedInfoOT; assert 'ot' in sys.modules; "
        "from papershelf.infoot import sinkhorn_log, bandwidth, __version__"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
