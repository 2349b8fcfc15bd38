"""pytorch-metric-learning's convention: (embeddings, labels), SelfSupervisedLoss, live parity."""

from __future__ import annotations

import pytest
import torch

from papershelf.core.testing import assert_close
from papershelf.hard_negatives import DebiasedContrastiveLoss, HardNegativeLoss, hcl_loss
from papershelf.hard_negatives._loss import hcl_from_labels

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")


def views(n: int = 10, d: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, dtype=torch.float64, generator=g)
    z2 = z1 + 0.4 * torch.randn(n, d, dtype=torch.float64, generator=g)
    return z1.requires_grad_(), z2.requires_grad_()


def grads(loss, *xs):
    for x in xs:
        x.grad = None
    loss.backward()
    return [x.grad.clone() for x in xs]


@pytest.mark.parametrize(
    "kw",
    [
        dict(beta=1.0, tau_plus=0.1, temperature=0.5),
        dict(beta=2.0, tau_plus=0.05, temperature=0.2),
        dict(beta=0.0, tau_plus=0.1, temperature=0.5),
        dict(beta=1.0, tau_plus=0.1, temperature=0.5, estimator="easy"),
    ],
)
def test_self_supervised_wrapper_equals_two_view_loss(kw):
    from papershelf.hard_negatives.metric_learning import SelfSupervisedLoss

    z1, z2 = views()
    wrapped = SelfSupervisedLoss(HardNegativeLoss(**kw))(z1, z2)
    g_wrapped = grads(wrapped, z1, z2)
    direct = hcl_loss(z1, z2, **kw)
    g_direct = grads(direct, z1, z2)
    assert wrapped.item() == pytest.approx(direct.item(), rel=1e-12)
    for a, b in zip(g_wrapped, g_direct):
        assert_close(a, b, rtol=1e-10, atol=1e-13)


def test_pml_own_wrapper_rejects_unknown_losses_and_ours_accepts_dcl():
    from papershelf.hard_negatives.metric_learning import SelfSupervisedLoss

    with pytest.raises(Exception, match="not supported"):
        pml_losses.SelfSupervisedLoss(HardNegativeLoss())
    z1, z2 = views()
    ours = SelfSupervisedLoss(DebiasedContrastiveLoss(tau_plus=0.1))(z1, z2)
    assert ours.item() == pytest.approx(hcl_loss(z1, z2, beta=0.0).item(), rel=1e-12)
    with pytest.raises(ValueError, match="loss"):
        SelfSupervisedLoss(torch.nn.MSELoss())


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_easy_estimator_equals_live_pml_ntxent_in_its_wrapper(symmetric, temperature):
    from papershelf.hard_negatives.metric_learning import SelfSupervisedLoss

    z1, z2 = views(seed=1)
    ours = SelfSupervisedLoss(
        HardNegativeLoss(estimator="easy", temperature=temperature), symmetric=symmetric
    )(z1, z2)
    g_ours = grads(ours, z1, z2)
    theirs = pml_losses.SelfSupervisedLoss(
        pml_losses.NTXentLoss(temperature=temperature), symmetric=symmetric
    )(z1, z2)
    g_theirs = grads(theirs, z1, z2)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-9)
    for a, b in zip(g_ours, g_theirs):
        assert_close(a, b, rtol=1e-7, atol=1e-12)


def test_labels_form_with_several_positives_matches_live_pml_ntxent():
    """Many samples per label (supervised batches): one term per positive pair, as PML."""
    g = torch.Generator().manual_seed(2)
    emb = torch.randn(12, 5, dtype=torch.float64, generator=g, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4])
    ours = HardNegativeLoss(estimator="easy", temperature=0.3)(emb, labels)
    g_ours = grads(ours, emb)
    theirs = pml_losses.NTXentLoss(temperature=0.3)(emb, labels)
    g_theirs = grads(theirs, emb)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-9)
    assert_close(g_ours[0], g_theirs[0], rtol=1e-7, atol=1e-12)
    # ref_emb / ref_labels, keyword form as PML calls it
    ref = torch.randn(7, 5, dtype=torch.float64, generator=g)
    ref_labels = torch.tensor([0, 1, 2, 3, 4, 0, 2])
    ours = HardNegativeLoss(estimator="easy", temperature=0.3)(
        embeddings=emb, labels=labels, ref_emb=ref, ref_labels=ref_labels
    )
    theirs = pml_losses.NTXentLoss(temperature=0.3)(emb, labels, ref_emb=ref, ref_labels=ref_labels)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-9)


def test_labels_form_hard_matches_per_pair_closed_form():
    """HCL per positive pair with each anchor's own negatives (M_a differs per anchor)."""
    g = torch.Generator().manual_seed(3)
    emb = torch.nn.functional.normalize(torch.randn(9, 4, dtype=torch.float64, generator=g), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3])
    beta, tau_plus, t = 1.5, 0.1, 0.5
    losses = []
    for a in range(9):
        for p in range(9):
            if a == p or labels[a] != labels[p]:
                continue
            neg = torch.tensor([emb[a] @ emb[j] / t for j in range(9) if labels[j] != labels[a]])
            pos = (emb[a] @ emb[p] / t).exp()
            m = len(neg)
            imp = (beta * neg).exp()
            reweight = (imp * neg.exp()).sum() / imp.mean()
            ng = (-tau_plus * m * pos + reweight) / (1 - tau_plus)
            ng = torch.clamp(ng, min=m * torch.e ** (-1 / t))
            losses.append(-torch.log(pos / (pos + ng)))
    expected = torch.stack(losses)
    ours = hcl_from_labels(
        emb, labels, beta=beta, tau_plus=tau_plus, temperature=t, reduction="none"
    )
    assert_close(ours, expected, rtol=1e-12, atol=1e-14)


def test_labels_form_bad_input():
    emb = torch.randn(4, 3)
    with pytest.raises(TypeError, match="labels"):
        hcl_from_labels(emb, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="labels"):
        hcl_from_labels(emb, torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="labels"):
        hcl_from_labels(emb, torch.tensor([0, 0, 0, 0]))  # no negatives
    with pytest.raises(ValueError, match="ref_labels"):
        hcl_from_labels(emb, torch.tensor([0, 0, 1, 1]), torch.randn(2, 3))
    with pytest.raises(ValueError, match="indices_tuple"):
        HardNegativeLoss()(emb, torch.tensor([0, 0, 1, 1]), (torch.tensor([0]),) * 3)
    # no positive pair: zero with a gradient path, as pytorch-metric-learning
    e = emb.clone().requires_grad_()
    out = hcl_from_labels(e, torch.tensor([0, 1, 2, 3]))
    out.backward()
    assert out.item() == 0.0 and e.grad is not None
