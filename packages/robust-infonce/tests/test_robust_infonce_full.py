"""The paper-scale ``--full`` path end to end on a generated CIFAR-10 folder (tiny settings, CPU)."""

from __future__ import annotations

import json
import math

import pytest

from papershelf.core.cli import main

# the --full harness lives in the unpublished workspace member papershelf-contrastive-bench
cifar = pytest.importorskip("papershelf.contrastive_bench.cifar")
OVERRIDES_ENV, SMOKE_OVERRIDES, write_fake_cifar10 = (
    cifar.OVERRIDES_ENV,
    cifar.SMOKE_OVERRIDES,
    cifar.write_fake_cifar10,
)

TINY = SMOKE_OVERRIDES


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    write_fake_cifar10(tmp_path / "data", per_batch=4)
    monkeypatch.setenv("PAPERSHELF_DATA", str(tmp_path / "data"))
    monkeypatch.setenv(OVERRIDES_ENV, json.dumps(TINY))
    return tmp_path


def test_full_config_defaults_and_overrides(monkeypatch):
    from papershelf.robust_infonce.reproduce import full_config

    monkeypatch.delenv(OVERRIDES_ENV, raising=False)
    cfg = full_config()
    assert (cfg.dataset, cfg.arch, cfg.epochs, cfg.batch_size) == ("cifar10", "resnet18", 400, 256)
    assert cfg.is_paper_scale
    monkeypatch.setenv(OVERRIDES_ENV, json.dumps(TINY))
    assert full_config().max_steps == 1 and not full_config().is_paper_scale


@pytest.mark.slow  # ~20 s idle, minutes on a loaded 2-core machine
def test_cli_full_runs_end_to_end_on_fake_cifar10(fake_cifar, monkeypatch):
    from papershelf.robust_infonce import reproduce

    monkeypatch.setattr(reproduce, "FULL_NOISE_RATES", (0.0, 0.6))  # 4 runs instead of 6
    out = fake_cifar / "out"
    argv = ["reproduce", "robust-infonce", "--full", "--seeds", "1", "--out", str(out)]
    assert main([*argv, "--device", "cpu", "--no-progress"]) == 0
    result = json.loads((out / "robust-infonce" / "results.json").read_text())
    assert result["mode"] == "full" and result["seeds"] == [0]
    assert result["figures"] == ["rince_cifar10_noisy_views.png"]
    assert (out / "robust-infonce" / "rince_cifar10_noisy_views.png").stat().st_size > 1000
    records = result["records"]
    runs = [r for r in records if r["claim"] is None]
    assert len(runs) == 4
    for r in runs:
        assert r["metric"] == "linear probe top-1 (%)" and len(r["values"]) == 1
        assert all(math.isfinite(v) and 0.0 <= v <= 100.0 for v in r["values"])
        assert r["config"]["arch"] == "resnet18" and r["config"]["max_steps"] == 1
        assert "capped run" in r["experiment"] and r["status"] == "not comparable"
    [claim] = [r for r in records if r["claim"] is not None]
    assert "60% noisy views: RINCE q=0.5 minus InfoNCE" in claim["experiment"]
    assert claim["verdict"] == "not shown"  # one seed
    assert claim["headline"] is True


@pytest.mark.slow
def test_papershelf_command_full_in_a_subprocess(fake_cifar):
    import os
    import shutil
    import subprocess

    exe = shutil.which("papershelf")
    assert exe, "the papershelf command is not installed"
    out = fake_cifar / "cli"
    cmd = [exe, "reproduce", "robust-infonce", "--full", "--seeds", "1", "--device", "cpu"]
    done = subprocess.run(
        [*cmd, "--out", str(out)], env=os.environ, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((out / "robust-infonce" / "results.json").read_text())
    assert result["command"] == "papershelf reproduce robust-infonce --full --seeds 1"
    assert len(result["records"]) == 7 and result["figures"] == ["rince_cifar10_noisy_views.png"]
