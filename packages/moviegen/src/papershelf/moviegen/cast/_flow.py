"""Flow-matching pieces shared by the cast: training pairs, ODE solvers, MultiDiffusion windows.

Training follows Movie Gen's flow matching (Polyak et al. 2024, Sec. 3.1.2) through
:mod:`papershelf.moviegen.flow`. Sampling integrates t = 0 (noise) -> 1 (data) with Euler
(video models, Sec. 3.1.6) or the midpoint rule (Movie Gen Audio, Sec. 6). Long outputs are
produced with MultiDiffusion (Bar-Tal et al. 2023): at every solver step the velocity of
each overlapping window is computed and the windows are averaged with weights that sum
to one at every position (uniform for the upsampler, Sec. 3.2; triangular for audio
extension, Sec. 6.3).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor

from papershelf.moviegen.flow import SIGMA_MIN, interpolate, sample_t_logit_normal, target_velocity

__all__ = [
    "flow_pair",
    "integrate",
    "multidiffusion_velocity",
    "multidiffusion_weights",
    "window_starts",
]


def flow_pair(
    x1: Tensor, generator: torch.Generator | None = None, sigma_min: float = SIGMA_MIN
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw (X_t, t, V_t) for clean data ``x1`` (B, ...): logit-normal t, Gaussian X_0 (on CPU)."""
    x0 = torch.randn(x1.shape, generator=generator).to(x1)
    t = sample_t_logit_normal(x1.shape[0], generator=generator).to(x1)
    return interpolate(x1, x0, t, sigma_min), t, target_velocity(x1, x0, sigma_min)


def integrate(
    velocity: Callable[[Tensor, Tensor], Tensor], x0: Tensor, t_grid: Tensor, method: str = "euler"
) -> Tensor:
    """Solve dX/dt = velocity(X, t) from t_grid[0] to t_grid[-1].

    Parameters
    ----------
    velocity : callable
        ``velocity(x, t)`` with t of shape (B,).
    x0 : Tensor, shape (B, ...)
        State at t_grid[0] (noise).
    t_grid : Tensor, shape (S + 1,)
        Strictly increasing times in [0, 1].
    method : {"euler", "midpoint"}
        First-order Euler (video) or the second-order midpoint rule (audio).
    """
    if method not in ("euler", "midpoint"):
        raise ValueError(f"method must be 'euler' or 'midpoint', got {method!r}")
    t_grid = torch.as_tensor(t_grid, dtype=torch.float64)
    if t_grid.ndim != 1 or t_grid.numel() < 2 or bool((t_grid.diff() <= 0).any()):
        raise ValueError("t_grid must be a strictly increasing 1-D grid with >= 2 entries")
    if float(t_grid[0]) < 0 or float(t_grid[-1]) > 1:
        raise ValueError("t_grid must lie in [0, 1]")
    x, B = x0, x0.shape[0]
    ts = t_grid.tolist()
    for a, b in itertools.pairwise(ts):
        ta = torch.full((B,), a, device=x.device)
        if method == "euler":
            x = x + (b - a) * velocity(x, ta)
        else:
            xm = x + 0.5 * (b - a) * velocity(x, ta)
            x = x + (b - a) * velocity(xm, torch.full((B,), 0.5 * (a + b), device=x.device))
    return x


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start indices of sliding windows covering ``range(length)``.

    Windows advance by ``window - overlap``; the last one is aligned to the end, so every
    window has full length. A sequence no longer than ``window`` gets one window.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must satisfy 0 <= overlap < window ({window}), got {overlap}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if length <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def multidiffusion_weights(
    length: int, window: int, overlap: int, kind: str = "uniform"
) -> tuple[list[int], Tensor]:
    """Per-window blending weights that sum to one at every position.

    Parameters
    ----------
    length, window, overlap : int
        Sequence length, window length and overlap (same units, e.g. latent frames).
    kind : {"uniform", "triangular"}
        Uniform averaging (MultiDiffusion, used by the upsampler) or triangular window
        weights peaking at the window centre (Movie Gen Audio's extension).

    Returns
    -------
    starts : list of int
    weights : Tensor, shape (n_windows, length), float64
        Zero outside each window; ``weights.sum(0) == 1``.
    """
    if kind not in ("uniform", "triangular"):
        raise ValueError(f"kind must be 'uniform' or 'triangular', got {kind!r}")
    starts = window_starts(length, window, overlap)
    w = min(window, length)
    j = torch.arange(w, dtype=torch.float64)
    base = torch.ones(w, dtype=torch.float64) if kind == "uniform" else torch.minimum(j + 1, w - j)
    out = torch.zeros(len(starts), length, dtype=torch.float64)
    for k, s in enumerate(starts):
        out[k, s : s + w] = base
    return starts, out / out.sum(0, keepdim=True)


def multidiffusion_velocity(
    velocity: Callable[[Tensor, Tensor, int], Tensor],
    x: Tensor,
    t: Tensor,
    dim: int,
    window: int,
    overlap: int,
    kind: str = "uniform",
) -> Tensor:
    """Blend window velocities along axis ``dim`` of ``x`` (one MultiDiffusion step).

    Parameters
    ----------
    velocity : callable
        ``velocity(x_window, t, start)`` returning the velocity of the window.
    x : Tensor
        Full-length state.
    t : Tensor, shape (B,)
    dim : int
        The axis that is windowed (time).
    window, overlap : int
        In units of that axis.
    kind : {"uniform", "triangular"}
    """
    starts, w = multidiffusion_weights(x.shape[dim], window, overlap, kind)
    w = w.to(x)
    n = min(window, x.shape[dim])
    out = torch.zeros_like(x)
    shape = [1] * x.ndim
    shape[dim] = n
    for k, s in enumerate(starts):
        xs = x.narrow(dim, s, n)
        v = velocity(xs, t, s)
        out.narrow(dim, s, n).add_(v * w[k, s : s + n].reshape(shape))
    return out
