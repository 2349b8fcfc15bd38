r"""Deep linear networks (deep matrix factorization) and the closed forms of their Hessian trace.

A depth-``L`` network has layers :math:`W_j \in \mathbb R^{d_j\times d_{j-1}}` and end-to-end matrix
:math:`E = W_L\cdots W_1`. For linear measurements :math:`b_i = \langle A_i, M^*\rangle` and the loss
:math:`L(x) = \frac1n\sum_i(\langle A_i, E(x)\rangle - b_i)^2`,

.. math::

    \operatorname{tr}\nabla^2 L(x) = \frac2n \sum_i\sum_j \|P_j^\top A_i Q_j^\top\|_F^2,
    \qquad P_j = W_L\cdots W_{j+1},\; Q_j = W_{j-1}\cdots W_1,

exactly at every ``x``: each :math:`\langle A_i, E\rangle` is linear in each layer, so the
residual term of the Hessian has zero trace.

References
----------
Gatmiry, Li, Ma, Reddi, Jegelka, Chuang. "What is the Inductive Bias of Flatness
Regularization? A Study of Deep Matrix Factorization Models." NeurIPS 2023.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = [
    "DeepLinearNetwork",
    "balanced_min_trace_factorization",
    "deep_linear_trace",
    "end_to_end",
    "measurement_loss",
    "min_trace_bound",
    "population_trace",
    "precompute",
]

Normalization = Literal["mean", "half_mean", "sum"]


def _check_weights(weights: Sequence[Tensor]) -> list[Tensor]:
    ws = list(weights)
    if len(ws) < 2:
        raise ValueError(f"a deep linear network needs depth >= 2, got {len(ws)} layer(s)")
    for j, w in enumerate(ws):
        if not isinstance(w, Tensor) or w.dim() != 2:
            raise ValueError(
                f"weights[{j}] must be a 2-D tensor, got {getattr(w, 'shape', type(w))}"
            )
        if not w.is_floating_point():
            raise TypeError(f"weights[{j}] must be floating point, got {w.dtype}")
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"weights[{j}] holds NaN or inf")
    for j in range(1, len(ws)):
        if ws[j].shape[1] != ws[j - 1].shape[0]:
            raise ValueError(
                f"non-conforming layers: weights[{j}] has shape {tuple(ws[j].shape)} but "
                f"weights[{j - 1}] has shape {tuple(ws[j - 1].shape)} "
                f"(need weights[{j}].shape[1] == weights[{j - 1}].shape[0])"
            )
    return ws


def end_to_end(weights: Sequence[Tensor]) -> Tensor:
    """The end-to-end matrix :math:`W_L\\cdots W_1`.

    Parameters
    ----------
    weights : sequence of Tensor
        ``weights[j]`` has shape ``(d_{j+1}, d_j)``, first layer first.

    Returns
    -------
    Tensor, shape (d_L, d_0)
    """
    ws = _check_weights(weights)
    out = ws[0]
    for w in ws[1:]:
        out = w @ out
    return out


def _prefix_suffix(ws: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """``P_j P_j^T`` (d_L x d_L) and ``Q_j^T Q_j`` (d_0 x d_0) for every layer ``j``."""
    depth = len(ws)
    d_in, d_out = ws[0].shape[1], ws[-1].shape[0]
    eye_in = torch.eye(d_in, dtype=ws[0].dtype, device=ws[0].device)
    eye_out = torch.eye(d_out, dtype=ws[0].dtype, device=ws[0].device)
    q_list: list[Tensor] = []  # Q_j = W_{j-1}...W_1, shape (d_{j-1}, d_0)
    q = eye_in
    for j in range(depth):
        q_list.append(q)
        q = ws[j] @ q
    p_list: list[Tensor] = [eye_out] * depth  # P_j = W_L...W_{j+1}, shape (d_L, d_j)
    p = eye_out
    for j in range(depth - 1, -1, -1):
        p_list[j] = p
        p = p @ ws[j]
    return [p @ p.T for p in p_list], [q.T @ q for q in q_list]


def _check_measurements(measurements: Tensor, d_out: int, d_in: int) -> Tensor:
    if not isinstance(measurements, Tensor) or measurements.dim() != 3:
        raise ValueError("measurements must be a tensor of shape (n, d_L, d_0)")
    if measurements.shape[1:] != (d_out, d_in):
        raise ValueError(
            f"measurements have shape {tuple(measurements.shape)}, expected (n, {d_out}, {d_in}) "
            "to match the end-to-end matrix"
        )
    if measurements.shape[0] < 1:
        raise ValueError("measurements must hold at least one matrix")
    if not bool(torch.isfinite(measurements).all()):
        raise ValueError("measurements hold NaN or inf")
    return measurements


def precompute(measurements: Tensor) -> Tensor:
    r"""The measurement sum :math:`S_{abce} = \sum_i (A_i)_{ab}(A_i)_{ce}`, computed once.

    Parameters
    ----------
    measurements : Tensor, shape (n, d_L, d_0)

    Returns
    -------
    Tensor, shape (d_L, d_0, d_L, d_0)
        Makes :func:`deep_linear_trace` cost :math:`O(L (d_0 d_L)^2)`, independent of ``n``.
    """
    if not isinstance(measurements, Tensor) or measurements.dim() != 3:
        raise ValueError("measurements must be a tensor of shape (n, d_L, d_0)")
    n, d_out, d_in = measurements.shape
    flat = measurements.reshape(n, -1)
    return (flat.T @ flat).reshape(d_out, d_in, d_out, d_in)


def _scale(norm: str, n: int) -> float:
    if norm == "mean":
        return 2.0 / n
    if norm == "half_mean":
        return 1.0 / n
    if norm == "sum":
        return 2.0
    raise ValueError(f"normalization must be 'mean', 'half_mean' or 'sum', got {norm!r}")


def deep_linear_trace(
    weights: Sequence[Tensor],
    measurements: Tensor,
    *,
    normalization: Normalization = "mean",
    precomputed: Tensor | None = None,
) -> Tensor:
    r"""Closed-form Hessian trace of the squared measurement loss of a deep linear network.

    .. math:: \operatorname{tr}\nabla^2 L = \frac{2}{n}\sum_{j=1}^{L}
              \sum_{a,b,c,e} S_{abce}\,(P_jP_j^\top)_{ac}\,(Q_j^\top Q_j)_{eb}

    Exact at every point (not only at zero loss), differentiable in ``weights`` by plain
    autograd, and ``O(L (d_0 d_L)^2)`` once :func:`precompute` has formed ``S``.

    Parameters
    ----------
    weights : sequence of Tensor
        Layers, ``weights[j]`` of shape ``(d_{j+1}, d_j)``; depth ``L >= 2``.
    measurements : Tensor, shape (n, d_L, d_0)
        The measurement matrices :math:`A_i` (only ``n`` is read when ``precomputed`` is given).
    normalization : {"mean", "half_mean", "sum"}
        Loss convention :math:`\frac1n\sum`, :math:`\frac1{2n}\sum` or :math:`\sum` of squares.
    precomputed : Tensor, shape (d_L, d_0, d_L, d_0), optional
        :func:`precompute` of ``measurements``.

    Returns
    -------
    Tensor, shape ()
    """
    ws = _check_weights(weights)
    d_in, d_out = ws[0].shape[1], ws[-1].shape[0]
    a = _check_measurements(measurements, d_out, d_in)
    s = precompute(a) if precomputed is None else precomputed
    if s.shape != (d_out, d_in, d_out, d_in):
        raise ValueError(
            f"precomputed must have shape {(d_out, d_in, d_out, d_in)}, got {tuple(s.shape)}"
        )
    pp, qq = _prefix_suffix(ws)
    total = torch.stack([torch.einsum("abce,ac,eb->", s, p, q) for p, q in zip(pp, qq)]).sum()
    return _scale(normalization, a.shape[0]) * total


def measurement_loss(
    weights: Sequence[Tensor],
    measurements: Tensor,
    targets: Tensor,
    *,
    normalization: Normalization = "mean",
) -> Tensor:
    r""":math:`\frac1n\sum_i(\langle A_i, E\rangle - b_i)^2` (or the ``half_mean`` / ``sum`` variants).

    Parameters
    ----------
    weights : sequence of Tensor
    measurements : Tensor, shape (n, d_L, d_0)
    targets : Tensor, shape (n,)
    """
    e = end_to_end(weights)
    a = _check_measurements(measurements, e.shape[0], e.shape[1])
    if targets.shape != (a.shape[0],):
        raise ValueError(f"targets must have shape ({a.shape[0]},), got {tuple(targets.shape)}")
    r = torch.einsum("nab,ab->n", a, e) - targets
    return _scale(normalization, a.shape[0]) / 2 * r.pow(2).sum()


def population_trace(weights: Sequence[Tensor]) -> Tensor:
    r"""The Gaussian-measurement proxy :math:`F(x) = 2\sum_j \|P_j\|_F^2\,\|Q_j\|_F^2`.

    The expected Hessian trace for i.i.d. :math:`N(0,1)` measurements; under RIP the
    empirical trace is within a factor :math:`1\pm\delta` of it.

    Parameters
    ----------
    weights : sequence of Tensor

    Returns
    -------
    Tensor, shape ()
    """
    ws = _check_weights(weights)
    pp, qq = _prefix_suffix(ws)
    return 2 * torch.stack([torch.trace(p) * torch.trace(q) for p, q in zip(pp, qq)]).sum()


def _check_depth(depth: int) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise TypeError(f"depth must be an int, got {type(depth).__name__}")
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    return depth


def min_trace_bound(e: Tensor, depth: int) -> Tensor:
    r"""Minimum of :func:`population_trace` over all depth-``L`` factorizations of ``E``.

    .. math:: \min_{x:\,E(x)=E} F(x) = 2L\,(d_0 d_L)^{1/L}\,\|E\|_*^{2-2/L}

    Parameters
    ----------
    e : Tensor, shape (d_L, d_0)
        The end-to-end matrix.
    depth : int
        ``L >= 2``.

    Returns
    -------
    Tensor, shape ()
    """
    depth = _check_depth(depth)
    if not isinstance(e, Tensor) or e.dim() != 2:
        raise ValueError("e must be a 2-D tensor")
    d_out, d_in = e.shape
    nuc = torch.linalg.matrix_norm(e, ord="nuc")
    return 2 * depth * (d_in * d_out) ** (1.0 / depth) * nuc ** (2 - 2.0 / depth)


def balanced_min_trace_factorization(
    e: Tensor, depth: int, widths: Sequence[int] | None = None, *, rtol: float = 1e-10
) -> list[Tensor]:
    r"""A factorization of ``E`` that attains :func:`min_trace_bound`.

    :math:`W_1 = c_1\Sigma^{1/2}V^\top`, :math:`W_L = c_L U\Sigma^{1/2}`, middle layers
    :math:`c_j` times partial identities, with the scalars :math:`c_j` (product 1) chosen so
    that the ``L`` terms of :func:`population_trace` are equal. This is not the
    weight-decay-balanced factorization (:math:`\Sigma^{1/L}` per layer).

    Parameters
    ----------
    e : Tensor, shape (d_L, d_0)
    depth : int
        ``L >= 2``.
    widths : sequence of int, optional
        Hidden widths ``(d_1, ..., d_{L-1})``, each at least ``rank(E)``; default ``rank(E)``.
    rtol : float
        Singular values below ``rtol * max`` count as zero.

    Returns
    -------
    list of Tensor
        ``depth`` layers, first layer first.
    """
    depth = _check_depth(depth)
    if not isinstance(e, Tensor) or e.dim() != 2:
        raise ValueError("e must be a 2-D tensor")
    d_out, d_in = e.shape
    u, s, vh = torch.linalg.svd(e, full_matrices=False)
    rank = int((s > rtol * s.max().clamp_min(torch.finfo(s.dtype).tiny)).sum())
    if rank == 0:
        raise ValueError("e is zero: every factorization with a zero layer attains the bound")
    widths = [rank] * (depth - 1) if widths is None else list(widths)
    if len(widths) != depth - 1:
        raise ValueError(f"widths must have depth - 1 = {depth - 1} entries, got {len(widths)}")
    if any(w < rank for w in widths):
        raise ValueError(f"every hidden width must be >= rank(E) = {rank}, got {widths}")
    u, s, vh = u[:, :rank], s[:rank], vh[:rank]
    nuc = s.sum()
    # terms of F before scaling: a_1 = d_0 ||E||_*, a_L = d_L ||E||_*, middle a_j = ||E||_*^2
    a = [d_in * nuc] + [nuc**2] * (depth - 2) + [d_out * nuc]
    m = torch.exp(torch.stack([torch.log(x) for x in a]).mean())
    c = [torch.sqrt(x / m) for x in a]
    dims = [d_in, *widths, d_out]
    root = torch.sqrt(s)
    layers = []
    for j in range(depth):
        w = torch.zeros(dims[j + 1], dims[j], dtype=e.dtype, device=e.device)
        if j == 0:
            w[:rank] = root[:, None] * vh
        elif j == depth - 1:
            w[:, :rank] = u * root[None, :]
        else:
            w[:rank, :rank] = torch.eye(rank, dtype=e.dtype, device=e.device)
        layers.append(c[j] * w)
    return layers


class DeepLinearNetwork(nn.Module):
    r"""A deep linear network :math:`x \mapsto W_L\cdots W_1 x`.

    Parameters
    ----------
    dims : sequence of int
        ``(d_0, d_1, ..., d_L)``, at least three entries (depth ``L >= 2``).
    init_std : float, optional
        Standard deviation of the i.i.d. normal initialisation; default :math:`1/\sqrt{d_{j-1}}`.
    generator : torch.Generator, optional
        Seeded initialisation.
    dtype : torch.dtype, optional

    Examples
    --------
    >>> net = DeepLinearNetwork([4, 4, 4])
    >>> net.end_to_end().shape
    torch.Size([4, 4])
    """

    def __init__(
        self,
        dims: Sequence[int],
        *,
        init_std: float | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dims = list(dims)
        if len(dims) < 3:
            raise ValueError(f"dims needs at least 3 entries (depth >= 2), got {dims}")
        if any(not isinstance(d, int) or d < 1 for d in dims):
            raise ValueError(f"dims must be positive ints, got {dims}")
        self.dims = dims
        self.weights = nn.ParameterList()
        for d_prev, d_next in itertools.pairwise(dims):
            std = init_std if init_std is not None else 1.0 / math.sqrt(d_prev)
            w = torch.randn(d_next, d_prev, generator=generator, dtype=dtype) * std
            self.weights.append(nn.Parameter(w))

    @property
    def depth(self) -> int:
        """Number of layers ``L``."""
        return len(self.weights)

    def end_to_end(self) -> Tensor:
        """:math:`W_L\\cdots W_1`, shape ``(d_L, d_0)``."""
        return end_to_end(list(self.weights))

    def forward(self, x: Tensor) -> Tensor:
        """Apply to ``x`` of shape ``(..., d_0)``; returns shape ``(..., d_L)``."""
        for w in self.weights:
            x = x @ w.T
        return x

    def hessian_trace(self, measurements: Tensor, **kwargs: object) -> Tensor:
        """:func:`deep_linear_trace` at the current weights."""
        return deep_linear_trace(list(self.weights), measurements, **kwargs)  # type: ignore[arg-type]
