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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = [
    "TraceRegularizer",
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
    sizes = [t.numel() for t in tensors]
    total = sum(sizes)
    if total > max_params:
        raise ValueError(
            f"params hold {total} entries, above max_params={max_params}: the exact Hessian would "
            "need a dense matrix; use method='hutchinson'"
        )
    shapes = [t.shape for t in tensors]
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])

    def flat_loss(theta: Tensor) -> Tensor:
        parts = [p.reshape(s) for p, s in zip(theta.split(sizes), shapes)]
        return _scalar_loss(loss_fn, rebuild(parts))

    return torch.func.hessian(flat_loss)(flat).diagonal().sum()


def _probes(
    n: int, like: list[Tensor], dist: str, generator: torch.Generator | None
) -> list[Tensor]:
    out = []
    for t in like:
        shape = (n, *t.shape)
        if dist == "rademacher":
            v = torch.randint(0, 2, shape, generator=generator, device=t.device).to(t.dtype) * 2 - 1
        else:
            v = torch.randn(shape, generator=generator, device=t.device, dtype=t.dtype)
        out.append(v)
    return out


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

    Hessian-vector products come from double backward, batched over probes
    (``is_grads_batched``), so ``m`` probes cost about one vectorised pass.

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
        For reproducible probes (on the parameters' device).
    create_graph : bool
        Keep the graph so the estimate can be differentiated with respect to ``params``
        (which must then require grad): the stochastic gradient of the trace.
    batch_size : int, optional
        Probes per vectorised pass (default: all at once).

    Returns
    -------
    mean : Tensor, shape ()
        The estimate of the trace.
    stderr : Tensor, shape ()
        Its standard error, ``std / sqrt(m)`` (0 for a single probe).
    """
    if isinstance(num_probes, bool) or not isinstance(num_probes, int):
        raise TypeError(f"num_probes must be an int, got {type(num_probes).__name__}")
    if num_probes < 1:
        raise ValueError(f"num_probes must be >= 1, got {num_probes}")
    if dist not in ("rademacher", "gaussian"):
        raise ValueError(f"dist must be 'rademacher' or 'gaussian', got {dist!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tensors, rebuild = _split(params)
    leaves = _leaves(tensors, create_graph)
    with torch.enable_grad():
        loss = _scalar_loss(loss_fn, rebuild(leaves))
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
        probes = _probes(num_probes, leaves, dist, generator)
        step = batch_size or num_probes
        quads = []
        for start in range(0, num_probes, step):
            vs = [p[start : start + step] for p in probes]
            gv = torch.stack(
                [(g.unsqueeze(0) * v).reshape(v.shape[0], -1).sum(1) for g, v in zip(grads, vs)]
            ).sum(0)
            # d(g.v)/dtheta = H v; one batched backward for the whole chunk of probes
            eye = torch.eye(vs[0].shape[0], dtype=gv.dtype, device=gv.device)
            hvs = torch.autograd.grad(
                gv,
                leaves,
                grad_outputs=eye,
                is_grads_batched=True,
                create_graph=create_graph,
                retain_graph=create_graph or start + step < num_probes,
            )
            quads.append(
                torch.stack(
                    [(hv * v).reshape(v.shape[0], -1).sum(1) for hv, v in zip(hvs, vs)]
                ).sum(0)
            )
    q = torch.cat(quads)
    mean = q.mean()
    stderr = q.std() / math.sqrt(num_probes) if num_probes > 1 else torch.zeros_like(mean)
    if not create_graph:
        mean, stderr = mean.detach(), stderr.detach()
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

    Returns
    -------
    estimate, stderr : Tensor, shape ()
        ``stderr`` is 0 for the exact method.

    Examples
    --------
    >>> import torch
    >>> H = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> est, se = hessian_trace(lambda x: 0.5 * x @ H @ x, torch.zeros(3, dtype=torch.float64))
    >>> float(est)
    6.0
    """
    if method == "exact":
        tr = hessian_trace_exact(loss_fn, params)
        return tr, torch.zeros_like(tr)
    if method == "hutchinson":
        return hutchinson_trace(loss_fn, params, num_probes=n_probes, generator=generator)
    raise ValueError(f"method must be 'hutchinson' or 'exact', got {method!r}")


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
        if not isinstance(lam, int | float) or isinstance(lam, bool):
            raise TypeError(f"lam must be a float, got {type(lam).__name__}")
        if lam < 0 or not math.isfinite(lam):
            raise ValueError(f"lam must be a finite number >= 0, got {lam}")
        if n_probes < 1:
            raise ValueError(f"n_probes must be >= 1, got {n_probes}")
        self.lam = float(lam)
        self.n_probes = n_probes
        self.dist = dist
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
