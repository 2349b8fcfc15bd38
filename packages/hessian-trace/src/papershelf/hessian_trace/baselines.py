"""Reference solutions of matrix sensing: minimum nuclear norm and minimum Frobenius norm."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["min_frobenius_interpolant", "nuclear_norm_min"]


def _check(a: Tensor, b: Tensor) -> None:
    if not isinstance(a, Tensor) or a.dim() != 3:
        raise ValueError("A must be a tensor of shape (n, d_out, d_in)")
    if not isinstance(b, Tensor) or b.shape != (a.shape[0],):
        raise ValueError(f"b must have shape ({a.shape[0]},), got {tuple(getattr(b, 'shape', ()))}")


def min_frobenius_interpolant(a: Tensor, b: Tensor) -> Tensor:
    """The interpolant of smallest Frobenius norm, :math:`\\mathrm{vec}(X) = \\mathcal A^+ b`.

    Parameters
    ----------
    a : Tensor, shape (n, d_out, d_in)
    b : Tensor, shape (n,)

    Returns
    -------
    Tensor, shape (d_out, d_in)
    """
    _check(a, b)
    n, d_out, d_in = a.shape
    x = torch.linalg.lstsq(a.reshape(n, -1), b.unsqueeze(1), driver="gelsd").solution
    return x.reshape(d_out, d_in)


def _svt(x: Tensor, tau: float) -> Tensor:
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    return (u * (s - tau).clamp_min(0)) @ vh


def nuclear_norm_min(
    a: Tensor,
    b: Tensor,
    *,
    mu_final: float = 1e-7,
    iters_per_stage: int = 300,
    n_stages: int = 12,
    tol: float = 1e-12,
) -> Tensor:
    r"""Minimum nuclear-norm interpolant, :math:`\min \|X\|_* \text{ s.t. } \langle A_i, X\rangle = b_i`.

    Accelerated proximal gradient (singular value thresholding) on
    :math:`\frac1{2}\|\mathcal A(X) - b\|^2 + \mu\|X\|_*` with continuation: ``mu`` falls
    geometrically to ``mu_final``, each stage warm-started from the last.

    Parameters
    ----------
    a : Tensor, shape (n, d_out, d_in)
    b : Tensor, shape (n,)
    mu_final : float
        Last regularisation weight (smaller is closer to exact interpolation).
    iters_per_stage, n_stages : int
        Iterations per value of ``mu`` and number of values.
    tol : float
        Relative change that ends a stage early.

    Returns
    -------
    Tensor, shape (d_out, d_in)
    """
    _check(a, b)
    n, d_out, d_in = a.shape
    mat = a.reshape(n, -1)
    lip = torch.linalg.matrix_norm(mat, ord=2) ** 2
    step = 1.0 / float(lip)
    mu0 = float((mat.T @ b).abs().max())
    mus = torch.logspace(0, 1, n_stages, base=mu_final / mu0, dtype=torch.float64) * mu0
    x = torch.zeros(d_out * d_in, dtype=a.dtype, device=a.device)
    for mu in mus.tolist():
        y, t = x.clone(), 1.0
        for _ in range(iters_per_stage):
            grad = mat.T @ (mat @ y - b)
            x_new = _svt((y - step * grad).reshape(d_out, d_in), step * mu).reshape(-1)
            t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
            y = x_new + (t - 1) / t_new * (x_new - x)
            change = (x_new - x).norm() / x_new.norm().clamp_min(1e-300)
            x, t = x_new, t_new
            if change < tol:
                break
    return x.reshape(d_out, d_in)
