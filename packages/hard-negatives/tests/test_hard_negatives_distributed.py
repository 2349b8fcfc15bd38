"""gather_distributed=True on a 2-process gloo group equals one process on the concatenated batch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from papershelf.core.testing import slow
from papershelf.hard_negatives import hcl_loss

WORLD, N, D = 2, 6, 5
CONFIGS = [
    dict(beta=1.0, tau_plus=0.1, temperature=0.5),
    dict(beta=0.0, tau_plus=0.1, temperature=0.5),
    dict(beta=2.0, tau_plus=0.0, temperature=0.2, detach_weights=True),
    dict(temperature=0.5, estimator="easy"),
]

WORKER = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    from papershelf.hard_negatives import hcl_loss
    rank, world, init, out, n, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + init, rank=rank, world_size=world)
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(world * n, d, dtype=torch.float64, generator=g)
    z2 = z1 + 0.5 * torch.randn(world * n, d, dtype=torch.float64, generator=g)
    configs = eval(sys.argv[7])
    results = []
    for cfg in configs:
        a = z1[rank * n:(rank + 1) * n].clone().requires_grad_()
        b = z2[rank * n:(rank + 1) * n].clone().requires_grad_()
        loss = hcl_loss(a, b, gather_distributed=True, **cfg)
        loss.backward()
        results.append((loss.detach(), a.grad, b.grad))
    torch.save(results, out)
    dist.barrier()
    dist.destroy_process_group()
    """
)


@slow  # two fresh interpreters importing torch: 10-40 s on a shared 2-core machine
def test_two_process_gloo_equals_single_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = tmp_path / "init"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(r),
                str(WORLD),
                str(init),
                str(tmp_path / f"r{r}.pt"),
                str(N),
                str(D),
                repr(CONFIGS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(WORLD)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
    ranks = [torch.load(tmp_path / f"r{r}.pt") for r in range(WORLD)]

    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(WORLD * N, D, dtype=torch.float64, generator=g)
    z2 = z1 + 0.5 * torch.randn(WORLD * N, D, dtype=torch.float64, generator=g)
    for i, cfg in enumerate(CONFIGS):
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        loss = hcl_loss(a, b, **cfg)
        loss.backward()
        mean_of_ranks = sum(r[i][0] for r in ranks) / WORLD
        assert mean_of_ranks.item() == pytest.approx(loss.item(), rel=1e-12)
        for r in range(WORLD):
            rows = slice(r * N, (r + 1) * N)
            # each rank gets the summed gradient of all ranks' losses (lightly's GatherLayer
            # semantics); DDP's averaging over WORLD ranks turns it into the global gradient
            torch.testing.assert_close(ranks[r][i][1] / WORLD, a.grad[rows], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(ranks[r][i][2] / WORLD, b.grad[rows], rtol=1e-10, atol=1e-12)
