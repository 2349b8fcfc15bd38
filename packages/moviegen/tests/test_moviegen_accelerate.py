"""The trainer on Hugging Face accelerate (CPU): same steps as the plain path, resume."""

import pytest
import torch
from accelerate import Accelerator

from papershelf.core.testing import assert_close
from papershelf.moviegen import MovieGenTransformer, TextContext, preset
from papershelf.moviegen.train import FlowMatchingTrainer

KW = dict(lr=1e-3, ema_decay=0.9, total_steps=4, warmup_steps=1, max_grad_norm=5.0)


def _model(seed=0):
    torch.manual_seed(seed)
    cfg = preset("tiny", in_channels=4, max_pos=(4, 4, 4), text_dims={"a": 6})
    return MovieGenTransformer(cfg)


def _batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(4, 4, 2, 4, 4, generator=g),
            TextContext(
                {"a": torch.randn(4, 3, 6, generator=g)}, {"a": torch.ones(4, 3, dtype=torch.bool)}
            ),
        )
        for _ in range(n)
    ]


def _acc(steps=2):
    return Accelerator(cpu=True, gradient_accumulation_steps=steps)


def _record_grads(opt):
    """Record the (clipped) gradients each time the torch optimizer steps."""
    seen, step = [], opt.step

    def recording_step(*args, **kwargs):
        seen.append([p.grad.clone() for g in opt.param_groups for p in g["params"]])
        return step(*args, **kwargs)

    opt.step = recording_step
    return seen


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step:UserWarning")  # our recorder
def test_accelerate_path_takes_the_plain_steps():
    data = _batches(4)
    plain = FlowMatchingTrainer(_model(), grad_accum=2, **KW)
    plain_grads = _record_grads(plain.optimizer)
    plain.fit(data, 4, show_progress=False)
    acc = FlowMatchingTrainer(_model(), accelerator=_acc(2), **KW)
    assert acc.grad_accum == 2
    acc_grads = _record_grads(acc.optimizer.optimizer)  # inside AcceleratedOptimizer
    acc.fit(data, 4, show_progress=False)
    # AdamW is blind to a gradient scale: compare the gradients it was given, not only weights
    assert len(acc_grads) == len(plain_grads) == 4
    for ga, gp in zip(acc_grads, plain_grads):
        for a, b in zip(ga, gp):
            assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert_close(torch.tensor(acc.losses), torch.tensor(plain.losses), rtol=1e-5, atol=1e-6)
    for p, q in zip(acc.model.parameters(), plain.model.parameters()):
        assert_close(p, q, rtol=1e-5, atol=1e-6)
    for p, q in zip(acc.ema.model.parameters(), plain.ema.model.parameters()):
        assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert acc.scheduler.get_last_lr() == plain.scheduler.get_last_lr()


def test_accelerate_resume_is_exact_and_checkpoints_cross_paths(tmp_path):
    data = _batches(4)
    ref = FlowMatchingTrainer(_model(), accelerator=_acc(2), **KW)
    ref.fit(data, 4, show_progress=False)

    a = FlowMatchingTrainer(_model(), accelerator=_acc(2), **KW)
    a.fit(data[:2], 2, show_progress=False)
    a.save(tmp_path / "ckpt.pt")
    b = FlowMatchingTrainer(_model(seed=5), accelerator=_acc(2), **KW).load(tmp_path / "ckpt.pt")
    b.fit(data[2:], 2, show_progress=False)
    assert b.step_count == 4 and b.losses == ref.losses
    for p, q in zip(b.model.parameters(), ref.model.parameters()):
        assert torch.equal(p, q)

    # a checkpoint of the accelerate path resumes on the plain path (and takes the same steps)
    c = FlowMatchingTrainer(_model(seed=7), grad_accum=2, **KW).load(tmp_path / "ckpt.pt")
    c.fit(data[2:], 2, show_progress=False)
    assert_close(torch.tensor(c.losses), torch.tensor(ref.losses), rtol=1e-5, atol=1e-6)
    for p, q in zip(c.model.parameters(), ref.model.parameters()):
        assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_accelerate_settings_must_agree():
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        FlowMatchingTrainer(_model(), grad_accum=3, accelerator=_acc(2))
    with pytest.raises(ValueError, match="mixed_precision"):
        FlowMatchingTrainer(_model(), mixed_precision="bf16", accelerator=_acc(1))
    x, text = _batches(1)[0]
    tr = FlowMatchingTrainer(_model(), accelerator=_acc(3))
    with pytest.raises(ValueError, match="divisible by grad_accum"):
        tr.step(x, text)
