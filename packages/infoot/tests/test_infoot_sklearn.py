"""scikit-learn protocol (issue 19.1): estimator checks, model selection, pipelines, settings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone, is_regressor
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from papershelf.infoot import FusedInfoOT, InfoOT

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class SelfTargetInfoOT(InfoOT):
    """InfoOT whose target defaults to the source: the single-matrix ``fit(X, y)`` that
    scikit-learn's generic checks call. Our estimators need a target domain (``Xt``) and raise
    without one; this subclass only supplies it, so every inherited part of the protocol
    (parameters, cloning, validation, dtypes, NaN rejection, pickling, fitted-state checks,
    ``n_features_in_``, feature names, subset/order invariance of ``transform``) is what is
    checked."""

    def fit(self, Xs=None, ys=None, Xt=None, yt=None):
        return super().fit(Xs, ys, Xs if Xt is None else Xt, yt)


class SelfTargetFusedInfoOT(FusedInfoOT):
    """:class:`FusedInfoOT` with the target defaulting to the source (see SelfTargetInfoOT)."""

    def fit(self, Xs=None, ys=None, Xt=None, yt=None):
        return super().fit(Xs, ys, Xs if Xt is None else Xt, yt)


# Checks that cannot pass for a transport between two samples, each with the reason:
EXPECTED_FAILURES = {
    # POT's ot.da names the first two arguments of fit Xs, ys (fit(Xs, ys, Xt, yt)); the check
    # wants them named X, y. Positional calls (what scikit-learn makes) are the same.
    "check_fit_score_takes_y": "fit(Xs, ys, Xt, yt) follows POT's ot.da argument names",
}


def _expected(est):
    return EXPECTED_FAILURES


@parametrize_with_checks(
    [SelfTargetInfoOT(max_iter=3), SelfTargetFusedInfoOT(max_iter=3)],
    expected_failed_checks=_expected,
)
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# -- the real estimators ------------------------------------------------------------------------
def _domains(n=90, m=70, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    ys, yt = np.arange(n) % 3, rng.permutation(np.arange(m) % 3)
    Xs = centres[ys] + 0.5 * rng.standard_normal((n, 2))
    Xt = centres[yt] + 0.5 * rng.standard_normal((m, 2)) + [1.5, -1.0]
    return Xs, ys, Xt, yt


def test_missing_target_raises_and_not_fitted_error():
    Xs, ys, _, _ = _domains()
    with pytest.raises(ValueError, match="Xt is required"):
        FusedInfoOT().fit(Xs, ys)
    with pytest.raises(TypeError, match=r"fit\(Xs, Xt=Xt\)"):
        FusedInfoOT().fit(Xs, Xs)  # the pre-0.2 positional order
    for method in ("transform", "inverse_transform", "conditional_score", "transform_labels"):
        with pytest.raises(NotFittedError):
            getattr(InfoOT(), method)(Xs)
    assert not is_regressor(FusedInfoOT())


def test_params_untouched_in_init_and_validated_in_fit():
    est = FusedInfoOT(h=np.float32(0.5), lam=np.float64("nan"), max_iter=np.int64(3))
    assert np.isnan(est.lam) and isinstance(est.max_iter, np.int64)  # stored as given
    assert clone(est).get_params()["max_iter"] == 3
    Xs, _ys, Xt, _ = _domains()
    with pytest.raises(ValueError, match="lam"):
        est.fit(Xs, Xt=Xt)


def test_numpy_and_tensor_scalars_accepted():
    torch = pytest.importorskip("torch")
    Xs, _ys, Xt, _ = _domains()
    ref = FusedInfoOT(lam=100.0, reg=1.0, max_iter=3, h=0.5).fit(Xs, Xt=Xt).coupling_
    for lam, reg, it, h in [
        (np.float32(100), np.float64(1.0), np.int64(3), np.float16(0.5)),
        (
            torch.tensor(100.0),
            torch.tensor(1.0, dtype=torch.float64),
            torch.tensor(3),
            torch.tensor(0.5),
        ),
    ]:
        P = FusedInfoOT(lam=lam, reg=reg, max_iter=it, h=h).fit(Xs, Xt=Xt).coupling_
        np.testing.assert_allclose(P, ref, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("name", "value"),
    [("h", float("nan")), ("reg", float("inf")), ("lam", -1.0), ("max_iter", 0),
     ("max_iter", 2.5), ("reg", True), ("tol", float("nan")), ("inner_tol", 0.0),
     ("sinkhorn", "exact"), ("label_delta", float("nan")), ("low_rank", 1)],
)  # fmt: skip
def test_bad_settings_name_the_argument(name, value):
    Xs, _ys, Xt, _ = _domains()
    with pytest.raises((ValueError, TypeError), match=name):
        FusedInfoOT(**{name: value}).fit(Xs, Xt=Xt)


def _pipeline():
    return Pipeline([("ot", FusedInfoOT(max_iter=5, reg=1.0)), ("knn", KNeighborsClassifier(1))])


def test_pipeline_cross_val_score_and_grid_search():
    """The transport inside a Pipeline: the target goes in as a fit parameter (``ot__Xt``).
    Source points are mapped into the target domain, a 1-NN classifier learns the source
    labels there, and held-out source points (mapped out of sample, E[y|x]) are classified."""
    Xs, ys, Xt, _yt = _domains()
    pipe = _pipeline().fit(Xs, ys, ot__Xt=Xt)
    assert pipe.score(Xs, ys) > 0.9
    cv = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(_pipeline(), Xs, ys, cv=cv, params={"ot__Xt": Xt})
    assert scores.shape == (3,) and scores.mean() > 0.85
    grid = GridSearchCV(_pipeline(), {"ot__h": [0.3, 0.5], "ot__lam": [10.0, 100.0]}, cv=cv)
    grid.fit(Xs, ys, ot__Xt=Xt)
    assert set(grid.best_params_) == {"ot__h", "ot__lam"} and grid.best_score_ > 0.85
    # a scaler before the transport: the same pipeline with standardised source features
    scaled = Pipeline([("scale", StandardScaler()), ("ot", InfoOT(max_iter=3))])
    out = scaled.fit_transform(Xs, ot__Xt=Xt)
    assert out.shape == (90, 2) and np.isfinite(out).all()


def test_transform_rows_depend_on_themselves_only():
    """Rows seen in fit use the coupling, new rows E[y|x]; batches and subsets agree."""
    Xs, _ys, Xt, _ = _domains()
    est = FusedInfoOT(max_iter=5).fit(Xs, Xt=Xt)
    new = Xs[:7] + 0.3
    mixed = np.vstack([Xs[:10], new])
    full = est.transform(Xs=mixed, batch_size=3)
    np.testing.assert_allclose(full[:10], est.transform(Xs=Xs)[:10], rtol=1e-13)
    np.testing.assert_allclose(full[10:], est.transform(Xs=new, batch_size=128), rtol=1e-13)
    nn = est.set_params(out_of_sample="nn").transform(Xs=new)
    near = ((new[:, None] - Xs[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_allclose(nn, new + est.transform(Xs=Xs)[near] - Xs[near], rtol=1e-12)
