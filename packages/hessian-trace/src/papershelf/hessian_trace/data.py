"""Synthetic low-rank matrix sensing: the paper's experimental setting, with no downloads."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SensingProblem", "gaussian_sensing"]


@dataclass(frozen=True)
class SensingProblem:
    """Noiseless linear measurements :math:`b_i = \\langle A_i, M^*\\rangle` of a low-rank matrix.

    Attributes
    ----------
    A : Tensor, shape (n, d_out, d_in)
        Measurement matrices.
    b : Tensor, shape (n,)
        Measurements.
    M_star : Tensor, shape (d_out, d_in)
        The rank-``r`` ground truth, normalised to :math:`\\|M^*\\|_F^2 = r`.
    rank : int
    """

    A: Tensor
    b: Tensor
    M_star: Tensor
    rank: int

    @property
    def n(self) -> int:
        """Number of measurements."""
        return int(self.A.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """``(d_out, d_in)`` of the matrix to recover."""
        return int(self.M_star.shape[0]), int(self.M_star.shape[1])

    def test_error(self, e: Tensor) -> Tensor:
        """Relative recovery error :math:`\\|E - M^*\\|_F^2 / \\|M^*\\|_F^2`."""
        return (e - self.M_star).pow(2).sum() / self.M_star.pow(2).sum()


def gaussian_sensing(
    d_in: int,
    d_out: int,
    rank: int,
    n: int,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> SensingProblem:
    """A random rank-``rank`` matrix and ``n`` Gaussian measurements of it.

    Parameters
    ----------
    d_in, d_out : int
        Matrix shape is ``(d_out, d_in)``.
    rank : int
        ``1 <= rank <= min(d_in, d_out)``.
    n : int
        Number of measurements; :math:`A_i` have i.i.d. :math:`N(0, 1)` entries.
    seed : int, optional
        Seed for a fresh generator (ignored when ``generator`` is given).
    generator : torch.Generator, optional
    dtype : torch.dtype
        float64 by default: recovery errors of 1e-8 need it.

    Returns
    -------
    SensingProblem
    """
    for name, value in (("d_in", d_in), ("d_out", d_out), ("rank", rank), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if rank > min(d_in, d_out):
        raise ValueError(f"rank must be <= min(d_in, d_out) = {min(d_in, d_out)}, got {rank}")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    u = torch.randn(d_out, rank, generator=generator, dtype=dtype)
    v = torch.randn(d_in, rank, generator=generator, dtype=dtype)
    low_rank = u @ v.T
    m = low_rank * (rank**0.5 / torch.linalg.matrix_norm(low_rank))
    a = torch.randn(n, d_out, d_in, generator=generator, dtype=dtype)
    b = torch.einsum("nab,ab->n", a, m)
    return SensingProblem(A=a, b=b, M_star=m, rank=rank)
