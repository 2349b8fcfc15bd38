"""Run the official TensorFlow kV-Margin / kV-GN-Margin ``complexity()`` on request (benchmark only).

Started by ``bench_kv_margin.py`` with a TensorFlow interpreter (``PAPERSHELF_TF_PYTHON``); it is
never imported by papershelf. The official modules are loaded unmodified from the checkout named
by ``PAPERSHELF_KV_OFFICIAL_DIR`` (``chingyaoc/kV-Margin``: ``kV-Margin/complexity.py`` and
``kV-GN-Margin/complexity.py``). Two shims let the TensorFlow 1.15 code run on TensorFlow 2:
``tf.enable_eager_execution`` is a no-op (eager is the default), and every Keras layer records
``_last_seen_input`` when called, as the PGDL starter kit's model loader does.

Protocol: argv[1] is an ``.npz`` with ``spec`` (JSON: the Keras layer list and input shape),
``w{i}`` (the flat Keras weight list), ``x`` (n, ...) float32 channels-last inputs and ``y`` (n,)
labels. Then one JSON request per stdin line, ``{"variant": "kv"|"gn", "shallow": true}``, is
answered by one stdout line ``{"score": s, "cpu": process seconds, "wall": seconds}``.
"""

import importlib.util
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.enable_eager_execution = lambda: None  # TF1 call in the official module; eager is on in TF2


def load_official(root: str, sub: str, name: str):
    path = os.path.join(root, sub, "complexity.py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(spec: dict, weights: list) -> tf.keras.Model:
    layers = [tf.keras.Input(shape=tuple(spec["input_shape"]))]
    for cfg in spec["model_config"]:
        kw = {
            k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k != "layer_name"
        }
        layers.append(getattr(tf.keras.layers, cfg["layer_name"])(**kw))
    model = tf.keras.Sequential(layers)
    model.set_weights(weights)
    for layer in model.layers:  # the starter kit's loader records each layer's input
        orig = layer.call

        def call(inputs, *a, _orig=orig, _layer=layer, **k):
            _layer._last_seen_input = inputs
            return _orig(inputs, *a, **k)

        layer.call = call
    return model


def main() -> None:
    root = os.environ["PAPERSHELF_KV_OFFICIAL_DIR"]
    mods = {
        "kv": load_official(root, "kV-Margin", "kv_official_complexity"),
        "gn": load_official(root, "kV-GN-Margin", "kvgn_official_complexity"),
    }
    data = np.load(sys.argv[1])
    spec = json.loads(str(data["spec"]))
    weights = [data[f"w{i}"] for i in range(spec["n_weights"])]
    model = build(spec, weights)
    ds = tf.data.Dataset.from_tensor_slices((data["x"], data["y"]))
    print(json.dumps({"ready": True, "tensorflow": tf.__version__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        w, c = time.perf_counter(), time.process_time()
        score = mods[req["variant"]].complexity(model, ds, shallow=bool(req.get("shallow", True)))
        out = {
            "score": float(score),
            "cpu": time.process_time() - c,
            "wall": time.perf_counter() - w,
        }
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
