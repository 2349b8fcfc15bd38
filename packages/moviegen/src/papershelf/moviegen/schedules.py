"""Sampling time grids: Movie Gen's linear-quadratic t schedule (Polyak et al. 2024, Sec. 3.1.6).

The paper runs 50 Euler steps whose first half mimics the first 25 steps of a
250-step linear grid and whose second half is quadratic. The paper gives no formula;
this is the C^1 closed form shared by diffusers (``linear_quadratic_schedule`` in the
Mochi pipeline), Mochi and LTX-Video, written in Movie Gen's time (t = 1 - sigma).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["linear_quadratic_t", "linear_t", "to_diffusers_sigmas"]


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")


def linear_t(steps: int) -> Tensor:
    """Uniform grid t_i = i / S; shape (S + 1,), float64."""
    _check_steps(steps)
    return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)


def linear_quadratic_t(
    steps: int = 50, n_emulated: int = 250, n_linear: int | None = None
) -> Tensor:
    """Movie Gen's linear-quadratic grid.

    With L linear steps and tau = L / N:

    .. math::
        t_i = i / N \\ (i \\le L), \\qquad t_i = a i^2 + b i + c \\ (L \\le i \\le S),

    d = L - tau S, a = d / (L (S - L)^2), b = tau / L - 2 d / (S - L)^2, c = a L^2,
    which makes t continuous with a continuous slope at i = L and t_S = 1.

    Parameters
    ----------
    steps : int
        Number of Euler steps S (50 in the paper).
    n_emulated : int
        Length N of the linear schedule whose first L steps are reproduced (250).
    n_linear : int, optional
        L; defaults to S // 2.

    Returns
    -------
    Tensor, shape (S + 1,), float64
        Strictly increasing, t_0 = 0, t_S = 1. S = 50, N = 250 gives 25 steps of 0.004
        up to t = 0.1, then quadratic steps growing from 0.00528 to 0.06672.
    """
    _check_steps(steps)
    L = steps // 2 if n_linear is None else n_linear
    if not 1 <= L < steps:
        raise ValueError(f"n_linear must be in [1, steps), got {L}")
    if n_emulated < steps:
        raise ValueError(f"n_emulated must be >= steps ({steps}), got {n_emulated}")
    S, N = steps, n_emulated
    tau = L / N
    d = L - tau * S
    a = d / (L * (S - L) ** 2)
    b = tau / L - 2 * d / (S - L) ** 2
    c = a * L**2
    i = torch.arange(S + 1, dtype=torch.float64)
    t = torch.where(i <= L, i / N, a * i**2 + b * i + c)
    t[-1] = 1.0  # exact endpoint (the closed form gives 1 up to rounding)
    return t


def to_diffusers_sigmas(t: Tensor) -> Tensor:
    """Convert a Movie Gen grid (S + 1,) to diffusers sigmas (S,): sigma_i = 1 - t_i, i < S.

    Pass them to ``FlowMatchEulerDiscreteScheduler(shift=1.0).set_timesteps(sigmas=...)``
    and give ``step`` the negated velocity; the result equals :func:`euler_sample`.
    """
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"t must be a 1-D grid with at least 2 entries, got {tuple(t.shape)}")
    return 1.0 - t[:-1]
