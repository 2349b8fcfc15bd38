"""Write a tiny PGDL task with TensorFlow/Keras and score it with the official code.

Produces ``pgdl_task/`` (model folders saved by Keras, TFRecord shards written by
``tf.io.TFRecordWriter``) and ``pgdl_reference.json`` (the models' outputs and feature-layer
inputs on the first training images, and the official kV-Margin / kV-GN-Margin scores for the
shallow and deep layer). ``test_kv_margin_pgdl.py`` loads the same files with the package's
TensorFlow-free reader and checks both. Not part of the tests; run OUTSIDE the workspace with
TensorFlow, as ``make_official_reference.py`` (same scratch environment and official files)::

    cd packages/kv-margin/tests/reference
    KV_OFFICIAL_DIR="$SCRATCH/kvref" "$SCRATCH/ref-kv/bin/python" make_pgdl_reference.py

The models are built and loaded as the PGDL starter kit does (``getattr(tf.keras.layers,
layer_name)(**kwargs)`` for every entry of ``config.json``'s ``model_config``, every layer
recording the input it was called with as ``_last_seen_input``, ``model.build([0] +
input_shape)``, ``model.load_weights("weights.hdf5")``), and the data set is read as the starter
kit's ``load_training_data`` does (``inputs``/``output`` features parsed with
``tf.io.parse_tensor``), shards in numeric order.
"""

import importlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.environ["KV_OFFICIAL_DIR"])
tf.enable_eager_execution = lambda: None

CONV = "Conv2D"
CONFIGS = {
    # VGG-like: the Flatten sees a 2 x 2 x 6 map, so its (H, W, C) order matters
    "vgg": [
        {"layer_name": CONV, "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"layer_name": CONV, "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"layer_name": "MaxPooling2D", "pool_size": 2},
        {"layer_name": CONV, "filters": 6, "kernel_size": 3, "padding": "same", "activation": "relu"},
        {"layer_name": "BatchNormalization"},
        {"layer_name": CONV, "filters": 6, "kernel_size": 3, "strides": 2, "padding": "same",
         "activation": "relu"},
        {"layer_name": "Dropout", "rate": 0.3},
        {"layer_name": "Flatten"},
        {"layer_name": "Dense", "units": 16, "activation": "relu"},
        {"layer_name": "Dense", "units": 3},
    ],
    # NiN-like: valid and 1x1 convolutions, "same" average pooling, global average pooling
    "nin": [
        {"layer_name": CONV, "filters": 5, "kernel_size": 3, "padding": "valid", "activation": "relu"},
        {"layer_name": CONV, "filters": 5, "kernel_size": 1, "activation": "relu"},
        {"layer_name": "AveragePooling2D", "pool_size": 2, "strides": 2, "padding": "same"},
        {"layer_name": CONV, "filters": 3, "kernel_size": 3, "padding": "same"},
        {"layer_name": "Activation", "activation": "relu"},
        {"layer_name": CONV, "filters": 3, "kernel_size": 1, "use_bias": False},
        {"layer_name": "GlobalAveragePooling2D"},
    ],
}  # fmt: skip
MODELS = {"model_1": "vgg", "model_2": "nin", "model_3": "vgg"}
INPUT_SHAPE = [8, 8, 1]
N, N_CLASSES = 220, 3


def wrap(layer_cls, **kwargs):
    class Wrapped(layer_cls):
        def __call__(self, x, *a, **k):
            self._last_seen_input = x
            return super().__call__(x, *a, **k)

    return Wrapped(**kwargs)


def build(config):
    layers = [
        wrap(getattr(tf.keras.layers, c["layer_name"]), **{k: v for k, v in c.items() if k != "layer_name"})
        for c in config
    ]  # fmt: skip
    model = tf.keras.Sequential(layers)
    model.build([0, *INPUT_SHAPE])
    return model


def write_task(root: Path) -> None:
    rs = np.random.RandomState(7)
    for mid, arch in MODELS.items():
        d = root / mid
        d.mkdir(parents=True)
        model = build(CONFIGS[arch])
        weights = []
        for w in model.get_weights():
            if w.ndim > 1:
                fan_in = int(np.prod(w.shape[:-1]))
                weights.append((rs.randn(*w.shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))
            elif arch == "vgg" and len(weights) in (8, 9):  # BN moving mean and variance
                weights.append((rs.rand(*w.shape) + 0.5).astype(np.float32))
            else:
                weights.append(
                    (rs.randn(*w.shape) * 0.1 + (w.mean() if w.any() else 0)).astype(np.float32)
                )
        model.set_weights(weights)
        model.save_weights(str(d / "weights.hdf5"))
        (d / "config.json").write_text(
            json.dumps({"model_config": CONFIGS[arch], "input_shape": INPUT_SHAPE})
        )
    x = rs.rand(N, *INPUT_SHAPE).astype(np.float32)
    y = rs.randint(0, N_CLASSES, N).astype(np.int32)
    shard_dir = root / "dataset_1" / "train"
    shard_dir.mkdir(parents=True)
    for s, sl in enumerate((slice(0, N // 2), slice(N // 2, N))):
        with tf.io.TFRecordWriter(str(shard_dir / f"shard_{s}.tfrecord")) as w:
            for a, b in zip(x[sl], y[sl], strict=True):
                feat = {
                    "inputs": tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[tf.io.serialize_tensor(a).numpy()])),
                    "output": tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[tf.io.serialize_tensor(b).numpy()])),
                }  # fmt: skip
                ex = tf.train.Example(features=tf.train.Features(feature=feat))
                w.write(ex.SerializeToString())


def load_model(d: Path):
    cfg = json.loads((d / "config.json").read_text())
    model = build(cfg["model_config"])
    model.load_weights(str(d / "weights.hdf5"))
    return model


def load_dataset(root: Path):
    shards = [str(root / "dataset_1" / "train" / f"shard_{s}.tfrecord") for s in (0, 1)]

    def parse(rec):
        r = tf.io.parse_single_example(rec, features={
            "inputs": tf.io.FixedLenFeature([], tf.string),
            "output": tf.io.FixedLenFeature([], tf.string)})  # fmt: skip
        return tf.io.parse_tensor(r["inputs"], tf.float32), tf.io.parse_tensor(
            r["output"], tf.int32
        )

    return tf.data.TFRecordDataset(shards).map(parse)


def main():
    root = Path("pgdl_task")
    shutil.rmtree(root, ignore_errors=True)
    write_task(root)
    kv = importlib.import_module("kv_official")
    kvgn = importlib.import_module("kvgn_official")
    ds = load_dataset(root)
    first = np.stack([a.numpy() for a, _ in ds.take(4)])
    res = {}
    for mid in MODELS:
        model = load_model(root / mid)
        res[f"{mid}_logits_first4"] = model(first).numpy().tolist()
        keep = (2, 5, 8) if MODELS[mid] == "vgg" else (2, 3, 6)  # feature layers, Flatten
        res[f"{mid}_layer_inputs_first4"] = {
            str(i): model.layers[i]._last_seen_input.numpy().reshape(4, -1).tolist() for i in keep
        }
        for name, mod in (("kv", kv), ("gn", kvgn)):
            for shallow in (True, False):
                key = f"{mid}_{name}_{'shallow' if shallow else 'deep'}"
                res[key] = float(mod.complexity(model, ds, shallow=shallow))
    res["_provenance"] = (
        f"chingyaoc/kV-Margin@0ab9068 complexity.py on a task written by TensorFlow "
        f"{tf.__version__} / Keras save_weights; numpy {np.__version__}"
    )
    with open("pgdl_reference.json", "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
