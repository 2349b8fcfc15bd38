r"""The kernel-density mutual information of a coupling and its gradient (InfoOT, Sec. 3).

With Gaussian kernels :math:`K_s` (source) and :math:`K_t` (target), a coupling :math:`\Gamma`
defines the joint density estimate :math:`F = K_s \Gamma K_t^\top`,
:math:`f(x_i, y_j) = \sum_{k,l} \Gamma_{kl} K_s[i,k] K_t[j,l]`, and the marginals are the
plain KDEs :math:`f(x_i) = \frac1n\sum_k K_s[i,k]`, :math:`f(y_j) = \frac1m\sum_l K_t[j,l]`.
The estimate is

.. math:: \hat I(\Gamma) = \sum_{ij} \Gamma_{ij}\log\frac{f(x_i, y_j)}{f(x_i) f(y_j)} .
"""

from __future__ import annotations

from typing import Any

import numpy as np

from papershelf.infoot._backend import backend_of

__all__ = ["density_ratio", "kde_mutual_information", "mi_gradient"]


def _mi_and_gradient(P: Any, Ks: Any, Kt: Any, marginals: Any) -> tuple[float, Any]:
    """(MI of P, gradient) sharing one joint-density product; ``marginals`` = f(x_i) f(y_j)."""
    nx = backend_of(P, Ks, Kt)
    F = (Ks @ P) @ Kt.T
    inner = (Ks @ (P / F)) @ Kt.T
    logR = nx.log(F / marginals)
    return float(nx.sum(P * logR)), logR + inner


class _GradientWorkspace:
    """Linearised cost of one outer step with three reused (n, m) buffers (numpy only).

    The same operations in the same order as :func:`_mi_and_gradient` followed by the cost
    assembly of the outer loop (bitwise equal results), without its ten temporaries of the
    size of the plan per step.
    """

    def __init__(self, n: int, m: int, dtype: Any) -> None:
        self.a = np.empty((n, m), dtype=dtype)
        self.b = np.empty((n, m), dtype=dtype)
        self.c = np.empty((n, m), dtype=dtype)

    def cost(
        self, P: np.ndarray, Ks: np.ndarray, Kt: np.ndarray, marginals: np.ndarray,
        C: np.ndarray | None, lam: float,
    ) -> tuple[float, np.ndarray]:  # fmt: skip
        """(MI of P, C - lam * grad) or, for ``C=None``, (MI, -grad); the cost is a new array."""
        a, b, c = self.a, self.b, self.c
        KtT = Kt.T
        np.dot(Ks, P, out=a)
        F = np.dot(a, KtT)  # returned as the cost below, so not a workspace buffer
        np.divide(P, F, out=a)
        np.dot(Ks, a, out=b)
        np.dot(b, KtT, out=c)  # inner
        np.divide(F, marginals, out=F)
        np.log(F, out=F)  # log R
        np.multiply(P, F, out=a)
        mi = float(np.sum(a))
        np.add(F, c, out=F)  # the gradient
        np.negative(F, out=F)
        if C is not None:
            np.multiply(lam, F, out=F)
            np.add(C, F, out=F)
        return mi, F


def _marginals(Ks: Any, Kt: Any) -> Any:
    nx = backend_of(Ks, Kt)
    fs = nx.sum(Ks, axis=1) / Ks.shape[1]
    ft = nx.sum(Kt, axis=1) / Kt.shape[1]
    return fs[:, None] * ft[None, :]


def _check(P: Any, Ks: Any, Kt: Any) -> None:
    if P.ndim != 2 or Ks.ndim != 2 or Kt.ndim != 2:
        raise ValueError("P, Ks and Kt must be 2-D")
    if Ks.shape[1] != P.shape[0]:
        raise ValueError(f"Ks has {Ks.shape[1]} columns but P has {P.shape[0]} rows")
    if Kt.shape != (P.shape[1], P.shape[1]):
        raise ValueError(f"Kt must have shape ({P.shape[1]}, {P.shape[1]}), got {tuple(Kt.shape)}")


def density_ratio(P: Any, Ks: Any, Kt: Any) -> Any:
    r"""The ratio :math:`R_{ij} = f(x_i, y_j) / (f(x_i) f(y_j))` under the coupling ``P``.

    ``R`` is the conditional score used for retrieval and for the conditional projection
    (official ``ratio``). For an independent coupling :math:`P = pq^\top`, :math:`R \equiv 1`.

    Parameters
    ----------
    P : array, shape (n, m)
        Coupling between the training source and target.
    Ks : array, shape (k, n)
        Kernel from the points to score (the training source itself, ``k = n``, or new
        queries) to the training source.
    Kt : array, shape (m, m)
        Target kernel.

    Returns
    -------
    R : array, shape (k, m)

    References
    ----------
    Chuang, Jegelka, Alvarez-Melis. InfoOT: Information Maximizing Optimal Transport. ICML 2023.
    """
    _check(P, Ks, Kt)
    F = (Ks @ P) @ Kt.T
    return F / _marginals(Ks, Kt)


def kde_mutual_information(P: Any, Ks: Any, Kt: Any) -> float:
    r"""The kernel mutual information :math:`\hat I(\Gamma)` of a coupling.

    Parameters
    ----------
    P : array, shape (n, m)
        Coupling (non-negative, sums to 1).
    Ks : array, shape (n, n)
        Source kernel.
    Kt : array, shape (m, m)
        Target kernel.

    Returns
    -------
    mi : float
        0 for the independent coupling; larger for couplings that keep clusters together.

    Examples
    --------
    >>> import numpy as np
    >>> from papershelf.infoot import gaussian_kernels, pairwise_euclidean
    >>> X = np.random.default_rng(0).normal(size=(5, 2))
    >>> Ks, Kt = gaussian_kernels(pairwise_euclidean(X), pairwise_euclidean(X), 0.5)
    >>> abs(kde_mutual_information(np.full((5, 5), 1 / 25), Ks, Kt)) < 1e-12
    True
    """
    _check(P, Ks, Kt)
    nx = backend_of(P, Ks, Kt)
    R = density_ratio(P, Ks, Kt)
    positive = P > 0
    logR = nx.log(nx.where(positive, R, nx.ones(R.shape, type_as=R)))
    return float(nx.sum(P * logR))


def mi_gradient(P: Any, Ks: Any, Kt: Any) -> Any:
    r"""The gradient :math:`\nabla_\Gamma \hat I`.

    .. math:: \frac{\partial \hat I}{\partial \Gamma_{ij}}
       = \log\frac{F_{ij}}{f(x_i) f(y_j)} + \big[K_s (\Gamma \oslash F) K_t^\top\big]_{ij}.

    The official ``migrad`` returns the negative of this.

    Parameters
    ----------
    P : array, shape (n, m)
    Ks : array, shape (n, n)
    Kt : array, shape (m, m)

    Returns
    -------
    G : array, shape (n, m)
    """
    _check(P, Ks, Kt)
    nx = backend_of(P, Ks, Kt)
    F = (Ks @ P) @ Kt.T
    inner = (Ks @ (P / F)) @ Kt.T
    # same operation order as the official code, so the parity numbers agree to rounding
    return nx.log(F / _marginals(Ks, Kt)) + inner
