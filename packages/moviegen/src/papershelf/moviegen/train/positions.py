"""Position-table growth between training stages (256 px -> 768 px).

Movie Gen trains at 256 px, then at 768 px (Sec. 3.1.6). With learned factorized
positions (one table per axis, in patch units) the tables must grow from the first
stage's grid to the second's: 256 px -> 32 x 32 latent -> 16 x 16 tokens; 768 px -> 48 x 48
tokens. Two ways are offered: ``"interpolate"`` resamples each learned table linearly
onto the longer axis, so a token keeps the embedding of the same *relative* place of the
frame (the ViT / DiT recipe for a resolution change), and ``"extend"`` keeps the learned
rows as they are and initialises the new rows, so the first stage's grid is unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["grow_position_tables"]


def _grow(table: torch.Tensor, n: int, mode: str, std: float) -> torch.Tensor:
    m = table.shape[0]
    if n == m:
        return table.detach().clone()
    if mode == "interpolate":
        if m == 1:
            return table.detach().expand(n, -1).clone()
        x = table.detach().float().t()[None]  # (1, d, m)
        out = F.interpolate(x, size=n, mode="linear", align_corners=True)[0].t()
        return out.to(table.dtype)
    new = torch.randn(n - m, table.shape[1], dtype=table.dtype, device=table.device) * std
    return torch.cat([table.detach(), new], 0)


@torch.no_grad()
def grow_position_tables(
    model: nn.Module,
    max_pos: tuple[int, int, int],
    *,
    mode: Literal["interpolate", "extend"] = "interpolate",
    std: float = 0.02,
) -> nn.Module:
    """Grow a :class:`~papershelf.moviegen.MovieGenTransformer`'s (T, H, W) position tables.

    Call it between stages, before :func:`~papershelf.moviegen.train.parallelize` and
    before creating the optimizer (the tables become new parameters).

    Parameters
    ----------
    model : MovieGenTransformer
        Unsharded.
    max_pos : (t, h, w)
        New table sizes in patch units, each >= the current one (e.g. (32, 16, 16) ->
        (32, 48, 48) for 256 px -> 768 px with 1x2x2 patches and an 8x TAE).
    mode : {"interpolate", "extend"}
        ``"interpolate"``: linear resampling of every learned table (end rows kept, the
        same relative position keeps its embedding). ``"extend"``: old rows kept exactly,
        new rows N(0, std^2) (the initialisation of the tables).
    std : float
        Scale of the new rows for ``"extend"``.

    Returns
    -------
    The same model, with ``cfg.max_pos`` updated.
    """
    if mode not in ("interpolate", "extend"):
        raise ValueError(f"mode must be 'interpolate' or 'extend', got {mode!r}")
    names = ("pos_t", "pos_h", "pos_w")
    if not all(isinstance(getattr(model, n, None), nn.Parameter) for n in names):
        raise TypeError(f"model must have learned position tables {names}")
    new = tuple(int(v) for v in max_pos)
    if len(new) != 3:
        raise ValueError(f"max_pos must be three ints (t, h, w), got {max_pos!r}")
    for name, n in zip(names, new):
        old = getattr(model, name)
        if n < old.shape[0]:
            raise ValueError(f"max_pos must not shrink a table: {name} has {old.shape[0]}, got {n}")
        setattr(model, name, nn.Parameter(_grow(old, n, mode, std)))
    cfg = getattr(model, "cfg", None)
    if cfg is not None:
        cfg = replace(cfg, max_pos=new)
        model.cfg = cfg
    register = getattr(model, "register_to_config", None)
    if callable(register):  # diffusers ConfigMixin: keep save_pretrained's config in step
        register(max_pos=new)
    return model
