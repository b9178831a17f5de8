"""Export to LiteRT (TFLite): the converted model gives the Keras logits."""

import keras
import numpy as np
import pytest

from r2kd_keras.models import ChannelAffine, get_model, mobile
from tests.models._deterministic import deterministic_weights


def _images(batch, size=32):
    return np.random.default_rng(3).normal(size=(batch, size, size, 3)).astype("float32")


def _small_shufflenets():
    """The ShuffleNet family code at a small width, so the export test stays fast;
    the full-size export runs in the `large` test."""
    v1 = mobile._shufflenetv1("small_v1", 10, (32, 32, 3), (48, 96, 192), (2, 2, 2), 3)
    v2 = mobile._shufflenetv2("small_v2", 10, (32, 32, 3), (16, 32, 64), (2, 2, 2), 64)
    return [v1, v2]


def _assert_litert_matches_keras(model, path):
    from ai_edge_litert.interpreter import Interpreter

    model.export(str(path), format="litert", verbose=False)
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    x = _images(1)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, model(x, training=False), atol=1e-4)


@pytest.mark.parametrize("index", [0, 1])
def test_litert_export_of_shuffle_layers_matches_keras(tmp_path, index):
    """Grouped convs, channel shuffle, split and the padded average pool convert."""
    model = _small_shufflenets()[index]
    deterministic_weights(model)
    _assert_litert_matches_keras(model, tmp_path / "small.tflite")


def test_litert_export_of_the_input_adapter_matches_keras(tmp_path):
    """A `keras:` model's first layer: BGR reorder, scale and shift convert."""
    inputs = keras.Input((32, 32, 3))
    x = ChannelAffine([0.9, 1.1, 1.3], [-0.2, 0.4, 0.1], source_channels=[2, 1, 0])(inputs)
    x = keras.layers.Conv2D(4, 3)(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    _assert_litert_matches_keras(model, tmp_path / "adapter.tflite")


@pytest.mark.large
@pytest.mark.parametrize("name", ["shufflenetv1", "shufflenetv2", "mobilenetv2"])
def test_litert_export_full_size(tmp_path, name):
    model = get_model(name, 100)
    deterministic_weights(model)
    _assert_litert_matches_keras(model, tmp_path / f"{name}.tflite")
