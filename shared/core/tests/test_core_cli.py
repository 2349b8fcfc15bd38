import json
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from papershelf.core import cli, registry
from papershelf.core.io import _umask
from papershelf.core.registry import (
    Reproduction,
    UnknownReproductionError,
    discover,
    get_reproduction,
)
from papershelf.core.reproduce import run_reproduction

FAKE = """
from papershelf.core import ResultRecord
from papershelf.core.registry import Reproduction

def make(name, run):
    return Reproduction(name=name, distribution="papershelf-" + name, title="Paper " + name,
                        authors="A. Author", venue="Conf 2020", url="https://example.org",
                        bibtex="@article{%s, title={Paper %s}}" % (name, name),
                        run="fakepaper:" + run, headline="headline " + name)

GOOD = make("good", "run_good")
BAD = make("bad", "run_bad")
EMPTY = make("empty", "run_empty")
NOT_A_REPRO = 42

def run_good(ctx):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    ctx.save_figure(fig, "curve.png")
    return [ResultRecord(package="good", experiment="e", metric="m",
                         values=[0.5 + s for s in ctx.seeds], paper_value=0.4,
                         config={"full": ctx.full, "device": ctx.device})]

def run_bad(ctx):
    (ctx.out_dir / "partial.txt").write_text("half")
    raise RuntimeError("boom in the middle")

def run_empty(ctx):
    return []

THREADS = make("threads", "run_threads")

def run_threads(ctx):
    import torch
    return [ResultRecord(package="threads", experiment="e", metric="threads",
                         values=[float(torch.get_num_threads())], note=str(ctx.threads))]
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    (tmp_path / "fakepaper.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("fakepaper", None)
    eps = [
        EntryPoint(n, f"fakepaper:{attr}", registry.ENTRY_POINT_GROUP)
        for n, attr in (("good", "GOOD"), ("bad", "BAD"), ("empty", "EMPTY"))
    ]
    monkeypatch.setattr(registry, "_entry_points", lambda: eps)
    yield eps
    sys.modules.pop("fakepaper", None)


def test_discover_sorted_and_lookup(fake):
    reg = discover(fake)
    assert list(reg) == ["bad", "empty", "good"]
    assert get_reproduction("good", reg).title == "Paper good"
    with pytest.raises(UnknownReproductionError, match="known: bad, empty, good"):
        get_reproduction("nope", reg)


def test_discover_rejects_bad_entry_points(fake):
    wrong_type = EntryPoint("x", "fakepaper:NOT_A_REPRO", registry.ENTRY_POINT_GROUP)
    with pytest.raises(TypeError, match="must point to a Reproduction"):
        discover([wrong_type])
    mismatch = EntryPoint("other", "fakepaper:GOOD", registry.ENTRY_POINT_GROUP)
    with pytest.raises(ValueError, match="named 'good'"):
        discover([mismatch])
    with pytest.raises(ValueError, match="two packages"):
        discover([fake[2], fake[2]])
    broken = EntryPoint("gone", "no_such_module_xyz:R", registry.ENTRY_POINT_GROUP)
    assert list(discover([broken, fake[0]])) == ["good"]
    with pytest.raises(ModuleNotFoundError):
        discover([broken], strict=True)


def test_dash_and_underscore_names():
    rep = Reproduction(
        name="fair-mixup",
        distribution="d",
        title="t",
        authors="a",
        venue="v",
        url="u",
        bibtex="b",
        run="m:f",
    )
    assert get_reproduction("fair_mixup", {"fair-mixup": rep}) is rep
    with pytest.raises(ValueError, match="module:function"):
        Reproduction(
            name="x",
            distribution="d",
            title="t",
            authors="a",
            venue="v",
            url="u",
            bibtex="b",
            run="nocolon",
        )


def test_run_writes_results_and_crash_keeps_old(fake, tmp_path):
    reg = discover(fake)
    out = tmp_path / "out"
    ok = run_reproduction(reg["good"], out, seeds=(0, 1))
    assert ok.ok and ok.records[0].mean == 1.0
    payload = json.loads((out / "good" / "results.json").read_text())
    assert payload["figures"] == ["curve.png"] and payload["seeds"] == [0, 1]
    assert payload["records"][0]["status"] == "reproduced"
    assert payload["records"][0]["runtime_s"] >= 0 and payload["records"][0]["hardware"]
    assert "![curve.png](curve.png)" in (out / "good" / "results.md").read_text()

    # a crashing run leaves nothing half-written and keeps earlier results of its own name
    (out / "bad").mkdir()
    (out / "bad" / "results.json").write_text("previous")
    bad = run_reproduction(reg["bad"], out)
    assert not bad.ok and "boom in the middle" in bad.error
    assert (out / "bad" / "results.json").read_text() == "previous"
    assert sorted(p.name for p in out.iterdir()) == ["bad", "good"]

    empty = run_reproduction(reg["empty"], out)
    assert not empty.ok and "no result records" in empty.error

    # rerunning replaces the files it writes and leaves the user's own files alone
    (out / "good" / "notes.txt").write_text("mine")
    (out / "good" / "results.json").write_text("old")
    assert run_reproduction(reg["good"], out).ok
    assert (out / "good" / "notes.txt").read_text() == "mine"
    assert json.loads((out / "good" / "results.json").read_text())["records"]
    # normal permissions (mkdtemp makes 0700), no temporary folder left
    assert (out / "good").stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert not list(out.glob(".*.tmp"))


def test_cli_reproduce_finishes_others_and_exits_nonzero(fake, tmp_path, capsys):
    out = tmp_path / "res"
    code = cli.main(
        [
            "reproduce",
            "bad",
            "good",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--seeds",
            "2",
            "--no-progress",
        ]
    )
    text = capsys.readouterr()
    assert code == 1
    assert "FAILED" in text.out and "boom in the middle" in text.out
    assert "1 reproduction(s) failed: bad" in text.err
    recorded = json.loads((out / "good" / "results.json").read_text())["command"]
    assert recorded == "papershelf reproduce good --seeds 2"  # no machine paths
    summary = (out / "results.md").read_text()
    # one line per package (runtime once), then each package's full table
    assert "| good | no claims | vs paper: 1 reproduced; 0 without a paper number" in summary
    assert (
        "## good\n\n| Experiment |" in summary
        and "| e | m | 1 ± 0.71 | 0.4 | reproduced |" in summary
    )
    assert not (out / "bad").exists()


def test_cli_unknown_name_and_bad_args(fake, tmp_path, capsys):
    assert cli.main(["reproduce", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown paper package 'nope'" in err and "good" in err
    assert cli.main(["reproduce", "good", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert cli.main(["reproduce", "good", "--device", "tpu", "--out", str(tmp_path)]) == 2
    assert cli.main(["cite", "nope"]) == 2


def test_cli_cite_and_list(fake, tmp_path, capsys):
    assert cli.main(["cite", "good"]) == 0
    assert capsys.readouterr().out.strip() == "@article{good, title={Paper good}}"
    assert cli.main(["reproduce", "good", "--out", str(tmp_path), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert cli.main(["list", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "version", "results", "paper"]
    good = next(line for line in lines if line.startswith("good"))
    assert "Paper good (Conf 2020)" in good and str(tmp_path / "good") in good
    assert "none yet" in next(line for line in lines if line.startswith("bad"))


def test_cli_empty_shelf(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(registry, "discover", lambda *a, **k: {})
    assert cli.main(["list"]) == 0
    assert "No paper packages installed" in capsys.readouterr().out
    assert cli.main(["reproduce", "--out", str(tmp_path)]) == 0
    assert "nothing to list or reproduce" in capsys.readouterr().out


def test_help_does_not_import_torch():
    code = textwrap.dedent("""
        import sys, contextlib, io
        from papershelf.core import cli
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                cli.main(["--help"])
            except SystemExit:
                pass
        assert "torch" not in sys.modules, "papershelf --help imported torch"
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("full", "threads", "expected"), [(False, None, 1), (False, 2, 2), (True, None, None)]
)
def test_run_sets_and_restores_cpu_threads(fake, tmp_path, full, threads, expected):
    import fakepaper
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        outcome = run_reproduction(fakepaper.THREADS, tmp_path, full=full, threads=threads)
        assert outcome.ok, outcome.error
        [rec] = outcome.records
        assert rec.values == [float(expected if expected is not None else 3)]
        assert rec.note == str(expected)
        assert torch.get_num_threads() == 3  # restored
        payload = json.loads((tmp_path / "threads" / "results.json").read_text())
        assert payload["threads"] == expected
    finally:
        torch.set_num_threads(before)


def test_cpu_threads_validates():
    from papershelf.core import cpu_threads

    with pytest.raises(ValueError, match="threads"), cpu_threads(0):
        pass
    with pytest.raises(TypeError, match="threads"), cpu_threads(1.5):  # type: ignore[arg-type]
        pass


def test_cli_rejects_bad_threads(fake, tmp_path, capsys):
    assert cli.main(["reproduce", "good", "--threads", "0", "--out", str(tmp_path)]) == 2
    assert "--threads" in capsys.readouterr().err


def test_cli_out_errors_are_one_line(fake, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["reproduce", "good", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("papershelf: error: cannot write results to --out")
        and "Traceback" not in err
    )
    assert err.count("\n") == 1
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root ignores the mode; the file case covers it
            assert cli.main(["reproduce", "good", "--out", str(locked)]) == 2
            assert "cannot write results" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


SLOW_RUNNER = """
import signal, sys, time
from importlib.metadata import EntryPoint
from papershelf.core import cli, registry
from papershelf.core.registry import Reproduction

# a shell that starts background jobs ignores SIGINT in them (and Python keeps that): restore it
signal.signal(signal.SIGINT, signal.default_int_handler)

SLOW = Reproduction(name="slow", distribution="papershelf-slow", title="t", authors="a",
                    venue="v", url="https://example.org", bibtex="@x{y}", run="__main__:run")

def run(ctx):
    (ctx.out_dir / "partial.txt").write_text("half")
    print("started", flush=True)
    time.sleep(60)

import __main__
__main__.SLOW = SLOW
registry._entry_points = lambda: [EntryPoint("slow", "__main__:SLOW", registry.ENTRY_POINT_GROUP)]
sys.exit(cli.main(["reproduce", "slow", "--out", sys.argv[1]]))
"""


@pytest.mark.parametrize(
    ("sig", "code", "word"), [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")]
)
def test_cli_signals_clean_up_and_exit_with_one_line(tmp_path, sig, code, word):
    import signal

    script = tmp_path / "slow.py"
    script.write_text(SLOW_RUNNER)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "started" in line:
            break
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert word in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(out.glob(".*")), "temporary folder left behind"


SLOW_PKG = """
import time
from papershelf.core.registry import Reproduction

def make(name):
    return Reproduction(name=name, distribution="papershelf-" + name, title="t", authors="a",
                        venue="v", url="https://example.org", bibtex="@x{y}", run="slowpkg:run")

A, B = make("slowa"), make("slowb")

def run(ctx):
    (ctx.out_dir / "partial.txt").write_text("half")
    print("started", flush=True)
    time.sleep(60)
"""

PARALLEL_RUNNER = """
import sys
from importlib.metadata import EntryPoint
from papershelf.core import cli, registry

registry._entry_points = lambda: [
    EntryPoint(n, f"slowpkg:{v}", registry.ENTRY_POINT_GROUP) for n, v in (("slowa", "A"), ("slowb", "B"))
]
if __name__ == "__main__":  # spawned workers import this file as __mp_main__
    sys.exit(cli.main(["reproduce", "--jobs", "2", "--out", sys.argv[1]]))
"""


def test_cli_parallel_jobs_sigterm_stops_workers_and_cleans_up(tmp_path):
    import os
    import signal

    (tmp_path / "slowpkg.py").write_text(SLOW_PKG)
    script = tmp_path / "parallel.py"
    script.write_text(PARALLEL_RUNNER)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    started = 0
    for line in proc.stdout:
        started += "started" in line
        if started == 2:  # both packages run at once
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert not list(out.glob(".*")), "temporary folder left behind"


def test_cli_parallel_runs_start_longest_first(fake, tmp_path, monkeypatch):
    """With --jobs > 1, the package whose last run took longest is submitted first."""
    for name, runtime in (("good", 5.0), ("bad", 50.0)):  # "empty" has no previous results
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"runtime_s": runtime}))
    seen = []
    monkeypatch.setattr(
        cli, "_run_parallel", lambda tasks, *a: seen.extend(r.name for r, _ in tasks)
    )
    monkeypatch.setattr("papershelf.core.reproduce.write_summary", lambda out: (out, ""))
    assert (
        cli.main(["reproduce", "good", "empty", "bad", "--jobs", "2", "--out", str(tmp_path)]) == 0
    )
    assert seen == ["bad", "good", "empty"]
    seen.clear()
    assert (
        cli.main(["reproduce", "good", "empty", "bad", "--jobs", "1", "--out", str(tmp_path)]) == 1
    )
    assert seen == []  # one job: in the order given, in this process
