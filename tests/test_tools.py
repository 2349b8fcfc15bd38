"""The repository tools: README blocks (tools/readme_blocks.py)."""

import sys
from pathlib import Path

import pytest

from papershelf.core.records import ResultRecord, records_to_json
from papershelf.core.testing import run_readme_quickstart

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from readme_blocks import (
    RESULTS_END,
    RESULTS_START,
    python_blocks,
    render_results_block,
    replace_results_block,
    section,
)


def test_readme_helpers(tmp_path):
    md = "# t\n\n## Usage\n\n```python\nx = 1\n```\n\ntext\n\n```python\ny = x + 1\n```\n\n## API\n\n```python\nz = 0\n```\n"
    assert python_blocks(section(md, "Usage")) == ["x = 1\n", "y = x + 1\n"]
    assert section(md, "Missing") == ""
    readme = tmp_path / "README.md"
    readme.write_text(md)
    ns = run_readme_quickstart(readme)
    assert ns["y"] == 2 and "z" not in ns

    results = tmp_path / "results.json"
    rec = ResultRecord(package="d", experiment="e", metric="m", values=[1.0], paper_value=1.0)
    results.write_text(
        records_to_json(
            [rec],
            command="papershelf reproduce d",
            mode="quick",
            seeds=[0],
            hardware="hw",
            runtime_s=1.0,
            figures=["f.png"],
        )
    )
    block = render_results_block(results)
    assert block.startswith(RESULTS_START) and block.endswith(RESULTS_END)
    assert "![f.png](results/f.png)" in block and "| e | m | 1 | 1 | reproduced |" in block
    doc = f"a\n{RESULTS_START}\nold\n{RESULTS_END}\nb\n"
    assert replace_results_block(doc, block) == f"a\n{block}\nb\n"
    with pytest.raises(ValueError, match="markers"):
        replace_results_block("no markers", block)
