"""kV-Margin and kV-GN-Margin: definitions, invariances and bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from papershelf.core.testing import with_devices
from papershelf.kv_margin import (
    class_k_variance,
    kv_gn_margin,
    kv_margin,
    kv_measure_from_arrays,
    kv_measures,
    margins,
)


def setup(seed=0, n=120, C=3):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, C))
    x = torch.randn(n, 4)
    y = torch.arange(n) % C
    return model.double(), x.double(), y


def test_kv_margin_matches_its_definition():
    model, x, y = setup()
    res = kv_margin(model, x, y, "2", seed=3)
    out = margins(model, x, y, "2", grad=True)
    var = class_k_variance(out.features, y.numpy(), rng=np.random.RandomState(3))
    gn, yy = out.grad_norms.numpy(), y.numpy()
    lip = np.array([gn[yy == c].max() for c in range(3)])
    w = np.bincount(yy) / len(yy)
    expected = -np.median(out.margins.numpy()) / np.sum(w * lip * var)
    assert res.score == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(res.lipschitz, lip)
    np.testing.assert_allclose(res.k_variance, var)
    gn_res = kv_gn_margin(model, x, y, "2", seed=3)
    rho = out.margins.numpy() / (gn + 1e-6)
    assert gn_res.score == pytest.approx(-np.median(rho) / np.sum(w * var), rel=1e-12)


def test_invariant_to_scaling_the_logits():
    model, x, y = setup(1)
    a = kv_margin(model, x, y, "2", seed=0)
    b = kv_gn_margin(model, x, y, "2", seed=0, eps=0.0)
    with torch.no_grad():
        model[4].weight.mul_(7.0)
        model[4].bias.mul_(7.0)
    assert kv_margin(model, x, y, "2", seed=0).score == pytest.approx(a.score, rel=1e-10)
    assert kv_gn_margin(model, x, y, "2", seed=0, eps=0.0).score == pytest.approx(
        b.score, rel=1e-10
    )


def test_invariant_to_rescaling_features_against_head():
    # phi -> c * phi with the next layer's weights divided by c: Var x c, Lip x 1/c
    model, x, y = setup(2)
    a = kv_margin(model, x, y, "4", seed=0)
    b = kv_gn_margin(model, x, y, "4", seed=0, eps=0.0)
    with torch.no_grad():
        model[2].weight.mul_(5.0)  # ReLU is positively homogeneous
        model[2].bias.mul_(5.0)
        model[4].weight.div_(5.0)
    assert kv_margin(model, x, y, "4", seed=0).score == pytest.approx(a.score, rel=1e-10)
    assert kv_gn_margin(model, x, y, "4", seed=0, eps=0.0).score == pytest.approx(
        b.score, rel=1e-10
    )


def test_quantile_and_splits_options():
    model, x, y = setup(3)
    r = kv_margin(model, x, y, "2", quantile=0.25, n_splits=3, n_jobs=2)
    assert r.score == pytest.approx(-np.quantile(r.normalized_margins, 0.25))
    assert r.normalized_margins.shape == (120,)


def test_from_arrays_class_weights_and_collapsed_features():
    feats = np.zeros((20, 3))
    labels = np.arange(20) % 2
    res = kv_measure_from_arrays(feats, labels, np.ones(20), np.ones(20))
    assert res.normalizer == 0.0 and res.score == -np.inf
    w = kv_measure_from_arrays(
        np.random.default_rng(0).normal(size=(20, 3)), labels, np.ones(20), np.ones(20),
        class_weights=[0.0, 1.0], rng=0,
    )  # fmt: skip
    assert w.normalizer == pytest.approx(w.k_variance[1])


def test_bad_inputs():
    model, x, y = setup(4, n=30)
    y_few = y.clone()
    y_few[:] = 0
    y_few[0] = 1  # class 1 has a single sample
    with pytest.raises(ValueError, match="class 1 has 1 point"):
        kv_margin(model, x, y_few, "2")
    with pytest.raises(ValueError, match="fewer than 2m"):
        kv_margin(model, x, y, "2", m=6)
    with pytest.raises(ValueError, match="m must be >= 1"):
        kv_gn_margin(model, x, y, "2", m=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        kv_margin(model, x, torch.arange(30) % 4, "2")
    with pytest.raises(ValueError, match="does not exist"):
        kv_margin(model, x, y, "head")
    with pytest.raises(ValueError, match="variant"):
        kv_measure_from_arrays(np.zeros((4, 2)), [0, 0, 1, 1], np.ones(4), np.ones(4), variant="x")
    with pytest.raises(ValueError, match="quantile"):
        kv_margin(model, x, y, "2", quantile=2.0)
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        kv_margin(model, x.numpy(), y, "2")


def test_input_hook_equals_output_hook_of_previous_layer():
    model, x, y = setup(5)
    a = kv_margin(model, x, y, "2", hook="input", seed=1)
    b = kv_margin(model, x, y, "1", hook="output", seed=1)
    assert a.score == b.score


@with_devices
def test_measures_on_device(device):
    model, x, y = setup(6)
    ref = kv_measures(model, x, y, "2", seed=2)
    res = kv_measures(model.to(device), x.to(device), y.to(device), "2", seed=2)
    for k in ("kv", "gn"):
        assert res[k].score == pytest.approx(ref[k].score, rel=1e-9)
    sk = kv_measures(model, x.to(device), y.to(device), "2", seed=2, method="sinkhorn")
    assert sk["kv"].score == pytest.approx(ref["kv"].score, rel=0.1)  # entropic bias: a few %


def test_options_are_checked():
    model, x, y = setup()
    with pytest.raises(TypeError, match="eps"):
        kv_margin(model, x, y, "2", eps=0.1)  # eps only enters kV-GN-Margin
    with pytest.raises(TypeError, match="sead"):
        kv_gn_margin(model, x, y, "2", sead=0)


def test_seed_none_with_subsample_and_bad_seed_or_subsample_types():
    model, x, y = setup()
    for kw in ({"official": True}, {"subsample": 60}):
        res = kv_margin(model, x, y, "2", seed=None, **kw)  # was an AttributeError
        assert np.isfinite(res.score)
    with pytest.raises(TypeError, match="seed"):
        kv_margin(model, x, y, "2", seed="0")
    for bad in (60.0, True):
        with pytest.raises(TypeError, match="subsample"):
            kv_margin(model, x, y, "2", subsample=bad)
    with pytest.raises(ValueError, match="subsample"):
        kv_margin(model, x, y, "2", subsample=0)


def test_class_weights_of_the_wrong_length_are_refused_not_zero_padded():
    model, x, y = setup()
    with pytest.raises(ValueError, match="class_weights"):
        kv_margin(model, x, y, "2", class_weights=[0.5, 0.5])  # 3 logits
    with pytest.raises(ValueError, match="class_weights"):
        kv_measures(model, x, y, "2", class_weights=[[1 / 3] * 3])
    res = kv_margin(model, x, y, "2", class_weights=np.full(3, 1 / 3))
    assert res.score == pytest.approx(kv_margin(model, x, y, "2").score)  # balanced labels


def test_batch_size_must_be_an_integer():
    model, x, y = setup()
    for bad in (7.9, True):  # were truncated to 7 / 1 silently
        with pytest.raises(TypeError, match="batch_size"):
            kv_margin(model, x, y, "2", batch_size=bad)
    with pytest.raises(ValueError, match="batch_size"):
        margins(model, x, y, "2", batch_size=0)
    assert kv_margin(model, x, y, "2", batch_size=np.int64(7)).score == pytest.approx(
        kv_margin(model, x, y, "2").score, rel=1e-12
    )


def test_from_arrays_validates_margin_rows_and_k_variances():
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(90, 4)), np.arange(90) % 3
    rho, gn = rng.normal(size=90), np.abs(rng.normal(size=90)) + 0.1
    for rows, err in (([0, 1, 500], ValueError), ([], ValueError), (np.zeros(90, bool), ValueError),
                      (np.ones(5, bool), ValueError), ([0.5, 1.5], TypeError)):  # fmt: skip
        with pytest.raises(err, match="margin_rows"):  # were IndexErrors / a NaN quantile
            kv_measure_from_arrays(f, y, rho, gn, margin_rows=rows)
    mask = np.arange(90) < 40
    assert kv_measure_from_arrays(f, y, rho, gn, margin_rows=mask, rng=0).score == pytest.approx(
        kv_measure_from_arrays(f, y, rho, gn, margin_rows=np.arange(40), rng=0).score
    )
    with pytest.raises(ValueError, match="k_variances"):  # a negative one flipped the sign
        kv_measure_from_arrays(None, y, rho, gn, k_variances=[1.0, -2.0, 3.0])
    with pytest.raises(ValueError, match="k_variances"):
        kv_measure_from_arrays(None, y, rho, gn, k_variances=[1.0, np.inf, 3.0])
