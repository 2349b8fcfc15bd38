"""RINCE: parity with the official code, limits, closed forms, numerics, layouts, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from papershelf.core.testing import assert_close
from papershelf.robust_infonce import (
    RINCELoss,
    info_nce_loss,
    moco_rince_loss,
    rince_from_logits,
    rince_loss,
)

HERE = Path(__file__).parent
REFERENCE = json.loads((HERE / "official_reference.json").read_text())


def unit_pairs(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixture's inputs: a ~ N(0, 1), b = a + 0.5 N(0, 1), rows L2-normalised, float64."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d))
    b = a + 0.5 * rng.standard_normal((n, d))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)


def loss_and_grads(fn, z1, z2):
    loss = fn(z1, z2)
    g1, g2 = torch.autograd.grad(loss, (z1, z2), allow_unused=True)
    return loss, g1, (torch.zeros_like(z2) if g2 is None else g2)


def naive_rince(z1, z2, q, lam, t):
    """Per-anchor RINCE by the definition, float64, without log-space tricks (for closed forms)."""
    z = torch.cat([z1, z2])
    n = z1.shape[0]
    sim = z @ z.T / t
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    pos = sim[torch.arange(2 * n), partner]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), -math.inf)
    big_s = sim.exp().sum(1)
    return pos, big_s


# ----------------------------------------------------------------------------- official parity
@pytest.mark.parametrize(
    "case",
    REFERENCE["rince_simclr"],
    ids=lambda c: f"N{c['N']}-t{c['temperature']}-q{c['q']}-l{c['lam']}",
)
def test_parity_with_official_simclr_loss(case):
    z1, z2 = unit_pairs(case["N"], case["d"], case["seed"])
    fn = lambda a, b: rince_loss(  # noqa: E731
        a, b, q=case["q"], lam=case["lam"], temperature=case["temperature"], normalize=False
    )
    loss, g1, g2 = loss_and_grads(fn, z1, z2)
    assert loss.item() == pytest.approx(case["loss"], rel=1e-10, abs=1e-10)
    assert torch.cat([g1, g2]).norm().item() == pytest.approx(case["grad_norm"], rel=1e-10)
    assert_close(g1[0], case["grad_z1_row0"], rtol=1e-10, atol=1e-12)
    assert_close(g2[-1], case["grad_z2_rowlast"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "case", REFERENCE["rince_moco"], ids=lambda c: f"N{c['N']}-T{c['temperature']}-q{c['q']}"
)
def test_parity_with_official_moco_v3_loss(case):
    z1, z2 = unit_pairs(case["N"], case["d"], case["seed"])
    fn = lambda a, b: moco_rince_loss(  # noqa: E731
        a, b, q=case["q"], lam=case["lam"], temperature=case["temperature"]
    )
    loss, g1, g2 = loss_and_grads(fn, z1, z2)
    assert loss.item() == pytest.approx(case["loss"], rel=1e-10, abs=1e-10)
    assert torch.cat([g1, g2]).norm().item() == pytest.approx(case["grad_norm"], rel=1e-10)
    assert_close(g1[0], case["grad_z1_row0"], rtol=1e-10, atol=1e-12)
    assert float(g2.abs().max()) == 0.0  # keys are momentum-encoder outputs: no gradient


@pytest.mark.parametrize(
    "case", REFERENCE["pml_ntxent"], ids=lambda c: f"N{c['N']}-t{c['temperature']}"
)
def test_info_nce_equals_pytorch_metric_learning_ntxent(case):
    # reference values from pytorch-metric-learning SelfSupervisedLoss(NTXentLoss(t)) on these
    # inputs; PML normalises internally (cosine similarity), hence normalize=True for the gradients
    z1, z2 = unit_pairs(case["N"], case["d"], case["seed"])
    t = case["temperature"]
    for fn in (
        lambda a, b: info_nce_loss(a, b, temperature=t),
        lambda a, b: rince_loss(a, b, q=0.0, lam=0.3, temperature=t) - math.log(0.3),
    ):
        loss, g1, g2 = loss_and_grads(fn, z1, z2)
        assert loss.item() == pytest.approx(case["loss"], rel=1e-10)
        assert torch.cat([g1, g2]).norm().item() == pytest.approx(case["grad_norm"], rel=1e-10)
        assert_close(g1[0], case["grad_z1_row0"], rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- limits and closed forms
def test_q_zero_is_exact_infonce_plus_log_lambda():
    z1, z2 = unit_pairs(16, 8, 3)
    lam = 0.05
    a = rince_loss(z1, z2, q=0.0, lam=lam, temperature=0.3, normalize=False)
    b = info_nce_loss(z1, z2, temperature=0.3, normalize=False)
    assert a.item() == pytest.approx(b.item() + math.log(lam), rel=1e-14)


@pytest.mark.parametrize("q", [1e-2, 1e-3, 1e-4])
def test_small_q_approaches_infonce_in_value_and_gradient(q):
    z1, z2 = unit_pairs(16, 8, 4)
    lam = 0.01
    fn = lambda a, b: rince_loss(a, b, q=q, lam=lam, temperature=0.5, normalize=False)  # noqa: E731
    ref = lambda a, b: info_nce_loss(a, b, temperature=0.5, normalize=False)  # noqa: E731
    loss, g1, g2 = loss_and_grads(fn, z1, z2)
    rloss, r1, r2 = loss_and_grads(ref, z1, z2)
    # the error is O(q): ell = a - s+ + q (a^2 - s+^2) / 2 + O(q^2)
    assert abs(loss.item() - math.log(lam) - rloss.item()) < 20 * q
    assert float((torch.cat([g1, g2]) - torch.cat([r1, r2])).abs().max()) < 50 * q


def test_tiny_q_has_no_cancellation():
    z1, z2 = unit_pairs(8, 4, 5)
    q, lam, t = 1e-8, 0.01, 0.5
    pos, big_s = naive_rince(z1.detach(), z2.detach(), q, lam, t)
    a = torch.log(lam * big_s)
    # series of (e^{qa} - e^{q s+}) / q, exact to O(q^2) in float64
    series = (a - pos) + q * (a**2 - pos**2) / 2
    ours = rince_loss(z1, z2, q=q, lam=lam, temperature=t, normalize=False, reduction="none")
    assert_close(ours, series, rtol=1e-12, atol=1e-12)
    naive = (-(pos.exp() ** q) / q + (lam * big_s) ** q / q).mean()
    # the official form loses ~8 digits here
    assert abs(naive.item() - series.mean().item()) > 1e3 * abs(
        ours.mean().item() - series.mean().item()
    )


def test_q_one_closed_form():
    z1, z2 = unit_pairs(12, 6, 6)
    lam, t = 0.2, 0.4
    pos, big_s = naive_rince(z1.detach(), z2.detach(), 1.0, lam, t)
    neg = big_s - pos.exp()
    closed = -(1 - lam) * pos.exp() + lam * neg
    ours = rince_loss(z1, z2, q=1.0, lam=lam, temperature=t, normalize=False, reduction="none")
    assert_close(ours, closed, rtol=1e-12, atol=1e-12)


def test_lambda_one_is_s_to_the_q_times_gce():
    z1, z2 = unit_pairs(12, 6, 7)
    q, t = 0.3, 0.5
    pos, big_s = naive_rince(z1.detach(), z2.detach(), q, 1.0, t)
    p = pos.exp() / big_s
    gce = (1 - p**q) / q
    ours = rince_loss(z1, z2, q=q, lam=1.0, temperature=t, normalize=False, reduction="none")
    assert_close(ours, big_s**q * gce, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["simclr", "cross"])
@pytest.mark.parametrize("q", [0.0, 0.5, 1.0])
def test_gradcheck(layout, q):
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    z2 = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    fn = lambda a, b: rince_loss(a, b, q=q, lam=0.1, temperature=0.5, layout=layout)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (z1, z2))


def test_gradcheck_logits_front_end():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 7, dtype=torch.float64, generator=g, requires_grad=True)
    target = torch.tensor([0, 2, 4, 6])
    mask = torch.zeros(4, 7, dtype=torch.bool)
    mask[0, 1] = mask[3, 5] = True
    fn = lambda x: rince_from_logits(x, target, q=0.4, lam=0.05, mask=mask)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (logits,))


# ----------------------------------------------------------------------------- layouts and invariances
def test_logits_front_end_with_mask_equals_simclr_layout():
    z1, z2 = unit_pairs(10, 5, 8)
    n, t = 10, 0.3
    z = torch.cat([z1, z2])
    logits = z @ z.T / t
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    mask = torch.eye(2 * n, dtype=torch.bool)
    a = rince_from_logits(logits, target, q=0.5, lam=0.01, mask=mask, reduction="none")
    b = rince_loss(z1, z2, q=0.5, lam=0.01, temperature=t, normalize=False, reduction="none")
    assert_close(a, b, rtol=1e-13, atol=1e-13)


def test_cross_layout_matches_its_definition():
    z1, z2 = unit_pairs(10, 5, 9)
    t, q, lam = 0.3, 0.5, 0.02
    a = rince_from_logits(z1 @ z2.T / t, q=q, lam=lam, reduction="none")
    b = rince_from_logits(z2 @ z1.T / t, q=q, lam=lam, reduction="none")
    ours = rince_loss(
        z1, z2, q=q, lam=lam, temperature=t, normalize=False, layout="cross", reduction="none"
    )
    assert_close(ours, torch.cat([a, b]), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("layout", ["simclr", "cross"])
def test_invariances(layout):
    z1, z2 = unit_pairs(12, 6, 10)
    kw = dict(q=0.5, lam=0.01, temperature=0.4, layout=layout)
    base = rince_loss(z1, z2, **kw)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    assert rince_loss(z1[perm], z2[perm], **kw).item() == pytest.approx(base.item(), rel=1e-12)
    assert rince_loss(z2, z1, **kw).item() == pytest.approx(base.item(), rel=1e-12)
    scale = torch.rand(12, 1, dtype=torch.float64) * 5 + 0.1
    assert rince_loss(z1 * scale, z2 * 3.0, **kw).item() == pytest.approx(base.item(), rel=1e-12)
    none = rince_loss(z1, z2, reduction="none", **kw)
    assert none.shape == (24,)
    assert none.mean().item() == pytest.approx(base.item(), rel=1e-12)
    assert rince_loss(z1, z2, reduction="sum", **kw).item() == pytest.approx(
        none.sum().item(), rel=1e-12
    )


def test_module_matches_function_and_reprs():
    z1, z2 = unit_pairs(8, 4, 11)
    mod = RINCELoss(q=0.3, lam=0.02, temperature=0.2, layout="cross")
    assert (
        mod(z1, z2).item()
        == rince_loss(z1, z2, q=0.3, lam=0.02, temperature=0.2, layout="cross").item()
    )
    assert "q=0.3" in repr(mod)


# ----------------------------------------------------------------------------- numerics
def clustered(n: int, d: int, seed: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    center = torch.randn(1, d, generator=g)
    a = F.normalize(center + 0.01 * torch.randn(n, d, generator=g), dim=1)
    b = F.normalize(center + 0.01 * torch.randn(n, d, generator=g), dim=1)
    return a.to(dtype), b.to(dtype)


def test_small_temperature_is_finite_and_equals_float64_where_official_overflows():
    z1, z2 = clustered(128, 16, 0)
    t, q, lam = 0.01, 0.5, 0.01
    ours = rince_loss(z1, z2, q=q, lam=lam, temperature=t)
    ref = rince_loss(z1.double(), z2.double(), q=q, lam=lam, temperature=t)
    assert torch.isfinite(ours)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-4)
    assert abs(ref.item()) > 1e19  # the true value is huge, but representable in float32
    # the official raw-exp formulation in float32 (mask excludes self and partner; pos re-added)
    z = torch.cat([z1, z2])
    sim = torch.exp(z @ z.T / t)
    mask = ~torch.eye(256, dtype=torch.bool)
    mask[torch.arange(256), torch.cat([torch.arange(128, 256), torch.arange(128)])] = False
    neg = (sim * mask).sum(1)
    pos = torch.exp((z1 * z2).sum(1) / t).repeat(2)
    official = (-(pos**q) / q).mean() + ((lam * (pos + neg)) ** q / q).mean()
    assert not torch.isfinite(official)


def test_bf16_autocast_stays_finite_and_close():
    z1, z2 = clustered(64, 16, 1)
    ref = rince_loss(z1.double(), z2.double(), q=0.5, lam=0.01, temperature=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lin = torch.nn.Linear(16, 16, dtype=torch.float32)
        torch.nn.init.eye_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
        h1, h2 = lin(z1), lin(z2)
        assert h1.dtype == torch.bfloat16
        loss = rince_loss(h1, h2, q=0.5, lam=0.01, temperature=0.05)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(ref.item(), rel=0.05)


def test_bf16_inputs_are_computed_in_float32():
    z1, z2 = unit_pairs(16, 8, 12)
    a, b = z1.detach().bfloat16(), z2.detach().bfloat16()
    out = rince_loss(a, b, q=0.5, lam=0.01, temperature=0.1)
    assert out.dtype == torch.bfloat16
    ref = rince_loss(a.double(), b.double(), q=0.5, lam=0.01, temperature=0.1)
    assert out.item() == pytest.approx(ref.item(), rel=1e-2)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(q=-0.1), "q"),
        (dict(q=1.5), "q"),
        (dict(lam=0.0), "lam"),
        (dict(lam=-1.0), "lam"),
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-0.5), "temperature"),
        (dict(layout="moco"), "layout"),
        (dict(reduction="avg"), "reduction"),
    ],
)
def test_bad_hyperparameters_name_the_argument(kwargs, match):
    z1, z2 = unit_pairs(4, 3, 0)
    with pytest.raises(ValueError, match=match):
        rince_loss(z1, z2, **kwargs)
    if match in ("q", "lam", "temperature", "layout", "reduction"):
        with pytest.raises(ValueError, match=match):
            RINCELoss(**kwargs)


def test_bad_tensors():
    z1, z2 = unit_pairs(4, 3, 0)
    with pytest.raises(ValueError, match="same shape"):
        rince_loss(z1, z2[:3])
    with pytest.raises(ValueError, match="N >= 2"):
        rince_loss(z1[:1], z2[:1])
    with pytest.raises(ValueError, match="z1"):
        rince_loss(z1[0], z2[0])
    with pytest.raises(TypeError, match="z2"):
        rince_loss(z1, z2.numpy(force=True))
    bad = z1.detach().clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rince_loss(bad, z2)
    with pytest.raises(TypeError, match="q"):
        rince_loss(z1, z2, q=None)


def test_logits_front_end_errors():
    x = torch.randn(4, 6)
    with pytest.raises(ValueError, match="positive"):
        rince_from_logits(x, torch.tensor([0, 1, 2, 3]), mask=torch.eye(4, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="target"):
        rince_from_logits(x, torch.tensor([0, 1, 2, 9]))
    with pytest.raises(ValueError, match="K >= B"):
        rince_from_logits(torch.randn(6, 4))
    with pytest.raises(ValueError, match="mask"):
        rince_from_logits(x, mask=torch.zeros(4, 6))


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_info_nce_equals_live_pytorch_metric_learning(temperature):
    """Against the installed peer library, not only the committed numbers above."""
    from pytorch_metric_learning.losses import NTXentLoss, SelfSupervisedLoss

    g = torch.Generator().manual_seed(7)
    z1 = torch.randn(12, 6, dtype=torch.float64, generator=g)
    z2 = (z1 + 0.3 * torch.randn(12, 6, dtype=torch.float64, generator=g)).requires_grad_()
    z1 = z1.requires_grad_()
    peer = SelfSupervisedLoss(NTXentLoss(temperature=temperature), symmetric=True)
    ours, o1, o2 = loss_and_grads(lambda a, b: info_nce_loss(a, b, temperature=temperature), z1, z2)
    theirs, t1, t2 = loss_and_grads(lambda a, b: peer(a, b), z1, z2)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-10)
    assert_close(o1, t1, rtol=1e-8, atol=1e-12)
    assert_close(o2, t2, rtol=1e-8, atol=1e-12)
