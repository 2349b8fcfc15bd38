r"""The rank-one restricted isometry constant of a set of measurement matrices.

The paper's theorem needs (1, δ)-RIP: for every rank-one :math:`X = u v^\top`,

.. math::

    (1 - \delta)\lVert X\rVert_F^2 \le \frac1n \sum_i \langle A_i, X\rangle^2
        \le (1 + \delta)\lVert X\rVert_F^2,

and its bound on the nuclear norm of the min-trace interpolant,
:math:`((1+\delta)/(1-\delta))^{L/(2L-2)}`, is vacuous unless :math:`\delta < 1`.

For unit :math:`u, v` the middle term is the biquadratic form
:math:`g(u, v) = \frac1n\sum_i (u^\top A_i v)^2`. For fixed :math:`v` it is the quadratic form
of :math:`M(v) = \frac1n \sum_i A_i v v^\top A_i^\top` in :math:`u`, so its extremes over
:math:`u` are eigenvalues; alternating between :math:`u` and :math:`v` is monotone, and many
random restarts approximate the global extremes. What this returns is therefore an
**estimate from below** of the true δ (a certified rank-one violation: the maximiser and
minimiser found are explicit rank-one matrices), i.e. δ is at least this; the estimate is
tight in practice once restarts agree. A certified *upper* bound needs an SDP relaxation or a
net over the sphere; the only cheap one, :math:`\max(\lambda_{\max}(G) - 1, 1 - \lambda_{\min}(G))`
for the full :math:`d_0 d_L \times d_0 d_L` Gram matrix :math:`G`, is vacuous
(:math:`\ge 1`) whenever :math:`n < d_0 d_L`, which is the only interesting regime.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from papershelf.core.validation import check_int, check_real

__all__ = ["RIPEstimate", "rip_constant", "theorem_factor"]


@dataclass(frozen=True)
class RIPEstimate:
    """Extremes of the rank-one measurement energy found by alternating maximisation.

    Attributes
    ----------
    delta : float
        ``max(upper - 1, 1 - lower)``: the rank-one RIP constant found (a lower estimate of
        the true constant).
    upper, lower : float
        Largest and smallest :math:`\\frac1n\\sum_i (u^\\top A_i v)^2` found over unit u, v.
    restarts : int
        Random starts per side.
    """

    delta: float
    upper: float
    lower: float
    restarts: int


def _side(a: Tensor, v: Tensor, top: bool, iters: int) -> Tensor:
    n = a.shape[0]
    val = torch.empty(0)
    for _ in range(iters):
        av = torch.einsum("nab,rb->rna", a, v)  # (r, n, d_out): rows u -> u^T A_i v
        w, vecs = torch.linalg.eigh(av.transpose(1, 2) @ av / n)
        u = vecs[:, :, -1] if top else vecs[:, :, 0]
        au = torch.einsum("nab,ra->rnb", a, u)
        w, vecs = torch.linalg.eigh(au.transpose(1, 2) @ au / n)
        v = vecs[:, :, -1] if top else vecs[:, :, 0]
        val = w[:, -1] if top else w[:, 0]
    return val


def rip_constant(
    measurements: Tensor,
    *,
    restarts: int = 64,
    iters: int = 50,
    generator: torch.Generator | None = None,
) -> RIPEstimate:
    r"""Rank-one RIP constant of measurement matrices ``A`` (n, d_out, d_in), from below.

    Parameters
    ----------
    measurements : Tensor, shape (n, d_out, d_in)
        The :math:`A_i` (the loss uses :math:`\frac1n\sum_i(\langle A_i, E\rangle - b_i)^2`).
    restarts : int
        Random unit starts per side (largest and smallest energy), run as one batch.
    iters : int
        Alternating eigen-steps per start.
    generator : torch.Generator, optional
        For the random starts (default: seeded with 0, so the estimate is reproducible).

    Returns
    -------
    RIPEstimate
        ``delta`` is a lower estimate of the true constant: the theorem's condition
        ``delta < 1`` is *refuted* when it is ``>= 1`` and supported (not certified) below.

    Examples
    --------
    >>> import torch
    >>> a = torch.randn(2000, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> rip_constant(a).delta < 0.5  # many measurements of a small matrix: nearly isometric
    True
    """
    if not isinstance(measurements, Tensor) or measurements.ndim != 3:
        shape = getattr(measurements, "shape", type(measurements).__name__)
        raise ValueError(f"measurements must be a tensor of shape (n, d_out, d_in), got {shape}")
    if not measurements.is_floating_point():
        raise TypeError(f"measurements must be floating point, got {measurements.dtype}")
    if not bool(torch.isfinite(measurements).all()):
        raise ValueError("measurements must be finite")
    restarts = check_int("restarts", restarts, low=1)
    iters = check_int("iters", iters, low=1)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    a = measurements.to(torch.float64)
    d_in = a.shape[2]
    out = []
    for top in (True, False):
        v = torch.randn(restarts, d_in, generator=gen, dtype=a.dtype)
        v = v / v.norm(dim=1, keepdim=True)
        out.append(_side(a, v, top, iters))
    upper, lower = float(out[0].max()), float(out[1].min())
    return RIPEstimate(max(upper - 1.0, 1.0 - lower), upper, lower, restarts)


def theorem_factor(delta: float, depth: int) -> float:
    r"""The theorem's factor :math:`((1+\delta)/(1-\delta))^{L/(2L-2)}` (``inf`` for δ >= 1).

    The nuclear norm of the min-trace interpolant is at most this times the minimum nuclear
    norm over interpolants, under (1, δ)-RIP (Gatmiry et al., 2023, main theorem; constant as
    stated in the package specification, to be checked against the PDF).
    """
    depth = check_int("depth", depth, low=2)
    delta = check_real("delta", delta, low=0.0, allow_inf=True)
    if delta >= 1.0:
        return float("inf")
    return float(((1.0 + delta) / (1.0 - delta)) ** (depth / (2 * depth - 2)))
