"""TAE shapes, centric init, outlier penalty loss and temporal tiling."""

import math

import pytest
import torch

from papershelf.core.testing import assert_close
from papershelf.moviegen import (
    TAEConfig,
    TemporalAutoencoder,
    outlier_penalty_loss,
    tae_loss,
    tae_preset,
    temporal_tiled_decode,
    temporal_tiled_encode,
)

# 8x temporal, 8x spatial like the paper, but narrow and with few blocks.
SMALL8 = TAEConfig(latent_channels=4, channels=(8, 8, 8, 8), num_res_blocks=0, norm_groups=4)


@pytest.fixture(scope="module")
def tae8():
    torch.manual_seed(0)
    return TemporalAutoencoder(SMALL8).eval()


@pytest.mark.parametrize("frames", [1, 8, 17, 32])
def test_shapes_and_ceil_temporal_compression(tae8, frames):
    x = torch.randn(1, 3, frames, 16, 24)
    with torch.no_grad():
        z = tae8.encode(x).latent_dist.mode()
        assert tuple(z.shape) == (1, 4, math.ceil(frames / 8), 2, 3)
        assert tae8.latent_shape(tuple(x.shape)) == tuple(z.shape)
        y = tae8.decode(z, num_frames=frames).sample
    assert tuple(y.shape) == (1, 3, frames, 16, 24)


def test_256_frames_give_32_latent_frames(tae8):
    assert tae8.latent_shape((1, 3, 256, 768, 768)) == (1, 4, 32, 96, 96)


def test_centric_init_reproduces_image_autoencoder_framewise(tae8):
    torch.manual_seed(1)
    img = torch.randn(2, 3, 1, 16, 16)
    video = img.expand(2, 3, 16, 16, 16).contiguous()  # a static video
    with torch.no_grad():
        z_img = tae8.encode(img).latent_dist.mode()
        z_vid = tae8.encode(video).latent_dist.mode()
        assert_close(z_vid, z_img.expand_as(z_vid), atol=1e-5)
        x_img = tae8.decode(z_img).sample  # 8 identical frames from one latent frame
        x_vid = tae8.decode(z_vid).sample
    assert_close(x_vid, x_img[:, :, :1].expand_as(x_vid), atol=1e-5)


def test_opl_zero_for_constant_and_gaussian_latents():
    assert float(outlier_penalty_loss(torch.ones(2, 16, 3, 8, 8))) == 0.0
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 16, 2, 32, 32, generator=g, dtype=torch.float64)
    assert float(outlier_penalty_loss(z, r=3.0)) == 0.0


def test_opl_positive_with_planted_outlier_and_gradient_pulls_it_in():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 16, 16, 16, generator=g, dtype=torch.float64) * 0.1
    z[0, :, 3, 5] = 50.0
    z.requires_grad_(True)
    loss = outlier_penalty_loss(z)
    assert float(loss.detach()) > 0
    loss.backward()
    mean = z.detach().mean((2, 3))[0]
    step = z.detach() - 0.1 * z.grad
    before = torch.linalg.vector_norm(z.detach()[0, :, 3, 5] - mean)
    after = torch.linalg.vector_norm(step[0, :, 3, 5] - step.mean((2, 3))[0])
    assert after < before


def test_opl_closed_form_and_time_folding():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(2, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    z[:, :, :, 0, 0] += 30
    per_frame = torch.stack([outlier_penalty_loss(z[:, :, t]) for t in range(4)]).mean()
    assert_close(outlier_penalty_loss(z), per_frame, rtol=1e-12)
    # explicit formula for one frame
    x = z[0, :, 1]
    mean = x.mean((1, 2), keepdim=True)
    std = x.std((1, 2), correction=0)
    d = (x - mean).pow(2).sum(0).sqrt()
    ref = torch.clamp(d - 3 * std.norm(), min=0).mean()
    assert_close(outlier_penalty_loss(z[:1, :, 1]), ref, rtol=1e-12)


def test_tiled_decode_equals_untiled_for_frame_local_decoder(tae8):
    # At init the TAE is frame-local (centric temporal convs, per-frame norms, zero
    # temporal attention), so overlapping tiles agree exactly where they are blended.
    z = torch.randn(1, 4, 7, 2, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = tae8.decode(z).sample
        tiled = temporal_tiled_decode(tae8, z, tile=4, overlap=2)
    assert_close(tiled, full, atol=1e-5)


class _WindowIdDecoder:
    """Fake TAE: each decode call returns constant frames equal to the call index."""

    def __init__(self, ft: int) -> None:
        self.cfg = TAEConfig(
            latent_channels=1,
            channels=(4,) * 3,
            spatial_down=(False,) * 3,
            temporal_down=(True,) * int(math.log2(ft)) + (False,) * (3 - int(math.log2(ft))),
            norm_groups=4,
        )
        self.calls = 0

    def _decode(self, z, num_frames=None):
        self.calls += 1
        return torch.full(
            (1, 1, z.shape[2] * self.cfg.temporal_factor, 1, 1), float(self.calls - 1)
        )


def test_blend_extent_is_overlap_in_latent_units_times_temporal_factor():
    fake = _WindowIdDecoder(ft=8)
    out = temporal_tiled_decode(fake, torch.zeros(1, 1, 6, 1, 1), tile=4, overlap=2)[0, 0, :, 0, 0]
    # window 0 covers latent [0, 4), window 1 covers [2, 6): blend pixel frames [16, 32)
    assert torch.all(out[:16] == 0) and torch.all(out[32:] == 1)
    blended = out[16:32]
    assert_close(blended, torch.linspace(0, 1, 16), atol=1e-6)


def test_tiled_encode_of_64_frames_equals_two_32_frame_encodes(tae8):
    x = torch.randn(1, 3, 64, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        post = temporal_tiled_encode(tae8, x, tile=32)
        a = tae8.encode(x[:, :, :32]).latent_dist.mean
        b = tae8.encode(x[:, :, 32:]).latent_dist.mean
    assert torch.equal(post.mean, torch.cat([a, b], 2))


def test_tae_loss_parts_and_backward():
    torch.manual_seed(0)
    tae = TemporalAutoencoder(tae_preset("tiny"))
    loss, parts = tae_loss(
        tae, torch.rand(2, 3, 4, 16, 16) * 2 - 1, generator=torch.Generator().manual_seed(0)
    )
    loss.backward()
    assert set(parts) == {"recon", "kl", "opl"}
    assert all(p.grad is not None for p in tae.parameters() if p.requires_grad)


def test_tae_bad_inputs(tae8):
    with pytest.raises(ValueError, match="divisible by the spatial"):
        tae8.encode(torch.zeros(1, 3, 8, 12, 16))
    with pytest.raises(ValueError, match="video must be"):
        tae8.encode(torch.zeros(1, 4, 8, 16, 16))
    with pytest.raises(ValueError, match="z must be"):
        tae8.decode(torch.zeros(1, 3, 1, 2, 2))
    with pytest.raises(ValueError, match="num_frames"):
        tae8.decode(torch.zeros(1, 4, 2, 2, 2), num_frames=20)
    with pytest.raises(ValueError, match="overlap"):
        temporal_tiled_decode(tae8, torch.zeros(1, 4, 4, 2, 2), tile=2, overlap=2)
    with pytest.raises(ValueError, match="multiple"):
        temporal_tiled_encode(tae8, torch.zeros(1, 3, 16, 16, 16), tile=12)
