"""Seeding for scripts, and seeded generators for library code.

Library functions take a ``generator`` / ``rng`` argument; :func:`seed_everything`
is for scripts and reproductions only.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["make_generator", "make_rng", "seed_everything"]


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return int(seed)


def seed_everything(seed: int, *, deterministic: bool = False) -> int:
    """Seed Python's, NumPy's and (when installed) PyTorch's global generators.

    Parameters
    ----------
    seed : int
        The seed, in ``[0, 2**32)``.
    deterministic : bool
        Also ask PyTorch for deterministic algorithms (slower on GPU).

    Returns
    -------
    int
        The seed, for logging.
    """
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeding the legacy global state is the point here
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:
        return seed
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed


def make_rng(seed: int | np.random.Generator | None = None) -> np.random.Generator:
    """A NumPy ``Generator`` from a seed (a generator passes through unchanged)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(None if seed is None else _check_seed(seed))


def make_generator(seed: int | None = None, device: Any = "cpu") -> torch.Generator:
    """A seeded ``torch.Generator`` on ``device`` (random seed when ``seed`` is None)."""
    import torch

    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(_check_seed(seed))
    return gen
