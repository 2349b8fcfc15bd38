"""Test helpers shared by every member: devices, markers, tolerances, README quickstarts.

Import this only from tests: it imports pytest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from papershelf.core.runtime import cuda_available

# fmt: off
__all__ = [
    "assert_close", "devices", "requires_cuda", "run_readme_quickstart", "slow", "with_devices",
]
# fmt: on

slow = pytest.mark.slow
requires_cuda = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device")


def devices() -> list[Any]:
    """``pytest.param`` devices: CPU always, CUDA (marked ``gpu``) when there is one."""
    cuda = [pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)] if cuda_available() else []
    return [pytest.param("cpu", id="cpu"), *cuda]


def with_devices(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Parametrize a test over :func:`devices` as the ``device`` argument."""
    return pytest.mark.parametrize("device", devices())(fn)


def _to_numpy(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


def assert_close(
    actual: Any, expected: Any, *, rtol: float = 1e-6, atol: float = 1e-8, msg: str = ""
) -> None:
    """``numpy.testing.assert_allclose`` for numpy arrays, torch tensors and scalars alike."""
    actual, expected = _to_numpy(actual), _to_numpy(expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=msg)


def run_readme_quickstart(readme: str | Path, *, section_title: str = "Usage") -> dict[str, Any]:
    """Execute the python code blocks of a README's usage section, in order, in one namespace.

    Returns the namespace, so a test can check what the snippet computed.
    """
    text = Path(readme).read_text(encoding="utf-8")
    m = re.search(rf"^##\s+{re.escape(section_title)}\b.*?$(.*?)(?=^##\s|\Z)", text, re.S | re.M)
    body = m.group(1) if m else ""
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", body, re.S | re.M)
    if not blocks:
        raise AssertionError(f"{readme}: no ```python block in the '## {section_title}' section")
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    for code in blocks:
        exec(compile(code, f"{readme}:{section_title}", "exec"), namespace)
    return namespace
