"""`teacher_dtype="auto"` follows a measurement, not only the CPU's flags."""

import math

import keras
import numpy as np
import pytest

from r2kd_keras import folding
from r2kd_keras import precision
from r2kd_keras.precision import Hardware


@pytest.mark.parametrize(
    "hardware, speedup, expected",
    [
        (Hardware((8, 0), True), None, "bfloat16"),
        (Hardware((7, 5), False), None, "float16"),
        (Hardware(None, False), None, None),
        (Hardware(None, True), 1.9, "bfloat16"),
        (Hardware(None, True), precision.BFLOAT16_MIN_SPEEDUP, "bfloat16"),
        (Hardware(None, True), 1.1, None),
        # The Xeon (model 207, AVX512-BF16 without AMX) where bfloat16 ran 2x slower.
        (Hardware(None, True), 0.5, None),
    ],
)
def test_auto_dtype_needs_the_instructions_and_a_measured_speedup(hardware, speedup,
                                                                   expected):
    assert precision.auto_dtype(hardware, speedup) == expected


def test_the_speedup_is_a_positive_ratio_measured_once_per_process():
    first = precision.cpu_bfloat16_speedup()
    assert math.isfinite(first) and first > 0
    assert precision.cpu_bfloat16_speedup() == first


def test_auto_on_this_machine_follows_its_hardware_and_its_measurement():
    hardware = precision.detect_hardware()
    speedup = precision.cpu_bfloat16_speedup() if hardware.cpu_bfloat16 else None
    assert precision.resolve_teacher_dtype("auto") == precision.auto_dtype(hardware, speedup)


def test_a_float32_inference_teacher_is_the_folded_model_itself_in_float32():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(2, 3, use_bias=False)(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization()(x))
    images = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    for dtype in (None, "float32"):
        runner = folding.inference_teacher(model, dtype, fold=False)
        assert runner is model
        folded = folding.inference_teacher(model, dtype)
        assert folded.layers[-1].compute_dtype == "float32"
        np.testing.assert_allclose(folded(images), model(images, training=False), atol=1e-5)


def test_reduced_precision_copy_names_the_dtype_it_cannot_make():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"`dtype` must be one of .* received: 'float32'"):
        precision.reduced_precision_copy(model, "float32")
