"""Debiased ``prompt_embeds`` for diffusers' ``StableDiffusionPipeline``.

The paper debiases text-to-image generation by multiplying every token state of the prompt
(``(B, 77, D)``, what the UNet's cross-attention reads) by :math:`P^\top`; the unconditional
(empty prompt) embedding stays as it is, and nothing is re-normalised. Nothing here imports
diffusers: the output plugs into ``pipe(prompt_embeds=..., negative_prompt_embeds=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from papershelf.debias_vl.debiaser import Debiaser
from papershelf.debias_vl.encoders import sd_text_states
from papershelf.debias_vl.projection import gather_pairs
from papershelf.debias_vl.prompts import pairs_from_grid, profession_pairs

__all__ = ["debias_prompt_embeds", "debiased_pipeline_embeds", "fit_sd_debiaser"]


def debias_prompt_embeds(prompt_embeds: Tensor, projection: Any) -> Tensor:
    """Apply a debiasing projection to every token state: ``prompt_embeds @ P.T``.

    Parameters
    ----------
    prompt_embeds : Tensor, shape (B, T, D)
        Text-encoder last hidden states.
    projection : array-like of shape (D, D), or a fitted :class:`Debiaser`
        For a Debiaser its linear map is applied (:meth:`Debiaser.apply`: no normalisation, and
        the low-rank factors when it has them).

    Returns
    -------
    Tensor, shape (B, T, D), dtype and device of ``prompt_embeds``.
    """
    if not isinstance(prompt_embeds, Tensor) or prompt_embeds.ndim != 3:
        raise ValueError(
            "prompt_embeds must be a tensor of shape (B, T, D), got "
            f"{getattr(prompt_embeds, 'shape', type(prompt_embeds).__name__)}"
        )
    if isinstance(projection, Debiaser):
        return projection.apply(prompt_embeds)
    P = torch.as_tensor(projection)
    D = prompt_embeds.shape[-1]
    if P.shape != (D, D):
        raise ValueError(f"projection must have shape ({D}, {D}), got {tuple(P.shape)}")
    return prompt_embeds @ P.to(device=prompt_embeds.device, dtype=prompt_embeds.dtype).T


def fit_sd_debiaser(
    text_encoder: Any,
    tokenizer: Any,
    professions: Sequence[str],
    *,
    lam: float = 500.0,
    attributes: Sequence[str] = ("male", "female"),
    template: str = "A photo of a {attr} {cls}.",
    low_rank: bool = False,
) -> Debiaser:
    """The official Stable Diffusion recipe: :math:`(I + \\lambda M)^{-1}`, M from the normalised
    EOS states of "A photo of a male {job}." / "A photo of a female {job}." (no :math:`P_0`).

    Parameters
    ----------
    text_encoder, tokenizer
        The pipeline's ``text_encoder`` and ``tokenizer``.
    professions : sequence of str
        E.g. :data:`~papershelf.debias_vl.PROFESSIONS_TRAIN`.
    lam : float, default 500.0
        The official generative value.

    Returns
    -------
    Debiaser
        ``use_projection=False, normalize=False``; pass to :func:`debias_prompt_embeds`.
    """
    if tuple(attributes) == ("male", "female"):
        texts, pairs = profession_pairs(professions, template)
    else:
        texts, pairs = pairs_from_grid([p.lower() for p in professions], attributes, template)
    _, eos = sd_text_states(text_encoder, tokenizer, texts)
    deb = Debiaser(lam=lam, use_projection=False, normalize=False, low_rank=low_rank)
    return deb.fit(None, gather_pairs(eos, pairs))


@torch.no_grad()
def debiased_pipeline_embeds(
    pipe: Any, prompts: Sequence[str], projection: Any, *, negative_prompt: str = ""
) -> tuple[Tensor, Tensor]:
    """``(prompt_embeds, negative_prompt_embeds)`` for ``pipe(...)``, the prompt debiased.

    Parameters
    ----------
    pipe : diffusers.StableDiffusionPipeline
        Its ``tokenizer`` and ``text_encoder`` encode the prompts.
    prompts : sequence of str, length B
    projection : (D, D) array or fitted :class:`Debiaser`
    negative_prompt : str
        Encoded unchanged (the official code leaves the unconditional embedding as it is).

    Returns
    -------
    prompt_embeds, negative_prompt_embeds : Tensor, shape (B, T, D)
    """
    states, _ = sd_text_states(pipe.text_encoder, pipe.tokenizer, prompts)
    negative, _ = sd_text_states(pipe.text_encoder, pipe.tokenizer, [negative_prompt] * len(states))
    return debias_prompt_embeds(states, projection), negative
