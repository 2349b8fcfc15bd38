r"""A hand-built InstructPix2Pix whose edit is ambiguous, so that anchors matter (offline).

Random tiny weights barely react to cross-frame attention (``attn1`` is a few percent of the
output and its attention is nearly uniform), so they cannot show Fairy's consistency gain. This
module builds a small edit model from first principles instead, in diffusers' own classes and
interfaces, so the real :class:`~diffusers.StableDiffusionInstructPix2PixPipeline`, the
Euler-Ancestral scheduler and :class:`~papershelf.fairy.FairyVideoEditor` run it unchanged.

The edit ("recolour"): every object (a set of latent tokens of the same colour) gets its colour
shifted by one of ``M`` offsets :math:`\delta_1..\delta_M`, chosen at random. The data are
:math:`x_0 = c + \delta_m` with ``c`` the image latent; the Bayes-optimal denoiser of
:math:`x = x_0 + \sigma\epsilon` pools :math:`x - c` over the tokens of the object and takes the
posterior mean of the offset,

.. math::

    w_m = \mathrm{softmax}_m\!\left(\frac{n\,(\delta_m^\top \bar r - \lVert\delta_m\rVert^2/2)}
    {\sigma^2}\right), \qquad \hat x_0 = c + \sum_m w_m \delta_m,

where :math:`\bar r` is the mean of :math:`x - c` over the pooled tokens and ``n`` their count.
The pooling *is* a diffusers ``Attention`` layer named ``attn1``: queries and keys are the
token colours with logits :math:`-\beta\lVert c - c'\rVert^2/2` (sharp: a token attends to the
tokens of its own object), values are :math:`x - c`. Which offset an object gets is decided by
the sampling noise under it; in frame-wise editing a moving object sits on different noise in
every frame and its colour flickers. With Fairy's anchor attention the pooling extends over the
anchors' tokens of the same object, so all frames share most of the evidence and agree.

The VAE is a fixed pixel pooling (``latent = avg_pool(image, f)`` in [-1, 1], a 4th zero
channel; decoding repeats each latent cell), so the edit can be read in pixel space. The text
instruction is ignored (one fixed edit); with ``image_guidance_scale=1`` the guided prediction
equals the image-conditioned one while the three guidance branches still run.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from papershelf.core.validation import check_int, check_real

__all__ = ["PixelPoolVAE", "RecolourUNet", "recolour_instruct_pix2pix"]


from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


class PixelPoolVAE(ModelMixin, ConfigMixin):  # type: ignore[misc]
    """A fixed "autoencoder": average pooling by ``factor`` in, nearest upsampling out.

    ``encode`` returns a diffusers ``AutoencoderKLOutput`` whose ``latent_dist.mode()`` is the
    pooled image (channels RGB in [-1, 1] plus one zero channel); ``decode`` repeats each cell.

    Parameters
    ----------
    factor : int, default 4
        Pixels per latent cell along each side (a power of two).
    """

    @register_to_config
    def __init__(self, factor: int = 4) -> None:
        super().__init__()
        factor = check_int("factor", factor, low=1)
        levels = round(math.log2(factor))
        if factor < 1 or 2**levels != factor:
            raise ValueError(f"factor must be a power of two, got {factor}")
        # the pipeline reads the VAE factor as 2 ** (len(block_out_channels) - 1)
        self.register_to_config(
            block_out_channels=[1] * (levels + 1), latent_channels=4, scaling_factor=1.0
        )
        self._dummy = torch.nn.Parameter(torch.zeros(()), requires_grad=False)

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> Any:
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
        from diffusers.models.modeling_outputs import AutoencoderKLOutput

        f = self.config["factor"]
        z = F.avg_pool2d(x[:, :3], f)
        z = torch.cat([z, torch.zeros_like(z[:, :1])], dim=1)
        params = torch.cat([z, torch.full_like(z, -30.0)], dim=1)
        dist = DiagonalGaussianDistribution(params)
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, **_: Any) -> Any:
        from diffusers.models.autoencoders.vae import DecoderOutput

        x = F.interpolate(z[:, :3], scale_factor=self.config["factor"], mode="nearest")
        return DecoderOutput(sample=x) if return_dict else (x,)


class RecolourUNet(ModelMixin, ConfigMixin):  # type: ignore[misc]
    r"""The posterior-mean denoiser of the "recolour" edit (module docstring), as a UNet.

    Takes the InstructPix2Pix input (8 channels: scaled noisy latent, image latent) and returns
    the noise prediction :math:`\epsilon = (x - \hat x_0)/\sigma`. The only layer with weights
    is ``attn1``, a diffusers ``Attention`` (so attention processors install on it).

    Parameters
    ----------
    num_offsets : int, default 6
        M, the number of colour offsets an object may get.
    offset_norm : float, default 0.6
        Length of each offset (latent units; the image spans [-1, 1]).
    sharpness : float, default 400.0
        β of the colour-matching attention logits :math:`-\beta\lVert c - c'\rVert^2/2`.
    pooled_tokens : float, default 16.0
        ``n`` in the posterior: the evidence an object's pooled tokens carry.
    seed : int, default 0
        Seed of the offset directions.
    """

    @register_to_config
    def __init__(
        self,
        num_offsets: int = 6,
        offset_norm: float = 0.6,
        sharpness: float = 400.0,
        pooled_tokens: float = 16.0,
        seed: int = 0,
        in_channels: int = 8,
        out_channels: int = 4,
        sample_size: int = 16,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
    ) -> None:
        super().__init__()
        from diffusers.models.attention_processor import Attention

        num_offsets = check_int("num_offsets", num_offsets, low=1)
        offset_norm = check_real("offset_norm", offset_norm, low=0.0, inclusive=(False, True))
        sharpness = check_real("sharpness", sharpness, low=0.0, inclusive=(False, True))
        check_real("pooled_tokens", pooled_tokens, low=0.0, inclusive=(False, True))

        g = torch.Generator().manual_seed(seed)
        d = torch.randn(num_offsets, 3, generator=g, dtype=torch.float64)
        d = offset_norm * d / d.norm(dim=1, keepdim=True)
        self.register_buffer("offsets", torch.cat([d, torch.zeros(num_offsets, 1)], 1).float())
        betas = (
            torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64)
            ** 2
        )
        abar = torch.cumprod(1 - betas, 0)
        self.register_buffer("sigma_table", ((1 - abar) / abar).sqrt().float())
        # tokens: [r (4: x - c), c (3), -|c|^2/2, 1]; q = a [c, 1], k = a [c, -|c|^2/2], v = r
        self.attn1 = Attention(query_dim=9, heads=1, dim_head=4, out_dim=4, bias=False)
        a = math.sqrt(sharpness / self.attn1.scale)
        wq, wk, wv = torch.zeros(4, 9), torch.zeros(4, 9), torch.zeros(4, 9)
        wq[:3, 4:7] = wk[:3, 4:7] = torch.eye(3) * a
        wq[3, 8], wk[3, 7] = a, a
        wv[:, :4] = torch.eye(4)
        layer: Any = self.attn1
        with torch.no_grad():
            layer.to_q.weight.copy_(wq)
            layer.to_k.weight.copy_(wk)
            layer.to_v.weight.copy_(wv)
            layer.to_out[0].weight.copy_(torch.eye(4))
            layer.to_out[0].bias.zero_()
        self.requires_grad_(False)

    @property
    def attn_processors(self) -> dict[str, Any]:
        """The attention processors by layer key, as on diffusers' UNets."""
        layer: Any = self.attn1
        return {"attn1.processor": layer.get_processor()}

    def set_attn_processor(self, processor: Any) -> None:
        """Set the processor of ``attn1`` (one processor, or a dict with every key)."""
        if isinstance(processor, dict):
            if set(processor) != {"attn1.processor"}:
                raise ValueError(
                    f"processor must have the key 'attn1.processor', got {list(processor)}"
                )
            processor = processor["attn1.processor"]
        layer: Any = self.attn1
        layer.set_processor(processor)

    def sigma(self, timestep: torch.Tensor) -> torch.Tensor:
        """σ of a (possibly fractional) timestep, interpolated as Euler-Ancestral does."""
        t = timestep.to(self.sigma_table.device, torch.float64).clamp(0, len(self.sigma_table) - 1)
        lo = t.floor().long()
        hi = (lo + 1).clamp(max=len(self.sigma_table) - 1)
        w = (t - lo).float()
        return (1 - w) * self.sigma_table[lo] + w * self.sigma_table[hi]

    def forward(
        self,
        sample: torch.Tensor,
        timestep: Any,
        encoder_hidden_states: torch.Tensor | None = None,
        return_dict: bool = True,
        **_: Any,
    ) -> Any:
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        b, _c, h, w = sample.shape
        t = torch.as_tensor(timestep, device=sample.device).flatten()[:1]
        sigma = self.sigma(t).to(sample.dtype)
        x = sample[:, :4] * (sigma**2 + 1).sqrt()
        c = sample[:, 4:7]
        tokens = torch.cat(
            [
                x - sample[:, 4:8],
                c,
                -0.5 * (c * c).sum(1, keepdim=True),
                torch.ones_like(c[:, :1]),
            ],
            dim=1,
        )
        r_bar = self.attn1(tokens.flatten(2).transpose(1, 2))  # (B, S, 4)
        d = self.offsets.to(sample.dtype)
        n = float(self.config["pooled_tokens"])
        logits = n * (r_bar @ d.T - 0.5 * (d * d).sum(1)) / sigma**2
        x0 = sample[:, 4:8] + (logits.softmax(-1) @ d).transpose(1, 2).reshape(b, 4, h, w)
        eps = (x - x0) / sigma
        return UNet2DConditionOutput(sample=eps) if return_dict else (eps,)


def recolour_instruct_pix2pix(
    *,
    factor: int = 4,
    num_offsets: int = 6,
    offset_norm: float = 0.6,
    sharpness: float = 400.0,
    pooled_tokens: float = 16.0,
    seed: int = 0,
) -> Any:
    """A ``StableDiffusionInstructPix2PixPipeline`` with the hand-built "recolour" edit model.

    Parameters are those of :class:`RecolourUNet` and :class:`PixelPoolVAE`. The text encoder is
    the tiny random CLIP of :func:`papershelf.fairy.testing.tiny_instruct_pix2pix` (ignored by
    the UNet); the scheduler is Euler Ancestral with Stable Diffusion's β schedule.

    Returns
    -------
    diffusers.StableDiffusionInstructPix2PixPipeline
    """
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    from papershelf.fairy.testing import tiny_clip_tokenizer, tiny_text_encoder

    unet = RecolourUNet(
        num_offsets=num_offsets,
        offset_norm=offset_norm,
        sharpness=sharpness,
        pooled_tokens=pooled_tokens,
        seed=seed,
    )
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
    )
    pipe: Any = StableDiffusionInstructPix2PixPipeline(
        vae=PixelPoolVAE(factor),
        text_encoder=tiny_text_encoder(0),
        tokenizer=tiny_clip_tokenizer(16),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
