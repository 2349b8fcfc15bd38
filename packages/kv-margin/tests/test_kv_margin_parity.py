"""Parity with the official kV-Margin / kV-GN-Margin code.

The reference numbers in ``reference/official_reference.json`` were computed by running the
official ``complexity.py`` files (chingyaoc/kV-Margin@0ab9068, TensorFlow, outside the
workspace; see ``reference/make_official_reference.py``) on a fixed 9-layer Keras CNN and fixed
inputs. Here the same network is rebuilt in torch from the same seeded weights.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from papershelf.kv_margin import kv_gn_margin, kv_margin, wasserstein1

REF = json.loads((Path(__file__).parent / "reference" / "official_reference.json").read_text())


def fixed_weights():
    rs = np.random.RandomState(1)
    shapes = [(3, 3, 1, 4), (4,), (3, 3, 4, 4), (4,), (3, 3, 4, 8), (8,), (3, 3, 8, 8), (8,),
              (3, 3, 8, 8), (8,), (8, 16), (16,), (16, 10), (10,)]  # fmt: skip
    out = []
    for s in shapes:
        fan_in = int(np.prod(s[:-1])) if len(s) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if len(s) > 1 else 0.1
        out.append((rs.randn(*s) * scale).astype(np.float32))
    return out


def fixed_data(n):
    rs = np.random.RandomState(0)
    x = rs.rand(n, 8, 8, 1).astype(np.float32)
    y = rs.randint(0, 10, size=n).astype(np.int64)
    return torch.from_numpy(x).permute(0, 3, 1, 2).double(), y


def torch_twin():
    """The Keras model layer by layer: index i here is Keras layer i (activation included)."""

    def conv(i, o, stride=1, pad=1):
        return nn.Sequential(nn.Conv2d(i, o, 3, stride=stride, padding=pad), nn.ReLU())

    model = nn.Sequential(
        conv(1, 4), conv(4, 4), conv(4, 8, 2, 0), conv(8, 8), conv(8, 8),
        nn.MaxPool2d(2), nn.Flatten(), nn.Sequential(nn.Linear(8, 16), nn.ReLU()), nn.Linear(16, 10),
    )  # fmt: skip
    w = [torch.from_numpy(a) for a in fixed_weights()]
    with torch.no_grad():
        for k in range(5):
            model[k][0].weight.copy_(w[2 * k].permute(3, 2, 0, 1))  # HWIO -> OIHW
            model[k][0].bias.copy_(w[2 * k + 1])
        model[7][0].weight.copy_(w[10].T)
        model[7][0].bias.copy_(w[11])
        model[8].weight.copy_(w[12].T)
        model[8].bias.copy_(w[13])
    return model.double()


# official layer choice: shallow -> first of [2, 3, 4, 5] with `strides` (the strided conv, 2);
# deep -> first of [8, 9, 6, 7, 5, ...] with `strides` (the max-pool, 5); features = its input
@pytest.mark.parametrize("n", [300, 2300])
@pytest.mark.parametrize(("depth", "layer"), [("shallow", "2"), ("deep", "5")])
@pytest.mark.parametrize(("variant", "fn"), [("kv", kv_margin), ("gn", kv_gn_margin)])
def test_official_measure_parity(n, depth, layer, variant, fn):
    x, y = fixed_data(n)
    res = fn(torch_twin(), x, y, layer, official=True, seed=0)
    # the official run is float32 TensorFlow, ours float64 torch
    assert res.score == pytest.approx(REF[f"{variant}_{depth}_n{n}"], rel=1e-5)


def test_official_subsample_indices():
    x, y = fixed_data(2300)
    res = kv_margin(torch_twin(), x, y, "2", official=True, seed=0)
    assert len(res.indices) == 2000
    assert res.indices[:10].tolist() == REF["subsample_first10_n2300"]
    # the median uses all 2000 = 10 chunks of 200; with 300 points the last 100 are dropped
    assert len(res.normalized_margins) == 2000
    x3, y3 = fixed_data(300)
    assert len(kv_margin(torch_twin(), x3, y3, "2", official=True).normalized_margins) == 200
    assert len(kv_margin(torch_twin(), x3, y3, "2").normalized_margins) == 300


def test_official_w1_distance():
    rs = np.random.RandomState(3)
    a, b = rs.randn(40, 7), rs.randn(40, 7) + 0.5
    assert abs(wasserstein1(a, b) - REF["w1_fixed_40x7"]) < 1e-12
    assert abs(wasserstein1(a, b, method="assignment") - REF["w1_fixed_40x7"]) < 1e-12
