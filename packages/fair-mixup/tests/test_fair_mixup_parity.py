"""Parity with the official code (chingyaoc/fair-mixup @ af763af).

The reference numbers in ``reference/`` were produced by running the official
``adult/utils.py::train_dp`` / ``train_eo`` (``.cuda()`` patched to identity, one iteration)
and ``adult/dataset.py::preprocess_adult_data`` (with aif360 + pandas) on the inputs rebuilt
below; no official code is part of this package. Our step replays the same numpy draws.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from papershelf.core.testing import assert_close
from papershelf.fair_mixup import AdultMLP, load_adult, train_step

REF = Path(__file__).parent / "reference"


def _fixed_inputs():
    rs = np.random.RandomState(2021)
    X = rs.normal(size=(120, 6))
    A = (rs.uniform(size=120) < 0.5).astype(float)
    y = (rs.uniform(size=120) < 0.5).astype(float)
    return X, A, y


def _fixed_net() -> AdultMLP:
    net = AdultMLP(6)
    rs = np.random.RandomState(7)
    with torch.no_grad():
        for p in net.parameters():  # fc1, fc2, fc3 weights/biases in the official order
            p.copy_(torch.tensor(rs.normal(scale=0.2, size=tuple(p.shape)), dtype=torch.float32))
    return net


def _replay_draws(X, A, y, mode: str, method: str):
    """The official sampler's numpy calls, in order (legacy global RNG, seed 123)."""
    rs = np.random.RandomState(123)  # the same stream as np.random.seed(123)
    if mode == "dp":
        i0 = rs.choice(np.where(A == 0)[0], size=16, replace=False).tolist()
        i1 = rs.choice(np.where(A == 1)[0], size=16, replace=False).tolist()
    else:
        i0, i1 = [], []
        for s, out in ((0, i0), (1, i1)):
            for lab in range(2):
                cell = list(set(np.where(A == s)[0]) & set(np.where(y == lab)[0]))
                out += rs.choice(cell, size=8, replace=False).tolist()
    t = None
    if method == "mixup":
        t = (
            float(rs.beta(1, 1))
            if mode == "dp"
            else (
                float(rs.beta(1, 1)),
                float(rs.beta(1, 1)),
            )
        )
    return i0, i1, t


@pytest.mark.parametrize("mode", ["dp", "eo"])
@pytest.mark.parametrize("method", ["mixup", "GapReg"])
def test_one_training_step_matches_official(mode, method):
    ref = json.loads((REF / "official_train_step.json").read_text())[f"{mode}_{method}"]
    X, A, y = _fixed_inputs()
    i0, i1, t = _replay_draws(X, A, y, mode, method)
    net = _fixed_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.tensor(X).float(), torch.tensor(y).float()
    ours = train_step(
        net,
        opt,
        xt[i0],
        yt[i0],
        xt[i1],
        yt[i1],
        method="mixup" if method == "mixup" else "gapreg",
        mode=mode,
        lam=0.5,
        t=t,
    )
    assert_close(ours["reg"], ref["reg"], rtol=1e-5, atol=1e-7)
    assert_close(ours["loss"], ref["loss"], rtol=1e-6)
    assert_close(net.fc1.weight[0], ref["fc1_weight_row0"], rtol=1e-5, atol=1e-7)
    assert_close(net.fc3.weight[0, :8], ref["fc3_weight_first8"], rtol=1e-5, atol=1e-7)
    assert_close(float(net.fc3.bias[0].detach()), ref["fc3_bias"], rtol=1e-5, atol=1e-7)
    total = float(sum(p.detach().abs().sum() for p in net.parameters()))
    assert_close(total, ref["param_abs_sum"], rtol=1e-6)


@pytest.fixture(scope="module")
def official_ref():
    return json.loads((REF / "official_adult_preprocessing.json").read_text())


@pytest.mark.parametrize("seed", [0, 3])
def test_official_preprocessing_matches_aif360_pipeline(official_ref, seed):
    ref = official_ref[str(seed)]
    d = load_adult(seed=seed, preprocessing="official")
    assert [list(d.X_train.shape), list(d.X_val.shape), list(d.X_test.shape)] == ref["shape"]
    for key, x in (("train", d.X_train), ("val", d.X_val), ("test", d.X_test)):
        assert x.sum(0).astype(int).tolist() == ref[f"col_sum_{key}"]
    assert [int(d.y_train.sum()), int(d.y_val.sum()), int(d.y_test.sum())] == ref["y"]
    assert [int(d.a_train.sum()), int(d.a_val.sum()), int(d.a_test.sum())] == ref["a"]
    np.testing.assert_array_equal(d.X_train[:3], np.array(ref["first_rows_train"]))
    assert d.y_train[:10].tolist() == ref["y_first"]
    assert d.a_train[:10].tolist() == ref["a_first"]
