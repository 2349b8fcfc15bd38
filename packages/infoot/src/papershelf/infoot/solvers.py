r"""The InfoOT and Fused InfoOT outer loops (Chuang et al., ICML 2023, Alg. 1).

Both maximise the kernel mutual information :math:`\hat I(\Gamma)` over couplings
:math:`\Gamma \in U(p, q)` by mirror descent: each step linearises the objective at the
current plan and solves an entropic OT problem with that cost,

.. math:: \Gamma^{t+1} = \operatorname*{arg\,min}_{\Gamma\in U(p,q)}
   \langle \Gamma, C - \lambda \nabla \hat I(\Gamma^t)\rangle - \varepsilon H(\Gamma),

with :math:`C = 0, \lambda = 1` for InfoOT and the Euclidean source-to-target cost for
Fused InfoOT. Starting point :math:`\Gamma^0 = pq^\top` (uniform weights).

Two inner solvers:

* ``sinkhorn="pot"`` (parity, default): POT's scaling-form Sinkhorn with its default cap of
  1000 iterations, as the official code calls it. The cap is hit at almost every outer step,
  so the plans violate the column marginals (rows are exact); this is what the paper's
  numbers come from.
* ``sinkhorn="log"`` (converged): log-domain Sinkhorn, warm-started from the previous outer
  step, run until the column marginals hold to ``inner_tol`` (L1) or ``inner_max_iter``,
  then rounded onto :math:`U(p, q)` (Altschuler et al. 2017), so every plan meets both
  marginals to rounding error. Different numbers from the official code.

The outer loop stops early when :math:`\max|\Gamma^{t+1}-\Gamma^t| \le \mathrm{tol}\cdot\max\Gamma^{t+1}`
(the official code always runs ``max_iter`` steps; at ``tol=1e-13`` the plan is the same to
about 1e-13).
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from papershelf.core import progress as _progress
from papershelf.core.validation import check_bool, check_choice, check_int, check_real
from papershelf.infoot._backend import as_float64, as_matrix, backend_of, cast_like
from papershelf.infoot.kernels import (
    _check_h,
    gaussian_kernels,
    label_block_distances,
    pairwise_euclidean,
)
from papershelf.infoot.mi import (
    SpectralKernel,
    _GradientWorkspace,
    _marginals,
    _mi_and_gradient,
    kde_mutual_information,
)
from papershelf.infoot.sinkhorn import (
    _check_reg,
    _sinkhorn_log,
    _sinkhorn_scaling_dispatch,
    sinkhorn_warm,
)

log = logging.getLogger(__name__)

__all__ = [
    "InfoOTConvergenceWarning",
    "fused_info_ot",
    "fused_infoot_plan",
    "info_ot",
    "infoot_plan",
]

_SINKHORN = ("pot", "log", "fast")

# below this size the dense kernel products cost less than factorising the kernels
_LOW_RANK_MIN = 256


class InfoOTConvergenceWarning(ConvergenceWarning):
    """The InfoOT outer loop or its inner Sinkhorn solves stopped at their caps."""


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    return check_int(name, value, low=minimum)


def _resolve_options(
    sinkhorn: Any, max_iter: Any, inner_max_iter: Any, inner_tol: Any, tol: Any
) -> tuple[str, int, int, float, float | None]:
    """Checked ``(sinkhorn, max_iter, inner_max_iter, inner_tol, tol)`` with the mode defaults.

    ``tol="auto"``: 1e-13 (max-relative plan change) for ``"pot"``/``"log"``, 1e-3 (L1 plan
    change) for ``"fast"``; ``inner_tol=None``: 1e-9 (``"pot"``/``"log"``), 1e-3 (``"fast"``);
    ``inner_max_iter=None``: 1000 (``"pot"``/``"fast"``), 10000 (``"log"``).
    """
    sinkhorn = check_choice("sinkhorn", sinkhorn, _SINKHORN)
    max_iter = check_int("max_iter", max_iter, low=1)
    fast = sinkhorn == "fast"
    if inner_max_iter is None:
        inner_max_iter = 10_000 if sinkhorn == "log" else 1000
    inner_max_iter = check_int("inner_max_iter", inner_max_iter, low=1)
    if inner_tol is None:
        inner_tol = 1e-3 if fast else 1e-9
    inner_tol = check_real("inner_tol", inner_tol, low=0.0, inclusive=False)
    if isinstance(tol, str):
        if tol != "auto":
            raise ValueError(f"tol must be 'auto', None or a number >= 0, got {tol!r}")
        tol = 1e-3 if fast else 1e-13
    elif tol is not None:
        tol = check_real("tol", tol, low=0.0)
    return sinkhorn, max_iter, inner_max_iter, inner_tol, tol


def _check_solver_options(
    sinkhorn: Any, max_iter: Any, inner_max_iter: Any, inner_tol: Any, tol: Any
) -> int:
    return _resolve_options(sinkhorn, max_iter, inner_max_iter, inner_tol, tol)[2]


def _outer_loop(
    C: Any | None,
    Ks: Any,
    Kt: Any,
    lam: float,
    reg: float,
    max_iter: int,
    tol: Any,
    sinkhorn: str,
    inner_max_iter: int | None,
    inner_tol: float | None,
    P0: Any | None,
    show_progress: bool | None,
    desc: str,
    final_mi: bool = True,
    low_rank: bool = True,
    stacklevel: int = 3,
) -> tuple[Any, dict[str, Any]]:
    reg = _check_reg(reg)
    sinkhorn, max_iter, inner_max_iter, inner_tol, tol = _resolve_options(
        sinkhorn, max_iter, inner_max_iter, inner_tol, tol
    )
    low_rank = check_bool("low_rank", low_rank)
    nx = backend_of(Ks, Kt)
    n, m = Ks.shape[0], Kt.shape[0]
    p = nx.ones(n, type_as=Ks) / n
    q = nx.ones(m, type_as=Ks) / m
    P = p[:, None] * q[None, :] if P0 is None else P0
    history: dict[str, Any] = {
        "mutual_information": [],
        "delta": [],
        "inner_iterations": [],
        "inner_error": [],
        "unconverged": 0,
        "numerical_errors": 0,
        "stopped_early": False,
        "converged": tol is None,
        "kernel_ranks": [],
        "sinkhorn": sinkhorn,
    }
    potentials = None
    bar = _progress(
        range(max_iter), desc=desc, disable=None if show_progress is None else not show_progress
    )
    marginals = _marginals(Ks, Kt)  # f(x_i) f(y_j) does not change: computed once
    numpy = all(isinstance(x, np.ndarray) for x in (Ks, Kt, P)) and (
        C is None or isinstance(C, np.ndarray)
    )
    if sinkhorn == "fast" and not numpy:
        raise ValueError("sinkhorn='fast' supports numpy arrays only; use 'log' for torch tensors")
    workspace = None
    if numpy:
        spectral = None
        if low_rank and min(n, m) >= _LOW_RANK_MIN:
            rank_tol = 1e-8 if sinkhorn == "fast" else 1e-12
            spectral = (SpectralKernel(Ks, rank_tol), SpectralKernel(Kt, rank_tol))
        workspace = _GradientWorkspace(n, m, np.result_type(Ks, Kt, P), spectral)
    it = 0
    for it in bar:
        if workspace is not None:
            mi, M = workspace.cost(P, Ks, Kt, marginals, C, lam)
        else:
            mi, grad = _mi_and_gradient(P, Ks, Kt, marginals)
            grad = -grad
            M = grad if C is None else C + lam * grad
        history["mutual_information"].append(mi)
        if not math.isfinite(mi):
            raise FloatingPointError(
                f"{desc}: the mutual information is NaN/inf at outer iteration {it + 1} "
                "(a kernel density underflowed to 0); increase h"
            )
        if sinkhorn == "pot":
            res = _sinkhorn_scaling_dispatch(p, q, M, reg, inner_max_iter, inner_tol)
        elif sinkhorn == "fast":
            res = sinkhorn_warm(
                p, q, M, reg, max_iter=inner_max_iter, tol=inner_tol, warmstart=potentials,
                warn=False,
            )  # fmt: skip
            potentials = res.potentials
        else:
            res = _sinkhorn_log(p, q, M, reg, inner_max_iter, inner_tol, potentials, 1e3, 500, True)
            potentials = res.potentials
        P_new = res.plan
        if not math.isfinite(float(nx.sum(P_new))):
            raise FloatingPointError(
                f"{desc}: the plan has inf/NaN at outer iteration {it + 1} (exp(-M/reg) "
                f"overflowed with reg={reg}); use sinkhorn='log', or a larger reg"
            )
        history["inner_iterations"].append(res.n_iter)
        history["inner_error"].append(res.err)
        history["unconverged"] += int(not res.converged)
        history["numerical_errors"] += int(res.numerical_error)
        diff = nx.abs(P_new - P)
        if sinkhorn == "fast":  # total-variation change of the plan (its mass is 1)
            delta = float(nx.sum(diff))
            history["delta"].append(delta)
            done = tol is not None and delta <= tol
        else:
            delta = float(nx.max(diff))
            scale = float(nx.max(P_new))
            history["delta"].append(delta / scale if scale > 0 else math.inf)
            done = tol is not None and delta <= tol * scale
        P = P_new
        if done:
            history["stopped_early"] = history["converged"] = True
            break
    if hasattr(bar, "close"):
        bar.close()
    history["n_iter"] = it + 1
    if workspace is not None:
        history["kernel_ranks"] = workspace.ranks
    if final_mi:  # two more n^3 products; the estimators compute it on first access
        history["mutual_information"].append(kde_mutual_information(P, Ks, Kt))
    if history["numerical_errors"]:
        warnings.warn(
            f"{desc}: the scaling-form Sinkhorn hit 0/inf/NaN in {history['numerical_errors']} "
            "of its solves and returned the previous iterate (POT's behaviour); the plan is "
            "unreliable. Use sinkhorn='log', or a larger reg.",
            RuntimeWarning,
            stacklevel=3,
        )
    problems = []
    if history["unconverged"]:
        problems.append(
            f"the inner Sinkhorn stopped at inner_max_iter={inner_max_iter} before "
            f"inner_tol={inner_tol:g} in {history['unconverged']} of {history['n_iter']} outer "
            f"steps (last marginal error {history['inner_error'][-1]:.2e})"
            + (
                " - as in the official code, whose numbers this mode reproduces"
                if sinkhorn == "pot"
                else ""
            )
        )
    if not history["converged"]:
        problems.append(
            f"the outer loop stopped at max_iter={max_iter} with plan change "
            f"{history['delta'][-1]:.2e} > tol={tol:g}"
        )
    if problems:
        warnings.warn(
            f"{desc}: " + "; ".join(problems) + ". See log_['inner_error'] and log_['delta'].",
            InfoOTConvergenceWarning,
            stacklevel=stacklevel,
        )
    log.debug(
        "%s: %d outer iterations, %d inner solves hit the cap",
        desc,
        history["n_iter"],
        history["unconverged"],
    )
    return P, history


def _kernel_pair(Ks: Any, Kt: Any) -> tuple[Any, Any]:
    Ks = as_matrix(Ks, "Ks")
    Kt = as_matrix(Kt, "Kt", like=Ks)
    if Ks.shape[0] != Ks.shape[1] or Kt.shape[0] != Kt.shape[1]:
        raise ValueError(f"Ks and Kt must be square, got {tuple(Ks.shape)} and {tuple(Kt.shape)}")
    return Ks, Kt


def infoot_plan(
    Ks: Any,
    Kt: Any,
    *,
    reg: float = 0.05,
    max_iter: int = 100,
    tol: float | str | None = "auto",
    sinkhorn: str = "pot",
    inner_max_iter: int | None = None,
    inner_tol: float | None = None,
    P0: Any | None = None,
    progress: bool | None = None,
    log: bool = False,
    low_rank: bool = True,
) -> Any:
    r"""InfoOT coupling from precomputed kernels: :math:`\max_{\Gamma\in U(p,q)} \hat I(\Gamma)`.

    Parameters
    ----------
    Ks : array, shape (n, n)
        Source kernel.
    Kt : array, shape (m, m)
        Target kernel.
    reg : float
        Entropic regularisation of each inner step (official 0.05).
    max_iter : int
        Outer iterations (official 100).
    tol : float, "auto" or None
        Outer early stop: ``"pot"``/``"log"`` stop when :math:`\max|\Delta\Gamma| \le`
        ``tol`` :math:`\cdot\max\Gamma` ("auto": 1e-13, the official plan to ~1e-13);
        ``"fast"`` when :math:`\|\Delta\Gamma\|_1 \le` ``tol`` ("auto": 1e-3). ``None``
        runs ``max_iter``.
    sinkhorn : {"pot", "log", "fast"}
        Inner solver: ``"pot"`` reproduces the official (truncated) Sinkhorn, ``"log"``
        converges, ``"fast"`` is the warm-started float32 mode (see the module docstring).
    inner_max_iter : int, optional
        Inner iteration cap (default 1000 for ``"pot"``/``"fast"``, 10000 for ``"log"``).
    inner_tol : float, optional
        Inner stopping threshold (default POT's 1e-9; 1e-3 (L1) for ``"fast"``).
    P0 : array, shape (n, m), optional
        Starting plan (default :math:`pq^\top`).
    progress : bool, optional
        Progress bar over outer iterations (default: only on a terminal).
    log : bool
        Also return a dict with the MI, the plan change and the inner iterations per step.
    low_rank : bool
        numpy, n, m >= 256: kernel products from truncated eigenpairs at ranks set by
        an a-priori error bound (1e-12 of the product; dense when the bound needs a high rank).

    Returns
    -------
    P : array, shape (n, m)
    log : dict
        Only if ``log=True``.
    """
    Ks, Kt = _kernel_pair(Ks, Kt)
    P, hist = _outer_loop(
        None, Ks, Kt, 1.0, reg, max_iter, tol, sinkhorn, inner_max_iter, inner_tol, P0,
        progress, "InfoOT", low_rank=low_rank,
    )  # fmt: skip
    if log:
        return P, hist
    return P


def fused_infoot_plan(
    C: Any,
    Ks: Any,
    Kt: Any,
    *,
    lam: float = 100.0,
    reg: float = 1.0,
    max_iter: int = 50,
    tol: float | str | None = "auto",
    sinkhorn: str = "pot",
    inner_max_iter: int | None = None,
    inner_tol: float | None = None,
    P0: Any | None = None,
    progress: bool | None = None,
    log: bool = False,
    low_rank: bool = True,
) -> Any:
    r"""Fused InfoOT coupling: :math:`\min_{\Gamma\in U(p,q)}\langle\Gamma, C\rangle - \lambda\hat I(\Gamma)`.

    Parameters
    ----------
    C : array, shape (n, m)
        Source-to-target cost (official: Euclidean distances, not normalised, so ``lam``
        and ``reg`` depend on the feature scale).
    Ks : array, shape (n, n)
    Kt : array, shape (m, m)
    lam : float
        Weight of the mutual information (official 100). ``lam=0`` is entropic OT.
    reg : float
        Entropic regularisation (official 1.0; 5.0 in the retrieval script).
    max_iter, tol, sinkhorn, inner_max_iter, inner_tol, P0, progress, log, low_rank
        As in :func:`infoot_plan` (official ``max_iter`` 50).

    Returns
    -------
    P : array, shape (n, m)
    log : dict
        Only if ``log=True``.
    """
    Ks, Kt = _kernel_pair(Ks, Kt)
    C = as_matrix(C, "C", like=Ks)
    if tuple(C.shape) != (Ks.shape[0], Kt.shape[0]):
        raise ValueError(f"C must have shape ({Ks.shape[0]}, {Kt.shape[0]}), got {tuple(C.shape)}")
    lam = check_real("lam", lam, low=0.0)
    P, hist = _outer_loop(
        C, Ks, Kt, lam, reg, max_iter, tol, sinkhorn, inner_max_iter, inner_tol, P0,
        progress, "FusedInfoOT", low_rank=low_rank,
    )  # fmt: skip
    if log:
        return P, hist
    return P


def info_ot(Xs: Any, Xt: Any, h: float = 0.5, reg: float = 0.05, max_iter: int = 100,
            **kwargs: Any) -> Any:  # fmt: skip
    r"""InfoOT coupling between two point clouds (dimensions may differ).

    Parameters
    ----------
    Xs : array-like, shape (n, d_s)
    Xt : array-like, shape (m, d_t)
    h : float
        Relative kernel bandwidth (official 0.5).
    reg, max_iter
        As in :func:`infoot_plan`.
    **kwargs
        Further options of :func:`infoot_plan`.

    Returns
    -------
    P : array, shape (n, m)
        In the inputs' array type.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> P = info_ot(rng.normal(size=(20, 2)), rng.normal(size=(15, 3)), max_iter=5)
    >>> P.shape
    (20, 15)
    """
    h = _check_h(h)
    Xs = as_matrix(Xs, "Xs")
    Xt = as_matrix(Xt, "Xt", like=Xs)
    like = Xs  # float32 is solved in float64 (the scaling form overflows in float32)
    Xs, Xt = as_float64(Xs), as_float64(Xt)
    Ks, Kt = gaussian_kernels(pairwise_euclidean(Xs), pairwise_euclidean(Xt), h)
    return cast_like(infoot_plan(Ks, Kt, reg=reg, max_iter=max_iter, **kwargs), like)


def fused_info_ot(
    Xs: Any,
    Xt: Any,
    ys: Any = None,
    h: float = 0.5,
    lam: float = 100.0,
    reg: float = 1.0,
    max_iter: int = 50,
    label_delta: float = 5000.0,
    **kwargs: Any,
) -> Any:
    r"""Fused InfoOT coupling between two point clouds in the same space.

    Parameters
    ----------
    Xs : array-like, shape (n, d)
    Xt : array-like, shape (m, d)
    ys : array-like, shape (n,), optional
        Source labels: the source distances become :func:`label_block_distances`.
    h, lam, reg, max_iter
        As in :func:`fused_infoot_plan`.
    label_delta : float
        Offset between classes in the label-refined distances (official 5000).
    **kwargs
        Further options of :func:`fused_infoot_plan`.

    Returns
    -------
    P : array, shape (n, m)
    """
    h = _check_h(h)
    Xs = as_matrix(Xs, "Xs")
    Xt = as_matrix(Xt, "Xt", like=Xs)
    like = Xs  # float32 is solved in float64 (the scaling form overflows in float32)
    Xs, Xt = as_float64(Xs), as_float64(Xt)
    if Xs.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"Xs and Xt must have the same number of features for Fused InfoOT, got "
            f"{Xs.shape[1]} and {Xt.shape[1]} (use info_ot for different dimensions)"
        )
    Cs = pairwise_euclidean(Xs) if ys is None else label_block_distances(Xs, ys, label_delta)
    Ks, Kt = gaussian_kernels(Cs, pairwise_euclidean(Xt), h)
    C = pairwise_euclidean(Xs, Xt)
    return cast_like(
        fused_infoot_plan(C, Ks, Kt, lam=lam, reg=reg, max_iter=max_iter, **kwargs), like
    )
