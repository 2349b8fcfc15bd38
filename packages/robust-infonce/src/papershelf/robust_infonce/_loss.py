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
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from papershelf.core.validation import check_bool, check_choice, check_real
from papershelf.robust_infonce._checks import check_pair, check_tensor, reduce_loss
from papershelf.robust_infonce._distributed import gather_with_grad, rank_and_world_size

__all__ = [
    "RINCELoss",
    "info_nce_loss",
    "moco_rince_loss",
    "rince_from_labels",
    "rince_from_logits",
    "rince_loss",
]

Reduction = Literal["mean", "sum", "none"]
Layout = Literal["simclr", "cross"]
_REDUCTIONS = ("mean", "sum", "none")
_LAYOUTS = ("simclr", "cross")


# ----------------------------------------------------------------------------- validation
def _check_q_lam(q: object, lam: object) -> tuple[float, float]:
    """``q`` in [0, 1] and ``lam > 0`` as floats (numbers, NumPy scalars, 0-d arrays/tensors)."""
    if type(q) is float and type(lam) is float and 0.0 <= q <= 1.0 and 0.0 < lam < math.inf:
        return q, lam  # the common case, decided without the general checks (NaN fails here)
    return (
        check_real("q", q, low=0.0, high=1.0),
        check_real("lam", lam, low=0.0, inclusive=(False, True)),
    )


def _check_temperature(temperature: object) -> tuple[float, Tensor | None]:
    """The temperature's value, and the tensor itself when it is a learnable 0-d tensor.

    A 0-d tensor that requires grad stays in the graph (e.g. CLIP's learnable temperature);
    any other number, NumPy scalar or 0-d array/tensor is used as a float.
    """
    if type(temperature) is float and 0.0 < temperature < math.inf:
        return temperature, None  # the common case (NaN fails the comparison)
    value = check_real("temperature", temperature, low=0.0, inclusive=(False, True))
    if isinstance(temperature, Tensor) and temperature.requires_grad:
        if not temperature.is_floating_point():
            raise TypeError(f"temperature must be a floating-point tensor, got {temperature.dtype}")
        return value, temperature
    return value, None


def _check_common(layout: str, reduction: str) -> None:
    check_choice("layout", layout, _LAYOUTS)
    check_choice("reduction", reduction, _REDUCTIONS)


# one C call that is False unless some autocast region is active (then the device's own flag)
_ANY_AUTOCAST = getattr(torch._C, "_is_any_autocast_enabled", None)


def _autocast_enabled(x: Tensor) -> bool:
    """Whether autocast is on for ``x``'s device (cheaply False outside any autocast region)."""
    if _ANY_AUTOCAST is not None and not _ANY_AUTOCAST():
        return False
    return torch.is_autocast_enabled(x.device.type)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # at least float32 inside the loss: bf16/fp16 logits lose the positive against S
    if dtype is torch.float32 or dtype is torch.float64:
        return dtype
    return torch.promote_types(dtype, torch.float32)


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


def _check_logits_finite(lse: Tensor, pos: Tensor, temperature: float) -> None:
    """Raise (naming the temperature) when the scaled logits overflow the compute dtype.

    With finite inputs the row LSE is finite unless some ``z_i . z_j / temperature`` exceeds the
    dtype's range; the loss is then not computable in that dtype (float64 inputs may be).
    """
    if not bool(torch.isfinite(lse).all() & torch.isfinite(pos).all()):
        big = torch.finfo(lse.dtype).max
        raise ValueError(
            f"temperature={temperature:g} makes the logits z_i.z_j/temperature overflow "
            f"{lse.dtype} (> {big:.3g}); use a larger temperature, normalize=True or float64 inputs"
        )


# ----------------------------------------------------------------------------- core
def _rince_from_lse(lse: Tensor, pos: Tensor, q: float, lam: float) -> Tensor:
    r"""Per-row RINCE from LSE over the positive and negatives, and the positive logit.

    With :math:`a = \log\lambda + \mathrm{LSE}` and :math:`d = a - s^+`,
    :math:`\ell = e^{q s^+}\,\operatorname{expm1}(q d)/q`: a product of two well-conditioned
    factors, used while both are far from overflow. Elsewhere (``|q s^+|`` or ``q d`` beyond half
    the dtype's exponent range) the same value is taken through its logarithm,
    :math:`\ell = \operatorname{sign}(d)\,\exp(q\max(a, s^+) + \log(-\operatorname{expm1}(-q|d|))
    - \log q)` with :math:`d = \log\lambda + \max(\mathrm{LSE} - s^+, 0)` (a gap below the
    logits' rounding counts as 0, so the sign is not decided by rounding noise): finite wherever
    the true value is representable, ``±inf`` (never NaN) where it is not.
    """
    a = lse + math.log(lam)
    if q == 0.0:
        return a - pos
    d = a - pos
    c = q * pos
    qd = q * d
    half = 0.5 * math.log(torch.finfo(lse.dtype).max)  # 44.4 in float32, 354.9 in float64
    direct = (c.abs() <= half) & (qd <= half)
    if bool(direct.all()):  # the usual case: no overflow anywhere near
        return torch.exp(c) * (torch.expm1(qd) / q)
    # every branch is evaluated on safe inputs only, so neither the value nor the gradient of the
    # branch that torch.where discards can be inf or NaN
    zero = torch.zeros_like(c)
    value_direct = torch.exp(torch.where(direct, c, zero)) * (
        torch.expm1(torch.where(direct, qd, zero)) / q
    )
    # the overflow regime: |s| is huge, so the gap LSE - s+ (>= 0 in exact arithmetic) is known
    # only up to the logits' rounding; a gap below that noise is the positive dominating its row
    gap = lse - pos
    noise = 64.0 * torch.finfo(lse.dtype).eps * torch.maximum(lse.abs(), pos.abs())
    d_log = math.log(lam) + torch.where(gap > noise, gap, zero)
    use_log = ~direct & (d_log != 0)
    x = torch.where(use_log, q * d_log.abs(), torch.ones_like(d))
    log_mag = torch.where(
        use_log,
        q * (pos + d_log.clamp(min=0.0)) + torch.log(-torch.expm1(-x)) - math.log(q),
        zero,
    )
    value_log = torch.sign(d_log) * torch.exp(log_mag)
    return torch.where(direct, value_direct, torch.where(use_log, value_log, zero))


def _reduce_rows(
    rows: Tensor, lse: Tensor, pos: Tensor, q: float, lam: float, reduction: str
) -> Tensor:
    """``reduce_loss`` that never turns rows of ``+inf`` and ``-inf`` into NaN.

    Rows that overflow the compute dtype are ``±inf``; their mean is then recomputed in float64
    from ``lse`` and ``pos`` and cast back, so it is finite when it fits and ``±inf`` when it does
    not. Where even float64 overflows with rows of both signs the sign of the mean is unknown,
    and a ValueError says so. At overflow the gradient is zero (the loss is not usable there).
    """
    if reduction == "none" or bool(torch.isfinite(rows).all()):
        return reduce_loss(rows, reduction)
    with torch.no_grad():
        r64 = _rince_from_lse(lse.detach().double(), pos.detach().double(), q, lam)
        if bool(torch.isposinf(r64).any()) and bool(torch.isneginf(r64).any()):
            raise ValueError(
                "the RINCE loss overflows float64 with rows of both signs, so its mean is "
                "undefined: raise the temperature (or normalize the embeddings)"
            )
        value = reduce_loss(r64, reduction).to(rows.dtype)
    return lse.sum() * 0.0 + value


def _rince_rows(logits: Tensor, pos: Tensor, q: float, lam: float) -> Tensor:
    """Per-row RINCE from logits (excluded columns already at -inf) and the positive logit."""
    return _rince_from_lse(torch.logsumexp(logits, dim=1), pos, q, lam)


# while 2 * max|s| is below this, e^s of every logit s is a normal float with room to sum (no
# shift needed); beyond it each row is shifted by its own maximum
_CONSTANT_SHIFT_LIMIT = {torch.float32: 40.0, torch.float64: 340.0}
# half the natural log of the dtype's largest number: 44.4 in float32, 354.9 in float64
_HALF_LOG_MAX = {dt: 0.5 * math.log(torch.finfo(dt).max) for dt in (torch.float32, torch.float64)}


def _matmul_lse_kernel(
    anchors: Tensor, keys: Tensor | None, excluded: Tensor | None, scale: float, unit: bool
) -> tuple[Tensor, Tensor, Tensor, bool]:
    """The forward of :class:`_MatmulLogSumExp`: (row LSE, ``exp`` buffer, row sums, unshifted).

    Called directly (no autograd node, nothing saved) when no gradient is needed.
    """
    self_keys = keys is None
    k = anchors if keys is None else keys
    if unit:  # rows normalised by the caller: |a_i . k_j| <= 1 (no norm pass, no sync)
        bound = scale
    else:
        na = anchors.norm(dim=1).amax()
        bound = scale * float(na * (na if self_keys else k.norm(dim=1).amax()))
    constant = 2.0 * bound <= _CONSTANT_SHIFT_LIMIT.get(anchors.dtype, 40.0)
    if constant:
        # every logit lies in [-bound, bound] with bound <= 20: e^s can neither overflow nor
        # underflow, so no shift at all (and E = e^S stays exactly as symmetric as S)
        expd = ((anchors * scale) @ k.T).exp_()
        if self_keys:
            expd.fill_diagonal_(0.0)
        elif excluded is not None:
            expd[torch.arange(anchors.shape[0], device=anchors.device), excluded] = 0.0
        total = expd.sum(dim=1, keepdim=True)
        return total.log().squeeze(1), expd, total, True
    logits = (anchors * scale) @ k.T
    if self_keys:
        logits.fill_diagonal_(float("-inf"))
    elif excluded is not None:
        logits[torch.arange(anchors.shape[0], device=anchors.device), excluded] = float("-inf")
    shift = logits.amax(dim=1, keepdim=True)
    expd = logits.sub_(shift).exp_()
    total = expd.sum(dim=1, keepdim=True)
    return total.log().add_(shift).squeeze(1), expd, total, False


class _MatmulLogSumExp(torch.autograd.Function):
    """Row-wise ``logsumexp(scale * anchors @ keys.T)`` without the excluded columns, fused.

    ``keys=None`` means keys = anchors with the diagonal excluded (the one-process SimCLR layout);
    otherwise ``excluded`` (B,) names one column per row to drop, or is ``None``.

    Autograd through ``mm -> scatter(-inf) -> logsumexp`` makes three (B, K) passes forward and
    recomputes the softmax backward. Here, while the Cauchy-Schwarz bound
    ``scale * max|a| * max|k|`` on every logit is small enough that ``e^s`` can neither overflow
    nor underflow (``<= 20`` in float32, ``<= 170`` in float64), the logits are exponentiated in
    place without a shift and summed; otherwise each row is shifted by its own maximum. The
    excluded entries are zeroed after ``exp``. The backward pass reuses that buffer: unshifted and
    with keys = anchors, ``E = e^S`` is symmetric, so ``(G + G^T) @ z`` with ``G = diag(w) E`` is
    ``(E * (w_i + w_j)) @ z``: one multiply and one GEMM. Not twice differentiable.
    """

    @staticmethod
    def forward(
        ctx: Any,
        anchors: Tensor,
        keys: Tensor | None,
        excluded: Tensor | None,
        scale: float,
        unit: bool = False,
    ) -> Tensor:
        out, expd, total, constant = _matmul_lse_kernel(anchors, keys, excluded, scale, unit)
        self_keys = keys is None
        ctx.scale = scale
        ctx.self_keys = self_keys
        ctx.symmetric = self_keys and constant
        ctx.save_for_backward(anchors, anchors if keys is None else keys, expd, total)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None, None]:
        anchors, keys, expd, total = ctx.saved_tensors
        w = grad * ctx.scale / total.squeeze(1)  # row weights: softmax = expd / total
        if ctx.symmetric:
            return (expd * (w[:, None] + w[None, :])) @ anchors, None, None, None, None
        g = expd * w[:, None]  # out of place: backward may run twice (retain_graph)
        if ctx.self_keys:
            return (g + g.T) @ anchors, None, None, None, None
        grad_anchors = g @ keys if ctx.needs_input_grad[0] else None
        grad_keys = g.T @ anchors if ctx.needs_input_grad[1] else None
        return grad_anchors, grad_keys, None, None, None


def _matmul_lse(
    anchors: Tensor,
    keys: Tensor | None,
    excluded: Tensor | None,
    temperature: float,
    learnable: Tensor | None,
    unit: bool = False,
) -> Tensor:
    """Row LSE of ``anchors @ keys.T / t`` (keys=None: the anchors, diagonal excluded), with
    ``excluded`` (one column per row) left out.

    Fused for a float temperature; through plain autograd for a learnable tensor temperature.
    """
    if learnable is None:
        if torch.is_grad_enabled() and (
            anchors.requires_grad or (keys is not None and keys.requires_grad)
        ):
            out: Tensor = _MatmulLogSumExp.apply(anchors, keys, excluded, 1.0 / temperature, unit)
            return out
        # no gradient wanted: the same kernel without an autograd node or saved buffers
        return _matmul_lse_kernel(anchors, keys, excluded, 1.0 / temperature, unit)[0]
    logits = anchors @ (anchors if keys is None else keys).T / learnable.to(anchors.dtype)
    if keys is None or excluded is not None:
        rows = torch.arange(logits.shape[0], device=logits.device)
        hide = torch.zeros_like(logits, dtype=torch.bool)
        hide[rows, rows if keys is None else excluded] = True
        logits = logits.masked_fill(hide, float("-inf"))
    return torch.logsumexp(logits, dim=1)


# up to this many anchors (2N) the SimCLR kernel computes the whole (2N, 2N) logit matrix in one
# GEMM (layout "full"): 4/3 of the block layout's GEMM and exp work in about half as many torch
# calls, which is what a call costs at small N; the crossover was measured with
# benchmarks/bench_rince.py (see the README's Benchmark section)
_FULL_LAYOUT_MAX_ROWS = 192


def _simclr_rince_kernel(
    z: Tensor, scale: float, q: float, lam: float, reduction: str
) -> tuple[Tensor | None, tuple[Tensor, ...], str]:
    """Forward of :class:`_SimCLRRince`: (reduced loss or ``None``, saved tensors, layout).

    ``z`` (2N, D) is ``[z1; z2]`` in the compute dtype. The (2N, 2N) logits are symmetric, so
    only three of their four (N, N) blocks are computed, into one (2N, 2N) buffer: the rows of
    ``z1``, ``[A, B] = z1 @ z^T``, and ``C = z2 @ z2^T`` bottom right (the bottom-left block is
    never written or read). 3/4 of the GEMM and of the ``exp`` work; the row sums of ``z2``'s
    rows ``[B^T, C]`` are the column sums of the right half ``[B; C]``. Layout ``"symmetric"``
    (unshifted) or ``"shifted"`` (each row shifted by its own maximum). Up to
    ``_FULL_LAYOUT_MAX_ROWS`` anchors, where the number of torch calls and not the arithmetic
    sets the cost, the unshifted case computes the whole matrix in one GEMM instead and reduces
    it in about half as many calls (layout ``"full"``: the same formulas, the same checks).

    ``None`` means "not certain": a NaN or inf in ``z``, logits near the overflow range, or rows
    outside the product form's safe range; the caller then takes the general path (which checks
    and diagnoses). Nothing is checked elementwise in the usual case: the largest diagonal
    logit ``scale * max |z_i|^2`` bounds every logit (Cauchy-Schwarz) and is NaN or inf
    exactly when some row of ``z`` holds a NaN or inf (a square is never 0 times NaN, so no
    BLAS shortcut can drop it); with it and ``lam`` the range of every row's ``q s+`` and
    ``q d`` is known before they are computed.
    """
    n2, dtype = z.shape[0], z.dtype
    if not scale <= torch.finfo(dtype).max:  # 1/t itself overflows: the general path says so
        return None, (), ""
    n = n2 // 2
    limit = _CONSTANT_SHIFT_LIMIT.get(dtype, 40.0)
    if n2 <= _FULL_LAYOUT_MAX_ROWS:
        s = torch.addmm(_zero(z), z, z.T, beta=0.0, alpha=scale)
        # the largest logit of all is the largest diagonal one (Cauchy-Schwarz; an off-diagonal
        # one can pass it only by rounding, which makes the bound safer), and NaN or inf exactly
        # when that is: one reduction instead of a diagonal view and a reduction
        bound = s.max().item()
        if not math.isfinite(bound):
            return None, (), ""
        if 2.0 * bound <= limit:
            # s+ = s[i, N + i], a term of row i's LSE (row N + i sums s[N + i, i], the same
            # number up to the GEMM's rounding)
            pos = s.diagonal(n).clone()
            e = s.exp_()
            e.diagonal().zero_()  # no anchor is its own key
            total = e.sum(1)
            return _simclr_rince_rows(total, pos, bound, True, q, lam, reduction, (e,), "full")
        # logits beyond the unshifted range: the block layout below shifts each row
    buf = z.new_empty((n2, n2))
    z2 = z[n:]
    top, c_blk, b_blk = buf[:n], buf[n:, n:], buf[:n, n:]
    torch.addmm(_zero(z), z[:n], z.T, beta=0.0, alpha=scale, out=top)  # [A, B]
    torch.addmm(_zero(z), z2, z2.T, beta=0.0, alpha=scale, out=c_blk)  # C
    bound = float(buf.diagonal().amax())  # A's and C's diagonals; NaN/inf iff z holds one
    if not math.isfinite(bound):
        return None, (), ""
    constant = 2.0 * bound <= limit
    pos = b_blk.diagonal().clone()  # s+ = B[i, i], the same number the LSEs sum
    if constant:  # |s_ij| <= bound <= 20 (float32): e^s neither overflows nor underflows
        top.exp_()
        c_blk.exp_()
        buf.fill_diagonal_(0.0)  # the diagonals of A and C: no anchor is its own key
        e_top, e_c, e_bt = top, c_blk, b_blk  # B^T's exponentials (z2's rows) are B's
        total = torch.cat([top.sum(1), buf[:, n:].sum(0)])  # C symmetric: its column sums
        shift = None
    else:  # each row shifted by its own maximum; B is exponentiated twice (row and column)
        buf.fill_diagonal_(float("-inf"))
        shift1 = top.amax(dim=1)
        shift2 = torch.maximum(b_blk.amax(dim=0), c_blk.amax(dim=1))
        e_bt = (b_blk - shift2[None, :]).exp_()
        e_top = top.sub_(shift1[:, None]).exp_()
        e_c = c_blk.sub_(shift2[:, None]).exp_()
        total = torch.cat([e_top.sum(1), e_c.sum(1).add_(e_bt.sum(0))])
        shift = torch.cat([shift1, shift2])
    layout = "symmetric" if constant else "shifted"
    exps = (e_top, e_c, e_bt)
    return _simclr_rince_rows(total, pos, bound, constant, q, lam, reduction, exps, layout, shift)


def _simclr_rince_rows(
    total: Tensor,
    pos: Tensor,
    bound: float,
    constant: bool,
    q: float,
    lam: float,
    reduction: str,
    exps: tuple[Tensor, ...],
    layout: str,
    shift: Tensor | None = None,
) -> tuple[Tensor | None, tuple[Tensor, ...], str]:
    """The rest of :func:`_simclr_rince_kernel` from the (shifted) row sums of ``e^s``: the
    reduced loss, its certainty test, and the tensors the backward needs."""
    n2, dtype = total.shape[0], total.dtype
    n = n2 // 2
    lse = total.log() if shift is None else total.log().add_(shift)
    log_lam = math.log(lam)
    # constants as cached 0-d tensors, not Python numbers (see _constants): the same values
    q_t, log_lam_t, n2_t, red_t = _constants(
        total, q, log_lam, n2, 1.0 / (q * n2) if reduction == "mean" and q else 1.0 / (q or 1.0)
    )
    d = lse.view(2, n).sub(pos).add_(log_lam_t)  # log lam + LSE - s+, rows of z1 then of z2
    half = _HALF_LOG_MAX.get(dtype) or 0.5 * math.log(torch.finfo(dtype).max)
    if q == 0.0:
        ec = pos  # unused
        if reduction == "none":
            loss = d.view(-1)
        else:  # Tensor.mean is sum / numel, so the same value (in fewer calls)
            loss = d.sum().div_(n2_t) if reduction == "mean" else d.sum()
    else:
        qd = d.mul_(q_t)
        ec = pos.mul(q_t).exp_()  # e^{q s+}
        prod = torch.expm1(qd).mul_(ec)  # e^{q s+} expm1(q d), rows of z1 then of z2
        if reduction == "none":
            loss = prod.div_(q_t).view(-1)
        else:
            loss = prod.sum().mul_(red_t)
    # certain without a tensor test when every logit is within the constant range, log(lam) is
    # moderate (so |d| <= 100 + log 2N + 2 bound) and q d <= q (log lam + log(2N-1) + 2 bound)
    # stays below half the dtype's log-range: then |q s+| <= q bound, every row is finite and
    # below 1e31, and the product form is the branch _rince_from_lse takes
    ok = (
        constant
        and abs(log_lam) <= 100.0
        and n2 <= 10**7
        and q * (log_lam + math.log(n2 - 1) + 2.0 * bound + 1.0) <= half
    )
    if not ok:  # shifted logits or unusual settings: one scalar test, as _rince_pair_direct
        with torch.no_grad():
            total_loss = loss.sum() if reduction == "none" else loss
            if q == 0.0:
                ok = math.isfinite(float(total_loss))
            else:
                worst = torch.maximum((q * pos).abs(), qd.abs()).amax()
                ok = float(worst + total_loss * 0.0) <= half
    if not ok:
        return None, (), ""
    return loss, (*exps, total, lse, ec), layout


class _SimCLRRince(torch.autograd.Function):
    r"""RINCE of the one-process SimCLR layout for a float temperature, one autograd node.

    Forward: :func:`_simclr_rince_kernel`. Backward from the closed-form derivatives of
    :math:`\ell = (e^{q a} - e^{q s^+})/q` (:math:`a = \log\lambda + \mathrm{LSE}`):
    :math:`\partial\ell/\partial\,\mathrm{LSE} = e^{q a}`, :math:`\partial\ell/\partial s^+ =
    -e^{q s^+}` (``q = 0``: 1 and -1). With row weights ``w_i`` (LSE gradient over the row sum)
    the logits' gradient is ``G = diag(w) E``, and the gradient of ``z`` is ``(G + G^T + P) z``
    where ``P`` holds the positives' weights at ``(i, N + i)`` and ``(N + i, i)``. Full layout:
    ``E`` is symmetric, so ``G + G^T = E * (w_i + w_j)``, one multiply and one GEMM. Block
    layouts: ``[M11, M12] @ z`` for ``z1`` and ``M12^T z1 + M22 z2`` for ``z2``; unshifted,
    ``M = E * (w_i + w_j)``. Not twice differentiable.
    """

    @staticmethod
    def forward(
        ctx: Any, z: Tensor, scale: float, q: float, lam: float, reduction: str, out: list[Any]
    ) -> Tensor:
        loss, saved, layout = _simclr_rince_kernel(z, scale, q, lam, reduction)
        if loss is None:  # the caller takes the general path; this node is discarded
            out.append(None)
            return z.new_zeros(())
        out.append(loss)
        ctx.scale, ctx.q, ctx.lam, ctx.reduction, ctx.layout = scale, q, lam, reduction, layout
        ctx.save_for_backward(z, *saved)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None, None, None, None]:
        z, *exps, total, lse, ec = ctx.saved_tensors
        n2 = z.shape[0]
        n = n2 // 2
        q, scale = ctx.q, ctx.scale
        # g_lse: dl/dLSE of each row (2N,) or one number for all rows; g_pos: dl/ds+ (N,)
        if ctx.reduction == "none":
            g: Tensor = grad.view(2, n)
            if q == 0.0:
                g_lse, g_pos = g.reshape(n2), -(g.sum(0))
            else:
                g_lse = (g * torch.exp((lse.view(2, n) + math.log(ctx.lam)) * q)).view(n2)
                g_pos = -((g * ec).sum(0))
        else:
            g = grad / n2 if ctx.reduction == "mean" else grad
            if q == 0.0:
                g_lse, g_pos = g, g * -2.0
            else:
                g_lse = torch.exp((lse + math.log(ctx.lam)) * q).mul_(g)  # e^{q a} g
                g_pos = ec * (g * -2.0)  # both rows i and N + i have positive i
        w = (g_lse * scale) / total
        g_pos = g_pos * scale
        if ctx.layout == "full":
            (e,) = exps
            m = e * (w[:, None] + w)  # G + G^T, E symmetric
            m.diagonal(n).add_(g_pos)  # the positives, (i, N + i) and (N + i, i)
            m.diagonal(-n).add_(g_pos)
            return m @ z, None, None, None, None, None
        e_top, e_c, e_bt = exps
        w1, w2 = w[:n], w[n:]
        if ctx.layout == "symmetric":
            m_top = e_top * (w1[:, None] + w[None, :])  # [M11, M12]
            m22 = e_c * (w2[:, None] + w2[None, :])
        else:
            m_top = e_top * w1[:, None]  # [G_A, G_B] of the rows of z1
            m_top[:, :n].add_(e_top[:, :n].T * w1[None, :])  # + G_A^T
            m_top[:, n:].add_(e_bt * w2[None, :])  # + (the rows of z2's G_B^T)^T
            g_c = e_c * w2[:, None]
            m22 = g_c + g_c.T
        m_top.diagonal(n).add_(g_pos)  # the positives, (i, N + i) and (N + i, i)
        grad_z1 = m_top @ z
        grad_z2 = torch.addmm(m22 @ z[n:], m_top[:, n:].T, z[:n])
        return torch.cat([grad_z1, grad_z2]), None, None, None, None, None


def _simclr_rince(z: Tensor, scale: float, q: float, lam: float, reduction: str) -> Tensor | None:
    """:class:`_SimCLRRince` (or its kernel alone when no gradient is needed); ``None`` where the
    general path must decide."""
    if torch.is_grad_enabled() and z.requires_grad:
        out: list[Any] = []
        loss: Tensor = _SimCLRRince.apply(z, scale, q, lam, reduction, out)
        return None if out[0] is None else loss
    return _simclr_rince_kernel(z, scale, q, lam, reduction)[0]


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
        Python or NumPy scalars and 0-d arrays/tensors are accepted.
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
        float32). Where the true value exceeds the dtype's range the result is ``±inf`` (never
        NaN); float64 logits then give the finite value if it fits float64.

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
    qv, lamv = _check_q_lam(q, lam)
    check_choice("reduction", reduction, _REDUCTIONS)
    b, k = x.shape
    if b < 1 or k < 1:
        raise ValueError(f"logits must have at least one row and one column, got shape {(b, k)}")
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
    lse = torch.logsumexp(x, dim=1)
    rows = _rince_from_lse(lse, pos, qv, lamv)
    return _reduce_rows(rows, lse, pos, qv, lamv, reduction).to(out_dtype)


def _pair_lse(
    z1: Tensor,
    z2: Tensor,
    temperature: float,
    learnable: Tensor | None,
    normalize: bool,
    layout: str,
    gather: bool,
) -> tuple[Tensor, Tensor]:
    """(LSE over each anchor's positive and negatives (2N,), positive logits (N,)) for the
    two-view layouts; anchor ``i`` and ``N + i`` share positive ``i``. Nothing is checked here:
    :func:`rince_loss` checks the result (and diagnoses the inputs where it is not finite).
    """
    n = z1.shape[0]
    dtype = _compute_dtype(z1.dtype)
    z = torch.cat([z1, z2], 0)
    if z.dtype != dtype:
        z = z.to(dtype)
    if normalize:  # one pass over both views (row-wise, so the same values as one per view)
        z = F.normalize(z, dim=1)
    z1, z2 = z[:n], z[n:]
    rank, world = rank_and_world_size()
    if gather and world > 1:
        g1, g2 = gather_with_grad(z1), gather_with_grad(z2)
    else:
        rank, world, g1, g2 = 0, 1, z1, z2
    # the positive logit from the local rows, so that its gradient is that of a one-GPU run
    dots = (z1 * z2).sum(1)
    pos = dots / (temperature if learnable is None else learnable.to(dtype))
    if layout == "simclr":
        if world == 1:  # keys = z, the diagonal excluded
            lse = _matmul_lse(z, None, None, temperature, learnable, normalize)
        else:
            idx = torch.arange(n, device=z1.device) + rank * n
            self_col = torch.cat([idx, idx + n * world])
            lse = _matmul_lse(
                z, torch.cat([g1, g2], 0), self_col, temperature, learnable, normalize
            )
    else:
        # "cross": z1 anchors against z2 keys and z2 anchors against z1 keys
        lse = torch.cat(
            [
                _matmul_lse(z1, g2, None, temperature, learnable, normalize),
                _matmul_lse(z2, g1, None, temperature, learnable, normalize),
            ]
        )
    return lse, pos


def _rince_pair_direct(
    lse: Tensor, pos: Tensor, q: float, lam: float, reduction: str
) -> Tensor | None:
    r"""Reduced RINCE of the two-view layouts by the product form, or ``None`` where the result
    cannot be returned as it is.

    ``lse`` (2N,) and ``pos`` (N,) as from :func:`_pair_lse`. The rows are
    :math:`e^{q s^+}\operatorname{expm1}(q d)/q` exactly as in :func:`_rince_from_lse`'s usual
    case (``q = 0``: :math:`d`), with the shared positive broadcast over both halves. The result is
    returned only where one scalar test passes: for ``q > 0`` every ``|q s^+|`` and ``|q d|`` at
    most half the dtype's log-range (so the product form is the one :func:`_rince_from_lse` takes,
    and ``s^+`` and the LSE are finite), and the reduced value finite. A NaN or ``±inf`` in an
    input makes its positive logit non-finite, hence its row and the reduced value, so a passing
    test also means finite inputs and logits; a failing one sends :func:`rince_loss` to the full
    diagnosis (input checks, the overflow error, the log-space path).
    """
    d = lse.view(2, -1) + math.log(lam) - pos
    if q == 0.0:
        rows = d
    else:
        c = q * pos
        qd = q * d
        rows = torch.exp(c) * (torch.expm1(qd) / q)
    loss = reduce_loss(rows.view(-1), reduction)
    with torch.no_grad():
        total = loss.sum() if reduction == "none" else loss
        if q == 0.0:
            ok = math.isfinite(float(total))
        else:
            half = 0.5 * math.log(torch.finfo(lse.dtype).max)
            worst = torch.maximum(c.abs(), qd.abs()).amax()
            ok = float(worst + total * 0.0) <= half  # NaN/inf anywhere makes this False
    return loss if ok else None


def rince_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    q: float = 0.5,
    lam: float = 0.01,
    temperature: float | Tensor = 0.5,
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
    temperature : float or 0-d Tensor, default 0.5
        Softmax temperature ``t > 0`` (official SimCLR ImageNet: 0.1; MoCo v3: 1.0). A 0-d
        tensor with ``requires_grad=True`` is learnable (it stays in the graph and gets a
        gradient; the fused kernel is then replaced by plain autograd).
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

    Raises
    ------
    ValueError
        Bad shapes or settings (the message names the argument), or logits
        ``z_i . z_j / temperature`` that overflow the compute dtype (a temperature far below
        ``max|z|^2 / 3.4e38`` in float32).

    Notes
    -----
    The official code takes raw ``exp`` of the logits and overflows (NaN) once
    ``1/t + log(2N)`` exceeds ~88 in float32. Here the loss is computed from log-sum-exps, so it
    is finite wherever the true value is representable; where the true value itself exceeds the
    dtype's range (e.g. ``q = 1`` at ``t <= 0.011`` on unit vectors in float32) the result is
    ``±inf``, never NaN, and float64 inputs give the finite value. The loss is not
    shift-invariant and is usually negative.

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
    a, b = check_pair(z1, z2, finite=False)  # NaN/inf: diagnosed below, from the result
    qv, lamv = _check_q_lam(q, lam)
    t, learnable = _check_temperature(temperature)
    _check_common(layout, reduction)
    norm = check_bool("normalize", normalize)
    gather = check_bool("gather_distributed", gather_distributed)
    if _autocast_enabled(a):
        with torch.autocast(a.device.type, enabled=False):
            loss = _rince_pair(a, b, qv, lamv, t, learnable, norm, layout, gather, reduction)
    else:
        loss = _rince_pair(a, b, qv, lamv, t, learnable, norm, layout, gather, reduction)
    return loss if loss.dtype == a.dtype else loss.to(a.dtype)


def _rince_pair(
    z1: Tensor,
    z2: Tensor,
    q: float,
    lam: float,
    temperature: float,
    learnable: Tensor | None,
    normalize: bool,
    layout: str,
    gather: bool,
    reduction: str,
) -> Tensor:
    """:func:`rince_loss` after its argument checks: the loss, checked lazily.

    The SimCLR layout in one process with a float temperature (the usual case) is one autograd
    node, :class:`_SimCLRRince`, whose kernel needs no tensor test at all where the largest
    diagonal logit bounds everything; where it is not certain it declines and the general path
    below decides. There (other layouts, several ranks, a learnable temperature) the usual case
    costs one scalar test (:func:`_rince_pair_direct`). Only when that fails are the inputs
    checked in full (the same ``ValueError`` naming ``z1`` or ``z2`` as an eager
    check), then the logits (the overflow error naming the temperature), and the rows taken
    through the log-space path of :func:`_rince_from_lse`, from the same LSEs (so a distributed
    run makes no second collective call).
    """
    if layout == "simclr" and learnable is None and not (gather and rank_and_world_size()[1] > 1):
        # the usual case: one autograd node for the whole loss
        dtype = _compute_dtype(z1.dtype)
        z = torch.cat((z1, z2))
        if z.dtype != dtype:
            z = z.to(dtype)
        if normalize:
            z = F.normalize(z, dim=1)
        fused = _simclr_rince(z, 1.0 / temperature, q, lam, reduction)
        if fused is not None:
            return fused
    lse, pos = _pair_lse(z1, z2, temperature, learnable, normalize, layout, gather)
    loss = _rince_pair_direct(lse, pos, q, lam, reduction)
    if loss is not None:
        return loss
    check_tensor(z1, "z1", 2)
    check_tensor(z2, "z2", 2)
    pos = torch.cat([pos, pos])
    _check_logits_finite(lse, pos, temperature)
    return _reduce_rows(_rince_from_lse(lse, pos, q, lam), lse, pos, q, lam, reduction)


def info_nce_loss(
    z1: Tensor,
    z2: Tensor,
    *,
    temperature: float | Tensor = 0.5,
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


def _labels_tensor(labels: object, n: int, name: str) -> Tensor:
    if not isinstance(labels, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of integer labels, got {type(labels).__name__}"
        )
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer labels, got {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    return labels


def rince_from_labels(
    embeddings: Tensor,
    labels: Tensor | None = None,
    indices_tuple: tuple[Tensor, ...] | None = None,
    ref_emb: Tensor | None = None,
    ref_labels: Tensor | None = None,
    *,
    q: float = 0.5,
    lam: float = 0.01,
    temperature: float | Tensor = 0.5,
    normalize: bool = True,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""RINCE with pairs from labels, in pytorch-metric-learning's ``(embeddings, labels)`` form.

    As PML's ``NTXentLoss``: every pair ``(a, p)`` of different rows with equal labels is a
    positive; the negatives of anchor ``a`` are all rows with a different label; each positive
    pair gives one term with :math:`S = e^{s_{ap}} + \sum_{n} e^{s_{an}}`, and ``"mean"`` averages
    over positive pairs. With ``ref_emb`` the keys are ``ref_emb`` (labels ``ref_labels``) and a
    row may pair with its own index. With ``labels = [arange(N), arange(N)]`` and
    ``embeddings = [z1; z2]`` this is exactly :func:`rince_loss` (SimCLR layout).

    Parameters
    ----------
    embeddings : Tensor, shape (B, D)
    labels : Tensor of int, shape (B,), optional
        Needed unless ``indices_tuple`` is given.
    indices_tuple : tuple of Tensor, optional
        PML miner output: ``(anchor, positive, negative)`` triplets or
        ``(anchor1, positive, anchor2, negative)`` pairs; replaces the pairs from labels.
    ref_emb : Tensor, shape (R, D), optional
    ref_labels : Tensor of int, shape (R,), optional
        Default ``labels`` when ``ref_emb`` has the same number of rows.
    q, lam, temperature, normalize
        As in :func:`rince_loss`.
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns one loss per positive pair, in row-major order of ``(a, p)``.

    Returns
    -------
    Tensor
        Scalar (``0`` with a graph when there is no positive pair), or shape (P,).

    Examples
    --------
    >>> import torch
    >>> emb, labels = torch.randn(8, 16), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    >>> rince_from_labels(emb, labels, q=0.5, lam=0.01, temperature=0.5).shape
    torch.Size([])
    """
    e = check_tensor(embeddings, "embeddings", 2)
    qv, lamv = _check_q_lam(q, lam)
    t, learnable = _check_temperature(temperature)
    check_choice("reduction", reduction, _REDUCTIONS)
    norm = check_bool("normalize", normalize)
    r = e if ref_emb is None else check_tensor(ref_emb, "ref_emb", 2)
    if r.shape[1] != e.shape[1]:
        raise ValueError(
            f"ref_emb must have the embedding size of embeddings ({e.shape[1]}), got {r.shape[1]}"
        )
    out_dtype = e.dtype
    dtype = _compute_dtype(torch.promote_types(e.dtype, r.dtype))
    b, k = e.shape[0], r.shape[0]
    if indices_tuple is None:
        if labels is None:
            raise ValueError("labels or indices_tuple is required")
        lab = _labels_tensor(labels, b, "labels")
        if ref_emb is None:
            ref = lab
        elif ref_labels is None:
            if k != b:
                raise ValueError("ref_labels is required when ref_emb has a different row count")
            ref = lab
        else:
            ref = _labels_tensor(ref_labels, k, "ref_labels")
        same = lab[:, None] == ref[None, :].to(lab.device)
        neg = ~same
        if ref_emb is None:
            same.fill_diagonal_(False)  # a row is neither its own positive nor its negative
        a1, p = torch.nonzero(same, as_tuple=True)
    else:
        if not isinstance(indices_tuple, tuple | list) or len(indices_tuple) not in (3, 4):
            raise ValueError("indices_tuple must be (anchor, positive, negative) or 4 tensors")
        parts = [torch.as_tensor(x, device=e.device).long() for x in indices_tuple]
        a1, p = parts[0], parts[1]
        a2, n_ = (parts[0], parts[2]) if len(parts) == 3 else (parts[2], parts[3])
        for nm, v, hi in (
            ("anchor", a1, b),
            ("positive", p, k),
            ("anchor", a2, b),
            ("negative", n_, k),
        ):
            if v.ndim != 1 or (v.numel() and (int(v.min()) < 0 or int(v.max()) >= hi)):
                raise ValueError(f"indices_tuple: {nm} indices must be 1-D and lie in [0, {hi})")
        neg = torch.zeros(b, k, dtype=torch.bool, device=e.device)
        neg[a2, n_] = True
    with torch.autocast(e.device.type, enabled=False):
        x, y = e.to(dtype), r.to(dtype)
        if norm:
            x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
        scale = 1.0 / t if learnable is None else 1.0 / learnable.to(dtype)
        sim = (x @ y.T) * scale
        lse_neg = torch.logsumexp(sim.masked_fill(~neg, float("-inf")), dim=1)
        pos = sim[a1, p]
        lse = torch.logaddexp(pos, lse_neg[a1])
        if not bool(torch.isfinite(sim).all()):
            _check_logits_finite(sim, pos, t)
        per_pair = _rince_from_lse(lse, pos, qv, lamv)
        if per_pair.numel() == 0 and reduction != "none":
            loss = sim.sum() * 0.0  # no positive pair: zero, still connected to the graph
        else:
            loss = _reduce_rows(per_pair, lse, pos, qv, lamv, reduction)
    return loss.to(out_dtype)


def moco_rince_loss(
    query: Tensor,
    key: Tensor,
    *,
    q: float = 0.6,
    lam: float = 0.01,
    temperature: float | Tensor = 1.0,
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
        Official MoCo v3 values: 0.6, 0.01, 1.0. The temperature may be a learnable 0-d tensor.
    gather_distributed : bool
        All-gather the keys of every rank (without gradient), as ``concat_all_gather``.
    scale_by_2t : bool
        Multiply by ``2 * temperature`` as the official code does.
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    Tensor
        Scalar, or (N,) for ``reduction="none"``; ``±inf`` where the true value overflows.
    """
    a, b = check_pair(query, key)
    qv, lamv = _check_q_lam(q, lam)
    t, learnable = _check_temperature(temperature)
    check_choice("reduction", reduction, _REDUCTIONS)
    gather = check_bool("gather_distributed", gather_distributed)
    scale2t = check_bool("scale_by_2t", scale_by_2t)
    out_dtype = a.dtype
    with torch.autocast(a.device.type, enabled=False):
        dtype = _compute_dtype(a.dtype)
        temp: float | Tensor = t if learnable is None else learnable.to(dtype)
        qn = F.normalize(a.to(dtype), dim=1)
        kn = F.normalize(b.detach().to(dtype), dim=1)
        rank, world = rank_and_world_size()
        if gather and world > 1:
            parts = [torch.empty_like(kn) for _ in range(world)]
            torch.distributed.all_gather(parts, kn.contiguous())
            keys = torch.cat(parts, 0)
        else:
            rank, keys = 0, kn
        logits = qn @ keys.T / temp
        target = torch.arange(qn.shape[0], device=qn.device) + rank * qn.shape[0]
        pos = logits.gather(1, target[:, None]).squeeze(1)
        lse = torch.logsumexp(logits, dim=1)
        _check_logits_finite(lse, pos, t)
        loss = _reduce_rows(_rince_from_lse(lse, pos, qv, lamv), lse, pos, qv, lamv, reduction)
        if scale2t:  # a positive scale commutes with the mean / sum
            loss = loss * (2.0 * temp)
    return loss.to(out_dtype)


class RINCELoss(nn.Module):
    r"""Module form of :func:`rince_loss` and :func:`rince_from_labels`.

    ``RINCELoss(q, lam, temperature)(z1, z2)`` for two views (lightly's convention), or
    ``RINCELoss(...)(embeddings, labels)`` with pairs from labels (pytorch-metric-learning's
    convention, also ``indices_tuple``, ``ref_emb``, ``ref_labels``). The call is read as the
    labels form when the second argument is an integer tensor or ``labels=`` is passed.

    Parameters
    ----------
    q : float, default 0.5
    lam : float, default 0.01
    temperature : float or 0-d Tensor, default 0.5
        An ``nn.Parameter`` (0-d) is registered and learned with the model.
    normalize : bool, default True
    layout : {"simclr", "cross"}, default "simclr"
        Two-view form only.
    gather_distributed : bool, default False
        Two-view form only.
    reduction : {"mean", "sum", "none"}, default "mean"

    Notes
    -----
    pytorch-metric-learning's ``SelfSupervisedLoss`` admits wrapped losses by class name, so it
    refuses this module; :class:`papershelf.robust_infonce.metric_learning.NTXentLoss` is the
    PML-native form that it accepts (same values).

    Examples
    --------
    >>> import torch
    >>> loss_fn = RINCELoss(q=0.5, lam=0.01, temperature=0.5)
    >>> loss_fn(torch.randn(8, 16), torch.randn(8, 16)).shape
    torch.Size([])
    >>> loss_fn(torch.randn(8, 16), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])).shape
    torch.Size([])
    """

    def __init__(
        self,
        q: float = 0.5,
        lam: float = 0.01,
        temperature: float | Tensor = 0.5,
        normalize: bool = True,
        layout: Layout = "simclr",
        gather_distributed: bool = False,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.q, self.lam = _check_q_lam(q, lam)
        _check_temperature(temperature)
        _check_common(layout, reduction)
        self.temperature = temperature  # an nn.Parameter is registered by nn.Module
        self.normalize = check_bool("normalize", normalize)
        self.layout: Layout = layout
        self.gather_distributed = check_bool("gather_distributed", gather_distributed)
        self.reduction: Reduction = reduction

    def forward(
        self,
        z1: Tensor | None = None,
        z2: Tensor | None = None,
        indices_tuple: tuple[Tensor, ...] | None = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
        *,
        embeddings: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """``(z1, z2)``: two views, each (N, D). ``(embeddings, labels)``: pairs from labels."""
        if embeddings is not None:
            if z1 is not None:
                raise TypeError("pass the embeddings either positionally or as embeddings=")
            z1 = embeddings
        labels_form = (
            labels is not None
            or indices_tuple is not None
            or ref_emb is not None
            or (isinstance(z2, Tensor) and not z2.is_floating_point() and z2.ndim == 1)
        )
        if labels_form:
            if labels is None and isinstance(z2, Tensor) and not z2.is_floating_point():
                labels, z2 = z2, None
            if z2 is not None:
                raise TypeError("the labels form takes (embeddings, labels), not a second view")
            return rince_from_labels(
                z1,  # type: ignore[arg-type]
                labels,
                indices_tuple,
                ref_emb,
                ref_labels,
                q=self.q,
                lam=self.lam,
                temperature=self.temperature,
                normalize=self.normalize,
                reduction=self.reduction,
            )
        return rince_loss(
            z1,  # type: ignore[arg-type]
            z2,  # type: ignore[arg-type]
            q=self.q,
            lam=self.lam,
            temperature=self.temperature,
            normalize=self.normalize,
            layout=self.layout,
            gather_distributed=self.gather_distributed,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        t = self.temperature
        shown = f"{float(t):g}" if not isinstance(t, Tensor) else f"{float(t.detach()):g} (tensor)"
        return (
            f"q={self.q}, lam={self.lam}, temperature={shown}, "
            f"layout={self.layout!r}, reduction={self.reduction!r}"
        )
