"""Margins, features and margin gradients of a torch classifier in one forward and one backward.

For a classifier :math:`f = g \\circ \\phi` the multi-class margin of a sample is
:math:`\\rho_f(x, y) = f_y(x) - \\max_{y' \\ne y} f_{y'}(x)`. The k-variance bounds need the
features :math:`\\phi(x)` and the norm of the margin's gradient with respect to them,
:math:`\\lVert \\nabla_\\phi (f_y - f_{y'})(x) \\rVert_2` with :math:`y'` the runner-up class.

The official code runs the model once per class and once per 200-sample chunk, finds runner-up
classes in a per-sample Python loop and takes two gradient tapes. Here the feature layer's input
(or output) is replaced, through a hook, by a detached leaf tensor: one forward gives features
and logits, and one backward of :math:`\\sum_i (f_{y_i} - f_{y'_i})` through the head alone
gives every per-sample gradient, because in eval mode sample :math:`i`'s logits depend only on
its own features.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from papershelf.core.validation import check_int

__all__ = ["MarginOutput", "lipschitz_estimate", "margins", "multiclass_margin"]

Hook = Literal["input", "output"]


def multiclass_margin(logits: Any, labels: Any) -> Any:
    r"""Multi-class margin :math:`f_y - \max_{j \ne y} f_j` of every row, with a masked max.

    Parameters
    ----------
    logits : ndarray or Tensor, shape (n, C)
        Class scores (``C >= 2``).
    labels : array-like or Tensor of int, shape (n,)
        True classes in ``[0, C)``.

    Returns
    -------
    ndarray or Tensor, shape (n,)
        Margins, same type as ``logits``; ties between the true and the best other class give 0.

    Examples
    --------
    >>> import numpy as np
    >>> multiclass_margin(np.array([[2.0, 1.0, 0.5], [0.0, 3.0, 3.0]]), np.array([0, 1]))
    array([1., 0.])
    """
    as_numpy = not isinstance(logits, Tensor)
    z = torch.as_tensor(np.asarray(logits) if as_numpy else logits)
    y = _check_logits_labels(z, labels)
    true = z.gather(1, y[:, None]).squeeze(1)
    other = z.masked_fill(nn.functional.one_hot(y, z.shape[1]).bool(), float("-inf"))
    out = true - other.max(dim=1).values
    return out.numpy() if as_numpy else out


def _check_logits_labels(z: Tensor, labels: Any) -> Tensor:
    if z.ndim != 2:
        raise ValueError(f"logits must have shape (n, C), got {tuple(z.shape)}")
    if z.shape[1] < 2:
        raise ValueError(f"logits need at least 2 classes for a margin, got C = {z.shape[1]}")
    y = torch.as_tensor(
        labels.detach() if isinstance(labels, Tensor) else np.asarray(labels), device=z.device
    )
    if y.ndim != 1 or y.shape[0] != z.shape[0]:
        raise ValueError(f"labels must have shape ({z.shape[0]},), got {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got dtype {y.dtype}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= z.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {z.shape[1]}), got values in [{int(y.min())}, {int(y.max())}]"
        )
    return y.long()


@dataclass
class MarginOutput:
    """What one pass of :func:`margins` returns (all detached, on the model's device).

    Attributes
    ----------
    features : Tensor, shape (n, D)
        Flattened features at the feature layer.
    logits : Tensor, shape (n, C)
        Model outputs.
    margins : Tensor, shape (n,)
        :math:`f_y - \\max_{y' \\ne y} f_{y'}`.
    runner_up : Tensor, shape (n,)
        The maximising :math:`y'`.
    grad_norms : Tensor, shape (n,), float64, or None
        :math:`\\lVert \\nabla_\\phi (f_y - f_{y'}) \\rVert_2` when requested.
    """

    features: Tensor
    logits: Tensor
    margins: Tensor
    runner_up: Tensor
    grad_norms: Tensor | None = None


def resolve_layer(model: nn.Module, feature_layer: str | nn.Module) -> nn.Module:
    """The submodule named by a dotted path (``"features.3"``) or given as a module."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model)!r}")
    if isinstance(feature_layer, nn.Module):
        if not any(mod is feature_layer for mod in model.modules()):
            raise ValueError("feature_layer is a module that is not part of model")
        return feature_layer
    if not isinstance(feature_layer, str):
        raise TypeError(
            f"feature_layer must be a module path (str) or a module, got {feature_layer!r}"
        )
    try:
        return model.get_submodule(feature_layer)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        shown = ", ".join(repr(n) for n in names[:20]) + (" ..." if len(names) > 20 else "")
        raise ValueError(
            f"feature_layer {feature_layer!r} does not exist in the model; modules: {shown}"
        ) from None


def _forward(
    model: nn.Module, layer: nn.Module, x: Tensor, y: Tensor, hook: Hook, grad: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    captured: list[Tensor] = []

    def leaf(t: Any) -> Tensor:
        if not isinstance(t, Tensor):
            raise TypeError(f"the feature layer's {hook} is not a tensor ({type(t)!r})")
        if captured:
            raise ValueError("the feature layer runs more than once per forward; name another one")
        f = t.detach().requires_grad_(grad)
        captured.append(f)
        if grad:
            # the layers before phi ran without autograd; record only the head from here on
            torch.set_grad_enabled(True)
        return f

    if hook == "input":
        handle = layer.register_forward_pre_hook(lambda _m, args: (leaf(args[0]), *args[1:]))
    else:
        handle = layer.register_forward_hook(lambda _m, _args, out: leaf(out))
    try:
        with torch.no_grad():  # restores the caller's grad mode on exit
            logits = model(x)
    finally:
        handle.remove()
    if not captured:
        raise ValueError("the feature layer was not called during the forward pass")
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        raise ValueError("model(x) must return logits of shape (n, C)")
    if grad and not logits.requires_grad:
        raise ValueError("the logits do not depend on the feature layer; name another one")
    yy = _check_logits_labels(logits.detach(), y)
    true = logits.gather(1, yy[:, None]).squeeze(1)
    other = logits.detach().masked_fill(
        nn.functional.one_hot(yy, logits.shape[1]).bool(), float("-inf")
    )
    runner_up = other.argmax(dim=1)
    diff = true - logits.gather(1, runner_up[:, None]).squeeze(1)
    feats = captured[0]
    gnorm = None
    if grad:
        # samples are independent in eval mode: d(sum_i diff_i)/d phi_i = d diff_i / d phi_i
        (g,) = torch.autograd.grad(diff.sum(), feats)
        # float64 norms: for logits near 1e20 the float32 sum of squares overflows, and an
        # infinite Lipschitz estimate would turn the measure into -0.0 (not scale-invariant)
        gnorm = g.detach().reshape(len(g), -1).double().norm(dim=1)
    return (
        feats.detach().reshape(len(feats), -1),
        logits.detach(),
        diff.detach(),
        runner_up,
        gnorm,
    )


def margins(
    model: nn.Module,
    x: Tensor,
    y: Any,
    feature_layer: str | nn.Module,
    *,
    hook: Hook = "input",
    grad: bool = False,
    batch_size: int | None = None,
) -> MarginOutput:
    r"""Features, logits and margins of a torch classifier in one forward pass (per batch).

    Parameters
    ----------
    model : nn.Module
        Classifier mapping ``x`` to logits of shape (n, C). It is run in eval mode (restored
        afterwards): per-sample gradients need samples that do not interact (BatchNorm).
    x : Tensor, shape (n, ...)
        Inputs, on the model's device.
    y : array-like or Tensor of int, shape (n,)
        Labels in ``[0, C)``.
    feature_layer : str or nn.Module
        Module path (as in ``model.get_submodule``, e.g. ``"features.3"``) or the module itself.
    hook : {"input", "output"}
        Use the layer's input (the official choice: the input of Keras layer ``layer_idx``) or its
        output as :math:`\phi`.
    grad : bool
        Also return :math:`\lVert \nabla_\phi (f_y - f_{y'}) \rVert_2` (one backward through the
        layers after :math:`\phi`).
    batch_size : int, optional
        Process in batches of this size (default: all at once).

    Returns
    -------
    MarginOutput

    References
    ----------
    Chuang et al., "Measuring Generalization with Optimal Transport", NeurIPS 2021, Sec. 4.
    """
    if hook not in ("input", "output"):
        raise ValueError(f"hook must be 'input' or 'output', got {hook!r}")
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x)!r}")
    layer = resolve_layer(model, feature_layer)
    yt = torch.as_tensor(y.detach() if isinstance(y, Tensor) else np.asarray(y), device=x.device)
    if yt.ndim != 1 or yt.shape[0] != x.shape[0]:
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(yt.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x is empty")
    bs = x.shape[0] if batch_size is None else check_int("batch_size", batch_size, low=1)
    was_training = model.training
    model.eval()
    parts = []
    try:
        for s in range(0, x.shape[0], bs):
            parts.append(_forward(model, layer, x[s : s + bs], yt[s : s + bs], hook, grad))
    finally:
        model.train(was_training)
    if len(parts) == 1:  # one batch: no copy
        cat: list[Any] = list(parts[0])
    else:
        cat = [torch.cat(p) if p[0] is not None else None for p in zip(*parts, strict=True)]
    return MarginOutput(cat[0], cat[1], cat[2], cat[3], cat[4])


def lipschitz_estimate(
    model: nn.Module,
    x: Tensor,
    y: Any,
    feature_layer: str | nn.Module,
    *,
    n_classes: int | None = None,
    hook: Hook = "input",
    batch_size: int | None = None,
) -> np.ndarray:
    r"""Per-class empirical Lipschitz constant of the margin as a function of the features.

    .. math::

        \widehat{\mathrm{Lip}}_c = \max_{i : y_i = c}
            \lVert \nabla_\phi f_{y_i}(x_i) - \nabla_\phi f_{y'_i}(x_i) \rVert_2,

    :math:`y'_i` the runner-up class, as in the official ``lipschitz`` function: an empirical
    lower estimate, not a certified constant. All per-sample gradients come from one backward.

    Parameters
    ----------
    model, x, y, feature_layer, hook, batch_size
        As in :func:`margins`.
    n_classes : int, optional
        Length of the output; default: the number of logits.

    Returns
    -------
    ndarray, shape (n_classes,)
        NaN for classes without a sample.
    """
    out = margins(model, x, y, feature_layer, hook=hook, grad=True, batch_size=batch_size)
    assert out.grad_norms is not None
    return _per_class_max(
        out.grad_norms.cpu().double().numpy(),
        np.asarray(torch.as_tensor(y).cpu()),
        out.logits.shape[1] if n_classes is None else n_classes,
    )


def _per_class_max(values: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    res = np.full(n_classes, np.nan)
    for c in range(n_classes):
        sel = values[labels == c]
        if len(sel):
            res[c] = sel.max()
    return res


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`margins`.

    The package exposes the function ``margins`` lazily; once this submodule has been imported
    the import system binds ``papershelf.kv_margin.margins`` to the module, so the module
    forwards calls to keep ``papershelf.kv_margin.margins(model, x, y, layer)`` working.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> MarginOutput:
        return margins(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
