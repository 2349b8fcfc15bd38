import math

import pytest
import torch

from papershelf.core.testing import assert_close
from papershelf.hessian_trace import (
    TraceRegularizer,
    gauss_newton_trace,
    hessian_trace,
    hessian_trace_exact,
    hutchinson_trace,
)

f64 = torch.float64


def quadratic(h):
    return lambda x: 0.5 * x @ h @ x


@pytest.fixture
def sym():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=f64)
    return m + m.T


def test_exact_on_quadratic(sym):
    x = torch.randn(6, dtype=f64)
    assert_close(hessian_trace_exact(quadratic(sym), x), torch.trace(sym), rtol=1e-12)


def test_exact_accepts_dicts_and_lists():
    a = torch.randn(3, dtype=f64)
    b = torch.randn(2, dtype=f64)

    def loss_dict(p):
        return (p["a"] ** 2).sum() * (p["b"] ** 2).sum()

    def loss_list(p):
        return (p[0] ** 2).sum() * (p[1] ** 2).sum()

    # d²/da_i² = 2|b|², d²/db_j² = 2|a|²
    expected = 2 * 3 * b.pow(2).sum() + 2 * 2 * a.pow(2).sum()
    assert_close(hessian_trace_exact(loss_dict, {"a": a, "b": b}), expected, rtol=1e-12)
    assert_close(hessian_trace_exact(loss_list, [a, b]), expected, rtol=1e-12)
    assert_close(
        hutchinson_trace(
            loss_list, (a, b), num_probes=4000, generator=torch.Generator().manual_seed(0)
        )[0],
        expected,
        rtol=0.1,
    )


def test_rademacher_is_exact_on_diagonal_hessians():
    h = torch.diag(torch.tensor([1.0, -2.0, 5.0, 0.5], dtype=f64))
    est, se = hutchinson_trace(quadratic(h), torch.zeros(4, dtype=f64), num_probes=7)
    assert_close(est, torch.trace(h), rtol=1e-12)
    assert float(se) == pytest.approx(0.0, abs=1e-12)


def test_hutchinson_unbiased_within_standard_errors(sym):
    x = torch.randn(6, dtype=f64)
    exact = torch.trace(sym)
    means = []
    for seed in range(20):
        est, se = hutchinson_trace(
            quadratic(sym), x, num_probes=50, generator=torch.Generator().manual_seed(seed)
        )
        assert abs(float(est - exact)) < 4 * float(se)
        means.append(float(est))
    # the mean over seeds is within 3 standard errors of the exact trace
    m = sum(means) / len(means)
    spread = math.sqrt(sum((v - m) ** 2 for v in means) / (len(means) - 1) / len(means))
    assert abs(m - float(exact)) < 3 * spread


def test_rademacher_variance_formula(sym):
    est_var = []
    g = torch.Generator().manual_seed(3)
    x = torch.zeros(6, dtype=f64)
    q = []
    for _ in range(4):
        _est, se = hutchinson_trace(quadratic(sym), x, num_probes=2000, generator=g)
        q.append(float(se) ** 2 * 2000)
    est_var = sum(q) / len(q)
    theory = 2 * (sym.pow(2).sum() - sym.diagonal().pow(2).sum())
    assert est_var == pytest.approx(float(theory), rel=0.1)


def test_seeded_generator_reproduces(sym):
    x = torch.randn(6, dtype=f64)
    a = hutchinson_trace(
        quadratic(sym), x, num_probes=5, generator=torch.Generator().manual_seed(9)
    )
    b = hutchinson_trace(
        quadratic(sym), x, num_probes=5, generator=torch.Generator().manual_seed(9)
    )
    assert torch.equal(a[0], b[0])


def test_batched_probes_equal_one_pass(sym):
    x = torch.randn(6, dtype=f64)
    a = hutchinson_trace(
        quadratic(sym), x, num_probes=12, generator=torch.Generator().manual_seed(1)
    )
    b = hutchinson_trace(
        quadratic(sym), x, num_probes=12, batch_size=5, generator=torch.Generator().manual_seed(1)
    )
    assert_close(a[0], b[0], rtol=1e-12)
    gauss = hutchinson_trace(
        quadratic(sym),
        x,
        num_probes=3000,
        dist="gaussian",
        generator=torch.Generator().manual_seed(1),
    )
    assert abs(float(gauss[0] - torch.trace(sym))) < 4 * float(gauss[1])


def test_gauss_newton_equals_exact_at_zero_loss_for_mlp():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g, dtype=f64)
    w1 = torch.randn(4, 3, generator=g, dtype=f64)
    w2 = torch.randn(1, 4, generator=g, dtype=f64)

    def out(p):
        return (torch.tanh(x @ p[0].T) @ p[1].T).squeeze(1)

    y = out([w1, w2]).detach()  # zero loss at (w1, w2)

    def loss(p):
        return (out(p) - y).pow(2).mean()

    assert_close(gauss_newton_trace(out, [w1, w2]), hessian_trace_exact(loss, [w1, w2]), rtol=1e-10)
    half = gauss_newton_trace(out, [w1, w2], normalization="half_mean")
    assert_close(2 * half, gauss_newton_trace(out, [w1, w2]), rtol=1e-12)


def test_dispatcher(sym):
    x = torch.zeros(6, dtype=f64)
    est, se = hessian_trace(quadratic(sym), x, method="exact")
    assert_close(est, torch.trace(sym), rtol=1e-12)
    assert float(se) == 0.0
    est, se = hessian_trace(
        quadratic(sym), x, n_probes=3, generator=torch.Generator().manual_seed(0)
    )
    assert float(se) > 0


def test_regularizer_gradient_matches_finite_differences():
    """The stochastic trace's gradient, for fixed probes, against central differences."""
    w0 = torch.tensor([0.3, -0.7, 1.1], dtype=f64)

    def loss(p):
        return (p**4).sum() + p[0] * p[1] ** 3

    def total(w, seed):
        return TraceRegularizer(0.1, n_probes=3, generator=torch.Generator().manual_seed(seed))(
            loss, w
        )

    w = w0.clone().requires_grad_(True)
    total(w, 5).backward()
    fd = torch.zeros(3, dtype=f64)
    h = 1e-6
    for i in range(3):
        e = torch.zeros(3, dtype=f64)
        e[i] = h
        fd[i] = (
            total((w0 + e).requires_grad_(True), 5) - total((w0 - e).requires_grad_(True), 5)
        ) / (2 * h)
    assert_close(w.grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: hutchinson_trace(lambda x: x.sum(), torch.zeros(2), num_probes=0), "num_probes"),
        (lambda: hutchinson_trace(lambda x: x.sum(), torch.zeros(2), dist="cauchy"), "dist"),
        (lambda: hutchinson_trace(lambda x: x * 2, torch.zeros(2)), "scalar"),
        (
            lambda: hessian_trace_exact(lambda x: x.sum(), torch.zeros(10), max_params=5),
            "max_params",
        ),
        (lambda: hessian_trace(lambda x: x.sum(), torch.zeros(2), method="lanczos"), "method"),
        (
            lambda: gauss_newton_trace(lambda x: x, torch.zeros(2), normalization="x"),
            "normalization",
        ),
        (lambda: hutchinson_trace(lambda x: x.sum(), [], num_probes=1), "at least one"),
        (lambda: TraceRegularizer(-1.0), "lam"),
        (
            lambda: hutchinson_trace(lambda x: x.sum(), torch.zeros(2), create_graph=True),
            "require grad",
        ),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types():
    with pytest.raises(TypeError, match="params"):
        hutchinson_trace(lambda x: x, "abc")
    with pytest.raises(TypeError, match="num_probes"):
        hutchinson_trace(lambda x: x.sum(), torch.zeros(2), num_probes=2.5)
