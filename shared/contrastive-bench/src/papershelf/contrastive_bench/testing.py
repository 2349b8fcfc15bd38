"""Test helper of the two contrastive packages: a loss gathered over gloo ranks equals one process.

Import this only from tests: it imports pytest and starts subprocesses.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = ["assert_gathered_loss_matches_single_process"]

_GATHER_WORKER = textwrap.dedent(
    """
    import importlib, json, sys, torch, torch.distributed as dist
    rank, world, init, out, n, d = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4],
                                    int(sys.argv[5]), int(sys.argv[6]))
    module, name = sys.argv[7].split(":")
    loss_fn = getattr(importlib.import_module(module), name)
    configs = json.loads(sys.argv[8])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + init, rank=rank, world_size=world)
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(world * n, d, dtype=torch.float64, generator=g)
    z2 = z1 + 0.5 * torch.randn(world * n, d, dtype=torch.float64, generator=g)
    results = []
    for cfg in configs:
        a = z1[rank * n:(rank + 1) * n].clone().requires_grad_()
        b = z2[rank * n:(rank + 1) * n].clone().requires_grad_()
        loss = loss_fn(a, b, gather_distributed=True, **cfg)
        loss.backward()
        results.append((loss.detach(), a.grad, b.grad))
    torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()
    """
)


def assert_gathered_loss_matches_single_process(
    loss: str,
    configs: Sequence[dict[str, Any]],
    tmp_path: Path,
    *,
    world: int = 2,
    n: int = 6,
    d: int = 5,
) -> None:
    """``gather_distributed=True`` on a ``world``-process gloo group equals one process.

    Runs ``world`` fresh interpreters. Each computes ``loss(a, b, gather_distributed=True,
    **cfg)`` on its ``n`` rows of a fixed float64 batch of ``world * n`` pairs of dimension
    ``d``. The mean of the ranks' losses must equal the loss on the whole batch in one process
    (rel. 1e-12). Each rank's gradient, divided by ``world``, must equal that rank's rows of the
    single-process gradient (rtol 1e-10): every rank gets the summed gradient of all ranks'
    losses (lightly's ``GatherLayer`` semantics), which DDP's averaging turns into the global one.

    Parameters
    ----------
    loss : str
        ``"module:function"`` of a two-view loss ``f(z1, z2, *, gather_distributed, **cfg)``.
    configs : sequence of dict
        Keyword arguments, one loss evaluation each (JSON-serialisable values).
    tmp_path : Path
        A scratch folder (pytest's ``tmp_path``).
    """
    import torch

    script = tmp_path / "gather_worker.py"
    script.write_text(_GATHER_WORKER)
    init = tmp_path / "init"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(r),
                str(world),
                str(init),
                str(tmp_path / f"r{r}.pt"),
                str(n),
                str(d),
                loss,
                json.dumps(list(configs)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(world)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
    ranks = [torch.load(tmp_path / f"r{r}.pt", weights_only=True) for r in range(world)]

    module, name = loss.split(":")
    loss_fn = getattr(importlib.import_module(module), name)
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(world * n, d, dtype=torch.float64, generator=g)
    z2 = z1 + 0.5 * torch.randn(world * n, d, dtype=torch.float64, generator=g)
    for i, cfg in enumerate(configs):
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        value = loss_fn(a, b, **cfg)
        value.backward()
        ga, gb = a.grad, b.grad
        assert ga is not None and gb is not None
        mean_of_ranks = sum(r[i][0] for r in ranks) / world
        assert mean_of_ranks.item() == pytest.approx(value.item(), rel=1e-12), cfg
        for r in range(world):
            rows = slice(r * n, (r + 1) * n)
            torch.testing.assert_close(ranks[r][i][1] / world, ga[rows], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(ranks[r][i][2] / world, gb[rows], rtol=1e-10, atol=1e-12)
