"""Graph variant (InfoGraph "JSD_hard"): official parity, limits, invariances, numerics, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from papershelf.core.testing import assert_close
from papershelf.hard_negatives.graph import infograph_jsd, infograph_jsd_hard

HERE = Path(__file__).parent
REFERENCE = json.loads((HERE / "official_graph_reference.json").read_text())
LOG2 = math.log(2.0)


def graph_inputs(n, g, d, seed, scale, shuffle, requires_grad=True):
    """The fixture's inputs (see its _provenance), float64."""
    rng = np.random.default_rng(seed)
    l_enc = rng.standard_normal((n, d)) * scale
    g_enc = rng.standard_normal((g, d)) * scale
    batch = np.concatenate([np.arange(g), rng.integers(0, g, n - g)])
    batch = rng.permutation(batch) if shuffle else np.sort(batch)
    return (
        torch.tensor(l_enc, requires_grad=requires_grad),
        torch.tensor(g_enc, requires_grad=requires_grad),
        torch.tensor(batch),
    )


def dense_reference(l_enc, g_enc, batch, beta, tau_plus, sign):
    """The official formula transcribed with dense 0/1 masks (masked entries become 0)."""
    n, g = l_enc.shape[0], g_enc.shape[0]
    pos_mask = F.one_hot(batch, g).to(l_enc.dtype)
    neg_mask = 1.0 - pos_mask
    res = l_enc @ g_enc.T
    p, q = res * pos_mask, res * neg_mask
    c = tau_plus / (1.0 - tau_plus)
    e_pos = (LOG2 - F.softplus(-p) - c * (F.softplus(-p) + p)).sum() / n
    if beta == 0:
        e_neg = (F.softplus(-q) + q - LOG2) / (1.0 - tau_plus)
    else:
        w = torch.exp(beta * sign * 2 * q / torch.maximum(q.max(), q.min().abs()))
        w = w / w.mean(dim=1, keepdim=True)
        e_neg = w * (F.softplus(-q) + q) / (1.0 - tau_plus) - LOG2
    return e_neg.sum() / (n * (g - 1)) - e_pos


CASE_IDS = [
    f"{c['set']}-{c['measure']}-b{c['beta']:g}-s{c['weight_sign']:+d}-t{c['tau_plus']:g}"
    for c in REFERENCE["cases"]
]


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=CASE_IDS)
def test_official_parity_values_and_gradients(case):
    l_enc, g_enc, batch = graph_inputs(**REFERENCE["sets"][case["set"]])
    if case["measure"] == "JSD":
        loss = infograph_jsd(l_enc, g_enc, batch)
    else:
        loss = infograph_jsd_hard(
            l_enc,
            g_enc,
            batch,
            beta=case["beta"],
            tau_plus=case["tau_plus"],
            weight_sign=case["weight_sign"],
        )
    gl, gg = torch.autograd.grad(loss, (l_enc, g_enc))
    assert loss.dtype == torch.float64
    assert_close(loss.item(), case["loss"], rtol=1e-10, atol=1e-12)
    assert_close(gl.norm().item(), case["grad_l_norm"], rtol=1e-10, atol=1e-12)
    assert_close(gg.norm().item(), case["grad_g_norm"], rtol=1e-10, atol=1e-12)
    if "grad_l" in case:
        assert_close(gl.numpy(), np.array(case["grad_l"]), rtol=1e-10, atol=1e-12)
        assert_close(gg.numpy(), np.array(case["grad_g"]), rtol=1e-10, atol=1e-12)
    else:
        assert_close(gl[0].numpy(), np.array(case["grad_l_row0"]), rtol=1e-10, atol=1e-12)
        assert_close(gg[0].numpy(), np.array(case["grad_g_row0"]), rtol=1e-10, atol=1e-12)


def test_fixture_covers_both_signs_measures_and_betas():
    cases = REFERENCE["cases"]
    assert {c["measure"] for c in cases} == {"JSD", "JSD_hard"}
    assert {c["weight_sign"] for c in cases if c["beta"] > 0} == {-1, 1}
    assert {c["beta"] for c in cases} >= {0.0, 1.0, 2.0, 10.0}
    assert {c["tau_plus"] for c in cases} >= {0.0, 0.1, 0.5}


@pytest.mark.parametrize("beta", [0.0, 0.5, 3.0])
@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("tau_plus", [0.0, 0.3])
def test_matches_dense_transcription(beta, sign, tau_plus):
    l_enc, g_enc, batch = graph_inputs(30, 6, 8, 5, 0.8, True)
    ours = infograph_jsd_hard(l_enc, g_enc, batch, beta=beta, tau_plus=tau_plus, weight_sign=sign)
    ref = dense_reference(l_enc, g_enc, batch, beta, tau_plus, sign)
    g_ours = torch.autograd.grad(ours, (l_enc, g_enc))
    g_ref = torch.autograd.grad(ref, (l_enc, g_enc))
    assert_close(ours.item(), ref.item(), rtol=1e-12, atol=1e-13)
    for a, b in zip(g_ours, g_ref):
        assert_close(a, b, rtol=1e-10, atol=1e-13)


def test_beta_tau_zero_is_infograph_jsd_closed_form():
    l_enc, g_enc, batch = graph_inputs(20, 5, 6, 3, 1.0, True)
    s = l_enc @ g_enc.T
    pos = F.one_hot(batch, 5).bool()
    n, g = s.shape
    closed = F.softplus(-s[pos]).mean() + F.softplus(s[~pos]).sum() / (n * (g - 1)) - 2 * LOG2
    for loss in (
        infograph_jsd(l_enc, g_enc, batch),
        infograph_jsd_hard(l_enc, g_enc, batch, beta=0.0, tau_plus=0.0, weight_sign=-1),
    ):
        assert_close(loss.item(), closed.item(), rtol=1e-13, atol=1e-14)


def test_beta_zero_is_debiased_jsd():
    """beta = 0: negative term of the JSD divided by (1 - tau+), positive term debiased."""
    l_enc, g_enc, batch = graph_inputs(20, 5, 6, 4, 1.0, False)
    tau = 0.2
    c = tau / (1 - tau)
    s = l_enc @ g_enc.T
    pos = F.one_hot(batch, 5).bool()
    n, g = s.shape
    e_pos = (LOG2 - F.softplus(-s[pos]) - c * F.softplus(s[pos])).mean() - (g - 1) * c * LOG2
    e_neg = (F.softplus(s[~pos]) - LOG2).sum() / (1 - tau) / (n * (g - 1))
    loss = infograph_jsd_hard(l_enc, g_enc, batch, beta=0.0, tau_plus=tau)
    assert_close(loss.item(), (e_neg - e_pos).item(), rtol=1e-13, atol=1e-14)


def test_small_beta_limit_is_beta_zero_plus_a_constant():
    l_enc, g_enc, batch = graph_inputs(16, 4, 5, 6, 1.0, True)
    tau, g = 0.5, 4
    zero = infograph_jsd_hard(l_enc, g_enc, batch, beta=0.0, tau_plus=tau)
    tiny = infograph_jsd_hard(l_enc, g_enc, batch, beta=1e-9, tau_plus=tau)
    shift = g * LOG2 * (tau / (1 - tau)) / (g - 1)
    assert_close(tiny.item(), zero.item() + shift, rtol=0, atol=1e-8)
    g_zero = torch.autograd.grad(zero, (l_enc, g_enc))
    g_tiny = torch.autograd.grad(tiny, (l_enc, g_enc))
    for a, b in zip(g_tiny, g_zero):
        assert_close(a, b, rtol=0, atol=1e-8)


def test_sign_changes_which_negatives_weigh_more():
    """+1 (paper) puts more weight on high-scoring negatives than -1 (code): a larger loss."""
    l_enc, g_enc, batch = graph_inputs(40, 8, 16, 1, 1.2, True, requires_grad=False)
    for beta in (1.0, 2.0, 10.0):
        plus = infograph_jsd_hard(l_enc, g_enc, batch, beta=beta, weight_sign=1)
        minus = infograph_jsd_hard(l_enc, g_enc, batch, beta=beta, weight_sign=-1)
        assert plus > minus


def test_reductions_and_per_node_losses():
    l_enc, g_enc, batch = graph_inputs(18, 4, 5, 7, 1.0, True, requires_grad=False)
    per_node = infograph_jsd_hard(l_enc, g_enc, batch, beta=2.0, reduction="none")
    assert per_node.shape == (18,)
    mean = infograph_jsd_hard(l_enc, g_enc, batch, beta=2.0)
    total = infograph_jsd_hard(l_enc, g_enc, batch, beta=2.0, reduction="sum")
    assert_close(per_node.mean().item(), mean.item(), rtol=1e-14, atol=1e-14)
    assert_close(per_node.sum().item(), total.item(), rtol=1e-14, atol=1e-14)


def test_node_and_graph_permutation_invariance():
    l_enc, g_enc, batch = graph_inputs(25, 5, 6, 8, 1.0, True, requires_grad=False)
    gen = torch.Generator().manual_seed(0)
    node_perm = torch.randperm(25, generator=gen)
    graph_perm = torch.randperm(5, generator=gen)  # new graph k is old graph graph_perm[k]
    inverse = torch.argsort(graph_perm)
    base = infograph_jsd_hard(l_enc, g_enc, batch, beta=2.0, tau_plus=0.3)
    moved = infograph_jsd_hard(
        l_enc[node_perm], g_enc[graph_perm], inverse[batch[node_perm]], beta=2.0, tau_plus=0.3
    )
    assert_close(moved.item(), base.item(), rtol=1e-13, atol=1e-14)


def test_gradcheck():
    l_enc, g_enc, batch = graph_inputs(7, 3, 3, 9, 0.8, True)
    for beta, sign in ((0.0, 1), (1.5, 1), (1.5, -1)):
        assert torch.autograd.gradcheck(
            lambda a, b, beta=beta, sign=sign: infograph_jsd_hard(
                a, b, batch, beta=beta, tau_plus=0.3, weight_sign=sign, reduction="none"
            ),
            (l_enc, g_enc),
        )


def test_large_beta_and_scores_stay_finite_and_match_float64():
    """beta = 60: exp(2 beta) overflows float32 in the official mean normalisation (inf/inf)."""
    l64, g64, batch = graph_inputs(30, 6, 8, 10, 2.0, True, requires_grad=False)
    ref = infograph_jsd_hard(l64, g64, batch, beta=60.0, weight_sign=1)
    ours = infograph_jsd_hard(l64.float(), g64.float(), batch, beta=60.0, weight_sign=1)
    assert torch.isfinite(ours)
    assert_close(ours.item(), ref.item(), rtol=1e-5, atol=1e-5)
    dense = dense_reference(l64.float(), g64.float(), batch, 60.0, 0.5, 1)
    assert not torch.isfinite(dense)  # the official formulation in float32


def test_bf16_autocast_is_finite_and_computed_in_float32():
    l_enc, g_enc, batch = graph_inputs(30, 6, 8, 11, 1.0, True, requires_grad=False)
    l_bf, g_bf = l_enc.bfloat16(), g_enc.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = infograph_jsd_hard(l_bf, g_bf, batch, beta=2.0)
    ref = infograph_jsd_hard(l_bf.double(), g_bf.double(), batch, beta=2.0)
    assert loss.dtype == torch.bfloat16 and torch.isfinite(loss)
    assert_close(loss.float().item(), ref.item(), rtol=1e-2, atol=1e-2)


def test_all_zero_negative_scores_give_uniform_weights():
    l_enc = torch.zeros(4, 3, dtype=torch.float64)
    g_enc = torch.ones(2, 3, dtype=torch.float64)
    batch = torch.tensor([0, 0, 1, 1])
    loss = infograph_jsd_hard(l_enc, g_enc, batch, beta=2.0, tau_plus=0.0)
    # every score is 0: E+ = 0, E- = G (log 2 - log 2) = 0
    assert_close(loss.item(), 0.0, rtol=0, atol=1e-15)


def test_graph_without_nodes_is_still_a_negative():
    l_enc, g_enc, _ = graph_inputs(6, 3, 4, 12, 1.0, False, requires_grad=False)
    batch = torch.tensor([0, 0, 0, 1, 1, 1])  # graph 2 has no nodes
    ref = dense_reference(l_enc, g_enc, batch, 1.0, 0.5, 1)
    loss = infograph_jsd_hard(l_enc, g_enc, batch, beta=1.0)
    assert_close(loss.item(), ref.item(), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beta": -1.0}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"beta": 1.0, "tau_plus": 1.0}, "tau_plus"),
        ({"beta": 1.0, "tau_plus": -0.1}, "tau_plus"),
        ({"beta": 1.0, "weight_sign": 0}, "weight_sign"),
        ({"beta": 1.0, "weight_sign": 2}, "weight_sign"),
        ({"beta": 1.0, "reduction": "max"}, "reduction"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    l_enc, g_enc, batch = graph_inputs(6, 2, 3, 0, 1.0, False, requires_grad=False)
    with pytest.raises((ValueError, TypeError), match=match):
        infograph_jsd_hard(l_enc, g_enc, batch, **kwargs)


def test_beta_is_required():
    l_enc, g_enc, batch = graph_inputs(6, 2, 3, 0, 1.0, False, requires_grad=False)
    with pytest.raises(TypeError, match="beta"):
        infograph_jsd_hard(l_enc, g_enc, batch)  # type: ignore[call-arg]


def test_bad_inputs():
    l_enc, g_enc, batch = graph_inputs(6, 2, 3, 0, 1.0, False, requires_grad=False)
    with pytest.raises(ValueError, match="same d"):
        infograph_jsd_hard(l_enc, g_enc[:, :2], batch, beta=1.0)
    with pytest.raises(ValueError, match="n_graphs >= 2"):
        infograph_jsd_hard(l_enc, g_enc[:1], torch.zeros(6, dtype=torch.long), beta=1.0)
    with pytest.raises(ValueError, match="batch must have shape"):
        infograph_jsd_hard(l_enc, g_enc, batch[:5], beta=1.0)
    with pytest.raises(ValueError, match="outside"):
        infograph_jsd_hard(l_enc, g_enc, batch + 1, beta=1.0)
    with pytest.raises(ValueError, match="outside"):
        infograph_jsd_hard(l_enc, g_enc, batch - 1, beta=1.0)
    with pytest.raises(TypeError, match="batch must be an integer"):
        infograph_jsd_hard(l_enc, g_enc, batch.double(), beta=1.0)
    with pytest.raises(TypeError, match=r"batch must be a torch\.Tensor"):
        infograph_jsd_hard(l_enc, g_enc, batch.tolist(), beta=1.0)
    with pytest.raises(ValueError, match="l_enc must be 2-D"):
        infograph_jsd_hard(l_enc[0], g_enc, batch, beta=1.0)
    with pytest.raises(ValueError, match="g_enc contains NaN"):
        infograph_jsd_hard(l_enc, g_enc * float("nan"), batch, beta=1.0)
    with pytest.raises(TypeError, match=r"l_enc must be a torch\.Tensor"):
        infograph_jsd_hard(l_enc.numpy(), g_enc, batch, beta=1.0)


def test_loss_needs_torch_only():
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from papershelf.hard_negatives.graph import infograph_jsd_hard\n"
        "l, g, b = torch.randn(5, 3), torch.randn(2, 3), torch.tensor([0, 0, 1, 1, 1])\n"
        "infograph_jsd_hard(l, g, b, beta=1.0)\n"
        "print('torch_geometric' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
