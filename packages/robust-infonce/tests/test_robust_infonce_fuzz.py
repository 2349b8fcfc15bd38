"""The fuzzed contract of every public loss: a finite, correctly shaped result, ``±inf`` only
where the true value overflows the dtype, or a ValueError/TypeError that names an argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from papershelf.robust_infonce import RINCELoss, info_nce_loss, rince_loss
from papershelf.robust_infonce.losses import moco_rince_loss, rince_from_labels, rince_from_logits

ARGS = (
    "z1",
    "z2",
    "logits",
    "target",
    "mask",
    "embeddings",
    "labels",
    "query",
    "key",
    "q",
    "lam",
    "temperature",
    "normalize",
    "layout",
    "reduction",
    "ref_emb",
    "ref_labels",
    "indices_tuple",
)
FUZZ = settings(
    derandomize=True, max_examples=25, deadline=None, suppress_health_check=list(HealthCheck)
)

scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, 1e-8, 0.5, 1.0, 2.0, -0.5, True, False]),
    st.floats(0.01, 1.0).map(np.float32),
    st.floats(0.01, 1.0).map(np.float64),
    st.floats(0.01, 1.0).map(torch.tensor),
    st.just(torch.tensor([0.5, 0.5])),
)


@st.composite
def views(draw, ndim=2):
    n = draw(st.integers(1, 6))
    d = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0]))
    z = [scale * torch.randn(n, d, generator=g, dtype=dtype) for _ in range(2)]
    poison = draw(st.sampled_from([None, math.nan, math.inf, -math.inf]))
    if poison is not None:
        z[draw(st.integers(0, 1))][0, 0] = poison
    if draw(st.booleans()):  # mismatched shapes
        z[1] = z[1][: max(1, n - 1)]
    return z


def check_outcome(call):
    """Run ``call``; a result must be finite (or ±inf), an error must name an argument."""
    try:
        out = call()
    except (ValueError, TypeError) as err:
        message = str(err)
        out = None
    else:
        message = ""
    if out is None:
        assert any(a in message for a in ARGS), f"error names no argument: {message}"
        return None
    assert isinstance(out, torch.Tensor)
    assert not torch.isnan(out).any(), "NaN from finite inputs"
    return out


@FUZZ
@given(
    views(),
    scalars,
    scalars,
    scalars,
    st.sampled_from(["simclr", "cross", "moco"]),
    st.sampled_from(["mean", "sum", "none", "avg"]),
    st.booleans(),
)
def test_rince_loss_contract(z, q, lam, t, layout, reduction, normalize):
    out = check_outcome(
        lambda: rince_loss(
            z[0],
            z[1],
            q=q,
            lam=lam,
            temperature=t,
            layout=layout,
            reduction=reduction,
            normalize=normalize,
        )
    )
    if out is not None:
        n = z[0].shape[0]
        assert out.shape == ((2 * n,) if reduction == "none" else ())
        assert out.dtype == z[0].dtype
        if not torch.isfinite(out).all():  # only where float64 says the value is out of range
            big = rince_loss(
                z[0].double(),
                z[1].double(),
                q=q,
                lam=lam,
                temperature=t,
                layout=layout,
                reduction="none",
                normalize=normalize,
            )
            assert (~torch.isfinite(big) | (big.abs() > torch.finfo(z[0].dtype).max)).any()


@FUZZ
@given(views(), scalars, st.sampled_from(["mean", "none"]))
def test_info_nce_and_module_contract(z, t, reduction):
    check_outcome(lambda: info_nce_loss(z[0], z[1], temperature=t, reduction=reduction))
    check_outcome(lambda: RINCELoss(temperature=t, reduction=reduction)(z[0], z[1]))
    check_outcome(lambda: moco_rince_loss(z[0], z[1], temperature=t, reduction=reduction))


@FUZZ
@given(views(), scalars, scalars, st.integers(0, 3), st.booleans())
def test_logits_and_labels_contract(z, q, lam, n_classes, with_mask):
    logits = z[0]
    b, k = logits.shape
    target = torch.zeros(b, dtype=torch.long) if k else None
    mask = torch.zeros(b, k, dtype=torch.bool) if with_mask else None
    if with_mask and k > 1:
        mask[:, -1] = True
    out = check_outcome(lambda: rince_from_logits(logits, target, q=q, lam=lam, mask=mask))
    if out is not None:
        assert out.shape == ()
    labels = torch.arange(b) % max(n_classes, 1)
    out = check_outcome(lambda: rince_from_labels(logits, labels, q=q, lam=lam))
    if out is not None:
        assert out.shape == ()
    check_outcome(lambda: RINCELoss(q=0.5)(logits, labels.float()))  # float labels: a view


def test_fuzz_settings_are_derandomised():
    assert FUZZ.derandomize and FUZZ.max_examples <= 25


@pytest.mark.parametrize("bad", [None, "x", [[1.0, 2.0]], np.ones((2, 2))])
def test_non_tensors_are_rejected_by_name(bad):
    with pytest.raises(TypeError, match=r"z1 must be a torch\.Tensor"):
        rince_loss(bad, torch.ones(2, 2))
