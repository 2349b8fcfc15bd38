"""Fuzzed contract (issue 22.3): finite, correctly shaped results or a ValueError/TypeError
whose message names an argument, for every public function and class."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from papershelf.infoot import FusedInfoOT, InfoOT, fused_info_ot, info_ot
from papershelf.infoot.kernels import (
    bandwidth,
    gaussian_kernels,
    label_block_distances,
    pairwise_euclidean,
)
from papershelf.infoot.mi import density_ratio, kde_mutual_information, mi_gradient
from papershelf.infoot.projection import barycentric_projection, conditional_projection
from papershelf.infoot.sinkhorn import sinkhorn_log, sinkhorn_scaling, sinkhorn_warm

SETTINGS = settings(
    derandomize=True, max_examples=8, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
ARGS = ("Xs", "Xt", "X", "Y", "ys", "h", "reg", "lam", "max_iter", "tol", "M", "a", "b", "sigma",
        "delta", "P", "R", "Ks", "Kt", "inner_tol", "sinkhorn", "label_delta", "C")  # fmt: skip
NAMES = re.compile("|".join(rf"\b{re.escape(a)}\b" for a in ARGS))

settings_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-3, 200),
    st.booleans(),
    st.sampled_from(
        [np.float32(0.5), np.float64(2.0), np.int64(3), np.array(1.5), np.float32("nan")]
    ),
)


@st.composite
def data(draw, same_dim=True):
    n = draw(st.integers(2, 9))
    m = draw(st.integers(2, 9))
    d = draw(st.integers(1, 3))
    dt = d if same_dim else draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 10_000)))
    Xs = rng.normal(size=(n, d)).astype(dtype)
    Xt = (rng.normal(size=(m, dt)) + 1.0).astype(dtype)
    bad = draw(st.sampled_from([None, "nan_s", "inf_t"]))
    if bad == "nan_s":
        Xs[draw(st.integers(0, n - 1)), 0] = np.nan
    elif bad == "inf_t":
        Xt[draw(st.integers(0, m - 1)), 0] = np.inf
    return Xs, Xt


def outcome(fn, *args, **kwargs):
    """Run ``fn``: a finite result, or a ValueError/TypeError that names an argument."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*args, **kwargs)
    except (ValueError, TypeError) as err:
        assert NAMES.search(str(err)), f"message names no argument: {err!r}"
        return None
    arr = np.asarray(out)
    assert np.isfinite(arr).all(), f"non-finite output from {fn.__name__}"
    return arr


@SETTINGS
@given(data(), settings_values, settings_values)
def test_fused_estimator(xy, h, lam):
    Xs, Xt = xy
    est = FusedInfoOT(h=h, lam=lam, max_iter=2)
    P = outcome(lambda: est.fit(Xs, Xt=Xt).coupling_)
    if P is not None:
        assert P.shape == (len(Xs), len(Xt))
        out = outcome(est.transform, Xs=Xs[:1] + 0.5)
        assert out is None or out.shape == (1, Xt.shape[1])


@SETTINGS
@given(data(same_dim=False), settings_values, st.sampled_from(["pot", "log", "fast", "bogus"]))
def test_infoot_estimator(xy, reg, sinkhorn):
    Xs, Xt = xy
    P = outcome(lambda: InfoOT(reg=reg, max_iter=2, sinkhorn=sinkhorn).fit(Xs, Xt=Xt).coupling_)
    assert P is None or P.shape == (len(Xs), len(Xt))


@SETTINGS
@given(data(), settings_values, settings_values)
def test_functional_forms(xy, h, max_iter):
    Xs, Xt = xy
    outcome(info_ot, Xs, Xt, h=h, max_iter=max_iter)
    outcome(fused_info_ot, Xs, Xt, h=0.5, max_iter=max_iter)


@SETTINGS
@given(data(), settings_values, settings_values)
def test_kernels_mi_projections(xy, h, delta):
    Xs, _Xt = xy
    C = outcome(pairwise_euclidean, Xs, Xs)
    outcome(bandwidth, np.abs(np.asarray(Xs, dtype=float)) + 1.0, h)
    outcome(label_block_distances, Xs, np.arange(len(Xs)) % 2, delta)
    K = outcome(lambda: gaussian_kernels(pairwise_euclidean(Xs), pairwise_euclidean(Xs), h)[0])
    if C is not None and K is not None:
        n = len(Xs)
        P = np.full((n, n), 1.0 / n**2)
        assert outcome(density_ratio, P, K, K).shape == (n, n)
        outcome(kde_mutual_information, P, K, K)
        outcome(mi_gradient, P, K, K)
        outcome(barycentric_projection, P, np.asarray(Xs, dtype=float))
        outcome(conditional_projection, P, np.asarray(Xs, dtype=float))


@SETTINGS
@given(st.integers(2, 8), st.integers(2, 8), settings_values, settings_values,
       st.sampled_from([None, "nan", "inf", "neg"]))  # fmt: skip
def test_sinkhorn_solvers(n, m, reg, tol, bad):
    rng = np.random.default_rng(n * 10 + m)
    a, b, M = np.full(n, 1.0 / n), np.full(m, 1.0 / m), rng.random((n, m))
    if bad == "nan":
        M[0, 0] = np.nan
    elif bad == "inf":
        M[-1, -1] = np.inf
    elif bad == "neg":
        a = a.copy()
        a[0] = -a[0]
    for solver in (sinkhorn_scaling, sinkhorn_log, sinkhorn_warm):
        res = outcome(lambda s=solver: s(a, b, M, reg, max_iter=50, tol=tol).plan)
        assert res is None or res.shape == (n, m)


def test_bool_and_nan_settings_are_rejected_with_the_name():
    Xs, Xt = (
        np.random.default_rng(0).normal(size=(6, 2)),
        np.random.default_rng(1).normal(size=(5, 2)),
    )
    for name, value in [("h", True), ("reg", float("nan")), ("lam", np.float32("inf"))]:
        with pytest.raises((ValueError, TypeError), match=name):
            FusedInfoOT(**{name: value}).fit(Xs, Xt=Xt)
