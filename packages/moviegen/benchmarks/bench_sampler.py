"""Sampler overhead beyond model calls: our Euler loop vs diffusers' FlowMatchEulerDiscreteScheduler.

    uv run --no-sync python packages/moviegen/benchmarks/bench_sampler.py

Both integrate the same 50-step linear-quadratic grid with CFG 7.5 around a model that
costs almost nothing, so the time measured is the sampler itself (noise, CFG batching,
updates). The outputs are compared too.
"""

from __future__ import annotations

import time

import torch

from papershelf.moviegen import (
    TextContext,
    euler_sample,
    linear_quadratic_t,
    scheduler_sample,
    to_diffusers_sigmas,
)


def model(x: torch.Tensor, t: torch.Tensor, text: TextContext) -> torch.Tensor:
    return -0.5 * x + text.states["a"][:, 0, 0].view(-1, 1, 1, 1, 1)


def main() -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler

    torch.set_num_threads(1)
    shape = (2, 16, 8, 24, 24)  # a 64-frame, 192 px clip's latent (paper TAE)
    text = TextContext({"a": torch.randn(2, 4, 8)}, {"a": torch.ones(2, 4, dtype=torch.bool)})
    grid = linear_quadratic_t(50, 250)
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    reps = 5

    t0 = time.perf_counter()
    for _ in range(reps):
        ours = euler_sample(model, shape, text, t_grid=grid, guidance=7.5, x0=x0)
    t_ours = (time.perf_counter() - t0) / reps

    t0 = time.perf_counter()
    for _ in range(reps):
        sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
        sched.set_timesteps(sigmas=to_diffusers_sigmas(grid).tolist())
        theirs = scheduler_sample(model, shape, text, sched, guidance=7.5, x0=x0)
    t_diff = (time.perf_counter() - t0) / reps

    print(f"latent {shape}, 50 LQ steps, CFG 7.5, 1 CPU thread")
    print(f"  ours (euler_sample)                  {t_ours * 1e3:8.1f} ms / sample call")
    print(f"  diffusers FlowMatchEulerDiscrete     {t_diff * 1e3:8.1f} ms / sample call")
    print(f"  ratio ours / diffusers               {t_ours / t_diff:8.2f}x")
    print(f"  max |difference| of the results      {float((ours - theirs).abs().max()):.2e}")


if __name__ == "__main__":
    main()
