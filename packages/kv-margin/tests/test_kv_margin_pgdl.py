"""PGDL reader: Keras HDF5 + config.json -> torch, TFRecord / protobuf parsing, task scoring.

The Keras files are written here with h5py in the layout Keras 2 writes (``save_weights``: the
layer groups at the root; ``model.save``: under ``model_weights``), and the expected outputs
are computed with a hand-written numpy forward in Keras' channels-last layout.
"""

import json
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from papershelf.core.testing import with_devices
from papershelf.kv_margin import kv_measures, pgdl_cmi
from papershelf.kv_margin.pgdl import (
    keras_to_torch,
    load_pgdl_dataset,
    load_pgdl_model,
    official_layer_index,
    score_pgdl_task,
)
from papershelf.kv_margin.tfrecord import (
    _crc32c_rows,
    crc32c,
    encode_example,
    encode_tensor,
    masked_crc32c,
    parse_example,
    parse_tensor,
    read_tfrecord,
    write_tfrecord,
)

# --- writing a PGDL model folder as Keras does ------------------------------------------------


def keras_names(config):
    """Keras' automatic layer names (conv2d, conv2d_1, dense, ...)."""
    seen, names = {}, []
    for c in config:
        base = "".join("_" + ch.lower() if ch.isupper() else ch for ch in c["layer_name"])
        base = base.lstrip("_").replace("conv2_d", "conv2d").replace("2_d", "2d")
        k = seen.get(base, 0)
        seen[base] = k + 1
        names.append(base if k == 0 else f"{base}_{k}")
    return names


WEIGHT_NAMES = {
    "Conv2D": ["kernel:0", "bias:0"],
    "Dense": ["kernel:0", "bias:0"],
    "BatchNormalization": ["gamma:0", "beta:0", "moving_mean:0", "moving_variance:0"],
}


def write_keras_h5(path, config, weights, full_model=False):
    """``weights``: one list of arrays per layer (empty for layers without weights)."""
    names = keras_names(config)
    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights") if full_model else f
        g.attrs["layer_names"] = np.array([n.encode() for n in names])
        g.attrs["backend"] = b"tensorflow"
        g.attrs["keras_version"] = b"2.3.0-tf"
        for name, c, ws in zip(names, config, weights, strict=True):
            lg = g.create_group(name)
            wn = [f"{name}/{w}" for w in WEIGHT_NAMES.get(c["layer_name"], [])][: len(ws)]
            lg.attrs["weight_names"] = np.array([w.encode() for w in wn])
            for w, a in zip(wn, ws, strict=True):
                lg.create_dataset(w, data=a)


def write_model_dir(d, config, input_shape, weights, full_model=False):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model_config": config, "input_shape": input_shape}))
    write_keras_h5(d / "weights.hdf5", config, weights, full_model)


CONFIG = [
    {"layer_name": "Conv2D", "filters": 3, "kernel_size": [3, 3], "padding": "same",
     "activation": "relu", "strides": [1, 1]},
    {"layer_name": "BatchNormalization", "epsilon": 0.001},
    {"layer_name": "Conv2D", "filters": 4.0, "kernel_size": 3, "strides": 2.0, "padding": "same",
     "activation": "relu"},
    {"layer_name": "MaxPooling2D", "pool_size": [2, 2], "strides": [1, 1], "padding": "valid"},
    {"layer_name": "Dropout", "rate": 0.5},
    {"layer_name": "Flatten"},
    {"layer_name": "Dense", "units": 5, "activation": "relu"},
    {"layer_name": "Dense", "units": 3, "activation": None},
]  # fmt: skip


def random_weights(rs):
    return [
        [rs.randn(3, 3, 2, 3).astype(np.float32), rs.randn(3).astype(np.float32)],
        [rs.rand(3).astype(np.float32) + 0.5, rs.randn(3).astype(np.float32),
         rs.randn(3).astype(np.float32), rs.rand(3).astype(np.float32) + 0.5],
        [rs.randn(3, 3, 3, 4).astype(np.float32) * 0.5, rs.randn(4).astype(np.float32)],
        [], [], [],
        [rs.randn(16, 5).astype(np.float32) * 0.5, rs.randn(5).astype(np.float32)],
        [rs.randn(5, 3).astype(np.float32), rs.randn(3).astype(np.float32)],
    ]  # fmt: skip


# --- a hand-written channels-last numpy forward -----------------------------------------------


def np_conv(x, k, b, stride, pads):
    """x (n, H, W, C), k (kh, kw, C, O); pads ((top, bottom), (left, right))."""
    x = np.pad(x, ((0, 0), *pads, (0, 0)))
    kh, kw = k.shape[:2]
    ho = (x.shape[1] - kh) // stride + 1
    wo = (x.shape[2] - kw) // stride + 1
    out = np.zeros((len(x), ho, wo, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * ho : stride, j : j + stride * wo : stride, :]
            out += patch @ k[i, j]
    return out + b


def np_forward(x, w):
    h = np.maximum(np_conv(x, w[0][0], w[0][1], 1, ((1, 1), (1, 1))), 0)
    g, beta, mu, var = w[1]
    h = (h - mu) / np.sqrt(var + 1e-3) * g + beta
    # TF "same" with stride 2 on 6 pixels and a 3x3 kernel pads 0 before and 1 after
    h = np.maximum(np_conv(h, w[2][0], w[2][1], 2, ((0, 1), (0, 1))), 0)  # (n, 3, 3, 4)
    h = np.stack(
        [h[:, i : i + 2, j : j + 2].max(axis=(1, 2)) for i in range(2) for j in range(2)], 1
    ).reshape(len(h), 2, 2, 4)  # 2x2 max pool, stride 1
    flat = h.reshape(len(h), -1)  # Keras Flatten: (H, W, C) order
    z = np.maximum(flat @ w[6][0] + w[6][1], 0)
    return z @ w[7][0] + w[7][1], h


@pytest.mark.parametrize("full_model", [False, True])
def test_model_matches_numpy_forward(tmp_path, full_model):
    rs = np.random.RandomState(0)
    w = random_weights(rs)
    write_model_dir(tmp_path / "model_1", CONFIG, [6, 6, 2], w, full_model)
    model = load_pgdl_model(tmp_path / "model_1", dtype=torch.float64)
    assert len(model) == len(CONFIG)
    x = rs.randn(7, 6, 6, 2)
    ref, _ = np_forward(x, [[a.astype(np.float64) for a in ws] for ws in w])
    out = model(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    # float32 (as TensorFlow runs it) stays close
    m32 = load_pgdl_model(tmp_path / "model_1")
    out32 = m32(torch.from_numpy(x).float().permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(out32, ref, rtol=1e-4, atol=1e-4)


def test_flatten_uses_keras_channels_last_order(tmp_path):
    rs = np.random.RandomState(1)
    w = random_weights(rs)
    model = keras_to_torch(CONFIG, [6, 6, 2], w, dtype=torch.float64)
    x = rs.randn(4, 6, 6, 2)
    _, pooled = np_forward(x, [[a.astype(np.float64) for a in ws] for ws in w])
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    # the Flatten output is the pooled map in (H, W, C) order, not torch's (C, H, W) order
    feats = model[:6](t).detach().numpy()
    np.testing.assert_allclose(feats, pooled.reshape(4, -1), atol=1e-10)
    chw = pooled.transpose(0, 3, 1, 2).reshape(4, -1)
    assert not np.allclose(feats, chw)


def test_pooling_padding_and_activation_layers():
    rs = np.random.RandomState(2)
    config = [
        {"layer_name": "Conv2D", "filters": 2, "kernel_size": 2, "padding": "valid",
         "activation": "linear", "use_bias": False},
        {"layer_name": "AveragePooling2D", "pool_size": 2, "strides": 2, "padding": "same"},
        {"layer_name": "ReLU"},
        {"layer_name": "MaxPooling2D", "pool_size": 2, "strides": 2, "padding": "same"},
        {"layer_name": "GlobalAveragePooling2D"},
        {"layer_name": "Dense", "units": 3},
        {"layer_name": "Activation", "activation": "softmax"},
    ]  # fmt: skip
    k = rs.randn(2, 2, 1, 2)
    wd, bd = rs.randn(2, 3), rs.randn(3)
    model = keras_to_torch(config, [6, 6, 1], [[k], [wd, bd]], dtype=torch.float64)
    x = rs.randn(3, 6, 6, 1)
    h = np_conv(x, k, 0.0, 1, ((0, 0), (0, 0)))  # (3, 5, 5, 2)
    # TF "same" average pooling of 5 pixels, window 2, stride 2: windows [0,1], [2,3], [4]
    # (pad 0 before, 1 after); the padded cell is not counted
    win = [(0, 2), (2, 4), (4, 5)]
    avg = np.stack([np.stack([h[:, a:b, c:d].mean(axis=(1, 2)) for c, d in win], 1)
                    for a, b in win], 1)  # fmt: skip
    h = np.maximum(avg, 0)  # (3, 3, 3, 2)
    win = [(0, 2), (2, 3)]
    mx = np.stack([np.stack([h[:, a:b, c:d].max(axis=(1, 2)) for c, d in win], 1)
                   for a, b in win], 1)  # fmt: skip
    z = mx.mean(axis=(1, 2)) @ wd + bd
    ref = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    out = model(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


def test_official_layer_index():
    assert official_layer_index(CONFIG, "shallow") == 2  # the strided Conv2D
    assert official_layer_index(CONFIG, "deep") == 3  # 8, 9 absent; 6, 7 Dense; 5 Flatten; ...
    with pytest.raises(ValueError, match="no convolution or pooling"):
        official_layer_index([{"layer_name": "Dense"}] * 4)
    with pytest.raises(ValueError, match="depth"):
        official_layer_index(CONFIG, "middle")


def test_bad_models(tmp_path):
    w = random_weights(np.random.RandomState(0))
    with pytest.raises(ValueError, match="not supported"):
        keras_to_torch([{"layer_name": "LSTM"}], [6, 6, 2], [])
    with pytest.raises(ValueError, match="layers with weights"):
        keras_to_torch(CONFIG, [6, 6, 2], w[:2])
    with pytest.raises(ValueError, match="do not match"):
        keras_to_torch(CONFIG, [6, 6, 2], [w[2], *w[1:]])  # swapped conv kernel
    with pytest.raises(ValueError, match="input shape"):
        keras_to_torch(CONFIG, [8, 8, 2], w)  # Dense(16) no longer fits
    with pytest.raises(ValueError, match="activation"):
        keras_to_torch([{"layer_name": "Activation", "activation": "mish2"}], [4], [])
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(2))
    with pytest.raises(ValueError, match="Keras HDF5"):
        keras_to_torch(CONFIG, [6, 6, 2], tmp_path / "w.h5")


# --- TFRecord and protobuf --------------------------------------------------------------------


def test_crc32c_known_values_and_batched_rows():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    c = crc32c(b"abc")
    assert masked_crc32c(b"abc") == ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % 2**32
    rs = np.random.RandomState(0)
    data = rs.randint(0, 256, size=(20, 37)).astype(np.uint8)
    rows = _crc32c_rows(data.ravel(), np.arange(20) * 37, 37)
    assert rows.tolist() == [crc32c(r.tobytes()) for r in data]


def test_parse_hand_written_protobufs():
    # Example{features{feature{key: "a", value{int64_list{value: [1, -2]}}}}}, packed varints
    neg2 = bytes([0xFE] + [0xFF] * 8 + [0x01])
    lst = b"\x0a" + bytes([1 + len(neg2)]) + b"\x01" + neg2
    feat = b"\x1a" + bytes([len(lst)]) + lst
    entry = b"\x0a\x01a" + b"\x12" + bytes([len(feat)]) + feat
    ex = b"\x0a" + bytes([len(entry) + 2]) + b"\x0a" + bytes([len(entry)]) + entry
    assert parse_example(ex)["a"].tolist() == [1, -2]
    # TensorProto{dtype: DT_FLOAT, tensor_shape{dim{size: 2}}, tensor_content: [1.5, -2]}
    tp = b"\x08\x01" + b"\x12\x04\x12\x02\x08\x02" + b"\x22\x08" + struct.pack("<2f", 1.5, -2)
    np.testing.assert_array_equal(parse_tensor(tp), np.array([1.5, -2], dtype=np.float32))
    # a scalar int32 stored in int_val (field 7), and unpacked floats in a FloatList
    assert parse_tensor(b"\x08\x03" + b"\x12\x00" + b"\x38\x07").tolist() == 7
    fl = b"\x0d" + struct.pack("<f", 0.25) + b"\x0d" + struct.pack("<f", 4.0)
    feat = b"\x12" + bytes([len(fl)]) + fl
    entry = b"\x0a\x01f" + b"\x12" + bytes([len(feat)]) + feat
    ex = b"\x0a" + bytes([len(entry) + 2]) + b"\x0a" + bytes([len(entry)]) + entry
    assert parse_example(ex)["f"].tolist() == [0.25, 4.0]


def test_tfrecord_round_trip_and_corruption(tmp_path):
    rs = np.random.RandomState(0)
    arrays = [rs.randn(4, 4, 3).astype(np.float32) for _ in range(20)]
    recs = [
        encode_example({"inputs": encode_tensor(a), "output": encode_tensor(np.int32(i % 3)),
                        "ids": np.array([i, -i]), "w": np.array([0.5, 1.0])})
        for i, a in enumerate(arrays)
    ]  # fmt: skip
    path = tmp_path / "shard_0.tfrecord"
    write_tfrecord(path, recs)
    got = read_tfrecord(path)
    assert got == recs
    ex = parse_example(got[4])
    np.testing.assert_array_equal(parse_tensor(ex["inputs"][0]), arrays[4])
    assert parse_tensor(ex["output"][0]) == 1 and parse_tensor(ex["output"][0]).dtype == np.int32
    assert ex["ids"].tolist() == [4, -4] and ex["w"].tolist() == [0.5, 1.0]
    raw = bytearray(path.read_bytes())
    size = len(raw) // 20
    for pos, what in ((size * 7 + 40, "data checksum"), (size * 3 + 2, "length checksum")):
        bad = bytearray(raw)
        bad[pos] ^= 0x01
        (tmp_path / "bad.tfrecord").write_bytes(bytes(bad))
        with pytest.raises(ValueError, match=what):
            read_tfrecord(tmp_path / "bad.tfrecord")
    read_tfrecord(tmp_path / "bad.tfrecord", verify=False)  # readable when asked not to check
    (tmp_path / "cut.tfrecord").write_bytes(bytes(raw[:-3]))
    with pytest.raises(ValueError, match="truncated"):
        read_tfrecord(tmp_path / "cut.tfrecord")


# --- a tiny PGDL task -------------------------------------------------------------------------

TASK_CONFIG = [
    {"layer_name": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same",
     "activation": "relu"},
    {"layer_name": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same",
     "activation": "relu"},
    {"layer_name": "Conv2D", "filters": 4, "kernel_size": 3, "strides": 2, "padding": "same",
     "activation": "relu"},
    {"layer_name": "BatchNormalization"},
    {"layer_name": "MaxPooling2D", "pool_size": 2},
    {"layer_name": "Flatten"},
    {"layer_name": "Dense", "units": 3},
]  # fmt: skip


def make_task(root, n_models=8, n=90, seed=0):
    """A PGDL-like task: tiny CNNs on 8x8x1 images with 3 classes in 2 shards, and a
    model_configs.json over a 2 x 2 x 2 grid of hyper-parameters (8 models)."""
    rs = np.random.RandomState(seed)
    task = root / "task9_v1"
    (task / "dataset_1" / "train").mkdir(parents=True)
    x = rs.rand(n, 8, 8, 1).astype(np.float32)
    y = rs.randint(0, 3, n).astype(np.int32)
    for s, sl in enumerate((slice(0, n // 2), slice(n // 2, n))):
        write_tfrecord(
            task / "dataset_1" / "train" / f"shard_{s}.tfrecord",
            [encode_example({"inputs": encode_tensor(a), "output": encode_tensor(b)})
             for a, b in zip(x[sl], y[sl], strict=True)],
        )  # fmt: skip
    specs = {}
    for m in range(n_models):
        w = [
            [rs.randn(3, 3, 1, 3).astype(np.float32), rs.randn(3).astype(np.float32) * 0.1],
            [rs.randn(3, 3, 3, 3).astype(np.float32) * 0.5, np.zeros(3, np.float32)],
            [rs.randn(3, 3, 3, 4).astype(np.float32) * 0.5, np.zeros(4, np.float32)],
            [np.ones(4, np.float32), np.zeros(4, np.float32), rs.rand(4).astype(np.float32),
             rs.rand(4).astype(np.float32) + 0.5],
            [], [], [rs.randn(16, 3).astype(np.float32), np.zeros(3, np.float32)],
        ]  # fmt: skip
        write_model_dir(task / f"model_{m + 1}", TASK_CONFIG, [8, 8, 1], w, full_model=m % 2 == 0)
        specs[f"model_{m + 1}"] = {
            "hparams": {
                "depth": {"current_value": m // 4, "possible_values": [0, 1]},
                "lr": {"current_value": [0.1, 0.01][m % 2], "possible_values": [0.1, 0.01]},
                "width": {"current_value": m // 2 % 2, "possible_values": [0, 1]},
            },
            "metrics": {"train_acc": 1.0, "test_acc": float(0.95 - 0.01 * (m * 5 % 8))},
        }
    (task / "model_configs.json").write_text(json.dumps(specs))
    return task, x, y


def test_load_dataset(tmp_path):
    task, x, y = make_task(tmp_path, n_models=1)
    xs, ys = load_pgdl_dataset(task)
    np.testing.assert_array_equal(xs, x)
    assert ys.dtype == np.int64 and ys.tolist() == y.tolist()
    xs1, _ = load_pgdl_dataset(task / "dataset_1", shards=[1])
    np.testing.assert_array_equal(xs1, x[45:])
    xf, _ = load_pgdl_dataset(task, shard_order="filesystem")
    assert sorted(map(tuple, xf.reshape(90, -1))) == sorted(map(tuple, x.reshape(90, -1)))
    with pytest.raises(ValueError, match="shard"):
        load_pgdl_dataset(task, "test")
    with pytest.raises(ValueError, match="shard_order"):
        load_pgdl_dataset(task, shard_order="glob")


def test_score_pgdl_task(tmp_path):
    task, x, y = make_task(tmp_path)
    res = score_pgdl_task(task, dtype=torch.float64)
    assert res.model_ids == [f"model_{k}" for k in range(1, 9)]
    assert res.layers == {"1st": [2] * 8, "8th": [4] * 8}
    assert set(res.scores) == {"kV-Margin 1st", "kV-GN-Margin 1st", "kV-Margin 8th",
                               "kV-GN-Margin 8th"}  # fmt: skip
    # each score is the package's official-mode measure on the loaded model
    model = load_pgdl_model(task / "model_3", dtype=torch.float64)
    xt = torch.from_numpy(x).double().permute(0, 3, 1, 2)
    ref = kv_measures(model, xt, y.astype(np.int64), "4", official=True, seed=0)
    assert res.scores["kV-GN-Margin 8th"][2] == pytest.approx(ref["gn"].score, rel=1e-12)
    assert res.scores["kV-Margin 8th"][2] == pytest.approx(ref["kv"].score, rel=1e-12)
    assert res.hparams["depth"] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert res.hparams["lr"] == [0.1, 0.01] * 4
    np.testing.assert_allclose(res.gap, 0.05 + 0.01 * (np.arange(8) * 5 % 8))
    for name, v in res.cmi.items():
        assert v == pytest.approx(pgdl_cmi(res.scores[name], res.gap, res.hparams))
        assert 0.0 <= v <= 1.0


def test_full_reproduction_on_pgdl_tasks(tmp_path, monkeypatch):
    from papershelf.core import ReproduceContext
    from papershelf.kv_margin.reproduce import run

    make_task(tmp_path / "input_data")
    monkeypatch.setenv("PAPERSHELF_PGDL_DIR", str(tmp_path / "input_data"))
    recs = run(ReproduceContext(out_dir=tmp_path / "out", full=True))
    assert (tmp_path / "out" / "kv_margin_pgdl_scatter.png").is_file()
    assert len(recs) == 4  # 2 measures x 2 layers for the one task
    by = {r.experiment: r for r in recs}
    r = by["PGDL task9_v1: kV-GN-Margin 1st"]
    assert r.paper_value == 21.85 and r.comparable  # official README, task 9
    assert 0.0 <= r.mean <= 100.0
    monkeypatch.setenv("PAPERSHELF_PGDL_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="no PGDL task"):
        run(ReproduceContext(out_dir=tmp_path / "out2", full=True))


# --- files written by TensorFlow/Keras, scored by the official code ---------------------------

REF_DIR = Path(__file__).parent / "reference"
TF_TASK = REF_DIR / "pgdl_task"
TF_REF = json.loads((REF_DIR / "pgdl_reference.json").read_text())


@pytest.mark.parametrize("mid", ["model_1", "model_2", "model_3"])
def test_keras_written_models_match_tensorflow(mid):
    # pgdl_task/ was written by Keras save_weights and tf.io.TFRecordWriter (see
    # reference/make_pgdl_reference.py); the expected values are TensorFlow's
    x, y = load_pgdl_dataset(TF_TASK)
    assert x.shape == (220, 8, 8, 1) and set(y.tolist()) == {0, 1, 2}
    model = load_pgdl_model(TF_TASK / mid, dtype=torch.float64)
    xt = torch.from_numpy(x[:4]).double().permute(0, 3, 1, 2)
    out = model(xt).detach().numpy()
    np.testing.assert_allclose(out, TF_REF[f"{mid}_logits_first4"], rtol=1e-5, atol=1e-5)
    for i, ref in TF_REF[f"{mid}_layer_inputs_first4"].items():
        h = model[: int(i)](xt).detach()
        h = h.permute(0, 2, 3, 1) if h.ndim == 4 else h  # TensorFlow's channels-last order
        np.testing.assert_allclose(h.reshape(4, -1).numpy(), ref, rtol=1e-5, atol=1e-5)


@with_devices
def test_official_scores_on_keras_written_task(device):
    res = score_pgdl_task(TF_TASK, dtype=torch.float64, device=device)
    assert res.gap is None and res.cmi == {}  # no model_configs.json in this task
    for k, mid in enumerate(res.model_ids):
        for name, key in (("kV-Margin", "kv"), ("kV-GN-Margin", "gn")):
            for tag, depth in (("1st", "shallow"), ("8th", "deep")):
                # official: float32 TensorFlow; here float64 torch
                assert res.scores[f"{name} {tag}"][k] == pytest.approx(
                    TF_REF[f"{mid}_{key}_{depth}"], rel=1e-5
                ), (mid, name, tag)
