"""The paper-scale ``--full`` path end to end on a generated CIFAR-10 folder (tiny settings, CPU)."""

from __future__ import annotations

import json
import math

from papershelf.contrastive_bench.cifar import OVERRIDES_ENV, SMOKE_OVERRIDES, write_fake_cifar10
from papershelf.core.registry import get_reproduction
from papershelf.core.reproduce import run_reproduction

TINY = {"dataset": "cifar10", **SMOKE_OVERRIDES}


def test_full_config_is_the_official_stl10_recipe(monkeypatch):
    from papershelf.hard_negatives.reproduce import _is_paper_setting, full_config

    monkeypatch.delenv(OVERRIDES_ENV, raising=False)
    cfg = full_config()
    assert (cfg.dataset, cfg.arch, cfg.epochs, cfg.batch_size) == ("stl10", "resnet50", 400, 256)
    assert (cfg.proj_hidden, cfg.feature_dim, cfg.linear_epochs) == (512, 128, 100)
    assert _is_paper_setting(cfg)
    monkeypatch.setenv(OVERRIDES_ENV, '{"workers": 2}')
    assert _is_paper_setting(full_config())
    monkeypatch.setenv(OVERRIDES_ENV, '{"dataset": "cifar10"}')
    assert not _is_paper_setting(full_config())


def test_full_runs_end_to_end_on_fake_cifar10(tmp_path, monkeypatch):
    from papershelf.hard_negatives import reproduce

    write_fake_cifar10(tmp_path / "data", per_batch=4)
    monkeypatch.setenv("PAPERSHELF_DATA", str(tmp_path / "data"))
    monkeypatch.setenv(OVERRIDES_ENV, json.dumps(TINY))
    monkeypatch.setattr(reproduce, "BETAS", (0.0, 1.0))  # SimCLR, DCL, HCL beta=1
    # what `papershelf reproduce hard-negatives --full` runs
    outcome = run_reproduction(get_reproduction("hard-negatives"), tmp_path / "out", full=True)
    assert outcome.ok, outcome.error
    assert (outcome.out_dir / "hcl_full_beta.png").stat().st_size > 1000
    result = json.loads((outcome.out_dir / "results.json").read_text())
    assert result["mode"] == "full" and result["figures"] == ["hcl_full_beta.png"]
    runs = [r for r in result["records"] if r["claim"] is None]
    assert [r["config"]["beta"] for r in runs] == [None, 0.0, 1.0]
    assert [r["paper_value"] for r in runs] == [80.15, 84.26, 87.44]
    for r in runs:
        assert r["experiment"].startswith("CIFAR-10 SimCLR recipe, resnet18")
        assert r["status"] == "not comparable" and len(r["values"]) == 1
        assert all(math.isfinite(v) and 0.0 <= v <= 100.0 for v in r["values"])
    claims = [r for r in result["records"] if r["claim"] is not None]
    assert len(claims) == 3 and all(c["claim_holds"] in (True, False) for c in claims)
