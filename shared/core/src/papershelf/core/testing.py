"""Test helpers shared by every member: devices, markers, tolerances, README quickstarts.

Import this only from tests: it imports pytest.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from papershelf.core.devices import cuda_available

__all__ = [
    "assert_close",
    "assert_gathered_loss_matches_single_process",
    "devices",
    "limit_threads",
    "requires_cuda",
    "run_readme_quickstart",
    "slow",
    "with_devices",
]

slow = pytest.mark.slow
requires_cuda = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device")


def limit_threads(n: int = 1) -> None:
    """Pin BLAS/OpenMP and torch to ``n`` threads: on a busy 2-core machine more is slower."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


def devices() -> list[Any]:
    """``pytest.param`` devices: CPU always, CUDA (marked ``gpu``) when there is one."""
    out: list[Any] = [pytest.param("cpu", id="cpu")]
    if cuda_available():
        out.append(pytest.param("cuda", id="cuda", marks=pytest.mark.gpu))
    return out


def with_devices(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Parametrize a test over :func:`devices` as the ``device`` argument."""
    return pytest.mark.parametrize("device", devices())(fn)


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def assert_close(
    actual: Any, expected: Any, *, rtol: float = 1e-6, atol: float = 1e-8, msg: str = ""
) -> None:
    """``numpy.testing.assert_allclose`` for numpy arrays, torch tensors and scalars alike."""
    np.testing.assert_allclose(
        _to_numpy(actual), _to_numpy(expected), rtol=rtol, atol=atol, err_msg=msg
    )


def run_readme_quickstart(readme: str | Path, *, section_title: str = "Usage") -> dict[str, Any]:
    """Execute the python code blocks of a README's usage section, in order, in one namespace.

    Returns the namespace, so a test can check what the snippet computed.
    """
    from papershelf.core.readme import python_blocks, section

    text = Path(readme).read_text(encoding="utf-8")
    blocks = python_blocks(section(text, section_title))
    if not blocks:
        raise AssertionError(f"{readme}: no ```python block in the '## {section_title}' section")
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    for code in blocks:
        exec(compile(code, f"{readme}:{section_title}", "exec"), namespace)
    return namespace


_GATHER_WORKER = textwrap.dedent(
    """
    import importlib, sys, torch, torch.distributed as dist
    rank, world, init, out, n, d = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4],
                                    int(sys.argv[5]), int(sys.argv[6]))
    module, name = sys.argv[7].split(":")
    loss_fn = getattr(importlib.import_module(module), name)
    configs = eval(sys.argv[8])
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
        Keyword arguments, one loss evaluation each (``repr``-able values).
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
                repr(list(configs)),
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
    ranks = [torch.load(tmp_path / f"r{r}.pt") for r in range(world)]

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
