"""benchmarks/latency.py: the top-1 of an exported file is measured on the
file itself, float32 and int8 (quantised input), one image per call."""

import contextlib
import importlib.util
import io
import os

import keras
import numpy as np

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "latency.py")
_SPEC = importlib.util.spec_from_file_location("latency_benchmark", _PATH)
latency = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(latency)


def _tiny_classifier():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x))


def test_litert_top1_scores_the_file_float_and_int8(tmp_path):
    model = _tiny_classifier()
    x = np.random.default_rng(4).random((40, 8, 8, 3)).astype("float32")
    predicted = np.argmax(model.predict(x, verbose=0), -1)
    # Half the labels are the model's answers, half are other classes.
    y = np.where(np.arange(40) < 20, predicted, (predicted + 1) % 4)
    paths = {}
    for quantize in (None, "int8"):
        paths[quantize] = str(tmp_path / f"{quantize or 'float'}.tflite")
        with contextlib.redirect_stdout(io.StringIO()):
            latency.export_file(model, paths[quantize], quantize, x[:20])
    assert latency.litert_top1(paths[None], x, y) == 0.5
    # int8 may flip a near tie, nothing more on 40 images.
    assert abs(latency.litert_top1(paths["int8"], x, y) - 0.5) <= 0.1
    # ... and it took int8 input: the quantising path was the one scored.
    interpreter = latency.Interpreter(model_path=paths["int8"])
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
