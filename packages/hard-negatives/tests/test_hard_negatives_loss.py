"""HCL / DCL: parity with the official code, special cases, numerics, clamp collapse, bad input."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from papershelf.core.testing import assert_close
from papershelf.hard_negatives import (
    ClampCollapseWarning,
    DebiasedContrastiveLoss,
    HardNegativeLoss,
    beta_schedule,
    debiased_loss,
    hcl_from_logits,
    hcl_loss,
    nt_xent_loss,
)
from papershelf.hard_negatives._loss import ClampCollapseError

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
    g1, g2 = torch.autograd.grad(loss, (z1, z2))
    return loss, g1, g2


def simclr_logits(z1, z2, t):
    """(positive logits (2N,), negative logits (2N, 2N-2)) of the official layout, by hand."""
    n = z1.shape[0]
    z = torch.cat([z1, z2])
    sim = z @ z.T / t
    keep = ~torch.eye(2 * n, dtype=torch.bool)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    keep[torch.arange(2 * n), partner] = False
    return sim[torch.arange(2 * n), partner], sim[keep].view(2 * n, -1)


# ----------------------------------------------------------------------------- official parity
def _hcl_id(c):
    return f"N{c['N']}-t{c['temperature']}-b{c['beta']}-tp{c['tau_plus']}-{c['estimator']}"


@pytest.mark.parametrize("case", REFERENCE["hcl"], ids=_hcl_id)
def test_parity_with_official_hcl(case):
    z1, z2 = unit_pairs(case["N"], case["d"], case["seed"])

    def fn(a, b):
        return hcl_loss(
            a,
            b,
            beta=case["beta"],
            tau_plus=case["tau_plus"],
            temperature=case["temperature"],
            estimator=case["estimator"],
            normalize=False,
            clamp=True,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClampCollapseWarning)  # the t = 0.1 case is the collapse
        loss, g1, g2 = loss_and_grads(fn, z1, z2)
    assert loss.item() == pytest.approx(case["loss"], rel=1e-10, abs=1e-14)
    assert torch.cat([g1, g2]).norm().item() == pytest.approx(
        case["grad_norm"], rel=1e-10, abs=1e-14
    )
    assert_close(g1[0], case["grad_z1_row0"], rtol=1e-10, atol=1e-13)
    assert_close(g2[-1], case["grad_z2_rowlast"], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(
    "case", REFERENCE["dcl"], ids=lambda c: f"N{c['N']}-tp{c['tau_plus']}-{c['debiased']}"
)
def test_parity_with_official_dcl(case):
    z1, z2 = unit_pairs(case["N"], case["d"], case["seed"])
    tp = case["tau_plus"] if case["debiased"] else 0.0

    def fn(a, b):
        if case["debiased"]:
            return debiased_loss(
                a, b, tau_plus=tp, temperature=case["temperature"], normalize=False, clamp=True
            )
        return nt_xent_loss(a, b, temperature=case["temperature"], normalize=False)

    loss, g1, g2 = loss_and_grads(fn, z1, z2)
    assert loss.item() == pytest.approx(case["loss"], rel=1e-10)
    assert torch.cat([g1, g2]).norm().item() == pytest.approx(case["grad_norm"], rel=1e-10)
    assert_close(g1[0], case["grad_z1_row0"], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(
    "case", REFERENCE["pml_ntxent"], ids=lambda c: f"N{c['N']}-t{c['temperature']}"
)
def test_nt_xent_equals_pytorch_metric_learning(case):
    # reference values from pytorch-metric-learning SelfSupervisedLoss(NTXentLoss(t)) on these
    # inputs; PML normalises internally, hence normalize=True for the gradients
    z1, z2 = unit_pairs(case["N"], case["d"], case["seed"])
    loss, g1, g2 = loss_and_grads(
        lambda a, b: nt_xent_loss(a, b, temperature=case["temperature"]), z1, z2
    )
    assert loss.item() == pytest.approx(case["loss"], rel=1e-10)
    assert torch.cat([g1, g2]).norm().item() == pytest.approx(case["grad_norm"], rel=1e-10)
    assert_close(g1[0], case["grad_z1_row0"], rtol=1e-9, atol=1e-13)


# ----------------------------------------------------------------------------- special cases
def test_beta_zero_tau_zero_and_easy_equal_nt_xent():
    z1, z2 = unit_pairs(16, 8, 2)
    ref, r1, r2 = loss_and_grads(lambda a, b: nt_xent_loss(a, b, temperature=0.3), z1, z2)
    for fn in (
        lambda a, b: hcl_loss(a, b, beta=0.0, tau_plus=0.0, temperature=0.3),
        lambda a, b: hcl_loss(a, b, beta=3.0, tau_plus=0.4, temperature=0.3, estimator="easy"),
    ):
        loss, g1, g2 = loss_and_grads(fn, z1, z2)
        assert loss.item() == pytest.approx(ref.item(), rel=1e-13)
        assert_close(torch.cat([g1, g2]), torch.cat([r1, r2]), rtol=1e-11, atol=1e-14)


def test_beta_zero_equals_closed_form_dcl():
    z1, z2 = unit_pairs(16, 8, 3)
    t, tp = 0.5, 0.1
    pos, neg = simclr_logits(z1.detach(), z2.detach(), t)
    m = neg.shape[1]
    ng = (neg.exp().sum(1) - tp * m * pos.exp()) / (1 - tp)
    ng = ng.clamp(min=m * math.exp(-1 / t))
    closed = -torch.log(pos.exp() / (pos.exp() + ng))
    ours = hcl_loss(z1, z2, beta=0.0, tau_plus=tp, temperature=t, reduction="none")
    assert_close(ours, closed, rtol=1e-12, atol=1e-14)
    assert_close(debiased_loss(z1, z2, tau_plus=tp, temperature=t), closed.mean(), rtol=1e-12)


def test_large_beta_approaches_worst_case_negative():
    z1, z2 = unit_pairs(16, 8, 4)
    t = 0.5
    pos, neg = simclr_logits(z1.detach(), z2.detach(), t)
    m = neg.shape[1]
    worst = torch.logaddexp(pos, math.log(m) + neg.max(1).values) - pos
    far = hcl_loss(z1, z2, beta=1e4, tau_plus=0.0, temperature=t, clamp=False, reduction="none")
    assert_close(far, worst, rtol=1e-6, atol=1e-6)


def test_logits_front_end_equals_two_view_layout():
    z1, z2 = unit_pairs(10, 5, 5)
    t = 0.4
    pos, neg = simclr_logits(z1, z2, t)
    a = hcl_from_logits(pos, neg, beta=1.5, tau_plus=0.05, temperature=t, reduction="none")
    b = hcl_loss(z1, z2, beta=1.5, tau_plus=0.05, temperature=t, normalize=False, reduction="none")
    assert_close(a, b, rtol=1e-13, atol=1e-14)
    # a mask that drops padding columns equals the unpadded logits
    padded = torch.cat([neg, torch.full((20, 3), 7.0, dtype=neg.dtype)], 1)
    mask = torch.ones_like(padded, dtype=torch.bool)
    mask[:, -3:] = False
    c = hcl_from_logits(
        pos, padded, beta=1.5, tau_plus=0.05, temperature=t, neg_mask=mask, reduction="none"
    )
    assert_close(c, a, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(("beta", "tau_plus"), [(1.0, 0.1), (0.0, 0.1), (2.0, 0.0)])
def test_gradcheck(beta, tau_plus):
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    z2 = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)

    def fn(a, b):
        return hcl_loss(a, b, beta=beta, tau_plus=tau_plus, temperature=0.5)

    assert torch.autograd.gradcheck(fn, (z1, z2))


def test_gradcheck_logits_front_end():
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    neg = torch.randn(4, 6, dtype=torch.float64, generator=g, requires_grad=True)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 2] = False
    assert torch.autograd.gradcheck(
        lambda p, x: hcl_from_logits(p, x, beta=1.0, tau_plus=0.05, temperature=0.5, neg_mask=mask),
        (pos, neg),
    )


def test_detached_weights_change_gradient_not_value():
    z1, z2 = unit_pairs(8, 4, 6)
    t, beta, tp = 0.5, 1.0, 0.1
    a, a1, _ = loss_and_grads(lambda x, y: hcl_loss(x, y, beta=beta, tau_plus=tp), z1, z2)
    b, b1, b2 = loss_and_grads(
        lambda x, y: hcl_loss(x, y, beta=beta, tau_plus=tp, detach_weights=True), z1, z2
    )
    assert a.item() == pytest.approx(b.item(), rel=1e-14)
    assert float((a1 - b1).abs().max()) > 1e-6

    # by hand: R = sum_j w_ij e^{s_ij} with w = e^{beta s} / mean e^{beta s} held constant
    def by_hand(x, y):
        pos, neg = simclr_logits(F.normalize(x, dim=1), F.normalize(y, dim=1), t)
        w = (beta * neg).exp()
        w = (w / w.mean(1, keepdim=True)).detach()
        m = neg.shape[1]
        ng = ((w * neg.exp()).sum(1) - tp * m * pos.exp()) / (1 - tp)
        ng = ng.clamp(min=m * math.exp(-1 / t))
        return (-torch.log(pos.exp() / (pos.exp() + ng))).mean()

    c, c1, c2 = loss_and_grads(by_hand, z1, z2)
    assert c.item() == pytest.approx(b.item(), rel=1e-12)
    assert_close(torch.cat([b1, b2]), torch.cat([c1, c2]), rtol=1e-10, atol=1e-14)


def test_invariances_and_reductions():
    z1, z2 = unit_pairs(12, 6, 7)
    kw = dict(beta=1.0, tau_plus=0.1, temperature=0.5)
    base = hcl_loss(z1, z2, **kw)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    assert hcl_loss(z1[perm], z2[perm], **kw).item() == pytest.approx(base.item(), rel=1e-12)
    assert hcl_loss(z2, z1, **kw).item() == pytest.approx(base.item(), rel=1e-12)
    scale = torch.rand(12, 1, dtype=torch.float64) * 5 + 0.1
    assert hcl_loss(z1 * scale, z2 * 2.0, **kw).item() == pytest.approx(base.item(), rel=1e-12)
    none = hcl_loss(z1, z2, reduction="none", **kw)
    assert none.shape == (24,)
    assert none.mean().item() == pytest.approx(base.item(), rel=1e-12)
    assert hcl_loss(z1, z2, reduction="sum", **kw).item() == pytest.approx(
        none.sum().item(), rel=1e-12
    )


def test_modules_match_functions():
    z1, z2 = unit_pairs(8, 4, 8)
    assert (
        HardNegativeLoss(beta=2.0, tau_plus=0.05)(z1, z2).item()
        == hcl_loss(z1, z2, beta=2.0, tau_plus=0.05).item()
    )
    assert (
        DebiasedContrastiveLoss(tau_plus=0.05)(z1, z2).item()
        == debiased_loss(z1, z2, tau_plus=0.05).item()
    )
    assert "beta=2.0" in repr(HardNegativeLoss(beta=2.0))


# ----------------------------------------------------------------------------- numerics
def clustered(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    center = torch.randn(1, d, generator=g)
    a = F.normalize(center + 0.05 * torch.randn(n, d, generator=g), dim=1)
    b = F.normalize(center + 0.05 * torch.randn(n, d, generator=g), dim=1)
    return a, b


def test_small_temperature_large_beta_is_finite_where_official_overflows():
    z1, z2 = clustered(64, 16, 0)
    t, beta, tp = 0.1, 8.0, 0.0
    ours = hcl_loss(z1, z2, beta=beta, tau_plus=tp, temperature=t)
    ref = hcl_loss(z1.double(), z2.double(), beta=beta, tau_plus=tp, temperature=t)
    assert torch.isfinite(ours)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    # the official raw-exp estimator in float32
    pos, neg = simclr_logits(z1, z2, t)
    neg, pos = neg.exp(), pos.exp()
    imp = (beta * neg.log()).exp()
    reweight = (imp * neg).sum(-1) / imp.mean(-1)
    official = (-torch.log(pos / (pos + reweight))).mean()
    assert not torch.isfinite(official)


def test_bf16_autocast_stays_finite_and_close():
    z1, z2 = clustered(64, 16, 1)
    ref = hcl_loss(z1.double(), z2.double(), beta=8.0, tau_plus=0.0, temperature=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lin = torch.nn.Linear(16, 16)
        torch.nn.init.eye_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
        h1, h2 = lin(z1), lin(z2)
        assert h1.dtype == torch.bfloat16
        loss = hcl_loss(h1, h2, beta=8.0, tau_plus=0.0, temperature=0.1)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(ref.item(), rel=0.05)


def test_clamp_collapse_returns_near_zero_and_warns_on_every_call():
    case = next(c for c in REFERENCE["hcl"] if c["temperature"] == 0.1 and c["N"] == 64)
    z1, z2 = unit_pairs(case["N"], case["d"], case["seed"])
    kw = dict(beta=0.5, tau_plus=0.1, temperature=0.1, normalize=False)
    for _ in range(3):  # not once per process: every collapsed call warns (issue 22.4)
        with pytest.warns(ClampCollapseWarning, match="clamp"):
            loss = hcl_loss(z1, z2, **kw)
        assert 0 <= loss.item() < 1e-5
    module = HardNegativeLoss(**kw)
    with warnings.catch_warnings(record=True) as caught:
        for _ in range(3):
            module(z1, z2)
    assert sum(issubclass(w.category, ClampCollapseWarning) for w in caught) == 3
    with pytest.raises(ClampCollapseError, match=r"temperature=0\.1"):
        hcl_loss(z1, z2, on_collapse="raise", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hcl_loss(z1, z2, on_collapse="ignore", **kw)
        hcl_loss(z1, z2, beta=0.5, tau_plus=0.1, temperature=0.5, normalize=False)  # no collapse


def test_clamp_collapse_on_realistic_views_stalls_training_visibly():
    """t <= 0.1 and views at cosine ~0.96: the official loss and gradient are exactly the floor's."""
    g = torch.Generator().manual_seed(3)
    a = F.normalize(torch.randn(128, 32, generator=g, dtype=torch.float64), dim=1)
    b = F.normalize(a + 0.05 * torch.randn(128, 32, generator=g, dtype=torch.float64), dim=1)
    assert (a * b).sum(1).mean().item() == pytest.approx(0.96, abs=0.02)
    z1, z2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    with pytest.warns(ClampCollapseWarning):
        loss = hcl_loss(z1, z2, beta=1.0, tau_plus=0.1, temperature=0.1, normalize=False)
    loss.backward()
    assert loss.item() < 1e-3 and z1.grad.abs().max().item() < 1e-3
    # the same views without debiasing train normally
    z1.grad = None
    hcl_loss(z1, z2, beta=1.0, tau_plus=0.0, temperature=0.1, normalize=False).backward()
    assert z1.grad.abs().max().item() > 1e-2


def test_numpy_and_tensor_scalars_as_settings():
    z1, z2 = unit_pairs(8, 4, 0)
    ref = hcl_loss(z1, z2, beta=1.0, tau_plus=0.1, temperature=0.5)
    for cast in (np.float32, np.float64, lambda v: torch.tensor(v), lambda v: np.array(v)):
        kw = dict(beta=cast(1.0), tau_plus=cast(0.1), temperature=cast(0.5))
        assert hcl_loss(z1, z2, **kw).item() == pytest.approx(ref.item(), rel=1e-6)
        assert HardNegativeLoss(**kw)(z1, z2).item() == pytest.approx(ref.item(), rel=1e-6)
    assert beta_schedule(np.float32(2.0), np.int64(1), np.int64(18)) == 2.0
    with pytest.raises(TypeError, match="temperature"):
        hcl_loss(z1, z2, temperature=torch.tensor(0.5, requires_grad=True))
    with pytest.raises(TypeError, match="beta"):
        hcl_loss(z1, z2, beta=True)
    with pytest.raises(ValueError, match="tau_plus"):
        hcl_loss(z1, z2, tau_plus=float("nan"))


def test_beta_schedule_matches_official_anneal_loop():
    beta0, epochs, n_steps = 2.0, 48, 9
    # replay the official loop: beta changes after epochs that are multiples of epochs // n_steps
    betas = iter(np.linspace(beta0, 0, n_steps))
    beta, used = beta0, []
    for epoch in range(1, epochs + 1):
        used.append(beta)
        if epoch % (epochs // n_steps) == 0:
            beta = next(betas)
    ours = [beta_schedule(beta0, e, epochs) for e in range(1, epochs + 1)]
    assert_close(np.array(ours), np.array(used), rtol=1e-12, atol=1e-12)
    assert len(set(ours)) == n_steps
    assert ours[-1] == 0.0


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(tau_plus=1.0), "tau_plus"),
        (dict(tau_plus=-0.1), "tau_plus"),
        (dict(beta=-1.0), "beta"),
        (dict(temperature=0.0), "temperature"),
        (dict(estimator="medium"), "estimator"),
        (dict(reduction="avg"), "reduction"),
    ],
)
def test_bad_hyperparameters_name_the_argument(kwargs, match):
    z1, z2 = unit_pairs(4, 3, 0)
    with pytest.raises(ValueError, match=match):
        hcl_loss(z1, z2, **kwargs)
    with pytest.raises(ValueError, match=match):
        HardNegativeLoss(**kwargs)


def test_bad_tensors():
    z1, z2 = unit_pairs(4, 3, 0)
    with pytest.raises(ValueError, match="same shape"):
        hcl_loss(z1, z2[:3])
    with pytest.raises(ValueError, match="N >= 2"):
        hcl_loss(z1[:1], z2[:1])
    with pytest.raises(TypeError, match="z1"):
        hcl_loss([[1.0]], z2)
    bad = z2.detach().clone()
    bad[1, 1] = float("inf")
    with pytest.raises(ValueError, match="z2"):
        hcl_loss(z1, bad)
    with pytest.raises(ValueError, match="temperature"):
        hcl_from_logits(torch.randn(4), torch.randn(4, 6))  # clamp needs the temperature
    with pytest.raises(ValueError, match="neg_mask"):
        hcl_from_logits(
            torch.randn(4),
            torch.randn(4, 6),
            temperature=0.5,
            neg_mask=torch.zeros(4, 6, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="same B"):
        hcl_from_logits(torch.randn(3), torch.randn(4, 6), temperature=0.5)
    with pytest.raises(ValueError, match="epoch"):
        beta_schedule(1.0, 0, 90)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_equals_live_pytorch_metric_learning(temperature):
    """Against the installed peer library, not only the committed numbers above."""
    from pytorch_metric_learning.losses import NTXentLoss, SelfSupervisedLoss

    g = torch.Generator().manual_seed(7)
    z1 = torch.randn(12, 6, dtype=torch.float64, generator=g)
    z2 = z1 + 0.3 * torch.randn(12, 6, dtype=torch.float64, generator=g)
    z1, z2 = z1.requires_grad_(), z2.requires_grad_()
    peer = SelfSupervisedLoss(NTXentLoss(temperature=temperature), symmetric=True)
    ours, o1, o2 = loss_and_grads(lambda a, b: nt_xent_loss(a, b, temperature=temperature), z1, z2)
    theirs, t1, t2 = loss_and_grads(lambda a, b: peer(a, b), z1, z2)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-10)
    assert_close(o1, t1, rtol=1e-8, atol=1e-12)
    assert_close(o2, t2, rtol=1e-8, atol=1e-12)
