"""Overflow gives ±inf (never NaN), settings accept NumPy/tensor scalars, a learnable temperature,
the fused kernel's gradient paths, and the (embeddings, labels) form of pytorch-metric-learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from papershelf.robust_infonce import RINCELoss, info_nce_loss, rince_loss
from papershelf.robust_infonce.losses import (
    moco_rince_loss,
    rince_from_labels,
    rince_from_logits,
)


def clustered(n: int = 16, d: int = 8, seed: int = 0, dtype=torch.float32):
    """Views close to each other (cosine ~0.98): the regime where the raw exp overflows first."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = a + 0.1 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return F.normalize(a, dim=1).to(dtype), F.normalize(b, dim=1).to(dtype)


def reference_f64(z1, z2, q, lam, t, normalize=True):
    """RINCE by the definition in float64 through log-magnitudes (sign, log|value|)."""
    z1, z2 = z1.double(), z2.double()
    if normalize:
        z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    z = torch.cat([z1, z2])
    n = z1.shape[0]
    logits = (z @ z.T / t).fill_diagonal_(-math.inf)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    pos = logits[torch.arange(2 * n), partner]
    return torch.logsumexp(logits, 1) + math.log(lam), pos


# ----------------------------------------------------------------------------- 22.3 overflow
@pytest.mark.parametrize(
    ("q", "t", "normalize", "scale"),
    [
        (1.0, 0.011, True, 1.0),  # e^{1/t} = e^91 > float32 max
        (1.0, 0.005, True, 1.0),
        (0.5, 0.001, True, 1.0),  # e^{q/t} = e^500
        (0.5, 0.05, False, 10.0),  # |z| = 10: logits up to 2000
        (0.5, 1e-30, True, 1.0),
        (1e-6, 1e-30, True, 1.0),
    ],
)
def test_overflow_gives_signed_inf_or_the_float64_value_never_nan(q, t, normalize, scale):
    z1, z2 = clustered()
    z1, z2 = z1 * scale, z2 * scale
    out = rince_loss(z1, z2, q=q, lam=0.01, temperature=t, normalize=normalize, reduction="none")
    assert not torch.isnan(out).any()
    a, pos = reference_f64(z1, z2, q, 0.01, t, normalize)
    # float64 log-magnitude: ell = sign(d) exp(q max(a, pos) + log(1 - e^{-q|d|}) - log q)
    d = math.log(0.01) + (a - math.log(0.01) - pos).clamp(min=0)  # log lam + (LSE - s+)
    log_mag = q * (pos + d.clamp(min=0)) + torch.log(-torch.expm1(-q * d.abs())) - math.log(q)
    fits = log_mag < math.log(torch.finfo(torch.float32).max) - 1e-3
    want_sign = torch.sign(d)
    assert torch.equal(torch.sign(out.double())[~fits], want_sign[~fits])
    assert torch.isinf(out[~fits]).all()
    if fits.any():
        want = want_sign[fits] * torch.exp(log_mag[fits])
        torch.testing.assert_close(out[fits].double(), want, rtol=1e-4, atol=1e-30)


def test_overflow_in_float32_is_finite_and_exact_in_float64():
    z1, z2 = clustered(dtype=torch.float64)
    f64 = rince_loss(z1, z2, q=1.0, lam=0.01, temperature=0.011)
    f32 = rince_loss(z1.float(), z2.float(), q=1.0, lam=0.01, temperature=0.011)
    assert math.isfinite(f64.item()) and f64.item() < -1e38
    assert f32.item() == -math.inf


def test_the_log_path_is_accurate_where_the_product_form_would_underflow():
    # s+ = -120 (q s+ = -60: e^{q s+} underflows float32 against the other factor)
    logits = torch.zeros(3, 50, dtype=torch.float64)
    logits[:, 0] = -120.0
    logits[:, 1:] = torch.linspace(-2.0, 3.0, 49, dtype=torch.float64)
    for q in (0.5, 1.0, 1e-3):
        f64 = rince_from_logits(logits, torch.zeros(3, dtype=torch.long), q=q, reduction="none")
        f32 = rince_from_logits(
            logits.float(), torch.zeros(3, dtype=torch.long), q=q, reduction="none"
        )
        a = torch.logsumexp(logits, 1) + math.log(0.01)
        want = (torch.exp(q * a) - torch.exp(q * logits[:, 0])) / q
        torch.testing.assert_close(f64, want, rtol=1e-12, atol=0)
        torch.testing.assert_close(f32.double(), want, rtol=1e-5, atol=0)


def test_logits_that_overflow_the_dtype_raise_naming_the_temperature():
    z1, z2 = clustered()
    with pytest.raises(ValueError, match="temperature=1e-40 makes the logits"):
        rince_loss(z1, z2, temperature=1e-40)
    with pytest.raises(ValueError, match="temperature"):
        moco_rince_loss(z1, z2, temperature=1e-40)
    with pytest.raises(ValueError, match="temperature"):
        rince_from_labels(torch.cat([z1, z2]), torch.arange(16).repeat(2), temperature=1e-40)
    # float64 holds those logits: finite InfoNCE, ±inf RINCE, no error
    assert math.isfinite(info_nce_loss(z1.double(), z2.double(), temperature=1e-40).item())


def test_gradients_stay_finite_near_but_below_overflow():
    z1, z2 = (x.requires_grad_() for x in clustered())
    loss = rince_loss(z1, z2, q=1.0, lam=0.01, temperature=0.0125)
    assert math.isfinite(loss.item())
    loss.backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


# ----------------------------------------------------------------------------- 22.9 scalars
@pytest.mark.parametrize(
    "wrap",
    [float, np.float32, np.float64, lambda v: np.array(v), lambda v: torch.tensor(v)],
    ids=["float", "np.float32", "np.float64", "0-d array", "0-d tensor"],
)
def test_settings_accept_numpy_and_tensor_scalars(wrap):
    z1, z2 = clustered()
    want = rince_loss(z1, z2, q=0.5, lam=0.01, temperature=0.5)
    got = rince_loss(z1, z2, q=wrap(0.5), lam=wrap(0.01), temperature=wrap(0.5))
    torch.testing.assert_close(got, want)
    module = RINCELoss(q=wrap(0.5), lam=wrap(0.01), temperature=wrap(0.5))
    torch.testing.assert_close(module(z1, z2), want)
    got = rince_from_logits(z1 @ z2.T / 0.5, q=wrap(0.5), lam=wrap(0.01))
    assert torch.isfinite(got)


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"q": np.float64("nan")}, ValueError, "q must be a number, got NaN"),
        ({"q": 1.5}, ValueError, "q must be"),
        ({"q": True}, TypeError, "q must be a number"),
        ({"lam": np.float32(0)}, ValueError, "lam must be > 0"),
        ({"lam": torch.tensor([0.1, 0.2])}, TypeError, "lam must be a scalar"),
        ({"temperature": torch.tensor(-1.0)}, ValueError, "temperature must be > 0"),
        ({"temperature": float("inf")}, ValueError, "temperature must be finite"),
        ({"normalize": 1}, TypeError, "normalize must be True or False"),
        ({"layout": "moco"}, ValueError, "layout must be one of"),
        ({"reduction": "avg"}, ValueError, "reduction must be one of"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, err, match):
    z1, z2 = clustered()
    with pytest.raises(err, match=match):
        rince_loss(z1, z2, **kwargs)


def test_learnable_temperature_gets_the_gradient_of_the_float_path():
    z1, z2 = clustered(dtype=torch.float64)
    z1.requires_grad_()
    t = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    for layout in ("simclr", "cross"):
        z1.grad = None
        loss = rince_loss(z1, z2, q=0.5, temperature=t, layout=layout)
        g_t, g_z = torch.autograd.grad(loss, (t, z1))
        # the float path's value and z-gradient, and d loss / d t by central differences
        ref = rince_loss(z1, z2, q=0.5, temperature=0.3, layout=layout)
        (ref_gz,) = torch.autograd.grad(ref, z1)
        torch.testing.assert_close(loss, ref)
        torch.testing.assert_close(g_z, ref_gz)
        h = 1e-6
        up = rince_loss(z1, z2, q=0.5, temperature=0.3 + h, layout=layout)
        down = rince_loss(z1, z2, q=0.5, temperature=0.3 - h, layout=layout)
        assert g_t.item() == pytest.approx(((up - down) / (2 * h)).item(), rel=1e-6)


def test_module_registers_a_parameter_temperature():
    t = torch.nn.Parameter(torch.tensor(0.5))
    module = RINCELoss(temperature=t)
    assert [p is t for p in module.parameters()] == [True]
    z1, z2 = clustered()
    module(z1, z2).backward()
    assert t.grad is not None and torch.isfinite(t.grad)
    assert "temperature=0.5 (tensor)" in repr(module)


# ----------------------------------------------------------------------------- fused kernel paths
@pytest.mark.parametrize("t", [0.5, 0.05, 0.01])  # constant shift (symmetric backward) / row max
@pytest.mark.parametrize("layout", ["simclr", "cross"])
def test_fused_kernel_matches_plain_autograd_on_both_shift_paths(t, layout):
    z1, z2 = (x.requires_grad_() for x in clustered(n=12, d=6, dtype=torch.float64))
    fused = rince_loss(z1, z2, q=0.5, temperature=t, layout=layout)
    g_fused = torch.autograd.grad(fused, (z1, z2))
    tt = torch.tensor(t, dtype=torch.float64, requires_grad=True)  # the unfused path
    plain = rince_loss(z1, z2, q=0.5, temperature=tt, layout=layout)
    g_plain = torch.autograd.grad(plain, (z1, z2))
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_fused, g_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fused_backward_can_run_twice():
    z1, z2 = (x.requires_grad_() for x in clustered(dtype=torch.float64))
    loss = rince_loss(z1, z2)
    (g1,) = torch.autograd.grad(loss, z1, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, z1)
    assert torch.equal(g1, g2)


def test_unnormalised_rows_of_very_different_norms():
    # the constant shift is the Cauchy-Schwarz bound; small rows must not underflow to -inf
    z1, z2 = clustered(dtype=torch.float64)
    z1 = z1 * torch.logspace(-3, 1, z1.shape[0], dtype=torch.float64)[:, None]
    z1.requires_grad_()
    loss = rince_loss(z1, z2, q=0.5, temperature=0.5, normalize=False)
    (g,) = torch.autograd.grad(loss, z1)
    tt = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    plain = rince_loss(z1, z2, q=0.5, temperature=tt, normalize=False)
    (gp,) = torch.autograd.grad(plain, z1)
    torch.testing.assert_close(loss, plain, rtol=1e-12, atol=0)
    torch.testing.assert_close(g, gp, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- 19.5 labels form
def test_labels_form_with_simclr_labels_equals_the_two_view_loss():
    z1, z2 = clustered(n=10, dtype=torch.float64)
    labels = torch.arange(10).repeat(2)
    for q in (0.0, 0.5, 1.0):
        want = rince_loss(z1, z2, q=q, lam=0.01, temperature=0.4, reduction="none")
        got = RINCELoss(q=q, lam=0.01, temperature=0.4, reduction="none")(
            torch.cat([z1, z2]), labels
        )
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        kw = RINCELoss(q=q, temperature=0.4)(embeddings=torch.cat([z1, z2]), labels=labels)
        torch.testing.assert_close(kw, want.mean(), rtol=1e-12, atol=1e-12)


def test_labels_form_by_definition_with_several_positives():
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(9, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    q, lam, t = 0.5, 0.1, 0.7
    got = rince_from_labels(emb, labels, q=q, lam=lam, temperature=t, reduction="none")
    s = F.normalize(emb, dim=1) @ F.normalize(emb, dim=1).T / t
    want = []
    for a in range(9):
        for p in range(9):
            if p != a and labels[p] == labels[a]:
                big_s = s[a, p].exp() + s[a][labels != labels[a]].exp().sum()
                want.append(-(q * s[a, p]).exp() / q + (lam * big_s) ** q / q)
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-12, atol=1e-12)


def test_labels_form_errors_and_no_positive_pairs():
    emb = torch.randn(4, 3, requires_grad=True)
    with pytest.raises(ValueError, match="labels must have shape"):
        rince_from_labels(emb, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="labels must hold integer"):
        rince_from_labels(emb, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="labels or indices_tuple"):
        rince_from_labels(emb)
    zero = rince_from_labels(emb, torch.arange(4))
    assert zero.item() == 0.0
    zero.backward()  # connected to the graph


def test_pml_parity_live():
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning.losses import NTXentLoss as PMLNTXent
    from pytorch_metric_learning.losses import SelfSupervisedLoss
    from pytorch_metric_learning.miners import MultiSimilarityMiner

    from papershelf.robust_infonce.metric_learning import NTXentLoss

    assert pml.__version__
    z1, z2 = (x.requires_grad_() for x in clustered(n=12, d=6, dtype=torch.float64))
    # inside SelfSupervisedLoss: RINCE equals the two-view loss (values and gradients)
    for q in (0.0, 0.5, 1.0):
        got = SelfSupervisedLoss(NTXentLoss(q=q, lam=0.01, temperature=0.5))(z1, z2)
        want = rince_loss(z1, z2, q=q, lam=0.01, temperature=0.5)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        ga, gb = torch.autograd.grad(got, (z1, z2)), torch.autograd.grad(want, (z1, z2))
        for a, b in zip(ga, gb, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # q = 0, lam = 1 is PML's own NTXentLoss: two views, labels, a miner, ref_emb
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 3, 3, 3])
    mined = MultiSimilarityMiner(0.1)(z1, labels)
    pairs = [
        (SelfSupervisedLoss(PMLNTXent(0.3))(z1, z2), info_nce_loss(z1, z2, temperature=0.3)),
        (PMLNTXent(0.3)(z1, labels), RINCELoss(q=0, lam=1, temperature=0.3)(z1, labels)),
        (
            PMLNTXent(0.3)(z1, labels, mined),
            RINCELoss(q=0, lam=1, temperature=0.3)(z1, labels, mined),
        ),
        (
            SelfSupervisedLoss(PMLNTXent(0.3), symmetric=False)(z1, z2),
            RINCELoss(q=0, lam=1, temperature=0.3)(
                embeddings=z1, labels=torch.arange(12), ref_emb=z2, ref_labels=torch.arange(12)
            ),
        ),
        (PMLNTXent(0.3)(z1, labels), NTXentLoss(q=0, lam=1, temperature=0.3)(z1, labels)),
    ]
    for want, got in pairs:
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="q must be"):
        NTXentLoss(q=-1)
