r"""Maps from the source to the target domain (InfoOT, Sec. 4).

* Barycentric: :math:`T(x_i) = \sum_j \Gamma_{ij} y_j / \sum_j \Gamma_{ij}`, defined only for
  the training source points (rows of the coupling).
* Conditional: :math:`T(x) = \sum_j R(x, y_j) y_j / \sum_j R(x, y_j)` with the density ratio
  :math:`R` of :func:`papershelf.infoot.density_ratio`; this is :math:`E[y \mid x]` under the
  kernel-density joint, defined for any ``x`` (the kernel to the training source extends it).
"""

from __future__ import annotations

from typing import Any

from papershelf.infoot._backend import backend_of

__all__ = ["barycentric_projection", "conditional_projection"]


def _weighted_mean(W: Any, Xt: Any, name: str) -> Any:
    if W.ndim != 2 or Xt.ndim != 2 or W.shape[1] != Xt.shape[0]:
        raise ValueError(
            f"{name} must have shape (k, m) with m = len(Xt) = {Xt.shape[0]}, got {tuple(W.shape)}"
        )
    nx = backend_of(W, Xt)
    weights = nx.sum(W, axis=1)
    return (W @ Xt) / weights[:, None]


def barycentric_projection(P: Any, Xt: Any) -> Any:
    r"""Barycentric projection of the training source through the coupling.

    Parameters
    ----------
    P : array, shape (n, m)
        Coupling.
    Xt : array, shape (m, d_t)
        Target points.

    Returns
    -------
    X_proj : array, shape (n, d_t)
    """
    return _weighted_mean(P, Xt, "P")


def conditional_projection(R: Any, Xt: Any) -> Any:
    r"""Conditional projection :math:`E[y \mid x]` from density ratios.

    Parameters
    ----------
    R : array, shape (k, m)
        Density ratios (:func:`papershelf.infoot.density_ratio`) of ``k`` points.
    Xt : array, shape (m, d_t)
        Target points.

    Returns
    -------
    X_proj : array, shape (k, d_t)
    """
    return _weighted_mean(R, Xt, "R")
