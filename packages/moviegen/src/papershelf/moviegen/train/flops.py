"""Model FLOPs of one training step of the Movie Gen transformer, counted exactly.

Counts every matrix product of the forward and backward pass (2 FLOPs per multiply-add),
as ``torch.utils.flop_counter.FlopCounterMode`` does (a test checks equality on the tiny
preset): per video token the self-attention projections (4 d^2), the cross-attention
query and output (2 d^2), the SwiGLU FFN (3 d f), patchify and the output projection; per
*text* token the cross-attention keys / values (2 d^2 per layer) and the text projections;
per *sample* the time MLP and the shared adaLN head; attention scores and values
(4 s^2 d self, 4 s l d cross per layer and sample). The backward costs twice the forward,
except for layers whose input needs no gradient (patchify, the text projections and the
first time-MLP layer), which compute only the weight gradient. Activation recomputation
is not counted (model FLOPs, the MFU convention).
"""

from __future__ import annotations

from collections.abc import Mapping

from papershelf.core.validation import check_int

__all__ = ["training_flops"]


def training_flops(
    cfg: object,
    batch: int,
    grid: tuple[int, int, int],
    text_lengths: Mapping[str, int],
    *,
    backward: bool = True,
    attention_recompute: bool = False,
) -> int:
    """FLOPs of one forward (+ backward) pass of ``MovieGenTransformer(cfg)``.

    Parameters
    ----------
    cfg : TransformerConfig
    batch : int
        Samples B.
    grid : (T, H, W)
        Latent size (before patchify); tokens per sample s = T H W / (pt ph pw).
    text_lengths : mapping of str to int
        Tokens of each text encoder (its padded length; masking does not save FLOPs in SDPA).
    backward : bool
        Add the backward pass (a training step) or count the forward alone.
    attention_recompute : bool
        Add the recomputation of the attention scores QK^T that fused (flash) attention
        kernels do in their backward (hardware FLOPs; ``FlopCounterMode`` counts them).
        Off by default: model FLOPs, the MFU convention.

    Returns
    -------
    int
    """
    B = check_int("batch", batch, low=1)
    T, H, W = (check_int("grid", g, low=1) for g in grid)
    pt, ph, pw = cfg.patch  # type: ignore[attr-defined]
    if T % pt or H % ph or W % pw:
        raise ValueError(f"grid {tuple(grid)} must be divisible by the patch {(pt, ph, pw)}")
    dims: dict[str, int] = dict(cfg.text_dims)  # type: ignore[attr-defined]
    if set(text_lengths) != set(dims):
        raise ValueError(f"text_lengths must name the encoders {sorted(dims)}")
    d, f, L = cfg.dim, cfg.ffn_dim, cfg.num_layers  # type: ignore[attr-defined]
    C = cfg.in_channels + cfg.extra_in_channels  # type: ignore[attr-defined]
    Co = cfg.out_channels  # type: ignore[attr-defined]
    P = pt * ph * pw
    s = (T // pt) * (H // ph) * (W // pw)
    lengths = {k: check_int("text_lengths", v, low=1) for k, v in text_lengths.items()}
    lt = sum(lengths.values())
    n, nt = B * s, B * lt  # video and text token rows

    def mm(rows: int, k: int, m: int) -> int:
        return 2 * rows * k * m

    # matrix products whose input carries a gradient: backward = 2x forward
    full = mm(n, d, Co * P) + mm(B, d, d) + (mm(B, d, 6 * d) if cfg.adaln == "shared" else 0)  # type: ignore[attr-defined]
    per_layer = 4 * mm(n, d, d) + 2 * mm(n, d, d) + 2 * mm(nt, d, d) + 3 * mm(n, d, f)
    if cfg.adaln != "shared":  # type: ignore[attr-defined]
        per_layer += mm(B, d, 6 * d)
    attn = 2 * mm(B * s, d, s) + 2 * mm(B * s, d, lt)  # QK^T and AV, self and cross
    full += L * (per_layer + attn)
    # input without gradient: backward computes the weight gradient only (= 1x forward)
    first = mm(n, C * P, d) + mm(B, cfg.time_freq_dim, d)  # type: ignore[attr-defined]
    first += sum(mm(B * lengths[k], dims[k], d) for k in dims)
    if not backward:
        return full + first
    recompute = L * (mm(B * s, d, s) + mm(B * s, d, lt)) if attention_recompute else 0
    return 3 * full + 2 * first + recompute
