import math

import numpy as np
import pytest
import torch

from papershelf.core.validation import check_array, check_bool, check_choice, check_int, check_real


@pytest.mark.parametrize(
    "value", [0.5, 1, np.float32(0.5), np.float64(0.5), np.array(0.5), torch.tensor(0.5)]
)
def test_check_real_accepts_numbers_numpy_and_0d(value):
    assert check_real("temperature", value, low=0) == pytest.approx(float(value))


@pytest.mark.parametrize(
    ("value", "err", "match"),
    [
        (math.nan, ValueError, "temperature must be a number, got NaN"),
        (np.float32("nan"), ValueError, "got NaN"),
        (math.inf, ValueError, "temperature must be finite"),
        (True, TypeError, "temperature must be a number, got a bool"),
        (np.bool_(True), TypeError, "bool"),
        (torch.tensor(True), TypeError, "bool"),
        ("0.5", TypeError, "temperature must be a real number"),
        (1 + 2j, TypeError, "real number"),
        (np.array([0.5, 1.0]), TypeError, "scalar"),
        (torch.ones(2), TypeError, "scalar"),
        (0.0, ValueError, r"temperature must be > 0 and <= 1, got 0"),
        (1.5, ValueError, r"temperature must be > 0 and <= 1, got 1.5"),
    ],
)
def test_check_real_rejects_with_the_name(value, err, match):
    with pytest.raises(err, match=match):
        check_real("temperature", value, low=0, high=1, inclusive=(False, True))


def test_check_real_inf_when_allowed():
    assert check_real("scale", math.inf, low=0, allow_inf=True) == math.inf
    with pytest.raises(ValueError, match="scale"):
        check_real("scale", -math.inf, low=0, allow_inf=True)


def test_check_int():
    for v in (5, np.int64(5), np.int32(5), np.array(5), torch.tensor(5)):
        assert check_int("max_iter", v, low=1) == 5
    for v, err in ((5.0, TypeError), (True, TypeError), (0, ValueError), ("5", TypeError)):
        with pytest.raises(err, match="max_iter"):
            check_int("max_iter", v, low=1)


def test_check_bool_and_choice():
    assert check_bool("normalize", np.bool_(False)) is False
    with pytest.raises(TypeError, match="normalize"):
        check_bool("normalize", 1)
    assert check_choice("reduction", "mean", ("mean", "sum")) == "mean"
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum'; got 'avg'"):
        check_choice("reduction", "avg", ("mean", "sum"))
    with pytest.raises(ValueError, match="reduction"):
        check_choice("reduction", ["mean"], {"mean"})  # unhashable


def test_check_array_numpy_and_tensor():
    x = check_array("X", [[1.0, 2.0]], ndim=2, dtype_kind="f")
    assert isinstance(x, np.ndarray) and x.shape == (1, 2)
    t = torch.zeros(3, 2, dtype=torch.float32)
    assert check_array("z", t, shape=(None, 2), dtype_kind="f") is t  # same tensor back
    cases = [
        (np.array([1.0, np.nan]), {}, ValueError, "X contains NaN or inf"),
        (torch.tensor([1.0, math.inf]), {}, ValueError, "X contains NaN or inf"),
        (np.zeros((2, 3)), {"ndim": 1}, ValueError, "X must be 1-D, got shape"),
        (np.zeros((2, 3)), {"shape": (None, 4)}, ValueError, r"X must have shape \(\*, 4\)"),
        (np.arange(3), {"dtype_kind": "f"}, TypeError, "X must have a floating-point dtype"),
        (torch.arange(3), {"dtype_kind": "f"}, TypeError, "floating-point"),
        ("abc", {}, TypeError, "X must be an array"),
        (None, {}, TypeError, "X must be an array"),
        ([object()], {}, TypeError, "numeric"),
    ]
    for value, kw, err, match in cases:
        with pytest.raises(err, match=match):
            check_array("X", value, **kw)
    # NaN allowed when asked, integer arrays never checked for NaN
    assert check_array("X", [np.nan], finite=False).shape == (1,)


def test_validation_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys; from papershelf.core.validation import check_real, check_array;"
        "check_real('a', 1.0); check_array('b', [1.0]); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
