"""Fuzzed contract of the core's public helpers: a correct result or a ValueError / TypeError
naming the argument, never NaN from finite input, never an obscure exception."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from papershelf.core.records import claim_test
from papershelf.core.validation import check_array, check_int, check_real

SETTINGS = settings(derandomize=True, max_examples=150, deadline=None)
anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.builds(np.float32, st.floats(width=32, allow_nan=True)),
    st.builds(np.int64, st.integers(-(2**62), 2**62)),
)


@SETTINGS
@given(value=anything, low=st.none() | st.floats(-10, 10), high=st.none() | st.floats(-10, 10))
def test_check_real_contract(value, low, high):
    try:
        out = check_real("alpha", value, low=low, high=high)
    except (TypeError, ValueError) as exc:
        assert "alpha" in str(exc)
        return
    assert isinstance(out, float) and math.isfinite(out)
    assert (low is None or out >= low) and (high is None or out <= high)


@SETTINGS
@given(value=anything)
def test_check_int_contract(value):
    try:
        out = check_int("n_iter", value, low=0)
    except (TypeError, ValueError) as exc:
        assert "n_iter" in str(exc)
        return
    assert type(out) is int and out >= 0


@SETTINGS
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=6),
    ndim=st.integers(1, 2),
)
def test_check_array_contract(values, ndim):
    x = np.asarray(values, dtype=np.float32)
    try:
        out = check_array("X", x, ndim=ndim)
    except (TypeError, ValueError) as exc:
        assert "X" in str(exc)
        return
    assert out.ndim == ndim and np.isfinite(out).all()


@SETTINGS
@given(
    a=st.lists(st.floats(-1e6, 1e6) | st.just(math.nan), min_size=0, max_size=8),
    shift=st.floats(-1e3, 1e3),
    direction=st.sampled_from(["greater", "less", "up"]),
)
def test_claim_test_contract(a, shift, direction):
    b = [x - shift for x in a]
    try:
        t = claim_test(a, b, direction=direction)
    except ValueError as exc:
        assert any(n in str(exc) for n in ("a and b", "a must", "direction"))
        return
    assert t.verdict in ("holds", "not shown", "contradicted") and t.n == len(a)
    assert not math.isnan(t.diff) and t.low <= t.diff <= t.high
    if t.n == 1:
        assert t.verdict == "not shown"
