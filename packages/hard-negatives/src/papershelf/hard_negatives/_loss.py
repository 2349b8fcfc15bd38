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
import os
import sys
import warnings
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from papershelf.core.validation import check_bool, check_choice, check_int, check_real
from papershelf.hard_negatives._checks import check_pair, check_tensor, reduce_loss
from papershelf.hard_negatives._distributed import gather_with_grad, rank_and_world_size

__all__ = [
    "ClampCollapseWarning",
    "DebiasedContrastiveLoss",
    "HardNegativeLoss",
    "beta_schedule",
    "debiased_loss",
    "hcl_from_labels",
    "hcl_from_logits",
    "hcl_loss",
    "nt_xent_loss",
]

log = logging.getLogger(__name__)

Reduction = Literal["mean", "sum", "none"]
Estimator = Literal["hard", "easy"]
OnCollapse = Literal["warn", "raise", "ignore"]
_REDUCTIONS = ("mean", "sum", "none")
_ESTIMATORS = ("hard", "easy")
_ON_COLLAPSE = ("warn", "raise", "ignore")
COLLAPSE_SHARE = 0.5  # warn (or raise) when more than this share of the rows is clamped


class ClampCollapseWarning(RuntimeWarning):
    """Most rows hit the HCL/DCL clamp: the loss and its gradient are (nearly) zero.

    Issued on *every* call where it happens, attributed to the caller's line: Python's default
    once-per-location filter does not hide the repeats (``warnings.warn_explicit`` with a fresh
    registry), while explicit filters (``"ignore"``, ``"error"``, ``"once"``) still apply.
    Silence it with ``on_collapse="ignore"``, or make it an error with ``on_collapse="raise"``.
    """


class ClampCollapseError(FloatingPointError):
    """Raised instead of :class:`ClampCollapseWarning` with ``on_collapse="raise"``."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


def _warn_every_call(text: str, category: type[Warning]) -> None:
    """``warnings.warn`` at the first caller outside this package and torch, on every call.

    A fresh registry per call keeps the ``"default"`` action from showing one warning per
    location per process; user filters (``ignore``, ``error``, ``once``) still apply.
    """
    frame = sys._getframe(1)
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        (_PACKAGE_DIR, _TORCH_DIR)
    ):
        frame = frame.f_back
    warnings.warn_explicit(
        text,
        category,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=frame.f_globals.get("__name__", "<unknown>"),
        registry=None,
        module_globals=frame.f_globals,
    )


# ----------------------------------------------------------------------------- validation
def _check_hparams(beta: object, tau_plus: object, reduction: object) -> tuple[float, float]:
    if (
        type(beta) is float
        and type(tau_plus) is float
        and 0.0 <= beta < math.inf
        and 0.0 <= tau_plus < 1.0
        and type(reduction) is str
        and reduction in _REDUCTIONS
    ):
        return beta, tau_plus  # the common case, decided without the general checks
    b = check_real("beta", _plain(beta, "beta"), low=0.0)
    tp = check_real(
        "tau_plus", _plain(tau_plus, "tau_plus"), low=0.0, high=1.0, inclusive=(True, False)
    )
    check_choice("reduction", reduction, _REDUCTIONS)
    return b, tp


def _plain(value: object, name: str) -> object:
    """Reject a tensor setting that carries a gradient: it would be used as a constant."""
    if isinstance(value, Tensor) and value.requires_grad:
        raise TypeError(
            f"{name} must be a number or a tensor without gradient (a learnable {name} is not "
            "supported: its gradient would be silently dropped); pass it detached"
        )
    return value


def _check_temperature(temperature: object) -> float:
    if type(temperature) is float and 0.0 < temperature < math.inf:
        return temperature  # the common case (NaN fails the comparison)
    return check_real(
        "temperature", _plain(temperature, "temperature"), low=0.0, inclusive=(False, True)
    )


# one C call that is False unless some autocast region is active (then the device's own flag)
_ANY_AUTOCAST = getattr(torch._C, "_is_any_autocast_enabled", None)


def _autocast_enabled(x: Tensor) -> bool:
    """Whether autocast is on for ``x``'s device (cheaply False outside any autocast region)."""
    if _ANY_AUTOCAST is not None and not _ANY_AUTOCAST():
        return False
    return torch.is_autocast_enabled(x.device.type)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype is torch.float32 or dtype is torch.float64:
        return dtype
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


# while 2 (1 + beta) max|s| is below this, e^{beta s} and e^{(1 + beta) s} of every logit are
# normal floats with room to sum (no shift); beyond it each row is shifted by its own maximum
_CONSTANT_SHIFT_LIMIT = {torch.float32: 40.0, torch.float64: 340.0}


def _matmul_log_mass_kernel(
    anchors: Tensor,
    keys: Tensor | None,
    excluded: Tensor | None,
    scale: float,
    log_m: float,
    beta: float,
    hard: bool,
    detach_weights: bool,
    need_jac: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Forward of :class:`_MatmulLogMass`: (log R, the (B, K) Jacobian-or-softmax buffer, or
    ``None`` with ``need_jac=False``: no gradient wanted, the buffer is not finished).

    ``keys=None``: keys = anchors = ``[z1; z2]`` of one process, and the excluded columns of row
    ``i`` (itself and its partner) are three diagonals, filled without an index tensor; the
    largest diagonal logit ``scale * max |z_i|^2`` then bounds every logit (Cauchy-Schwarz), and
    while ``2 (1 + beta)`` times it is small (``<= 40`` in float32) the exponentials are taken
    without a shift. Otherwise ``excluded`` (B, 2) names the columns and rows are shifted.
    """
    self_keys = keys is None
    k = anchors if keys is None else keys
    if scale <= torch.finfo(anchors.dtype).max:
        s = torch.addmm(_zero(anchors), anchors, k.T, beta=0.0, alpha=scale)
    else:  # 1/t itself overflows the dtype: the logits are inf/NaN, as the caller reports
        s = (anchors * scale) @ k.T
    n = anchors.shape[0] // 2
    constant = False
    if self_keys:
        bound = float(s.diagonal().amax())  # NaN/inf iff some row is
        lim = _CONSTANT_SHIFT_LIMIT.get(anchors.dtype, 40.0)
        constant = 2.0 * (1.0 + beta) * bound <= lim
        for off in (0, n, -n):  # the anchor itself and its partner view
            s.diagonal(off).fill_(float("-inf"))
    else:
        rows = torch.arange(s.shape[0], device=s.device)[:, None]
        s[rows, excluded] = float("-inf")
    if constant:
        c: Tensor | float = 0.0
        d = s  # e^{-inf} = 0 at the excluded entries
    else:
        c = s.amax(dim=1, keepdim=True)
        d = s.sub_(c)  # in place from here on: one (B, K) buffer for d, then for the softmax
    if not hard or beta == 0.0:
        p1 = d.exp_()
        a = p1.sum(1, keepdim=True)
        lse = a.log()
        if not constant:
            lse = lse.add_(c)
        return lse.squeeze(1), (p1.div_(a) if need_jac else None)
    if beta == 1.0:  # the official default: e^{beta d} is e^d, e^{(1+beta) d} its square
        pb = d.exp_()
        p1 = pb * pb
    else:
        pb = torch.exp(d * beta)
        p1 = d.exp_().mul_(pb)  # e^{(1+beta) d}
    a = p1.sum(1, keepdim=True)
    b = pb.sum(1, keepdim=True)
    jac: Tensor | None = None
    if not need_jac:
        pass
    elif detach_weights:
        jac = p1.div_(a)
    else:
        # d log R / d s = (1 + beta) softmax((1+beta) s) - beta softmax(beta s)
        jac = p1.mul_((1.0 + beta) / a).sub_(pb.mul_(beta / b))
    log_r = (a.log() - b.log()).add_(log_m)
    if not constant:
        log_r = log_r.add_(c)
    return log_r.squeeze(1), jac


class _MatmulLogMass(torch.autograd.Function):
    """``log R`` of the two-view layout straight from anchors and keys, fused.

    Builds the (B, K) logits, drops each row's two excluded columns (itself and its partner),
    and computes ``log R`` with the softmaxes of ``(1 + beta) s`` and ``beta s`` kept for the
    backward pass, which is then one elementwise pass and the matmuls. With ``keys=None`` the keys
    are the anchors themselves (one process) and the gradient is ``(G + G^T) @ anchors`` (one
    GEMM). Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, anchors, keys, excluded, scale, log_m, beta, hard, detach_weights):
        out, jac = _matmul_log_mass_kernel(
            anchors, keys, excluded, scale, log_m, beta, hard, detach_weights
        )
        ctx.scale = scale
        ctx.self_keys = keys is None
        ctx.save_for_backward(anchors, anchors if keys is None else keys, jac)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        anchors, keys, jac = ctx.saved_tensors
        g = jac * (grad[:, None] * ctx.scale)
        if ctx.self_keys:
            return (g + g.T) @ anchors, None, None, None, None, None, None, None
        grad_anchors = g @ keys if ctx.needs_input_grad[0] else None
        grad_keys = g.T @ anchors if ctx.needs_input_grad[1] else None
        return grad_anchors, grad_keys, None, None, None, None, None, None


def _matmul_log_mass(
    anchors: Tensor,
    keys: Tensor | None,
    excluded: Tensor | None,
    scale: float,
    log_m: float,
    beta: float,
    hard: bool,
    detach_weights: bool,
) -> Tensor:
    """:class:`_MatmulLogMass`, or its kernel alone (no node, nothing saved) without grad."""
    args = (anchors, keys, excluded, scale, log_m, beta, hard, detach_weights)
    if torch.is_grad_enabled() and (
        anchors.requires_grad or (keys is not None and keys.requires_grad)
    ):
        out: Tensor = _MatmulLogMass.apply(*args)
        return out
    return _matmul_log_mass_kernel(*args, need_jac=False)[0]


_ZEROS: dict[tuple[torch.dtype, torch.device], Tensor] = {}


def _zero(like: Tensor) -> Tensor:
    """A cached 0-d zero of ``like``'s dtype and device (the ignored ``input`` of ``addmm``)."""
    key = (like.dtype, like.device)
    zero = _ZEROS.get(key)
    if zero is None:
        zero = _ZEROS[key] = torch.zeros((), dtype=like.dtype, device=like.device)
    return zero


_CONSTANTS: dict[tuple[Any, ...], tuple[Tensor, ...]] = {}


def _constants(like: Tensor, *values: float) -> tuple[Tensor, ...]:
    """Cached 0-d tensors of ``values`` in ``like``'s dtype and device.

    An operation with a Python number wraps it into a tensor on every call (about 1.5 us on a
    CPU, a large share of a small-N call); the same operation with a 0-d tensor of the same dtype
    gives the same result.
    """
    key = (like.dtype, like.device, *values)
    out = _CONSTANTS.get(key)
    if out is None:
        if len(_CONSTANTS) >= 256:  # settings that change every call: keep the cache bounded
            _CONSTANTS.clear()
        out = _CONSTANTS[key] = tuple(
            torch.tensor(v, dtype=like.dtype, device=like.device) for v in values
        )
    return out


_NEG_MASKS: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}


def _negative_mask(n2: int, like: Tensor) -> Tensor:
    """Cached (2N, 2N) matrix of ``like``'s dtype: 1 at each row's negatives, 0 at the row itself
    and at its partner view (columns ``i`` and ``i +- N``)."""
    key = (n2, like.dtype, like.device)
    mask = _NEG_MASKS.get(key)
    if mask is None:
        if len(_NEG_MASKS) >= 16:
            _NEG_MASKS.clear()
        mask = torch.ones(n2, n2, dtype=like.dtype, device=like.device)
        for off in (0, n2 // 2, -(n2 // 2)):
            mask.diagonal(off).fill_(0.0)
        _NEG_MASKS[key] = mask
    return mask


# up to this many anchors (2N), the default loss (estimator "hard" with the clamp, one process)
# is one autograd node over the whole (2N, 2N) logit matrix (_SmallHCL): a few more flops than
# the row-shifted blocks of _MatmulLogMass, far fewer torch calls and autograd nodes, which is
# what a call costs at small N; the crossover was measured with benchmarks/bench_hcl.py
_SMALL_MAX_ROWS = 256


def _small_hcl_kernel(
    z: Tensor,
    scale: float,
    beta: float,
    tau_plus: float,
    temperature: float,
    reduction: str,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]] | None:
    r"""Forward of :class:`_SmallHCL`: (loss, clamped rows (2, N), tensors for the backward), or
    ``None`` (a NaN/inf in ``z`` or logits beyond the unshifted range: the caller takes the
    general path, which checks and diagnoses).

    ``z`` (2N, D) is ``[z1; z2]``. While ``2 (1 + beta)`` times the largest logit (the largest
    diagonal one, Cauchy-Schwarz; NaN or inf exactly when a row of ``z`` holds one) is at most
    40 in float32, ``e^{beta s}`` and ``e^{(1 + beta) s}`` of every logit are normal floats, so
    with :math:`r = \sum_j e^{(1+\beta)s_{ij}} / \sum_j e^{\beta s_{ij}}` over the negatives
    (a cached 0/1 mask), :math:`R = M r` and :math:`u = e^{-s^+}` the rows of
    :func:`_clamped_rows` are :math:`\log(1 + \max(c_1 r u - \tau^+ c_1, c_2 u))`,
    :math:`c_1 = M / (1 - \tau^+)`, :math:`c_2 = M e^{-1/t}`: finite for finite inputs, so no
    further test is needed.
    """
    n2, dtype = z.shape[0], z.dtype
    if not scale <= torch.finfo(dtype).max:
        return None
    n = n2 // 2
    s = torch.addmm(_zero(z), z, z.T, beta=0.0, alpha=scale)
    bound = s.max().item()  # the largest diagonal logit up to rounding; NaN/inf iff z holds one
    if not 2.0 * (1.0 + beta) * bound <= _CONSTANT_SHIFT_LIMIT.get(dtype, 40.0):
        return None
    m_neg = n2 - 2
    c1 = m_neg / (1.0 - tau_plus)
    tau_c1, c1_t, c2_t, beta_t, inv_t = _constants(
        z, tau_plus * c1, c1, m_neg * math.exp(-1.0 / temperature), beta, 1.0 / n2
    )
    u = s.diagonal(n).neg().exp_()  # e^{-s+}, (N,)
    mask = _negative_mask(n2, z)
    if beta == 1.0:  # the official default: e^{(1+beta) s} is the square of e^{beta s}
        pb = s.exp_().mul_(mask)
        p1 = pb * pb
    else:
        pb = s.mul(beta_t).exp_().mul_(mask)
        p1 = s.exp_().mul_(pb)
    a = p1.sum(1)
    b = pb.sum(1)
    x = a.div(b).view(2, n).mul_(u).mul_(c1_t)  # c1 r u = R e^{-s+} / (1 - tau+)
    ng = x.sub(tau_c1)
    floor = u.mul(c2_t)
    clamped = ng < floor
    mx = torch.maximum(ng, floor)
    rows = torch.log1p(mx)
    if reduction == "none":
        loss = rows.view(n2)
    else:
        loss = rows.sum() if reduction == "sum" else rows.sum().mul_(inv_t)
    return loss, clamped, (p1, pb, a, b, x, floor, mx, clamped, inv_t)


class _SmallHCL(torch.autograd.Function):
    r"""The clamped HCL loss of the one-process two-view layout at small N, one autograd node.

    Forward: :func:`_small_hcl_kernel`. Backward in closed form: with
    :math:`m = \max(N_g, \text{floor})` (relative to :math:`e^{s^+}`) a row's loss is
    :math:`\log(1 + m)`; where the clamp holds it depends on :math:`s^+` only
    (:math:`\partial\ell/\partial s^+ = -\text{floor} / (1 + m)`), elsewhere
    :math:`\partial\ell/\partial s^+ = -c_1 r u / (1 + m)` and
    :math:`\partial\ell/\partial s_{ij} = c_1 r u / (1 + m)\, J_{ij}` with
    :math:`J = \partial \log R / \partial s = (1 + \beta)\,\mathrm{softmax}((1+\beta)s) -
    \beta\,\mathrm{softmax}(\beta s)` (``detach_weights``: the first softmax alone). The
    gradient of ``z`` is ``scale (G + G^T + P + P^T) z`` with ``G = diag(w) J`` and ``P`` the
    positives' weights at ``(i, N + i)``. Not twice differentiable.
    """

    @staticmethod
    def forward(
        ctx: Any,
        z: Tensor,
        scale: float,
        beta: float,
        tau_plus: float,
        temperature: float,
        detach_weights: bool,
        reduction: str,
        out: list[Any],
    ) -> Tensor:
        res = _small_hcl_kernel(z, scale, beta, tau_plus, temperature, reduction)
        if res is None:  # the caller takes the general path; this node is discarded
            out.append(None)
            return z.new_zeros(())
        loss, clamped, saved = res
        out.extend((loss, clamped))
        ctx.scale, ctx.beta, ctx.detach, ctx.reduction = scale, beta, detach_weights, reduction
        ctx.inv = saved[-1]
        ctx.save_for_backward(z, *saved[:-1])
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        z, p1, pb, a, b, x, floor, mx, clamped = ctx.saved_tensors
        n2 = z.shape[0]
        n = n2 // 2
        scale, beta = ctx.scale, ctx.beta
        # h = -dl/ds+ of each row, and dl/dlog R of the rows off the clamp
        h = torch.where(clamped, floor, x).div_(mx + 1.0)
        if ctx.reduction == "none":
            h = h.mul_(grad.view(2, n))
        else:
            h = h.mul_(grad.mul(ctx.inv) if ctx.reduction == "mean" else grad)
        g_pos = h.sum(0).mul_(-scale)  # both rows i and N + i have positive i
        w = h.masked_fill_(clamped, 0.0).view(n2, 1).mul_(scale)
        if ctx.detach:
            g = p1 * (w / a[:, None])
        else:
            g = p1 * (w * (1.0 + beta) / a[:, None])
            if beta != 0.0:
                g = g.sub_(pb * (w * beta / b[:, None]))
        m = g + g.T
        m.diagonal(n).add_(g_pos)  # the positives, (i, N + i) and (N + i, i)
        m.diagonal(-n).add_(g_pos)
        return m @ z, None, None, None, None, None, None, None


def _small_hcl(
    z: Tensor,
    scale: float,
    beta: float,
    tau_plus: float,
    temperature: float,
    detach_weights: bool,
    reduction: str,
) -> tuple[Tensor, Tensor] | None:
    """(loss, clamped rows) by :class:`_SmallHCL` (its kernel alone without grad), or ``None``
    where the general path must decide."""
    if torch.is_grad_enabled() and z.requires_grad:
        out: list[Any] = []
        loss = _SmallHCL.apply(
            z, scale, beta, tau_plus, temperature, detach_weights, reduction, out
        )
        return None if out[0] is None else (loss, out[1])
    res = _small_hcl_kernel(z, scale, beta, tau_plus, temperature, reduction)
    return None if res is None else (res[0], res[1])


def _debiased_rows(
    log_r: Tensor,
    pos: Tensor,
    n_neg: Tensor | float,
    *,
    tau_plus: float,
    temperature: float | None,
    clamp: bool,
    on_collapse: str = "warn",
    clamped_out: list[Tensor] | None = None,
) -> Tensor:
    """Per-row loss from log R and the positive logit: debias, clamp, -s+ + log(e^{s+} + Ng).

    ``clamped_out``: append the clamped-rows mask there instead of reporting a collapse here
    (the caller reports it after its own checks, with one sync for both).
    """
    if tau_plus == 0.0 and not clamp:
        return torch.logaddexp(pos, log_r) - pos
    log_m = torch.log(n_neg) if isinstance(n_neg, Tensor) else math.log(n_neg)
    m = torch.maximum(pos, log_r).detach()
    # the debiased mass relative to e^m (may be <= 0 where tau_plus * M * e^{s+} exceeds R)
    ng = (torch.exp(log_r - m) - tau_plus * torch.exp(log_m + pos - m)) / (1.0 - tau_plus)
    positive = ng > 0
    # log Ng, with a safe argument where ng <= 0 (torch.where would pass NaN gradients through)
    log_ng = m + torch.log(torch.where(positive, ng, torch.ones_like(ng)))
    if clamp:
        assert temperature is not None
        # the floor M e^{-1/t}, compared in log space: nothing underflows when the logits are
        # large (normalize=False), and the gradient flows through ng where ng >= floor
        log_floor = log_m - 1.0 / temperature
        log_floor_t = log_floor if isinstance(log_floor, Tensor) else torch.full_like(ng, log_floor)
        clamped = ~positive | (log_ng < log_floor_t)
        log_ng = torch.where(clamped, log_floor_t, log_ng)
        if clamped_out is not None:
            if on_collapse != "ignore" and clamped.numel():
                clamped_out.append(clamped)
        elif on_collapse != "ignore" and clamped.numel():
            share = float(clamped.float().mean())  # one device sync per call
            if share > COLLAPSE_SHARE:
                _report_collapse(share, temperature, tau_plus, on_collapse)
    elif not bool(positive.all()):
        total = torch.exp(pos - m) + ng
        if bool((total <= 0).any()):
            raise ValueError(
                f"clamp=False: the debiased negative mass is below -exp(s+) in "
                f"{int((total <= 0).sum())} rows, where the loss is undefined (log of a "
                "non-positive number); use clamp=True (the official floor) or a smaller tau_plus"
            )
        # 0 >= Ng > -e^{s+}: log(e^{s+} + Ng) in the shifted form
        return m - pos + torch.log(total)
    return torch.logaddexp(pos, log_ng) - pos


def _report_collapse(share: float, temperature: float, tau_plus: float, on_collapse: str) -> None:
    text = (
        f"{share:.0%} of the rows hit the clamp of the debiased negative mass "
        f"(temperature={temperature:g}, tau_plus={tau_plus:g}): the loss and its gradient are "
        "(nearly) zero there, so training stalls. The debiasing term tau_plus*M*exp(s+) exceeds "
        "the negative mass when the positive views are much closer than same-class samples, "
        "which small temperatures amplify. Use temperature ~0.5, a smaller tau_plus, or "
        "tau_plus=0 (hard negatives without debiasing)."
    )
    if on_collapse == "raise":
        raise ClampCollapseError(text)
    _warn_every_call(text, ClampCollapseWarning)


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
    on_collapse: OnCollapse = "warn",
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
    on_collapse : {"warn", "raise", "ignore"}, default "warn"
        What to do when more than half of the rows hit the clamp (the loss and its gradient are
        then ~0): :class:`ClampCollapseWarning` on every such call, :class:`ClampCollapseError`,
        or nothing (which also saves the one device sync per call the check costs).
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
    beta_f, tau_f = _check_hparams(beta, tau_plus, reduction)
    check_choice("estimator", estimator, _ESTIMATORS)
    check_choice("on_collapse", on_collapse, _ON_COLLAPSE)
    clamp = check_bool("clamp", clamp)
    detach_weights = check_bool("detach_weights", detach_weights)
    if p.shape[0] != x.shape[0]:
        raise ValueError(
            f"pos_logits {tuple(p.shape)} and neg_logits {tuple(x.shape)} need the same B"
        )
    if x.shape[1] == 0:
        raise ValueError("neg_logits needs at least one negative per row (K >= 1)")
    temp_f: float | None = None
    if clamp and estimator == "hard":
        if temperature is None:
            raise ValueError("clamp=True needs temperature (the floor is M*exp(-1/temperature))")
        temp_f = _check_temperature(temperature)
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
    log_r = _log_mass(x, n_neg, beta_f, hard, detach_weights)
    if not hard:
        loss = torch.logaddexp(p, log_r) - p
    else:
        loss = _debiased_rows(
            log_r,
            p,
            n_neg,
            tau_plus=tau_f,
            temperature=temp_f,
            clamp=clamp,
            on_collapse=on_collapse,
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
    on_collapse: OnCollapse = "warn",
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
        Hardness :math:`\beta \ge 0` (official default 1.0; 0 gives DCL). Python, NumPy or 0-d
        tensor scalars are accepted for every numeric setting (not a tensor with gradient).
    tau_plus : float, default 0.1
        Class prior :math:`\tau^+ \in [0, 1)` (official default 0.1; 0 switches debiasing off).
    temperature : float, default 0.5
        Softmax temperature (official default 0.5). Keep it near 0.5 when ``tau_plus > 0``: at
        ``t <= 0.1`` on realistic views (positive cosine ~0.96) most rows hit the clamp and the
        loss and its gradient are exactly those of the constant floor, ~0, as in the official
        code (see ``on_collapse``).
    estimator : {"hard", "easy"}
        ``"easy"`` is NT-Xent (``beta`` and ``tau_plus`` ignored), as in the official code.
    normalize : bool, default True
        L2-normalise the rows first (the official model outputs unit vectors).
    clamp : bool, default True
        Apply the floor :math:`M e^{-1/t}` as the official code always does. It is the exact
        lower bound for unit vectors; without it a debiased estimate below :math:`-e^{s^+}`
        leaves the loss undefined and raises ``ValueError`` (the official code returns NaN).
    detach_weights : bool, default False
        Stop gradients through the importance weights.
    gather_distributed : bool, default False
        Use the embeddings of every ``torch.distributed`` rank as negatives (all-gather with
        gradients); anchors stay local.
    on_collapse : {"warn", "raise", "ignore"}, default "warn"
        When more than half of the rows hit the clamp: :class:`ClampCollapseWarning` on every
        such call (not once per process), :class:`ClampCollapseError`, or nothing.
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
    a, b = check_pair(z1, z2, finite=False)  # NaN/inf: diagnosed below, from the result
    beta_f, tau_f = _check_hparams(beta, tau_plus, reduction)
    temp_f = _check_temperature(temperature)
    check_choice("estimator", estimator, _ESTIMATORS)
    check_choice("on_collapse", on_collapse, _ON_COLLAPSE)
    normalize = check_bool("normalize", normalize)
    clamp = check_bool("clamp", clamp)
    detach_weights = check_bool("detach_weights", detach_weights)
    gather_distributed = check_bool("gather_distributed", gather_distributed)
    settings = (beta_f, tau_f, temp_f, estimator, normalize, clamp, detach_weights)
    if _autocast_enabled(a):
        with torch.autocast(a.device.type, enabled=False):
            loss = _hcl_pair(a, b, *settings, gather_distributed, on_collapse, reduction)
    else:
        loss = _hcl_pair(a, b, *settings, gather_distributed, on_collapse, reduction)
    return loss if loss.dtype == a.dtype else loss.to(a.dtype)


def _hcl_pair(
    z1: Tensor,
    z2: Tensor,
    beta: float,
    tau_plus: float,
    temperature: float,
    estimator: str,
    normalize: bool,
    clamp: bool,
    detach_weights: bool,
    gather_distributed: bool,
    on_collapse: str,
    reduction: str,
) -> Tensor:
    """:func:`hcl_loss` after its argument checks: the loss, with the input checks done lazily.

    One device sync per call reads the reduced loss (and the smallest row norm with
    ``normalize``, and the share of clamped rows); only when the loss is not finite or a row
    norm is 0 are the inputs checked in full, raising the same ``ValueError`` naming ``z1`` or
    ``z2`` (NaN/inf, an all-zero row) as an eager check. A NaN or inf in a row of either view
    makes that pair's positive logit (an elementwise product, no BLAS shortcut) NaN or
    ``±inf``, and with it the pair's rows and the reduced loss, so a finite loss means finite
    inputs. The clamp-collapse report comes after that check, so bad input raises its own error.

    Up to ``_SMALL_MAX_ROWS`` anchors the default loss (``"hard"`` with the clamp, one process)
    is :class:`_SmallHCL`, one node over the whole logit matrix; its kernel declines (and this
    general path decides) where the largest diagonal logit is not finite, so the same errors.
    """
    n = z1.shape[0]
    dtype = _compute_dtype(z1.dtype)
    z = torch.cat((z1, z2))
    if z.dtype != dtype:
        z = z.to(dtype)
    norms = None
    if normalize:  # F.normalize, keeping the norms for the zero-row test
        norms = torch.linalg.vector_norm(z, dim=1, keepdim=True)
        z = z / norms.clamp_min(1e-12)
    hard = estimator == "hard"
    quick = hard and clamp  # the default: the clamped rows in their short form
    rank, world = rank_and_world_size()
    if quick and 2 * n <= _SMALL_MAX_ROWS and not (gather_distributed and world > 1):
        small = _small_hcl(
            z, 1.0 / temperature, beta, tau_plus, temperature, detach_weights, reduction
        )
        if small is not None:  # finite inputs (the kernel's bound said so): a finite loss
            loss, clamped_rows = small
            with torch.no_grad():
                stats = []
                if norms is not None:
                    stats.append(norms.amin())
                if on_collapse != "ignore":
                    stats.append(clamped_rows.sum(dtype=dtype))
                # one sync (the kernel's bound was the other, as on the general path)
                values = (
                    [float(x) for x in stats] if len(stats) < 2 else torch.stack(stats).tolist()
                )
            if norms is not None and not values[0] > 0:  # an all-zero row: the eager errors
                _normalize(z1, "z1")
                _normalize(z2, "z2")
            if on_collapse != "ignore" and values[-1] / (2 * n) > COLLAPSE_SHARE:
                _report_collapse(values[-1] / (2 * n), temperature, tau_plus, on_collapse)
            return loss
    a, b = z[:n], z[n:]
    keys = excluded = None  # one process: keys = z, the excluded columns three diagonals
    if gather_distributed and world > 1:
        keys = torch.cat([gather_with_grad(a), gather_with_grad(b)], 0)  # (2NW, D)
        idx = torch.arange(n, device=z.device) + rank * n
        self_col = torch.cat([idx, idx + n * world])
        partner_col = torch.cat([idx + n * world, idx])
        excluded = torch.stack([self_col, partner_col], 1)
    else:
        world = 1
    pos = (a * b).sum(1) / temperature
    pos = torch.cat([pos, pos])
    n_neg = float(2 * n * world - 2)
    log_r = _matmul_log_mass(
        z, keys, excluded, 1.0 / temperature, math.log(n_neg), beta, hard, detach_weights
    )
    clamped: list[Tensor] = []

    def careful_rows() -> Tensor:  # the row-shifted form, safe where the short one overflows
        return _debiased_rows(
            log_r,
            pos,
            n_neg,
            tau_plus=tau_plus,
            temperature=temperature,
            clamp=clamp,
            on_collapse=on_collapse,
            clamped_out=clamped,
        )

    if not hard:
        rows = torch.logaddexp(pos, log_r) - pos
    elif quick:
        rows, mask = _clamped_rows(log_r, pos, n_neg, tau_plus, temperature)
        if on_collapse != "ignore":
            clamped.append(mask)
    else:
        rows = careful_rows()
    loss = reduce_loss(rows, reduction)
    with torch.no_grad():
        stats = [loss.sum() if reduction == "none" else loss]
        if norms is not None:
            stats.append(norms.amin())
        if clamped:
            stats.append(clamped[0].sum(dtype=dtype))
        values = torch.stack(stats).tolist()  # the one sync
    if not math.isfinite(values[0]) or (norms is not None and not values[1] > 0):
        check_tensor(z1, "z1", 2)
        check_tensor(z2, "z2", 2)
        if normalize:
            _normalize(z1, "z1")
            _normalize(z2, "z2")
        if quick and not math.isfinite(values[0]):  # finite inputs: the shifted form decides
            clamped.clear()
            rows = careful_rows()
            loss = reduce_loss(rows, reduction)
            values[-1] = float(clamped[0].sum()) if clamped else 0.0
    if clamped and values[-1] / clamped[0].numel() > COLLAPSE_SHARE:
        _report_collapse(values[-1] / clamped[0].numel(), temperature, tau_plus, on_collapse)
    return loss


def _clamped_rows(
    log_r: Tensor, pos: Tensor, n_neg: float, tau_plus: float, temperature: float
) -> tuple[Tensor, Tensor]:
    r"""Rows of the clamped HCL/DCL loss, and which rows hit the clamp, relative to
    :math:`e^{s^+}`: :math:`\ell = \log(1 + \max(N_g, M e^{-1/t}) e^{-s^+})` with
    :math:`N_g e^{-s^+} = (e^{\log R - s^+} - \tau^+ M) / (1 - \tau^+)`.

    The same function (and gradient) as :func:`_debiased_rows` with ``clamp=True``, in 9
    elementwise ops instead of ~20; it overflows (``inf``) only where :math:`\log R - s^+` or
    :math:`\log M - 1/t - s^+` exceeds the dtype's exponent range, and the caller then takes
    :func:`_debiased_rows`, whose shifted form does not.
    """
    ng = (torch.exp(log_r - pos) - tau_plus * n_neg) * (1.0 / (1.0 - tau_plus))
    floor = torch.exp((math.log(n_neg) - 1.0 / temperature) - pos)
    return torch.log1p(torch.maximum(ng, floor)), ng < floor


def _normalize(x: Tensor, name: str) -> Tensor:
    """Rows to unit length; an all-zero row has no direction and is an error, not a NaN."""
    if bool((x.abs().amax(1) == 0).any()):
        raise ValueError(
            f"{name} has an all-zero row, which normalize=True cannot scale to unit length"
        )
    return F.normalize(x, dim=1)


def hcl_from_labels(
    embeddings: Tensor,
    labels: Tensor,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    *,
    beta: float = 1.0,
    tau_plus: float = 0.1,
    temperature: float = 0.5,
    estimator: Estimator = "hard",
    normalize: bool = True,
    clamp: bool = True,
    detach_weights: bool = False,
    on_collapse: OnCollapse = "warn",
    reduction: Reduction = "mean",
) -> Tensor:
    r"""HCL in pytorch-metric-learning's convention: pairs and negatives from labels.

    Every pair ``(a, p)`` with ``labels[a] == ref_labels[p]`` (``a != p`` when the references
    are the embeddings themselves) is a positive pair; the negatives of anchor ``a`` are the
    references whose label differs from ``labels[a]`` (:math:`M_a` of them, per anchor). Each
    positive pair contributes one HCL term (:func:`hcl_from_logits` on cosine logits / t) and
    ``"mean"`` averages over positive pairs, as pytorch-metric-learning's ``NTXentLoss`` does.
    ``SelfSupervisedLoss``'s layout (``[z1; z2]`` with labels ``[0..N-1, 0..N-1]``) gives exactly
    :func:`hcl_loss` ``(z1, z2)``; ``estimator="easy"`` gives ``NTXentLoss(temperature)``.

    Parameters
    ----------
    embeddings : Tensor, shape (B, D)
    labels : Tensor of int, shape (B,)
    ref_emb : Tensor, shape (R, D), optional
        References holding the positives and negatives (default: ``embeddings``).
    ref_labels : Tensor of int, shape (R,), optional
        Needed with ``ref_emb``.
    beta, tau_plus, temperature, estimator, normalize, clamp, detach_weights, on_collapse
        As in :func:`hcl_loss`.
    reduction : {"mean", "sum", "none"}
        ``"none"``: one loss per positive pair, in row-major order of ``(a, p)``.

    Returns
    -------
    Tensor
        Scalar (0 with a gradient path when there is no positive pair, as in
        pytorch-metric-learning), or (P,) for ``reduction="none"``.

    Raises
    ------
    ValueError
        If an anchor of a positive pair has no negative (every reference shares its label).
    """
    e = check_tensor(embeddings, "embeddings", 2)
    y = _check_labels(labels, "labels", e.shape[0])
    if ref_emb is None:
        if ref_labels is not None:
            raise ValueError("ref_labels needs ref_emb")
        r, ry, same = e, y, True
    else:
        r = check_tensor(ref_emb, "ref_emb", 2)
        if r.shape[1] != e.shape[1]:
            raise ValueError(
                f"ref_emb must have D={e.shape[1]} columns like embeddings, got {tuple(r.shape)}"
            )
        if ref_labels is None:
            raise ValueError("ref_emb needs ref_labels")
        ry = _check_labels(ref_labels, "ref_labels", r.shape[0])
        same = False
    _check_hparams(beta, tau_plus, reduction)
    temp_f = _check_temperature(temperature)
    normalize = check_bool("normalize", normalize)
    out_dtype = e.dtype
    dtype = _compute_dtype(torch.promote_types(e.dtype, r.dtype))
    e, r = e.to(dtype), r.to(dtype)
    if normalize:
        e = _normalize(e, "embeddings")
        r = e if same else _normalize(r, "ref_emb")
    s = e @ r.T / temp_f  # (B, R)
    match = y[:, None] == ry[None, :].to(y.device)
    pos_mask = match.clone()
    if same:
        pos_mask.fill_diagonal_(False)
    a_idx, p_idx = torch.nonzero(pos_mask, as_tuple=True)
    if a_idx.numel() == 0:
        zero = (e.sum() + r.sum()) * 0.0
        return (zero[None][:0] if reduction == "none" else zero).to(out_dtype)
    neg_mask = ~match
    if bool((neg_mask[a_idx].sum(1) == 0).any()):
        raise ValueError(
            "labels: an anchor of a positive pair has no negative (every reference shares its "
            "label); HCL needs at least one other label per batch"
        )
    return hcl_from_logits(
        s[a_idx, p_idx],
        s[a_idx],
        beta=beta,
        tau_plus=tau_plus,
        temperature=temp_f,
        estimator=estimator,
        neg_mask=neg_mask[a_idx],
        clamp=clamp,
        detach_weights=detach_weights,
        on_collapse=on_collapse,
        reduction=reduction,
    ).to(out_dtype)


def _check_labels(labels: object, name: str, n: int) -> Tensor:
    if not isinstance(labels, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of integer labels, got {type(labels).__name__}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    return labels


def debiased_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    tau_plus: float = 0.1,
    temperature: float = 0.5,
    normalize: bool = True,
    clamp: bool = True,
    gather_distributed: bool = False,
    on_collapse: OnCollapse = "warn",
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
        on_collapse=on_collapse,
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
    b0 = check_real("beta0", beta0, low=0.0)
    n_steps = check_int("n_steps", n_steps, low=2)
    epochs = check_int("epochs", epochs, low=n_steps)
    epoch = check_int("epoch", epoch, low=1, high=epochs)
    k = epochs // n_steps
    draws = (epoch - 1) // k  # draws made before this epoch starts
    level = min(max(draws - 1, 0), n_steps - 1)
    return b0 * (1.0 - level / (n_steps - 1))


class HardNegativeLoss(nn.Module):
    r"""Module form of :func:`hcl_loss`: ``HardNegativeLoss(beta, tau_plus, temperature)(z1, z2)``.

    Also callable in pytorch-metric-learning's convention, ``loss(embeddings, labels)``
    (optionally ``ref_emb=``, ``ref_labels=``; pairs from labels, :func:`hcl_from_labels`): a
    second argument that is an integer tensor is read as labels. Inside
    ``pytorch_metric_learning.losses.SelfSupervisedLoss`` use
    :class:`papershelf.hard_negatives.metric_learning.SelfSupervisedLoss` (that class with
    these losses added to its list of supported losses; ``[pml]`` extra).

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
        Two-view form only.
    on_collapse : {"warn", "raise", "ignore"}, default "warn"
    reduction : {"mean", "sum", "none"}, default "mean"

    Examples
    --------
    >>> import torch
    >>> HardNegativeLoss(beta=1.0)(torch.randn(8, 16), torch.randn(8, 16)).shape
    torch.Size([])
    >>> HardNegativeLoss(beta=1.0)(torch.randn(8, 16), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])).shape
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
        on_collapse: OnCollapse = "warn",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        beta_f, tau_f = _check_hparams(beta, tau_plus, reduction)
        self.beta = beta_f
        self.tau_plus = tau_f
        self.temperature = _check_temperature(temperature)
        self.estimator: Estimator = check_choice("estimator", estimator, _ESTIMATORS)
        self.normalize = check_bool("normalize", normalize)
        self.clamp = check_bool("clamp", clamp)
        self.detach_weights = check_bool("detach_weights", detach_weights)
        self.gather_distributed = check_bool("gather_distributed", gather_distributed)
        self.on_collapse: OnCollapse = check_choice("on_collapse", on_collapse, _ON_COLLAPSE)
        self.reduction: Reduction = reduction

    def forward(
        self,
        z1: Tensor | None = None,
        z2: Tensor | None = None,
        indices_tuple: object = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
        *,
        embeddings: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """``(z1, z2)``: two views, each (N, D). ``(embeddings, labels[, ref_emb, ref_labels])``:
        pytorch-metric-learning's form, pairs from labels (``indices_tuple`` is not supported)."""
        if embeddings is not None:
            if z1 is not None:
                raise TypeError("pass either z1 or embeddings, not both")
            z1 = embeddings
        if labels is not None:
            if z2 is not None:
                raise TypeError("pass either z2 or labels, not both")
            z2 = labels
        if z1 is None or z2 is None:
            raise TypeError("HardNegativeLoss needs (z1, z2) or (embeddings, labels)")
        if indices_tuple is not None:
            raise ValueError(
                "indices_tuple (miner output) is not supported; pairs come from labels"
            )
        kw = dict(
            beta=self.beta,
            tau_plus=self.tau_plus,
            temperature=self.temperature,
            estimator=self.estimator,
            normalize=self.normalize,
            clamp=self.clamp,
            detach_weights=self.detach_weights,
            on_collapse=self.on_collapse,
            reduction=self.reduction,
        )
        if isinstance(z2, Tensor) and not z2.is_floating_point():
            return hcl_from_labels(z1, z2, ref_emb, ref_labels, **kw)  # type: ignore[arg-type]
        if ref_emb is not None or ref_labels is not None:
            raise ValueError("ref_emb and ref_labels need integer labels as the second argument")
        return hcl_loss(z1, z2, gather_distributed=self.gather_distributed, **kw)  # type: ignore[arg-type]

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
        on_collapse: OnCollapse = "warn",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(
            beta=0.0,
            tau_plus=tau_plus,
            temperature=temperature,
            normalize=normalize,
            clamp=clamp,
            gather_distributed=gather_distributed,
            on_collapse=on_collapse,
            reduction=reduction,
        )
