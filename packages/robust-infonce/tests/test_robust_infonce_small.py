"""The small-N ("full") layout of the fused SimCLR kernel against its block layout.

Up to ``_FULL_LAYOUT_MAX_ROWS`` anchors the kernel computes the whole (2N, 2N) logit matrix in
one GEMM and reduces it in fewer torch calls; above it, three of the four blocks. Both must give
the same loss and gradient on the same inputs, and the small layout must keep every check (a
NaN/inf input raises the eager error naming the view; logits beyond the unshifted range fall
back to the row-shifted blocks).
"""

from __future__ import annotations

import math

import pytest
import torch

import papershelf.robust_infonce._loss as loss_module
from papershelf.robust_infonce import info_nce_loss, rince_loss


@pytest.fixture
def layouts(monkeypatch):
    """The layout of every fused kernel call ("" where it declined)."""
    seen: list[str] = []
    kernel = loss_module._simclr_rince_kernel

    def recording(*args, **kwargs):
        out = kernel(*args, **kwargs)
        seen.append(out[2])
        return out

    monkeypatch.setattr(loss_module, "_simclr_rince_kernel", recording)
    return seen


def views(n, d=6, dtype=torch.float64, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=dtype)
    z2 = z1 + 0.4 * torch.randn(n, d, generator=g, dtype=dtype)
    return (scale * z1).requires_grad_(), (scale * z2).requires_grad_()


def loss_and_grads(z1, z2, reduction, **kw):
    out = rince_loss(z1, z2, reduction=reduction, **kw)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    return (out.detach(), *torch.autograd.grad((out * weights).sum(), (z1, z2)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("q", [0.0, 0.3, 1.0])
@pytest.mark.parametrize(("normalize", "scale", "t"), [(True, 1.0, 0.2), (False, 0.5, 0.5)])
def test_full_layout_matches_the_block_layout(
    layouts, monkeypatch, dtype, reduction, q, normalize, scale, t
):
    z1, z2 = views(12, dtype=dtype, scale=scale)
    kw = dict(q=q, lam=0.05, temperature=t, normalize=normalize)
    small = loss_and_grads(z1, z2, reduction, **kw)
    with torch.no_grad():
        no_grad = rince_loss(z1, z2, reduction=reduction, **kw)
    monkeypatch.setattr(loss_module, "_FULL_LAYOUT_MAX_ROWS", 0)
    block = loss_and_grads(z1, z2, reduction, **kw)
    assert layouts == ["full", "full", "symmetric"]
    assert torch.equal(no_grad, small[0])  # the same kernel with and without grad
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-6)
    for got, want in zip(small, block, strict=True):
        torch.testing.assert_close(got, want, **tol)


def test_the_crossover_is_where_the_constant_says(layouts):
    rows = loss_module._FULL_LAYOUT_MAX_ROWS
    for n, want in ((rows // 2, "full"), (rows // 2 + 1, "symmetric")):
        z1, z2 = views(n, d=4, dtype=torch.float32)
        rince_loss(z1, z2)
        assert layouts[-1] == want


def test_logits_beyond_the_unshifted_range_fall_back_to_the_shifted_blocks(layouts):
    z1, z2 = views(5)
    out = rince_loss(z1, z2, q=0.5, temperature=0.004)  # |s| up to 250 > 170 (float64)
    assert layouts == ["shifted"]
    assert torch.isfinite(out)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("which", ["z1", "z2"])
@pytest.mark.parametrize("q", [0.0, 0.5, 1.0])
def test_non_finite_inputs_in_the_full_layout_raise_naming_the_view(layouts, bad, which, q):
    z1, z2 = views(4, scale=0.5, dtype=torch.float32)
    rince_loss(z1, z2, q=q, normalize=False)
    assert layouts == ["full"]  # clean inputs of this size take the full layout
    for grad in (True, False):
        a, b = z1.detach().clone(), z2.detach().clone()
        (a if which == "z1" else b)[1, 3] = bad
        a.requires_grad_(grad)
        b.requires_grad_(grad)
        with pytest.raises(ValueError, match=f"^{which} contains NaN or inf$"):
            rince_loss(a, b, q=q, normalize=False)
        with pytest.raises(ValueError, match=f"^{which} contains NaN or inf$"):
            info_nce_loss(a, b, normalize=True, reduction="none")
    assert "full" not in layouts[1:]  # every bad call declined before computing a loss
