"""Compute official_reference.json by running the official kV-Margin code (not part of the tests).

Run OUTSIDE the workspace, in a scratch environment with TensorFlow (no TensorFlow is used
anywhere in papershelf)::

    uv venv "$SCRATCH/ref-kv" --python 3.11
    uv pip install --python "$SCRATCH/ref-kv" "tensorflow-cpu==2.15.*" "numpy<2" pot scikit-learn
    git clone https://github.com/chingyaoc/kV-Margin "$SCRATCH/kV-Margin"   # commit 0ab9068
    cp "$SCRATCH/kV-Margin/kV-Margin/complexity.py" "$SCRATCH/kvref/kv_official.py"
    cp "$SCRATCH/kV-Margin/kV-GN-Margin/complexity.py" "$SCRATCH/kvref/kvgn_official.py"
    KV_OFFICIAL_DIR="$SCRATCH/kvref" "$SCRATCH/ref-kv/bin/python" make_official_reference.py

The official code targets TensorFlow 1.15; two shims make it run unchanged on 2.15:
``tf.enable_eager_execution`` becomes a no-op (eager is the default) and every Keras layer
records ``_last_seen_input`` (the attribute the official ``get_features`` reads) when called, as
the PGDL starter kit's model loader does by wrapping every layer class.
The model, weights and data are fixed by ``numpy.random.RandomState`` seeds, so
``test_kv_margin_parity.py`` rebuilds exactly the same model in torch.
"""

import importlib
import json
import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.environ["KV_OFFICIAL_DIR"])
tf.enable_eager_execution = lambda: None


def build():
    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            layers.Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 1)),
            layers.Conv2D(4, 3, padding="same", activation="relu"),
            layers.Conv2D(8, 3, strides=2, padding="valid", activation="relu"),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.Conv2D(8, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(16, activation="relu"),
            layers.Dense(10),
        ]
    )


def fixed_weights():
    rs = np.random.RandomState(1)
    shapes = [(3, 3, 1, 4), (4,), (3, 3, 4, 4), (4,), (3, 3, 4, 8), (8,), (3, 3, 8, 8), (8,),
              (3, 3, 8, 8), (8,), (8, 16), (16,), (16, 10), (10,)]  # fmt: skip
    out = []
    for s in shapes:
        fan_in = int(np.prod(s[:-1])) if len(s) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if len(s) > 1 else 0.1
        out.append((rs.randn(*s) * scale).astype(np.float32))
    return out


def fixed_data(n):
    rs = np.random.RandomState(0)
    x = rs.rand(n, 8, 8, 1).astype(np.float32)
    y = rs.randint(0, 10, size=n).astype(np.int64)
    return x, y


def patch_last_seen_input(model):
    for layer in model.layers:
        orig = layer.call

        def call(inputs, *a, _orig=orig, _layer=layer, **k):
            _layer._last_seen_input = inputs
            return _orig(inputs, *a, **k)

        layer.call = call


def main():
    model = build()
    model.set_weights(fixed_weights())
    patch_last_seen_input(model)
    kv = importlib.import_module("kv_official")
    kvgn = importlib.import_module("kvgn_official")
    res = {}
    for n in (300, 2300):
        x, y = fixed_data(n)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        for name, mod in (("kv", kv), ("gn", kvgn)):
            for shallow in (True, False):
                key = f"{name}_{'shallow' if shallow else 'deep'}_n{n}"
                res[key] = float(mod.complexity(model, ds, shallow=shallow))
    rs = np.random.RandomState(3)
    a = rs.randn(40, 7)
    b = rs.randn(40, 7) + 0.5
    res["w1_fixed_40x7"] = float(kv.W1_distance(a, b))
    # the official subsample draw for N = 2300, C = 10
    np.random.seed(0)  # noqa: NPY002
    draw = np.random.choice(np.arange(2300), 2000, replace=False)  # noqa: NPY002
    res["subsample_first10_n2300"] = draw[:10].tolist()
    res["_provenance"] = (
        f"chingyaoc/kV-Margin@0ab9068 complexity.py, TensorFlow {tf.__version__} "
        f"(eager no-op and _last_seen_input shims), numpy {np.__version__}"
    )
    with open("official_reference.json", "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
