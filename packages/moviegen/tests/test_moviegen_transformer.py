"""The transformer: shapes, zero init, positions per block, masking, text, checkpointing."""

import pytest
import torch

from papershelf.core.testing import assert_close
from papershelf.moviegen import (
    HFTextEncoder,
    MovieGenTransformer,
    MultiTextConditioner,
    TextContext,
    WordEncoder,
    preset,
    quoted_text,
    tiny_text_encoders,
)


def _cfg(**kw):
    base = dict(in_channels=4, max_pos=(8, 8, 8), text_dims={"a": 6, "b": 5})
    base.update(kw)
    return preset("tiny", **base)


def _text(b, la=3, lb=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TextContext(
        {"a": torch.randn(b, la, 6, generator=g), "b": torch.randn(b, lb, 5, generator=g)},
        {"a": torch.ones(b, la, dtype=torch.bool), "b": torch.ones(b, lb, dtype=torch.bool)},
    )


def _randomise_output(model):
    with torch.no_grad():  # leave zero init so outputs are non-trivial
        torch.nn.init.normal_(model.proj_out.weight, std=0.1)
        if hasattr(model, "adaln_shared"):
            torch.nn.init.normal_(model.adaln_shared.weight, std=0.1)


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_output_shape_equals_input_for_odd_and_single_frames(frames):
    torch.manual_seed(0)
    model = MovieGenTransformer(_cfg())
    x = torch.randn(2, 4, frames, 4, 6)
    assert model(x, torch.rand(2), _text(2)).shape == x.shape


def test_zero_init_gives_zero_velocity():
    model = MovieGenTransformer(_cfg())
    v = model(torch.randn(2, 4, 2, 4, 4), torch.rand(2), _text(2))
    assert torch.equal(v, torch.zeros_like(v))


def test_positions_are_added_at_every_block():
    torch.manual_seed(0)
    model = MovieGenTransformer(_cfg(num_layers=3))
    seen = []
    for block in model.blocks:
        block.register_forward_pre_hook(lambda m, args: seen.append(args[1]))
    model(torch.randn(1, 4, 2, 4, 4), torch.rand(1), _text(1))
    assert len(seen) == 3
    expected = model.positions((2, 2, 2))
    for p in seen:
        assert torch.equal(p, expected)
    # factorized: E_T[f] + E_H[i] + E_W[j]
    assert_close(
        expected[0, 1 * 4 + 0 * 2 + 1], model.pos_t[1] + model.pos_h[0] + model.pos_w[1], atol=1e-7
    )


def test_padded_text_tokens_do_not_change_the_output():
    torch.manual_seed(0)
    model = MovieGenTransformer(_cfg())
    _randomise_output(model)
    text = _text(2, la=5)
    text.masks["a"][:, 3:] = False
    x, t = torch.randn(2, 4, 2, 4, 4), torch.rand(2)
    out = model(x, t, text)
    text.states["a"][:, 3:] = 100.0
    assert_close(model(x, t, text), out, atol=1e-6)
    text.states["a"][:, 0] = 100.0  # a real token does matter
    assert not torch.allclose(model(x, t, text), out)


def test_context_length_is_sum_of_encoder_lengths():
    model = MovieGenTransformer(_cfg())
    ctx, mask = model.encode_text(_text(2, la=3, lb=7))
    assert ctx.shape == (2, 10, 64) and mask.shape == (2, 10)


@pytest.mark.parametrize("adaln", ["shared", "per_layer"])
def test_gradient_checkpointing_gives_same_gradients(adaln):
    torch.manual_seed(0)
    model = MovieGenTransformer(_cfg(adaln=adaln))
    _randomise_output(model)
    x, t, text = torch.randn(2, 4, 2, 4, 4), torch.rand(2), _text(2)
    model(x, t, text).square().sum().backward()
    g1 = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing = True
    model(x, t, text).square().sum().backward()
    for a, p in zip(g1, model.parameters()):
        assert_close(p.grad, a, atol=1e-6)


def test_extra_input_channels_start_as_the_base_model():
    torch.manual_seed(0)
    base = MovieGenTransformer(_cfg())
    torch.manual_seed(0)
    ext = MovieGenTransformer(_cfg(extra_in_channels=3))
    with torch.no_grad():
        ext.patchify.weight[:, :4].copy_(base.patchify.weight)
        ext.load_state_dict(
            {k: v for k, v in base.state_dict().items() if k != "patchify.weight"}, strict=False
        )
    _randomise_output(base)
    ext.proj_out.load_state_dict(base.proj_out.state_dict())
    ext.adaln_shared.load_state_dict(base.adaln_shared.state_dict())
    x, t, text = torch.randn(1, 4, 2, 4, 4), torch.rand(1), _text(1)
    assert_close(
        ext(x, t, text, cond_latent=torch.randn(1, 3, 2, 4, 4)), base(x, t, text), atol=1e-6
    )


def test_transformer_bad_inputs():
    model = MovieGenTransformer(_cfg())
    text = _text(1)
    with pytest.raises(ValueError, match="x must be"):
        model(torch.randn(1, 3, 2, 4, 4), torch.rand(1), text)
    with pytest.raises(ValueError, match="divisible by the patch"):
        model(torch.randn(1, 4, 2, 5, 4), torch.rand(1), text)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        model(torch.randn(1, 4, 2, 4, 4), torch.tensor([1.5]), text)
    with pytest.raises(ValueError, match="exceeds the position tables"):
        model(torch.randn(1, 4, 9, 4, 4), torch.rand(1), text)
    with pytest.raises(ValueError, match="encoders"):
        model(
            torch.randn(1, 4, 2, 4, 4),
            torch.rand(1),
            TextContext({"a": text.states["a"]}, {"a": text.masks["a"]}),
        )


def test_tiny_hf_encoders_and_conditioner():
    cond = MultiTextConditioner(tiny_text_encoders())
    ctx = cond(['a neon sign that reads "OPEN"', "a cat"])
    assert ctx.length == 24 + 32 + 8
    assert set(ctx.states) == {"ul2", "metaclip", "byt5"}
    model = MovieGenTransformer(preset("tiny", in_channels=4, text_dims=cond.text_dims))
    assert model(torch.randn(2, 4, 1, 2, 2), torch.rand(2), ctx).shape == (2, 4, 1, 2, 2)
    assert quoted_text('say "hi" and "yo"') == "hi yo"
    with pytest.raises(ValueError, match="non-empty"):
        cond(["a cat", "  "])
    with pytest.raises(TypeError, match="single str"):
        cond("a cat")


def test_word_encoder_masks_padding():
    enc = WordEncoder(["red", "disc"], dim=4, max_length=3)
    h, m = enc(["red disc", "red"])
    assert h.shape == (2, 3, 4) and m.tolist() == [[True, True, False], [True, False, False]]


def test_hf_encoder_loads_weights_a_user_has_saved(tmp_path):
    # the from_pretrained path, offline: save a tiny random T5 + byte tokenizer, load it back
    enc = tiny_text_encoders()["ul2"]
    enc.model.save_pretrained(tmp_path)
    enc.tokenizer.save_pretrained(tmp_path)
    loaded = HFTextEncoder.from_pretrained(str(tmp_path), max_length=24)
    h1, m1 = enc(["a red disc"])
    h2, m2 = loaded(["a red disc"])
    assert loaded.dim == 32 and torch.equal(m1, m2)
    assert_close(h2, h1, atol=1e-6)
