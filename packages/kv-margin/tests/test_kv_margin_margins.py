"""Margins, features and per-sample margin gradients from one forward and one backward."""

import numpy as np
import pytest
import torch
from torch import nn

from papershelf.kv_margin import lipschitz_estimate, margins, multiclass_margin


def mlp(seed=0, bn=False):
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 16), nn.ReLU()]
    if bn:
        layers.append(nn.BatchNorm1d(16))
    return nn.Sequential(*layers, nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 4)).double()


def test_multiclass_margin_hand_values_and_ties():
    logits = np.array([[2.0, 1.0, 0.5], [0.0, 3.0, 3.0], [1.0, 4.0, -1.0]])
    np.testing.assert_allclose(multiclass_margin(logits, [0, 1, 0]), [1.0, 0.0, -3.0])
    out = multiclass_margin(torch.tensor(logits), torch.tensor([2, 2, 1]))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), [-1.5, 0.0, 3.0])


def test_linear_head_gradient_norm_is_weight_difference():
    torch.manual_seed(1)
    head = nn.Linear(6, 5).double()
    model = nn.Sequential(nn.Identity(), head)
    x = torch.randn(40, 6, dtype=torch.float64)
    y = torch.randint(0, 5, (40,))
    out = margins(model, x, y, "1", grad=True)
    W = head.weight.detach()
    expected = (W[y] - W[out.runner_up]).norm(dim=1)
    torch.testing.assert_close(out.grad_norms, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.features, x)


@pytest.mark.parametrize("hook", ["input", "output"])
@pytest.mark.parametrize("bn", [False, True])
def test_one_backward_equals_per_sample_autograd(hook, bn):
    model = mlp(2, bn=bn)
    model.train()  # margins() must switch to eval itself and restore the mode
    x = torch.randn(25, 5, dtype=torch.float64)
    y = torch.randint(0, 4, (25,))
    split = 3 if bn else 2  # index of the first layer after the features
    layer = str(split) if hook == "input" else str(split - 1)
    out = margins(model, x, y, layer, hook=hook, grad=True, batch_size=10)
    assert model.training
    model.eval()
    head = model[split:]
    body = model[:split]
    for i in range(25):
        phi = body(x[i : i + 1]).detach().requires_grad_(True)
        z = head(phi)[0]
        zi = z.detach().clone()
        zi[y[i]] = -np.inf
        j = int(zi.argmax())
        (g,) = torch.autograd.grad(z[y[i]] - z[j], phi)
        torch.testing.assert_close(out.features[i], phi.detach()[0])
        assert float(out.margins[i]) == pytest.approx(float(z[y[i]] - z[j]), rel=1e-12)
        assert int(out.runner_up[i]) == j
        assert float(out.grad_norms[i]) == pytest.approx(float(g.norm()), rel=1e-10)


def test_gradients_do_not_touch_parameters():
    model = mlp(3)
    margins(
        model,
        torch.randn(8, 5, dtype=torch.float64),
        torch.zeros(8, dtype=torch.long),
        "2",
        grad=True,
    )
    assert all(p.grad is None for p in model.parameters())


def test_lipschitz_estimate_is_per_class_max():
    model = mlp(4)
    x = torch.randn(30, 5, dtype=torch.float64)
    y = torch.arange(30) % 3  # class 3 has no sample
    lip = lipschitz_estimate(model, x, y, "2")
    gn = margins(model, x, y, "2", grad=True).grad_norms.numpy()
    for c in range(3):
        assert lip[c] == pytest.approx(gn[y.numpy() == c].max())
    assert np.isnan(lip[3])


def test_bad_inputs():
    model = mlp(5)
    x = torch.randn(6, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"'encoder\.0' does not exist"):
        margins(model, x, torch.zeros(6, dtype=torch.long), "encoder.0")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        margins(model, x, torch.full((6,), 4), "2")
    with pytest.raises(ValueError, match="y must have shape"):
        margins(model, x, torch.zeros(5, dtype=torch.long), "2")
    with pytest.raises(ValueError, match="at least 2 classes"):
        multiclass_margin(np.zeros((3, 1)), [0, 0, 0])
    with pytest.raises(TypeError, match="integers"):
        multiclass_margin(np.zeros((3, 2)), [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="not part of model"):
        margins(model, x, torch.zeros(6, dtype=torch.long), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="hook"):
        margins(model, x, torch.zeros(6, dtype=torch.long), "2", hook="middle")
