r"""InfoOT and Fused InfoOT as estimators in the style of POT's ``ot.da`` and scikit-learn.

Hyperparameters go to ``__init__`` and are stored unchanged; ``fit`` returns ``self`` and sets
the learned state (names end with ``_``); ``transform`` maps source points to the target
domain. numpy in, numpy out; torch in, torch out on the same device.

References
----------
Chuang, Jegelka, Alvarez-Melis. InfoOT: Information Maximizing Optimal Transport. ICML 2023.
https://arxiv.org/abs/2210.03164
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from papershelf.infoot._backend import as_matrix, as_vector, backend_of, is_torch
from papershelf.infoot.kernels import (
    _check_h,
    _row_scaled_gaussian_kernel,
    gaussian_kernel,
    label_block_distances,
    pairwise_euclidean,
)
from papershelf.infoot.mi import density_ratio, kde_mutual_information
from papershelf.infoot.projection import barycentric_projection, conditional_projection
from papershelf.infoot.sinkhorn import _check_reg
from papershelf.infoot.solvers import _check_solver_options, _outer_loop

__all__ = ["FusedInfoOT", "InfoOT"]

_METHODS = ("barycentric", "conditional")
_OOS = ("query", "train")


def _scale(C: Any) -> float:
    """``sqrt(mean(C**2) / 2)``: the bandwidth of :func:`bandwidth` divided by ``h``."""
    nx = backend_of(C)
    s = float(nx.sqrt(nx.mean(C**2) / 2))
    if s <= 0:
        raise ValueError("all distances are 0: the bandwidth is undefined (are all points equal?)")
    return s


def _same_array(a: Any, b: Any) -> bool:
    if tuple(a.shape) != tuple(b.shape):
        return False
    if is_torch(a):
        import torch

        return bool(torch.equal(a, b))
    return bool(np.array_equal(a, b))


class _InfoOTBase:
    """Shared fitting state, projections and the scikit-learn parameter protocol."""

    h: float
    reg: float
    max_iter: int
    tol: float | None
    sinkhorn: str
    inner_max_iter: int | None
    inner_tol: float
    oos_bandwidth: str
    progress: bool | None
    # learned state (set by fit)
    xs_: Any
    xt_: Any
    Cs_: Any
    Ct_: Any
    Ks_: Any
    Kt_: Any
    coupling_: Any

    # -- scikit-learn protocol -------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as a dict (scikit-learn protocol)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> _InfoOTBase:
        """Set hyperparameters (scikit-learn protocol); returns ``self``."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"unknown parameter {key!r}; valid: {sorted(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- shared checks ---------------------------------------------------------------------
    def _check_common(self) -> None:
        _check_h(self.h)
        _check_reg(self.reg)
        if self.oos_bandwidth not in _OOS:
            raise ValueError(f"oos_bandwidth must be one of {_OOS}, got {self.oos_bandwidth!r}")
        _check_solver_options(
            self.sinkhorn, self.max_iter, self.inner_max_iter, self.inner_tol, self.tol
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "coupling_"):
            raise RuntimeError(
                f"this {type(self).__name__} is not fitted yet: call fit(Xs, Xt) before "
                "transform or conditional_score"
            )

    def _set_kernels(self, Cs: Any, Ct: Any, source_scale: float) -> None:
        self.Cs_, self.Ct_ = Cs, Ct
        self.source_kernel_scale_ = _scale(Cs)
        self.target_kernel_scale_ = _scale(Ct)
        # out-of-sample queries carry no labels: the "train" bandwidth uses feature distances
        self.source_feature_scale_ = source_scale
        self.sigma_s_ = self.h * self.source_kernel_scale_
        self.sigma_t_ = self.h * self.target_kernel_scale_
        self.Ks_ = gaussian_kernel(Cs, self.sigma_s_)
        self.Kt_ = gaussian_kernel(Ct, self.sigma_t_)

    def _finish(self, P: Any, hist: dict[str, Any]) -> None:
        self.coupling_ = P
        self.n_iter_ = int(hist["n_iter"])
        self._history = hist

    @property
    def mutual_information_(self) -> float:
        r""":math:`\hat I` of the fitted coupling (computed on first access: two n^3 products)."""
        if "_history" not in self.__dict__:
            raise AttributeError("mutual_information_ is set by fit")
        hist = self._history
        mis = hist["mutual_information"]
        if len(mis) == hist["n_iter"]:  # the MI of each step's plan, not yet the final one
            mis.append(kde_mutual_information(self.coupling_, self.Ks_, self.Kt_))
        return float(mis[-1])

    @property
    def log_(self) -> dict[str, Any]:
        """Outer-loop history: MI per plan (the last is the fitted one), plan changes, inner runs."""
        if "_history" not in self.__dict__:
            raise AttributeError("log_ is set by fit")
        _ = self.mutual_information_  # completes the MI history
        return self._history

    # -- projections -----------------------------------------------------------------------
    def _target_kernel(self, h: float) -> Any:
        if h == self.h:
            return self.Kt_
        return gaussian_kernel(self.Ct_, h * self.target_kernel_scale_)

    def conditional_score(self, X: Any, h: float | None = None) -> Any:
        r"""Density ratios :math:`R(x, y_j) = f(x, y_j) / (f(x) f(y_j))` for any source points.

        Retrieval ranks the training targets by this score. The kernel from ``X`` to the
        training source uses the bandwidth rule of ``oos_bandwidth``: ``"query"`` (official)
        recomputes it from the query-to-source distances, so a row depends on the rest of the
        batch; ``"train"`` uses the training source's scale, so each row depends on its query only.

        Parameters
        ----------
        X : array, shape (k, d_s)
            Source-domain points (seen in ``fit`` or not).
        h : float, optional
            Relative bandwidth (default: the fitted ``h``).

        Returns
        -------
        R : array, shape (k, m)
        """
        self._check_fitted()
        h = self.h if h is None else h
        _check_h(h)
        X = as_matrix(X, "X", like=self.xs_)
        if X.shape[1] != self.xs_.shape[1]:
            raise ValueError(
                f"X must have {self.xs_.shape[1]} features like the training source, "
                f"got {X.shape[1]}"
            )
        Cq = pairwise_euclidean(X, self.xs_)
        scale = _scale(Cq) if self.oos_bandwidth == "query" else self.source_feature_scale_
        # R is invariant to the scale of a query row: rows scaled to a maximum of 1 stay finite
        # for points far from every training point (the plain kernel underflows to 0 / 0)
        Kq = _row_scaled_gaussian_kernel(Cq, h * scale)
        return density_ratio(self.coupling_, Kq, self._target_kernel(h))

    def transform(self, X: Any, method: str = "barycentric", h: float | None = None) -> Any:
        r"""Map source points into the target domain.

        Parameters
        ----------
        X : array, shape (k, d_s)
            The training source (both methods) or new source points (``"conditional"`` only).
        method : {"barycentric", "conditional"}
            ``"barycentric"``: :math:`\sum_j \Gamma_{ij} y_j / \sum_j \Gamma_{ij}` (training
            source only). ``"conditional"``: :math:`E[y\mid x]` under the kernel joint; for the
            training source it uses the fitted source kernel (official ``project``), for new
            points :meth:`conditional_score`.
        h : float, optional
            Bandwidth of the conditional projection (default: the fitted ``h``).

        Returns
        -------
        X_proj : array, shape (k, d_t)
        """
        self._check_fitted()
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        X = as_matrix(X, "X", like=self.xs_)
        in_sample = _same_array(X, self.xs_)
        if method == "barycentric":
            if not in_sample:
                raise ValueError(
                    "the barycentric projection is defined only for the training source "
                    "(the rows of coupling_); use method='conditional' for new points"
                )
            return barycentric_projection(self.coupling_, self.xt_)
        if not in_sample:
            return conditional_projection(self.conditional_score(X, h=h), self.xt_)
        h = self.h if h is None else h
        _check_h(h)
        Ks = self.Ks_ if h == self.h else gaussian_kernel(self.Cs_, h * self.source_kernel_scale_)
        return conditional_projection(
            density_ratio(self.coupling_, Ks, self._target_kernel(h)), self.xt_
        )

    def inverse_transform(
        self, Xt: Any, method: str = "barycentric", h: float | None = None
    ) -> Any:
        r"""Map target points back into the source domain (POT's ``inverse_transform``).

        Parameters
        ----------
        Xt : array, shape (k, d_t)
            The training target (both methods) or new target points (``"conditional"`` only).
        method : {"barycentric", "conditional"}
            ``"barycentric"``: :math:`\sum_i \Gamma_{ij} x_i / \sum_i \Gamma_{ij}` (training
            target only). ``"conditional"``: :math:`E[x\mid y]` under the kernel joint,
            :math:`\sum_i R(x_i, y) x_i / \sum_i R(x_i, y)`; for new points the kernel from
            ``Xt`` to the training target uses the ``oos_bandwidth`` rule (``"query"``: scale of
            the query-to-target distances; ``"train"``: the training target's scale).
        h : float, optional
            Bandwidth of the conditional projection (default: the fitted ``h``).

        Returns
        -------
        Xs_proj : array, shape (k, d_s)
        """
        self._check_fitted()
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        Xt = as_matrix(Xt, "Xt", like=self.xt_)
        if Xt.shape[1] != self.xt_.shape[1]:
            raise ValueError(
                f"Xt must have {self.xt_.shape[1]} features like the training target, "
                f"got {Xt.shape[1]}"
            )
        P_T = self.coupling_.T
        in_sample = _same_array(Xt, self.xt_)
        if method == "barycentric":
            if not in_sample:
                raise ValueError(
                    "the barycentric inverse projection is defined only for the training target "
                    "(the columns of coupling_); use method='conditional' for new points"
                )
            return barycentric_projection(P_T, self.xs_)
        h = self.h if h is None else h
        _check_h(h)
        Ks = self.Ks_ if h == self.h else gaussian_kernel(self.Cs_, h * self.source_kernel_scale_)
        if in_sample:
            Kq = self._target_kernel(h)
        else:
            Cq = pairwise_euclidean(Xt, self.xt_)
            scale = _scale(Cq) if self.oos_bandwidth == "query" else self.target_kernel_scale_
            Kq = _row_scaled_gaussian_kernel(Cq, h * scale)  # see conditional_score
        return conditional_projection(density_ratio(P_T, Kq, Ks), self.xs_)

    def _propagate(self, labels: Any, P: Any, name: str) -> Any:
        nx = backend_of(P)
        y = as_vector(labels, name, P.shape[0])
        classes = np.unique(y)
        onehot = (y[:, None] == classes[None, :]).astype(np.float64)
        D = nx.from_numpy(onehot, type_as=P)
        # each column of the coupling, normalised: the parity plans miss the column marginals
        return (P / nx.sum(P, axis=0)[None, :]).T @ D

    def transform_labels(self, ys: Any) -> Any:
        r"""Soft labels of the training target by label propagation through the coupling.

        :math:`L_{jc} = \sum_i \Gamma_{ij} [y_i = c] / \sum_i \Gamma_{ij}` (POT's
        ``transform_labels``): each row is a distribution over the classes.

        Parameters
        ----------
        ys : array-like, shape (n,)
            Labels of the training source.

        Returns
        -------
        L : array, shape (m, n_classes)
            Columns in the order of ``numpy.unique(ys)``; rows sum to one.
        """
        self._check_fitted()
        return self._propagate(ys, self.coupling_, "ys")

    def inverse_transform_labels(self, yt: Any) -> Any:
        r"""Soft labels of the training source from target labels (POT's ``inverse_transform_labels``).

        Parameters
        ----------
        yt : array-like, shape (m,)
            Labels of the training target.

        Returns
        -------
        L : array, shape (n, n_classes)
            Columns in the order of ``numpy.unique(yt)``; rows sum to one.
        """
        self._check_fitted()
        return self._propagate(yt, self.coupling_.T, "yt")


class InfoOT(_InfoOTBase):
    r"""InfoOT: the coupling that maximises the kernel mutual information between domains.

    .. math:: \max_{\Gamma \in U(p, q)} \hat I(\Gamma)

    Uses only intra-domain distances, so source and target may live in different spaces
    (different dimensions, modalities). The coupling is found up to the symmetries of the
    two geometries (like Gromov-Wasserstein).

    Parameters
    ----------
    h : float
        Relative kernel bandwidth (official scripts: 0.5).
    reg : float
        Entropic regularisation of each Sinkhorn step (official 0.05).
    max_iter : int
        Outer iterations (official 100).
    tol : float or None
        Early stop when the plan changes by at most ``tol * max(P)``; ``None`` always runs
        ``max_iter`` (the default 1e-13 gives the official plan to about 1e-13).
    sinkhorn : {"pot", "log"}
        ``"pot"`` (parity): POT's scaling Sinkhorn capped at ``inner_max_iter=1000`` as in the
        official code, whose plans do not meet the column marginals exactly. ``"log"``
        (converged): log-domain, warm-started, run to ``inner_tol`` (or ``inner_max_iter``),
        then rounded onto the transport polytope: both marginals hold to rounding error;
        stable for small ``reg`` and float32.
    inner_max_iter : int, optional
        Inner cap (default 1000 for ``"pot"``, 10000 for ``"log"``).
    inner_tol : float
        Inner stopping threshold (POT's 1e-9).
    oos_bandwidth : {"query", "train"}
        Bandwidth for new points in :meth:`conditional_score` (see there).
    progress : bool, optional
        Progress bar over outer iterations (default: only on a terminal).

    Attributes
    ----------
    coupling_ : array, shape (n, m)
    xs_, xt_ : arrays, shapes (n, d_s), (m, d_t)
        Training data.
    Ks_, Kt_ : arrays, shapes (n, n), (m, m)
        Gaussian kernels; ``sigma_s_``, ``sigma_t_`` their bandwidths.
    mutual_information_ : float
        :math:`\hat I` of the coupling.
    n_iter_ : int
        Outer iterations run.
    log_ : dict
        Per-iteration plan change, inner iterations and errors, unconverged inner solves.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs, Xt = rng.normal(size=(30, 2)), rng.normal(size=(25, 3))
    >>> ot = InfoOT(h=0.5, reg=0.05, max_iter=10).fit(Xs, Xt)
    >>> ot.coupling_.shape, ot.transform(Xs, method="conditional").shape
    ((30, 25), (30, 3))
    """

    def __init__(
        self,
        h: float = 0.5,
        reg: float = 0.05,
        max_iter: int = 100,
        tol: float | None = 1e-13,
        sinkhorn: str = "pot",
        inner_max_iter: int | None = None,
        inner_tol: float = 1e-9,
        oos_bandwidth: str = "query",
        progress: bool | None = None,
    ) -> None:
        self.h = h
        self.reg = reg
        self.max_iter = max_iter
        self.tol = tol
        self.sinkhorn = sinkhorn
        self.inner_max_iter = inner_max_iter
        self.inner_tol = inner_tol
        self.oos_bandwidth = oos_bandwidth
        self.progress = progress

    def fit(self, Xs: Any, Xt: Any) -> InfoOT:
        """Fit the coupling between ``Xs`` (n, d_s) and ``Xt`` (m, d_t); returns ``self``."""
        self._check_common()
        Xs = as_matrix(Xs, "Xs")
        Xt = as_matrix(Xt, "Xt", like=Xs)
        self.xs_, self.xt_ = Xs, Xt
        Cs = pairwise_euclidean(Xs)
        self._set_kernels(Cs, pairwise_euclidean(Xt), _scale(Cs))
        # the checks of infoot_plan hold by construction; the final MI waits for its first use
        P, hist = _outer_loop(
            None, self.Ks_, self.Kt_, 1.0, self.reg, self.max_iter, self.tol, self.sinkhorn,
            self.inner_max_iter, self.inner_tol, None, self.progress, "InfoOT", final_mi=False,
        )  # fmt: skip
        self._finish(P, hist)
        return self

    def fit_transform(self, Xs: Any, Xt: Any, method: str = "barycentric") -> Any:
        """``fit(Xs, Xt).transform(Xs, method)``."""
        return self.fit(Xs, Xt).transform(Xs, method=method)


class FusedInfoOT(_InfoOTBase):
    r"""Fused InfoOT: transport cost minus the kernel mutual information.

    .. math:: \min_{\Gamma \in U(p, q)} \langle \Gamma, C\rangle - \lambda \hat I(\Gamma)

    with :math:`C` the Euclidean source-to-target distances (not normalised: ``lam`` and
    ``reg`` were tuned for DeCAF features). Source labels, when given, refine the source
    geometry: distances between classes get ``+ label_delta``, which makes the source kernel
    a class indicator (official behaviour).

    Parameters
    ----------
    h : float
        Relative kernel bandwidth (0.5).
    lam : float
        Weight of the mutual information (official 100); ``lam=0`` is entropic OT.
    reg : float
        Entropic regularisation (official 1.0; the retrieval script uses 5.0).
    max_iter : int
        Outer iterations (official 50).
    metric : {"euclidean", "sqeuclidean"}
        Source-to-target cost (official: Euclidean).
    label_delta : float
        Class offset of the label-refined source distances (official 5000).
    tol, sinkhorn, inner_max_iter, inner_tol, oos_bandwidth, progress
        As in :class:`InfoOT`.

    Attributes
    ----------
    coupling_, xs_, xt_, Ks_, Kt_, mutual_information_, n_iter_, log_
        As in :class:`InfoOT`.
    cost_ : array, shape (n, m)
        The source-to-target cost :math:`C`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Xs, Xt = rng.normal(size=(30, 2)), rng.normal(size=(25, 2)) + 1.0
    >>> ot = FusedInfoOT(max_iter=5).fit(Xs, Xt)
    >>> ot.conditional_score(rng.normal(size=(4, 2))).shape
    (4, 25)
    """

    def __init__(
        self,
        h: float = 0.5,
        lam: float = 100.0,
        reg: float = 1.0,
        max_iter: int = 50,
        metric: str = "euclidean",
        label_delta: float = 5000.0,
        tol: float | None = 1e-13,
        sinkhorn: str = "pot",
        inner_max_iter: int | None = None,
        inner_tol: float = 1e-9,
        oos_bandwidth: str = "query",
        progress: bool | None = None,
    ) -> None:
        self.h = h
        self.lam = lam
        self.reg = reg
        self.max_iter = max_iter
        self.metric = metric
        self.label_delta = label_delta
        self.tol = tol
        self.sinkhorn = sinkhorn
        self.inner_max_iter = inner_max_iter
        self.inner_tol = inner_tol
        self.oos_bandwidth = oos_bandwidth
        self.progress = progress

    def fit(self, Xs: Any, Xt: Any, ys: Any = None) -> FusedInfoOT:
        """Fit the coupling between ``Xs`` (n, d) and ``Xt`` (m, d); ``ys`` (n,) optional labels."""
        self._check_common()
        if not (isinstance(self.lam, int | float) and math.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"lam must be a finite number >= 0, got {self.lam}")
        if self.metric not in ("euclidean", "sqeuclidean"):
            raise ValueError(f"metric must be 'euclidean' or 'sqeuclidean', got {self.metric!r}")
        Xs = as_matrix(Xs, "Xs")
        Xt = as_matrix(Xt, "Xt", like=Xs)
        if Xs.shape[1] != Xt.shape[1]:
            raise ValueError(
                f"Xt must have the same number of features as Xs for FusedInfoOT, got "
                f"{Xt.shape[1]} and {Xs.shape[1]}; use InfoOT for domains of different dimension"
            )
        self.xs_, self.xt_ = Xs, Xt
        C_feat = pairwise_euclidean(Xs)
        Cs = C_feat if ys is None else label_block_distances(Xs, ys, self.label_delta)
        self._set_kernels(Cs, pairwise_euclidean(Xt), _scale(C_feat))
        C = pairwise_euclidean(Xs, Xt)
        self.cost_ = C if self.metric == "euclidean" else C**2
        P, hist = _outer_loop(
            self.cost_, self.Ks_, self.Kt_, float(self.lam), self.reg, self.max_iter, self.tol,
            self.sinkhorn, self.inner_max_iter, self.inner_tol, None, self.progress,
            "FusedInfoOT", final_mi=False,
        )  # fmt: skip
        self._finish(P, hist)
        return self

    def fit_transform(self, Xs: Any, Xt: Any, ys: Any = None, method: str = "barycentric") -> Any:
        """``fit(Xs, Xt, ys).transform(Xs, method)``."""
        return self.fit(Xs, Xt, ys=ys).transform(Xs, method=method)
