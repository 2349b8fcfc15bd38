"""Fairness gaps and average precision, numpy or torch in, float out.

The gaps follow the Fair Mixup paper and its official code: they are computed on *soft*
scores by default (``threshold=None``); give a threshold for the hard-prediction variant.
The equalized-odds gap *sums* the per-label gaps (``reduce="sum"``, the paper's Delta EO);
``reduce="max"`` on hard predictions is fairlearn's ``equalized_odds_difference``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from papershelf.core.validation import check_choice, check_real

__all__ = ["average_precision", "demographic_parity_gap", "equalized_odds_gap"]


def _as_1d(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.is_floating_point():  # bfloat16 (autocast scores) has no numpy dtype
            x = x.double()
        x = x.numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (or (n, 1)), got shape {arr.shape}")
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _binary(x: Any, name: str, n: int) -> np.ndarray:
    arr = _as_1d(x, name)
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n} (one per score), got {arr.shape[0]}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must be binary (0/1)")
    return arr.astype(bool)


def _prepared(scores: Any, threshold: float | None) -> np.ndarray:
    s = _as_1d(scores, "scores")
    if threshold is not None:
        return (s >= check_real("threshold", threshold)).astype(np.float64)
    if s.size and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError(
            f"scores must be probabilities in [0, 1] for the soft gap, got values in "
            f"[{s.min():.3g}, {s.max():.3g}]: apply a sigmoid to logits first, or pass "
            f"threshold= to compare hard predictions"
        )
    return s


def _group_mean(s: np.ndarray, mask: np.ndarray, what: str) -> float:
    if not mask.any():
        raise ValueError(f"{what} is empty: a group of size zero has no mean score")
    return float(s[mask].mean())


def demographic_parity_gap(scores: Any, a: Any, *, threshold: float | None = None) -> float:
    r"""Demographic-parity gap :math:`|\mathbb{E}[f \mid A=0] - \mathbb{E}[f \mid A=1]|`.

    Parameters
    ----------
    scores : array-like or Tensor, shape (n,) or (n, 1)
        Soft scores (probabilities in [0, 1]) of the classifier; values outside [0, 1]
        (logits) raise a ``ValueError`` unless ``threshold`` is given.
    a : array-like or Tensor, shape (n,)
        Binary sensitive attribute.
    threshold : float, optional
        When given, scores become hard predictions ``scores >= threshold`` first (then any
        real scores, logits included, are accepted).

    Returns
    -------
    gap : float

    References
    ----------
    Chuang & Mroueh, ICLR 2021, Sec. 2 (Delta DP); official ``evaluate_dp``.

    Examples
    --------
    >>> demographic_parity_gap([0.9, 0.7, 0.2, 0.4], [0, 0, 1, 1])
    0.5
    """
    s = _prepared(scores, threshold)
    g = _binary(a, "a", s.shape[0])
    return abs(_group_mean(s, ~g, "group a=0") - _group_mean(s, g, "group a=1"))


def equalized_odds_gap(
    scores: Any,
    y: Any,
    a: Any,
    *,
    threshold: float | None = None,
    reduce: Literal["sum", "max"] = "sum",
) -> float:
    r"""Equalized-odds gap :math:`\sum_y |\mathbb{E}[f \mid A=0, Y=y] - \mathbb{E}[f \mid A=1, Y=y]|`.

    Parameters
    ----------
    scores : array-like or Tensor, shape (n,) or (n, 1)
        Soft scores (probabilities in [0, 1]) of the classifier; logits need ``threshold``.
    y : array-like or Tensor, shape (n,)
        Binary labels.
    a : array-like or Tensor, shape (n,)
        Binary sensitive attribute.
    threshold : float, optional
        Hard predictions ``scores >= threshold`` instead of soft scores.
    reduce : {"sum", "max"}
        ``"sum"`` over the two labels (the paper's Delta EO) or ``"max"`` (with a threshold
        this is fairlearn's ``equalized_odds_difference``: max of TPR and FPR differences).

    Returns
    -------
    gap : float

    References
    ----------
    Chuang & Mroueh, ICLR 2021, Sec. 2 (Delta EO); official ``evaluate_eo``.
    """
    check_choice("reduce", reduce, ("sum", "max"))
    s = _prepared(scores, threshold)
    g = _binary(a, "a", s.shape[0])
    yy = _binary(y, "y", s.shape[0])
    gaps = [
        abs(
            _group_mean(s, ~g & (yy == lab), f"cell (a=0, y={int(lab)})")
            - _group_mean(s, g & (yy == lab), f"cell (a=1, y={int(lab)})")
        )
        for lab in (False, True)
    ]
    return float(sum(gaps)) if reduce == "sum" else float(max(gaps))


def average_precision(y: Any, scores: Any) -> float:
    r"""Average precision :math:`\sum_n (R_n - R_{n-1}) P_n` over distinct score thresholds.

    The same step-wise definition as ``sklearn.metrics.average_precision_score`` (no
    interpolation; tied scores form one threshold).

    Parameters
    ----------
    y : array-like or Tensor, shape (n,)
        Binary labels; at least one positive.
    scores : array-like or Tensor, shape (n,) or (n, 1)
        Scores, higher = more likely positive.

    Returns
    -------
    ap : float

    Examples
    --------
    >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
    0.8333
    """
    s = _as_1d(scores, "scores")
    yy = _binary(y, "y", s.shape[0]).astype(np.float64)
    if yy.sum() == 0:
        raise ValueError("y has no positive label: average precision is undefined")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], yy[order]
    # Last index of each run of tied scores = one threshold.
    ends = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[ends]
    fps = (ends + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
