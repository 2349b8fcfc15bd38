r"""Hard negative contrastive loss (HCL) of Robinson et al., "Contrastive Learning with Hard Negative
Samples" (ICLR 2021, arXiv:2010.04592), with the debiased loss (DCL) of Chuang et al. (NeurIPS 2020)
as its ``beta = 0`` member, computed in log space.

For anchor :math:`i` with temperature-scaled positive logit :math:`s^+_i`, negative logits
:math:`s_{ij}` (:math:`M_i` of them), hardness :math:`\beta \ge 0` and class prior
:math:`\tau^+ \in [0, 1)`:

.. math::

    R_i = M_i \frac{\sum_j e^{(1+\beta) s_{ij}}}{\sum_j e^{\beta s_{ij}}}, \qquad
    N_i = \max\Big(\frac{R_i - \tau^+ M_i e^{s^+_i}}{1 - \tau^+},\; M_i e^{-1/t}\Big), \qquad
    \ell_i = -s^+_i + \log\big(e^{s^+_i} + N_i\big).

The importance weights :math:`w_{ij} = e^{\beta s_{ij}} / \operatorname{mean}_k e^{\beta s_{ik}}`
are not detached, as in the official code. The floor :math:`M_i e^{-1/t}` is the smallest possible
negative mass for unit vectors ("constrain (optional)" in the code, always applied there).
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from papershelf.hard_negatives._checks import check_pair, check_tensor, reduce_loss
from papershelf.hard_negatives._distributed import gather_with_grad, rank_and_world_size

__all__ = [
    "ClampCollapseWarning",
    "DebiasedContrastiveLoss",
    "HardNegativeLoss",
    "beta_schedule",
    "debiased_loss",
    "hcl_from_logits",
    "hcl_loss",
    "nt_xent_loss",
]

log = logging.getLogger(__name__)

Reduction = Literal["mean", "sum", "none"]
Estimator = Literal["hard", "easy"]
_REDUCTIONS = ("mean", "sum", "none")
_ESTIMATORS = ("hard", "easy")
# once the collapse warning has fired, stop checking (the check costs a device sync)
_COLLAPSE_STATE = {"warned": False}


class ClampCollapseWarning(RuntimeWarning):
    """Most rows hit the HCL/DCL clamp: the loss and its gradient are (nearly) zero."""


# ----------------------------------------------------------------------------- validation
def _check_float(value: object, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite float, got {value!r}")
    return float(value)


def _check_hparams(beta: float, tau_plus: float, reduction: str) -> None:
    if _check_float(beta, "beta") < 0:
        raise ValueError(f"beta must be >= 0, got beta={beta}")
    if not 0.0 <= _check_float(tau_plus, "tau_plus") < 1.0:
        raise ValueError(f"tau_plus must lie in [0, 1), got tau_plus={tau_plus}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got reduction={reduction!r}")


def _check_temperature(temperature: float) -> None:
    if _check_float(temperature, "temperature") <= 0:
        raise ValueError(f"temperature must be > 0, got temperature={temperature}")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


# ----------------------------------------------------------------------------- core
def _log_mass(
    neg: Tensor, n_neg: Tensor | float, beta: float, hard: bool, detach_weights: bool
) -> Tensor:
    """log R_i from the negatives' logits (invalid entries at -inf); ``hard=False``: log sum e^s."""
    # One shift per row by the largest valid negative: every exponential below is <= 1 and the
    # largest is exactly 1, so no sum underflows to 0 or overflows. The shift is gradient-free.
    c = neg.amax(dim=1, keepdim=True).detach()
    d = neg - c
    e1 = torch.exp(d)  # e^{s - c}, 0 at invalid entries
    if not hard or beta == 0.0:
        return c.squeeze(1) + torch.log(e1.sum(1))
    eb = torch.exp(beta * d)  # e^{beta (s - c)}
    w = eb.detach() if detach_weights else eb
    log_m = torch.log(n_neg) if isinstance(n_neg, Tensor) else math.log(n_neg)
    # log R = log M + log sum e^{(1+b)s} - log sum e^{b s}; the c terms cancel down to one c
    return log_m + c.squeeze(1) + torch.log((w * e1).sum(1)) - torch.log(w.sum(1))


class _MatmulLogMass(torch.autograd.Function):
    """``log R`` of the two-view layout straight from anchors and keys, fused.

    Builds the (B, K) logits, drops each row's two excluded columns (itself and its partner),
    and computes ``log R`` with the softmaxes of ``(1 + beta) s`` and ``beta s`` kept for the
    backward pass, which is then one elementwise pass and the matmuls. With ``keys=None`` the keys
    are the anchors themselves (one process) and the gradient is
    ``G @ anchors + G^T @ anchors``. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, anchors, keys, excluded, scale, log_m, beta, hard, detach_weights):
        s = (anchors * scale) @ (anchors if keys is None else keys).T
        ctx.scale = scale
        ctx.self_keys = keys is None
        keys = anchors if keys is None else keys
        rows = torch.arange(s.shape[0], device=s.device)[:, None]
        s[rows, excluded] = float("-inf")
        c = s.amax(dim=1, keepdim=True)
        d = s.sub_(c)  # in place from here on: one (B, K) buffer for d, then for the softmax
        if not hard or beta == 0.0:
            p1 = d.exp_()
            a = p1.sum(1, keepdim=True)
            p1.div_(a)
            ctx.save_for_backward(anchors, keys, p1)
            return (c + a.log()).squeeze(1)
        pb = torch.exp(d * beta)
        p1 = d.exp_().mul_(pb)  # e^{(1+beta) d}
        a = p1.sum(1, keepdim=True)
        b = pb.sum(1, keepdim=True)
        if detach_weights:
            ctx.save_for_backward(anchors, keys, p1.div_(a))
        else:
            # d log R / d s = (1 + beta) softmax((1+beta) s) - beta softmax(beta s)
            jac = p1.mul_((1.0 + beta) / a).sub_(pb.mul_(beta / b))
            ctx.save_for_backward(anchors, keys, jac)
        return log_m + (c + a.log() - b.log()).squeeze(1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        anchors, keys, jac = ctx.saved_tensors
        g = jac * (grad[:, None] * ctx.scale)
        if ctx.self_keys:
            return g @ anchors + g.T @ anchors, None, None, None, None, None, None, None
        grad_anchors = g @ keys if ctx.needs_input_grad[0] else None
        grad_keys = g.T @ anchors if ctx.needs_input_grad[1] else None
        return grad_anchors, grad_keys, None, None, None, None, None, None


def _debiased_rows(
    log_r: Tensor,
    pos: Tensor,
    n_neg: Tensor | float,
    *,
    tau_plus: float,
    temperature: float | None,
    clamp: bool,
) -> Tensor:
    """Per-row loss from log R and the positive logit: debias, clamp, -s+ + log(e^{s+} + Ng)."""
    if tau_plus == 0.0 and not clamp:
        return torch.logaddexp(pos, log_r) - pos
    log_m = torch.log(n_neg) if isinstance(n_neg, Tensor) else math.log(n_neg)
    m = torch.maximum(pos, log_r).detach()
    ng = (torch.exp(log_r - m) - tau_plus * torch.exp(log_m + pos - m)) / (1.0 - tau_plus)
    if clamp:
        assert temperature is not None
        floor = torch.exp(log_m - 1.0 / temperature - m)
        clamped = ng < floor
        # torch.clamp's gradient convention: the gradient flows through ng where ng >= floor
        ng = torch.where(clamped, floor, ng)
        if not _COLLAPSE_STATE["warned"] and clamped.numel() and bool(clamped.float().mean() > 0.5):
            _COLLAPSE_STATE["warned"] = True
            warnings.warn(
                f"{clamped.float().mean().item():.0%} of the rows hit the clamp of the debiased "
                "negative mass: the loss and its gradient collapse towards 0. This happens at small "
                "temperatures with tau_plus > 0; use temperature ~0.5 or a smaller tau_plus "
                "(warned once per process).",
                ClampCollapseWarning,
                stacklevel=4,
            )
    return m - pos + torch.log(torch.exp(pos - m) + ng)


def hcl_from_logits(
    pos_logits: Tensor,
    neg_logits: Tensor,
    *,
    beta: float = 1.0,
    tau_plus: float = 0.1,
    temperature: float | None = None,
    estimator: Estimator = "hard",
    neg_mask: Tensor | None = None,
    clamp: bool = True,
    detach_weights: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""HCL on precomputed logits: the front end for MoCo queues and custom layouts.

    Parameters
    ----------
    pos_logits : Tensor, shape (B,)
        Temperature-scaled positive logit of each anchor.
    neg_logits : Tensor, shape (B, K)
        Temperature-scaled negative logits.
    beta : float, default 1.0
        Hardness :math:`\beta \ge 0` (multiplies the temperature-scaled logit); 0 gives DCL.
    tau_plus : float, default 0.1
        Class prior :math:`\tau^+ \in [0, 1)`; 0 switches debiasing off.
    temperature : float, optional
        Needed only for the clamp floor :math:`M_i e^{-1/t}`, which assumes cosine logits.
    estimator : {"hard", "easy"}
        ``"easy"`` is plain InfoNCE over the valid negatives (``beta``, ``tau_plus`` ignored).
    neg_mask : Tensor of bool, shape (B, K), optional
        ``True`` marks the *valid* negatives of each row (as the official ``negative_mask``);
        :math:`M_i` is the row count. Every row needs at least one.
    clamp : bool, default True
        Apply the official floor (needs ``temperature``).
    detach_weights : bool, default False
        Treat the importance weights as constants (the official code does not).
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    Tensor
        Scalar, or (B,) for ``reduction="none"``.

    References
    ----------
    Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021, Eq. (5).
    """
    p = check_tensor(pos_logits, "pos_logits", 1)
    x = check_tensor(neg_logits, "neg_logits", 2)
    _check_hparams(beta, tau_plus, reduction)
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got estimator={estimator!r}")
    if p.shape[0] != x.shape[0]:
        raise ValueError(
            f"pos_logits {tuple(p.shape)} and neg_logits {tuple(x.shape)} need the same B"
        )
    if clamp and estimator == "hard":
        if temperature is None:
            raise ValueError("clamp=True needs temperature (the floor is M*exp(-1/temperature))")
        _check_temperature(temperature)
    out_dtype = x.dtype
    dtype = _compute_dtype(torch.promote_types(x.dtype, p.dtype))
    x, p = x.to(dtype), p.to(dtype)
    n_neg: Tensor | float
    if neg_mask is not None:
        if (
            not isinstance(neg_mask, Tensor)
            or neg_mask.dtype != torch.bool
            or neg_mask.shape != x.shape
        ):
            raise ValueError(f"neg_mask must be a bool tensor of shape {tuple(x.shape)}")
        counts = neg_mask.sum(1)
        if bool((counts == 0).any()):
            raise ValueError("neg_mask leaves a row without negatives")
        x = x.masked_fill(~neg_mask, float("-inf"))
        n_neg = counts.to(dtype)
    else:
        n_neg = float(x.shape[1])
    hard = estimator == "hard"
    log_r = _log_mass(x, n_neg, float(beta), hard, detach_weights)
    if not hard:
        loss = torch.logaddexp(p, log_r) - p
    else:
        loss = _debiased_rows(
            log_r, p, n_neg, tau_plus=float(tau_plus), temperature=temperature, clamp=clamp
        )
    return reduce_loss(loss, reduction).to(out_dtype)


def hcl_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    beta: float = 1.0,
    tau_plus: float = 0.1,
    temperature: float = 0.5,
    estimator: Estimator = "hard",
    normalize: bool = True,
    clamp: bool = True,
    detach_weights: bool = False,
    gather_distributed: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Hard negative contrastive loss for two batches of views (``loss_fn(z1, z2)``).

    Layout of the official code: 2N anchors ``[z1; z2]``; each has its partner view as the
    positive and the other 2N - 2 rows as negatives (:math:`M = 2N - 2`); mean over 2N anchors.

    Parameters
    ----------
    z1, z2 : Tensor, shape (N, D)
        Embeddings of two views; row ``i`` of each is a positive pair. N >= 2.
    beta : float, default 1.0
        Hardness :math:`\beta \ge 0` (official default 1.0; 0 gives DCL).
    tau_plus : float, default 0.1
        Class prior :math:`\tau^+ \in [0, 1)` (official default 0.1; 0 switches debiasing off).
    temperature : float, default 0.5
        Softmax temperature (official default 0.5). Keep it near 0.5 when ``tau_plus > 0``: at
        small temperatures most rows hit the clamp and the loss collapses to ~0
        (:class:`ClampCollapseWarning`).
    estimator : {"hard", "easy"}
        ``"easy"`` is NT-Xent (``beta`` and ``tau_plus`` ignored), as in the official code.
    normalize : bool, default True
        L2-normalise the rows first (the official model outputs unit vectors).
    clamp : bool, default True
        Apply the floor :math:`M e^{-1/t}` as the official code always does. It is the exact
        lower bound for unit vectors; without it a negative debiased estimate gives NaN.
    detach_weights : bool, default False
        Stop gradients through the importance weights.
    gather_distributed : bool, default False
        Use the embeddings of every ``torch.distributed`` rank as negatives (all-gather with
        gradients); anchors stay local.
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns (2N,) per-anchor losses, rows of ``z1`` first.

    Returns
    -------
    Tensor
        Scalar, or (2N,) for ``reduction="none"``; dtype of ``z1`` (computed in at least float32,
        also under autocast).

    Notes
    -----
    Computed in log space: finite and equal to a float64 evaluation at settings where the
    official raw-``exp`` code returns inf (e.g. ``temperature=0.1, beta=8``).

    References
    ----------
    Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021.
    Chuang et al., "Debiased Contrastive Learning", NeurIPS 2020.

    Examples
    --------
    >>> import torch
    >>> hcl_loss(torch.randn(8, 16), torch.randn(8, 16), beta=1.0, tau_plus=0.1).shape
    torch.Size([])
    """
    a, b = check_pair(z1, z2)
    _check_hparams(beta, tau_plus, reduction)
    _check_temperature(temperature)
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got estimator={estimator!r}")
    out_dtype = a.dtype
    n = a.shape[0]
    with torch.autocast(a.device.type, enabled=False):
        dtype = _compute_dtype(a.dtype)
        a, b = a.to(dtype), b.to(dtype)
        if normalize:
            a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        rank, world = rank_and_world_size()
        if gather_distributed and world > 1:
            g1, g2 = gather_with_grad(a), gather_with_grad(b)
        else:
            rank, world, g1, g2 = 0, 1, a, b
        z = torch.cat([a, b], 0)
        keys = None if world == 1 else torch.cat([g1, g2], 0)  # (2NW, D); None: keys = z
        idx = torch.arange(n, device=a.device) + rank * n
        self_col = torch.cat([idx, idx + n * world])
        partner_col = torch.cat([idx + n * world, idx])
        excluded = torch.stack([self_col, partner_col], 1)
        pos = (a * b).sum(1) / temperature
        pos = torch.cat([pos, pos])
        n_neg = float(2 * n * world - 2)
        hard = estimator == "hard"
        log_r = _MatmulLogMass.apply(
            z, keys, excluded, 1.0 / temperature, math.log(n_neg), float(beta), hard, detach_weights
        )
        if not hard:
            loss = torch.logaddexp(pos, log_r) - pos
        else:
            loss = _debiased_rows(
                log_r, pos, n_neg, tau_plus=float(tau_plus), temperature=temperature, clamp=clamp
            )
        loss = reduce_loss(loss, reduction)
    return loss.to(out_dtype)


def debiased_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    tau_plus: float = 0.1,
    temperature: float = 0.5,
    normalize: bool = True,
    clamp: bool = True,
    gather_distributed: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""Debiased contrastive loss (DCL, Chuang et al. 2020): :func:`hcl_loss` with ``beta = 0``.

    :math:`N_i = \max\big((\sum_j e^{s_{ij}} - \tau^+ M e^{s^+_i}) / (1 - \tau^+),\ M e^{-1/t}\big)`.
    Not lightly's ``DCLLoss``, which is the *decoupled* contrastive loss of Yeh et al.

    Parameters and returns as in :func:`hcl_loss`.

    Examples
    --------
    >>> import torch
    >>> debiased_loss(torch.randn(8, 16), torch.randn(8, 16), tau_plus=0.1).shape
    torch.Size([])
    """
    return hcl_loss(
        z1,
        z2,
        beta=0.0,
        tau_plus=tau_plus,
        temperature=temperature,
        normalize=normalize,
        clamp=clamp,
        gather_distributed=gather_distributed,
        reduction=reduction,
    )


def nt_xent_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    temperature: float = 0.5,
    normalize: bool = True,
    gather_distributed: bool = False,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""SimCLR's NT-Xent: :math:`\ell_i = -s^+_i + \log(e^{s^+_i} + \sum_j e^{s_{ij}})` over the
    2N - 2 negatives; :func:`hcl_loss` with ``estimator="easy"``.

    Equals lightly's ``NTXentLoss(t)`` and pytorch-metric-learning's
    ``SelfSupervisedLoss(NTXentLoss(t))`` (pass the temperature explicitly; their defaults differ).

    Parameters and returns as in :func:`hcl_loss`.

    Examples
    --------
    >>> import torch
    >>> nt_xent_loss(torch.randn(8, 16), torch.randn(8, 16), temperature=0.5).shape
    torch.Size([])
    """
    return hcl_loss(
        z1,
        z2,
        beta=0.0,
        tau_plus=0.0,
        temperature=temperature,
        estimator="easy",
        normalize=normalize,
        gather_distributed=gather_distributed,
        reduction=reduction,
    )


def beta_schedule(beta0: float, epoch: int, epochs: int, n_steps: int = 9) -> float:
    r"""The official ``--anneal down`` schedule: the β used in ``epoch`` (1-based).

    The official loop draws from ``linspace(beta0, 0, n_steps)`` after every epoch that is a
    multiple of ``k = epochs // n_steps``; the first draw is ``beta0`` itself, so β is ``beta0``
    for epochs ``1 .. 2k`` and then steps down to 0. Where the official iterator would be
    exhausted (``epochs >= (n_steps + 1) k``) β stays at 0.

    Parameters
    ----------
    beta0 : float
        Starting β >= 0.
    epoch : int
        1-based epoch in ``[1, epochs]``.
    epochs : int
        Total epochs, at least ``n_steps``.
    n_steps : int, default 9
        Number of levels (official: 9).

    Returns
    -------
    float
    """
    if _check_float(beta0, "beta0") < 0:
        raise ValueError(f"beta0 must be >= 0, got {beta0}")
    if n_steps < 2:
        raise ValueError(f"n_steps must be >= 2, got {n_steps}")
    if epochs < n_steps:
        raise ValueError(f"epochs must be >= n_steps ({n_steps}), got epochs={epochs}")
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch must lie in [1, {epochs}], got epoch={epoch}")
    k = epochs // n_steps
    draws = (epoch - 1) // k  # draws made before this epoch starts
    level = min(max(draws - 1, 0), n_steps - 1)
    return float(beta0) * (1.0 - level / (n_steps - 1))


class HardNegativeLoss(nn.Module):
    r"""Module form of :func:`hcl_loss`: ``HardNegativeLoss(beta, tau_plus, temperature)(z1, z2)``.

    Parameters
    ----------
    beta : float, default 1.0
    tau_plus : float, default 0.1
    temperature : float, default 0.5
    estimator : {"hard", "easy"}, default "hard"
    normalize : bool, default True
    clamp : bool, default True
    detach_weights : bool, default False
    gather_distributed : bool, default False
    reduction : {"mean", "sum", "none"}, default "mean"

    Examples
    --------
    >>> import torch
    >>> HardNegativeLoss(beta=1.0)(torch.randn(8, 16), torch.randn(8, 16)).shape
    torch.Size([])
    """

    def __init__(
        self,
        beta: float = 1.0,
        tau_plus: float = 0.1,
        temperature: float = 0.5,
        estimator: Estimator = "hard",
        normalize: bool = True,
        clamp: bool = True,
        detach_weights: bool = False,
        gather_distributed: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _check_hparams(beta, tau_plus, reduction)
        _check_temperature(temperature)
        if estimator not in _ESTIMATORS:
            raise ValueError(f"estimator must be one of {_ESTIMATORS}, got estimator={estimator!r}")
        self.beta = beta
        self.tau_plus = tau_plus
        self.temperature = temperature
        self.estimator: Estimator = estimator
        self.normalize = normalize
        self.clamp = clamp
        self.detach_weights = detach_weights
        self.gather_distributed = gather_distributed
        self.reduction: Reduction = reduction

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        """Loss of two batches of views, each of shape (N, D)."""
        return hcl_loss(
            z1,
            z2,
            beta=self.beta,
            tau_plus=self.tau_plus,
            temperature=self.temperature,
            estimator=self.estimator,
            normalize=self.normalize,
            clamp=self.clamp,
            detach_weights=self.detach_weights,
            gather_distributed=self.gather_distributed,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"beta={self.beta}, tau_plus={self.tau_plus}, temperature={self.temperature}, "
            f"estimator={self.estimator!r}, reduction={self.reduction!r}"
        )


class DebiasedContrastiveLoss(HardNegativeLoss):
    r"""Module form of :func:`debiased_loss` (DCL): :class:`HardNegativeLoss` with ``beta = 0``.

    Examples
    --------
    >>> import torch
    >>> DebiasedContrastiveLoss(tau_plus=0.1)(torch.randn(8, 16), torch.randn(8, 16)).shape
    torch.Size([])
    """

    def __init__(
        self,
        tau_plus: float = 0.1,
        temperature: float = 0.5,
        normalize: bool = True,
        clamp: bool = True,
        gather_distributed: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(
            beta=0.0,
            tau_plus=tau_plus,
            temperature=temperature,
            normalize=normalize,
            clamp=clamp,
            gather_distributed=gather_distributed,
            reduction=reduction,
        )
