"""Classifier-free-guidance dropout for training with several text encoders.

Sampling with guidance (:func:`~papershelf.moviegen.euler_sample`) runs the unconditional
branch on the all-null context (every encoder nulled at once, :meth:`TextContext.null`).
The model must therefore see that exact context during training at the guidance rate:
with probability ``p`` the *whole* context is nulled jointly. Dropping each of three
encoders independently at 0.1 would produce the all-null context in only 0.1 % of samples.
Independent per-encoder dropout (robustness to a missing encoder) is a separate option.
"""

from __future__ import annotations

import torch

from papershelf.core.validation import check_real
from papershelf.moviegen.text import TextContext

__all__ = ["guidance_dropout"]


def guidance_dropout(
    text: TextContext,
    p: float,
    *,
    per_encoder: float = 0.0,
    generator: torch.Generator | None = None,
) -> TextContext:
    """Null the whole text context of each sample with probability ``p``.

    Parameters
    ----------
    text : TextContext
        Batch of B contexts (any number of encoders).
    p : float
        Joint drop rate in [0, 1]: every encoder of the sample is replaced by the null
        context (zero states, all tokens kept) -- the unconditional input of guided sampling.
        The paper does not state the rate; 0.1 is the common default.
    per_encoder : float
        Extra independent drop rate of each encoder in [0, 1] (default 0: off).
    generator : torch.Generator, optional
        CPU generator of the decisions (B draws for the joint decision, then B x K for the
        per-encoder ones when enabled).

    Returns
    -------
    TextContext
        Same shapes; ``text`` itself when nothing can be dropped.
    """
    if not isinstance(text, TextContext):
        raise TypeError(f"text must be a TextContext, got {type(text).__name__}")
    p = check_real("cfg_dropout", p, low=0.0, high=1.0)
    per_encoder = check_real("cfg_dropout_per_encoder", per_encoder, low=0.0, high=1.0)
    if p == 0.0 and per_encoder == 0.0:
        return text
    B, names = text.batch_size, list(text.states)
    joint = torch.rand(B, generator=generator) < p
    drop = joint[:, None].expand(B, len(names))
    if per_encoder > 0.0:
        drop = drop | (torch.rand(B, len(names), generator=generator) < per_encoder)
    states, masks = {}, {}
    for k, name in enumerate(names):
        s, m = text.states[name], text.masks[name]
        d = drop[:, k].to(s.device)
        states[name] = torch.where(d[:, None, None], torch.zeros_like(s), s)
        masks[name] = torch.where(d[:, None], torch.ones_like(m), m)
    return TextContext(states, masks)
