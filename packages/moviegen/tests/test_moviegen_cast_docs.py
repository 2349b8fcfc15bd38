"""The cast's usage snippet (README.md, "## Cast usage") runs as written."""

from __future__ import annotations

from pathlib import Path

from papershelf.core.testing import run_readme_quickstart

README = Path(__file__).resolve().parents[1] / "README.md"


def test_cast_usage_snippet_runs():
    ns = run_readme_quickstart(README, section_title="Cast usage")
    assert ns["hires"].shape == (2, 3, 6, 8, 8)
    assert ns["z"].shape == (2, 8, 16)


def test_cast_all_exports_resolve():
    import papershelf.moviegen.cast as cast

    assert all(hasattr(cast, name) for name in cast.__all__)
