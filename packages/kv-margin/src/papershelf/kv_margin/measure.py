r"""The k-variance normalized margins kV-Margin and kV-GN-Margin (Chuang et al., NeurIPS 2021).

kV-Margin normalizes every training margin by the k-variance term of the margin bound,

.. math::

    \tilde\rho_i = \frac{\rho_f(x_i, y_i)}{\sum_c p_c\, \widehat{\mathrm{Lip}}_c\,
        \widehat{\mathrm{Var}}_{m_c}(\phi\#\mu_c)},

kV-GN-Margin first divides each margin by its own gradient norm,

.. math::

    \tilde\rho_i = \frac{\rho_f(x_i, y_i) / (\lVert \nabla_\phi (f_{y_i} - f_{y'_i})(x_i) \rVert
        + \epsilon)}{\sum_c p_c\, \widehat{\mathrm{Var}}_{m_c}(\phi\#\mu_c)},

and the generalization measure is :math:`-\mathrm{quantile}_q(\tilde\rho)` (median by default):
larger means a larger predicted generalization gap, as in the PGDL submissions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

import numpy as np
import torch
from torch import Tensor, nn

from papershelf.core.validation import check_choice, check_int, check_real
from papershelf.kv_margin.kvariance import Method, _as_labels, class_k_variance
from papershelf.kv_margin.margins import Hook, _per_class_max, margins

log = logging.getLogger(__name__)

__all__ = [
    "GNOptions",
    "KVMarginResult",
    "KVOptions",
    "kv_gn_margin",
    "kv_margin",
    "kv_measure_from_arrays",
    "kv_measures",
]

Variant = Literal["kv", "gn"]
OFFICIAL_CHUNK = 200  # the official code's margin chunk size and per-class subsample budget


@dataclass
class KVMarginResult:
    """A k-variance normalized margin distribution and its scalar generalization measure.

    Attributes
    ----------
    score : float
        :math:`-\\mathrm{quantile}_q` of the normalized margins; larger predicts a larger gap.
    normalized_margins : ndarray, shape (n_used,)
        The paper's normalized margin distribution.
    margins : ndarray, shape (n_used,)
        Raw margins :math:`f_y - \\max_{y' \\ne y} f_{y'}`.
    grad_norms : ndarray, shape (n_used,)
        :math:`\\lVert \\nabla_\\phi (f_y - f_{y'}) \\rVert_2` per sample.
    k_variance : ndarray, shape (C,)
        Per-class k-variance of the features (NaN for classes with zero weight).
    lipschitz : ndarray, shape (C,)
        Per-class max gradient norm (used by ``"kv"`` only).
    class_weights : ndarray, shape (C,)
        :math:`p_c`.
    normalizer : float
        :math:`\\sum_c p_c \\mathrm{Lip}_c \\mathrm{Var}_c` (``"kv"``) or
        :math:`\\sum_c p_c \\mathrm{Var}_c` (``"gn"``).
    variant : str
        ``"kv"`` or ``"gn"``.
    indices : ndarray of int or None
        Rows of ``x`` used (the subsample), ``None`` when all rows were used in order.
    """

    score: float
    normalized_margins: np.ndarray
    margins: np.ndarray
    grad_norms: np.ndarray
    k_variance: np.ndarray
    lipschitz: np.ndarray
    class_weights: np.ndarray
    normalizer: float
    variant: str
    indices: np.ndarray | None = None


def _np(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def kv_measure_from_arrays(
    features: Any,
    labels: Any,
    margins: Any,
    grad_norms: Any,
    *,
    variant: Variant = "kv",
    class_weights: Any = None,
    n_classes: int | None = None,
    quantile: float = 0.5,
    eps: float = 1e-6,
    m: int | None = None,
    n_splits: int = 1,
    rng: Any = None,
    method: Method = "emd",
    n_jobs: int = 1,
    margin_rows: Any = None,
    k_variances: Any = None,
) -> KVMarginResult:
    r"""kV-Margin or kV-GN-Margin from precomputed features, margins and gradient norms.

    Parameters
    ----------
    features : array-like or Tensor, shape (n, D)
        :math:`\phi(x_i)`.
    labels : array-like of int, shape (n,)
        Labels in ``[0, C)``.
    margins : array-like, shape (n,)
        :math:`\rho_f(x_i, y_i)`.
    grad_norms : array-like, shape (n,)
        :math:`\lVert \nabla_\phi (f_{y_i} - f_{y'_i})(x_i) \rVert_2`.
    variant : {"kv", "gn"}
        kV-Margin or kV-GN-Margin.
    class_weights : array-like, shape (C,), optional
        :math:`p_c`; default: the label frequencies of ``labels``.
    n_classes : int, optional
        C; default ``len(class_weights)`` or ``labels.max() + 1``.
    quantile : float
        Quantile of the normalized margins (the official code: the median).
    eps : float
        Added to the gradient norm in ``"gn"``.
    m, n_splits, rng, method, n_jobs
        k-variance estimation, see :func:`~papershelf.kv_margin.class_k_variance`.
    margin_rows : array-like of int, optional
        Rows whose margins enter the quantile (default: all); the official code drops the
        remainder of its 200-sample chunks.
    k_variances : array-like, shape (C,), optional
        Precomputed per-class k-variances (then ``features`` is not used and may be ``None``).

    Returns
    -------
    KVMarginResult

    References
    ----------
    Chuang et al., "Measuring Generalization with Optimal Transport", NeurIPS 2021.
    """
    check_choice("variant", variant, ("kv", "gn"))
    quantile = check_real("quantile", quantile, low=0.0, high=1.0)
    eps = check_real("eps", eps, low=0.0)
    rho, gn = _np(margins), _np(grad_norms)
    n = len(rho)
    if rho.shape != (n,) or gn.shape != (n,):
        raise ValueError(
            f"margins and grad_norms must have shape (n,), got {rho.shape} and {gn.shape}"
        )
    if not np.isfinite(rho).all():
        raise ValueError("margins must be finite (got NaN or inf)")
    if not np.isfinite(gn).all() or (gn < 0).any():
        raise ValueError("grad_norms must be finite and >= 0")
    if class_weights is not None:
        w = _np(class_weights)
        if w.ndim != 1 or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("class_weights must be a 1-D array of non-negative finite weights")
        if n_classes is not None and len(w) != n_classes:
            raise ValueError(f"class_weights has {len(w)} entries, n_classes is {n_classes}")
        n_classes = len(w)
    y = _as_labels(labels, n, n_classes)
    C = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if class_weights is None:
        w = np.bincount(y, minlength=C) / n
    if k_variances is not None:
        kvar = _np(k_variances)
        if kvar.shape != (C,):
            raise ValueError(f"k_variances must have shape ({C},), got {kvar.shape}")
        if np.any(kvar < 0) or np.isinf(kvar).any():
            raise ValueError("k_variances must be finite and >= 0 (NaN for unused classes)")
    else:
        kvar = class_k_variance(
            features,
            y,
            n_classes=C,
            m=m,
            n_splits=n_splits,
            rng=rng,
            method=method,
            n_jobs=n_jobs,
            skip_empty=True,
        )
    used = w > 0
    missing = used & np.isnan(kvar)
    if missing.any():
        raise ValueError(
            f"classes {np.flatnonzero(missing).tolist()} have a positive weight but no samples"
        )
    lip = _per_class_max(gn, y, C)
    if variant == "kv":
        normalizer = float(np.sum(w[used] * lip[used] * kvar[used]))
        unnormalized = rho
    else:
        normalizer = float(np.sum(w[used] * kvar[used]))
        unnormalized = rho / (gn + eps)
    if margin_rows is not None:
        rows = np.asarray(margin_rows)
        if rows.size == 0:
            raise ValueError("margin_rows selects no row")
        if rows.dtype == bool:
            if rows.shape != (n,):
                raise ValueError(f"margin_rows as a mask must have shape ({n},), got {rows.shape}")
        elif rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise TypeError("margin_rows must be a 1-D array of row indices or a boolean mask")
        elif rows.size and (rows.min() < -n or rows.max() >= n):
            raise ValueError(f"margin_rows holds row indices outside [-{n}, {n})")
        unnormalized = unnormalized[rows]
        if unnormalized.size == 0:  # an all-False mask
            raise ValueError("margin_rows selects no row")
    q = float(np.quantile(unnormalized, quantile))
    if not np.isfinite(normalizer):
        raise FloatingPointError(
            f"the k-variance normalizer overflows ({normalizer}): features or gradient norms "
            "beyond float64's range"
        )
    if normalizer == 0.0:
        # the limit normalizer -> 0+: a positive margin quantile gives -inf, a non-positive one
        # (a zero head: all margins 0) +inf, the worst predicted generalization; never 0/0
        what = (
            "zero Lipschitz estimate (a constant head)" if variant == "kv" else "collapsed features"
        )
        score = float("-inf") if q > 0 else float("inf")
        normalized = np.where(unnormalized > 0, np.inf, -np.inf)
        log.warning(
            "k-variance normalizer is 0 (%s): the measure is %s", what, "+inf" if q <= 0 else "-inf"
        )
    else:
        # the quantile commutes with the positive normalizer (divided last, as officially)
        normalized = unnormalized / np.float64(normalizer)
        score = -q / normalizer + 0.0  # no negative zero
    return KVMarginResult(
        score=score,
        normalized_margins=normalized,
        margins=rho,
        grad_norms=gn,
        k_variance=kvar,
        lipschitz=lip,
        class_weights=w,
        normalizer=normalizer,
        variant=variant,
    )


class KVOptions(TypedDict, total=False):
    """Keyword options of :func:`kv_margin` (documented there; defaults in ``_measure``)."""

    hook: Hook
    subsample: int | None
    official: bool
    seed: int | np.random.Generator | np.random.RandomState | None
    class_weights: Any
    quantile: float
    m: int | None
    n_splits: int
    method: Method
    n_jobs: int
    batch_size: int | None


class GNOptions(KVOptions, total=False):
    """Keyword options of :func:`kv_gn_margin` and :func:`kv_measures`: those of kV-Margin
    and ``eps``."""

    eps: float


def _measure(
    variants: tuple[Variant, ...],
    model: nn.Module,
    x: Tensor,
    y: Any,
    feature_layer: str | nn.Module,
    *,
    hook: Hook = "input",
    subsample: int | None = None,
    official: bool = False,
    seed: int | np.random.Generator | np.random.RandomState | None = 0,
    class_weights: Any = None,
    quantile: float = 0.5,
    eps: float = 1e-6,
    m: int | None = None,
    n_splits: int = 1,
    method: Method = "emd",
    n_jobs: int = 1,
    batch_size: int | None = None,
) -> dict[str, KVMarginResult]:
    """The one code path of all three measure functions: one forward + backward, the class
    k-variances once, then each requested variant from the same arrays."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x)!r}")
    y_np = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
    y_np = _as_labels(y_np, x.shape[0], None)
    N = len(y_np)
    # an int seed becomes a legacy RandomState so that seed=0 replays np.random.seed(0)
    if seed is None:  # fresh randomness (a Generator draws the subsample and the splits)
        seed = np.random.default_rng()
    elif isinstance(seed, (bool, np.bool_)) or not isinstance(
        seed, (int, np.integer, np.random.Generator, np.random.RandomState)
    ):
        raise TypeError(
            f"seed must be an int, a numpy Generator or RandomState, got {type(seed).__name__}"
        )
    rng = np.random.RandomState(seed) if isinstance(seed, (int, np.integer)) else seed
    user_weights = class_weights is not None
    if class_weights is None:
        class_weights = np.bincount(y_np) / N  # p_c over the full training set, as officially
    if official and subsample is None:
        subsample = OFFICIAL_CHUNK * (int(y_np.max()) + 1)
    idx = None
    if subsample is not None:
        subsample = check_int("subsample", subsample, low=1)
        idx = rng.choice(np.arange(N), min(N, subsample), replace=False)
        x = x[torch.as_tensor(idx, device=x.device)]
        y_np = y_np[idx]
    out = margins(
        model,
        x,
        torch.as_tensor(y_np, device=x.device),
        feature_layer,
        hook=hook,
        grad=True,
        batch_size=batch_size,
    )
    assert out.grad_norms is not None
    rows = None
    if official and len(y_np) >= OFFICIAL_CHUNK:
        rows = np.arange(len(y_np) // OFFICIAL_CHUNK * OFFICIAL_CHUNK)
    cw = _np(class_weights)
    if user_weights and cw.shape != (out.logits.shape[1],):
        raise ValueError(
            f"class_weights must have shape ({out.logits.shape[1]},), one weight per logit, "
            f"got {cw.shape}"
        )
    n_classes = max(out.logits.shape[1], len(np.atleast_1d(class_weights)))
    w = np.zeros(n_classes)
    w[: len(cw)] = cw
    feats = out.features if method == "sinkhorn" else out.features.cpu()
    kvar = class_k_variance(
        feats,
        y_np,
        n_classes=n_classes,
        m=m,
        n_splits=n_splits,
        rng=rng,
        method=method,
        n_jobs=n_jobs,
        skip_empty=True,
    )
    results: dict[str, KVMarginResult] = {}
    for variant in variants:
        res = kv_measure_from_arrays(
            None,
            y_np,
            out.margins,
            out.grad_norms,
            variant=variant,
            class_weights=w,
            quantile=quantile,
            eps=eps,
            margin_rows=rows,
            k_variances=kvar,
        )
        res.indices = idx
        results[variant] = res
    return results


_DOC_COMMON = """
    Parameters
    ----------
    model : nn.Module
        Any torch classifier ``x -> logits (n, C)``; evaluated in eval mode.
    x : Tensor, shape (n, ...)
        Training inputs, on the model's device.
    y : array-like or Tensor of int, shape (n,)
        Training labels in ``[0, C)``.
    feature_layer : str or nn.Module
        Module path (``model.get_submodule``) of the layer whose input (``hook="input"``, the
        official choice) or output is :math:`\\phi`.
    hook : {"input", "output"}
        Which side of ``feature_layer`` is the feature.
    subsample : int, optional
        Draw this many rows without replacement first (official: ``200 * C``); default: all rows.
    official : bool
        Official parity mode: ``subsample = 200 * (max(y) + 1)`` unless given, and the median
        over the first ``200 * floor(n / 200)`` subsample rows only (the official chunk loop drops
        the remainder; with fewer than 200 rows, where the official code fails, all are used).
    seed : int, numpy Generator or RandomState, or None
        Randomness for the subsample and the k-variance splits. An int seeds a legacy
        ``RandomState``, so ``seed=0`` replays the official ``np.random.seed(0)`` draws;
        ``None`` draws fresh randomness.
    class_weights : array-like, shape (C,), optional
        :math:`p_c`; default: label frequencies over all of ``y`` (before subsampling).
    quantile : float
        Quantile of the normalized margins (0.5: the official median).
    m : int, optional
        k-variance sample size per class; default ``n_c // 2`` (official).
    n_splits : int
        Random splits averaged per class (official: 1).
    method : {"emd", "assignment", "sinkhorn"}
        Transport solver (official: exact EMD).
    n_jobs : int
        Threads for the transport problems.
    batch_size : int, optional
        Forward/backward batch size.

    Returns
    -------
    KVMarginResult
        ``.score`` is the generalization measure (larger predicts a larger gap),
        ``.normalized_margins`` the normalized margin distribution.

    References
    ----------
    Chuang et al., "Measuring Generalization with Optimal Transport", NeurIPS 2021;
    official PGDL submissions ``kV-Margin/complexity.py`` and ``kV-GN-Margin/complexity.py``.
"""


def kv_margin(
    model: nn.Module,
    x: Tensor,
    y: Any,
    feature_layer: str | nn.Module,
    **options: Unpack[KVOptions],
) -> KVMarginResult:
    if "eps" in options:  # eps only enters kV-GN-Margin
        raise TypeError("kv_margin() got an unexpected keyword argument 'eps'")
    return _measure(("kv",), model, x, y, feature_layer, **options)["kv"]


def kv_gn_margin(
    model: nn.Module,
    x: Tensor,
    y: Any,
    feature_layer: str | nn.Module,
    **options: Unpack[GNOptions],
) -> KVMarginResult:
    return _measure(("gn",), model, x, y, feature_layer, **options)["gn"]


def kv_measures(
    model: nn.Module,
    x: Tensor,
    y: Any,
    feature_layer: str | nn.Module,
    **options: Unpack[GNOptions],
) -> dict[str, KVMarginResult]:
    """kV-Margin and kV-GN-Margin from one forward, one backward and one set of k-variances.

    Same arguments as :func:`kv_gn_margin`; returns ``{"kv": KVMarginResult, "gn":
    KVMarginResult}``, equal to the two single calls with the same options.
    """
    return _measure(("kv", "gn"), model, x, y, feature_layer, **options)


kv_margin.__doc__ = (
    r"""kV-Margin: margins normalized by :math:`\sum_c p_c \widehat{\mathrm{Lip}}_c
    \widehat{\mathrm{Var}}_{m_c}(\phi\#\mu_c)`, in one forward and one backward.

    :math:`\widehat{\mathrm{Lip}}_c` is the largest margin-gradient norm among class-:math:`c`
    points, :math:`\widehat{\mathrm{Var}}` the k-variance of disjoint halves of the class's
    features; the measure is :math:`-\mathrm{median}_i \rho_i / \sum_c p_c \mathrm{Lip}_c
    \mathrm{Var}_c`.
"""
    + _DOC_COMMON
)
kv_gn_margin.__doc__ = r"""kV-GN-Margin: gradient-normalized margins divided by :math:`\sum_c p_c
    \widehat{\mathrm{Var}}_{m_c}(\phi\#\mu_c)`.

    The measure is :math:`-\mathrm{median}_i [\rho_i / (\lVert \nabla_\phi (f_{y_i} -
    f_{y'_i}) \rVert + \epsilon)] / \sum_c p_c \mathrm{Var}_c`; ``eps`` (default ``1e-6``, as
    officially) is added to each gradient norm.
""" + _DOC_COMMON.replace(
    "    m : int, optional",
    "    eps : float\n        Added to every gradient norm.\n    m : int, optional",
)
