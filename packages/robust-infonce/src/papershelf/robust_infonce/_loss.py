r"""RINCE, the robust InfoNCE loss of Chuang et al., "Robust Contrastive Learning against Noisy
Views" (CVPR 2022, arXiv:2201.04309), computed in log space.

For one anchor with temperature-scaled positive logit :math:`s^+` and the sum over the positive and
all negatives :math:`S = e^{s^+} + \sum_j e^{s_j}`,

.. math::

    \ell = -\frac{e^{q s^+}}{q} + \frac{(\lambda S)^q}{q}
         = \frac{\operatorname{expm1}(q a) - \operatorname{expm1}(q s^+)}{q},
    \qquad a = \log\lambda + \operatorname{LSE}(s^+, s_1, \dots, s_K).

The right-hand form is exact, has no cancellation for small ``q`` and no overflow where the true
value is representable; ``q = 0`` is the InfoNCE limit :math:`a - s^+` (InfoNCE plus
:math:`\log\lambda`).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from papershelf.robust_infonce._checks import check_pair, check_tensor, reduce_loss
from papershelf.robust_infonce._distributed import gather_with_grad, rank_and_world_size

__all__ = [
    "RINCELoss",
    "info_nce_loss",
    "moco_rince_loss",
    "rince_from_logits",
    "rince_loss",
]

Reduction = Literal["mean", "sum", "none"]
Layout = Literal["simclr", "cross"]
_REDUCTIONS = ("mean", "sum", "none")
_LAYOUTS = ("simclr", "cross")


# ----------------------------------------------------------------------------- validation
def _check_q_lam(q: float, lam: float) -> None:
    if not isinstance(q, (int, float)) or isinstance(q, bool) or not math.isfinite(q):
        raise TypeError(f"q must be a finite float, got {q!r}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must lie in [0, 1] (the paper's range), got q={q}")
    if not isinstance(lam, (int, float)) or isinstance(lam, bool) or not math.isfinite(lam):
        raise TypeError(f"lam must be a finite float, got {lam!r}")
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got lam={lam}")


def _check_common(temperature: float, layout: str, reduction: str) -> None:
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
        raise TypeError(f"temperature must be a float, got {temperature!r}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number > 0, got temperature={temperature}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got layout={layout!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got reduction={reduction!r}")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # at least float32 inside the loss: bf16/fp16 logits lose the positive against S
    return torch.promote_types(dtype, torch.float32)


# ----------------------------------------------------------------------------- core
def _rince_from_lse(lse: Tensor, pos: Tensor, q: float, lam: float) -> Tensor:
    """Per-row RINCE from LSE over the positive and negatives, and the positive logit."""
    a = lse + math.log(lam)
    if q == 0.0:
        return a - pos
    return (torch.expm1(q * a) - torch.expm1(q * pos)) / q


def _rince_rows(logits: Tensor, pos: Tensor, q: float, lam: float) -> Tensor:
    """Per-row RINCE from logits (excluded columns already at -inf) and the positive logit."""
    return _rince_from_lse(torch.logsumexp(logits, dim=1), pos, q, lam)


class _MatmulLogSumExp(torch.autograd.Function):
    """Row-wise ``logsumexp(scale * anchors @ keys.T)`` with one excluded column per row, fused.

    Autograd through ``mm -> scatter(-inf) -> logsumexp`` materialises three (B, K) tensors and
    recomputes the softmax in the backward pass; here ``e^{s - max}`` is built in place in the
    forward pass and reused, which makes the backward one multiply and the matmuls. With
    ``keys=None`` the keys are the anchors themselves (the one-process SimCLR layout) and the
    gradient is ``G @ anchors + G^T @ anchors``. Not twice differentiable.
    """

    @staticmethod
    def forward(
        ctx, anchors: Tensor, keys: Tensor | None, excluded: Tensor | None, scale: float
    ) -> Tensor:
        logits = (anchors * scale) @ (anchors if keys is None else keys).T
        if excluded is not None:
            logits[torch.arange(logits.shape[0], device=logits.device), excluded] = float("-inf")
        peak = logits.amax(dim=1, keepdim=True)
        expd = logits.sub_(peak).exp_()  # in place: the (B, K) buffer holds e^{s - peak}
        total = expd.sum(dim=1, keepdim=True)
        ctx.scale = scale
        ctx.self_keys = keys is None
        # the softmax is expd / total; the division is left to the backward pass's one multiply
        ctx.save_for_backward(anchors, anchors if keys is None else keys, expd, total)
        return (peak + total.log()).squeeze(1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        anchors, keys, expd, total = ctx.saved_tensors
        g = expd * (grad[:, None] * ctx.scale / total)
        if ctx.self_keys:
            return g @ anchors + g.T @ anchors, None, None, None
        grad_anchors = g @ keys if ctx.needs_input_grad[0] else None
        grad_keys = g.T @ anchors if ctx.needs_input_grad[1] else None
        return grad_anchors, grad_keys, None, None


def rince_from_logits(
    logits: Tensor,
    target: Tensor | None = None,
    *,
    q: float = 0.5,
    lam: float = 0.01,
    mask: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""RINCE on precomputed logits: the front end for MoCo queues and CLIP-style layouts.

    Row :math:`i` is one anchor; its positive is column ``target[i]`` and every other column not
    excluded by ``mask`` is a negative. The positive always counts in :math:`S`.

    Parameters
    ----------
    logits : Tensor, shape (B, K)
        Temperature-scaled similarities (already divided by the temperature).
    target : Tensor of int64, shape (B,), optional
        Column of each row's positive. Default ``arange(B)`` (square, CLIP-style logits; needs
        ``K >= B``).
    q : float, default 0.5
        Exponent in ``[0, 1]``; ``q = 0`` gives cross-entropy plus :math:`\log\lambda`, ``q = 1``
        the linear ("symmetric") member :math:`-(1-\lambda)e^{s^+} + \lambda\sum_j e^{s_j}`.
    lam : float, default 0.01
        Density weight :math:`\lambda > 0`.
    mask : Tensor of bool, shape (B, K), optional
        ``True`` marks columns to *exclude* from row ``i`` (e.g. the anchor itself). Excluding the
        positive column raises ``ValueError``.
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns the (B,) per-anchor losses.

    Returns
    -------
    Tensor
        Scalar, or shape (B,) for ``reduction="none"``; dtype of ``logits`` (computed in at least
        float32).

    References
    ----------
    Chuang et al., "Robust Contrastive Learning against Noisy Views", CVPR 2022, Eq. (4).

    Examples
    --------
    >>> import torch
    >>> logits = torch.randn(4, 10)
    >>> rince_from_logits(logits, torch.tensor([0, 3, 5, 9]), q=0.5, lam=0.01).shape
    torch.Size([])
    """
    x = check_tensor(logits, "logits", 2)
    _check_q_lam(q, lam)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got reduction={reduction!r}")
    b, k = x.shape
    if target is None:
        if k < b:
            raise ValueError(f"target=None needs square-ish logits with K >= B, got shape {(b, k)}")
        target = torch.arange(b, device=x.device)
    if not isinstance(target, Tensor) or target.dtype != torch.int64 or target.shape != (b,):
        raise ValueError(f"target must be an int64 tensor of shape ({b},)")
    if bool(((target < 0) | (target >= k)).any()):
        raise ValueError(f"target entries must lie in [0, {k})")
    out_dtype = x.dtype
    x = x.to(_compute_dtype(x.dtype))
    if mask is not None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != x.shape:
            raise ValueError(f"mask must be a bool tensor of shape {tuple(x.shape)}")
        if bool(mask.gather(1, target[:, None]).any()):
            raise ValueError("mask excludes the positive column of some row (target)")
        x = x.masked_fill(mask, float("-inf"))
    pos = x.gather(1, target[:, None]).squeeze(1)
    return reduce_loss(_rince_rows(x, pos, q, lam), reduction).to(out_dtype)


def _pair_lse(
    z1: Tensor, z2: Tensor, temperature: float, normalize: bool, layout: str, gather: bool
) -> tuple[Tensor, Tensor]:
    """(LSE over each anchor's positive and negatives, positive logits) for the two-view layouts."""
    n = z1.shape[0]
    dtype = _compute_dtype(z1.dtype)
    z1, z2 = z1.to(dtype), z2.to(dtype)
    if normalize:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    rank, world = rank_and_world_size()
    if gather and world > 1:
        g1, g2 = gather_with_grad(z1), gather_with_grad(z2)
    else:
        rank, world, g1, g2 = 0, 1, z1, z2
    # the positive logit from the local rows, so that its gradient is that of a one-GPU run
    pos = (z1 * z2).sum(1) / temperature
    pos = torch.cat([pos, pos])
    if layout == "simclr":
        z = torch.cat([z1, z2], 0)
        keys = None if world == 1 else torch.cat([g1, g2], 0)  # (2NW, D); None: keys = z
        idx = torch.arange(n, device=z1.device) + rank * n
        self_col = torch.cat([idx, idx + n * world])
        return _MatmulLogSumExp.apply(z, keys, self_col, 1.0 / temperature), pos
    # "cross": z1 anchors against z2 keys and z2 anchors against z1 keys, no same-view negatives
    lse1 = _MatmulLogSumExp.apply(z1, g2, None, 1.0 / temperature)
    lse2 = _MatmulLogSumExp.apply(z2, g1, None, 1.0 / temperature)
    return torch.cat([lse1, lse2]), pos


def rince_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    q: float = 0.5,
    lam: float = 0.01,
    temperature: float = 0.5,
    normalize: bool = True,
    layout: Layout = "simclr",
    gather_distributed: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""RINCE for two batches of views, the ``loss_fn(z1, z2)`` convention of lightly.

    Parameters
    ----------
    z1, z2 : Tensor, shape (N, D)
        Embeddings of two views; row ``i`` of ``z1`` and of ``z2`` form a positive pair. N >= 2.
    q : float, default 0.5
        Exponent in ``[0, 1]``. Official ImageNet values: 0.1 (SimCLR), 0.6 (MoCo v3).
    lam : float, default 0.01
        Density weight :math:`\lambda > 0` (official: 0.01).
    temperature : float, default 0.5
        Softmax temperature ``t > 0`` (official SimCLR ImageNet: 0.1; MoCo v3: 1.0).
    normalize : bool, default True
        L2-normalise the rows first (the official code expects unit vectors).
    layout : {"simclr", "cross"}
        ``"simclr"`` (official): 2N anchors ``[z1; z2]``, the partner view is the positive and the
        other 2N - 2 rows are negatives. ``"cross"``: ``z1`` anchors against ``z2`` keys and vice
        versa (N - 1 negatives each, MoCo/CLIP-like).
    gather_distributed : bool, default False
        All-gather the embeddings of every ``torch.distributed`` rank (with gradients) and use
        them as negatives; the anchors stay local.
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns (2N,) per-anchor losses: rows of ``z1`` first, then rows of ``z2``.

    Returns
    -------
    Tensor
        Scalar, or shape (2N,); dtype of ``z1`` (computed in at least float32, also under
        autocast).

    Notes
    -----
    The official code takes raw ``exp`` of the logits and overflows (NaN) once
    ``1/t + log(2N)`` exceeds ~88 in float32; this log-space form is finite wherever the true
    value is representable. The loss is not shift-invariant and is usually negative.

    References
    ----------
    Chuang et al., "Robust Contrastive Learning against Noisy Views", CVPR 2022.

    Examples
    --------
    >>> import torch
    >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
    >>> rince_loss(z1, z2, q=0.5, lam=0.01, temperature=0.5).shape
    torch.Size([])
    """
    a, b = check_pair(z1, z2)
    _check_q_lam(q, lam)
    _check_common(temperature, layout, reduction)
    out_dtype = a.dtype
    with torch.autocast(a.device.type, enabled=False):
        lse, pos = _pair_lse(a, b, temperature, normalize, layout, gather_distributed)
        loss = reduce_loss(_rince_from_lse(lse, pos, q, lam), reduction)
    return loss.to(out_dtype)


def info_nce_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    temperature: float = 0.5,
    normalize: bool = True,
    layout: Layout = "simclr",
    gather_distributed: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""InfoNCE / NT-Xent: :math:`-s^+ + \log\sum_{j} e^{s_j}` (positive included), the ``q = 0``
    member of RINCE without the :math:`\log\lambda` offset.

    Parameters and layouts as in :func:`rince_loss`. With ``layout="simclr"`` this is SimCLR's
    NT-Xent and equals lightly's ``NTXentLoss(t)`` and pytorch-metric-learning's
    ``SelfSupervisedLoss(NTXentLoss(t))``.

    Returns
    -------
    Tensor
        Scalar, or shape (2N,) for ``reduction="none"``.

    Examples
    --------
    >>> import torch
    >>> info_nce_loss(torch.randn(8, 16), torch.randn(8, 16), temperature=0.5).shape
    torch.Size([])
    """
    return rince_loss(
        z1,
        z2,
        q=0.0,
        lam=1.0,
        temperature=temperature,
        normalize=normalize,
        layout=layout,
        gather_distributed=gather_distributed,
        reduction=reduction,
    )


def moco_rince_loss(
    query: Tensor,
    key: Tensor,
    *,
    q: float = 0.6,
    lam: float = 0.01,
    temperature: float = 1.0,
    gather_distributed: bool = False,
    scale_by_2t: bool = True,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""RINCE as in the official MoCo v3 code: one direction (query vs momentum keys).

    Row ``i`` of ``query`` has key ``i`` (of this rank) as its positive; all keys, the positive
    included, form :math:`S`. Keys are treated as constants (gathered without gradient, as
    momentum-encoder outputs are). Call it twice, ``(q1, k2) + (q2, k1)``, for the official
    symmetrised loss.

    Parameters
    ----------
    query : Tensor, shape (N, D)
        Predictor outputs (normalised inside).
    key : Tensor, shape (N, D)
        Momentum-encoder outputs (normalised inside, detached).
    q, lam, temperature : float
        Official MoCo v3 values: 0.6, 0.01, 1.0.
    gather_distributed : bool
        All-gather the keys of every rank (without gradient), as ``concat_all_gather``.
    scale_by_2t : bool
        Multiply by ``2 * temperature`` as the official code does.
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    Tensor
        Scalar, or (N,) for ``reduction="none"``.
    """
    a, b = check_pair(query, key)
    _check_q_lam(q, lam)
    _check_common(temperature, "simclr", reduction)
    out_dtype = a.dtype
    with torch.autocast(a.device.type, enabled=False):
        dtype = _compute_dtype(a.dtype)
        qn = F.normalize(a.to(dtype), dim=1)
        kn = F.normalize(b.detach().to(dtype), dim=1)
        rank, _ = rank_and_world_size()
        if gather_distributed and rank_and_world_size()[1] > 1:
            parts = [torch.empty_like(kn) for _ in range(torch.distributed.get_world_size())]
            torch.distributed.all_gather(parts, kn.contiguous())
            keys = torch.cat(parts, 0)
        else:
            rank, keys = 0, kn
        logits = qn @ keys.T / temperature
        target = torch.arange(qn.shape[0], device=qn.device) + rank * qn.shape[0]
        pos = logits.gather(1, target[:, None]).squeeze(1)
        loss = _rince_rows(logits, pos, q, lam)
        if scale_by_2t:
            loss = loss * (2.0 * temperature)
        loss = reduce_loss(loss, reduction)
    return loss.to(out_dtype)


class RINCELoss(nn.Module):
    r"""Module form of :func:`rince_loss`: ``RINCELoss(q, lam, temperature)(z1, z2)``.

    Parameters
    ----------
    q : float, default 0.5
    lam : float, default 0.01
    temperature : float, default 0.5
    normalize : bool, default True
    layout : {"simclr", "cross"}, default "simclr"
    gather_distributed : bool, default False
    reduction : {"mean", "sum", "none"}, default "mean"

    Examples
    --------
    >>> import torch
    >>> loss_fn = RINCELoss(q=0.5, lam=0.01, temperature=0.5)
    >>> loss_fn(torch.randn(8, 16), torch.randn(8, 16)).shape
    torch.Size([])
    """

    def __init__(
        self,
        q: float = 0.5,
        lam: float = 0.01,
        temperature: float = 0.5,
        normalize: bool = True,
        layout: Layout = "simclr",
        gather_distributed: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _check_q_lam(q, lam)
        _check_common(temperature, layout, reduction)
        self.q = q
        self.lam = lam
        self.temperature = temperature
        self.normalize = normalize
        self.layout: Layout = layout
        self.gather_distributed = gather_distributed
        self.reduction: Reduction = reduction

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Loss of two batches of views, each of shape (N, D)."""
        return rince_loss(
            z1,
            z2,
            q=self.q,
            lam=self.lam,
            temperature=self.temperature,
            normalize=self.normalize,
            layout=self.layout,
            gather_distributed=self.gather_distributed,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"q={self.q}, lam={self.lam}, temperature={self.temperature}, "
            f"layout={self.layout!r}, reduction={self.reduction!r}"
        )
