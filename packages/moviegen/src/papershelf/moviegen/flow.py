"""Flow matching as trained in Movie Gen (Polyak et al. 2024, Sec. 3.1.2).

Time runs from t = 0 (noise X_0 ~ N(0, I)) to t = 1 (data X_1):

.. math::
    X_t = t X_1 + (1 - (1 - \\sigma_{min}) t) X_0, \\qquad
    V_t = \\frac{dX_t}{dt} = X_1 - (1 - \\sigma_{min}) X_0,

and the model regresses V_t with a mean squared error; t is logit-normal.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from papershelf.moviegen.text import TextContext

__all__ = [
    "SIGMA_MIN",
    "drop_text",
    "flow_matching_loss",
    "interpolate",
    "sample_t_logit_normal",
    "target_velocity",
]

#: The paper's sigma_min.
SIGMA_MIN = 1e-5


def _bcast(t: Tensor, x: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.reshape(t.shape + (1,) * (x.ndim - t.ndim)) if t.ndim else t


def interpolate(x1: Tensor, x0: Tensor, t: Tensor, sigma_min: float = SIGMA_MIN) -> Tensor:
    """The flow-matching path X_t = t X_1 + (1 - (1 - sigma_min) t) X_0.

    Parameters
    ----------
    x1 : Tensor, shape (B, ...)
        Data.
    x0 : Tensor, shape (B, ...)
        Gaussian noise.
    t : Tensor, shape (B,) or scalar
        Time in [0, 1].
    sigma_min : float
        Noise left at t = 1.
    """
    if x1.shape != x0.shape:
        raise ValueError(
            f"x1 and x0 must have the same shape, got {tuple(x1.shape)} and {tuple(x0.shape)}"
        )
    tb = _bcast(t, x1)
    return tb * x1 + (1 - (1 - sigma_min) * tb) * x0


def target_velocity(x1: Tensor, x0: Tensor, sigma_min: float = SIGMA_MIN) -> Tensor:
    """The regression target V_t = X_1 - (1 - sigma_min) X_0 (independent of t)."""
    return x1 - (1 - sigma_min) * x0


def sample_t_logit_normal(
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    mean: float = 0.0,
    std: float = 1.0,
) -> Tensor:
    """Logit-normal flow times t = sigmoid(m), m ~ N(mean, std^2); shape (n,), values in (0, 1)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    m = torch.randn(n, generator=generator, device=device) * std + mean
    return torch.sigmoid(m)


def drop_text(
    text: TextContext,
    p: float,
    generator: torch.Generator | None = None,
    *,
    per_encoder: float = 0.0,
) -> TextContext:
    """Classifier-free-guidance dropout: null the whole text context of a sample jointly.

    With probability ``p`` every encoder's output of the sample is replaced by the null context
    (the unconditional input that guided sampling uses); ``per_encoder`` adds independent
    per-encoder drops. Dropping each encoder independently (the 0.1 behaviour) made the all-null
    context that sampling needs occur in ``p**3`` of samples with three encoders. Same as
    :func:`papershelf.moviegen.train.guidance_dropout`.

    Parameters
    ----------
    text : TextContext
    p : float
        Joint drop probability in [0, 1] (the paper does not state it; 0.1 is the default).
    generator : torch.Generator, optional
        Seeded source of the drop decisions (on the CPU).
    per_encoder : float
        Extra independent drop rate per encoder in [0, 1] (default 0: off).
    """
    from papershelf.moviegen.train.guidance import guidance_dropout

    return guidance_dropout(text, p, per_encoder=per_encoder, generator=generator)


def flow_matching_loss(
    model: Callable[..., Tensor],
    x1: Tensor,
    text: TextContext,
    *,
    sigma_min: float = SIGMA_MIN,
    cfg_dropout: float = 0.1,
    generator: torch.Generator | None = None,
    t: Tensor | None = None,
    x0: Tensor | None = None,
    **model_kwargs: object,
) -> Tensor:
    """Movie Gen's training loss E || u(X_t, P, t) - V_t ||^2 (mean over all elements).

    Parameters
    ----------
    model : callable
        ``model(x_t, t, text, **model_kwargs)`` returning the velocity, shape of ``x1``.
    x1 : Tensor, shape (B, C, T, H, W)
        Clean latents.
    text : TextContext
    sigma_min : float
    cfg_dropout : float
        Per-sample, per-encoder probability of the null text.
    generator : torch.Generator, optional
        CPU generator for noise, times and dropout (noise is drawn on the CPU and moved,
        so runs are identical across devices).
    t, x0 : Tensor, optional
        Fix the times (B,) or the noise instead of sampling them.

    Returns
    -------
    Tensor, scalar
    """
    B = x1.shape[0]
    if x0 is None:
        x0 = torch.randn(x1.shape, generator=generator, dtype=torch.float32).to(x1)
    if t is None:
        t = sample_t_logit_normal(B, generator=generator).to(x1.device)
    text = drop_text(text, cfg_dropout, generator)
    xt = interpolate(x1, x0, t, sigma_min)
    v = model(xt, t, text, **model_kwargs)
    return torch.mean((v.float() - target_velocity(x1, x0, sigma_min).float()) ** 2)
