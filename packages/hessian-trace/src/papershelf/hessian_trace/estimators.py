"""Hessian-trace estimators for any torch loss: exact, Gauss-Newton and Hutchinson.

The loss is given functionally, ``loss_fn(params) -> scalar``, where ``params`` is a
tensor, a sequence of tensors or a dict of tensors (as for ``torch.func.functional_call``).

References
----------
Gatmiry, Li, Ma, Reddi, Jegelka, Chuang. "What is the Inductive Bias of Flatness
Regularization? A Study of Deep Matrix Factorization Models." NeurIPS 2023.
Hutchinson. "A stochastic estimator of the trace of the influence matrix." 1989.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from papershelf.core.validation import check_bool, check_choice, check_int, check_real

__all__ = [
    "HessianTrace",
    "TraceConvergenceWarning",
    "TraceEstimate",
    "TraceRegularizer",
    "default_batch_size",
    "gauss_newton_trace",
    "hessian_trace",
    "hessian_trace_exact",
    "hutchinson_trace",
]

Params = Tensor | Sequence[Tensor] | Mapping[str, Tensor]
LossFn = Callable[[Any], Tensor]


def _split(params: Params) -> tuple[list[Tensor], Callable[[list[Tensor]], Any]]:
    """The tensors of ``params`` as a list, and a function that rebuilds the original structure."""
    if isinstance(params, Tensor):
        return [params], lambda ts: ts[0]
    if isinstance(params, Mapping):
        keys = list(params)
        if not keys:
            raise ValueError("params must hold at least one tensor")
        for k in keys:
            if not isinstance(params[k], Tensor):
                raise TypeError(
                    f"params[{k!r}] must be a torch.Tensor, got {type(params[k]).__name__}"
                )
        return [params[k] for k in keys], lambda ts: dict(zip(keys, ts))
    if isinstance(params, Sequence) and not isinstance(params, str):
        tensors = list(params)
        if not tensors:
            raise ValueError("params must hold at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"params[{i}] must be a torch.Tensor, got {type(t).__name__}")
        return tensors, lambda ts: type(params)(ts) if isinstance(params, tuple) else list(ts)
    raise TypeError(
        f"params must be a Tensor, a sequence or a dict of Tensors, got {type(params).__name__}"
    )


def _check_finite(tensors: list[Tensor]) -> None:
    for i, t in enumerate(tensors):
        if not t.is_floating_point():
            raise TypeError(f"params[{i}] must be a floating-point tensor, got {t.dtype}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"params[{i}] holds NaN or inf: the Hessian is undefined there")


def _scalar_loss(loss_fn: LossFn, structured: Any) -> Tensor:
    loss = loss_fn(structured)
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor, got {shape}")
    return loss.reshape(())


def _leaves(tensors: list[Tensor], keep_graph: bool) -> list[Tensor]:
    if keep_graph:
        for i, t in enumerate(tensors):
            if not t.requires_grad:
                raise ValueError(
                    f"create_graph=True needs params that require grad (params[{i}] does not)"
                )
        return tensors
    return [t.detach().requires_grad_(True) for t in tensors]


def _check_uses_params(loss: Tensor, grads: Sequence[Tensor | None]) -> None:
    """Refuse a ``loss_fn`` that ignores its ``params`` argument but uses other trainable tensors.

    Its Hessian with respect to ``params`` would come out 0 (typically ``loss_fn`` closes over
    the model's own parameters instead of evaluating the model at ``params``).
    """
    if loss.requires_grad and all(g is None for g in grads):
        raise ValueError(
            "loss_fn does not use its params argument (its value depends on other tensors that "
            "require grad, e.g. a closure over the model's own parameters): evaluate the model "
            "at params, e.g. torch.func.functional_call(model, params, (x,))"
        )


def hessian_trace_exact(loss_fn: LossFn, params: Params, *, max_params: int = 4096) -> Tensor:
    r"""Exact trace of the Hessian, :math:`\operatorname{tr}\nabla^2 L(\theta)`, with ``torch.func.hessian``.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params) -> Tensor`` of shape ``()``.
    params : Tensor, sequence or dict of Tensors
        Where to evaluate; ``p`` parameters in all.
    max_params : int
        Refuse above this many parameters: the dense Hessian has ``p**2`` entries.

    Returns
    -------
    Tensor, shape ()
        The trace, in the parameters' dtype.
    """
    tensors, rebuild = _split(params)
    _check_finite(tensors)
    max_params = check_int("max_params", max_params, low=1)
    sizes = [t.numel() for t in tensors]
    total = sum(sizes)
    if total > max_params:
        raise ValueError(
            f"params hold {total} entries, above max_params={max_params}: the exact Hessian would "
            "need a dense matrix; use method='hutchinson'"
        )
    shapes = [t.shape for t in tensors]
    with torch.enable_grad():
        leaves = _leaves(tensors, False)
        loss = _scalar_loss(loss_fn, rebuild(leaves))
        if loss.requires_grad:
            _check_uses_params(loss, torch.autograd.grad(loss, leaves, allow_unused=True))
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])

    def flat_loss(theta: Tensor) -> Tensor:
        parts = [p.reshape(s) for p, s in zip(theta.split(sizes), shapes)]
        return _scalar_loss(loss_fn, rebuild(parts))

    return torch.func.hessian(flat_loss)(flat).diagonal().sum()


def _probe(like: list[Tensor], dist: str, generator: torch.Generator | None) -> list[Tensor]:
    """One probe, one tensor per parameter; drawn probe by probe, so a seeded generator gives
    the same probes whatever the chunk size."""
    out = []
    for t in like:
        if dist == "rademacher":
            v = torch.randint(0, 2, t.shape, generator=generator, device=t.device).to(t.dtype)
            v = v.mul_(2).sub_(1)
        else:
            v = torch.randn(t.shape, generator=generator, device=t.device, dtype=t.dtype)
        out.append(v)
    return out


# Chunk size of the batched Hessian-vector products (``batch_size=None``), from the crossover
# measured by ``benchmarks/bench_trace.py --crossover`` (process time, 1 thread, interleaved;
# README "Benchmark"): a chunk of 16 probes in one batched backward (``is_grads_batched``,
# vmap over the double backward) was 2-5x faster than a loop over probes up to ~500
# parameters on every model measured, but only 1.04x at 768 parameters and 0.8x at 1200 for
# a deep linear network with 800 measurements (the batched backward drags k copies of the
# large intermediates), while MLPs still gained at 5k. The default batches only below the
# smallest measured crossover, so it is never slower than the loop where it is the default.
_BATCH_MAX_PARAMS = 512
_BATCH_MAX_CHUNK = 16
_CHUNK_BYTES = 256 * 2**20  # at most this much probe + Hessian-vector storage per chunk


def default_batch_size(num_params: int, num_probes: int, itemsize: int = 8) -> int:
    """The chunk size ``batch_size=None`` resolves to (probes per vectorised pass).

    Batched only below ``_BATCH_MAX_PARAMS`` parameters (the measured crossover), at most
    ``_BATCH_MAX_CHUNK`` probes, and never more than ``_CHUNK_BYTES`` of probe and
    Hessian-vector storage, so memory grows with the model, not with ``num_probes``.
    """
    if num_params > _BATCH_MAX_PARAMS:
        return 1
    by_memory = max(1, _CHUNK_BYTES // max(1, 4 * num_params * itemsize))
    return int(max(1, min(num_probes, _BATCH_MAX_CHUNK, by_memory)))


def _hvp_quads(
    grads: list[Tensor | None],
    leaves: list[Tensor],
    vs: list[Tensor],
    *,
    create_graph: bool,
    retain_graph: bool,
) -> Tensor:
    """``v_k^T H v_k`` for a chunk of probes ``vs`` (each of shape (k, *param.shape))."""
    k = vs[0].shape[0]
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    ref = leaves[0]
    if not live:  # the gradient does not depend on the parameters: H = 0
        return torch.zeros(k, dtype=ref.dtype, device=ref.device)
    gv = torch.stack(
        [(grads[i].unsqueeze(0) * vs[i]).reshape(k, -1).sum(1) for i in live]  # type: ignore[union-attr]
    ).sum(0)
    if k == 1:
        hvs = torch.autograd.grad(
            gv[0], leaves, create_graph=create_graph, retain_graph=retain_graph, allow_unused=True
        )
        hvs = tuple(None if h is None else h.unsqueeze(0) for h in hvs)
    else:
        # d(g.v_k)/dtheta = H v_k for every probe of the chunk in one batched backward
        eye = torch.eye(k, dtype=gv.dtype, device=gv.device)
        hvs = torch.autograd.grad(
            gv,
            leaves,
            grad_outputs=eye,
            is_grads_batched=True,
            create_graph=create_graph,
            retain_graph=retain_graph,
            allow_unused=True,
        )
    terms = [(hv * v).reshape(k, -1).sum(1) for hv, v in zip(hvs, vs) if hv is not None]
    if not terms:
        return torch.zeros(k, dtype=ref.dtype, device=ref.device)
    return torch.stack(terms).sum(0)


def _check_probe_args(
    num_probes: Any, dist: Any, batch_size: Any, name: str = "num_probes"
) -> tuple[int, int | None]:
    n = check_int(name, num_probes, low=1)
    check_choice("dist", dist, ("rademacher", "gaussian"))
    bs = None if batch_size is None else check_int("batch_size", batch_size, low=1)
    return n, bs


def hutchinson_trace(
    loss_fn: LossFn,
    params: Params,
    *,
    num_probes: int = 100,
    dist: Literal["rademacher", "gaussian"] = "rademacher",
    generator: torch.Generator | None = None,
    create_graph: bool = False,
    batch_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Hutchinson's estimator :math:`\operatorname{tr} H \approx \frac1m\sum_k v_k^\top H v_k`.

    Hessian-vector products come from double backward; the probes run in chunks of
    ``batch_size``, each chunk one batched backward (``is_grads_batched``).

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params) -> Tensor`` of shape ``()``.
    params : Tensor, sequence or dict of Tensors
        Where to evaluate.
    num_probes : int
        Number of probes ``m >= 1``.
    dist : {"rademacher", "gaussian"}
        Probe distribution. Rademacher probes are exact on diagonal Hessians; their variance
        is :math:`2(\|H\|_F^2 - \sum_i H_{ii}^2)` per probe.
    generator : torch.Generator, optional
        For reproducible probes (on the parameters' device). Probes are drawn one by one, so
        the estimate does not depend on ``batch_size``.
    create_graph : bool
        Keep the graph so the estimate can be differentiated with respect to ``params``
        (which must then require grad): the stochastic gradient of the trace.
    batch_size : int, optional
        Probes per vectorised pass. Default (``None``): :func:`default_batch_size`, chunks of
        up to 16 probes for models of at most 512 parameters (where batching measured 2-5x
        faster than a loop) and one probe at a time above, so memory does not grow with
        ``num_probes``. Larger chunks can pay for larger models (MLPs gained up to ~5k
        parameters): measure with ``benchmarks/bench_trace.py --crossover``.

    Returns
    -------
    mean : Tensor, shape ()
        The estimate of the trace (0 when the loss has a zero Hessian).
    stderr : Tensor, shape ()
        Its standard error, ``std / sqrt(m)`` (0 for a single probe).

    Examples
    --------
    >>> import torch
    >>> h = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> est, se = hutchinson_trace(lambda x: 0.5 * x @ h @ x, torch.zeros(3, dtype=torch.float64))
    >>> float(est), float(se)  # Rademacher probes are exact on a diagonal Hessian
    (6.0, 0.0)
    """
    num_probes, batch_size = _check_probe_args(num_probes, dist, batch_size)
    check_bool("create_graph", create_graph)
    tensors, rebuild = _split(params)
    _check_finite(tensors)
    leaves = _leaves(tensors, create_graph)
    step = batch_size or default_batch_size(
        sum(t.numel() for t in leaves), num_probes, leaves[0].element_size()
    )
    with torch.enable_grad():
        loss = _scalar_loss(loss_fn, rebuild(leaves))
        if not loss.requires_grad:  # constant in the parameters
            grads: list[Tensor | None] = [None] * len(leaves)
        else:
            grads = list(torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True))
            _check_uses_params(loss, grads)
        quads = []
        for start in range(0, num_probes, step):
            k = min(step, num_probes - start)
            drawn = [_probe(leaves, dist, generator) for _ in range(k)]
            vs = [torch.stack(parts) for parts in zip(*drawn)]
            quads.append(
                _hvp_quads(
                    grads,
                    leaves,
                    vs,
                    create_graph=create_graph,
                    retain_graph=create_graph or start + k < num_probes,
                )
            )
    q = torch.cat(quads)
    if not create_graph:
        q = q.detach()
    if not bool(torch.isfinite(q).all()):
        raise FloatingPointError(
            "a Hessian-vector product is not finite (the loss or its curvature overflows at params)"
        )
    mean = q.mean()
    stderr = q.detach().std() / math.sqrt(num_probes) if num_probes > 1 else torch.zeros_like(mean)
    return mean, stderr.detach()


def gauss_newton_trace(
    per_sample_fn: Callable[[Any], Tensor],
    params: Params,
    *,
    normalization: Literal["mean", "half_mean", "sum"] = "mean",
) -> Tensor:
    r"""Gauss-Newton trace :math:`c\sum_i \|\nabla f_i(\theta)\|^2` of a squared loss.

    For :math:`L = \frac1n\sum_i (f_i - b_i)^2` this equals the Hessian trace at zero loss,
    and everywhere for models multilinear in their layers (deep linear networks).

    Parameters
    ----------
    per_sample_fn : callable
        ``per_sample_fn(params) -> Tensor`` of shape ``(n,)``: the model outputs ``f_i``.
    params : Tensor, sequence or dict of Tensors
        Where to evaluate.
    normalization : {"mean", "half_mean", "sum"}
        The loss convention: ``c = 2/n`` for ``mean``, ``1/n`` for ``half_mean``
        (:math:`\frac1{2n}\sum`), ``2`` for ``sum``.

    Returns
    -------
    Tensor, shape ()
    """
    if normalization not in ("mean", "half_mean", "sum"):
        raise ValueError(
            f"normalization must be 'mean', 'half_mean' or 'sum', got {normalization!r}"
        )
    tensors, rebuild = _split(params)
    leaves = _leaves(tensors, False)
    with torch.enable_grad():
        out = per_sample_fn(rebuild(leaves))
        if not isinstance(out, Tensor) or out.dim() != 1:
            raise ValueError("per_sample_fn must return a 1-D tensor of shape (n,)")
        n = out.shape[0]
        eye = torch.eye(n, dtype=out.dtype, device=out.device)
        jac = torch.autograd.grad(out, leaves, grad_outputs=eye, is_grads_batched=True)
    sq = torch.stack([j.pow(2).sum() for j in jac]).sum()
    scale = {"mean": 2.0 / n, "half_mean": 1.0 / n, "sum": 2.0}[normalization]
    return (scale * sq).detach()


def hessian_trace(
    loss_fn: LossFn,
    params: Params,
    *,
    method: Literal["hutchinson", "exact"] = "hutchinson",
    n_probes: int = 100,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    dist: Literal["rademacher", "gaussian"] = "rademacher",
) -> tuple[Tensor, Tensor]:
    """Trace of the Hessian of ``loss_fn`` at ``params``, with its standard error.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params) -> Tensor`` of shape ``()``.
    params : Tensor, sequence or dict of Tensors
        Where to evaluate.
    method : {"hutchinson", "exact"}
        Hutchinson's stochastic estimator, or the exact dense Hessian (small models).
    n_probes : int
        Probes for Hutchinson.
    generator : torch.Generator, optional
        Seeded probes.
    batch_size : int, optional
        Probes per vectorised pass (Hutchinson). Default: :func:`default_batch_size`, which
        batches only small models (measured crossover) and bounds the memory per chunk.
    dist : {"rademacher", "gaussian"}
        Probe distribution (Hutchinson).

    Returns
    -------
    estimate, stderr : Tensor, shape ()
        ``stderr`` is 0 for the exact method.

    See Also
    --------
    HessianTrace : the trace of a model's loss over a whole data loader, with a tolerance.

    Examples
    --------
    >>> import torch
    >>> H = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> est, se = hessian_trace(lambda x: 0.5 * x @ H @ x, torch.zeros(3, dtype=torch.float64))
    >>> float(est)
    6.0
    """
    check_choice("method", method, ("hutchinson", "exact"))
    if method == "exact":
        tr = hessian_trace_exact(loss_fn, params)
        return tr, torch.zeros_like(tr)
    return hutchinson_trace(
        loss_fn, params, num_probes=n_probes, generator=generator, batch_size=batch_size, dist=dist
    )


class TraceRegularizer:
    r"""Adds :math:`\lambda\,\operatorname{tr}\nabla^2 L` to a loss, with the cheap stochastic gradient.

    Each call draws ``n_probes`` fresh probes and returns
    :math:`L(\theta) + \lambda\,\frac1m\sum_k v_k^\top \nabla^2 L(\theta) v_k`, differentiable in
    ``params`` (third derivatives through double backward, never a full Hessian).

    Parameters
    ----------
    lam : float
        Regularisation strength ``>= 0``.
    n_probes : int
        Probes per call.
    dist : {"rademacher", "gaussian"}
        Probe distribution.
    generator : torch.Generator, optional
        Seeded probes.

    Examples
    --------
    >>> import torch
    >>> w = torch.randn(3, requires_grad=True)
    >>> reg = TraceRegularizer(lam=1e-2)
    >>> total = reg(lambda p: (p**4).sum(), w)
    >>> total.backward()
    """

    def __init__(
        self,
        lam: float,
        *,
        n_probes: int = 1,
        dist: Literal["rademacher", "gaussian"] = "rademacher",
        generator: torch.Generator | None = None,
    ) -> None:
        self.lam = check_real("lam", lam, low=0.0)
        self.n_probes = check_int("n_probes", n_probes, low=1)
        self.dist = check_choice("dist", dist, ("rademacher", "gaussian"))
        self.generator = generator

    def penalty(self, loss_fn: LossFn, params: Params) -> Tensor:
        """``lam`` times the differentiable Hutchinson estimate of the trace."""
        est, _ = hutchinson_trace(
            loss_fn,
            params,
            num_probes=self.n_probes,
            dist=self.dist,
            generator=self.generator,
            create_graph=True,
        )
        return self.lam * est

    def __call__(self, loss_fn: LossFn, params: Params) -> Tensor:
        tensors, rebuild = _split(params)
        return _scalar_loss(loss_fn, rebuild(tensors)) + self.penalty(loss_fn, params)


class TraceConvergenceWarning(UserWarning):
    """A stochastic trace estimate stopped at its probe cap before reaching its tolerance."""


@dataclass
class TraceEstimate:
    """The result of :meth:`HessianTrace.trace`.

    Attributes
    ----------
    trace : float
        Mean of the probes' quadratic forms :math:`v^\\top H v`.
    stderr : float
        Its standard error ``std / sqrt(n_probes)``.
    n_probes : int
        Probes used.
    converged : bool
        Whether ``stderr <= tol * |trace|`` was reached before ``max_probes``.
    history : list of float
        The running estimate after every chunk of probes.
    samples : Tensor, shape (n_probes,)
        Every probe's :math:`v^\\top H v`.
    """

    trace: float
    stderr: float
    n_probes: int
    converged: bool
    history: list[float] = field(default_factory=list)
    samples: Tensor | None = None


class HessianTrace:
    r"""Trace of the Hessian of a model's loss over a whole dataset (Hutchinson, with a tolerance).

    The loss is the dataset mean :math:`L(\theta) = \sum_b \frac{n_b}{N}\,
    \mathrm{criterion}(\mathrm{model}(x_b), y_b)` over the batches of ``dataloader`` (a
    criterion with ``reduction="mean"``, as PyHessian assumes), so every probe's
    :math:`v^\top H v` is the size-weighted sum of per-batch Hessian-vector products: one pass
    over the data per chunk of probes, never the whole dataset's graph at once.

    Parameters
    ----------
    model : nn.Module
        Evaluated in its current mode (call ``model.eval()`` first for dropout/BatchNorm models:
        in training mode the Hessian is that of a random function).
    criterion : callable
        ``criterion(model(x), y) -> scalar tensor``, the batch mean.
    dataloader : iterable of (inputs, targets)
        Batches; tensors are moved to the parameters' device. A single ``(x, y)`` tuple of
        tensors is accepted as a one-batch dataset.
    params : iterable of Tensor, optional
        The parameters to differentiate (default: every parameter that requires grad).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    >>> data = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(3)]
    >>> est = HessianTrace(model, nn.MSELoss(), data).trace(tol=0.05, max_probes=200)
    >>> est.converged, est.trace > 0
    (True, True)

    References
    ----------
    Hutchinson, 1989; Yao et al., "PyHessian: Neural Networks Through the Lens of the
    Hessian", 2020 (the same estimator for a model and a data loader).
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: Callable[[Any, Any], Tensor],
        dataloader: Any,
        *,
        params: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(criterion):
            raise TypeError(f"criterion must be callable, got {type(criterion).__name__}")
        orig = getattr(model, "_orig_mod", None)
        if isinstance(orig, nn.Module):
            # torch.compile'd: compiled graphs have no double backward (Hessian-vector
            # products); the original module computes the same loss with the same parameters
            model = orig
        if (
            isinstance(dataloader, tuple)
            and len(dataloader) == 2
            and all(isinstance(t, Tensor) for t in dataloader)
        ):
            dataloader = [dataloader]
        if not hasattr(dataloader, "__iter__"):
            raise TypeError(
                f"dataloader must be an iterable of (inputs, targets), got {type(dataloader).__name__}"
            )
        self.model = model
        self.criterion = criterion
        self.dataloader = dataloader
        chosen = [p for p in (model.parameters() if params is None else params)]
        if params is None:
            chosen = [p for p in chosen if p.requires_grad]
        if not chosen or not all(isinstance(p, Tensor) for p in chosen):
            raise ValueError(
                "params must hold at least one tensor (the model has no trainable ones)"
            )
        for i, p in enumerate(chosen):
            if not p.requires_grad:
                raise ValueError(
                    f"params[{i}] does not require grad (a frozen parameter): pass only "
                    "trainable ones, e.g. [p for p in model.parameters() if p.requires_grad]"
                )
        self.params: list[Tensor] = chosen

    @property
    def num_params(self) -> int:
        """Number of scalar parameters the Hessian is taken over."""
        return sum(p.numel() for p in self.params)

    def _batches(self) -> Any:
        dev = self.params[0].device
        for batch in self.dataloader:
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise ValueError("dataloader must yield (inputs, targets) pairs")
            x, y = batch
            move = lambda t: t.to(dev) if isinstance(t, Tensor) else t  # noqa: E731
            yield move(x), move(y)

    def _grads(self, x: Any, y: Any) -> list[Tensor | None]:
        """First-order gradients of one batch's loss, with their graph (for the HVPs)."""
        with torch.enable_grad():
            loss = self.criterion(self.model(x), y)
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                raise ValueError("criterion must return a scalar tensor (reduction='mean')")
            loss = loss.reshape(())
            if not loss.requires_grad:
                return [None] * len(self.params)
            return list(
                torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
            )

    def quadratic_forms(self, probes: list[Tensor]) -> Tensor:
        """:math:`v_k^\top H v_k` of the dataset loss for a chunk of probes.

        Parameters
        ----------
        probes : list of Tensor
            One tensor per parameter, of shape ``(k, *param.shape)``.

        Returns
        -------
        Tensor, shape (k,)
        """
        k = probes[0].shape[0]
        total = torch.zeros(k, dtype=self.params[0].dtype, device=self.params[0].device)
        count = 0
        for x, y in self._batches():
            nb = int(x.shape[0]) if isinstance(x, Tensor) and x.ndim else 1
            grads = self._grads(x, y)
            with torch.enable_grad():
                q = _hvp_quads(grads, self.params, probes, create_graph=False, retain_graph=False)
            total += nb * q.detach()
            count += nb
        if count == 0:
            raise ValueError("dataloader is empty")
        return total / count

    def trace(
        self,
        *,
        max_probes: int = 1000,
        tol: float = 1e-2,
        min_probes: int = 10,
        dist: Literal["rademacher", "gaussian"] = "rademacher",
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        show_progress: bool | None = None,
    ) -> TraceEstimate:
        """Hutchinson estimate of the trace, stopped when its relative standard error is below ``tol``.

        Parameters
        ----------
        max_probes : int
            Probe cap; a :class:`TraceConvergenceWarning` is issued (once) if it is reached
            before the tolerance.
        tol : float
            Stop once ``stderr <= tol * |trace|`` (after ``min_probes``); 0 runs all
            ``max_probes``.
        min_probes : int
            Probes before the first stopping check (>= 2, so a standard error exists).
        dist : {"rademacher", "gaussian"}
            Probe distribution.
        batch_size : int, optional
            Probes per pass over the data (default :func:`default_batch_size`: chunks only for
            small models, bounded memory).
        generator : torch.Generator, optional
            Seeded probes, on the parameters' device.
        show_progress : bool, optional
            Progress bar (default: only on a terminal).

        Returns
        -------
        TraceEstimate
        """
        max_probes, batch_size = _check_probe_args(max_probes, dist, batch_size, "max_probes")
        tol = check_real("tol", tol, low=0.0)
        min_probes = check_int("min_probes", min_probes, low=2)
        step = batch_size or default_batch_size(
            self.num_params, max_probes, self.params[0].element_size()
        )
        from papershelf.core.progress import progress

        quads: list[Tensor] = []
        history: list[float] = []
        done, converged = 0, False
        bar = progress(
            total=max_probes,
            desc="Hessian trace",
            disable=None if show_progress is None else not show_progress,
        )
        # one batch (PyHessian's ``data=`` mode): its first-order graph is built once and
        # reused by every chunk; more batches are recomputed per chunk (bounded memory)
        single = None
        if isinstance(self.dataloader, (list, tuple)) and len(self.dataloader) == 1:
            x, y = next(iter(self._batches()))
            single = self._grads(x, y)
        try:
            while done < max_probes:
                k = min(step, max_probes - done)
                drawn = [_probe(self.params, dist, generator) for _ in range(k)]
                vs = [torch.stack(parts) for parts in zip(*drawn)]
                if single is not None:
                    with torch.enable_grad():
                        q = _hvp_quads(
                            single, self.params, vs, create_graph=False, retain_graph=True
                        ).detach()
                else:
                    q = self.quadratic_forms(vs)
                if not bool(torch.isfinite(q).all()):
                    raise FloatingPointError(
                        f"a Hessian-vector product is not finite after {done} probes "
                        "(the loss or its curvature overflows)"
                    )
                quads.append(q)
                done += k
                bar.update(k)
                allq = torch.cat(quads)
                mean = float(allq.mean())
                history.append(mean)
                if done >= min_probes:
                    se = float(allq.std()) / math.sqrt(done)
                    if se <= tol * abs(mean):
                        converged = True
                        break
        finally:
            bar.close()
        allq = torch.cat(quads)
        se = float(allq.std()) / math.sqrt(done) if done > 1 else 0.0
        if not converged and tol > 0:
            mean_abs = abs(float(allq.mean()))
            rel = se / mean_abs if done > 1 and mean_abs else float("inf")  # 1 probe: no stderr
            warnings.warn(
                f"HessianTrace stopped at max_probes={max_probes} with relative standard error "
                f"{rel:.3g} > tol={tol:g}",
                TraceConvergenceWarning,
                stacklevel=2,
            )
        return TraceEstimate(
            trace=float(allq.mean()),
            stderr=se,
            n_probes=done,
            converged=converged,
            history=history,
            samples=allq.cpu(),
        )
