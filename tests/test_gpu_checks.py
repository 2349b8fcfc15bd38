"""tools/gpu_checks.py: the item table, the per-item runner (exit, timeout, skip) and a smoke run."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "gpu_checks.py"
_spec = importlib.util.spec_from_file_location("gpu_checks", TOOL)
assert _spec is not None and _spec.loader is not None
gc = importlib.util.module_from_spec(_spec)
sys.modules["gpu_checks"] = gc  # dataclasses resolve the module by name
_spec.loader.exec_module(gc)


def test_list_prints_every_item_and_both_commands():
    out = subprocess.run(
        [sys.executable, str(TOOL), "--list"], capture_output=True, text=True, check=True
    ).stdout
    for item in gc.ITEMS:
        assert item.name in out
        assert " ".join(item.args(False)) in out and " ".join(item.args(True)) in out
        for path in item.args(False):
            if path.endswith(".py"):
                assert (gc.ROOT / path).is_file(), path
    assert len({i.name for i in gc.ITEMS}) == len(gc.ITEMS)
    # the estimates fit the default budget once the usually skipped items are left out
    assert sum(i.est for i in gc.ITEMS if i.name not in {"infoot-device"}) <= 480 + 60


def _item(tmp_path, body: str, **kw) -> object:
    script = tmp_path / "item.py"
    script.write_text(body)
    return gc.Item("fake", str(script), "--gpu", 5, 1, "--smoke", needs=(), **kw)


def _run(tmp_path, item, timeout=30.0):
    log_path = tmp_path / "logs.txt"
    log_path.write_text("earlier item output\n")
    with open(log_path, "a", encoding="utf-8") as log:
        return gc.run_item(item, True, timeout, gc.child_env(None, True), log), log_path


def test_run_item_exit_status_and_key_lines(tmp_path):
    body = "import sys\nprint('noise')\nprint('| 1 | 2 |')\nprint(sys.argv[1:])\nsys.exit(3)\n"
    row, log = _run(tmp_path, _item(tmp_path, body))
    assert row["status"] == "exit 3"
    assert row["key"] == ["| 1 | 2 |"]  # only this item's output, not the earlier one
    text = log.read_text()
    assert "earlier item output" in text and "['--smoke']" in text and "===== fake" in text


def test_run_item_timeout_kills_the_process_group(tmp_path):
    body = "import subprocess, sys, time\nprint('| started |', flush=True)\n"
    body += "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    body += "time.sleep(60)\n"
    row, _ = _run(tmp_path, _item(tmp_path, body), timeout=3.0)
    assert row["status"].startswith("timeout") and row["wall_s"] < 30
    assert row["key"] == ["| started |"]


def test_skips_are_clean(tmp_path, monkeypatch):
    row, _ = _run(tmp_path, gc.Item("x", str(TOOL), "", 5, 1, "", needs=("no_such_module_xyz",)))
    assert row["status"].startswith("skipped: missing module no_such_module_xyz")
    monkeypatch.setattr(gc, "OFFICIAL", tmp_path / "none")
    monkeypatch.delenv("SOME_OFFICIAL", raising=False)
    item = gc.Item("y", str(TOOL), "", 5, 1, "", needs=(), official="SOME_OFFICIAL=x")
    assert gc.skip_reason(item) == ""  # optional checkout
    item = gc.Item(
        "y", str(TOOL), "", 5, 1, "", needs=(), official="SOME_OFFICIAL=x", official_required=True
    )
    assert gc.skip_reason(item).startswith("skipped: no official checkout")
    (tmp_path / "none" / "x").mkdir(parents=True)
    assert gc.skip_reason(item) == ""
    assert gc.official_env(item)[0] == {"SOME_OFFICIAL": str(tmp_path / "none" / "x")}
    item = gc.Item("z", str(TOOL), "", 5, 1, "", needs=(), option="--no-such-option")
    assert gc.skip_reason(item) == "skipped: gpu_checks.py has no --no-such-option option yet"


@pytest.mark.slow
def test_smoke_runs_every_item(tmp_path):
    """Every item at its tiny CPU size (~2 min on a shared 2-core machine): exit 0 or a skip."""
    subprocess.run([sys.executable, str(TOOL), "--smoke", "--out", str(tmp_path)], check=True)
    summary = (tmp_path / "summary.md").read_text()
    assert (tmp_path / "machine.txt").read_text() and (tmp_path / "logs.txt").read_text()
    for item in gc.ITEMS:
        row = re.search(rf"^\| {re.escape(item.name)} \| `[^`]*` \| ([^|]+) \|", summary, re.M)
        assert row is not None, item.name
        status = row.group(1).strip()
        assert status == "exit 0" or re.fullmatch(r"skipped: \S.*", status), (item.name, status)
