"""Seeding for scripts, and seeded generators for library code.

Library functions take a ``generator`` / ``rng`` argument and never touch global state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["make_generator", "make_rng"]


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return int(seed)


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
