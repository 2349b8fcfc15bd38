"""FSDP2 sharded training on 2 CPU processes (gloo) equals unsharded training."""

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from papershelf.core.testing import slow

WORKER = Path(__file__).parent / "data" / "fsdp_worker.py"


def _load_worker():
    spec = importlib.util.spec_from_file_location("moviegen_fsdp_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@slow
def test_two_process_fsdp2_training_matches_unsharded(tmp_path):
    out = tmp_path / "rank0.pt"
    port = str(_free_port())
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), str(r), "2", port, str(out)])
        for r in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=900) == 0
    res = torch.load(out, weights_only=False)
    assert res["local_rows"] == 172 // 2  # the FFN weight is split into two row shards
    worker = _load_worker()
    model, data = worker.setup()
    ref_losses = worker.train(model, data)
    assert res["losses"] == pytest.approx(ref_losses, abs=1e-5)
    for k, v in model.state_dict().items():
        assert torch.allclose(res["state"][k], v, atol=1e-5), k
