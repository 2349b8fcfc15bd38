"""Overflow, degenerate heads, solver settings and convergence, lazy import, Keras Reshape."""

import logging
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from papershelf.kv_margin import k_variance, kv_margin, kv_measures, wasserstein1
from papershelf.kv_margin.kvariance import OTConvergenceWarning, class_k_variance


def _model_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))
    x = torch.randn(500, 20)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def test_kv_margin_is_scale_invariant_up_to_huge_logits():
    model, x, y = _model_and_data()
    base = kv_measures(model, x, y, "2")
    with torch.no_grad():  # logits ~1e20: float32 squared gradient norms would overflow
        model[2].weight.mul_(1e20)
        model[2].bias.mul_(1e20)
    big = kv_measures(model, x, y, "2")
    assert big["kv"].score == pytest.approx(base["kv"].score, rel=1e-5)
    assert big["gn"].score == pytest.approx(base["gn"].score, rel=1e-4)
    assert np.isfinite(big["kv"].lipschitz).all()


def test_zero_head_is_plus_inf_as_logged(caplog):
    model, x, y = _model_and_data()
    with torch.no_grad():
        model[2].weight.zero_()
        model[2].bias.zero_()
    with caplog.at_level(logging.WARNING, logger="papershelf.kv_margin.measure"):
        res = kv_measures(model, x, y, "2")
    assert res["kv"].score == float("inf")
    assert "+inf" in caplog.text
    assert not np.isnan(res["kv"].normalized_margins).any()
    assert res["gn"].score == 0.0 and not np.signbit(res["gn"].score)  # 0 / positive, not -0.0


@pytest.mark.parametrize("reg", [0, 0.0, float("nan"), -1, float("inf"), np.float64(-0.5)])
def test_sinkhorn_reg_must_be_positive_and_finite(reg):
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="reg"):
        k_variance(x, method="sinkhorn", reg=reg)
    with pytest.raises(ValueError, match="reg"):
        wasserstein1(x[:10], x[10:], method="sinkhorn", reg=reg)


def test_reg_without_sinkhorn_is_an_error_not_ignored():
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="reg"):
        k_variance(x, reg=0.1)


def test_solver_cap_warns_once_per_call_and_is_logged():
    x = np.random.default_rng(1).normal(size=(60, 3))
    with pytest.warns(OTConvergenceWarning, match="3 of 3") as rec:
        k_variance(x, m=10, n_splits=3, method="sinkhorn", reg=1e-3, num_iter=3, rng=0)
    assert len(rec) == 1
    with pytest.warns(OTConvergenceWarning):
        _, info = wasserstein1(x[:10], x[10:20], method="sinkhorn", reg=1e-3, num_iter=3, log=True)
    assert info["converged"] is False and info["method"] == "sinkhorn"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info = wasserstein1(x[:10], x[10:20], log=True)
        _, cinfo = class_k_variance(x, np.arange(60) % 2, log=True)
    assert info["converged"] and cinfo["converged"] and cinfo["n_problems"] == 2


def test_numpy_scalars_are_accepted_as_settings():
    x = np.random.default_rng(0).normal(size=(40, 3))
    a = k_variance(x, m=np.int64(10), n_splits=np.int32(2), rng=0)
    b = k_variance(x, m=10, n_splits=2, rng=0)
    assert a == b


def test_import_is_light():
    code = (
        "import sys, papershelf.kv_margin as k; print('torch' in sys.modules or 'ot' in sys.modules);"
        " k.kv_margin; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_margins_stays_callable_after_its_submodule_is_imported():
    import papershelf.kv_margin as k
    import papershelf.kv_margin.measure  # noqa: F401  (binds the submodule on the package)

    model, x, y = _model_and_data()
    out = k.margins(model, x, y, "2", grad=True)
    assert out.grad_norms is not None and out.grad_norms.dtype == torch.float64


def test_keras_reshape_layer_and_official_mlp_layout():
    from papershelf.kv_margin.pgdl import keras_to_torch

    rs = np.random.RandomState(0)
    w1, b1 = rs.randn(6, 8).astype("f4"), rs.randn(8).astype("f4")
    w2, b2 = rs.randn(8, 3).astype("f4"), rs.randn(3).astype("f4")
    config = [
        {"layer_name": "Dense", "units": 8, "activation": "relu"},
        {"layer_name": "Reshape", "target_shape": [2, 2, 2]},
        {"layer_name": "MaxPooling2D", "pool_size": 1},
        {"layer_name": "Flatten"},
        {"layer_name": "Dense", "units": 3},
    ]
    model = keras_to_torch(config, [6], [[w1, b1], [], [], [], [w2, b2]])
    x = rs.randn(5, 6).astype("f4")
    expected = np.maximum(x @ w1 + b1, 0) @ w2 + b2  # Reshape + 1x1 pool + Flatten: identity
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    score = kv_margin(model, torch.from_numpy(x).repeat(4, 1), np.arange(20) % 3, "2").score
    assert np.isfinite(score)
