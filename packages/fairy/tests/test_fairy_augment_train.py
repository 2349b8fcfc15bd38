"""Paired affine augmentation (Sec. 3.3) and the equivariant fine-tuning loop."""

from __future__ import annotations

import math

import pytest
import torch

from papershelf.core.testing import assert_close
from papershelf.fairy.augment import (
    AffineParams,
    affine_theta,
    apply_affine,
    paired_affine,
    paired_resized_crop,
    sample_affine,
)
from papershelf.fairy.train import (
    EquivariantFinetuneConfig,
    equivariant_finetune,
    equivariant_finetune_step,
)


def _img(b=2, h=24, w=32, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_identity_params_return_the_input():
    x = _img()
    assert_close(apply_affine(x, AffineParams()), x, atol=1e-5)


def test_sampled_params_stay_in_the_paper_ranges():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        p = sample_affine(g)
        assert abs(p.angle) <= 5 and 0.95 <= p.scale <= 1.05
        assert all(abs(t) <= 0.05 for t in p.translate)
        assert all(abs(s) <= 5 for s in p.shear)


def test_same_params_on_both_images():
    x = _img()
    p = sample_affine(torch.Generator().manual_seed(1))
    gs, gt = paired_affine(x, x.clone(), p)
    assert torch.equal(gs, gt)
    assert not torch.allclose(gs, x)


def test_affine_commutes_with_pixelwise_colour_edits():
    """g(c(x)) = c(g(x)) for an affine colour map c: the target an equivariant editor learns."""
    x = _img()
    p = sample_affine(torch.Generator().manual_seed(2))

    def colour(y):
        return 0.5 * y + 0.2

    gx = apply_affine(colour(x), p, padding_mode="border")
    cg = colour(apply_affine(x, p, padding_mode="border"))
    assert_close(gx, cg, atol=1e-6)


def test_integer_translation_moves_pixels():
    x = _img(1, 16, 16)
    y = apply_affine(x, AffineParams(translate=(2 / 16, 0.0)))
    assert_close(y[..., 2:], x[..., :-2], atol=1e-5)
    assert y[..., :2].abs().max() == 0


def test_rotation_matrix_is_orthogonal_in_pixel_units():
    h, w = 20, 40
    th = affine_theta(AffineParams(angle=30.0), h, w).double()
    # back to pixel units: the linear part must be a rotation by -30 degrees
    lin = (
        torch.diag(torch.tensor([w / 2, h / 2])).double()
        @ th[:, :2]
        @ torch.diag(torch.tensor([2 / w, 2 / h])).double()
    )
    a = math.radians(30)
    ref = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]).double()
    assert_close(lin, ref, atol=1e-6)


def test_paired_resized_crop_same_window():
    x = _img(1, 36, 48)
    s, t = paired_resized_crop(
        x, x.clone(), resize=32, crop=24, generator=torch.Generator().manual_seed(0)
    )
    assert s.shape == (1, 3, 24, 24) and torch.equal(s, t)


def test_augment_bad_inputs():
    with pytest.raises(ValueError, match="scale_range"):
        sample_affine(scale_range=(1.1, 0.9))
    with pytest.raises(ValueError, match="max_rotation"):
        sample_affine(max_rotation=-1)
    with pytest.raises(ValueError, match="same size"):
        paired_affine(_img(1, 8, 8), _img(1, 8, 9), AffineParams())
    with pytest.raises(ValueError, match="crop"):
        paired_resized_crop(_img(), _img(), resize=16, crop=32)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        apply_affine(torch.rand(3, 8, 8), AffineParams())


@pytest.fixture(scope="module")
def parts():
    from diffusers import DDPMScheduler

    from papershelf.fairy.testing import tiny_instruct_pix2pix

    pipe = tiny_instruct_pix2pix(1)
    tok = pipe.tokenizer
    ids = tok(["make it snowy"] * 2, padding="max_length", max_length=16, return_tensors="pt")
    null = tok([""], padding="max_length", max_length=16, return_tensors="pt")
    src = _img(2, 16, 16, seed=3)
    batch = {
        "source": src,
        "edited": 1 - src,
        "input_ids": ids.input_ids,
        "null_input_ids": null.input_ids,
    }
    return pipe, DDPMScheduler(num_train_timesteps=1000), batch


def test_finetune_lowers_the_loss(parts):
    pipe, sched, batch = parts
    cfg = EquivariantFinetuneConfig(resize=None, learning_rate=1e-3)

    def held_out():
        with torch.no_grad():
            return float(
                equivariant_finetune_step(
                    pipe.unet,
                    pipe.vae,
                    pipe.text_encoder,
                    batch,
                    sched,
                    config=cfg,
                    generator=torch.Generator().manual_seed(99),
                )
            )

    state = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    before = held_out()
    losses = equivariant_finetune(
        pipe.unet,
        pipe.vae,
        pipe.text_encoder,
        [batch],
        sched,
        config=cfg,
        steps=8,
        generator=torch.Generator().manual_seed(0),
    )
    after = held_out()
    pipe.unet.load_state_dict(state)
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    assert after < before


def test_finetune_goes_through_an_accelerator(parts):
    pipe, sched, batch = parts
    calls = []

    class Recorder:  # the part of accelerate.Accelerator the loop uses
        def prepare(self, *objs):
            calls.append("prepare")
            return objs

        def backward(self, loss):
            calls.append("backward")
            loss.backward()

        def clip_grad_norm_(self, params, norm):
            calls.append("clip")
            return torch.nn.utils.clip_grad_norm_(params, norm)

    state = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    equivariant_finetune(
        pipe.unet,
        pipe.vae,
        pipe.text_encoder,
        [batch],
        sched,
        config=EquivariantFinetuneConfig(resize=None),
        steps=2,
        accelerator=Recorder(),
    )
    pipe.unet.load_state_dict(state)
    assert calls == ["prepare", "backward", "clip", "backward", "clip"]


def test_finetune_bad_inputs(parts):
    pipe, sched, batch = parts
    with pytest.raises(ValueError, match="null_input_ids"):
        equivariant_finetune_step(
            pipe.unet,
            pipe.vae,
            pipe.text_encoder,
            {k: v for k, v in batch.items() if k != "null_input_ids"},
            sched,
        )
    with pytest.raises(ValueError, match="steps"):
        equivariant_finetune(pipe.unet, pipe.vae, pipe.text_encoder, [batch], sched, steps=0)


@pytest.mark.parametrize("augment", [True, False])
def test_finetune_step_with_half_precision_frozen_vae_and_text_encoder(parts, augment):
    # Regression: diffusers' train_instruct_pix2pix keeps the frozen VAE and text encoder in
    # float16 beside a float32 UNet; the step fed float32 images to the float16 VAE and crashed
    # with "Input type (float) and bias type (c10::Half) should be the same".
    import copy

    pipe, sched, batch = parts
    cfg = EquivariantFinetuneConfig(resize=None)

    def loss(vae, text_encoder):
        return equivariant_finetune_step(
            pipe.unet,
            vae,
            text_encoder,
            batch,
            sched,
            config=cfg,
            generator=torch.Generator().manual_seed(5),
            augment=augment,
        )

    ref = loss(pipe.vae, pipe.text_encoder)
    half = loss(
        copy.deepcopy(pipe.vae).to(torch.float16),
        copy.deepcopy(pipe.text_encoder).to(torch.float16),
    )
    h, r = float(half.detach()), float(ref.detach())
    assert half.dtype == torch.float32 and math.isfinite(h)
    assert abs(h - r) < 1e-2 * r
    half.backward()  # the float32 UNet gets gradients
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in pipe.unet.parameters())
    pipe.unet.zero_grad(set_to_none=True)
