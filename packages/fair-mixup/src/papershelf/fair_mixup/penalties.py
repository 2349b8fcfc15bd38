"""Fairness regularisers: fair mixup (input and manifold), GapReg and adversarial debiasing.

All penalties work with any torch model ``f(x) -> (B,)`` or ``(B, 1)`` scores (probabilities
in the paper, but any differentiable output works) and return a 0-dim tensor that carries
gradients to the model's parameters (and, for manifold mixup, to the encoder that produced
the features).

Reference: Chuang & Mroueh, "Fair Mixup: Fairness via Interpolation", ICLR 2021,
https://arxiv.org/abs/2103.06503 (Section 3, Eq. 4-5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, cast

import numpy as np
import torch
from torch import Tensor, nn

from papershelf.core.validation import check_choice, check_int, check_real

__all__ = [
    "AdversarialDebiasing",
    "dp_mixup_penalty",
    "eo_mixup_penalty",
    "gap_reg_penalty",
    "manifold_mixup_penalty",
    "mixup_path_penalty",
    "path_derivatives",
    "sample_t",
]

Model = Callable[[Tensor], Tensor]
Method = Literal["autograd", "jvp", "finite_difference"]
_METHODS = ("autograd", "jvp", "finite_difference")


def _scores(model: Model, x: Tensor) -> Tensor:
    """Call ``model`` and return its scores as shape ``(B,)``; reject any other output shape."""
    out = model(x)
    if not isinstance(out, Tensor):
        raise TypeError(f"model must return a torch.Tensor, got {type(out).__name__}")
    b = x.shape[0]
    if out.shape == (b, 1):
        return out[:, 0]
    if out.shape == (b,):
        return out
    raise ValueError(
        f"model must return scores of shape ({b},) or ({b}, 1) for a batch of {b}, "
        f"got {tuple(out.shape)}"
    )


def _check_pair(x0: Tensor, x1: Tensor, *, paired: bool = True) -> None:
    """Check a group-0 batch and a group-1 batch.

    ``paired``: index-paired samples, so the shapes must agree; otherwise only the feature
    shapes must (the batch sizes may differ).
    """
    for name, x in (("x0", x0), ("x1", x1)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 1:
            raise ValueError(f"{name} must have a batch dimension, got a 0-dim tensor")
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty: a group of size zero has no fairness penalty")
        if (x.is_floating_point() or x.is_complex()) and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or inf")
    if paired and x0.shape != x1.shape:
        raise ValueError(
            "x0 and x1 must have the same shape (index-paired samples), "
            f"got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    if x0.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"x0 and x1 must have the same feature shape, got {tuple(x0.shape[1:])} and "
            f"{tuple(x1.shape[1:])}"
        )


def _check_estimator(n_t: int, method: str) -> int:
    n = check_int("n_t", n_t, low=1)
    check_choice("method", method, _METHODS)
    return n


def sample_t(
    n_t: int = 1,
    *,
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Draw the interpolation times of the path integral.

    ``n_t == 1``: one :math:`t \sim \mathrm{Beta}(\alpha, \alpha)` (the official estimator,
    :math:`\alpha = 1` is uniform). ``n_t > 1``: stratified uniform times
    :math:`t_k = (k + U_k) / n_t`, one per stratum, which lowers the variance of the
    :math:`t`-integral at no extra forward cost (needs ``alpha == 1``).

    Parameters
    ----------
    n_t : int
        Number of strata (1 = official single draw).
    alpha : float
        Beta parameter; only used when ``n_t == 1``.
    generator : torch.Generator, optional
        Source of randomness (a CPU generator also serves CUDA tensors).
    device, dtype
        Of the returned tensor.

    Returns
    -------
    t : Tensor, shape (n_t,)
    """
    n_t = check_int("n_t", n_t, low=1)
    alpha = check_real("alpha", alpha, low=0.0, inclusive=False)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    if n_t > 1 and alpha != 1.0:
        raise ValueError("stratified t (n_t > 1) needs alpha == 1 (uniform t)")
    if alpha == 1.0:
        u = torch.rand(n_t, generator=generator, device=gen_device, dtype=torch.float64)
        t = (torch.arange(n_t, device=gen_device, dtype=torch.float64) + u) / n_t
    else:
        # torch's Beta sampler takes no generator: seed a NumPy one from it instead.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=gen_device))
        t = torch.tensor([np.random.default_rng(seed).beta(alpha, alpha)], dtype=torch.float64)
    return t.to(device=device, dtype=dtype)


def _as_t(
    t: float | Tensor | None,
    n_t: int,
    alpha: float,
    generator: torch.Generator | None,
    like: Tensor,
) -> Tensor:
    if t is None:
        return sample_t(n_t, alpha=alpha, generator=generator, device=like.device, dtype=like.dtype)
    if isinstance(t, (str, bytes, bool)):
        raise TypeError(f"t must be a number or a tensor of times, got {type(t).__name__}")
    tt = torch.as_tensor(t, dtype=like.dtype, device=like.device).reshape(-1)
    if tt.numel() != n_t:
        raise ValueError(f"t must hold n_t={n_t} value(s), got {tt.numel()}")
    if not bool(torch.all((tt >= 0) & (tt <= 1))):
        raise ValueError(f"t must lie in [0, 1], got {tt.tolist()}")
    return tt


def path_derivatives(
    model: Model,
    x0: Tensor,
    x1: Tensor,
    t: Tensor,
    *,
    method: Method = "autograd",
    h: float = 1e-3,
) -> Tensor:
    r"""Per-pair derivative :math:`\frac{d}{dt} f(t x_0 + (1 - t) x_1)` at given times.

    .. math:: d_i = \langle \nabla_x f(x_{t_i}),\, x_{0,i} - x_{1,i} \rangle,
              \qquad x_t = t x_0 + (1 - t) x_1 .

    Parameters
    ----------
    model : callable
        ``f(x) -> (B,)`` or ``(B, 1)``; must act on each row independently (no batch
        statistics, e.g. BatchNorm in train mode, for ``"jvp"``/exactness).
    x0, x1 : Tensor, shape (B, *shape)
        Index-paired samples of group 0 and group 1.
    t : Tensor, shape (B,)
        One time per pair.
    method : {"autograd", "jvp", "finite_difference"}
        ``"autograd"``: double backward (the official estimator). ``"jvp"``: forward-mode
        ``torch.func.jvp`` along the direction ``x0 - x1`` (same value and gradient).
        ``"finite_difference"``: central difference with step ``h`` -- an approximation
        whose *parameter* gradient is wrong for ReLU nets (it sees activation-pattern
        changes), documented for completeness only.
    h : float
        Step of ``"finite_difference"``.

    Returns
    -------
    d : Tensor, shape (B,)
        Differentiable with respect to the model's parameters and to ``x0``, ``x1``.
    """
    check_choice("method", method, _METHODS)
    shape = (-1,) + (1,) * (x0.ndim - 1)
    tb = t.reshape(shape)
    direction = x0 - x1
    x_t = tb * x0 + (1 - tb) * x1
    if method == "autograd":
        orig = getattr(model, "_orig_mod", None)
        if isinstance(orig, nn.Module):
            # torch.compile'd: compiled graphs have no double backward; the original module
            # computes the same scores with the same parameters
            model = orig
        graph = torch.is_grad_enabled()
        with torch.enable_grad():  # also under torch.no_grad() (e.g. a validation penalty)
            if not x_t.requires_grad:
                try:
                    x_t = x_t.requires_grad_(True)
                except RuntimeError as err:  # inside torch.func.grad/vmap
                    raise ValueError(
                        "method='autograd' cannot run inside a torch.func transform; use "
                        "method='jvp'"
                    ) from err
            out = _scores(model, x_t)
            if not out.requires_grad:  # the scores do not depend on x: zero derivative
                return torch.zeros_like(out)
            (grad,) = torch.autograd.grad(out.sum(), x_t, create_graph=graph, allow_unused=True)
        if grad is None:
            return torch.zeros_like(out.detach())
        return (grad * direction).flatten(1).sum(1)
    if method == "jvp":
        # the shape check runs inside the transform: an extra forward outside it would update
        # BatchNorm running statistics with a batch of one
        try:
            primal_and_tangent = torch.func.jvp(lambda z: _scores(model, z), (x_t,), (direction,))
        except RuntimeError as err:
            if "in-place" not in str(err):
                raise
            raise ValueError(
                "method='jvp' needs a model without in-place state updates (BatchNorm in train "
                "mode updates its running statistics): call model.eval() or use "
                "method='autograd'"
            ) from err
        return cast(Tensor, primal_and_tangent[1])
    h = check_real("h", h, low=0.0, inclusive=False)
    if x_t.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(x_t.device.type):
        # a step of h is below half-precision resolution: f(x + h) - f(x - h) rounds to 0
        raise ValueError(
            "method='finite_difference' needs float32/float64 inputs and no autocast (in "
            "half precision the difference rounds to 0); use method='autograd' or 'jvp'"
        )
    # both evaluations draw the same random numbers (dropout masks in train mode): otherwise
    # their difference is mask noise divided by 2h, not a derivative
    cuda = [x_t.device] if x_t.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        plus = _scores(model, x_t + h * direction)
    minus = _scores(model, x_t - h * direction)
    return (plus - minus) / (2 * h)


def mixup_path_penalty(
    model: Model,
    x0: Tensor,
    x1: Tensor,
    *,
    t: float | Tensor | None = None,
    n_t: int = 1,
    alpha: float = 1.0,
    method: Method = "autograd",
    generator: torch.Generator | None = None,
    h: float = 1e-3,
) -> Tensor:
    r"""Fair mixup penalty: total variation of the mean score along the mixup path.

    .. math::
        R(f) = \int_0^1 \Big| \mathbb{E}_{x_0, x_1}
               \langle \nabla_x f(t x_0 + (1 - t) x_1),\, x_0 - x_1 \rangle \Big|\, dt
             \;\ge\; \big| \mathbb{E} f(x_0) - \mathbb{E} f(x_1) \big| .

    The estimator follows the official code: the ``B`` index-paired samples are split into
    ``n_t`` chunks, chunk ``k`` is evaluated at one time ``t_k``, the per-pair derivatives
    are averaged *within* the chunk before the absolute value, and the ``n_t`` absolute
    values are averaged. ``n_t=1`` (one ``t ~ Beta(alpha, alpha)``) is the official
    estimator; ``n_t > 1`` uses stratified times. Taking ``|.|`` of a mean over pairs with
    *different* ``t`` would estimate the plain gap instead -- this function never does.

    Parameters
    ----------
    model : callable
        ``f(x) -> (B,)`` or ``(B, 1)`` scores.
    x0, x1 : Tensor, shape (B, *shape)
        Index-paired samples from group 0 and group 1 (same shape).
    t : float or Tensor of shape (n_t,), optional
        Fixed interpolation time(s) in [0, 1]; drawn when omitted.
    n_t : int
        Number of time strata (1 = official). Must not exceed ``B``.
    alpha : float
        Beta(alpha, alpha) for the single draw (official: 1).
    method : {"autograd", "jvp", "finite_difference"}
        See :func:`path_derivatives`.
    generator : torch.Generator, optional
        For the draw of ``t``.
    h : float
        Finite-difference step.

    Returns
    -------
    penalty : Tensor, shape ()

    References
    ----------
    Chuang & Mroueh, ICLR 2021, Eq. (4); official code ``adult/utils.py::train_dp``.

    Examples
    --------
    >>> import torch
    >>> f = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Sigmoid())
    >>> x0, x1 = torch.randn(8, 3), torch.randn(8, 3)
    >>> mixup_path_penalty(f, x0, x1, t=0.5).shape
    torch.Size([])
    """
    _check_pair(x0, x1)
    n_t = _check_estimator(n_t, method)
    if n_t > x0.shape[0]:
        raise ValueError(f"n_t={n_t} exceeds the number of pairs B={x0.shape[0]}")
    (penalty,) = _group_penalties(
        model, [(x0, x1, t, n_t)], alpha=alpha, method=method, generator=generator, h=h
    )
    return penalty


def _group_penalties(
    model: Model,
    groups: Sequence[tuple[Tensor, Tensor, float | Tensor | None, int]],
    *,
    alpha: float,
    method: Method,
    generator: torch.Generator | None,
    h: float,
) -> list[Tensor]:
    """Path penalties of several index-paired groups, all in one forward/backward pass.

    Group ``g`` = ``(x0_g, x1_g, t_g, n_t_g)``: its times are ``t_g``, or ``n_t_g`` drawn ones
    when ``t_g`` is None (groups draw in order from ``generator``). Its pairs are split into
    ``n_t_g`` chunks, chunk ``k`` at time ``t_g[k]``; its penalty is the mean over its chunks
    of ``|mean of the chunk's derivatives|``. Demographic parity is one group (the two
    sensitive groups); equalized odds is one group per label.
    """
    segments = [(a, b, _as_t(tg, k, alpha, generator, a)) for a, b, tg, k in groups]
    if len(segments) == 1 and segments[0][2].numel() == 1:
        # The official estimator: one time for the whole batch, a plain mean.
        x0, x1, ts = segments[0]
        d = path_derivatives(model, x0, x1, ts.expand(x0.shape[0]), method=method, h=h)
        return [_finite(d.mean().abs())]
    t_pair, chunk_of, bounds = [], [], []
    n_chunks = 0
    for x0, _, ts in segments:
        b = x0.shape[0]
        sizes = torch.tensor(
            [len(c) for c in torch.tensor_split(torch.arange(b), ts.numel())], device=x0.device
        )
        t_pair.append(torch.repeat_interleave(ts, sizes))
        ids = torch.arange(n_chunks, n_chunks + ts.numel(), device=x0.device)
        chunk_of.append(torch.repeat_interleave(ids, sizes))
        bounds.append((n_chunks, n_chunks + ts.numel()))
        n_chunks += ts.numel()
    d = path_derivatives(
        model,
        torch.cat([seg[0] for seg in segments]),
        torch.cat([seg[1] for seg in segments]),
        torch.cat(t_pair),
        method=method,
        h=h,
    )
    idx = torch.cat(chunk_of)
    sums = d.new_zeros(n_chunks).index_add(0, idx, d)
    counts = d.new_zeros(n_chunks).index_add(0, idx, torch.ones_like(d))
    abs_means = (sums / counts).abs()
    return [_finite(abs_means[lo:hi].mean()) for lo, hi in bounds]


def _finite(penalty: Tensor) -> Tensor:
    """``penalty`` if it is finite (``+inf`` from an overflow passes); NaN is an error."""
    if bool(torch.isnan(penalty.detach())):
        raise ValueError(
            "the model's path derivatives are NaN (finite inputs x0, x1): check the model for "
            "NaN parameters or outputs"
        )
    return penalty


def dp_mixup_penalty(
    model: Model,
    x0: Tensor,
    x1: Tensor,
    *,
    t: float | Tensor | None = None,
    n_t: int = 1,
    alpha: float = 1.0,
    method: Method = "autograd",
    generator: torch.Generator | None = None,
    h: float = 1e-3,
) -> Tensor:
    r"""Fair mixup penalty for demographic parity, :math:`R_{DP}(f)`.

    Same as :func:`mixup_path_penalty` (see it for the estimator and parameters):
    ``x0`` is a batch of group 0, ``x1`` an equally large batch of group 1, paired by index.

    Parameters
    ----------
    model : callable
        ``f(x) -> (B,)`` or ``(B, 1)``.
    x0, x1 : Tensor, shape (B, *shape)
    t, n_t, alpha, method, generator, h
        As in :func:`mixup_path_penalty`.

    Returns
    -------
    penalty : Tensor, shape ()

    References
    ----------
    Chuang & Mroueh, ICLR 2021, Sec. 3.1 (demographic parity).
    """
    return mixup_path_penalty(
        model, x0, x1, t=t, n_t=n_t, alpha=alpha, method=method, generator=generator, h=h
    )


def manifold_mixup_penalty(
    head: Model,
    h0: Tensor,
    h1: Tensor,
    *,
    t: float | Tensor | None = None,
    n_t: int = 1,
    alpha: float = 1.0,
    method: Method = "autograd",
    generator: torch.Generator | None = None,
    h: float = 1e-3,
) -> Tensor:
    r"""Manifold fair mixup: the path penalty on hidden features ``h = g(x)``.

    With ``f = head o g``, interpolate ``g(x0)`` and ``g(x1)`` and differentiate ``head``
    along the path. Pass features that still carry their graph (do not detach them): the
    penalty's gradient then reaches the encoder ``g`` through ``h0`` and ``h1``.

    Parameters
    ----------
    head : callable
        ``head(h) -> (B,)`` or ``(B, 1)``.
    h0, h1 : Tensor, shape (B, *feature_shape)
        Encoder outputs of index-paired group-0 and group-1 samples.
    t, n_t, alpha, method, generator, h
        As in :func:`mixup_path_penalty`.

    Returns
    -------
    penalty : Tensor, shape ()

    References
    ----------
    Chuang & Mroueh, ICLR 2021, Sec. 3.3 (manifold mixup).
    """
    return mixup_path_penalty(
        head, h0, h1, t=t, n_t=n_t, alpha=alpha, method=method, generator=generator, h=h
    )


def _label_split(
    x0: Tensor, y0: Tensor | None, x1: Tensor, y1: Tensor | None
) -> list[tuple[Tensor, Tensor]]:
    if y0 is None or y1 is None:
        raise ValueError("y0 and y1 are both needed for the equalized-odds penalty")
    pairs = []
    for name, x, y in (("y0", x0, y0), ("y1", x1, y1)):
        if not isinstance(y, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
        if y.reshape(-1).shape[0] != x.shape[0]:
            raise ValueError(
                f"{name} must hold one label per row: {y.reshape(-1).shape[0]} labels for "
                f"{x.shape[0]} rows"
            )
        if not bool(torch.all((y == 0) | (y == 1))):
            raise ValueError(f"{name} must be binary (0/1)")
    y0f, y1f = y0.reshape(-1), y1.reshape(-1)
    for label in (0, 1):
        m0, m1 = y0f == label, y1f == label
        n0, n1 = int(m0.sum()), int(m1.sum())
        if n0 == 0 or n1 == 0:
            raise ValueError(
                f"label {label} has {n0} sample(s) in group 0 (y0) and {n1} in group 1 (y1): "
                "every (group, label) cell needs at least one sample"
            )
        pairs.append((x0[m0], x1[m1]))
    return pairs


def eo_mixup_penalty(
    model: Model,
    x0: Tensor,
    y0: Tensor,
    x1: Tensor,
    y1: Tensor,
    *,
    t: Sequence[float] | Tensor | None = None,
    n_t: int = 1,
    alpha: float = 1.0,
    method: Method = "autograd",
    generator: torch.Generator | None = None,
    h: float = 1e-3,
) -> Tensor:
    r"""Fair mixup penalty for equalized odds: one path per label, summed.

    .. math:: R_{EO}(f) = \sum_{y \in \{0, 1\}} \int_0^1 \Big| \mathbb{E}_{x_0 \sim P_0^y,
              x_1 \sim P_1^y} \langle \nabla f(x_t), x_0 - x_1 \rangle \Big| dt .

    Rows of each label are paired by order of appearance and truncated to the smaller
    count; each label draws its own ``t`` (as the official code does).

    Parameters
    ----------
    model : callable
        ``f(x) -> (B,)`` or ``(B, 1)``.
    x0 : Tensor, shape (B0, *shape)
        Group-0 batch.
    y0 : Tensor, shape (B0,)
        Its binary labels.
    x1 : Tensor, shape (B1, *shape)
        Group-1 batch.
    y1 : Tensor, shape (B1,)
        Its binary labels.
    t : sequence of 2 floats, optional
        Fixed times for label 0 and label 1 (``n_t == 1``); drawn when omitted.
    n_t, alpha, method, generator, h
        As in :func:`mixup_path_penalty`.

    Returns
    -------
    penalty : Tensor, shape ()

    References
    ----------
    Chuang & Mroueh, ICLR 2021, Sec. 3.1 (equalized odds); official ``train_eo``.
    """
    _check_pair(x0, x1, paired=False)
    n_t = _check_estimator(n_t, method)
    if t is not None:
        if isinstance(t, (str, bytes)) or not hasattr(t, "__len__"):
            raise TypeError(
                f"t must hold one time per label (a pair of floats), got {type(t).__name__}"
            )
        if len(t) != 2:
            raise ValueError(f"t must hold one time per label (2 values), got {len(t)}")
        if n_t != 1:
            raise ValueError(f"fixed times t need n_t=1 (one time per label), got n_t={n_t}")
    groups: list[tuple[Tensor, Tensor, float | Tensor | None, int]] = []
    for label, (a, b) in enumerate(_label_split(x0, y0, x1, y1)):
        m = min(a.shape[0], b.shape[0])
        if t is None:
            groups.append((a[:m], b[:m], None, min(n_t, m)))
        else:
            groups.append((a[:m], b[:m], t[label], 1))
    # Both labels in one pass: same value as two separate penalties, about half the overhead.
    per_label = _group_penalties(
        model, groups, alpha=alpha, method=method, generator=generator, h=h
    )
    return per_label[0] + per_label[1]


def gap_reg_penalty(
    model: Model,
    x0: Tensor,
    x1: Tensor,
    *,
    y0: Tensor | None = None,
    y1: Tensor | None = None,
) -> Tensor:
    r"""GapReg baseline: the batch gap of mean scores, :math:`|\bar f(x_0) - \bar f(x_1)|`.

    With labels (``y0``, ``y1``) it is the equalized-odds version, the sum over labels of
    the per-label gaps.

    Parameters
    ----------
    model : callable
        ``f(x) -> (B,)`` or ``(B, 1)``.
    x0 : Tensor, shape (B0, *shape)
        Group-0 batch.
    x1 : Tensor, shape (B1, *shape)
        Group-1 batch (sizes may differ).
    y0, y1 : Tensor, shape (B0,) and (B1,), optional
        Binary labels; give both for equalized odds.

    Returns
    -------
    penalty : Tensor, shape ()

    References
    ----------
    Chuang & Mroueh, ICLR 2021, Sec. 5 (GapReg baseline); official ``train_dp``/``train_eo``.
    """
    _check_pair(x0, x1, paired=False)
    groups = [(x0, x1)] if y0 is None and y1 is None else _label_split(x0, y0, x1, y1)
    gaps = [(_scores(model, a).mean() - _scores(model, b).mean()).abs() for a, b in groups]
    return _finite(sum(gaps[1:], gaps[0]))


class AdversarialDebiasing(nn.Module):
    r"""Adversarial-debiasing baseline (Zhang, Lemoine & Mitchell, AIES 2018), simplified.

    An adversary predicts the sensitive attribute from the classifier's score (DP) or from
    the score and the label (EO). Training alternates: the adversary minimises its
    cross-entropy (:meth:`adversary_loss`, on detached scores) and the classifier adds
    ``lam * penalty`` with ``penalty = -adversary_loss`` (:meth:`penalty`), i.e. it tries to
    make ``a`` unpredictable. Zhang et al.'s gradient-projection term is omitted; the Fair
    Mixup paper uses this family as a baseline but its code for it is not released.

    Parameters
    ----------
    mode : {"dp", "eo"}
        What the adversary sees: the score, or the score and the label.
    hidden : int
        Width of the adversary's hidden layer (0 = logistic regression).
    """

    def __init__(self, mode: Literal["dp", "eo"] = "dp", hidden: int = 0) -> None:
        super().__init__()
        check_choice("mode", mode, ("dp", "eo"))
        hidden = check_int("hidden", hidden, low=0)
        self.mode = mode
        self.hidden = hidden
        d_in = 1 if mode == "dp" else 3
        if hidden:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, 1)
            )
        else:
            self.net = nn.Linear(d_in, 1)

    def _features(self, scores: Tensor, y: Tensor | None) -> Tensor:
        s = scores.reshape(-1, 1)
        # The logit of a probability keeps the adversary's input unbounded.
        z = torch.logit(s.clamp(1e-6, 1 - 1e-6)) if bool(((s >= 0) & (s <= 1)).all()) else s
        if self.mode == "dp":
            return z
        if y is None:
            raise ValueError("y is needed for the equalized-odds adversary")
        yy = y.reshape(-1, 1).to(z.dtype)
        return torch.cat([z, z * yy, yy], dim=1)

    def adversary_loss(self, scores: Tensor, a: Tensor, y: Tensor | None = None) -> Tensor:
        """Cross-entropy of the adversary predicting ``a`` (shape (B,)) from ``scores`` (B,)."""
        if scores.reshape(-1).shape[0] != a.reshape(-1).shape[0]:
            raise ValueError("scores and a must have the same length")
        logits = self.net(self._features(scores, y))[:, 0]
        return nn.functional.binary_cross_entropy_with_logits(
            logits, a.reshape(-1).to(logits.dtype)
        )

    def penalty(self, scores: Tensor, a: Tensor, y: Tensor | None = None) -> Tensor:
        """Classifier's regulariser: minus the adversary's loss (gradients reach ``scores``)."""
        return -self.adversary_loss(scores, a, y)

    def forward(self, scores: Tensor, a: Tensor, y: Tensor | None = None) -> Tensor:
        return self.penalty(scores, a, y)
