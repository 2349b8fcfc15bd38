"""Flow matching, the linear-quadratic grid and the Euler sampler."""

import json
from pathlib import Path

import pytest
import torch

from papershelf.core.testing import assert_close, slow
from papershelf.moviegen import (
    SIGMA_MIN,
    TextContext,
    drop_text,
    euler_sample,
    flow_matching_loss,
    interpolate,
    linear_quadratic_t,
    linear_t,
    sample_t_logit_normal,
    target_velocity,
    to_diffusers_sigmas,
)


def _text(b: int, seed: int = 0) -> TextContext:
    g = torch.Generator().manual_seed(seed)
    return TextContext(
        {"a": torch.randn(b, 3, 4, generator=g)}, {"a": torch.ones(b, 3, dtype=torch.bool)}
    )


# ---- linear-quadratic grid -------------------------------------------------------------


def test_lq_grid_shape_endpoints_and_monotone():
    t = linear_quadratic_t(50, 250)
    assert t.shape == (51,) and t[0] == 0 and t[-1] == 1
    assert bool((t.diff() > 0).all())
    assert_close(t.diff()[:25], torch.full((25,), 1 / 250, dtype=torch.float64), atol=1e-15)
    assert float(t[25]) == pytest.approx(0.1, abs=1e-15)
    assert float(t.diff()[25]) == pytest.approx(0.00528, abs=1e-5)
    assert float(t.diff()[-1]) == pytest.approx(0.06672, abs=1e-5)


def test_lq_grid_is_c1_at_the_junction():
    S, N = 50, 250
    L = S // 2
    tau = L / N
    d = L - tau * S
    a = d / (L * (S - L) ** 2)
    b = tau / L - 2 * d / (S - L) ** 2
    # slope of the quadratic at i = L equals the linear slope 1 / N
    assert 2 * a * L + b == pytest.approx(1 / N, rel=1e-12)


REF = json.loads((Path(__file__).parent / "data" / "diffusers_reference.json").read_text())


@pytest.mark.parametrize("ref", REF["schedules"], ids=lambda r: f"S{r['steps']}-N{r['n_emulated']}")
def test_lq_grid_equals_diffusers_linear_quadratic_schedule(ref):
    # reference values: diffusers' Mochi linear_quadratic_schedule, run by data/make_*.py
    t = linear_quadratic_t(ref["steps"], ref["n_emulated"], ref["n_linear"])
    assert_close(
        to_diffusers_sigmas(t), torch.tensor(ref["sigmas"], dtype=torch.float64), atol=1e-12
    )


@slow
def test_lq_grid_equals_live_diffusers():
    from diffusers.pipelines.mochi.pipeline_mochi import linear_quadratic_schedule

    sig = torch.tensor(linear_quadratic_schedule(50, 0.1, 25), dtype=torch.float64)
    assert_close(to_diffusers_sigmas(linear_quadratic_t(50, 250)), sig, atol=1e-12)


def test_linear_grid_and_bad_steps():
    assert_close(linear_t(4), torch.tensor([0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="steps"):
        linear_quadratic_t(1)
    with pytest.raises(ValueError, match="steps"):
        linear_t(0)
    with pytest.raises(ValueError, match="n_linear"):
        linear_quadratic_t(10, 100, n_linear=10)


# ---- flow matching -----------------------------------------------------------------------


def test_path_endpoints_and_velocity_is_time_derivative():
    g = torch.Generator().manual_seed(0)
    x1, x0 = (
        torch.randn(2, 3, generator=g, dtype=torch.float64),
        torch.randn(2, 3, generator=g, dtype=torch.float64),
    )
    assert_close(interpolate(x1, x0, torch.zeros(2)), x0)
    assert_close(interpolate(x1, x0, torch.ones(2)), x1 + SIGMA_MIN * x0)
    h = 1e-6
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    fd = (interpolate(x1, x0, t + h) - interpolate(x1, x0, t - h)) / (2 * h)
    assert_close(fd, target_velocity(x1, x0), rtol=1e-7)


def test_oracle_velocity_gives_zero_loss():
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(4, 2, 1, 2, 2, generator=g)
    x0 = torch.randn(4, 2, 1, 2, 2, generator=g)

    def oracle(xt, t, text):
        return target_velocity(x1, x0)

    assert float(flow_matching_loss(oracle, x1, _text(4), x0=x0, generator=g)) == 0.0


def test_analytic_field_for_point_mass_data_and_euler_lands_on_it():
    mu = torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1, 1)
    s = SIGMA_MIN

    def field(x, t, text):
        tb = t.view(-1, 1, 1, 1, 1).to(x.dtype)
        return (mu - (1 - s) * x) / (1 - (1 - s) * tb)

    g = torch.Generator().manual_seed(0)
    x1 = mu.expand(8, 3, 1, 1, 1).clone()
    loss = flow_matching_loss(field, x1, _text(8), generator=g, cfg_dropout=0.0)
    assert float(loss) < 1e-8
    x = euler_sample(
        field, (8, 3, 1, 1, 1), _text(8), guidance=1.0, generator=g, dtype=torch.float64
    )
    assert float((x - mu).abs().max()) < 1e-3


def test_logit_normal_times():
    t = sample_t_logit_normal(20000, generator=torch.Generator().manual_seed(0))
    assert bool(((t > 0) & (t < 1)).all())
    assert float(t.median()) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="n must"):
        sample_t_logit_normal(0)


def test_cfg_dropout_rate_and_null():
    g = torch.Generator().manual_seed(0)
    text = TextContext(
        {k: torch.randn(4000, 3, 4, generator=g) for k in ("a", "b", "c")},
        {k: torch.ones(4000, 3, dtype=torch.bool) for k in ("a", "b", "c")},
    )
    dropped = drop_text(text, 0.1, generator=torch.Generator().manual_seed(0))
    is_null = (dropped.states["a"] == 0).all(dim=(1, 2)).float()
    assert float(is_null.mean()) == pytest.approx(0.1, abs=0.02)
    assert bool(dropped.masks["a"][is_null.bool()].all())
    # jointly: every encoder of a dropped sample is null (the unconditional input of sampling)
    for k, s in dropped.states.items():
        assert torch.equal((s == 0).all(dim=(1, 2)).float(), is_null), k
    assert drop_text(text, 0.0) is text
    with pytest.raises(ValueError, match="dropout"):
        drop_text(text, 1.5)


# ---- sampler -----------------------------------------------------------------------------


def _toy_model(x, t, text):
    c = text.states["a"].mean((1, 2)).view(-1, 1, 1, 1, 1)
    return -x * (1 - t.view(-1, 1, 1, 1, 1)) + c


def test_sampler_is_deterministic_under_a_seed():
    text = _text(3)
    a = euler_sample(_toy_model, (3, 2, 2, 2, 2), text, generator=torch.Generator().manual_seed(7))
    b = euler_sample(_toy_model, (3, 2, 2, 2, 2), text, generator=torch.Generator().manual_seed(7))
    c = euler_sample(_toy_model, (3, 2, 2, 2, 2), text, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_guidance_one_equals_conditional_and_cfg_formula():
    text = _text(2)
    x0 = torch.randn(2, 1, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    grid = linear_t(2)
    w1 = euler_sample(_toy_model, (2, 1, 1, 2, 2), text, guidance=1.0, x0=x0, t_grid=grid)
    w1b = euler_sample(_toy_model, (2, 1, 1, 2, 2), text, guidance=1.0 + 1e-12, x0=x0, t_grid=grid)
    assert_close(w1, w1b, atol=1e-6)
    # one step by hand with w = 3
    w3 = euler_sample(
        _toy_model, (2, 1, 1, 2, 2), text, guidance=3.0, x0=x0, t_grid=linear_t(2)[[0, 2]]
    )
    t0 = torch.zeros(2)
    vc, vu = _toy_model(x0, t0, text), _toy_model(x0, t0, text.null())
    assert_close(w3, x0 + (vu + 3 * (vc - vu)), atol=1e-6)


def test_euler_equals_diffusers_flow_match_euler_scheduler():
    # reference: FlowMatchEulerDiscreteScheduler(shift=1) on sigmas = 1 - t[:-1], stepping
    # with the negated velocity of the same toy field (data/make_diffusers_reference.py)
    ref = REF["euler"]

    def field(x, t, text):
        tb = t.view(-1, 1, 1, 1, 1).to(x.dtype)
        return -x * (1 - tb) + 0.5 * torch.sin(3 * tb) + 0.1

    x0 = torch.tensor(ref["x0"], dtype=torch.float64).view(6, 1, 1, 1, 1)
    grid = linear_quadratic_t(ref["steps"], ref["n_emulated"])
    assert_close(1000 * to_diffusers_sigmas(grid), torch.tensor(ref["timesteps"]), atol=1e-3)
    ours = euler_sample(
        field, (6, 1, 1, 1, 1), _text(6), guidance=1.0, x0=x0, t_grid=grid, dtype=torch.float64
    )
    # diffusers keeps its sigmas in float32, hence the tolerance
    assert_close(ours.flatten(), torch.tensor(ref["x1"], dtype=torch.float64), atol=1e-5)


def test_sampler_bad_inputs():
    text = _text(2)
    with pytest.raises(ValueError, match="guidance"):
        euler_sample(_toy_model, (2, 1, 1, 1, 1), text, guidance=0.5)
    with pytest.raises(ValueError, match="t_grid"):
        euler_sample(_toy_model, (2, 1, 1, 1, 1), text, t_grid=torch.tensor([0.0, 0.5, 0.4]))
    with pytest.raises(ValueError, match="batch size"):
        euler_sample(_toy_model, (3, 1, 1, 1, 1), text)


class _EulerScheduler:
    """A minimal diffusers-style flow Euler scheduler (sigmas in diffusers' convention)."""

    def __init__(self, sigmas):
        self.sigmas = [*sigmas, 0.0]
        self.timesteps = torch.tensor([1000 * s for s in sigmas], dtype=torch.float64)
        self.i = 0

    def step(self, model_output, timestep, sample, return_dict=False):
        s, s_next = self.sigmas[self.i], self.sigmas[self.i + 1]
        self.i += 1
        return (sample + (s_next - s) * model_output,)


def test_scheduler_sample_equals_euler_sample_with_cfg():
    from papershelf.moviegen import scheduler_sample

    text = _text(2)
    x0 = torch.randn(2, 1, 2, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grid = linear_quadratic_t(10, 50)
    ours = euler_sample(
        _toy_model, tuple(x0.shape), text, guidance=2.5, x0=x0, t_grid=grid, dtype=torch.float64
    )
    sched = _EulerScheduler(to_diffusers_sigmas(grid).tolist())
    other = scheduler_sample(
        _toy_model, tuple(x0.shape), text, sched, guidance=2.5, x0=x0, dtype=torch.float64
    )
    assert_close(other, ours, atol=1e-10)
    with pytest.raises(TypeError, match="scheduler"):
        scheduler_sample(_toy_model, tuple(x0.shape), text, object())


@slow
def test_scheduler_sample_with_live_diffusers_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from papershelf.moviegen import scheduler_sample

    text = _text(2)
    x0 = torch.randn(2, 1, 2, 2, 2, generator=torch.Generator().manual_seed(3))
    grid = linear_quadratic_t(50, 250)
    ours = euler_sample(_toy_model, tuple(x0.shape), text, guidance=4.0, x0=x0, t_grid=grid)
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    sched.set_timesteps(sigmas=to_diffusers_sigmas(grid).tolist())
    other = scheduler_sample(_toy_model, tuple(x0.shape), text, sched, guidance=4.0, x0=x0)
    assert_close(other, ours, atol=1e-5)
