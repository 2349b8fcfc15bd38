"""Fuzzed contract: every public function returns a finite, well-shaped result or raises a
ValueError/TypeError that names an argument."""

import math
import warnings

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from papershelf.kv_margin import (
    k_variance,
    kendall_tau,
    pgdl_cmi,
    wasserstein1,
)
from papershelf.kv_margin.margins import multiclass_margin
from papershelf.kv_margin.measure import kv_measure_from_arrays
from papershelf.kv_margin.metrics import granulated_kendall_tau

SETTINGS = settings(derandomize=True, max_examples=25, deadline=None)


def _expect(fn, names):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()
    except (ValueError, TypeError) as err:
        assert any(n in str(err) for n in names), f"unnamed error: {err!r}"
        return None


@st.composite
def cloud(draw, n_min=1):
    n = draw(st.integers(n_min, 6))
    d = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = np.asarray(
        draw(st.lists(st.floats(-5, 5), min_size=n * d, max_size=n * d)), dtype=dtype
    ).reshape(n, d)
    spot = draw(st.sampled_from([None, np.nan, np.inf]))
    if spot is not None:
        x[draw(st.integers(0, n - 1)), 0] = spot
    if draw(st.booleans()):
        return torch.from_numpy(x)
    return x


@SETTINGS
@given(x=cloud(), y=cloud(), method=st.sampled_from(["emd", "assignment", "sinkhorn", "exact"]),
       reg=st.sampled_from([None, 0.5, 0.0, -1.0, float("nan"), np.float32(0.2)]))  # fmt: skip
def test_wasserstein1_contract(x, y, method, reg):
    out = _expect(lambda: wasserstein1(x, y, method=method, reg=reg), ["x", "y", "method", "reg"])
    if out is not None:
        assert math.isfinite(out) and out >= -1e-9


@SETTINGS
@given(x=cloud(), m=st.sampled_from([None, 1, 2, 0, -1, 10, np.int64(1), True, 1.5]),
       n_splits=st.sampled_from([1, 2, 0, np.int32(2), False]),
       method=st.sampled_from(["emd", "assignment", "sinkhorn", "w2"]),
       reg=st.sampled_from([None, 0.3, 0.0, float("nan")]))  # fmt: skip
def test_k_variance_contract(x, m, n_splits, method, reg):
    out = _expect(
        lambda: k_variance(x, m=m, n_splits=n_splits, method=method, reg=reg, rng=0),
        ["features", "m", "n_splits", "method", "reg"],
    )
    if out is not None:
        assert math.isfinite(out) and out >= -1e-9


@SETTINGS
@given(x=cloud(), c=st.integers(1, 4), shift=st.sampled_from([0, -1, 3]),
       kind=st.sampled_from(["int", "float", "bool"]))  # fmt: skip
def test_multiclass_margin_contract(x, c, shift, kind):
    n = x.shape[0]
    logits = np.resize(np.asarray(x, dtype=np.float64), (n, c))
    labels = (np.arange(n) % max(c, 1)) + (shift if n > 1 else 0)
    labels = {"int": labels, "float": labels.astype(float), "bool": labels > 0}[kind]
    out = _expect(lambda: multiclass_margin(logits, labels), ["logits", "labels"])
    if out is not None:
        assert out.shape == (n,)
        if np.isfinite(logits).all():
            assert np.isfinite(out).all()


@SETTINGS
@given(
    n=st.integers(2, 8), variant=st.sampled_from(["kv", "gn", "x"]),
    quantile=st.sampled_from([0.5, 0.0, 1.0, 1.5, -0.1, float("nan"), np.float32(0.25)]),
    eps=st.sampled_from([1e-6, 0.0, -1.0, float("nan")]),
    spot=st.sampled_from([None, "margins", "grad_norms"]),
)  # fmt: skip
def test_kv_measure_from_arrays_contract(n, variant, quantile, eps, spot):
    rng = np.random.default_rng(n)
    feats = rng.normal(size=(2 * n, 3))
    labels = np.arange(2 * n) % 2
    rho = rng.normal(size=2 * n)
    gn = np.abs(rng.normal(size=2 * n))
    if spot == "margins":
        rho[0] = np.nan
    elif spot == "grad_norms":
        gn[0] = np.inf
    out = _expect(
        lambda: kv_measure_from_arrays(
            feats, labels, rho, gn, variant=variant, quantile=quantile, eps=eps, rng=0
        ),
        ["variant", "quantile", "eps", "margins", "grad_norms", "features"],
    )
    if out is not None:
        assert not math.isnan(out.score)
        assert out.normalized_margins.shape == (2 * n,)


@SETTINGS
@given(n=st.integers(0, 6), spot=st.sampled_from([None, np.nan, np.inf]),
       const=st.booleans())  # fmt: skip
def test_ranking_metrics_contract(n, spot, const):
    rng = np.random.default_rng(n)
    measure = np.zeros(n) if const else rng.normal(size=n)
    gap = rng.normal(size=n)
    if spot is not None and n:
        measure[0] = spot
    hp = {"width": np.arange(n) % 2, "lr": (np.arange(n) // 2) % 2}
    for fn, args in ((kendall_tau, (measure, gap)), (granulated_kendall_tau, (measure, gap, hp)),
                     (pgdl_cmi, (measure, gap, hp))):  # fmt: skip
        out = _expect(lambda fn=fn, args=args: fn(*args), ["measure", "gap", "hparams"])
        if out is not None:
            vals = out.values() if isinstance(out, dict) else [out]
            assert all(not math.isnan(float(v)) for v in vals), (fn.__name__, out)
