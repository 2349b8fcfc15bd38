"""Fuzzed contract: every public function returns a finite, well-shaped result or raises a
ValueError / TypeError that names an argument. Never NaN from finite input, never an obscure
exception."""

from __future__ import annotations

import re

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from papershelf.debias_vl import Debiaser, calibrated_projection, gather_pairs, projection_matrix
from papershelf.debias_vl.projection import calibration_matrix, spurious_basis
from papershelf.debias_vl.zero_shot import group_accuracy, zero_shot_predict

SETTINGS = settings(
    derandomize=True, max_examples=40, deadline=None, suppress_health_check=list(HealthCheck)
)
NAMES = (
    "lam", "rtol", "spurious", "embeddings", "positive_pairs", "candidate_embeddings",
    "index_pairs", "image_embeddings", "text_embeddings", "predictions", "labels", "groups",
    "use_projection", "normalize", "low_rank", "dimension", "X", "pairs", "d=",
)  # fmt: skip

specials = st.sampled_from([0.0, np.nan, np.inf, -np.inf, 1e300, -1e-300])


@st.composite
def arrays(draw, shape):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).normal(size=shape).astype(dtype)
    if draw(st.booleans()) and x.size:
        flat = x.reshape(-1)
        with np.errstate(over="ignore"):  # 1e300 becomes inf in float32, as intended
            flat[draw(st.integers(0, flat.size - 1))] = draw(specials)
    if draw(st.booleans()):
        return torch.from_numpy(x)
    return x


def _ok_or_named_error(fn):
    try:
        out = fn()
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        assert any(n in msg for n in NAMES) or re.search(r"shape|NaN|inf|dtype", msg), msg
        return None
    return out


def _finite(out):
    arr = out.detach().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    assert np.isfinite(arr).all(), "non-finite output from accepted input"


lams = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([np.float32(3.0), np.int64(5), torch.tensor(2.0), True, "1", -1]),
)


@SETTINGS
@given(k=st.integers(0, 4), s=st.integers(0, 4), d=st.integers(1, 8), data=st.data(), lam=lams)
def test_projection_functions(k, s, d, data, lam):
    V = data.draw(arrays((k, d)))
    Z = data.draw(arrays((s, 2, d)))
    for fn in (
        lambda: projection_matrix(V),
        lambda: spurious_basis(V),
        lambda: calibration_matrix(Z),
        lambda: calibrated_projection(V, Z, lam=lam),
    ):
        out = _ok_or_named_error(fn)
        if out is not None:
            _finite(out)


@SETTINGS
@given(n=st.integers(0, 5), d=st.integers(1, 6), data=st.data())
def test_gather_pairs(n, d, data):
    Z = data.draw(arrays((n, d)))
    idx = data.draw(
        st.one_of(
            st.lists(st.tuples(st.integers(-1, 6), st.integers(-1, 6)), max_size=4),
            st.just([(0.0, 1.7)]),
            st.just([[0, 1, 2]]),
        )
    )
    out = _ok_or_named_error(lambda: gather_pairs(Z, idx))
    if out is not None:
        assert tuple(out.shape) == (len(idx), 2, d)
        _finite(out)


@SETTINGS
@given(d=st.integers(1, 6), n=st.integers(1, 5), data=st.data(), lam=lams)
def test_debiaser(d, n, data, lam):
    V = data.draw(arrays((2, d)))
    Z = data.draw(arrays((3, 2, d)))
    x = data.draw(arrays((n, data.draw(st.sampled_from([d, d + 1])))))
    deb = _ok_or_named_error(lambda: Debiaser(lam=lam).fit(V, Z))
    if deb is None:
        return
    out = _ok_or_named_error(lambda: deb.transform(x))
    if out is not None:
        assert tuple(out.shape) == (n, d)
        _finite(out)


@SETTINGS
@given(n=st.integers(0, 5), c=st.integers(0, 3), d=st.integers(1, 5), data=st.data())
def test_zero_shot(n, c, d, data):
    x = data.draw(arrays((n, d)))
    t = data.draw(arrays((c, data.draw(st.sampled_from([d, d + 1])))))
    pred = _ok_or_named_error(lambda: zero_shot_predict(x, t))
    if pred is not None:
        assert pred.shape == (n,) and ((pred >= 0) & (pred < max(c, 1))).all()
        labels = np.zeros(n, int)
        acc = _ok_or_named_error(lambda: group_accuracy(pred, labels, np.arange(n) % 2))
        if acc is not None:
            assert 0.0 <= acc["worst"] <= acc["avg"] <= 1.0
