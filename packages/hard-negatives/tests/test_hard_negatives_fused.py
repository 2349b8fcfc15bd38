"""The one-process fused HCL kernel (excluded columns as diagonals, unshifted exponentials while
the logits are bounded, ``beta = 1`` by squaring) and the lazy input checks of ``hcl_loss``.

Pinned against a plain float64 definition in value and gradient, in the unshifted and in the
row-shifted regime; bad input must still raise the eager errors (and before any clamp-collapse
report).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from papershelf.hard_negatives import ClampCollapseWarning, hcl_from_logits, hcl_loss


def layout(z1, z2, t, normalize):
    """(positive logits (2N,), negative logits (2N, 2N - 2)) of the SimCLR layout, float64."""
    z1, z2 = z1.double(), z2.double()
    if normalize:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = z1.shape[0]
    z = torch.cat([z1, z2])
    s = z @ z.T / t
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    keep = ~torch.eye(2 * n, dtype=torch.bool)
    keep[torch.arange(2 * n), partner] = False
    return s[torch.arange(2 * n), partner], s[keep].view(2 * n, -1)


def definition(z1, z2, beta, tau_plus, t, normalize, estimator, reduction):
    """HCL by its formula (log-sum-exps in float64; the clamp floor M e^{-1/t} applied)."""
    pos, neg = layout(z1, z2, t, normalize)
    m = neg.shape[1]
    if estimator == "easy":
        rows = torch.logaddexp(pos, torch.logsumexp(neg, 1)) - pos
    else:
        log_r = math.log(m) + torch.logsumexp((1 + beta) * neg, 1) - torch.logsumexp(beta * neg, 1)
        # N_g / e^{s+}, then -s+ + log(e^{s+} + N_g) = log(1 + N_g / e^{s+})
        ng = (torch.exp(log_r - pos) - tau_plus * m) / (1 - tau_plus)
        ng = torch.maximum(ng, m * torch.exp(-1 / t - pos))
        rows = torch.log1p(ng)
    return {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]


def views(n=6, d=4, dtype=torch.float64, seed=0, scale=1.0, spread=0.6):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=dtype)
    z2 = z1 + spread * torch.randn(n, d, generator=g, dtype=dtype)
    return (scale * z1).requires_grad_(), (scale * z2).requires_grad_()


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize(
    ("beta", "estimator"), [(0.0, "hard"), (1.0, "hard"), (2.5, "hard"), (1.0, "easy")]
)
@pytest.mark.parametrize(
    ("t", "normalize", "scale"),
    [
        (0.5, True, 1.0),  # |s| <= 2: no shift
        (0.5, False, 0.8),  # raw rows: the bound is the largest diagonal logit
        (0.004, True, 1.0),  # |s| up to 250: every row shifted by its maximum
    ],
    ids=["unshifted", "raw-rows", "shifted"],
)
def test_fused_hcl_matches_the_definition_in_value_and_gradient(
    reduction, beta, estimator, t, normalize, scale
):
    z1, z2 = views(scale=scale, spread=0.6 if t > 0.1 else 0.02)
    kw = dict(beta=beta, tau_plus=0.1, temperature=t, estimator=estimator, normalize=normalize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClampCollapseWarning)  # small t clamps some rows
        out = hcl_loss(z1, z2, reduction=reduction, **kw)
    want = definition(z1, z2, beta, 0.1, t, normalize, estimator, reduction)
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-12)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    got = torch.autograd.grad((out * weights).sum(), (z1, z2))
    ref = torch.autograd.grad((want * weights).sum(), (z1, z2))
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_detached_weights_match_the_logits_front_end(beta):
    z1, z2 = views()
    out = hcl_loss(z1, z2, beta=beta, detach_weights=True, normalize=False)
    pos, neg = layout(z1, z2, 0.5, False)
    want = hcl_from_logits(pos, neg, beta=beta, temperature=0.5, detach_weights=True)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=0)
    got = torch.autograd.grad(out, (z1, z2))
    ref = torch.autograd.grad(want, (z1, z2))
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_without_grad_the_same_value_and_float32_close_to_float64():
    z1, z2 = views(n=32, d=16, dtype=torch.float32, seed=2)
    with_grad = hcl_loss(z1, z2)
    with torch.no_grad():
        assert torch.equal(hcl_loss(z1, z2), with_grad.detach())
    want = definition(z1, z2, 1.0, 0.1, 0.5, True, "hard", "mean")
    torch.testing.assert_close(with_grad.double(), want, rtol=2e-6, atol=0)


# ----------------------------------------------------------------------------- lazy checks
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("which", ["z1", "z2"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("estimator", ["hard", "easy"])
def test_non_finite_inputs_raise_the_eager_error_naming_the_view(bad, which, normalize, estimator):
    z1, z2 = views(scale=2.0)
    for grad in (True, False):
        a, b = z1.detach().clone(), z2.detach().clone()
        (a if which == "z1" else b)[1, 2] = bad
        a.requires_grad_(grad)
        b.requires_grad_(grad)
        for reduction in ("mean", "none"):
            with pytest.raises(ValueError, match=f"^{which} contains NaN or inf$"):
                hcl_loss(a, b, normalize=normalize, estimator=estimator, reduction=reduction)


def test_bad_input_raises_before_a_clamp_collapse_is_reported():
    # t = 0.1 on close views collapses (most rows clamped): NaN input must still say "z1"
    z1, z2 = views(n=16, d=8, spread=0.05)
    a = z1.detach().clone()
    a[0, 0] = math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ClampCollapseWarning first
        with pytest.raises(ValueError, match="z1 contains NaN or inf"):
            hcl_loss(a, z2, temperature=0.1, on_collapse="raise")
    with pytest.warns(ClampCollapseWarning):  # the same views without the NaN do collapse
        hcl_loss(z1, z2, temperature=0.1)


@pytest.mark.parametrize("which", ["z1", "z2"])
def test_an_all_zero_row_is_still_refused_with_normalize(which):
    z1, z2 = views()
    a, b = z1.detach().clone(), z2.detach().clone()
    (a if which == "z1" else b)[3] = 0.0
    with pytest.raises(ValueError, match=f"{which} has an all-zero row"):
        hcl_loss(a, b)
    assert torch.isfinite(hcl_loss(a, b, normalize=False))  # raw rows may be zero


def test_where_the_short_clamped_form_overflows_the_shifted_form_decides(monkeypatch):
    # raw rows of norm ~10 at t = 0.5: logits up to +-200, so e^{log R - s+} overflows float32
    # for an anchor whose positive is far below its negatives; the result must stay exact
    import papershelf.hard_negatives._loss as loss_module

    g = torch.Generator().manual_seed(5)
    z1 = 10 * F.normalize(torch.randn(8, 4, generator=g), dim=1)
    z2 = z1.clone()
    z2[0] = -z1[0]  # pair 0: s+ = -200, its negatives up to +200
    careful = []
    rows_fn = loss_module._debiased_rows
    monkeypatch.setattr(
        loss_module, "_debiased_rows", lambda *a, **k: careful.append(1) or rows_fn(*a, **k)
    )
    out = hcl_loss(z1, z2, normalize=False, reduction="none", on_collapse="ignore")
    assert careful == [1]  # the short form overflowed and was replaced
    want = definition(z1, z2, 1.0, 0.1, 0.5, False, "hard", "none")
    assert want[0] > 300 and torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)
    careful.clear()
    hcl_loss(z1[1:], z2[1:], normalize=False, on_collapse="ignore")  # the short form only
    assert careful == []
