r"""Equivariant fine-tuning of an InstructPix2Pix UNet (Fairy, Sec. 3.3).

The standard InstructPix2Pix objective on paired-affine-augmented edit triples:

.. math::

    \mathcal{L} = \mathbb{E}\,\big\| \epsilon - \epsilon_\theta\big(z_t, t,
        \mathcal{E}(g(I)), c_T\big) \big\|^2, \qquad z_0 = \mathcal{E}(g(I')),

with one affine ``g`` per pair (:mod:`papershelf.fairy.augment`) and InstructPix2Pix's
conditioning dropout (5% text only, 5% image only, 5% both) for classifier-free guidance.
The paper resumes from the base editor and trains 50k steps at batch 128 on 8 A100s.

The loop runs on plain PyTorch, or on Hugging Face ``accelerate`` when an ``Accelerator`` is
passed (multi-GPU, mixed precision, gradient accumulation): ``pip install accelerate``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from papershelf.core import progress
from papershelf.core.validation import check_int, check_real
from papershelf.fairy.augment import paired_affine, paired_resized_crop, sample_affine

__all__ = ["EquivariantFinetuneConfig", "equivariant_finetune", "equivariant_finetune_step"]

log = logging.getLogger(__name__)


@dataclass
class EquivariantFinetuneConfig:
    """Hyperparameters of equivariant fine-tuning (paper values where the paper gives them)."""

    max_rotation: float = 5.0  # degrees (paper: < 5°)
    max_translate: float = 0.05  # fraction of the size
    scale_range: tuple[float, float] = (0.95, 1.05)
    max_shear: float = 5.0  # degrees, both axes
    resize: int | None = 288  # shorter side before the random crop; None skips resize+crop
    crop: int = 256
    cond_dropout: float = 0.05  # InstructPix2Pix's conditioning dropout probability
    learning_rate: float = 1e-5  # not stated in the paper; a usual IP2P fine-tuning value
    steps: int = 50_000  # paper: 50k steps at batch 128
    max_grad_norm: float = 1.0


def _augment(
    source: torch.Tensor,
    target: torch.Tensor,
    cfg: EquivariantFinetuneConfig,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    outs_s, outs_t = [], []
    for i in range(source.shape[0]):  # one g per pair
        g = sample_affine(
            generator,
            max_rotation=cfg.max_rotation,
            max_translate=cfg.max_translate,
            scale_range=cfg.scale_range,
            max_shear=cfg.max_shear,
        )
        s, t = paired_affine(source[i : i + 1], target[i : i + 1], g)
        if cfg.resize is not None:
            s, t = paired_resized_crop(s, t, resize=cfg.resize, crop=cfg.crop, generator=generator)
        outs_s.append(s)
        outs_t.append(t)
    return torch.cat(outs_s), torch.cat(outs_t)


def _param_dtype(module: Any) -> torch.dtype:
    """The floating dtype of a module's parameters (float32 when it has none)."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def equivariant_finetune_step(
    unet: Any,
    vae: Any,
    text_encoder: Any,
    batch: dict[str, torch.Tensor],
    noise_scheduler: Any,
    *,
    config: EquivariantFinetuneConfig | None = None,
    generator: torch.Generator | None = None,
    augment: bool = True,
) -> torch.Tensor:
    """The InstructPix2Pix loss on one augmented batch (no optimiser step).

    Parameters
    ----------
    unet : UNet2DConditionModel
        8 input channels (noisy latent + source-image latent).
    vae : AutoencoderKL
    text_encoder : CLIPTextModel
    batch : dict
        ``"source"`` and ``"edited"``: Tensor (B, 3, H, W) in [0, 1]; ``"input_ids"``:
        LongTensor (B, L) of the instructions, and ``"null_input_ids"`` (1, L) of the empty
        prompt for text dropout.
    noise_scheduler : diffusers scheduler
        A training scheduler (``DDPMScheduler``) with ``add_noise``.
    config : EquivariantFinetuneConfig, optional
    generator : torch.Generator, optional
        For the augmentation, timesteps, noise and dropout (on the CPU).
    augment : bool, default True
        ``False`` gives the plain InstructPix2Pix loss (the non-equivariant baseline).

    Returns
    -------
    Tensor, scalar
        Mean squared error of the noise (or velocity) prediction.
    """
    cfg = config or EquivariantFinetuneConfig()
    check_real("cond_dropout", cfg.cond_dropout, low=0.0, high=1.0)
    for k in ("source", "edited", "input_ids", "null_input_ids"):
        if k not in batch:
            raise ValueError(f"batch is missing {k!r}")
    device = next(unet.parameters()).device
    src, tgt = batch["source"].float().cpu(), batch["edited"].float().cpu()
    if src.shape != tgt.shape or src.ndim != 4:
        raise ValueError(
            f"source and edited must have equal shape (B, 3, H, W), got "
            f"{tuple(src.shape)} and {tuple(tgt.shape)}"
        )
    if not (torch.isfinite(src).all() and torch.isfinite(tgt).all()):
        raise ValueError("batch['source'] and batch['edited'] must be finite (found NaN or inf)")
    if augment:
        src, tgt = _augment(src, tgt, cfg, generator)
    # frozen VAE / text encoder in half precision beside a float32 UNet (diffusers'
    # train_instruct_pix2pix ``weight_dtype`` recipe): each model gets inputs in its own dtype
    vae_dtype, unet_dtype = _param_dtype(vae), _param_dtype(unet)
    src = (src.to(device) * 2 - 1).to(vae_dtype)
    tgt = (tgt.to(device) * 2 - 1).to(vae_dtype)
    bsz = src.shape[0]
    with torch.no_grad():
        sf = vae.config.scaling_factor
        latents = (vae.encode(tgt).latent_dist.mode() * sf).to(unet_dtype)
        image_latents = vae.encode(src).latent_dist.mode().to(unet_dtype)
        text = text_encoder(batch["input_ids"].to(device))[0].to(unet_dtype)
        null = text_encoder(batch["null_input_ids"].to(device))[0].to(unet_dtype).expand_as(text)
    noise = torch.randn(latents.shape, generator=generator).to(device, unet_dtype)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,), generator=generator)
    t = t.to(device)
    noisy = noise_scheduler.add_noise(latents, noise, t)
    # conditioning dropout as in InstructPix2Pix: u < p text only, p <= u < 2p both,
    # 2p <= u < 3p image only
    u = torch.rand(bsz, generator=generator).to(device)
    p = cfg.cond_dropout
    drop_text = (u < 2 * p).view(bsz, 1, 1)
    keep_image = ~((u >= p) & (u < 3 * p))
    text = torch.where(drop_text, null, text)
    image_latents = image_latents * keep_image.view(bsz, 1, 1, 1).to(image_latents.dtype)
    pred = unet(torch.cat([noisy, image_latents], dim=1), t, encoder_hidden_states=text).sample
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, t)
    else:
        target = noise
    return F.mse_loss(pred.float(), target.float())


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        yield from loader


def equivariant_finetune(
    unet: Any,
    vae: Any,
    text_encoder: Any,
    loader: Iterable[dict[str, torch.Tensor]],
    noise_scheduler: Any,
    *,
    config: EquivariantFinetuneConfig | None = None,
    steps: int | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    accelerator: Any = None,
    generator: torch.Generator | None = None,
    show_progress: bool | None = None,
) -> list[float]:
    """Fine-tune ``unet`` on (source, instruction, edited) batches with paired affine augmentation.

    Parameters
    ----------
    unet, vae, text_encoder, noise_scheduler
        As in :func:`equivariant_finetune_step`; only the UNet is trained.
    loader : iterable of dict
        Batches as :func:`equivariant_finetune_step` takes them (cycled until ``steps``).
    config : EquivariantFinetuneConfig, optional
    steps : int, optional
        Overrides ``config.steps``.
    optimizer : torch.optim.Optimizer, optional
        AdamW on the UNet with ``config.learning_rate`` by default.
    accelerator : accelerate.Accelerator, optional
        When given, the UNet, optimiser and loader go through ``accelerator.prepare`` and the
        backward pass through ``accelerator.backward`` (distributed / mixed precision).
    generator : torch.Generator, optional
    show_progress : bool, optional

    Returns
    -------
    list of float
        The loss of every step.
    """
    cfg = config or EquivariantFinetuneConfig()
    n_steps = check_int("steps", cfg.steps if steps is None else steps, low=1)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    unet.train()
    opt = optimizer or torch.optim.AdamW(unet.parameters(), lr=cfg.learning_rate)
    model = unet
    if accelerator is not None:
        model, opt, loader = accelerator.prepare(unet, opt, loader)
    losses: list[float] = []
    batches = _cycle(loader)
    for _ in progress(
        range(n_steps),
        desc="equivariant fine-tuning",
        disable=None if show_progress is None else not show_progress,
    ):
        batch = next(batches)
        loss = equivariant_finetune_step(
            model, vae, text_encoder, batch, noise_scheduler, config=cfg, generator=generator
        )
        if not torch.isfinite(loss.detach()).all():
            raise FloatingPointError(
                f"equivariant fine-tuning: the loss is {float(loss.detach())} at step {len(losses)}"
                " (lower learning_rate, check the batch for NaN)"
            )
        opt.zero_grad(set_to_none=True)
        if accelerator is not None:
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        losses.append(float(loss.detach()))
    unet.eval()
    return losses
