"""Debiased ``prompt_embeds`` for diffusers' Stable Diffusion and Stable Diffusion XL pipelines.

The paper debiases text-to-image generation by multiplying every token state of the prompt
(``(B, 77, D)``, what the UNet's cross-attention reads) by :math:`P^\top`; the unconditional
(empty prompt) embedding stays as it is, and nothing is re-normalised. Nothing here imports
diffusers: the output plugs into ``pipe(prompt_embeds=..., negative_prompt_embeds=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from papershelf.core.validation import check_int
from papershelf.debias_vl.debiaser import Debiaser
from papershelf.debias_vl.encoders import eos_pool, sd_text_states
from papershelf.debias_vl.projection import gather_pairs
from papershelf.debias_vl.prompts import pairs_from_grid, profession_pairs

__all__ = [
    "PipelineDebiaser",
    "debias_prompt_embeds",
    "debiased_pipeline_embeds",
    "debiased_pipeline_kwargs",
    "fit_pipeline_debiaser",
    "fit_sd_debiaser",
    "pipeline_prompt_states",
]


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


@dataclass
class PipelineDebiaser:
    """The debiasers of one text-to-image pipeline: token states, and SDXL's pooled embedding.

    Attributes
    ----------
    states : Debiaser
        Acts on every token state ``(B, T, D)`` (for SDXL, D is the two encoders' states side by
        side, 768 + 1280 = 2048 for the released model).
    pooled : Debiaser or None
        Acts on SDXL's pooled text embedding ``(B, P)`` (None for Stable Diffusion 1.x/2.x).
    clip_skip : int or None
        The ``clip_skip`` the states were read with; :func:`debiased_pipeline_kwargs` uses the
        same, since a debiaser fitted on one layer's states does not fit another's.
    """

    states: Debiaser
    pooled: Debiaser | None
    clip_skip: int | None


def _is_xl(pipe: Any) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


@torch.no_grad()
def pipeline_prompt_states(
    pipe: Any, prompts: Sequence[str], *, clip_skip: int | None = None
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Encode prompts exactly as the pipeline does (``pipe.encode_prompt``, ``clip_skip`` included).

    Works for ``StableDiffusionPipeline`` and ``StableDiffusionXLPipeline`` (two text encoders).

    Parameters
    ----------
    pipe : diffusers pipeline with ``encode_prompt`` and ``tokenizer``
    prompts : sequence of str, length B
    clip_skip : int, optional
        Layers skipped from the end of the text encoder(s), as in ``pipe(..., clip_skip=)``.

    Returns
    -------
    states : Tensor, shape (B, T, D)
        The ``prompt_embeds`` the UNet reads.
    pooled : Tensor, shape (B, P), or None
        SDXL's ``pooled_prompt_embeds`` (None for SD 1.x/2.x).
    eos : Tensor, shape (B, D)
        L2-normalised EOS-token states (EOS found with ``pipe.tokenizer``), from which M is built.
    """
    texts = list(prompts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError("prompts must be a non-empty sequence of strings")
    if clip_skip is not None:
        clip_skip = check_int("clip_skip", clip_skip, low=1)
    device = getattr(pipe, "_execution_device", None) or getattr(pipe, "device", "cpu")
    common = {"device": device, "num_images_per_prompt": 1, "do_classifier_free_guidance": False}
    if _is_xl(pipe):
        states, _, pooled, _ = pipe.encode_prompt(prompt=texts, clip_skip=clip_skip, **common)
    else:
        states, _ = pipe.encode_prompt(texts, clip_skip=clip_skip, **common)
        pooled = None
    tok = pipe.tokenizer
    ids = tok(
        texts,
        padding="max_length",
        max_length=int(getattr(tok, "model_max_length", states.shape[1])),
        truncation=True,
        return_tensors="pt",
    )["input_ids"]
    return states, pooled, F.normalize(eos_pool(states, ids), dim=-1)


def fit_pipeline_debiaser(
    pipe: Any,
    professions: Sequence[str],
    *,
    lam: float = 500.0,
    clip_skip: int | None = None,
    attributes: Sequence[str] = ("male", "female"),
    template: str = "A photo of a {attr} {cls}.",
    low_rank: bool = False,
) -> PipelineDebiaser:
    """The official generative recipe, :math:`(I + \\lambda M)^{-1}`, for SD and SDXL pipelines.

    As :func:`fit_sd_debiaser`, but the prompts go through ``pipe.encode_prompt`` (so
    ``clip_skip`` and SDXL's two text encoders are handled as the pipeline handles them), and
    for SDXL a second map is fitted on the pooled embedding, which conditions the UNet too.

    Returns
    -------
    PipelineDebiaser
        Pass it to :func:`debiased_pipeline_kwargs`.
    """
    if tuple(attributes) == ("male", "female"):
        texts, pairs = profession_pairs(professions, template)
    else:
        texts, pairs = pairs_from_grid([p.lower() for p in professions], attributes, template)
    _, pooled, eos = pipeline_prompt_states(pipe, texts, clip_skip=clip_skip)
    kw: dict[str, Any] = {"lam": lam, "use_projection": False, "normalize": False}
    states = Debiaser(low_rank=low_rank, **kw).fit(None, gather_pairs(eos, pairs))
    pooled_deb = None
    if pooled is not None:
        pooled_deb = Debiaser(**kw).fit(None, gather_pairs(F.normalize(pooled, dim=-1), pairs))
    return PipelineDebiaser(states, pooled_deb, clip_skip)


@torch.no_grad()
def debiased_pipeline_kwargs(
    pipe: Any,
    prompts: Sequence[str],
    debiaser: PipelineDebiaser,
    *,
    negative_prompt: str = "",
) -> dict[str, Tensor]:
    """Keyword arguments for ``pipe(**kwargs, ...)`` with the prompts debiased (SD or SDXL).

    Returns ``prompt_embeds`` and ``negative_prompt_embeds`` (the negative prompt encoded
    unchanged, as in the official code), plus ``pooled_prompt_embeds`` and
    ``negative_pooled_prompt_embeds`` for SDXL. The encoding uses the debiaser's ``clip_skip``.
    """
    if not isinstance(debiaser, PipelineDebiaser):
        raise TypeError(
            f"debiaser must be a PipelineDebiaser (fit_pipeline_debiaser), got "
            f"{type(debiaser).__name__}"
        )
    if _is_xl(pipe) != (debiaser.pooled is not None):
        raise ValueError("debiaser was fitted on another kind of pipeline (SD vs SDXL)")
    states, pooled, _ = pipeline_prompt_states(pipe, prompts, clip_skip=debiaser.clip_skip)
    neg, neg_pooled, _ = pipeline_prompt_states(
        pipe, [negative_prompt] * len(states), clip_skip=debiaser.clip_skip
    )
    out = {
        "prompt_embeds": debias_prompt_embeds(states, debiaser.states),
        "negative_prompt_embeds": neg,
    }
    if pooled is not None and debiaser.pooled is not None and neg_pooled is not None:
        out["pooled_prompt_embeds"] = debiaser.pooled.apply(pooled)
        out["negative_pooled_prompt_embeds"] = neg_pooled
    return out
