"""Argument checks shared by every package: each names the argument, accepts Python numbers,
NumPy scalars and 0-d arrays or tensors, rejects ``bool``, NaN and infinity unless asked, and
never imports torch (tensors are recognised by duck typing).

>>> check_real("temperature", np.float32(0.5), low=0, inclusive=(False, True))
0.5
>>> check_int("max_iter", np.int64(5), low=1)
5
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any, TypeVar

import numpy as np

__all__ = ["check_array", "check_bool", "check_choice", "check_int", "check_real"]

T = TypeVar("T")


def _is_tensor(x: object) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "is_floating_point")


def _scalar(name: str, value: object) -> object:
    """A Python/NumPy scalar from ``value`` (0-d arrays and tensors unwrapped)."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a number, got a bool ({value!r})")
    if _is_tensor(value) or isinstance(value, np.ndarray):
        if getattr(value, "ndim", None) != 0:
            shape = tuple(getattr(value, "shape", ()))
            raise TypeError(f"{name} must be a scalar, got an array of shape {shape}")
        dtype = str(getattr(value, "dtype", ""))
        if "bool" in dtype:
            raise TypeError(f"{name} must be a number, got a bool ({value!r})")
        return value.item()  # type: ignore[attr-defined]
    return value


def _range_text(low: float | None, high: float | None, inc: tuple[bool, bool]) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>=' if inc[0] else '>'} {low:g}")
    if high is not None:
        parts.append(f"{'<=' if inc[1] else '<'} {high:g}")
    return " and ".join(parts)


def check_real(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    inclusive: bool | tuple[bool, bool] = True,
    allow_inf: bool = False,
) -> float:
    """``value`` as a finite ``float`` in ``[low, high]``, or an error naming ``name``.

    ``value`` may be an ``int``, ``float``, NumPy scalar, or 0-d array or tensor (not a
    ``bool``: ``TypeError``). ``low``/``high`` of ``None`` are unbounded; ``inclusive`` says
    whether each bound is allowed (one bool for both, or a pair). NaN, ``±inf`` (unless
    ``allow_inf``) and values out of range raise ``ValueError``.
    """
    v = _scalar(name, value)
    if not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    f = float(v)
    if math.isnan(f):
        raise ValueError(f"{name} must be a number, got NaN")
    if math.isinf(f) and not allow_inf:
        raise ValueError(f"{name} must be finite, got {f}")
    inc = (inclusive, inclusive) if isinstance(inclusive, bool) else inclusive
    bad_low = low is not None and (f < low or (f == low and not inc[0]))
    bad_high = high is not None and (f > high or (f == high and not inc[1]))
    if bad_low or bad_high:
        raise ValueError(f"{name} must be {_range_text(low, high, inc)}, got {f:g}")
    return f


def check_int(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]``, or an error naming ``name``.

    Accepts ``int``, NumPy integers and 0-d integer arrays or tensors; rejects ``bool`` and
    floats (even ``5.0``), so that a mistyped grid is noticed.
    """
    v = _scalar(name, value)
    if not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} ({value!r})")
    i = int(v)
    if (low is not None and i < low) or (high is not None and i > high):
        raise ValueError(f"{name} must be {_range_text(low, high, (True, True))}, got {i}")
    return i


def check_bool(name: str, value: object) -> bool:
    """``value`` as a ``bool`` (``True``/``False`` or a NumPy bool), or a ``TypeError``."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} ({value!r})")


def check_choice(name: str, value: T, choices: Collection[Any]) -> T:
    """``value`` if it is one of ``choices``, else a ``ValueError`` listing them."""
    try:
        ok = value in choices
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value


_KINDS = dict(
    b="boolean", i="signed integer", u="unsigned integer", f="floating-point", c="complex"
)


def _tensor_kind(x: Any) -> str:
    if x.dtype.is_complex:
        return "c"
    if x.is_floating_point():
        return "f"
    if "bool" in str(x.dtype):
        return "b"
    return "u" if "uint" in str(x.dtype) else "i"


def check_array(
    name: str,
    x: Any,
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype_kind: str | None = None,
    finite: bool = True,
    shape: tuple[int | None, ...] | None = None,
) -> Any:
    """Check an array argument; return it as a NumPy array, or the same tensor for a tensor.

    Parameters
    ----------
    name : str
        The argument's name, used in the message.
    x : array_like or torch.Tensor
        Array-likes go through ``np.asarray``; tensors are checked in place and returned.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    dtype_kind : str, optional
        Allowed NumPy dtype kinds, e.g. ``"f"``, ``"iu"``, ``"biuf"``.
    finite : bool
        Reject NaN and infinity (floating and complex kinds).
    shape : tuple of int or None, optional
        Required sizes per dimension (``None`` matches any size; implies ``ndim``).

    Raises ``TypeError`` for the wrong kind of object or dtype, ``ValueError`` for the wrong
    dimensions or shape, or NaN/inf where ``finite``.
    """
    tensor = _is_tensor(x)
    if not tensor:
        if isinstance(x, str | bytes) or x is None:
            raise TypeError(f"{name} must be an array, got {type(x).__name__}")
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be an array, got {type(x).__name__}: {err}") from err
        if x.dtype.kind == "O":
            raise TypeError(f"{name} must be a numeric array, got dtype object")
    kind = _tensor_kind(x) if tensor else x.dtype.kind
    if dtype_kind is not None and kind not in dtype_kind:
        want = " or ".join(_KINDS.get(k, k) for k in dtype_kind)
        raise TypeError(f"{name} must have a {want} dtype, got {x.dtype}")
    if shape is not None:
        ndim = len(shape)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}, got shape {tuple(x.shape)}")
    if shape is not None and any(s is not None and s != n for s, n in zip(shape, x.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if finite and kind in "fc":
        # one reduction first (a hot path in losses): a finite sum means no NaN/inf, since any
        # of them makes the sum non-finite; a sum that overflows falls back to the exact check
        if tensor:
            import torch  # a tensor came in, so torch is already imported

            ok = bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                ok = bool(np.isfinite(x.sum())) or bool(np.isfinite(x).all())
        if not ok:
            raise ValueError(f"{name} contains NaN or inf")
    return x
