"""The one-node SimCLR path (``_SimCLRRince``) and the lazy input check of ``rince_loss``.

The fused path computes three of the four logit blocks, checks nothing elementwise and has a
hand-written backward; these tests pin it against a plain-autograd float64 definition (values
and gradients, in both its unshifted and its row-shifted mode), check that it is really the path
taken, and that a NaN/inf input or an overflowing logit still raises the same errors as an eager
check would.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import papershelf.robust_infonce._loss as loss_module
from papershelf.robust_infonce import info_nce_loss, rince_loss


def definition(z1, z2, q, lam, t, normalize, reduction):
    """RINCE by its definition, float64 autograd (log-sum-exp of the masked logits)."""
    z1, z2 = z1.double(), z2.double()
    if normalize:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    z = torch.cat([z1, z2])
    n = z1.shape[0]
    s = (z @ z.T / t).masked_fill(torch.eye(2 * n, dtype=torch.bool), -math.inf)
    a = torch.logsumexp(s, 1) + math.log(lam)
    pos = (z1 * z2).sum(1) / t
    pos = torch.cat([pos, pos])
    rows = a - pos if q == 0 else (torch.exp(q * a) - torch.exp(q * pos)) / q
    return {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the calls of the fused SimCLR kernel that returned a loss (were not declined)."""
    taken = {"fused": 0, "declined": 0}
    kernel = loss_module._simclr_rince_kernel

    def counting(*args, **kwargs):
        out = kernel(*args, **kwargs)
        taken["fused" if out[0] is not None else "declined"] += 1
        return out

    monkeypatch.setattr(loss_module, "_simclr_rince_kernel", counting)
    return taken


def views(n=7, d=5, dtype=torch.float64, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=dtype)
    z2 = z1 + 0.4 * torch.randn(n, d, generator=g, dtype=dtype)
    return (scale * z1).requires_grad_(), (scale * z2).requires_grad_()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("q", [0.0, 0.3, 1.0])
@pytest.mark.parametrize(
    ("t", "normalize", "scale"),
    [
        (0.5, True, 1.0),  # logits within +-2: unshifted, symmetric backward
        (0.5, False, 0.7),  # raw rows: the bound comes from the largest |z_i|^2
        (0.004, True, 1.0),  # |s| up to 250 > 170: each row shifted, non-symmetric backward
    ],
    ids=["unshifted", "raw-rows", "shifted"],
)
def test_fused_path_matches_the_definition_in_value_and_gradient(
    fused_calls, reduction, q, t, normalize, scale
):
    z1, z2 = views(scale=scale)
    out = rince_loss(z1, z2, q=q, lam=0.05, temperature=t, normalize=normalize, reduction=reduction)
    want = definition(z1, z2, q, 0.05, t, normalize, reduction)
    if fused_calls["fused"] != 1:
        # q = 1 at t = 0.004: |q s+| ~ 250 leaves the product form's range (general path)
        assert (q, t) == (1.0, 0.004) and fused_calls["declined"] == 1
    torch.testing.assert_close(out, want, rtol=1e-11, atol=1e-11)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    got = torch.autograd.grad((out * weights).sum(), (z1, z2))
    ref = torch.autograd.grad((want * weights).sum(), (z1, z2))
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)


def test_fused_float32_matches_float64_and_the_general_path(fused_calls, monkeypatch):
    z1, z2 = views(n=64, d=16, dtype=torch.float32, seed=3)
    fused = rince_loss(z1, z2, q=0.5, lam=0.01, temperature=0.2)
    g_fused = torch.autograd.grad(fused, (z1, z2))
    assert fused_calls["fused"] == 1
    monkeypatch.setattr(loss_module, "_simclr_rince", lambda *a, **k: None)  # force general
    general = rince_loss(z1, z2, q=0.5, lam=0.01, temperature=0.2)
    g_general = torch.autograd.grad(general, (z1, z2))
    want = definition(z1, z2, 0.5, 0.01, 0.2, True, "mean")
    torch.testing.assert_close(fused.double(), want, rtol=2e-6, atol=0)
    torch.testing.assert_close(fused, general, rtol=2e-6, atol=0)
    for a, b in zip(g_fused, g_general, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_fused_backward_can_run_twice_and_without_grad_gives_the_same_value(fused_calls):
    z1, z2 = views()
    loss = rince_loss(z1, z2, q=0.5)
    (g1,) = torch.autograd.grad(loss, z1, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, z1)
    assert torch.equal(g1, g2)  # the saved buffers are not modified by a backward pass
    with torch.no_grad():
        assert torch.equal(rince_loss(z1, z2, q=0.5), loss.detach())
    assert fused_calls["fused"] == 2


def test_fused_gradient_reaches_only_the_inputs_that_ask_for_it(fused_calls):
    z1, z2 = views()
    z2 = z2.detach()
    (g1,) = torch.autograd.grad(rince_loss(z1, z2, q=0.5, reduction="sum"), z1)
    want = definition(z1, z2, 0.5, 0.01, 0.5, True, "sum")
    torch.testing.assert_close(g1, torch.autograd.grad(want, z1)[0], rtol=1e-10, atol=1e-12)
    assert fused_calls["fused"] == 1


# ----------------------------------------------------------------------------- lazy checks
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("which", ["z1", "z2"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("layout", ["simclr", "cross"])
@pytest.mark.parametrize("q", [0.0, 0.5, 1.0])
def test_non_finite_inputs_raise_the_eager_error_naming_the_view(bad, which, normalize, layout, q):
    z1, z2 = views(scale=3.0)
    for grad in (True, False):
        a, b = z1.detach().clone(), z2.detach().clone()
        (a if which == "z1" else b)[2, 1] = bad
        a.requires_grad_(grad)
        b.requires_grad_(grad)
        with pytest.raises(ValueError, match=f"^{which} contains NaN or inf$"):
            rince_loss(a, b, q=q, normalize=normalize, layout=layout)
        with pytest.raises(ValueError, match=f"^{which} contains NaN or inf$"):
            info_nce_loss(a, b, normalize=normalize, layout=layout, reduction="none")


def test_a_minus_inf_whose_row_is_positive_elsewhere_is_still_caught():
    """-inf times positive entries gives s+ = -inf and rows of -inf logits: the kind of input
    whose product form could come out 0 (finite) if the check looked at the loss alone."""
    z1, z2 = views(n=4, d=3, scale=1.0)
    a, b = z1.detach().abs() + 0.1, z2.detach().abs() + 0.1  # every entry positive
    a[0, 0] = -math.inf
    for q in (0.5, 1.0):
        with pytest.raises(ValueError, match="z1 contains NaN or inf"):
            rince_loss(a, b, q=q, normalize=False, reduction="none")


def test_overflowing_logits_still_raise_naming_the_temperature(fused_calls):
    z1, z2 = views(dtype=torch.float32)
    with pytest.raises(ValueError, match="temperature=1e-40 makes the logits"):
        rince_loss(z1, z2, temperature=1e-40)
    with pytest.raises(ValueError, match="temperature=1e-38 makes the logits"):
        rince_loss(z1 * 1e3, z2 * 1e3, temperature=1e-38, normalize=False)
    assert fused_calls["fused"] == 0


def test_results_at_the_edge_of_the_product_form_fall_back_and_stay_exact(fused_calls):
    # q = 1, t = 0.0125: q s+ ~ 79, beyond half of float32's log-range -> the log-space path
    z1, z2 = views(n=16, d=8, dtype=torch.float32, seed=1)
    out = rince_loss(z1, z2, q=1.0, temperature=0.0125, reduction="none")
    assert fused_calls["declined"] == 1 and fused_calls["fused"] == 0
    want = definition(z1, z2, 1.0, 0.01, 0.0125, True, "none")
    finite = torch.isfinite(want.float())
    torch.testing.assert_close(out[finite].double(), want[finite], rtol=1e-4, atol=0)
    assert not torch.isnan(out).any()


def test_huge_lam_is_checked_by_the_tensor_test_not_assumed(fused_calls):
    z1, z2 = views()
    out = rince_loss(z1, z2, q=0.5, lam=1e60)  # log lam = 138: outside the no-test range
    want = definition(z1, z2, 0.5, 1e60, 0.5, True, "mean")
    torch.testing.assert_close(out, want, rtol=1e-12, atol=0)
    assert fused_calls["fused"] == 1
