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

from papershelf.core import progress as _progress
from papershelf.infoot._backend import as_matrix, backend_of
from papershelf.infoot.kernels import (
    _check_h,
    gaussian_kernels,
    label_block_distances,
    pairwise_euclidean,
)
from papershelf.infoot.mi import (
    _GradientWorkspace,
    _marginals,
    _mi_and_gradient,
    kde_mutual_information,
)
from papershelf.infoot.sinkhorn import _check_reg, sinkhorn_log, sinkhorn_scaling

log = logging.getLogger(__name__)

__all__ = ["fused_info_ot", "fused_infoot_plan", "info_ot", "infoot_plan"]

_SINKHORN = ("pot", "log")


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_solver_options(
    sinkhorn: str, max_iter: int, inner_max_iter: int | None, inner_tol: float, tol: float | None
) -> int:
    if sinkhorn not in _SINKHORN:
        raise ValueError(f"sinkhorn must be one of {_SINKHORN}, got {sinkhorn!r}")
    _check_int(max_iter, "max_iter")
    if inner_max_iter is None:
        inner_max_iter = 1000 if sinkhorn == "pot" else 10_000
    _check_int(inner_max_iter, "inner_max_iter")
    if not (isinstance(inner_tol, int | float) and inner_tol > 0):
        raise ValueError(f"inner_tol must be a number > 0, got {inner_tol}")
    if tol is not None and not (isinstance(tol, int | float) and tol >= 0):
        raise ValueError(f"tol must be None or a number >= 0, got {tol}")
    return inner_max_iter


def _outer_loop(
    C: Any | None,
    Ks: Any,
    Kt: Any,
    lam: float,
    reg: float,
    max_iter: int,
    tol: float | None,
    sinkhorn: str,
    inner_max_iter: int | None,
    inner_tol: float,
    P0: Any | None,
    show_progress: bool | None,
    desc: str,
    final_mi: bool = True,
) -> tuple[Any, dict[str, Any]]:
    _check_reg(reg)
    inner_max_iter = _check_solver_options(sinkhorn, max_iter, inner_max_iter, inner_tol, tol)
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
    }
    potentials = None
    bar = _progress(
        range(max_iter), desc=desc, disable=None if show_progress is None else not show_progress
    )
    marginals = _marginals(Ks, Kt)  # f(x_i) f(y_j) does not change: computed once
    workspace = None
    if all(isinstance(x, np.ndarray) for x in (Ks, Kt, P)) and (
        C is None or isinstance(C, np.ndarray)
    ):
        workspace = _GradientWorkspace(n, m, np.result_type(Ks, Kt, P))
    it = 0
    for it in bar:
        if workspace is not None:
            mi, M = workspace.cost(P, Ks, Kt, marginals, C, lam)
        else:
            mi, grad = _mi_and_gradient(P, Ks, Kt, marginals)
            grad = -grad
            M = grad if C is None else C + lam * grad
        history["mutual_information"].append(mi)
        if sinkhorn == "pot":
            res = sinkhorn_scaling(p, q, M, reg, max_iter=inner_max_iter, tol=inner_tol)
        else:
            res = sinkhorn_log(
                p, q, M, reg, max_iter=inner_max_iter, tol=inner_tol, warmstart=potentials
            )
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
        delta = float(nx.max(nx.abs(P_new - P)))
        scale = float(nx.max(P_new))
        history["delta"].append(delta / scale if scale > 0 else math.inf)
        P = P_new
        if tol is not None and delta <= tol * scale:
            history["stopped_early"] = True
            break
    if hasattr(bar, "close"):
        bar.close()
    history["n_iter"] = it + 1
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
    tol: float | None = 1e-13,
    sinkhorn: str = "pot",
    inner_max_iter: int | None = None,
    inner_tol: float = 1e-9,
    P0: Any | None = None,
    progress: bool | None = None,
    log: bool = False,
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
    tol : float or None
        Outer early stop on the relative max change of the plan; ``None`` runs ``max_iter``.
    sinkhorn : {"pot", "log"}
        Inner solver: ``"pot"`` reproduces the official (truncated) Sinkhorn, ``"log"``
        converges (see the module docstring).
    inner_max_iter : int, optional
        Inner iteration cap (default 1000 for ``"pot"``, 10000 for ``"log"``).
    inner_tol : float
        Inner stopping threshold (POT's 1e-9).
    P0 : array, shape (n, m), optional
        Starting plan (default :math:`pq^\top`).
    progress : bool, optional
        Progress bar over outer iterations (default: only on a terminal).
    log : bool
        Also return a dict with the MI, the plan change and the inner iterations per step.

    Returns
    -------
    P : array, shape (n, m)
    log : dict
        Only if ``log=True``.
    """
    Ks, Kt = _kernel_pair(Ks, Kt)
    P, hist = _outer_loop(
        None, Ks, Kt, 1.0, reg, max_iter, tol, sinkhorn, inner_max_iter, inner_tol, P0,
        progress, "InfoOT",
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
    tol: float | None = 1e-13,
    sinkhorn: str = "pot",
    inner_max_iter: int | None = None,
    inner_tol: float = 1e-9,
    P0: Any | None = None,
    progress: bool | None = None,
    log: bool = False,
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
    max_iter, tol, sinkhorn, inner_max_iter, inner_tol, P0, progress, log
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
    if not (isinstance(lam, int | float) and math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be a finite number >= 0, got {lam}")
    P, hist = _outer_loop(
        C, Ks, Kt, lam, reg, max_iter, tol, sinkhorn, inner_max_iter, inner_tol, P0,
        progress, "FusedInfoOT",
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
    _check_h(h)
    Xs = as_matrix(Xs, "Xs")
    Xt = as_matrix(Xt, "Xt", like=Xs)
    Ks, Kt = gaussian_kernels(pairwise_euclidean(Xs), pairwise_euclidean(Xt), h)
    return infoot_plan(Ks, Kt, reg=reg, max_iter=max_iter, **kwargs)


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
    _check_h(h)
    Xs = as_matrix(Xs, "Xs")
    Xt = as_matrix(Xt, "Xt", like=Xs)
    if Xs.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"Xs and Xt must have the same number of features for Fused InfoOT, got "
            f"{Xs.shape[1]} and {Xt.shape[1]} (use info_ot for different dimensions)"
        )
    Cs = pairwise_euclidean(Xs) if ys is None else label_block_distances(Xs, ys, label_delta)
    Ks, Kt = gaussian_kernels(Cs, pairwise_euclidean(Xt), h)
    C = pairwise_euclidean(Xs, Xt)
    return fused_infoot_plan(C, Ks, Kt, lam=lam, reg=reg, max_iter=max_iter, **kwargs)
