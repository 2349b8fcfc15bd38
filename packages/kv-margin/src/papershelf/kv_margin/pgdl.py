r"""PGDL task models and data in torch, without TensorFlow (needs the ``pgdl`` extra: h5py).

A PGDL task folder (Jiang et al., NeurIPS 2020 competition "Predicting Generalization in Deep
Learning") holds one folder per trained model and the training data::

    task1_v4/
        model_1/config.json      {"model_config": [{"layer_name": "Conv2D", ...}, ...],
                                  "input_shape": [32, 32, 3]}
        model_1/weights.hdf5     Keras HDF5 weights
        ...
        dataset_1/train/shard_*.tfrecord   tf.train.Example {"inputs": float32 tensor (H, W, C),
                                            "output": int32 label}, serialized with
                                            tf.io.serialize_tensor
        model_configs.json       (the reference data; may live in a separate folder)
                                 {"model_1": {"hparams": {name: {"current_value": v, ...}},
                                              "metrics": {"train_acc": a, "test_acc": b}}}

The starter kit builds a ``tf.keras.Sequential`` from ``model_config`` (``layer_name`` is a
``tf.keras.layers`` class, the other keys its arguments) and loads the weights by layer order.
:func:`load_pgdl_model` builds the same network as a torch ``nn.Sequential`` whose entry
``i`` is Keras layer ``i`` (activation included), so the official feature choice "the input of
Keras layer ``layer_idx``" is ``feature_layer=str(layer_idx)``, ``hook="input"``. Tensors are
NCHW inside; Keras' channels-last ``Flatten`` order is kept by flattening in (H, W, C) order, so
the Dense kernels load unchanged. ``"same"`` padding follows TensorFlow (the extra pixel of an
odd total padding goes after). The network is an inference-only replica: BatchNormalization
uses its moving statistics and Dropout is the identity, as when the official code calls the
layers.

Features are flattened in (C, H, W) order here and in (H, W, C) order officially; the k-variance
(Euclidean W1) and the gradient norms do not depend on the order of the coordinates.

References
----------
Chuang et al., "Measuring Generalization with Optimal Transport", NeurIPS 2021 (PGDL
submissions); Jiang et al., "NeurIPS 2020 Competition: Predicting Generalization in Deep
Learning", 2020 (starter kit: ``model_def_to_keras_sequential``, ``load_training_data``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from papershelf.kv_margin.measure import kv_measures
from papershelf.kv_margin.metrics import pgdl_cmi
from papershelf.kv_margin.tfrecord import parse_example, parse_tensor, read_tfrecord

log = logging.getLogger(__name__)

__all__ = [
    "KerasSequential",
    "PGDLTaskScores",
    "keras_to_torch",
    "load_pgdl_dataset",
    "load_pgdl_model",
    "official_layer_index",
    "score_pgdl_task",
]

Depth = Literal["shallow", "deep"]
# the official layer search: the first index holding a layer with `strides` (conv or pooling)
OFFICIAL_LAYERS: dict[str, tuple[int, ...]] = {
    "shallow": (2, 3, 4, 5),
    "deep": (8, 9, 6, 7, 5, 4, 3, 2),
}
_STRIDED = {"Conv1D", "Conv2D", "Conv3D", "MaxPooling2D", "AveragePooling2D", "DepthwiseConv2D",
            "SeparableConv2D", "Conv2DTranspose", "MaxPooling1D", "AveragePooling1D"}  # fmt: skip
_IDENTITY = {"Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout"}

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=1),  # Keras: last axis = channels = dim 1 here
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "gelu": F.gelu,
    "exponential": torch.exp,
}


def _activation(name: Any) -> Callable[[Tensor], Tensor]:
    key = "linear" if name is None else str(name)
    if key not in _ACTIVATIONS:
        raise ValueError(f"unsupported Keras activation {name!r}; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[key]


def _pair(v: Any, name: str) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, float)) else tuple(v)
    if len(t) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v!r}")
    return int(t[0]), int(t[1])


def _same_pad(
    size: Sequence[int], k: Sequence[int], s: Sequence[int], d: Sequence[int]
) -> list[int]:
    """TensorFlow's "same" padding as ``F.pad`` widths (W first); the odd pixel goes after."""
    pads: list[int] = []
    for n, kk, ss, dd in reversed(list(zip(size, k, s, d, strict=True))):
        total = max((math.ceil(n / ss) - 1) * ss + (kk - 1) * dd + 1 - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


class Conv2D(nn.Module):
    """Keras ``Conv2D`` (channels last in Keras, NCHW here) with its activation."""

    def __init__(self, conv: nn.Conv2d, same: bool, activation: Any) -> None:
        super().__init__()
        self.conv, self.same, self.activation = conv, same, activation
        self._act = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        if self.same:
            c = self.conv
            x = F.pad(x, _same_pad(x.shape[2:], c.kernel_size, c.stride, c.dilation))
        return self._act(self.conv(x))


class Dense(nn.Module):
    """Keras ``Dense`` on (n, features) inputs, with its activation."""

    def __init__(self, linear: nn.Linear, activation: Any) -> None:
        super().__init__()
        self.linear, self.activation = linear, activation
        self._act = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2:
            raise ValueError(f"Dense expects (n, features) inputs, got shape {tuple(x.shape)}")
        return self._act(self.linear(x))


class BatchNormalization(nn.Module):
    """Keras ``BatchNormalization`` over the channel axis, always with the moving statistics."""

    running_mean: Tensor
    running_var: Tensor

    def __init__(self, n: int, epsilon: float, center: bool, scale: bool) -> None:
        super().__init__()
        self.epsilon = float(epsilon)
        self.weight = nn.Parameter(torch.ones(n)) if scale else None
        self.bias = nn.Parameter(torch.zeros(n)) if center else None
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.epsilon
        )


class Pooling2D(nn.Module):
    """Keras ``MaxPooling2D`` / ``AveragePooling2D`` ("valid" or TensorFlow "same")."""

    def __init__(
        self, kind: str, pool: tuple[int, int], stride: tuple[int, int], same: bool
    ) -> None:
        super().__init__()
        self.kind, self.pool, self.stride, self.same = kind, pool, stride, same

    def forward(self, x: Tensor) -> Tensor:
        if not self.same:
            if self.kind == "max":
                return F.max_pool2d(x, self.pool, self.stride)
            return F.avg_pool2d(x, self.pool, self.stride)
        pads = _same_pad(x.shape[2:], self.pool, self.stride, (1, 1))
        if self.kind == "max":  # padded cells never win
            return F.max_pool2d(F.pad(x, pads, value=-math.inf), self.pool, self.stride)
        # TensorFlow averages over the cells inside the image only
        total = F.avg_pool2d(F.pad(x, pads), self.pool, self.stride, divisor_override=1)
        ones = F.pad(torch.ones_like(x[:1, :1]), pads)
        count = F.avg_pool2d(ones, self.pool, self.stride, divisor_override=1)
        return total / count


class GlobalPooling2D(nn.Module):
    """Keras ``GlobalAveragePooling2D`` / ``GlobalMaxPooling2D``: (n, C, H, W) -> (n, C)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3)) if self.kind == "avg" else x.amax(dim=(2, 3))


class Flatten(nn.Module):
    """Keras ``Flatten`` of channels-last data: NCHW is flattened in (H, W, C) order."""

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 4:
            x = x.permute(0, 2, 3, 1)
        return x.reshape(len(x), -1)


class Reshape(nn.Module):
    """Keras ``Reshape(target_shape)``: reshapes in Keras' channels-last layout; a 3-D target
    comes back as NCHW."""

    def __init__(self, target_shape: Sequence[int]) -> None:
        super().__init__()
        self.target_shape = tuple(int(v) for v in target_shape)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 4:  # NCHW -> NHWC, the order Keras reshapes in
            x = x.permute(0, 2, 3, 1)
        y = x.reshape(x.shape[0], *self.target_shape)
        return y.permute(0, 3, 1, 2) if y.ndim == 4 else y

    def extra_repr(self) -> str:
        return f"target_shape={self.target_shape}"


class Activation(nn.Module):
    """Keras ``Activation``, ``ReLU``, ``LeakyReLU`` and ``Softmax`` layers."""

    def __init__(self, fn: Callable[[Tensor], Tensor], name: str) -> None:
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


class ZeroPadding2D(nn.Module):
    """Keras ``ZeroPadding2D``."""

    def __init__(self, padding: Any) -> None:
        super().__init__()
        if isinstance(padding, (int, float)):
            (t, b), (left, r) = (padding, padding), (padding, padding)
        elif isinstance(padding[0], (int, float)):
            (t, b), (left, r) = (padding[0], padding[0]), (padding[1], padding[1])
        else:
            (t, b), (left, r) = padding
        self.pads = [int(left), int(r), int(t), int(b)]

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, self.pads)


class KerasSequential(nn.Sequential):
    """A PGDL Keras ``Sequential`` rebuilt in torch: entry ``i`` is Keras layer ``i``.

    Takes NCHW images (or (n, d) vectors). ``layer_configs`` keeps the Keras layer dicts,
    ``input_shape`` the Keras (channels-last) input shape.
    """

    def __init__(
        self,
        *layers: Any,
        layer_configs: Sequence[dict[str, Any]] = (),
        input_shape: Sequence[int] = (),
    ) -> None:
        super().__init__(*layers)  # slicing passes one OrderedDict
        self.layer_configs = list(layer_configs)
        self.input_shape = tuple(int(v) for v in input_shape)


def _ints(d: dict[str, Any]) -> dict[str, Any]:
    # the starter kit casts integral floats (3.0) to ints before building the layers
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in d.items()}


def _check_channels_last(cfg: dict[str, Any], i: int) -> None:
    fmt = cfg.get("data_format")
    if fmt not in (None, "channels_last"):
        raise ValueError(f"layer {i} ({cfg['layer_name']}): only channels_last is supported")


def _weight_count(cfg: dict[str, Any]) -> int:
    name = cfg["layer_name"]
    if name in ("Conv2D", "Dense"):
        return 2 if cfg.get("use_bias", True) else 1
    if name == "BatchNormalization":
        return 2 + int(cfg.get("scale", True)) + int(cfg.get("center", True))
    return 0


def _build_layer(cfg: dict[str, Any], i: int, weights: list[np.ndarray], dtype: Any) -> nn.Module:
    name = cfg["layer_name"]
    _check_channels_last(cfg, i)

    def t(a: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(a), dtype=dtype)

    if name == "Conv2D":
        kernel = weights[0]  # (kh, kw, in, out)
        if kernel.ndim != 4:
            raise ValueError(f"layer {i} (Conv2D): kernel of shape {kernel.shape} is not 4-D")
        kh, kw, c_in, c_out = kernel.shape
        if int(cfg.get("filters") or c_out) != c_out or _pair(
            cfg.get("kernel_size", (kh, kw)), "kernel_size"
        ) != (kh, kw):
            raise ValueError(f"layer {i} (Conv2D): weights {kernel.shape} do not match the config")  # fmt: skip
        if int(cfg.get("groups", 1)) != 1:
            raise ValueError(f"layer {i} (Conv2D): grouped convolutions are not supported")
        padding = str(cfg.get("padding", "valid")).lower()
        if padding not in ("valid", "same"):
            raise ValueError(f"layer {i} (Conv2D): unsupported padding {padding!r}")
        conv = nn.Conv2d(
            c_in, c_out, (kh, kw), stride=_pair(cfg.get("strides", 1), "strides"),
            dilation=_pair(cfg.get("dilation_rate", 1), "dilation_rate"), bias=len(weights) > 1,
            dtype=dtype,
        )  # fmt: skip
        with torch.no_grad():
            conv.weight.copy_(t(kernel).permute(3, 2, 0, 1))  # HWIO -> OIHW
            if conv.bias is not None:
                conv.bias.copy_(t(weights[1]))
        return Conv2D(conv, padding == "same", cfg.get("activation"))
    if name == "Dense":
        kernel = weights[0]  # (in, out)
        if kernel.ndim != 2 or int(cfg.get("units") or kernel.shape[1]) != kernel.shape[1]:
            raise ValueError(f"layer {i} (Dense): weights {kernel.shape} do not match the config")
        lin = nn.Linear(kernel.shape[0], kernel.shape[1], bias=len(weights) > 1, dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(t(kernel).T)
            if lin.bias is not None:
                lin.bias.copy_(t(weights[1]))
        return Dense(lin, cfg.get("activation"))
    if name == "BatchNormalization":
        axis = cfg.get("axis", -1)
        if axis not in (-1, 3, [3], [-1]):
            raise ValueError(f"layer {i} (BatchNormalization): only the channel axis is supported")
        scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
        bn = BatchNormalization(len(weights[-1]), cfg.get("epsilon", 1e-3), center, scale).to(dtype)
        it = iter(weights)  # Keras order: gamma, beta, moving_mean, moving_variance
        with torch.no_grad():
            if bn.weight is not None:
                bn.weight.copy_(t(next(it)))
            if bn.bias is not None:
                bn.bias.copy_(t(next(it)))
            bn.running_mean.copy_(t(next(it)))
            bn.running_var.copy_(t(next(it)))
        return bn
    if name in ("MaxPooling2D", "AveragePooling2D"):
        pool = _pair(cfg.get("pool_size", 2), "pool_size")
        stride = pool if cfg.get("strides") is None else _pair(cfg["strides"], "strides")
        padding = str(cfg.get("padding", "valid")).lower()
        return Pooling2D("max" if name[0] == "M" else "avg", pool, stride, padding == "same")
    if name in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        if cfg.get("keepdims"):
            raise ValueError(f"layer {i} ({name}): keepdims=True is not supported")
        return GlobalPooling2D("avg" if "Average" in name else "max")
    if name == "Flatten":
        return Flatten()
    if name == "Reshape":
        return Reshape(cfg["target_shape"])
    if name in _IDENTITY:
        return nn.Identity()
    if name == "Activation":
        return Activation(_activation(cfg.get("activation")), str(cfg.get("activation")))
    if name == "ReLU":
        mx, slope = cfg.get("max_value"), float(cfg.get("negative_slope", 0.0))
        thr = float(cfg.get("threshold", 0.0))

        def relu(x: Tensor) -> Tensor:
            y = torch.where(x >= thr, x, slope * (x - thr))
            return y if mx is None else y.clamp(max=float(mx))

        return Activation(relu, f"ReLU(max_value={mx}, negative_slope={slope}, threshold={thr})")
    if name == "LeakyReLU":
        alpha = float(cfg.get("alpha", cfg.get("negative_slope", 0.3)))
        return Activation(lambda x: F.leaky_relu(x, alpha), f"LeakyReLU({alpha})")
    if name == "Softmax":
        if cfg.get("axis", -1) != -1:
            raise ValueError(f"layer {i} (Softmax): only axis=-1 is supported")
        return Activation(_ACTIVATIONS["softmax"], "Softmax")
    if name == "ZeroPadding2D":
        return ZeroPadding2D(cfg.get("padding", 1))
    raise ValueError(f"layer {i}: Keras layer {name!r} is not supported by the PGDL reader")


def _read_keras_weights(path: str | Path) -> list[list[np.ndarray]]:
    """Per-layer weight lists of a Keras 2 HDF5 file (``save_weights`` or full ``save``)."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - exercised without the extra only
        raise ImportError(
            "reading PGDL weights needs h5py: pip install 'papershelf-kv-margin[pgdl]'"
        ) from e

    def s(v: Any) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    def names_attr(obj: Any, key: str) -> list[str] | None:
        # Keras splits attributes over 64 kB into key0, key1, ...
        if key in obj.attrs:
            return [s(v) for v in obj.attrs[key]]
        if f"{key}0" not in obj.attrs:
            return None
        out, k = [], 0
        while f"{key}{k}" in obj.attrs:
            out += [s(v) for v in obj.attrs[f"{key}{k}"]]
            k += 1
        return out

    with h5py.File(path, "r") as f:
        g = f.get("model_weights", f)
        layer_names = names_attr(g, "layer_names")
        if layer_names is None:
            raise ValueError(f"{path}: not a Keras HDF5 weight file (no 'layer_names' attribute)")
        out = []
        for lname in layer_names:
            lg = g[lname]
            names = names_attr(lg, "weight_names") or []
            if names:
                out.append([np.asarray(lg[w]) for w in names])
    return out


def keras_to_torch(
    model_config: list[dict[str, Any]],
    input_shape: Sequence[int],
    weights: str | Path | list[list[np.ndarray]],
    *,
    dtype: torch.dtype = torch.float32,
) -> KerasSequential:
    """Build the torch twin of a PGDL Keras ``Sequential`` and load its weights.

    Parameters
    ----------
    model_config : list of dict
        ``config.json``'s ``model_config``: ``{"layer_name": <tf.keras.layers class>, **kwargs}``.
    input_shape : sequence of int
        Keras input shape without the batch axis, channels last, e.g. ``[32, 32, 3]``.
    weights : path or list of lists of ndarray
        A Keras HDF5 weight file, or per-layer Keras weight lists in layer order (empty
        lists for layers without weights may be left out; Conv2D kernels (kh, kw, in, out), Dense kernels (in, out), BatchNormalization
        gamma, beta, moving mean, moving variance).
    dtype : torch.dtype
        Parameter dtype (float32 as TensorFlow; float64 for reference computations).

    Returns
    -------
    KerasSequential
        Entry ``i`` is Keras layer ``i``; takes NCHW inputs. Keras loads weights by layer
        order, so does this.

    Raises
    ------
    ValueError
        An unsupported layer or option, or weights that do not fit the configuration.
    """
    if not isinstance(model_config, list) or not all(
        isinstance(c, dict) and "layer_name" in c for c in model_config
    ):
        raise ValueError("model_config must be a list of dicts with a 'layer_name' key")
    cfgs = [_ints(c) for c in model_config if c["layer_name"] != "InputLayer"]
    wlist = _read_keras_weights(weights) if isinstance(weights, (str, Path)) else list(weights)
    wlist = [w for w in wlist if len(w)]
    need = [i for i, c in enumerate(cfgs) if _weight_count(c)]
    if len(wlist) != len(need):
        raise ValueError(
            f"the weights hold {len(wlist)} layers with weights, the config has {len(need)}"
        )
    layers: list[nn.Module] = []
    it = iter(wlist)
    for i, cfg in enumerate(cfgs):
        w = next(it) if _weight_count(cfg) else []
        if len(w) != _weight_count(cfg):
            raise ValueError(
                f"layer {i} ({cfg['layer_name']}): {len(w)} weight arrays, expected "
                f"{_weight_count(cfg)}"
            )
        layers.append(_build_layer(cfg, i, w, dtype))
    model = KerasSequential(*layers, layer_configs=cfgs, input_shape=input_shape).eval()
    shape = tuple(int(v) for v in input_shape)
    x = torch.zeros((1, shape[-1], *shape[:-1]) if len(shape) == 3 else (1, *shape), dtype=dtype)
    try:
        with torch.no_grad():
            model(x)
    except RuntimeError as e:
        raise ValueError(f"the weights do not fit the input shape {list(shape)}: {e}") from e
    return model


def load_pgdl_model(
    model_dir: str | Path, *, dtype: torch.dtype = torch.float32
) -> KerasSequential:
    """Load a PGDL model folder (``config.json`` + ``weights.hdf5``) as a torch module.

    Parameters
    ----------
    model_dir : str or Path
        The ``model_<k>`` folder.
    dtype : torch.dtype
        Parameter dtype.

    Returns
    -------
    KerasSequential
        See :func:`keras_to_torch`.
    """
    d = Path(model_dir)
    cfg = json.loads((d / "config.json").read_text())
    if "model_config" not in cfg or "input_shape" not in cfg:
        raise ValueError(f"{d / 'config.json'}: needs 'model_config' and 'input_shape'")
    return keras_to_torch(cfg["model_config"], cfg["input_shape"], d / "weights.hdf5", dtype=dtype)


def official_layer_index(model_config: list[dict[str, Any]], depth: Depth = "shallow") -> int:
    """The Keras layer index the official code takes its features from (the layer's input).

    The first index in ``(2, 3, 4, 5)`` (``"shallow"``, the README's "1st") or
    ``(8, 9, 6, 7, 5, 4, 3, 2)`` (``"deep"``, "8th") whose layer has a ``strides`` setting
    (a convolution or pooling layer).
    """
    if depth not in OFFICIAL_LAYERS:
        raise ValueError(f"depth must be 'shallow' or 'deep', got {depth!r}")
    cfgs = [c for c in model_config if c["layer_name"] != "InputLayer"]
    for idx in OFFICIAL_LAYERS[depth]:
        if idx < len(cfgs) and cfgs[idx]["layer_name"] in _STRIDED:
            return idx
    raise ValueError(
        f"no convolution or pooling layer at indices {OFFICIAL_LAYERS[depth]} (the official "
        "code fails here too)"
    )


def _shard_key(p: Path) -> tuple[int, str]:
    m = re.search(r"(\d+)", p.stem)
    return (int(m.group(1)) if m else -1, p.name)


def load_pgdl_dataset(
    path: str | Path,
    split: str = "train",
    *,
    verify: bool = True,
    shards: Sequence[int] | None = None,
    shard_order: Literal["numeric", "filesystem"] = "numeric",
) -> tuple[np.ndarray, np.ndarray]:
    """A PGDL data set split from its TFRecord shards, as numpy arrays.

    Parameters
    ----------
    path : str or Path
        The task folder (containing ``dataset_1``), the ``dataset_1`` folder or the split folder.
    split : str
        ``"train"`` (what the measures use) or ``"test"``.
    verify : bool
        Verify the TFRecord checksums.
    shards : sequence of int, optional
        Positions (in ``shard_order``) of the shards to read; default all.
    shard_order : {"numeric", "filesystem"}
        ``"numeric"``: ``shard_2`` before ``shard_10``. ``"filesystem"``: the directory's own
        order, which is what the official ingestion's ``glob.glob`` gives; the official
        subsample draws row indices, so this order matters for parity on multi-shard tasks.

    Returns
    -------
    x : ndarray, shape (n, H, W, C), float32
        Inputs as stored (channels last).
    y : ndarray, shape (n,), int64
        Labels.
    """
    p = Path(path)
    if shard_order not in ("numeric", "filesystem"):
        raise ValueError(f"shard_order must be 'numeric' or 'filesystem', got {shard_order!r}")
    for cand in (p / "dataset_1" / split, p / split, p):
        files = list(cand.glob("shard_*.tfrecord")) if cand.is_dir() else []
        if files:
            if shard_order == "numeric":
                files.sort(key=_shard_key)
            break
    else:
        raise ValueError(f"no shard_*.tfrecord files for split {split!r} under {p}")
    if shards is not None:
        files = [files[i] for i in shards]
    xs, ys = [], []
    for f in files:
        for rec in read_tfrecord(f, verify=verify):
            ex = parse_example(rec)
            if "inputs" not in ex or "output" not in ex:
                raise ValueError(f"{f}: records need 'inputs' and 'output' features")
            xs.append(parse_tensor(ex["inputs"][0]))
            ys.append(parse_tensor(ex["output"][0]))
    x = np.stack(xs).astype(np.float32, copy=False)
    y = np.stack(ys).reshape(len(ys), -1)
    if y.shape[1] != 1:  # one-hot labels
        y = y.argmax(1)
    return x, y.reshape(-1).astype(np.int64)


def _to_torch_inputs(x: np.ndarray, dtype: torch.dtype) -> Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.ndim == 4:
        t = t.permute(0, 3, 1, 2)
    return t.to(dtype).contiguous()


def _model_dirs(task: Path) -> list[Path]:
    dirs = [d for d in task.iterdir() if d.is_dir() and (d / "config.json").is_file()]
    return sorted(dirs, key=lambda d: _shard_key(d))


def _find_reference(task: Path, reference: str | Path | None) -> Path | None:
    cands = [task / "model_configs.json"]
    if reference is not None:
        r = Path(reference)
        cands = [r, r / task.name / "model_configs.json", r / "model_configs.json", *cands]
    for c in cands:
        if c.is_file():
            return c
    return None


@dataclass
class PGDLTaskScores:
    """Measures of every model of a PGDL task and, with reference data, the task score.

    Attributes
    ----------
    task : str
        Task folder name.
    model_ids : list of str
        Model folder names, in order.
    scores : dict of str to ndarray, shape (n_models,)
        ``"kV-Margin 1st"``, ``"kV-GN-Margin 8th"``, ...: the official measures (larger
        predicts a larger gap).
    layers : dict of str to list of int
        Feature layer index of every model per depth (``"1st"``, ``"8th"``).
    gap : ndarray, shape (n_models,) or None
        ``train_acc - test_acc`` from ``model_configs.json``.
    hparams : dict of str to list or None
        Per-model hyper-parameter values from ``model_configs.json``.
    cmi : dict of str to float
        PGDL score (conditional mutual information, 0-1) of each measure.
    """

    task: str
    model_ids: list[str]
    scores: dict[str, np.ndarray]
    layers: dict[str, list[int]]
    gap: np.ndarray | None = None
    hparams: dict[str, list[Any]] | None = None
    cmi: dict[str, float] = field(default_factory=dict)


def score_pgdl_task(
    task_dir: str | Path,
    *,
    reference: str | Path | None = None,
    depths: Sequence[Depth] = ("shallow", "deep"),
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    batch_size: int | None = 500,
    verify: bool = True,
    shard_order: Literal["numeric", "filesystem"] = "numeric",
    progress: Callable[..., Any] | None = None,
) -> PGDLTaskScores:
    """kV-Margin and kV-GN-Margin of every model of a PGDL task, as the official submissions.

    Each model gets ``kv_measures(model, x, y, str(layer_idx), official=True, seed=0)`` on the
    task's training data with the official layer choice per depth (both measures from one
    pass); with the reference ``model_configs.json`` the PGDL score of every measure is computed
    with :func:`~papershelf.kv_margin.pgdl_cmi` over the task's hyper-parameters.

    Parameters
    ----------
    task_dir : str or Path
        A PGDL task folder (``model_*`` folders and ``dataset_1``).
    reference : str or Path, optional
        ``model_configs.json``, or a folder holding ``<task>/model_configs.json`` (the PGDL
        ``reference_data``); default: ``task_dir/model_configs.json`` if present.
    depths : sequence of {"shallow", "deep"}
        Feature layers to evaluate (README: "1st" and "8th").
    device, dtype
        Where and in which precision to run the models.
    batch_size : int, optional
        Forward/backward batch size.
    verify : bool
        Verify the TFRecord checksums.
    shard_order : {"numeric", "filesystem"}
        Order of the training shards, see :func:`load_pgdl_dataset`.
    progress : callable, optional
        ``progress(iterable, total=, desc=)`` bar over the models.

    Returns
    -------
    PGDLTaskScores
    """
    task = Path(task_dir)
    if not task.is_dir():
        raise ValueError(f"task_dir {task} is not a folder")
    dirs = _model_dirs(task)
    if not dirs:
        raise ValueError(f"no model folders (with config.json) in {task}")
    x_np, y = load_pgdl_dataset(task, "train", verify=verify, shard_order=shard_order)
    x = _to_torch_inputs(x_np, dtype).to(device)
    tags = {"shallow": "1st", "deep": "8th"}
    scores: dict[str, list[float]] = {}
    layers: dict[str, list[int]] = {tags[d]: [] for d in depths}
    it = progress(dirs, total=len(dirs), desc=f"PGDL {task.name}") if progress else dirs
    for d in it:
        model = load_pgdl_model(d, dtype=dtype).to(device)
        for depth in depths:
            idx = official_layer_index(model.layer_configs, depth)
            layers[tags[depth]].append(idx)
            res = kv_measures(model, x, y, str(idx), official=True, seed=0, batch_size=batch_size)
            scores.setdefault(f"kV-Margin {tags[depth]}", []).append(res["kv"].score)
            scores.setdefault(f"kV-GN-Margin {tags[depth]}", []).append(res["gn"].score)
    out = PGDLTaskScores(
        task=task.name,
        model_ids=[d.name for d in dirs],
        scores={k: np.asarray(v) for k, v in scores.items()},
        layers=layers,
    )
    ref = _find_reference(task, reference)
    if ref is None:
        log.warning("no model_configs.json for %s: measures only, no PGDL score", task.name)
        return out
    specs = json.loads(ref.read_text())
    specs = {k if k.startswith("model") else f"model_{k}": v for k, v in specs.items()}
    missing = [m for m in out.model_ids if m not in specs]
    if missing:
        raise ValueError(f"{ref} has no entry for models {missing[:5]}")
    sel = [specs[m] for m in out.model_ids]
    out.gap = np.array([s["metrics"]["train_acc"] - s["metrics"]["test_acc"] for s in sel])
    names = list(sel[0]["hparams"])
    out.hparams = {h: [s["hparams"][h]["current_value"] for s in sel] for h in names}
    out.cmi = {k: float(pgdl_cmi(v, out.gap, out.hparams)) for k, v in out.scores.items()}
    return out
