"""Wasserstein-1 between point clouds and the k-variance of a distribution.

The k-variance (Chuang et al., 2021, Def. 1) of a distribution :math:`\\mu` at sample size
:math:`m` is the expected optimal-transport cost between two independent empirical measures,

.. math::

    \\mathrm{Var}_m(\\mu) = \\mathbb{E}_{S, S' \\sim \\mu^m}
        \\left[ W_1(\\hat\\mu_S, \\hat\\mu_{S'}) \\right],

estimated, as in the official code, from disjoint random halves of the available points.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, overload

import numpy as np

from papershelf.core.validation import check_bool, check_int, check_real

log = logging.getLogger(__name__)

__all__ = ["OTConvergenceWarning", "class_k_variance", "k_variance", "wasserstein1"]

Method = Literal["emd", "assignment", "sinkhorn"]
RNGLike = int | np.random.Generator | np.random.RandomState | None
_METHODS = ("emd", "assignment", "sinkhorn")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _as_points(x: Any, name: str, *, keep_float: bool = False) -> np.ndarray:
    """Flatten a (n, ...) array or tensor into a float64 (n, d) numpy array.

    ``keep_float`` keeps float32 data as it is: the k-variance only gathers rows from it, and
    the transport solver upcasts each gathered sample (the same values, without a float64 copy
    of every feature vector).
    """
    if _is_torch(x):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16; float32 is exact
            x = x.float()
        x = x.numpy()
    keep = keep_float and getattr(x, "dtype", None) in (np.float32, np.float64)
    try:
        arr = np.asarray(x) if keep else np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array or tensor of numbers, got {type(x)!r}") from err
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one point, got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _torch_points(t: Any, name: str) -> Any:
    """A (n, ...) tensor as a float64 (n, d) tensor on its device, n >= 1."""
    if t.ndim == 0 or t.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one point, got shape {tuple(t.shape)}")
    return t.reshape(t.shape[0], -1).double()


def _make_rng(rng: RNGLike) -> np.random.Generator | np.random.RandomState:
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be None, an int, a numpy Generator or RandomState, got {type(rng)!r}"
    )


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


_GRAM_MIN_DIM = 32  # below this the direct loop of cdist is as fast as a matrix product
_GRAM_RTOL = 1e-2  # Gram entries below this fraction of |x - c|^2 + |y - c|^2 are recomputed


def _euclidean_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Pairwise Euclidean distances (float64), exact to round-off.

    For high-dimensional points (CNN features: thousands of coordinates) the direct loop of
    ``cdist`` costs ``3 n m d`` scalar operations; the Gram form
    :math:`\lVert x - y \rVert^2 = \lVert x \rVert^2 + \lVert y \rVert^2 - 2 x^\top y` is one
    BLAS matrix product, about 10x faster at d = 8192. It loses precision by cancellation
    when a distance is small compared with the norms, so the points are first centred on their
    common mean (distances do not change) and every entry below ``_GRAM_RTOL`` of
    :math:`\lVert x - c \rVert^2 + \lVert y - c \rVert^2` (near duplicates) is recomputed
    directly; the rest has relative error about :math:`\sqrt{d}\,\epsilon / \mathrm{rtol}`
    (1e-12 at d = 8192).
    """
    from scipy.spatial.distance import cdist

    top = max(float(np.abs(x).max(initial=0.0)), float(np.abs(y).max(initial=0.0)))
    if top > 0.0 and not 1e-100 < top < 1e100:
        # squares would underflow to 0 or overflow: scale by a power of two (exact) first
        e = int(np.frexp(top)[1])
        with np.errstate(over="ignore"):
            return np.ldexp(_euclidean_cost(np.ldexp(x, -e), np.ldexp(y, -e)), e)
    if x.shape[1] < _GRAM_MIN_DIM:
        return cdist(x, y, metric="euclidean")
    c = (x.sum(0) + y.sum(0)) / (len(x) + len(y))
    xc, yc = x - c, y - c
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: the callers raise
        scale = np.einsum("ij,ij->i", xc, xc)[:, None] + np.einsum("ij,ij->i", yc, yc)[None, :]
        sq = scale - 2.0 * (xc @ yc.T)
    rows, cols = np.nonzero(sq < _GRAM_RTOL * scale)
    for i in np.unique(rows):
        js = cols[rows == i]
        diff = y[js] - x[i]  # uncentred, as cdist computes it
        sq[i, js] = np.einsum("ij,ij->i", diff, diff)
    return np.sqrt(np.maximum(sq, 0.0, out=sq), out=sq)


def _check_cost_finite(finite: bool) -> None:
    if not finite:
        raise ValueError(
            "the points are too large: their pairwise distances overflow float64 (inf); "
            "rescale x and y (or features): W1 is homogeneous, W1(c x, c y) = c W1(x, y)"
        )


_EMD_MIN_SCALE = 1e-6  # largest cost below which emd2 solves the rescaled problem


class OTConvergenceWarning(UserWarning):
    """A transport solver stopped at its iteration cap before optimality / its tolerance."""


_SINKHORN_STOP = (
    1e-6  # marginal error (POT default 1e-9: rarely reached at reg = 1% of the median cost)
)


def _sinkhorn_w1(x: Any, y: Any, reg: float | None, num_iter: int) -> tuple[float, dict[str, Any]]:
    import ot

    if _is_torch(x) or _is_torch(y):
        import torch

        xt = _torch_points(torch.as_tensor(x), "x")
        yt = _torch_points(torch.as_tensor(y, device=xt.device), "y")
        if xt.shape[1] != yt.shape[1]:
            raise ValueError(
                f"x and y must have the same feature dimension, got {xt.shape[1]} and {yt.shape[1]}"
            )
        if not bool(torch.isfinite(xt).all()) or not bool(torch.isfinite(yt).all()):
            raise ValueError("x and y must be finite (got NaN or inf)")
        cost: Any = torch.cdist(xt, yt)
        _check_cost_finite(bool(torch.isfinite(cost).all()))
        a: Any = torch.full((len(xt),), 1.0 / len(xt), dtype=xt.dtype, device=xt.device)
        b: Any = torch.full((len(yt),), 1.0 / len(yt), dtype=xt.dtype, device=xt.device)
        median = float(cost.median())
        mean = float(cost.mean())
    else:
        xa, ya = _as_points(x, "x"), _as_points(y, "y")
        if xa.shape[1] != ya.shape[1]:
            raise ValueError(
                f"x and y must have the same feature dimension, got {xa.shape[1]} and {ya.shape[1]}"
            )
        cost = _euclidean_cost(xa, ya)
        _check_cost_finite(bool(np.isfinite(cost).all()))
        a = np.full(len(xa), 1.0 / len(xa))
        b = np.full(len(ya), 1.0 / len(ya))
        median = float(np.median(cost))
        mean = float(np.mean(cost))
    if reg is None:
        # a zero median only says that most pairs coincide (duplicate points): fall back to
        # the mean cost, which is zero only when every point of x equals every point of y
        reg = 0.01 * (median if median > 0.0 else mean)
        if reg == 0.0:  # all costs are zero: W1 = 0 exactly
            return 0.0, {"converged": True, "n_iter": 0, "method": "sinkhorn"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT's own warning is replaced by ours, once per call
        val, info = ot.sinkhorn2(
            a, b, cost, reg, method="sinkhorn_log", numItermax=num_iter,
            stopThr=_SINKHORN_STOP, log=True,
        )  # fmt: skip
    value = float(val)
    if not math.isfinite(value):
        raise FloatingPointError(
            f"Sinkhorn returned a non-finite cost ({value}) at reg={reg:g}: raise reg or use "
            "method='emd'"
        )
    n_iter = int(info.get("niter", num_iter))
    errs = info.get("err") or []
    converged = n_iter < num_iter - 1 or bool(errs and float(errs[-1]) < _SINKHORN_STOP)
    return value, {"converged": converged, "n_iter": n_iter, "method": "sinkhorn"}


def _w1(
    x: Any, y: Any, method: Method, reg: float | None, num_iter: int
) -> tuple[float, dict[str, Any]]:
    """W1 and ``{"converged", "n_iter", "method"}``; no warning (the callers warn once)."""
    if method == "sinkhorn":
        return _sinkhorn_w1(x, y, reg, num_iter)
    xa, ya = _as_points(x, "x"), _as_points(y, "y")
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(
            f"x and y must have the same feature dimension, got {xa.shape[1]} and {ya.shape[1]}"
        )
    cost = _euclidean_cost(xa, ya)
    _check_cost_finite(bool(np.isfinite(cost).all()))
    if method == "assignment":
        if len(xa) != len(ya):
            raise ValueError(
                f"method='assignment' needs samples of equal size, got {len(xa)} and {len(ya)}"
            )
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(cost)
        return float(cost[rows, cols].mean()), {
            "converged": True, "n_iter": None, "method": "assignment",
        }  # fmt: skip
    import ot

    a = np.full(len(xa), 1.0 / len(xa))
    b = np.full(len(ya), 1.0 / len(ya))
    # the default iteration cap of emd2 is too small for m in the thousands
    cap = max(100_000, 50 * len(xa) * len(ya))
    # the network simplex compares reduced costs with absolute tolerances: costs far below 1
    # (features of scale 1e-10) gave values off by up to 60% (W1 is homogeneous: rescale)
    scale = float(cost.max())
    small = 0.0 < scale < _EMD_MIN_SCALE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        val, info = ot.emd2(a, b, cost / scale if small else cost, numItermax=cap, log=True)
    code = int(info.get("result_code", 1))
    if code in (0, 2):  # infeasible / unbounded: cannot happen for finite costs
        raise FloatingPointError(f"the exact transport solver failed: {info.get('warning')}")
    value = float(val) * scale if small else float(val)
    return value, {"converged": code == 1, "n_iter": None, "method": "emd"}


def _warn_unconverged(infos: Sequence[dict[str, Any]], where: str, num_iter: int) -> bool:
    """Warn once if any solve stopped at its cap; return whether all converged."""
    bad = [i for i in infos if not i["converged"]]
    if bad:
        how = (
            f"Sinkhorn reached num_iter={num_iter} before a marginal error of {_SINKHORN_STOP:g}"
            if bad[0]["method"] == "sinkhorn"
            else "the network simplex reached its iteration cap before optimality"
        )
        warnings.warn(
            f"{where}: {len(bad)} of {len(infos)} transport problem(s) did not converge ({how}); "
            "the value is approximate",
            OTConvergenceWarning,
            stacklevel=3,
        )
    return not bad


def _check_solver(method: Any, reg: Any, num_iter: Any) -> tuple[float | None, int]:
    _check_method(method)
    if reg is not None:
        if method != "sinkhorn":
            raise ValueError(f"reg is only used by method='sinkhorn', got method={method!r}")
        reg = check_real("reg", reg, low=0.0, inclusive=(False, True))
    return reg, check_int("num_iter", num_iter, low=1)


def wasserstein1(
    x: Any,
    y: Any,
    *,
    method: Method = "emd",
    reg: float | None = None,
    num_iter: int = 1000,
    log: bool = False,
) -> Any:
    r"""Wasserstein-1 distance between two uniform point clouds with Euclidean cost.

    .. math::

        W_1(\hat\mu_x, \hat\mu_y) = \min_{P \in U(a, b)} \sum_{ij} P_{ij} \lVert x_i - y_j \rVert_2,
        \qquad a = \tfrac{1}{n}\mathbf 1_n,\ b = \tfrac{1}{m}\mathbf 1_m.

    Parameters
    ----------
    x : array-like or Tensor, shape (n, ...)
        First sample; trailing dimensions are flattened.
    y : array-like or Tensor, shape (m, ...)
        Second sample, same flattened dimension as ``x``.
    method : {"emd", "assignment", "sinkhorn"}
        ``"emd"``: exact network simplex (POT ``emd2``, as the official code).
        ``"assignment"``: exact Hungarian algorithm (``scipy.optimize.linear_sum_assignment``);
        needs ``n == m`` (a uniform coupling of equal sizes has a permutation optimum).
        ``"sinkhorn"``: entropic approximation (POT ``sinkhorn2``, log-domain); torch inputs stay
        on their device, which is the only case where it pays off (GPU, large m). It is biased
        upwards by a few percent at ``reg`` = 1% of the median cost.
    reg : float, optional
        Entropic regularisation for ``"sinkhorn"``, ``> 0``; default 1% of the median pairwise
        cost. NaN, zero, negative or infinite values are a ``ValueError``; ``reg`` with another
        method is a ``ValueError`` too (it would be ignored).
    num_iter : int
        Sinkhorn iteration cap.
    log : bool
        Also return ``{"converged": bool, "n_iter": int | None, "method": str}``.

    Returns
    -------
    float, or (float, dict) with ``log=True``
        The transport cost. A solver that stops at its cap (Sinkhorn above its marginal
        tolerance 1e-9, the network simplex before optimality) issues one
        :class:`OTConvergenceWarning`; a non-finite Sinkhorn cost raises
        ``FloatingPointError``.

    References
    ----------
    Chuang et al., "Measuring Generalization with Optimal Transport", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> wasserstein1(np.zeros((3, 2)), np.ones((3, 2)))  # every point moves by sqrt(2)
    1.4142135623730951
    """
    reg, num_iter = _check_solver(method, reg, num_iter)
    check_bool("log", log)
    value, info = _w1(x, y, method, reg, num_iter)
    _warn_unconverged([info], "wasserstein1", num_iter)
    return (value, info) if log else value


def _split_pairs(
    n: int, m: int, n_splits: int, rng: np.random.Generator | np.random.RandomState
) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for _ in range(n_splits):
        perm = rng.permutation(n)
        pairs.append((perm[:m], perm[m : 2 * m]))
    return pairs


def _check_m(m: int | None, n: int, what: str) -> int:
    if m is None:
        if n < 2:
            raise ValueError(f"{what} has {n} point(s); the k-variance needs at least 2")
        return n // 2
    m = check_int("m", m, low=1)
    if 2 * m > n:
        raise ValueError(f"{what} has {n} points, fewer than 2m = {2 * m} (m must be <= n // 2)")
    return int(m)


def _check_splits(n_splits: Any) -> int:
    return check_int("n_splits", n_splits, low=1)


def _run(
    jobs: Sequence[tuple[Any, Any]], method: Method, n_jobs: int, reg: float | None, num_iter: int
) -> tuple[list[float], list[dict[str, Any]]]:
    def one(ab: tuple[Any, Any]) -> tuple[float, dict[str, Any]]:
        return _w1(ab[0], ab[1], method, reg, num_iter)

    if n_jobs == 1 or len(jobs) <= 1:
        out = [one(ab) for ab in jobs]
    else:
        # POT's network simplex releases the GIL, so threads give real parallelism here
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            out = list(pool.map(one, jobs))
    return [v for v, _ in out], [i for _, i in out]


@overload
def k_variance(
    features: Any,
    *,
    labels: None = None,
    m: int | None = None,
    n_splits: int = 1,
    rng: RNGLike = None,
    method: Method = "emd",
    n_jobs: int = 1,
    reg: float | None = None,
    num_iter: int = 1000,
) -> float: ...


@overload
def k_variance(
    features: Any,
    *,
    labels: Any,
    m: int | None = None,
    n_splits: int = 1,
    rng: RNGLike = None,
    method: Method = "emd",
    n_jobs: int = 1,
    reg: float | None = None,
    num_iter: int = 1000,
) -> np.ndarray: ...


def k_variance(
    features: Any,
    *,
    labels: Any = None,
    m: int | None = None,
    n_splits: int = 1,
    rng: RNGLike = None,
    method: Method = "emd",
    n_jobs: int = 1,
    reg: float | None = None,
    num_iter: int = 1000,
) -> float | np.ndarray:
    r"""k-variance of the distribution behind ``features``, from disjoint random halves.

    .. math::

        \widehat{\mathrm{Var}}_m = \frac{1}{K} \sum_{s=1}^{K}
            W_1\big(\hat\mu_{S_s}, \hat\mu_{S'_s}\big),

    where for every split :math:`s` the points are permuted and :math:`S_s, S'_s` are the
    first and the next :math:`m` of them (``K = n_splits``; the official code uses one split
    and ``m = n // 2``).

    Parameters
    ----------
    features : array-like or Tensor, shape (n, ...)
        Samples of the distribution; trailing dimensions are flattened.
    labels : array-like of int, shape (n,), optional
        When given, the k-variance of every class (see :func:`class_k_variance`).
    m : int, optional
        Size of each of the two samples; default ``n // 2``. Needs ``2 * m <= n``.
    n_splits : int
        Number of random splits averaged.
    rng : int, numpy Generator or RandomState, optional
        Source of the permutations. A ``RandomState`` seeded like the official code
        (``np.random.seed(0)``) reproduces its splits.
    method : {"emd", "assignment", "sinkhorn"}
        Solver for each :func:`wasserstein1`.
    n_jobs : int
        Threads for the splits (the exact solver releases the GIL).
    reg : float, optional
        Sinkhorn regularisation (``method="sinkhorn"`` only), ``> 0``.
    num_iter : int
        Sinkhorn iteration cap; one :class:`OTConvergenceWarning` per call if any split stops
        at it.

    Returns
    -------
    float or ndarray, shape (C,)
        The estimated k-variance (0 for a point mass; translation invariant; scales linearly);
        per class when ``labels`` is given.

    References
    ----------
    Chuang et al., "Measuring Generalization with Optimal Transport", NeurIPS 2021, Def. 1.

    Examples
    --------
    >>> import numpy as np
    >>> k_variance(np.ones((10, 3)), rng=0)
    0.0
    """
    if labels is not None:
        return class_k_variance(
            features, labels, m=m, n_splits=n_splits, rng=rng, method=method, n_jobs=n_jobs,
            reg=reg, num_iter=num_iter,
        )  # fmt: skip
    reg, num_iter = _check_solver(method, reg, num_iter)
    n_splits = _check_splits(n_splits)
    n_jobs = check_int("n_jobs", n_jobs, low=1)
    x = (
        _torch_points(features, "features")
        if (method == "sinkhorn" and _is_torch(features))
        else _as_points(features, "features", keep_float=True)
    )
    m_ = _check_m(m, len(x), "features")
    gen = _make_rng(rng)
    pairs = _split_pairs(len(x), m_, n_splits, gen)
    vals, infos = _run([(x[i], x[j]) for i, j in pairs], method, n_jobs, reg, num_iter)
    _warn_unconverged(infos, "k_variance", num_iter)
    return float(np.mean(vals))


def class_k_variance(
    features: Any,
    labels: Any,
    *,
    n_classes: int | None = None,
    m: int | None = None,
    n_splits: int = 1,
    rng: RNGLike = None,
    method: Method = "emd",
    n_jobs: int = 1,
    reg: float | None = None,
    num_iter: int = 1000,
    skip_empty: bool = False,
    log: bool = False,
) -> Any:
    r"""k-variance of every class-conditional feature distribution.

    For class :math:`c` with :math:`n_c` points, :math:`\widehat{\mathrm{Var}}_{m_c}(\phi\#\mu_c)`
    with :math:`m_c = \lfloor n_c / 2 \rfloor` by default. Classes are visited in order and
    each draws its ``n_splits`` permutations in turn, so a ``RandomState`` that has made the
    official subsample draw continues exactly as the official code does.

    Parameters
    ----------
    features : array-like or Tensor, shape (n, ...)
        Feature vectors.
    labels : array-like of int, shape (n,)
        Class of each row, in ``[0, n_classes)``.
    n_classes : int, optional
        Number of classes; default ``labels.max() + 1``.
    m : int, optional
        Sample size for every class; default ``n_c // 2`` per class. A class with fewer than
        ``2 * m`` points is an error.
    n_splits, rng, method, n_jobs, reg, num_iter
        As in :func:`k_variance`; all (class, split) transport problems run in one thread pool.
    skip_empty : bool
        Return NaN for classes with no point instead of raising.
    log : bool
        Also return ``{"converged": bool, "n_problems": int}`` for the transport solves.

    Returns
    -------
    ndarray, shape (n_classes,), or (ndarray, dict) with ``log=True``
        Per-class k-variance.
    """
    reg, num_iter = _check_solver(method, reg, num_iter)
    n_splits = _check_splits(n_splits)
    n_jobs = check_int("n_jobs", n_jobs, low=1)
    check_bool("skip_empty", skip_empty)
    check_bool("log", log)
    x = (
        _torch_points(features, "features")
        if (method == "sinkhorn" and _is_torch(features))
        else _as_points(features, "features", keep_float=True)
    )
    y = _as_labels(labels, len(x), n_classes)
    C = int(y.max()) + 1 if n_classes is None else int(n_classes)
    gen = _make_rng(rng)
    jobs: list[tuple[Any, Any]] = []
    owner: list[int] = []
    out = np.full(C, np.nan)
    for c in range(C):
        idx = np.flatnonzero(y == c)
        if len(idx) == 0 and skip_empty:
            continue
        m_c = _check_m(m, len(idx), f"class {c}")
        for _ in range(n_splits):
            perm = gen.permutation(idx)
            jobs.append((x[perm[:m_c]], x[perm[m_c : 2 * m_c]]))
            owner.append(c)
    vals, infos = _run(jobs, method, n_jobs, reg, num_iter)
    converged = _warn_unconverged(infos, "class_k_variance", num_iter)
    sums = np.zeros(C)
    np.add.at(sums, np.asarray(owner, dtype=int), vals)
    present = np.unique(owner)
    out[present] = sums[present] / n_splits
    return (out, {"converged": converged, "n_problems": len(infos)}) if log else out


def _as_labels(labels: Any, n: int, n_classes: int | None) -> np.ndarray:
    if _is_torch(labels):
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    if n_classes is not None:
        n_classes = check_int("n_classes", n_classes, low=1)
    if len(y) and (y.min() < 0 or (n_classes is not None and y.max() >= n_classes)):
        hi = n_classes if n_classes is not None else "inf"
        raise ValueError(f"labels must lie in [0, {hi}), got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int64)
