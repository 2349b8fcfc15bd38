"""One mesh for FSDP2 x TP x CP on gloo CPU processes: every gradient equals the unsplit
model's; DCP checkpoints resume bit-exactly and load sharded <-> unsharded; sharded EMA."""

import importlib.util
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from papershelf.core.testing import slow
from papershelf.moviegen import flow_matching_loss

WORKER = Path(__file__).parent / "data" / "mesh_worker.py"


def _worker():
    spec = importlib.util.spec_from_file_location("moviegen_mesh_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: str, args: list[str]) -> None:
    _worker().run(rank, world, port, *args)


def run_ranks(out: Path, mode: str, dp: int, tp: int, cp: int, *extra: str) -> dict:
    """``dp * tp * cp`` gloo processes forked from this one (no re-import of torch)."""
    world, port = dp * tp * cp, str(_free_port())
    args = [str(out), mode, str(dp), str(tp), str(cp), *map(str, extra)]
    mp.start_processes(_entry, args=(world, port, args), nprocs=world, start_method="fork")
    return torch.load(out, weights_only=True)


def _reference_grads():
    w = _worker()
    model = w.build()
    x1, x0, t, text = w.batch()
    flow_matching_loss(model, x1, text, x0=x0, t=t, cfg_dropout=0.0).backward()
    return {n: p.grad for n, p in model.named_parameters()}


@slow
@pytest.mark.parametrize(
    "dp,tp,cp",
    [(1, 1, 2), (1, 2, 1), (2, 1, 2), (2, 2, 1), (1, 2, 2), (2, 2, 2)],
    ids=["cp2", "tp2", "dp2xcp2", "dp2xtp2", "tp2xcp2", "dp2xtp2xcp2"],
)
def test_every_gradient_equals_the_unsplit_model(tmp_path, dp, tp, cp):
    res = run_ranks(tmp_path / "out.pt", "grads", dp, tp, cp)
    ref = _reference_grads()
    assert set(res["grads"]) == set(ref) and len(ref) > 40
    assert res["local_q_rows"] == 64 // tp // (dp * cp)  # TP columns, then FSDP rows
    for name, g in ref.items():
        assert_grad_close(res["grads"][name], g, name)


def assert_grad_close(got, ref, name):
    """Relative 1e-5 of the tensor's scale (float64 model; RMSNorm normalises in float32 by
    design, so agreement is to float32 rounding; an error of 1/cp would be a factor 0.5)."""
    scale = float(ref.abs().max())
    assert scale > 0, f"{name}: the reference gradient is zero, the test proves nothing"
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * scale, msg=name)
