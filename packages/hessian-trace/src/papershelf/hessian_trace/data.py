"""Synthetic low-rank matrix sensing: the paper's experimental setting, with no downloads."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from papershelf.core.validation import check_int

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
        Seed for a fresh generator (ignored when ``generator`` is given). With neither
        ``seed`` nor ``generator``, the generator is seeded from fresh OS entropy, so every
        call draws a new problem (as ``torch.randn`` would); pass ``seed`` to reproduce one.
    generator : torch.Generator, optional
        Draw from this generator (advancing it): a loop over problems with one seeded
        generator gives distinct, reproducible problems.
    dtype : torch.dtype
        float64 by default: recovery errors of 1e-8 need it.

    Returns
    -------
    SensingProblem
    """
    d_in = check_int("d_in", d_in, low=1)
    d_out = check_int("d_out", d_out, low=1)
    rank = check_int("rank", rank, low=1, high=min(d_in, d_out))
    n = check_int("n", n, low=1)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if generator is None:
        generator = torch.Generator()
        if seed is None:
            generator.seed()  # OS entropy: a new problem on every call
        else:
            generator.manual_seed(check_int("seed", seed, low=0))
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    u = torch.randn(d_out, rank, generator=generator, dtype=dtype)
    v = torch.randn(d_in, rank, generator=generator, dtype=dtype)
    low_rank = u @ v.T
    m = low_rank * (rank**0.5 / torch.linalg.matrix_norm(low_rank))
    a = torch.randn(n, d_out, d_in, generator=generator, dtype=dtype)
    b = torch.einsum("nab,ab->n", a, m)
    return SensingProblem(A=a, b=b, M_star=m, rank=rank)
