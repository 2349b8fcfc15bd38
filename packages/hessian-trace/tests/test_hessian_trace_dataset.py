"""Chunked Hutchinson, HessianTrace over a data loader, zero Hessians, sensing seeds, RIP."""

import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from papershelf.hessian_trace import HessianTrace, gaussian_sensing, hutchinson_trace
from papershelf.hessian_trace.estimators import (
    TraceConvergenceWarning,
    default_batch_size,
    hessian_trace_exact,
)
from papershelf.hessian_trace.rip import rip_constant, theorem_factor

f64 = torch.float64


@pytest.mark.parametrize(
    "loss",
    [
        lambda p: (3.0 * p).sum(),  # linear: the gradient has no graph
        lambda p: torch.tensor(1.0, dtype=f64),  # constant: no gradient at all
        lambda p: 2.0 * p[0] + 0.0 * p.sum(),
    ],
)
def test_zero_hessian_gives_zero_not_a_crash(loss):
    est, se = hutchinson_trace(loss, torch.randn(5, dtype=f64), num_probes=6)
    assert float(est) == 0.0 and float(se) == 0.0


def test_unused_parameter_contributes_nothing():
    est, _ = hutchinson_trace(
        lambda p: (p[0] ** 2).sum(),
        [torch.ones(3, dtype=f64), torch.ones(2, dtype=f64)],
        num_probes=4,
    )
    assert float(est) == pytest.approx(6.0)  # tr of 2*I_3; the second tensor is unused


def test_estimate_does_not_depend_on_the_chunk_size():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(7, 7, generator=g, dtype=f64)
    h = h + h.T
    x = torch.randn(7, dtype=f64)
    vals = [
        float(
            hutchinson_trace(
                lambda v: 0.5 * v @ h @ v,
                x,
                num_probes=11,
                batch_size=b,
                generator=torch.Generator().manual_seed(3),
            )[0]
        )
        for b in (1, 3, 11, None)
    ]
    assert max(vals) - min(vals) < 1e-12


def test_default_batch_size_follows_the_measured_crossover():
    assert default_batch_size(100, 200) == 16
    assert default_batch_size(100, 5) == 5
    assert default_batch_size(512, 200) == 16
    assert default_batch_size(513, 200) == 1
    assert default_batch_size(10**6, 200) == 1


def _mlp_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    data = [(torch.randn(8, 3, dtype=f64), torch.randn(8, 1, dtype=f64)) for _ in range(3)]
    return model, data


def _exact(model, data):
    names = [n for n, _ in model.named_parameters()]
    x = torch.cat([d[0] for d in data])
    y = torch.cat([d[1] for d in data])

    def loss(ps):
        out = torch.func.functional_call(model, dict(zip(names, ps, strict=True)), (x,))
        return nn.functional.mse_loss(out, y)

    return float(hessian_trace_exact(loss, [p.detach() for p in model.parameters()]))


def test_hessian_trace_over_a_loader_matches_the_exact_trace():
    model, data = _mlp_and_data()
    exact = _exact(model, data)
    est = HessianTrace(model, nn.MSELoss(), data).trace(
        tol=0.05, max_probes=3000, generator=torch.Generator().manual_seed(0), show_progress=False
    )
    assert est.converged and est.n_probes < 3000
    assert abs(est.trace - exact) < 4 * est.stderr
    assert est.stderr <= 0.05 * abs(est.trace)


def test_batches_are_weighted_by_size_and_one_batch_is_cached():
    model, data = _mlp_and_data()
    x, y = data[0]
    one = HessianTrace(model, nn.MSELoss(), (x, y)).trace(
        tol=0, max_probes=20, generator=torch.Generator().manual_seed(1)
    )
    # the same batch split in two unequal halves: the size-weighted mean is the same loss
    split = [(x[:3], y[:3]), (x[3:], y[3:])]
    two = HessianTrace(model, nn.MSELoss(), split).trace(
        tol=0, max_probes=20, generator=torch.Generator().manual_seed(1)
    )
    assert two.trace == pytest.approx(one.trace, rel=1e-10)
    assert torch.allclose(one.samples, two.samples, rtol=1e-10)


def test_probe_cap_warns_once_and_tol_zero_does_not():
    model, data = _mlp_and_data()
    with pytest.warns(TraceConvergenceWarning, match="max_probes=12") as rec:
        est = HessianTrace(model, nn.MSELoss(), data).trace(tol=1e-9, max_probes=12)
    assert len(rec) == 1 and not est.converged and est.n_probes == 12
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        HessianTrace(model, nn.MSELoss(), data).trace(tol=0, max_probes=4, min_probes=2)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"max_probes": 0}, "max_probes"), ({"tol": float("nan")}, "tol"), ({"tol": -1}, "tol"),
     ({"min_probes": 1}, "min_probes"), ({"batch_size": 0}, "batch_size"), ({"dist": "x"}, "dist")],
)  # fmt: skip
def test_hessian_trace_bad_settings_name_the_argument(kwargs, name):
    model, data = _mlp_and_data()
    with pytest.raises((ValueError, TypeError), match=name):
        HessianTrace(model, nn.MSELoss(), data).trace(**kwargs)


def test_gaussian_sensing_seed_none_is_fresh_and_seed_reproduces():
    a, b = gaussian_sensing(4, 4, 1, 5), gaussian_sensing(4, 4, 1, 5)
    assert not torch.equal(a.A, b.A)
    assert torch.equal(
        gaussian_sensing(4, 4, 1, 5, seed=3).A, gaussian_sensing(4, 4, 1, 5, seed=3).A
    )
    g = torch.Generator().manual_seed(0)
    assert not torch.equal(gaussian_sensing(4, 4, 1, 5, generator=g).A,
                           gaussian_sensing(4, 4, 1, 5, generator=g).A)  # fmt: skip


def test_rip_constant_small_for_many_measurements_and_large_for_few():
    g = torch.Generator().manual_seed(0)
    many = torch.randn(3000, 4, 4, generator=g, dtype=f64)
    few = torch.randn(40, 10, 10, generator=g, dtype=f64)
    est = rip_constant(many)
    assert est.delta < 0.4 and est.lower < 1 < est.upper
    assert rip_constant(few).delta > 1  # the spec's d = 10, n = 40 setting: the theorem is vacuous
    # the extremes found are real rank-one values: a random rank-one X lies between them
    u, v = torch.randn(4, dtype=f64), torch.randn(4, dtype=f64)
    u, v = u / u.norm(), v / v.norm()
    val = float(torch.einsum("a,nab,b->n", u, many, v).pow(2).mean())
    assert est.lower <= val <= est.upper


def test_theorem_factor():
    assert theorem_factor(0.0, 3) == 1.0
    assert theorem_factor(0.5, 2) == pytest.approx(3.0)
    assert theorem_factor(0.5, 3) == pytest.approx(3.0**0.75)
    assert theorem_factor(1.0, 2) == float("inf")


def test_import_is_light():
    code = "import sys, papershelf.hessian_trace as h; print('torch' in sys.modules); h.hutchinson_trace; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


# --- user-path audit (0.2.0) ---


def test_loss_fn_closing_over_the_model_is_refused():
    # loss_fn ignores its params and uses the model's own parameters: the trace silently
    # came out 0 (Hutchinson and exact), while TraceRegularizer used the same closure fine
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x, y = torch.randn(8, 3, dtype=f64), torch.randn(8, 1, dtype=f64)

    def closure(p):
        return nn.functional.mse_loss(net(x), y)

    params = list(net.parameters())
    with pytest.raises(ValueError, match="does not use its params"):
        hutchinson_trace(closure, params, num_probes=4)
    with pytest.raises(ValueError, match="does not use its params"):
        hessian_trace_exact(closure, params)
    # the functional form works and agrees; a truly constant loss still gives 0
    names = [n for n, _ in net.named_parameters()]

    def functional(p):
        return nn.functional.mse_loss(torch.func.functional_call(net, dict(zip(names, p)), (x,)), y)

    exact = hessian_trace_exact(functional, params)
    assert float(exact) > 0
    est, se = hutchinson_trace(
        functional, params, num_probes=400, generator=torch.Generator().manual_seed(0)
    )
    assert abs(float(est) - float(exact)) < 5 * float(se)
    assert (
        float(hutchinson_trace(lambda p: torch.tensor(1.0, dtype=f64), params, num_probes=2)[0])
        == 0
    )


def test_hessian_trace_frozen_params_named():
    # an explicit params list holding a frozen parameter was a bare autograd RuntimeError
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    net[0].bias.requires_grad_(False)
    data = [(torch.randn(8, 3), torch.randn(8, 1))]
    with pytest.raises(ValueError, match=r"params\[1\] does not require grad"):
        HessianTrace(net, nn.MSELoss(), data, params=net.parameters())
    est = HessianTrace(net, nn.MSELoss(), data).trace(tol=0, max_probes=4)
    assert est.n_probes == 4 and est.trace == est.trace


@pytest.mark.slow  # importing torch._dynamo takes ~10 s on 2 busy cores
def test_torch_compiled_model_and_single_probe_warning():
    # a torch.compile'd model was an aot_autograd "double backward" RuntimeError; the
    # uncompiled module shares the parameters, so the trace is the same
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    data = [(torch.randn(8, 3, dtype=f64), torch.randn(8, 1, dtype=f64))]
    kw = {"max_probes": 6, "tol": 0, "generator": None}
    ref = HessianTrace(net, nn.MSELoss(), data).trace(
        **{**kw, "generator": torch.Generator().manual_seed(0)}
    )
    got = HessianTrace(torch.compile(net), nn.MSELoss(), data).trace(
        **{**kw, "generator": torch.Generator().manual_seed(0)}
    )
    assert got.trace == ref.trace


def test_single_probe_cap_warning():
    # one probe has no standard error: the cap warning said "relative standard error 0 > tol"
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    data = [(torch.randn(8, 3, dtype=f64), torch.randn(8, 1, dtype=f64))]
    with pytest.warns(TraceConvergenceWarning, match="inf > tol"):
        HessianTrace(net, nn.MSELoss(), data).trace(max_probes=1)
