"""Training deep linear networks on matrix sensing: plain, trace-regularized, label noise, 1-SAM.

The explicit regulariser differentiates the closed-form trace of :mod:`.dln`; label-noise SGD
and per-example SAM minimise the trace implicitly (near the zero-loss manifold they drift
along its Riemannian gradient flow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from papershelf.core.progress import progress
from papershelf.hessian_trace.data import SensingProblem
from papershelf.hessian_trace.dln import deep_linear_trace, end_to_end, measurement_loss, precompute

__all__ = ["METHODS", "History", "fit", "init_weights"]

Method = Literal["gd", "trace_reg", "label_noise_sgd", "sam1"]
METHODS: tuple[str, ...] = ("gd", "trace_reg", "label_noise_sgd", "sam1")


@dataclass
class History:
    """What :func:`fit` recorded: curves every ``record_every`` steps and the final weights."""

    method: str
    depth: int
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    nuclear_norm: list[float] = field(default_factory=list)
    trace: list[float] = field(default_factory=list)
    weights: list[Tensor] = field(default_factory=list)

    @property
    def final(self) -> dict[str, float]:
        """The last recorded loss, test error, nuclear norm and trace."""
        return {
            "loss": self.loss[-1],
            "test_error": self.test_error[-1],
            "nuclear_norm": self.nuclear_norm[-1],
            "trace": self.trace[-1],
        }


def init_weights(
    d_in: int,
    d_out: int,
    depth: int,
    width: int | None = None,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> list[Tensor]:
    """Layers with i.i.d. :math:`N(0, 1/d_{j-1})` entries (standard scale: no small-init low-rank bias)."""
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    gen = torch.Generator().manual_seed(seed)
    width = width or max(d_in, d_out)
    dims = [d_in] + [width] * (depth - 1) + [d_out]
    return [
        torch.randn(dims[j + 1], dims[j], generator=gen, dtype=dtype) / math.sqrt(dims[j])
        for j in range(depth)
    ]


def fit(
    problem: SensingProblem,
    depth: int,
    method: Method = "gd",
    *,
    lam: float = 1e-3,
    lr: float = 1e-2,
    steps: int = 2000,
    polish_steps: int = 300,
    seed: int = 0,
    width: int | None = None,
    init: list[Tensor] | None = None,
    sgd_lr: float = 2e-3,
    label_noise: float = 1.0,
    sam_rho: float = 0.05,
    polish_lr: float = 1e-3,
    record_every: int = 100,
    show_progress: bool | None = None,
) -> History:
    """Train a depth-``depth`` linear network on ``problem``.

    Parameters
    ----------
    problem : SensingProblem
        Measurements ``A`` (n, d_out, d_in), ``b`` (n,), and ``M_star`` for the test error.
    depth : int
        Number of layers, ``>= 2``.
    method : {"gd", "trace_reg", "label_noise_sgd", "sam1"}
        ``gd``: Adam on the loss. ``trace_reg``: Adam on loss + ``lam`` * tr(Hessian) (closed
        form). ``label_noise_sgd``: SGD with batch 1 and fresh N(0, ``label_noise``²) label
        noise. ``sam1``: SAM with a per-example perturbation of radius ``sam_rho``. Every
        method ends with ``polish_steps`` Adam steps on the plain loss (reaching zero loss).
    lam, lr, steps, polish_steps
        Regularisation strength, Adam learning rate, main and polishing steps.
    polish_lr : float
        Learning rate of the polishing Adam (fresh moments).
    seed : int
        Initialisation and sampling seed.
    width : int, optional
        Hidden width (default ``max(d_in, d_out)``).
    init : list of Tensor, optional
        Start from these weights (copied) instead of a fresh initialisation.
    sgd_lr, label_noise, sam_rho
        Step size and noise of the stochastic methods.
    record_every : int
        Record the curves every this many steps.
    show_progress : bool, optional
        Progress bar (default: only on a terminal).

    Returns
    -------
    History
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if steps < 0 or polish_steps < 0:
        raise ValueError("steps and polish_steps must be >= 0")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    a, b = problem.A, problem.b
    d_out, d_in = problem.shape
    if init is not None:
        ws = [w.detach().clone().requires_grad_(True) for w in init]
    else:
        ws = [
            w.requires_grad_(True)
            for w in init_weights(d_in, d_out, depth, width, seed=seed, dtype=a.dtype)
        ]
    if len(ws) != depth:
        raise ValueError(f"init has {len(ws)} layers, expected depth={depth}")
    s = precompute(a)
    gen = torch.Generator().manual_seed(seed + 1)
    hist = History(method=method, depth=depth)

    def record(step: int) -> None:
        with torch.no_grad():
            e = end_to_end(ws)
            hist.steps.append(step)
            hist.loss.append(float(measurement_loss(ws, a, b)))
            hist.test_error.append(float(problem.test_error(e)))
            hist.nuclear_norm.append(float(torch.linalg.matrix_norm(e, ord="nuc")))
            hist.trace.append(float(deep_linear_trace(ws, a, precomputed=s)))

    adam = torch.optim.Adam(ws, lr=lr)
    total = steps + polish_steps
    bar = progress(
        range(total),
        total=total,
        desc=f"{method} L={depth}",
        disable=None if show_progress is None else not show_progress,
    )
    record(0)
    for step in bar:
        main = step < steps
        if step == steps and polish_steps:
            # fresh moments: the regularised phase's Adam state would slow the final descent
            adam = torch.optim.Adam(ws, lr=polish_lr)
        if main and method in ("label_noise_sgd", "sam1"):
            _stochastic_step(ws, a, b, method, gen, sgd_lr, label_noise, sam_rho)
        else:
            adam.zero_grad(set_to_none=True)
            loss = measurement_loss(ws, a, b)
            if main and method == "trace_reg":
                loss = loss + lam * deep_linear_trace(ws, a, precomputed=s)
            loss.backward()
            adam.step()
        if (step + 1) % record_every == 0 or step + 1 == total:
            record(step + 1)
    hist.weights = [w.detach() for w in ws]
    if not all(math.isfinite(v) for v in hist.final.values()):
        raise FloatingPointError(f"training diverged ({method}, depth {depth}): lower lr/sgd_lr")
    return hist


def _stochastic_step(
    ws: list[Tensor],
    a: Tensor,
    b: Tensor,
    method: str,
    gen: torch.Generator,
    lr: float,
    sigma: float,
    rho: float,
) -> None:
    i = int(torch.randint(0, a.shape[0], (1,), generator=gen))
    ai, bi = a[i : i + 1], b[i : i + 1]
    if method == "label_noise_sgd":
        noisy = bi + sigma * torch.randn(1, generator=gen, dtype=b.dtype)
        grads = torch.autograd.grad(measurement_loss(ws, ai, noisy), ws)
    else:  # per-example SAM: ascend to the worst point of a small ball around x, for this sample
        g = torch.autograd.grad(measurement_loss(ws, ai, bi), ws)
        norm = torch.stack([x.pow(2).sum() for x in g]).sum().sqrt().clamp_min(1e-12)
        shifted = [(w + rho * x / norm).detach().requires_grad_(True) for w, x in zip(ws, g)]
        grads = torch.autograd.grad(measurement_loss(shifted, ai, bi), shifted)
    with torch.no_grad():
        for w, g_ in zip(ws, grads):
            w -= lr * g_
