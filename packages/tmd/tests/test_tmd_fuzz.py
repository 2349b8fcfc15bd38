"""Fuzzed contract: every public entry point gives a finite, correctly shaped result or a
ValueError/TypeError whose message names an argument (never NaN, never an obscure error)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from papershelf.tmd import TreeDistanceTable, pairwise_tmd, pascal_weights, tmd
from papershelf.tmd.graphs import one_hot
from papershelf.tmd.kernel import TMDSVC, TreeMoversKernel, svm_split_accuracy

FUZZ = settings(
    derandomize=True, max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
ARGS = (
    r"\b(g1|g2|graphs|others|x|edge_index|w|depth|eps|neighbors|exact_float32|n_jobs|memoize|"
    r"rows|cols|num_classes|labels|gamma|gammas|C|n_splits|validation_fraction|metric|X|y|"
    r"dist|seed|random_state)\b|^Found array with \d+ (sample|feature)"
)  # sklearn's check_array


def _names_an_argument(err: Exception) -> None:
    assert isinstance(err, (ValueError, TypeError)), f"obscure {type(err).__name__}: {err}"
    assert re.search(ARGS, str(err)), f"message names no argument: {err}"


def _outcome(fn: Any, check: Any) -> None:
    try:
        out = fn()
    except (ValueError, TypeError) as err:
        _names_an_argument(err)
    else:
        check(out)


# a number a user might pass: Python, numpy scalars, 0-d tensors, and the bad ones
def numbers_like(lo: float = -2.0, hi: float = 3.0) -> st.SearchStrategy[Any]:
    base = st.one_of(st.floats(lo, hi), st.sampled_from([0.0, float("nan"), float("inf"),
                                                          -float("inf"), 1e300, -1.0]))  # fmt: skip
    return st.one_of(
        base,
        base.map(np.float32),
        base.map(np.float64),
        base.map(lambda v: torch.tensor(v)),
        st.integers(-2, 5),
        st.integers(-2, 5).map(np.int64),
        st.booleans(),
    )


def ints_like() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-1, 4),
        st.integers(-1, 4).map(np.int64),
        st.integers(-1, 4).map(lambda v: torch.tensor(v)),
        st.sampled_from([2.0, True, float("nan"), "3"]),
    )


@st.composite
def graph(draw: Any, d: int | None = None) -> tuple[Any, Any]:
    n = draw(st.integers(0, 6))
    d = d if d is not None else draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = draw(st.lists(st.floats(-3, 3, width=32), min_size=n * d, max_size=n * d))
    x = np.asarray(x, dtype=dtype).reshape(n, d)
    if n and draw(st.integers(0, 9)) == 0:  # NaN or inf somewhere
        x[draw(st.integers(0, n - 1)), 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    e = draw(st.integers(0, 8))
    hi = n if draw(st.integers(0, 9)) else n + 2  # sometimes out of range
    ei = np.asarray(draw(st.lists(st.integers(-1 if hi > n else 0, max(hi - 1, 0)),
                                  min_size=2 * e, max_size=2 * e)), dtype=np.int64)  # fmt: skip
    ei = ei.reshape(2, e)
    as_torch = draw(st.booleans())
    return (torch.as_tensor(x), torch.as_tensor(ei)) if as_torch else (x, ei)


def _finite_scalar(v: Any) -> None:
    assert isinstance(v, float) and np.isfinite(v) and v >= 0


@FUZZ
@given(g1=graph(), g2=graph(), w=numbers_like(), depth=ints_like(),
       exact=st.sampled_from([None, True, False, 1]))  # fmt: skip
def test_tmd_contract(g1: Any, g2: Any, w: Any, depth: Any, exact: Any) -> None:
    _outcome(lambda: tmd(g1, g2, w=w, depth=depth, exact_float32=exact), _finite_scalar)


@FUZZ
@given(gs=st.lists(graph(d=2), min_size=0, max_size=4), others=st.one_of(st.none(),
       st.lists(graph(d=2), max_size=3)), w=st.one_of(numbers_like(), st.lists(numbers_like(),
       min_size=1, max_size=3)), depth=ints_like(), n_jobs=st.sampled_from([None, 1, 0, -1, 1.5]),
       memoize=st.sampled_from([True, False, "auto", "yes", 1]))  # fmt: skip
def test_pairwise_contract(gs: Any, others: Any, w: Any, depth: Any, n_jobs: Any,
                           memoize: Any) -> None:  # fmt: skip
    def check(out: np.ndarray) -> None:
        assert out.shape == (len(gs), len(gs) if others is None else len(others))
        assert np.all(np.isfinite(out)) and np.all(out >= 0)

    _outcome(lambda: pairwise_tmd(gs, others, w=w, depth=depth, n_jobs=n_jobs,
                                  memoize=memoize), check)  # fmt: skip


@FUZZ
@given(gs=st.lists(graph(d=1), min_size=1, max_size=4), depth=ints_like(), w=numbers_like(),
       rows=st.one_of(st.none(), st.lists(st.integers(-5, 5), max_size=3), st.just([0.5]),
                      st.just(slice(0, 2)), st.just(3)))  # fmt: skip
def test_table_contract(gs: Any, depth: Any, w: Any, rows: Any) -> None:
    def check(table: TreeDistanceTable) -> None:
        def check_block(out: np.ndarray) -> None:
            assert out.shape[1] == len(gs) and np.all(np.isfinite(out))

        _outcome(lambda: table.pairwise(rows), check_block)

    _outcome(lambda: TreeDistanceTable(gs, w=w, depth=depth), check)


@FUZZ
@given(depth=ints_like(), eps=numbers_like())
def test_pascal_contract(depth: Any, eps: Any) -> None:
    def check(out: list[float]) -> None:
        assert len(out) == int(depth) - 1 and all(np.isfinite(v) and v > 0 for v in out)

    _outcome(lambda: pascal_weights(depth, eps=eps), check)


@FUZZ
@given(labels=st.lists(st.integers(-1, 4), max_size=5), k=ints_like())
def test_one_hot_contract(labels: list[int], k: Any) -> None:
    _outcome(lambda: one_hot(labels, k), lambda out: out.shape == (len(labels), int(k)))


@st.composite
def distance_matrix(draw: Any) -> np.ndarray:
    n = draw(st.integers(1, 12))
    m = draw(st.sampled_from([n, n, max(n - 1, 1)]))
    d = np.abs(np.asarray(draw(st.lists(st.floats(0, 10), min_size=n * m, max_size=n * m)))
               .reshape(n, m))  # fmt: skip
    if draw(st.integers(0, 5)) == 0:
        d[0, 0] = draw(st.sampled_from([np.nan, np.inf, -1.0]))
    return d


@settings(FUZZ, max_examples=12)
@given(d=distance_matrix(), gamma=numbers_like(), C=numbers_like(), n_splits=ints_like(),
       frac=numbers_like(-0.5, 1.5), seed=st.integers(0, 3))  # fmt: skip
def test_estimators_contract(d: np.ndarray, gamma: Any, C: Any, n_splits: Any, frac: Any,
                             seed: int) -> None:  # fmt: skip
    y = np.arange(d.shape[0]) % 2

    def check_svc(est: TMDSVC) -> None:
        pred = est.predict(d[:3])
        assert pred.shape == (min(3, d.shape[0]),) and set(pred) <= {0, 1}
        assert np.all(np.isfinite(est.decision_function(d[:3])))

    _outcome(lambda: TMDSVC(metric="precomputed", gammas=[gamma], C=C, n_splits=n_splits,
                            validation_fraction=frac, random_state=seed).fit(d, y), check_svc)  # fmt: skip

    def check_kernel(k: np.ndarray) -> None:
        assert k.shape == d.shape and np.all(np.isfinite(k)) and np.all((k >= 0) & (k <= 1))

    _outcome(lambda: TreeMoversKernel(gamma, metric="precomputed").fit_transform(d), check_kernel)
    _outcome(lambda: svm_split_accuracy(d, y, seed, C=C, n_splits=n_splits),
             lambda r: 0 <= r.accuracy <= 1)  # fmt: skip


@settings(FUZZ, max_examples=8)
@given(n=ints_like(), lo=ints_like(), hi=ints_like(), rings=ints_like(),
       probs=st.sampled_from([(0.5, 0.5), (1.0,), (0.7, 0.7), (np.nan, 1.0), (0.2, 0.3, 0.5)]))  # fmt: skip
def test_molecule_like_graphs_contract(n: Any, lo: Any, hi: Any, rings: Any, probs: Any) -> None:
    from papershelf.tmd import molecule_like_graphs

    def check(gs: list[Any]) -> None:
        assert len(gs) == int(n) and all(g.x.shape[1] == len(probs) for g in gs)

    def draw() -> list[Any]:
        return molecule_like_graphs(n, min_nodes=lo, max_nodes=hi, rings=rings,
                                    type_probs=probs, random_state=0)  # fmt: skip

    message = ""
    try:
        out = draw()
    except RuntimeError as err:  # an unbalanceable label for these sizes: said so
        message = f"runtime: {err}"
    except (ValueError, TypeError) as err:
        message = str(err)
    else:
        check(out)
    if message.startswith("runtime: "):
        assert "could not draw a balanced set" in message
    elif message:
        pattern = r"\b(n_graphs|min_nodes|max_nodes|rings|type_probs|max_degree)\b"
        assert re.search(pattern, message), message


def test_tmdsvc_predict_before_fit_is_not_fitted_error() -> None:
    """Issue 22: TMDSVC().predict before fit gave AttributeError: svc_."""
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        TMDSVC().predict([(np.ones((2, 1)), np.zeros((2, 0), dtype=np.int64))])
