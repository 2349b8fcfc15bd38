"""First-order Euler sampling with classifier-free guidance (Polyak et al. 2024, Sec. 3.1.6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from papershelf.core import progress
from papershelf.core.validation import check_real
from papershelf.moviegen.schedules import linear_quadratic_t
from papershelf.moviegen.text import TextContext

__all__ = ["euler_sample", "scheduler_sample"]


def _initial_state(
    shape: tuple[int, ...],
    text: TextContext,
    generator: torch.Generator | None,
    device: torch.device | str | None,
    dtype: torch.dtype,
    x0: Tensor | None,
) -> tuple[Tensor, torch.device | str]:
    """X_0 (``x0``, or noise drawn on the CPU) and the sampling device (default: the text's)."""
    if text.batch_size != shape[0]:
        raise ValueError(f"text has batch size {text.batch_size}, shape asks for {shape[0]}")
    if device is None:
        device = next(iter(text.states.values())).device
    if x0 is None:
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(
            device, dtype
        ), device
    if tuple(x0.shape) != tuple(shape):
        raise ValueError(f"x0 must have shape {tuple(shape)}, got {tuple(x0.shape)}")
    return x0.to(device, dtype), device


def _doubled(model_kwargs: dict[str, object]) -> dict[str, object]:
    """Model keyword tensors repeated for the [conditional, unconditional] batch of CFG."""
    return {k: torch.cat([v, v]) if isinstance(v, Tensor) else v for k, v in model_kwargs.items()}


def euler_sample(
    model: Callable[..., Tensor],
    shape: tuple[int, ...],
    text: TextContext,
    *,
    uncond: TextContext | None = None,
    t_grid: Tensor | None = None,
    guidance: float = 7.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    x0: Tensor | None = None,
    show_progress: bool | None = None,
    **model_kwargs: object,
) -> Tensor:
    """Integrate dX/dt = u(X, P, t) from noise (t = 0) to data (t = 1) with Euler steps.

    With guidance w the velocity is v = v_u + w (v_c - v_u), the unconditional pass
    using the null text; conditional and unconditional passes share one batched call.

    Parameters
    ----------
    model : callable
        ``model(x, t, text, **model_kwargs)`` -> velocity of the shape of ``x``.
    shape : tuple of int
        Latent shape (B, C, T, H, W).
    text : TextContext
        Conditional context for the B samples.
    uncond : TextContext, optional
        Unconditional context; defaults to ``text.null()``.
    t_grid : Tensor, shape (S + 1,), optional
        Increasing grid from 0 to 1; defaults to :func:`linear_quadratic_t` (50 steps, N = 250).
    guidance : float
        CFG scale w >= 1 (the paper's 7.5 is unconfirmed); w = 1 skips the unconditional pass.
    generator : torch.Generator, optional
        Source of the initial noise X_0, drawn on the CPU so a seed gives identical
        samples on every device.
    device, dtype
        Where and in which precision to sample (defaults: the text's device, float32).
    x0 : Tensor, optional
        Use this initial noise instead of drawing it.

    Returns
    -------
    Tensor, shape ``shape``
        X at t = 1.
    """
    guidance = check_real("guidance", guidance, low=1.0)
    t_grid = linear_quadratic_t() if t_grid is None else torch.as_tensor(t_grid)
    if t_grid.ndim != 1 or t_grid.numel() < 2:
        raise ValueError("t_grid must be a 1-D grid with at least 2 entries")
    if not bool(torch.isfinite(t_grid).all()):
        raise ValueError("t_grid must be finite")
    if bool((t_grid.diff() <= 0).any()) or t_grid[0] < 0 or t_grid[-1] > 1:
        raise ValueError("t_grid must increase strictly within [0, 1]")
    x, device = _initial_state(shape, text, generator, device, dtype, x0)
    use_cfg = guidance != 1.0
    if use_cfg:
        uncond = text.null() if uncond is None else uncond
        both = TextContext.cat([text, uncond])
        kwargs2 = _doubled(model_kwargs)
    ts = t_grid.tolist()
    steps = progress(
        range(len(ts) - 1),
        total=len(ts) - 1,
        desc="euler",
        disable=None if show_progress is None else not show_progress,
    )
    for i in steps:
        t0, t1 = ts[i], ts[i + 1]
        tb = torch.full((shape[0],), t0, device=device)
        if use_cfg:
            v = model(torch.cat([x, x]), torch.cat([tb, tb]), both, **kwargs2)
            v_c, v_u = v.chunk(2)
            v = v_u + guidance * (v_c - v_u)
        else:
            v = model(x, tb, text, **model_kwargs)
        x = x + (t1 - t0) * v.to(dtype)
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(
            "euler_sample produced non-finite latents (a NaN/inf in the model, text or x0)"
        )
    return x


def scheduler_sample(
    model: Callable[..., Tensor],
    shape: tuple[int, ...],
    text: TextContext,
    scheduler: Any,
    *,
    uncond: TextContext | None = None,
    guidance: float = 7.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    x0: Tensor | None = None,
    **model_kwargs: object,
) -> Tensor:
    """Sample with a diffusers-style flow scheduler instead of the built-in Euler loop.

    The scheduler runs in diffusers' convention (sigma = 1 - t, timestep = 1000 sigma,
    model output = the velocity towards noise), so Movie Gen's velocity is negated and
    the time passed to the model is t = 1 - timestep / 1000. With
    ``FlowMatchEulerDiscreteScheduler(shift=1.0)`` and
    ``set_timesteps(sigmas=to_diffusers_sigmas(linear_quadratic_t()).tolist())`` this
    equals :func:`euler_sample`; other flow schedulers (e.g. Heun) plug in the same way.

    Parameters
    ----------
    model, shape, text, uncond, guidance, generator, device, dtype, x0
        As in :func:`euler_sample`.
    scheduler : object
        Has ``timesteps`` (already set) and ``step(model_output, timestep, sample,
        return_dict=False)``.

    Returns
    -------
    Tensor, shape ``shape``
    """
    guidance = check_real("guidance", guidance, low=1.0)
    if not hasattr(scheduler, "timesteps") or not hasattr(scheduler, "step"):
        raise TypeError("scheduler must have timesteps and step() (call set_timesteps first)")
    x, device = _initial_state(shape, text, generator, device, dtype, x0)
    use_cfg = guidance != 1.0
    both = TextContext.cat([text, text.null() if uncond is None else uncond]) if use_cfg else text
    for ts in scheduler.timesteps:
        t = (1.0 - float(ts) / 1000.0) * torch.ones(shape[0], device=device)
        t = t.clamp(0.0, 1.0)
        if use_cfg:
            kw = _doubled(model_kwargs)
            v_c, v_u = model(torch.cat([x, x]), torch.cat([t, t]), both, **kw).chunk(2)
            v = v_u + guidance * (v_c - v_u)
        else:
            v = model(x, t, text, **model_kwargs)
        x = scheduler.step(-v.to(dtype), ts, x, return_dict=False)[0]
    return x
