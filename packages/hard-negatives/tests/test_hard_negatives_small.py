"""The small-N HCL node (``_SmallHCL``) against the general fused path on the same inputs.

Up to ``_SMALL_MAX_ROWS`` anchors the default loss (``"hard"`` with the clamp, one process) is
one autograd node over the whole (2N, 2N) logit matrix with a hand-written backward. It must give
the general path's loss and gradient (off and on the clamp, every ``beta``, ``tau_plus``,
``detach_weights`` and reduction), report a clamp collapse the same way, and keep every check:
NaN/inf inputs and all-zero rows raise the eager errors naming the view.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import papershelf.hard_negatives._loss as loss_module
from papershelf.hard_negatives import ClampCollapseWarning, hcl_loss


@pytest.fixture
def small_calls(monkeypatch):
    """Counts the small kernel's calls that returned a loss and those that declined."""
    taken = {"small": 0, "declined": 0}
    kernel = loss_module._small_hcl_kernel

    def counting(*args, **kwargs):
        out = kernel(*args, **kwargs)
        taken["small" if out is not None else "declined"] += 1
        return out

    monkeypatch.setattr(loss_module, "_small_hcl_kernel", counting)
    return taken


def views(n, d=6, dtype=torch.float64, seed=0, scale=1.0, spread=0.6):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=dtype)
    z2 = z1 + spread * torch.randn(n, d, generator=g, dtype=dtype)
    return (scale * z1).requires_grad_(), (scale * z2).requires_grad_()


def loss_and_grads(z1, z2, reduction, **kw):
    out = hcl_loss(z1, z2, reduction=reduction, **kw)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    return (out.detach(), *torch.autograd.grad((out * weights).sum(), (z1, z2)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    ("beta", "tau_plus", "detach"),
    [(1.0, 0.1, False), (0.0, 0.1, False), (2.5, 0.0, False), (1.0, 0.1, True), (2.0, 0.3, True)],
)
@pytest.mark.parametrize(
    ("normalize", "scale", "t", "spread"),
    [
        (True, 1.0, 0.5, 0.6),  # few rows clamped
        (False, 0.3, 0.5, 0.6),  # raw rows
        (True, 1.0, 0.2, 0.05),  # close views at a small t: most rows on the clamp
    ],
    ids=["normalized", "raw-rows", "clamped"],
)
def test_small_node_matches_the_general_path(
    small_calls, monkeypatch, dtype, reduction, beta, tau_plus, detach, normalize, scale, t, spread
):
    z1, z2 = views(10, dtype=dtype, scale=scale, spread=spread)
    kw = dict(
        beta=beta,
        tau_plus=tau_plus,
        temperature=t,
        normalize=normalize,
        detach_weights=detach,
        on_collapse="ignore",
    )
    small = loss_and_grads(z1, z2, reduction, **kw)
    with torch.no_grad():
        no_grad = hcl_loss(z1, z2, reduction=reduction, **kw)
    assert small_calls == {"small": 2, "declined": 0}
    monkeypatch.setattr(loss_module, "_SMALL_MAX_ROWS", 0)
    general = loss_and_grads(z1, z2, reduction, **kw)
    assert small_calls["small"] == 2
    assert torch.equal(no_grad, small[0])  # the same kernel with and without grad
    tol = dict(rtol=1e-11, atol=1e-13) if dtype == torch.float64 else dict(rtol=3e-5, atol=3e-6)
    for got, want in zip(small, general, strict=True):
        torch.testing.assert_close(got, want, **tol)


def test_the_crossover_is_where_the_constant_says(small_calls):
    rows = loss_module._SMALL_MAX_ROWS
    for n, want in ((rows // 2, 1), (rows // 2 + 1, 1)):
        z1, z2 = views(n, d=4, dtype=torch.float32)
        hcl_loss(z1, z2)
        assert small_calls["small"] == want


def test_logits_beyond_the_unshifted_range_decline_to_the_shifted_rows(small_calls):
    z1, z2 = views(5, spread=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClampCollapseWarning)
        out = hcl_loss(z1, z2, temperature=0.004)  # |s| up to 250: 2 (1 + beta) |s| > 340
    assert small_calls == {"small": 0, "declined": 1}
    assert torch.isfinite(out)


def test_a_clamp_collapse_is_reported_as_on_the_general_path(small_calls):
    z1, z2 = views(16, d=8, spread=0.05)
    with pytest.warns(ClampCollapseWarning):
        hcl_loss(z1, z2, temperature=0.1)
    with pytest.raises(loss_module.ClampCollapseError):
        hcl_loss(z1, z2, temperature=0.1, on_collapse="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hcl_loss(z1, z2, temperature=0.1, on_collapse="ignore")
        hcl_loss(z1, z2, temperature=0.5)  # fewer than half of the rows clamped: silent
    assert small_calls == {"small": 4, "declined": 0}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("which", ["z1", "z2"])
@pytest.mark.parametrize("normalize", [True, False])
def test_non_finite_inputs_raise_naming_the_view(small_calls, bad, which, normalize):
    z1, z2 = views(4, scale=0.5, dtype=torch.float32)
    hcl_loss(z1, z2, normalize=normalize)
    assert small_calls == {"small": 1, "declined": 0}  # clean inputs take the small node
    for grad in (True, False):
        a, b = z1.detach().clone(), z2.detach().clone()
        (a if which == "z1" else b)[1, 3] = bad
        a.requires_grad_(grad)
        b.requires_grad_(grad)
        for reduction in ("mean", "none"):
            with pytest.raises(ValueError, match=f"^{which} contains NaN or inf$"):
                hcl_loss(a, b, normalize=normalize, reduction=reduction, on_collapse="raise")
    assert small_calls["small"] == 1  # every bad call declined before computing a loss


@pytest.mark.parametrize("which", ["z1", "z2"])
def test_an_all_zero_row_is_refused_with_normalize(small_calls, which):
    z1, z2 = views(4)
    a, b = z1.detach().clone(), z2.detach().clone()
    (a if which == "z1" else b)[2] = 0.0
    with pytest.raises(ValueError, match=f"{which} has an all-zero row"):
        hcl_loss(a, b, on_collapse="ignore")
    assert torch.isfinite(hcl_loss(a, b, normalize=False))
    assert small_calls == {"small": 2, "declined": 0}


def test_the_backward_can_run_twice(small_calls):
    z1, z2 = views(6)
    loss = hcl_loss(z1, z2, temperature=0.2, on_collapse="ignore")
    first = torch.autograd.grad(loss, (z1, z2), retain_graph=True)
    second = torch.autograd.grad(loss, (z1, z2))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert small_calls["small"] == 1
