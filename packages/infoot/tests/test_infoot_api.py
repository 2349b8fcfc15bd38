"""Estimator protocol, input checks, out-of-sample bandwidths, backends, README quickstart."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from papershelf.core.testing import assert_close, run_readme_quickstart, with_devices
from papershelf.infoot import FusedInfoOT, InfoOT, fused_info_ot, info_ot

HERE = Path(__file__).parent
REF = json.loads((HERE / "data" / "infoot_official_reference.json").read_text())
Xs = np.asarray(REF["inputs"]["Xs"])
Xt = np.asarray(REF["inputs"]["Xt"])
ys = np.asarray(REF["inputs"]["ys"]).astype(int)
Xq = np.asarray(REF["inputs"]["Xq"])


@pytest.fixture(scope="module")
def fitted():
    return FusedInfoOT(max_iter=10).fit(Xs, Xt=Xt)


# -- scikit-learn protocol ---------------------------------------------------------------------
def test_fit_returns_self_and_params_round_trip():
    est = InfoOT(h=0.3, reg=0.1, max_iter=3)
    assert est.fit(Xs, Xt=Xt) is est
    params = est.get_params()
    assert params["h"] == 0.3 and params["reg"] == 0.1 and params["tol"] == "auto"
    clone = InfoOT(**params)
    assert clone.get_params() == params
    assert est.set_params(h=0.7) is est and est.h == 0.7
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(bandwidth=1.0)
    assert "InfoOT(h=0.7" in repr(est)


def test_fitted_attributes(fitted):
    assert fitted.coupling_.shape == (40, 30)
    assert fitted.cost_.shape == (40, 30)
    assert fitted.Ks_.shape == (40, 40) and fitted.Kt_.shape == (30, 30)
    assert fitted.n_iter_ == 10 and fitted.mutual_information_ > 0
    assert len(fitted.log_["mutual_information"]) == 11


def test_functional_forms_equal_estimators():
    assert_close(info_ot(Xs, Xt, max_iter=5), InfoOT(max_iter=5).fit(Xs, Xt=Xt).coupling_, rtol=0)
    assert_close(
        fused_info_ot(Xs, Xt, ys=ys, max_iter=5),
        FusedInfoOT(max_iter=5).fit(Xs, ys, Xt).coupling_,
        rtol=0,
    )


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"h": 0.0}, "h must be"),
        ({"h": -1.0}, "h must be"),
        ({"reg": 0.0}, "reg must be"),
        ({"reg": -0.5}, "reg must be"),
        ({"sinkhorn": "exact"}, "sinkhorn must be"),
        ({"oos_bandwidth": "batch"}, "oos_bandwidth must be"),
        ({"max_iter": 0}, "max_iter must be"),
        ({"lam": -1.0}, "lam must be"),
        ({"metric": "cosine"}, "metric must be"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusedInfoOT(**kwargs).fit(Xs, Xt=Xt)


def test_bad_data():
    with pytest.raises(ValueError, match="Xs is empty"):
        InfoOT().fit(np.zeros((0, 2)), Xt=Xt)
    bad = Xt.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="Xt contains NaN"):
        FusedInfoOT().fit(Xs, Xt=bad)
    with pytest.raises(ValueError, match="Xt must have the same number of features"):
        FusedInfoOT().fit(Xs, Xt=np.ones((5, 3)))
    with pytest.raises(ValueError, match="must be 2-D"):
        InfoOT().fit(Xs[:, 0], Xt=Xt)
    with pytest.raises(TypeError, match="Xs must be a numpy array"):
        InfoOT().fit("abc", Xt=Xt)
    with pytest.raises(ValueError, match="ys must have shape"):
        FusedInfoOT().fit(Xs, ys[:-1], Xt)


def test_transform_before_fit_and_bad_methods(fitted):
    with pytest.raises(NotFittedError, match="not fitted"):
        InfoOT().transform(Xs)
    with pytest.raises(NotFittedError, match="not fitted"):
        FusedInfoOT().conditional_score(Xs)
    with pytest.raises(ValueError, match="method must be"):
        fitted.transform(Xs, method="nearest")
    strict = FusedInfoOT(max_iter=3, out_of_sample="raise").fit(Xs, Xt=Xt)
    with pytest.raises(ValueError, match="not seen in fit"):
        strict.transform(Xq, method="barycentric")
    with pytest.raises(ValueError, match="X has 5 features"):
        fitted.conditional_score(np.ones((3, 5)))


# -- out-of-sample projection ------------------------------------------------------------------
def test_out_of_sample_query_bandwidth_depends_on_batch_train_bandwidth_does_not():
    far = np.array([[40.0, -30.0]])
    query = FusedInfoOT(max_iter=10, oos_bandwidth="query").fit(Xs, Xt=Xt)
    alone = query.transform(Xq, method="conditional")
    with_far = query.transform(np.vstack([Xq, far]), method="conditional")[:-1]
    assert np.abs(alone - with_far).max() > 1e-3  # official behaviour: the batch matters

    train = FusedInfoOT(max_iter=10, oos_bandwidth="train").fit(Xs, Xt=Xt)
    alone = train.transform(Xq, method="conditional")
    with_far = train.transform(np.vstack([Xq, far]), method="conditional")[:-1]
    assert_close(alone, with_far, rtol=1e-12, atol=1e-12)
    one_by_one = np.vstack([train.transform(Xq[i : i + 1], method="conditional") for i in range(5)])
    assert_close(alone, one_by_one, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("oos", ["query", "train"])
def test_far_query_points_stay_finite_and_rows_are_scale_free(oos):
    """A point far from every training point used to give a 0/0 row; the score is invariant to
    the scale of a query row, so rows are scaled to a maximum of 1 and stay finite."""
    from papershelf.infoot.kernels import gaussian_kernel, pairwise_euclidean
    from papershelf.infoot.mi import density_ratio

    est = FusedInfoOT(max_iter=10, oos_bandwidth=oos).fit(Xs, Xt=Xt)
    far = np.array([[400.0, -300.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" on the way
        R = est.conditional_score(np.vstack([Xq, far]))
        proj = est.transform(far, method="conditional")
        back = est.inverse_transform(Xt=far, method="conditional")
    assert np.isfinite(R).all() and np.isfinite(proj).all() and np.isfinite(back).all()
    # on ordinary points the row-scaled kernel gives the plain kernel's ratio
    C = pairwise_euclidean(Xq, Xs)
    scale = est.source_feature_scale_ if oos == "train" else None
    if scale is not None:
        plain = density_ratio(
            est.coupling_, gaussian_kernel(C, est.h * scale), est._target_kernel(est.h)
        )
        assert_close(est.conditional_score(Xq), plain, rtol=1e-12, atol=0)


def test_unseen_points_project_near_their_cluster():
    """Conditional projection of unseen source points lands by the matching target cluster."""
    est = FusedInfoOT(oos_bandwidth="train").fit(Xs, ys, Xt)
    proj = est.transform(Xq, method="conditional")
    yt = np.arange(30) % 3  # the fixture's target labels (cyclic, like the source)
    yq = np.arange(5) % 3
    dist = np.linalg.norm(proj[:, None, :] - Xt[None], axis=-1)
    assert (yt[dist.argmin(1)] == yq).mean() == 1.0


# -- labels and the inverse map (POT's ot.da protocol) ------------------------------------------
def test_transform_labels_propagates_through_the_coupling(fitted):
    L = fitted.transform_labels(ys)
    P = fitted.coupling_
    assert L.shape == (30, 3)
    assert_close(L.sum(1), np.ones(30), rtol=0, atol=1e-12)  # a distribution per target
    onehot = np.eye(3)[ys]
    assert_close(L, (P / P.sum(0)).T @ onehot, rtol=1e-12)  # POT's formula
    string_labels = np.array(["a", "b", "c"])[ys]  # any labels; columns in np.unique order
    assert_close(fitted.transform_labels(string_labels), L, rtol=0)
    Li = fitted.inverse_transform_labels(np.arange(30) % 3)
    assert Li.shape == (40, 3)
    assert_close(Li.sum(1), np.ones(40), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="ys must have shape"):
        fitted.transform_labels(ys[:-1])


def test_label_transfer_recovers_target_classes():
    est = FusedInfoOT().fit(Xs, ys, Xt)
    yt = np.arange(30) % 3  # the fixture's target labels
    assert (est.transform_labels(ys).argmax(1) == yt).mean() >= 0.9
    assert (est.inverse_transform_labels(yt).argmax(1) == ys).mean() >= 0.9


def test_inverse_transform(fitted):
    P = fitted.coupling_
    bary = fitted.inverse_transform(Xt=Xt)
    assert_close(bary, (P.T @ Xs) / P.sum(0)[:, None], rtol=1e-12)
    cond = fitted.inverse_transform(Xt=Xt, method="conditional")
    assert cond.shape == (30, 2)
    # E[x | y] is a convex combination of the training source
    assert (cond.min(0) >= Xs.min(0) - 1e-9).all() and (cond.max(0) <= Xs.max(0) + 1e-9).all()
    strict = FusedInfoOT(max_iter=3, out_of_sample="raise").fit(Xs, Xt=Xt)
    with pytest.raises(ValueError, match="not seen in fit"):
        strict.inverse_transform(Xt=Xt[:5] + 0.1)
    with pytest.raises(ValueError, match="X has 4 features"):
        fitted.inverse_transform(Xt=np.ones((3, 4)), method="conditional")
    with pytest.raises(NotFittedError, match="not fitted"):
        InfoOT().inverse_transform(Xt=Xt)


def test_inverse_transform_of_new_targets_train_bandwidth_is_per_point():
    est = InfoOT(max_iter=10, oos_bandwidth="train").fit(Xs, Xt=Xt)
    new = Xt[:6] + 0.05
    batch = est.inverse_transform(Xt=new, method="conditional")
    one_by_one = np.vstack(
        [est.inverse_transform(Xt=new[i : i + 1], method="conditional") for i in range(6)]
    )
    assert_close(batch, one_by_one, rtol=1e-12, atol=1e-12)
    # a target point slightly moved maps close to where the training point maps
    near = est.inverse_transform(Xt=Xt, method="conditional")[:6]
    assert np.abs(batch - near).max() < 0.2 * np.ptp(Xs, axis=0).max()


# -- backends ----------------------------------------------------------------------------------
@with_devices
@pytest.mark.parametrize("cls", [InfoOT, FusedInfoOT])
def test_torch_matches_numpy_and_keeps_type(device, cls):
    import torch  # the torch extra; the workspace always has it

    a = cls(max_iter=5).fit(Xs, Xt=Xt)
    T = lambda x: torch.tensor(x, dtype=torch.float64, device=device)  # noqa: E731
    b = cls(max_iter=5).fit(T(Xs), Xt=T(Xt))
    assert isinstance(b.coupling_, torch.Tensor) and b.coupling_.device.type == device
    assert_close(b.coupling_, a.coupling_, rtol=1e-10, atol=1e-15)
    score = b.conditional_score(T(Xq))
    assert isinstance(score, torch.Tensor)
    assert_close(score, a.conditional_score(Xq), rtol=1e-9, atol=1e-12)
    proj = b.transform(T(Xs), method="barycentric")
    assert_close(proj, a.transform(Xs, method="barycentric"), rtol=1e-10)
    labels = b.transform_labels(ys)
    assert isinstance(labels, torch.Tensor) and labels.device.type == device
    assert_close(labels, a.transform_labels(ys), rtol=1e-9, atol=1e-12)
    inv = b.inverse_transform(Xt=T(Xt[:4] + 0.1), method="conditional")
    assert_close(inv, a.inverse_transform(Xt=Xt[:4] + 0.1, method="conditional"), rtol=1e-9)
    with pytest.raises(TypeError, match="same kind of array"):
        b.conditional_score(Xq)


@pytest.mark.parametrize("sinkhorn", ["pot", "log"])
def test_float32_inputs_work_with_default_settings(sinkhorn):
    """Issue 19.2: float32 used to overflow the scaling form (FloatingPointError); it is now
    solved in float64, so the plan is the float64 plan of the float32-rounded data."""
    X32, Y32 = Xs.astype(np.float32), Xt.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = FusedInfoOT(max_iter=6, sinkhorn=sinkhorn).fit(X32, Xt=Y32)
        ref = FusedInfoOT(max_iter=6, sinkhorn=sinkhorn).fit(
            X32.astype(np.float64), Xt=Y32.astype(np.float64)
        )
    assert np.isfinite(est.coupling_).all()
    assert_close(est.coupling_, ref.coupling_, rtol=0, atol=1e-15)
    out = est.transform(Xs=X32)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert est.transform(Xs=X32[:3] + 0.5).dtype == np.float32


# -- docs --------------------------------------------------------------------------------------
def test_readme_quickstart():
    ns = run_readme_quickstart(HERE.parent / "README.md")
    assert ns["P"].shape == (60, 50)
    assert ns["accuracy"] >= 0.9
    assert ns["soft_labels"].shape == (50, 3) and ns["Xt_back"].shape == (50, 2)
    assert (ns["soft_labels"].argmax(1) == ns["yt"]).mean() >= 0.9
