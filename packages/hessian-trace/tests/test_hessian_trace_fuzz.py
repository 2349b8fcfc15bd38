"""Fuzzed contract: every public function returns a finite, well-shaped result or raises a
ValueError/TypeError that names an argument."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from papershelf.hessian_trace import (
    HessianTrace,
    deep_linear_trace,
    gaussian_sensing,
    hessian_trace,
    hutchinson_trace,
)
from papershelf.hessian_trace.rip import rip_constant, theorem_factor

SETTINGS = settings(derandomize=True, max_examples=25, deadline=None)
ODD = [0, -1, 1, 2, 5, np.int64(3), torch.tensor(2), True, 1.5, float("nan"), None, "3"]


def _expect(fn, names):
    """Run fn: a finite result passes; ValueError/TypeError must name one of ``names``."""
    try:
        out = fn()
    except (ValueError, TypeError) as err:
        assert any(n in str(err) for n in names), f"unnamed error: {err!r}"
        return None
    return out


def _finite(t):
    if isinstance(t, torch.Tensor):
        return bool(torch.isfinite(t).all())
    return math.isfinite(float(t))


@st.composite
def params(draw):
    n = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    x = torch.tensor(draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n)), dtype=dtype)
    spot = draw(st.sampled_from([None, "nan", "inf"]))
    if spot:
        x[draw(st.integers(0, n - 1))] = float(spot)
    return x


@SETTINGS
@given(
    x=params(),
    num_probes=st.sampled_from(ODD),
    batch_size=st.sampled_from([None, 1, 3, 0, -2, True, 2.0, np.int32(2)]),
    dist=st.sampled_from(["rademacher", "gaussian", "uniform", 3]),
)
def test_hutchinson_contract(x, num_probes, batch_size, dist):
    out = _expect(
        lambda: hutchinson_trace(
            lambda p: (p**2).sum() + p.prod(),
            x,
            num_probes=num_probes,
            batch_size=batch_size,
            dist=dist,
        ),
        ["num_probes", "batch_size", "dist", "params"],
    )
    if out is not None:
        est, se = out
        assert est.shape == () and se.shape == () and _finite(est) and _finite(se)


@SETTINGS
@given(x=params(), method=st.sampled_from(["hutchinson", "exact", "lanczos", None]),
       n_probes=st.sampled_from(ODD))  # fmt: skip
def test_hessian_trace_contract(x, method, n_probes):
    out = _expect(
        lambda: hessian_trace(lambda p: (p**3).sum(), x, method=method, n_probes=n_probes),
        ["method", "n_probes", "num_probes", "params"],
    )
    if out is not None:
        assert all(_finite(t) and t.shape == () for t in out)


@SETTINGS
@given(
    d_in=st.sampled_from(ODD), d_out=st.sampled_from([1, 3, 0, np.int64(2)]),
    rank=st.sampled_from([1, 2, 0, 4, -1]), n=st.sampled_from([1, 4, 0, np.int16(3), 2.5]),
    seed=st.sampled_from([None, 0, 7, -1, np.int64(1), float("nan")]),
)  # fmt: skip
def test_gaussian_sensing_contract(d_in, d_out, rank, n, seed):
    p = _expect(
        lambda: gaussian_sensing(d_in, d_out, rank, n, seed=seed),
        ["d_in", "d_out", "rank", "n", "seed"],
    )
    if p is not None:
        assert p.A.shape == (int(n), int(d_out), int(d_in)) and p.b.shape == (int(n),)
        assert _finite(p.A) and _finite(p.b) and _finite(p.M_star)


@SETTINGS
@given(
    n=st.integers(1, 6), d=st.integers(1, 3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    spot=st.sampled_from([None, "nan", "inf"]),
    restarts=st.sampled_from([1, 4, 0, True, np.int64(2), 2.0]),
)  # fmt: skip
def test_rip_constant_contract(n, d, dtype, spot, restarts):
    a = torch.randn(n, d, d, generator=torch.Generator().manual_seed(n), dtype=dtype)
    if spot:
        a[0, 0, 0] = float(spot)
    est = _expect(lambda: rip_constant(a, restarts=restarts, iters=3), ["measurements", "restarts"])
    if est is not None:
        assert math.isfinite(est.delta) and est.lower <= est.upper


@SETTINGS
@given(delta=st.sampled_from([0.0, 0.3, 0.99, 1.0, 2.0, -0.1, float("nan"), np.float32(0.5)]),
       depth=st.sampled_from([2, 3, 1, 0, True, np.int64(4), 2.5]))  # fmt: skip
def test_theorem_factor_contract(delta, depth):
    out = _expect(lambda: theorem_factor(delta, depth), ["delta", "depth"])
    if out is not None:
        assert out >= 1.0  # +inf (vacuous) for delta >= 1


@SETTINGS
@given(
    d=st.integers(1, 3), depth=st.integers(1, 4), n=st.integers(0, 3),
    dtype=st.sampled_from([torch.float32, torch.float64]), spot=st.sampled_from([None, "nan"]),
)  # fmt: skip
def test_deep_linear_trace_contract(d, depth, n, dtype, spot):
    g = torch.Generator().manual_seed(d + depth)
    ws = [torch.randn(d, d, generator=g, dtype=dtype) for _ in range(depth)]
    a = torch.randn(n, d, d, generator=g, dtype=dtype)
    if spot:
        ws[0][0, 0] = float("nan")
    out = _expect(lambda: deep_linear_trace(ws, a), ["weights", "measurements", "depth", "A", "n"])
    if out is not None:
        assert out.shape == () and _finite(out)


@SETTINGS
@given(
    max_probes=st.sampled_from([1, 3, 0, np.int64(4), True, 2.5]),
    tol=st.sampled_from([0, 0.1, -1, float("nan"), np.float32(0.5), "x"]),
    min_probes=st.sampled_from([2, 1, 3, np.int8(2)]),
)
def test_dataset_trace_contract(max_probes, tol, min_probes):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    data = [(torch.randn(4, 2), torch.randn(4, 1))]
    with _nullcontext():
        est = _expect(
            lambda: HessianTrace(model, torch.nn.MSELoss(), data).trace(
                max_probes=max_probes, tol=tol, min_probes=min_probes
            ),
            ["max_probes", "tol", "min_probes"],
        )
    if est is not None:
        assert math.isfinite(est.trace) and math.isfinite(est.stderr)


class _nullcontext:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)
