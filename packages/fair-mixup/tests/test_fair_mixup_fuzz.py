"""Fuzzed contract and the issue-22 probes: finite, correctly shaped results or a
ValueError/TypeError naming an argument; never NaN from finite inputs."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from papershelf.fair_mixup import (
    demographic_parity_gap,
    dp_mixup_penalty,
    eo_mixup_penalty,
    equalized_odds_gap,
    gap_reg_penalty,
    manifold_mixup_penalty,
)
from papershelf.fair_mixup.metrics import average_precision
from papershelf.fair_mixup.penalties import mixup_path_penalty, sample_t
from papershelf.fair_mixup.training import AdultMLP, GroupBatchSampler, train

FUZZ = settings(
    derandomize=True,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ARGS = (
    r"\b(model|x0|x1|y0|y1|h0|h1|t|n_t|alpha|method|h|scores|a|y|threshold|reduce|lam|lr|"
    r"epochs|iters_per_epoch|batch_size|X|select|mode|in_features|hidden|n_t)\b"
)


def _check_error(err: Exception) -> None:
    assert isinstance(err, (ValueError, TypeError)), f"obscure {type(err).__name__}: {err}"
    assert re.search(ARGS, str(err)), f"message names no argument: {err}"


def _outcome(fn: Any, check: Any) -> None:
    try:
        out = fn()
    except (ValueError, TypeError) as err:
        _check_error(err)
    else:
        check(out)


def numbers_like(lo: float = -1.0, hi: float = 3.0) -> st.SearchStrategy[Any]:
    base = st.one_of(
        st.floats(lo, hi), st.sampled_from([0.0, float("nan"), float("inf"), 1e30, -1.0])
    )
    return st.one_of(
        base,
        base.map(np.float32),
        base.map(np.float64),
        base.map(torch.tensor),
        st.integers(-1, 4),
        st.integers(-1, 4).map(np.int64),
        st.booleans(),
    )


def ints_like() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-1, 4),
        st.integers(-1, 4).map(np.int64),
        st.integers(-1, 4).map(torch.tensor),
        st.sampled_from([2.0, True, float("nan")]),
    )


@st.composite
def batch(draw: Any, b: int | None = None, d: int = 3) -> torch.Tensor:
    b = b if b is not None else draw(st.integers(0, 6))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    vals = draw(st.lists(st.floats(-3, 3, width=32), min_size=b * d, max_size=b * d))
    x = torch.tensor(vals, dtype=dtype).reshape(b, d)
    if b and draw(st.integers(0, 5)) == 0:
        x[draw(st.integers(0, b - 1)), 0] = draw(st.sampled_from([np.nan, np.inf]))
    return x


def _model(dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1),
                               torch.nn.Sigmoid()).to(dtype)  # fmt: skip


def _finite_scalar(p: torch.Tensor) -> None:
    p = p.detach()
    assert p.shape == () and bool(torch.isfinite(p)) and float(p) >= 0


@FUZZ
@given(x0=batch(), x1=batch(), t=st.one_of(st.none(), numbers_like(-0.5, 1.5)),
       n_t=ints_like(), alpha=numbers_like(), method=st.sampled_from(["autograd", "jvp",
       "finite_difference", "exact"]), h=numbers_like(0, 0.1))  # fmt: skip
def test_path_penalties_contract(
    x0: torch.Tensor, x1: torch.Tensor, t: Any, n_t: Any, alpha: Any, method: str, h: Any
) -> None:
    f = _model(x0.dtype)
    x1 = x1.to(x0.dtype)
    gen = torch.Generator().manual_seed(0)
    for fn in (dp_mixup_penalty, manifold_mixup_penalty, mixup_path_penalty):
        _outcome(lambda fn=fn: fn(f, x0, x1, t=t, n_t=n_t, alpha=alpha, method=method,  # type: ignore[misc]
                                  generator=gen, h=h), _finite_scalar)  # fmt: skip
    _outcome(lambda: gap_reg_penalty(f, x0, x1), _finite_scalar)


@FUZZ
@given(x0=batch(), x1=batch(), labels=st.lists(st.integers(0, 2), min_size=12, max_size=12),
       n_t=ints_like())  # fmt: skip
def test_eo_penalty_contract(x0: torch.Tensor, x1: torch.Tensor, labels: list[int], n_t: Any
                             ) -> None:  # fmt: skip
    f = _model(x0.dtype)
    x1 = x1.to(x0.dtype)
    y0 = torch.tensor(labels[: x0.shape[0]], dtype=torch.long)
    y1 = torch.tensor(labels[6 : 6 + x1.shape[0]], dtype=torch.long)
    _outcome(lambda: eo_mixup_penalty(f, x0, y0, x1, y1, n_t=n_t,
                                      generator=torch.Generator().manual_seed(1)), _finite_scalar)  # fmt: skip
    _outcome(lambda: gap_reg_penalty(f, x0, x1, y0=y0, y1=y1), _finite_scalar)


@FUZZ
@given(scores=st.lists(st.one_of(st.floats(-0.5, 1.5), st.floats(0, 1), st.sampled_from(
       [float("nan"), float("inf")])), max_size=8),
       bits=st.lists(st.integers(0, 2), min_size=16, max_size=16),
       threshold=st.one_of(st.none(), numbers_like()), reduce=st.sampled_from(["sum", "max", "x"]),
       as_tensor=st.booleans())  # fmt: skip
def test_metrics_contract(scores: list[float], bits: list[int], threshold: Any, reduce: str,
                          as_tensor: bool) -> None:  # fmt: skip
    n = len(scores)
    s: Any = torch.tensor(scores, dtype=torch.float64) if as_tensor else np.asarray(scores)
    a, y = bits[:n], bits[8 : 8 + n]

    def check_gap(v: float) -> None:
        assert isinstance(v, float) and np.isfinite(v) and 0 <= v <= (2 if reduce == "sum" else 1)

    _outcome(lambda: demographic_parity_gap(s, a, threshold=threshold), check_gap)
    _outcome(lambda: equalized_odds_gap(s, y, a, threshold=threshold, reduce=reduce), check_gap)  # type: ignore[arg-type]
    _outcome(lambda: average_precision(y, s), lambda v: np.isfinite(v) and 0 <= v <= 1)


@settings(FUZZ, max_examples=10)
@given(lam=numbers_like(), lr=numbers_like(0, 0.1), epochs=ints_like(), batch_size=ints_like(),
       n_t=ints_like(), method=st.sampled_from(["erm", "gapreg", "mixup", "sgd"]))  # fmt: skip
def test_train_contract(lam: Any, lr: Any, epochs: Any, batch_size: Any, n_t: Any, method: str
                        ) -> None:  # fmt: skip
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    a = torch.arange(40) % 2
    y = (torch.arange(40) // 2) % 2
    model = AdultMLP(3, hidden=4, generator=torch.Generator().manual_seed(0))

    def check(res: Any) -> None:
        assert np.isfinite(res.selected["train_gap"])

    _outcome(lambda: train(model, x, y, a, method=method, mode="dp", lam=lam, lr=lr,  # type: ignore[arg-type]
                           epochs=epochs, iters_per_epoch=2, batch_size=batch_size, n_t=n_t,
                           select="last", generator=g, show_progress=False), check)  # fmt: skip


# ----------------------------------------------------------------------------- issue 22
def test_nan_inputs_are_a_clear_error_not_nan() -> None:
    f = _model(torch.float64)
    x0, x1 = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    bad = x0.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="x0 contains NaN or inf"):
        dp_mixup_penalty(f, bad, x1)
    with pytest.raises(ValueError, match="x1 contains NaN or inf"):
        gap_reg_penalty(f, x0, bad)
    nan_model = _model(torch.float64)
    with torch.no_grad():
        nan_model[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="model's path derivatives are NaN"):
        dp_mixup_penalty(nan_model, x0, x1)


def test_soft_gaps_refuse_logits() -> None:
    logits = np.array([2.3, 1.0, 0.4, -3.1])
    a = [0, 0, 1, 1]
    with pytest.raises(ValueError, match=r"scores must be probabilities in \[0, 1\].*sigmoid"):
        demographic_parity_gap(logits, a)
    with pytest.raises(ValueError, match="scores must be probabilities"):
        equalized_odds_gap(torch.tensor(logits), [0, 1, 0, 1], a)
    # hard predictions from logits are fine with a threshold
    assert demographic_parity_gap(logits, a, threshold=0.0) == 0.5
    assert demographic_parity_gap(logits, a, threshold=np.float32(0.0)) == 0.5


def test_numpy_and_tensor_scalars_as_settings() -> None:
    f = _model(torch.float64)
    x0, x1 = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    ref = dp_mixup_penalty(f, x0, x1, t=0.3, n_t=1, h=1e-3, method="finite_difference")
    got = dp_mixup_penalty(f, x0, x1, t=torch.tensor(0.3), n_t=np.int64(1), h=np.float32(1e-3),
                           method="finite_difference")  # fmt: skip
    assert torch.allclose(ref, got, rtol=1e-4)
    assert sample_t(np.int64(3), alpha=torch.tensor(1.0)).shape == (3,)
    assert GroupBatchSampler([0, 1] * 4, batch_size=np.int64(2)).batch_size == 2
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    a = torch.arange(40) % 2
    y = (torch.arange(40) // 2) % 2
    res = train(AdultMLP(np.int64(3), hidden=np.int32(4)), x, y, a, lam=np.float32(0.5),
                lr=torch.tensor(1e-3), epochs=np.int64(2), iters_per_epoch=torch.tensor(2),
                batch_size=np.int64(5), select="last", show_progress=False)  # fmt: skip
    assert res.selected_epoch == 2
    for bad, match in ((float("nan"), "lam must be a number, got NaN"),
                       (np.float64(np.inf), "lam must be finite")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            train(AdultMLP(3, hidden=4), x, y, a, lam=bad, select="last", batch_size=5)


def test_divergence_is_a_clear_error() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g) * 1e3
    a = torch.arange(40) % 2
    y = (torch.arange(40) // 2) % 2

    class Raw(torch.nn.Module):  # logits, not probabilities
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.lin(z)

    with pytest.raises(ValueError, match=r"model must return probabilities in \[0, 1\]"):
        train(Raw(), x, y, a, method="erm", epochs=1, iters_per_epoch=1, batch_size=5,
              select="last", show_progress=False)  # fmt: skip
