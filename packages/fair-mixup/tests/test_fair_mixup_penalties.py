"""The fair mixup penalty: zero cases, closed forms, bounds, derivative methods, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from papershelf.core.testing import assert_close
from papershelf.fair_mixup import (
    AdversarialDebiasing,
    dp_mixup_penalty,
    eo_mixup_penalty,
    gap_reg_penalty,
    manifold_mixup_penalty,
    mixup_path_penalty,
    path_derivatives,
    sample_t,
)


def _smooth_net(d: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, 1), nn.Sigmoid()).double()


def _pair(b: int = 64, d: int = 5, seed: int = 1, shift: float = 0.7):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(b, d, generator=g, dtype=torch.float64) + shift
    x1 = torch.randn(b, d, generator=g, dtype=torch.float64)
    return x0, x1


def _mu(model, x0, x1, t: float) -> float:
    return float(model(t * x0 + (1 - t) * x1).mean())


def test_zero_for_constant_model_and_identical_groups():
    x0, x1 = _pair()
    const = lambda x: torch.full((x.shape[0],), 0.3, dtype=x.dtype) + 0 * x.sum(1)  # noqa: E731
    assert float(mixup_path_penalty(const, x0, x1, t=0.4)) == 0.0
    net = _smooth_net()
    assert float(mixup_path_penalty(net, x0, x0.clone(), t=0.4).detach()) == 0.0


def test_zero_when_model_ignores_the_coordinates_where_groups_differ():
    x0, x1 = _pair(b=32, d=4, shift=0.0)
    x0[:, 0] += 3.0  # the groups differ only in coordinate 0 ...
    x1[:, 1:] = x0[:, 1:]  # ... and are index-paired identical elsewhere
    torch.manual_seed(3)
    head = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    model = lambda x: head(x[:, 1:])  # noqa: E731 - ignores coordinate 0
    for method in ("autograd", "jvp", "finite_difference"):
        assert abs(float(mixup_path_penalty(model, x0, x1, t=0.3, method=method))) < 1e-12


def test_linear_model_penalty_equals_gapreg_for_every_t():
    x0, x1 = _pair()
    lin = nn.Linear(5, 1).double()
    gap = gap_reg_penalty(lin, x0, x1)
    for t in (0.0, 0.25, 0.9, 1.0):
        assert_close(mixup_path_penalty(lin, x0, x1, t=t), gap, rtol=1e-12)


def test_penalty_with_quadrature_upper_bounds_the_gap():
    x0, x1 = _pair(b=256)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()).double()
    r = mixup_path_penalty(net, x0, x1, t=(torch.arange(256) + 0.5) / 256, n_t=256)
    assert float(r) >= float(gap_reg_penalty(net, x0, x1)) - 1e-12


def test_path_derivative_matches_finite_difference_of_mu():
    x0, x1 = _pair()
    net = _smooth_net()
    h = 1e-5
    for t in (0.2, 0.5, 0.8):
        d = path_derivatives(net, x0, x1, torch.full((64,), t, dtype=torch.float64)).mean()
        fd = (_mu(net, x0, x1, t + h) - _mu(net, x0, x1, t - h)) / (2 * h)
        assert abs(float(d) - fd) < 1e-8
        assert_close(mixup_path_penalty(net, x0, x1, t=t), abs(fd), rtol=1e-6)


def test_jvp_equals_autograd_in_value_and_parameter_gradient():
    x0, x1 = _pair()
    net = _smooth_net()
    grads = {}
    vals = {}
    for method in ("autograd", "jvp"):
        net.zero_grad()
        r = mixup_path_penalty(net, x0, x1, t=torch.tensor([0.2, 0.7]), n_t=2, method=method)
        r.backward()
        vals[method] = r.detach()
        grads[method] = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    assert_close(vals["jvp"], vals["autograd"], rtol=1e-12, atol=0)
    assert_close(grads["jvp"], grads["autograd"], rtol=1e-10, atol=1e-14)


def test_finite_difference_value_is_an_approximation():
    x0, x1 = _pair()
    net = _smooth_net()
    exact = mixup_path_penalty(net, x0, x1, t=0.5)
    approx = mixup_path_penalty(net, x0, x1, t=0.5, method="finite_difference", h=1e-4)
    assert_close(approx, exact, rtol=1e-5)


def _quadratic_model(x):
    # mu(t) is non-monotone along the path: the total variation exceeds the end-point gap.
    return (x[:, 0] - 0.5) ** 2


def test_estimator_is_not_the_per_pair_t_gapreg_pitfall():
    g = torch.Generator().manual_seed(0)
    b = 4000
    x0 = torch.ones(b, 1, dtype=torch.float64) + 0.01 * torch.randn(b, 1, generator=g)
    x1 = torch.zeros(b, 1, dtype=torch.float64) + 0.01 * torch.randn(b, 1, generator=g)
    # mu(t) ~ (t - 0.5)^2: gap ~ 0, total variation ~ 0.5.
    quad = mixup_path_penalty(_quadratic_model, x0, x1, t=(torch.arange(200) + 0.5) / 200, n_t=200)
    assert abs(float(quad) - 0.5) < 0.01
    gap = float(gap_reg_penalty(_quadratic_model, x0, x1))
    assert gap < 0.01
    # The pitfall: one t per pair, |mean| over all pairs -> estimates the gap, not R_DP.
    t_pair = torch.rand(b, generator=g, dtype=torch.float64)
    pitfall = float(path_derivatives(_quadratic_model, x0, x1, t_pair).mean().abs())
    assert pitfall < 0.05
    # Ours, with random t (one per draw), averages to the total variation.
    gen = torch.Generator().manual_seed(1)
    ours = [float(mixup_path_penalty(_quadratic_model, x0, x1, generator=gen)) for _ in range(200)]
    assert abs(sum(ours) / len(ours) - 0.5) < 0.05


def test_stratified_t_reduces_variance():
    x0, x1 = _pair(b=64, d=1, shift=1.0)
    gen = torch.Generator().manual_seed(0)
    f = lambda x: torch.sin(3 * x[:, 0])  # noqa: E731
    one = torch.tensor([float(mixup_path_penalty(f, x0, x1, generator=gen)) for _ in range(300)])
    strat = torch.tensor(
        [float(mixup_path_penalty(f, x0, x1, n_t=8, generator=gen)) for _ in range(300)]
    )
    assert float(strat.var()) < 0.5 * float(one.var())


def test_eo_penalty_is_sum_of_per_label_penalties_with_fixed_t():
    x0, x1 = _pair(b=40)
    g = torch.Generator().manual_seed(5)
    y0 = (torch.rand(40, generator=g) < 0.5).long()
    y1 = (torch.rand(40, generator=g) < 0.5).long()
    net = _smooth_net()
    eo = eo_mixup_penalty(net, x0, y0, x1, y1, t=(0.3, 0.6))
    parts = []
    for lab, t in ((0, 0.3), (1, 0.6)):
        a, b = x0[y0 == lab], x1[y1 == lab]
        m = min(len(a), len(b))
        parts.append(mixup_path_penalty(net, a[:m], b[:m], t=t))
    assert_close(eo, parts[0] + parts[1], rtol=1e-12)
    gap_eo = gap_reg_penalty(net, x0, x1, y0=y0, y1=y1)
    want = sum(abs(float(net(x0[y0 == k]).mean() - net(x1[y1 == k]).mean())) for k in (0, 1))
    assert_close(gap_eo, want, rtol=1e-12)


def test_manifold_penalty_gradient_reaches_the_encoder():
    x0, x1 = _pair()
    enc = nn.Sequential(nn.Linear(5, 8), nn.Tanh()).double()
    head = nn.Sequential(nn.Linear(8, 1), nn.Sigmoid()).double()
    r = manifold_mixup_penalty(head, enc(x0), enc(x1), t=0.4)
    r.backward()
    assert enc[0].weight.grad is not None and float(enc[0].weight.grad.abs().sum()) > 0
    # Same as the input-space penalty of head on the features.
    h0, h1 = enc(x0).detach(), enc(x1).detach()
    assert_close(r.detach(), dp_mixup_penalty(head, h0, h1, t=0.4), rtol=1e-12)


def test_two_gaussian_path_penalty_matches_closed_form():
    # x | A=a ~ N(m_a, 1) in 1-D, f(x) = Phi(w x + b). With independent pairs,
    # x_t ~ N(t m0 + (1-t) m1, t^2 + (1-t)^2), so mu(t) = Phi((w m(t) + b) / sqrt(1 + w^2 s(t)^2)).
    m0, m1, w, b = 1.5, -0.5, 2.0, -1.0
    n = 100_000
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 1, generator=g, dtype=torch.float64) + m0
    x1 = torch.randn(n, 1, generator=g, dtype=torch.float64) + m1
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    f = lambda x: normal.cdf(w * x[:, 0] + b)  # noqa: E731

    def mu(t: float) -> float:
        m, s2 = t * m0 + (1 - t) * m1, t**2 + (1 - t) ** 2
        return float(normal.cdf(torch.tensor((w * m + b) / math.sqrt(1 + w * w * s2))))

    grid = [i / 2000 for i in range(2001)]
    tv = sum(abs(mu(grid[i + 1]) - mu(grid[i])) for i in range(2000))
    est = mixup_path_penalty(f, x0, x1, t=(torch.arange(50) + 0.5) / 50, n_t=50)
    assert abs(float(est) - tv) < 0.01
    gap = abs(mu(1.0) - mu(0.0))
    assert abs(float(gap_reg_penalty(f, x0, x1)) - gap) < 0.01


def test_adversary_penalty_is_minus_its_loss_and_reaches_scores():
    torch.manual_seed(0)
    adv = AdversarialDebiasing("eo", hidden=4)
    s = torch.rand(10, requires_grad=True)
    a = torch.tensor([0, 1] * 5)
    y = torch.tensor([1, 1, 0, 0, 1, 0, 1, 0, 1, 0])
    p = adv.penalty(s, a, y)
    assert_close(p.detach(), -adv.adversary_loss(s, a, y).detach())
    p.backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0


def test_sample_t_single_and_stratified():
    g = torch.Generator().manual_seed(0)
    t = sample_t(4, generator=g)
    assert t.shape == (4,)
    assert all(k / 4 <= float(t[k]) <= (k + 1) / 4 for k in range(4))
    tb = sample_t(1, alpha=0.5, generator=g)
    assert 0.0 <= float(tb) <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x1": torch.zeros(7, 5)}, "same shape"),
        ({"x0": torch.zeros(0, 5), "x1": torch.zeros(0, 5)}, "size zero"),
        ({"n_t": 0}, "n_t"),
        ({"n_t": 9}, "exceeds"),
        ({"method": "magic"}, "method"),
        ({"t": 1.5}, r"\[0, 1\]"),
        ({"alpha": -1.0}, "alpha"),
    ],
)
def test_bad_input_raises(kwargs, match):
    args = {"x0": torch.zeros(8, 5), "x1": torch.ones(8, 5)}
    args.update(kwargs)
    x0, x1 = args.pop("x0"), args.pop("x1")
    with pytest.raises(ValueError, match=match):
        mixup_path_penalty(nn.Linear(5, 1), x0, x1, **args)


def test_model_with_wrong_output_shape_raises():
    with pytest.raises(ValueError, match="model must return scores"):
        mixup_path_penalty(nn.Linear(5, 2), torch.zeros(8, 5), torch.ones(8, 5), t=0.5)
    with pytest.raises(ValueError, match="model must return scores"):
        gap_reg_penalty(nn.Linear(5, 2), torch.zeros(8, 5), torch.ones(8, 5))


def test_eo_missing_cell_raises():
    y0 = torch.zeros(8, dtype=torch.long)
    y1 = torch.tensor([0, 1] * 4)
    with pytest.raises(ValueError, match="label 1"):
        eo_mixup_penalty(nn.Linear(5, 1), torch.zeros(8, 5), y0, torch.ones(8, 5), y1)
    with pytest.raises(ValueError, match="binary"):
        gap_reg_penalty(nn.Linear(5, 1), torch.zeros(8, 5), torch.ones(8, 5), y0=y0 + 2, y1=y1)


# --- user-path audit (0.2.0): option x input combinations that crashed or were wrong ---

_METHOD_NAMES = ("autograd", "jvp", "finite_difference")


@pytest.mark.parametrize("method", _METHOD_NAMES)
def test_penalty_under_no_grad_matches(method):
    # a validation penalty under torch.no_grad(): autograd raised a RuntimeError
    f = _smooth_net()
    x0, x1 = _pair(16)
    ref = dp_mixup_penalty(f, x0, x1, t=0.3, method=method)
    with torch.no_grad():
        got = dp_mixup_penalty(f, x0, x1, t=0.3, method=method)
    assert not got.requires_grad
    assert_close(got, ref.detach(), rtol=1e-12)


@pytest.mark.parametrize("method", _METHOD_NAMES)
def test_constant_model_not_using_x_is_zero(method):
    # the scores ignore x (a bias only, or no parameter at all): autograd raised
    bias = nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
    x0, x1 = _pair(8)
    for f in (lambda x: bias.expand(x.shape[0]), lambda x: x.new_full((x.shape[0], 1), 0.5)):
        assert float(dp_mixup_penalty(f, x0, x1, t=0.4, method=method)) == 0.0


def test_jvp_with_batchnorm_in_train_mode():
    # jvp + BatchNorm in train mode was an unrelated functorch RuntimeError, and the shape
    # check's extra forward updated the running statistics with a batch of one
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(1))
    x0, x1 = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    net(x0)  # materialise the lazy layer
    with pytest.raises(ValueError, match=r"method='jvp'.*eval"):
        dp_mixup_penalty(net, x0, x1, t=0.5, method="jvp")
    net.eval()
    stats = net[1].running_mean.clone()
    a = dp_mixup_penalty(net, x0, x1, t=0.5, method="jvp")
    b = dp_mixup_penalty(net, x0, x1, t=0.5, method="autograd")
    assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert torch.equal(net[1].running_mean, stats)


def test_autograd_inside_torch_func_names_method():
    f = _smooth_net()
    x0, x1 = _pair(8)
    params = {k: v.detach() for k, v in f.named_parameters()}

    def pen(p, method):
        return dp_mixup_penalty(
            lambda x: torch.func.functional_call(f, p, (x,)), x0, x1, t=0.3, method=method
        )

    with pytest.raises(ValueError, match=r"method='autograd'.*jvp"):
        torch.func.grad(lambda p: pen(p, "autograd"))(params)
    g_func = torch.func.grad(lambda p: pen(p, "jvp"))(params)
    f.zero_grad()
    pen(dict(f.named_parameters()), "autograd").backward()
    for k, p in f.named_parameters():
        assert_close(g_func[k], p.grad, rtol=1e-9, atol=1e-12)


def test_finite_difference_refuses_half_precision():
    # h=1e-3 is below bf16 resolution: the penalty silently came out 0
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1), nn.Sigmoid())
    x0, x1 = torch.randn(16, 5), torch.randn(16, 5) + 1.0
    with pytest.raises(ValueError, match="finite_difference"):
        dp_mixup_penalty(
            f.bfloat16(), x0.bfloat16(), x1.bfloat16(), t=0.3, method="finite_difference"
        )
    f.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(ValueError, match="finite_difference"):
            dp_mixup_penalty(f, x0, x1, t=0.3, method="finite_difference")
        assert float(dp_mixup_penalty(f, x0, x1, t=0.3, method="autograd")) > 0


def test_eo_fixed_t_arguments_checked():
    f = _smooth_net()
    x0, x1 = _pair(8)
    y = torch.tensor([0, 1] * 4)
    with pytest.raises(TypeError, match=r"^t must"):
        eo_mixup_penalty(f, x0, y, x1, y, t=0.3)
    with pytest.raises(ValueError, match="n_t"):  # n_t was silently ignored
        eo_mixup_penalty(f, x0, y, x1, y, t=(0.3, 0.6), n_t=4)


def test_finite_difference_with_dropout_in_train_mode():
    # the two evaluations drew different dropout masks: the "derivative" was mask noise / 2h
    # (20.5 against 0.0079 here)
    torch.manual_seed(0)
    f = nn.Sequential(nn.Linear(5, 32), nn.Tanh(), nn.Dropout(0.3), nn.Linear(32, 1)).double()
    x0, x1 = _pair(64)
    torch.manual_seed(1)
    ref = dp_mixup_penalty(f, x0, x1, t=0.3, method="autograd")
    torch.manual_seed(1)
    fd = dp_mixup_penalty(f, x0, x1, t=0.3, method="finite_difference", h=1e-4)
    assert_close(fd, ref, rtol=1e-5)


@pytest.mark.slow  # importing torch._dynamo takes ~10 s on 2 busy cores
def test_torch_compiled_model_with_autograd():
    # the default method on a torch.compile'd model was an aot_autograd "double backward"
    # RuntimeError
    f = _smooth_net()
    x0, x1 = _pair(8)
    ref = dp_mixup_penalty(f, x0, x1, t=0.3)
    (g_ref,) = torch.autograd.grad(ref, f[0].weight)
    got = dp_mixup_penalty(torch.compile(f), x0, x1, t=0.3)
    (g_got,) = torch.autograd.grad(got, f[0].weight)
    assert_close(got, ref, rtol=1e-12)
    assert_close(g_got, g_ref, rtol=1e-12)
