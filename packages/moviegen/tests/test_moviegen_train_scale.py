"""Training at scale, single-process parts: guidance dropout rate, step guard, clipping,
DCP round trip, FLOP count against FlopCounterMode, position growth, bad input."""

import math

import pytest
import torch

from papershelf.moviegen import MovieGenTransformer, TextContext, preset
from papershelf.moviegen.train import (
    FlowMatchingTrainer,
    grow_position_tables,
    guidance_dropout,
    training_flops,
)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = preset("tiny", in_channels=4, max_pos=(4, 4, 4), text_dims={"a": 6}, **kw)
    model = MovieGenTransformer(cfg)
    with torch.no_grad():  # non-zero output so that gradients reach every parameter
        torch.nn.init.normal_(model.proj_out.weight, std=0.05)
    return model


def _batches(n, seed=0, B=4):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(B, 4, 2, 4, 4, generator=g),
            TextContext(
                {"a": torch.randn(B, 3, 6, generator=g)}, {"a": torch.ones(B, 3, dtype=torch.bool)}
            ),
        )
        for _ in range(n)
    ]


def _three_encoder_text(B):
    g = torch.Generator().manual_seed(0)
    names = ("ul2", "metaclip", "byt5")
    return TextContext(
        {k: torch.randn(B, 2, 3, generator=g) + 1.0 for k in names},
        {
            k: torch.zeros(B, 2, dtype=torch.bool).index_fill_(1, torch.tensor([0]), True)
            for k in names
        },
    )


@pytest.mark.parametrize(("p", "per"), [(0.1, 0.0), (0.25, 0.1)])
def test_guidance_dropout_nulls_the_whole_context_at_the_rate(p, per):
    B = 20_000
    text = _three_encoder_text(B)
    out = guidance_dropout(text, p, per_encoder=per, generator=torch.Generator().manual_seed(1))
    null = text.null()
    dropped = {k: (out.states[k] == 0).all(dim=(1, 2)) & out.masks[k].all(1) for k in text.states}
    for k in text.states:  # a dropped encoder is exactly the null context; kept ones untouched
        keep = ~dropped[k]
        assert torch.equal(out.states[k][keep], text.states[k][keep])
        assert torch.equal(out.states[k][~keep], null.states[k][~keep])
    joint = torch.stack(list(dropped.values())).all(0).float().mean().item()
    expect = p + (1 - p) * per**3  # jointly, or all three independently
    sigma = math.sqrt(expect * (1 - expect) / B)
    assert abs(joint - expect) < 3 * sigma, (joint, expect, sigma)
    each = dropped["ul2"].float().mean().item()
    expect_each = p + (1 - p) * per
    assert abs(each - expect_each) < 3 * math.sqrt(expect_each * (1 - expect_each) / B)
    with pytest.raises(ValueError, match="cfg_dropout"):
        guidance_dropout(text, float("nan"))
    with pytest.raises(ValueError, match="cfg_dropout_per_encoder"):
        guidance_dropout(text, 0.1, per_encoder=1.5)


def test_step_guard_skips_non_finite_steps_and_leaves_weights_alone(caplog):
    tr = FlowMatchingTrainer(_model(), lr=1e-2, ema_decay=0.9, warmup_steps=2, total_steps=6)
    x, text = _batches(1)[0]
    tr.step(x, text)
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    ema_before = {k: v.clone() for k, v in tr.ema.shadow.items()}
    lr_before = tr.scheduler.get_last_lr()

    def poison(module, inputs, output):  # a NaN inside the model (e.g. an overflow)
        return output * float("nan")

    h = tr.model.blocks[0].register_forward_hook(poison)
    with caplog.at_level("WARNING"):
        loss = tr.step(x, text)
    h.remove()
    assert math.isnan(loss) and tr.skipped_steps == 1 and tr.step_count == 1
    assert "skipped" in caplog.text
    for k, v in tr.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for k, v in tr.ema.shadow.items():
        assert torch.equal(v, ema_before[k]), k
    assert tr.scheduler.get_last_lr() == lr_before
    assert all(p.grad is None for p in tr.model.parameters())
    assert math.isfinite(tr.step(x, text)) and tr.step_count == 2  # training goes on


def test_clipping_equals_torch_clip_grad_norm():
    x, text = _batches(1)[0]
    tr = FlowMatchingTrainer(_model(), lr=1e-3, max_grad_norm=1e-3, cfg_dropout=0.0)
    seen = []
    step = tr.optimizer.step

    def record(*a, **k):
        seen.append([p.grad.clone() for p in tr.model.parameters()])
        return step(*a, **k)

    tr.optimizer.step = record
    tr.step(x, text)
    ref = _model()
    gen = torch.Generator().manual_seed(0)
    from papershelf.moviegen import flow_matching_loss

    x0 = torch.randn(x.shape, generator=gen)
    from papershelf.moviegen.flow import sample_t_logit_normal

    t = sample_t_logit_normal(4, generator=gen)
    flow_matching_loss(ref, x, text, x0=x0, t=t, cfg_dropout=0.0).backward()
    norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 1e-3)
    assert float(norm) > 1e-2  # the clip is active
    assert tr.grad_norms[0] == pytest.approx(float(norm), rel=1e-5)
    for a, p in zip(seen[0], ref.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-5, atol=1e-9)


def test_dcp_checkpoint_resume_is_exact_in_one_process(tmp_path):
    kw = dict(lr=1e-3, ema_decay=0.9, total_steps=4, warmup_steps=1)
    data = _batches(4)
    ref = FlowMatchingTrainer(_model(), **kw)
    ref.fit(data, 4, show_progress=False)
    a = FlowMatchingTrainer(_model(), **kw)
    a.fit(data[:2], 2, show_progress=False)
    a.save_checkpoint(tmp_path / "ckpt")
    b = FlowMatchingTrainer(_model(seed=5), **kw).load_checkpoint(tmp_path / "ckpt")
    b.fit(data[2:], 2, show_progress=False)
    assert b.losses == ref.losses and b.step_count == 4
    for (k, p), q in zip(b.model.state_dict().items(), ref.model.state_dict().values()):
        assert torch.equal(p, q), k
    for k, v in b.ema.shadow.items():
        assert torch.equal(v, ref.ema.shadow[k]), k
    assert b.scheduler.get_last_lr() == ref.scheduler.get_last_lr()
    with pytest.raises(ValueError, match="checkpoint is for"):
        FlowMatchingTrainer(_model(num_layers=3), **kw).load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="EMA"):
        FlowMatchingTrainer(_model(), lr=1e-3).load_checkpoint(tmp_path / "ckpt")


def test_single_file_checkpoints_load_with_weights_only(tmp_path, monkeypatch):
    tr = FlowMatchingTrainer(_model(), lr=1e-3, ema_decay=0.9)
    tr.step(*_batches(1)[0])
    tr.save(tmp_path / "c.pt")
    seen = {}
    real = torch.load

    def spy(*a, **k):
        seen.update(k)
        return real(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    FlowMatchingTrainer(_model(seed=3), lr=1e-3, ema_decay=0.9).load(tmp_path / "c.pt")
    assert seen["weights_only"] is True


def test_bad_training_input_gets_clear_errors():
    tr = FlowMatchingTrainer(_model(), lr=1e-3)
    x, text = _batches(1)[0]
    bad = x.clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x1 contains NaN"):
        tr.step(bad, text)
    with pytest.raises(TypeError, match="x1 must have the model's dtype"):
        tr.step(x.double(), text)
    with pytest.raises(TypeError, match="floating-point"):
        tr.step((x * 10).to(torch.uint8), text)
    with pytest.raises(ValueError, match="empty batch"):
        tr.step(x[:0], text.index(slice(0, 0)))
    with pytest.raises(ValueError, match="x1 must be latents"):
        tr.step(x[0], text)
    nan_text = TextContext({"a": text.states["a"] * float("nan")}, text.masks)
    with pytest.raises(ValueError, match=r"text\.states"):
        tr.step(x, nan_text)
    for name, kw in [
        ("cfg_dropout", {"cfg_dropout": float("nan")}),
        ("lr", {"lr": float("nan")}),
        ("max_grad_norm", {"max_grad_norm": float("inf")}),
        ("ema_decay", {"ema_decay": 1.0}),
        ("sigma_min", {"sigma_min": float("nan")}),
    ]:
        with pytest.raises(ValueError, match=name):
            FlowMatchingTrainer(_model(), **kw)


def test_training_flops_equal_flop_counter_mode():
    from torch.utils.flop_counter import FlopCounterMode

    cfg = preset("tiny", in_channels=4, max_pos=(4, 4, 4), text_dims={"a": 6, "b": 10})
    model = MovieGenTransformer(cfg)
    B, grid = 3, (2, 4, 8)
    x = torch.randn(B, 4, *grid)
    text = TextContext(
        {"a": torch.randn(B, 5, 6), "b": torch.randn(B, 7, 10)},
        {"a": torch.ones(B, 5, dtype=torch.bool), "b": torch.ones(B, 7, dtype=torch.bool)},
    )
    lengths = {"a": 5, "b": 7}
    with FlopCounterMode(display=False) as fwd:
        out = model(x, torch.rand(B), text)
    assert fwd.get_total_flops() == training_flops(cfg, B, grid, lengths, backward=False)
    with FlopCounterMode(display=False) as both:
        model(x, torch.rand(B), text).square().mean().backward()
    exact = training_flops(cfg, B, grid, lengths, attention_recompute=True)
    assert both.get_total_flops() == exact  # FlopCounterMode counts flash's QK^T recompute
    assert training_flops(cfg, B, grid, lengths) == exact - 2 * 2 * B * 16 * 64 * (16 + 12)
    assert out.shape == x.shape
    # the old MFU estimate (6 N_matmul per video token) counted text and adaLN per token
    n_matmul = sum(p.numel() for p in model.parameters() if p.ndim == 2)
    s, lt, L, d = 16, 12, 2, 64
    old = 6 * n_matmul * B * s + 12 * L * d * s * s * B + 12 * L * d * s * lt * B
    assert old > 1.1 * training_flops(cfg, B, grid, lengths)


def test_position_tables_grow_from_256_to_768_px():
    torch.manual_seed(0)
    cfg = preset("tiny", in_channels=4, max_pos=(2, 4, 4), text_dims={"a": 6})
    model = MovieGenTransformer(cfg)
    with torch.no_grad():
        torch.nn.init.normal_(model.proj_out.weight, std=0.05)
    x, text = _batches(1)[0]
    t = torch.rand(4)
    before = model(x, t, text)
    old_h = model.pos_h.detach().clone()

    ext = grow_position_tables(model, (2, 12, 12), mode="extend")
    assert ext.cfg.max_pos == (2, 12, 12) and model.pos_h.shape == (12, 64)
    assert torch.equal(model.pos_h[:4], old_h)
    assert torch.equal(model(x, t, text), before)  # the first stage's grid is unchanged
    big = torch.randn(1, 4, 2, 24, 24)  # 3x the side: 12 x 12 tokens
    assert model(big, t[:1], text.index(slice(0, 1))).shape == big.shape

    torch.manual_seed(0)
    model = MovieGenTransformer(cfg)
    grow_position_tables(model, (2, 10, 10))
    assert torch.equal(model.pos_h[0], old_h[0]) and torch.equal(model.pos_h[-1], old_h[-1])
    # linear, ends aligned: new row i sits at old position i * 3 / 9
    torch.testing.assert_close(model.pos_h[3], old_h[1])
    torch.testing.assert_close(model.pos_h[4], old_h[1] + (old_h[2] - old_h[1]) / 3)
    assert isinstance(model.pos_h, torch.nn.Parameter)
    with pytest.raises(ValueError, match="shrink"):
        grow_position_tables(model, (2, 4, 4))
    with pytest.raises(ValueError, match="mode"):
        grow_position_tables(model, (2, 10, 10), mode="nearest")
