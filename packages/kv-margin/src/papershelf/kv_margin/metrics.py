"""How well a generalization measure ranks generalization gaps across a sweep of models.

* Kendall's :math:`\\tau` between the measure and the gap (Jiang et al., 2020, Eq. 3);
* the granulated :math:`\\tau` (Jiang et al., 2020, Eq. 4): for each hyper-parameter, the
  mean :math:`\\tau` over groups of models that differ in that hyper-parameter only;
* the PGDL score: conditional mutual information between the sign of the pairwise gap
  difference and the sign of the pairwise measure difference, conditioned on the values of
  two hyper-parameters of both models, normalized by the entropy of the gap sign, minimised
  over pairs of hyper-parameters (the PGDL competition's scoring program).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

import numpy as np

__all__ = ["granulated_kendall_tau", "kendall_tau", "pgdl_cmi"]


def _vec(x: Any, name: str, n: int | None = None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} must have length {n}, got {len(arr)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    if n is None and len(arr) < 2:
        raise ValueError(f"{name} needs at least 2 models, got {len(arr)}")
    return arr


def kendall_tau(measure: Any, gap: Any) -> float:
    r"""Kendall's rank correlation as Jiang et al. (2020) define it.

    .. math::

        \tau = \frac{1}{n(n-1)} \sum_{i \ne j}
            \operatorname{sign}(\mu_i - \mu_j)\, \operatorname{sign}(g_i - g_j)

    (Kendall's :math:`\tau_a`; ties count 0).

    Parameters
    ----------
    measure : array-like, shape (n_models,)
        Generalization measure (larger predicts a larger gap).
    gap : array-like, shape (n_models,)
        Generalization gaps.

    Returns
    -------
    float
        In ``[-1, 1]``.

    Examples
    --------
    >>> kendall_tau([1.0, 2.0, 3.0], [0.1, 0.3, 0.2])
    0.3333333333333333
    """
    mu = _vec(measure, "measure")
    g = _vec(gap, "gap", len(mu))
    if len(mu) < 2:
        raise ValueError(f"measure and gap need at least 2 models, got {len(mu)}")
    s = np.sign(mu[:, None] - mu[None, :]) * np.sign(g[:, None] - g[None, :])
    n = len(mu)
    return float(s.sum() / (n * (n - 1)))


def _hparam_table(hparams: Mapping[str, Sequence[Any]], n: int) -> dict[str, np.ndarray]:
    if not isinstance(hparams, Mapping) or not hparams:
        raise ValueError("hparams must be a non-empty dict: name -> (n_models,) values")
    out = {}
    for name, vals in hparams.items():
        arr = np.asarray(vals, dtype=object)
        if arr.ndim != 1 or len(arr) != n:
            raise ValueError(f"hparams[{name!r}] must have length {n}, got shape {arr.shape}")
        out[name] = arr
    return out


def granulated_kendall_tau(
    measure: Any, gap: Any, hparams: Mapping[str, Sequence[Any]]
) -> dict[str, float]:
    r"""Granulated Kendall :math:`\tau` per hyper-parameter axis (Jiang et al., 2020, Eq. 4).

    For axis :math:`i`, the models are grouped by the values of all *other* hyper-parameters;
    :math:`\psi_i` is the mean over groups (with at least two models) of :math:`\tau` inside
    the group. The key ``"mean"`` holds :math:`\Psi = \frac{1}{K}\sum_i \psi_i`.

    Parameters
    ----------
    measure, gap : array-like, shape (n_models,)
    hparams : dict of str to array-like, shape (n_models,)
        Each model's value of every swept hyper-parameter.

    Returns
    -------
    dict
        ``{axis: psi_axis, ..., "mean": Psi}``.
    """
    mu = _vec(measure, "measure")
    g = _vec(gap, "gap", len(mu))
    hp = _hparam_table(hparams, len(mu))
    names = list(hp)
    res: dict[str, float] = {}
    for name in names:
        others = [o for o in names if o != name]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i in range(len(mu)):
            groups.setdefault(tuple(hp[o][i] for o in others), []).append(i)
        taus = [kendall_tau(mu[ix], g[ix]) for ix in groups.values() if len(ix) > 1]
        if not taus:
            raise ValueError(
                f"hparams[{name!r}]: no two models differ only in this axis, so its "
                "granulated tau is undefined"
            )
        res[name] = float(np.mean(taus))
    res["mean"] = float(np.nanmean([res[n] for n in names]))
    return res


def _entropy_bits(counts: np.ndarray) -> float:
    total = counts.sum()
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def _mi_bits(table: np.ndarray) -> float:
    total = table.sum()
    pi, pj = table.sum(1) / total, table.sum(0) / total
    mi = 0.0
    for i in range(2):
        for j in range(2):
            if table[i, j] > 0:
                pij = table[i, j] / total
                mi += pij * np.log2(pij / (pi[i] * pj[j]))
    return float(mi)


@overload
def pgdl_cmi(
    measure: Any,
    gap: Any,
    hparams: Mapping[str, Sequence[Any]],
    *,
    return_all: Literal[False] = ...,
) -> float: ...


@overload
def pgdl_cmi(
    measure: Any, gap: Any, hparams: Mapping[str, Sequence[Any]], *, return_all: Literal[True]
) -> tuple[float, dict[tuple[str, ...], float]]: ...


def pgdl_cmi(
    measure: Any, gap: Any, hparams: Mapping[str, Sequence[Any]], *, return_all: bool = False
) -> float | tuple[float, dict[tuple[str, ...], float]]:
    r"""The PGDL competition score: conditional mutual information of ranking signs.

    For every ordered pair of models :math:`(a, b)` (including :math:`a = b`, as the scoring
    program does) record :math:`V_g = [g_a > g_b]` and :math:`V_\mu = [\mu_a > \mu_b]`. For two
    hyper-parameters :math:`h_1 \ne h_2` the pairs are split into cells by
    :math:`(h_1(a), h_1(b), h_2(a), h_2(b))`; the score of the pair of axes is

    .. math::

        \frac{\frac{1}{|\mathcal{S}|}\sum_{s} I(V_g; V_\mu \mid s)}
             {\frac{1}{|\mathcal{S}|}\sum_{s} H(V_g \mid s)}

    (bits; an unweighted mean over cells, as in the scoring program), and the PGDL score is the
    minimum over ordered pairs of axes. Multiply by 100 for the numbers in the paper's tables.
    With a single hyper-parameter it conditions on that one alone.

    Parameters
    ----------
    measure, gap : array-like, shape (n_models,)
    hparams : dict of str to array-like, shape (n_models,)
    return_all : bool
        Also return the score of every ordered pair of axes.

    Returns
    -------
    float
        Between 0 and 1; 1 when the measure orders every cell like the gap.

    Notes
    -----
    The scoring program averages over every combination of hyper-parameter values, observed or
    not (an unobserved cell gives NaN there); here cells without any model pair are skipped,
    which is the same on complete grids.
    """
    mu = _vec(measure, "measure")
    g = _vec(gap, "gap", len(mu))
    hp = _hparam_table(hparams, len(mu))
    names = list(hp)
    vg = (g[:, None] > g[None, :]).ravel()
    vm = (mu[:, None] > mu[None, :]).ravel()
    axes = list(itertools.permutations(names, 2)) if len(names) > 1 else [(names[0],)]
    scores: dict[tuple[str, ...], float] = {}
    for cond in axes:
        codes = [np.unique(hp[h].astype(str), return_inverse=True)[1] for h in cond]
        key = np.zeros((len(mu), len(mu)), dtype=np.int64)
        for c in codes:
            k = int(c.max()) + 1
            key = key * k * k + (c[:, None] * k + c[None, :])
        flat = key.ravel()
        mis, hs = [], []
        for cell in np.unique(flat):
            sel = flat == cell
            t = np.zeros((2, 2))
            np.add.at(t, (vg[sel].astype(int), vm[sel].astype(int)), 1)
            mis.append(_mi_bits(t))
            hs.append(_entropy_bits(t.sum(1)))
        h_mean = float(np.mean(hs))
        scores[cond] = float(np.mean(mis)) / h_mean if h_mean > 0 else float("nan")
    if all(np.isnan(v) for v in scores.values()):
        raise ValueError(
            "gap: the sign of the gap difference has zero entropy in every conditioning cell "
            "(e.g. equal gaps), so the CMI score is undefined"
        )
    best = float(np.nanmin(list(scores.values())))
    if return_all:
        return best, scores
    return best
