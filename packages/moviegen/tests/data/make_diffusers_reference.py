"""Regenerate diffusers_reference.json by running diffusers (the reference implementation).

    uv run --no-sync python packages/moviegen/tests/data/make_diffusers_reference.py

Records (1) ``linear_quadratic_schedule`` from diffusers' Mochi pipeline for a few
settings and (2) a full ``FlowMatchEulerDiscreteScheduler`` run on a fixed toy field.
"""

import json
from pathlib import Path

import diffusers
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.mochi.pipeline_mochi import linear_quadratic_schedule

SETTINGS = [(50, 250, 25), (20, 100, 10), (64, 1000, 10)]


def toy_field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A smooth time-dependent field in Movie Gen time (t = 0 noise)."""
    return -x * (1 - t) + 0.5 * torch.sin(3 * t) + 0.1


def main() -> None:
    out: dict = {"diffusers_version": diffusers.__version__, "schedules": []}
    for steps, n, lin in SETTINGS:
        sig = linear_quadratic_schedule(steps, lin / n, lin)
        out["schedules"].append(
            {"steps": steps, "n_emulated": n, "n_linear": lin, "sigmas": [float(s) for s in sig]}
        )
    x0 = torch.linspace(-2, 2, 6, dtype=torch.float64)
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    sig = linear_quadratic_schedule(50, 25 / 250, 25)
    sched.set_timesteps(sigmas=sig)
    x = x0.clone()
    for ts in sched.timesteps:
        t = 1 - ts.double() / 1000
        x = sched.step(-toy_field(x, t), ts, x, return_dict=False)[0]
    out["euler"] = {
        "x0": x0.tolist(),
        "steps": 50,
        "n_emulated": 250,
        "x1": x.tolist(),
        "timesteps": [float(t) for t in sched.timesteps],
    }
    path = Path(__file__).with_name("diffusers_reference.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
