"""Fuzzed contract (issue 22): every public function returns a finite, correctly shaped result or
raises ValueError/TypeError whose message names an argument."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from papershelf.hard_negatives import (
    DebiasedContrastiveLoss,
    HardNegativeLoss,
    debiased_loss,
    hcl_loss,
    nt_xent_loss,
)
from papershelf.hard_negatives._distributed import gather_with_grad
from papershelf.hard_negatives._loss import beta_schedule, hcl_from_labels, hcl_from_logits
from papershelf.hard_negatives.graph import infograph_jsd, infograph_jsd_hard

FUZZ = settings(
    derandomize=True,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ARGS = (
    "z1",
    "z2",
    "embeddings",
    "labels",
    "ref_emb",
    "ref_labels",
    "pos_logits",
    "neg_logits",
    "neg_mask",
    "beta",
    "tau_plus",
    "temperature",
    "estimator",
    "reduction",
    "normalize",
    "clamp",
    "detach_weights",
    "on_collapse",
    "beta0",
    "epoch",
    "epochs",
    "n_steps",
    "l_enc",
    "g_enc",
    "batch",
    "weight_sign",
    "loss",
    "indices_tuple",
)


def names_an_argument(exc: Exception) -> bool:
    text = str(exc)
    return any(re.search(rf"\b{a}\b", text) for a in ARGS)


def real_setting(low: float, high: float):
    """A setting as users pass it: float, numpy scalar, 0-d tensor/array, or a bad value."""
    good = st.floats(low, high, allow_nan=False, allow_infinity=False)
    kinds = st.integers(0, 11)
    bad = st.sampled_from([math.nan, math.inf, -1.0, True, "0.5", None])
    casts = [float, np.float32, np.float64, torch.tensor, np.array]
    return st.tuples(kinds, good, bad).map(
        lambda t: t[2] if t[0] == 11 else casts[t[0] % len(casts)](t[1])
    )


@st.composite
def matrices(draw, rows=None, cols=None):
    n = rows if rows is not None else draw(st.integers(1, 6))
    d = cols if cols is not None else draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    x = (scale * torch.randn(n, d, generator=g, dtype=torch.float64)).to(dtype)
    bad = draw(st.sampled_from([None] * 12 + [math.nan, math.inf, "zero-row"]))
    if bad == "zero-row":
        x[0] = 0.0
    elif bad is not None:
        x[draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))] = bad
    return x


def check_outcome(fn, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the clamp-collapse warning is part of the contract
        try:
            out = fn()
        except (ValueError, TypeError) as exc:
            assert names_an_argument(exc), f"error names no argument: {exc!r}"
            return
    assert isinstance(out, torch.Tensor)
    assert tuple(out.shape) == shape, (tuple(out.shape), shape)
    assert bool(torch.isfinite(out).all()), out


@FUZZ
@given(
    z1=matrices(),
    data=st.data(),
    beta=real_setting(0.0, 10.0),
    tau_plus=real_setting(0.0, 0.95),
    temperature=real_setting(0.01, 5.0),
    estimator=st.sampled_from(["hard"] * 4 + ["easy", "medium"]),
    reduction=st.sampled_from(["mean", "sum", "none"] * 3 + ["avg"]),
    normalize=st.sampled_from([True] * 6 + [False, 1]),
)
def test_hcl_loss_contract(z1, data, beta, tau_plus, temperature, estimator, reduction, normalize):
    same = data.draw(st.integers(0, 7)) < 7
    z2 = data.draw(matrices(rows=z1.shape[0], cols=z1.shape[1])) if same else data.draw(matrices())
    n = z1.shape[0]
    shape = (2 * n,) if reduction == "none" else ()
    kw = dict(
        beta=beta,
        tau_plus=tau_plus,
        temperature=temperature,
        estimator=estimator,
        reduction=reduction,
        normalize=normalize,
    )
    check_outcome(lambda: hcl_loss(z1, z2, **kw), shape)
    check_outcome(lambda: HardNegativeLoss(**kw)(z1, z2), shape)
    check_outcome(
        lambda: debiased_loss(
            z1, z2, tau_plus=tau_plus, temperature=temperature, reduction=reduction
        ),
        shape,
    )
    check_outcome(
        lambda: DebiasedContrastiveLoss(tau_plus=tau_plus, temperature=temperature)(z1, z2), ()
    )
    check_outcome(lambda: nt_xent_loss(z1, z2, temperature=temperature, reduction=reduction), shape)


@FUZZ
@given(
    data=st.data(),
    beta=real_setting(0.0, 10.0),
    tau_plus=real_setting(0.0, 0.95),
    temperature=real_setting(0.01, 5.0),
    clamp=st.sampled_from([True, False]),
    masked=st.booleans(),
    reduction=st.sampled_from(["mean", "none"]),
)
def test_hcl_from_logits_contract(data, beta, tau_plus, temperature, clamp, masked, reduction):
    neg = data.draw(matrices())
    pos = data.draw(matrices(rows=1, cols=neg.shape[0]))[0]
    if data.draw(st.integers(0, 7)) == 7:
        pos = pos[:-1]  # a mismatched B
    mask = None
    if masked:
        seed = data.draw(st.integers(0, 99))
        mask = torch.rand(neg.shape, generator=torch.Generator().manual_seed(seed)) > 0.3
    shape = (neg.shape[0],) if reduction == "none" else ()
    check_outcome(
        lambda: hcl_from_logits(
            pos,
            neg,
            beta=beta,
            tau_plus=tau_plus,
            temperature=temperature,
            clamp=clamp,
            neg_mask=mask,
            reduction=reduction,
        ),
        shape,
    )


@FUZZ
@given(
    emb=matrices(rows=None),
    data=st.data(),
    beta=real_setting(0.0, 5.0),
    temperature=real_setting(0.05, 2.0),
    label_kind=st.sampled_from(["int"] * 6 + ["float", "short"]),
)
def test_labels_form_contract(emb, data, beta, temperature, label_kind):
    n = emb.shape[0]
    labels = torch.tensor(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    if label_kind == "float":
        labels = labels.double()
    elif label_kind == "short":
        labels = labels[:-1]

    def run():
        out = hcl_from_labels(emb, labels, beta=beta, temperature=temperature, reduction="none")
        # one term per positive pair
        pairs = int(((labels[:, None] == labels[None, :]).sum() - n).item())
        assert out.shape == (pairs,)
        return out.sum()

    check_outcome(run, ())
    check_outcome(lambda: HardNegativeLoss(beta=beta, temperature=temperature)(emb, labels), ())


@FUZZ
@given(
    beta0=real_setting(0.0, 5.0),
    epoch=st.one_of(st.integers(-2, 40), st.sampled_from([np.int64(3), 2.5, True])),
    epochs=st.one_of(st.integers(0, 40), st.just(np.int32(18))),
    n_steps=st.integers(0, 12),
)
def test_beta_schedule_contract(beta0, epoch, epochs, n_steps):
    try:
        b = beta_schedule(beta0, epoch, epochs, n_steps)
    except (ValueError, TypeError) as exc:
        assert names_an_argument(exc), exc
        return
    assert math.isfinite(b) and 0.0 <= b <= float(beta0)


@FUZZ
@given(
    l_enc=matrices(),
    data=st.data(),
    beta=real_setting(0.0, 10.0),
    tau_plus=real_setting(0.0, 0.95),
    weight_sign=st.sampled_from([1, -1] * 3 + [0, True, 1.0]),
)
def test_graph_loss_contract(l_enc, data, beta, tau_plus, weight_sign):
    n = l_enc.shape[0]
    g_enc = data.draw(matrices(rows=data.draw(st.integers(1, 4)), cols=l_enc.shape[1]))
    batch = torch.tensor(
        data.draw(st.lists(st.integers(0, g_enc.shape[0] - 1), min_size=n, max_size=n))
    )
    check_outcome(
        lambda: infograph_jsd_hard(
            l_enc, g_enc, batch, beta=beta, tau_plus=tau_plus, weight_sign=weight_sign
        ),
        (),
    )
    check_outcome(lambda: infograph_jsd(l_enc, g_enc, batch), ())


def test_gather_outside_a_process_group_is_the_identity():
    x = torch.randn(3, 2)
    assert gather_with_grad(x) is x


@pytest.mark.parametrize("value", [np.float32(0.5), torch.tensor(0.5), np.array(0.5)])
def test_scalar_types_are_settings(value):
    z = torch.randn(4, 3)
    assert torch.isfinite(hcl_loss(z, z + 0.1, temperature=value, beta=value, tau_plus=value / 5))
