"""The docstring examples run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["estimators", "mi", "solvers"])
def test_docstring_examples(module):
    mod = importlib.import_module(f"papershelf.infoot.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_public_api_is_exported():
    import papershelf.infoot as pkg

    for name in pkg.__all__:
        assert hasattr(pkg, name), name
    assert pkg.__version__ == "0.2.0"
    assert set(pkg.__all__) == {"FusedInfoOT", "InfoOT", "__version__", "fused_info_ot", "info_ot"}
    assert pkg.sinkhorn_log is not None  # a 0.1 top-level name still resolves
