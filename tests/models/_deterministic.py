"""Deterministic weights and inputs shared by the reference-logit test and the
script that produced its PyTorch numbers (no random generator involved, so the
values are the same on every platform and version)."""

import keras
import numpy as np


def _wave(size, phase):
    return np.sin(np.arange(size, dtype=np.float64) * 0.7311 + phase)


def deterministic_weights(model):
    """Fills every variable of `model` with a fixed, well-scaled pattern.

    Kernels get a He-scaled sine pattern; BatchNorm gets non-trivial gamma, beta
    and moving statistics so inference mode is really exercised.
    """
    index = 0
    for layer in model.layers:
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        values = []
        for weight in layer.weights:
            shape = tuple(weight.shape)
            size = int(np.prod(shape))
            wave = _wave(size, index)
            index += 1
            leaf = weight.path.rsplit("/", 1)[-1]
            if leaf == "kernel":
                # Keras kernels end in the output axis; a depthwise one reads k*k inputs.
                fan_in = int(np.prod(shape[:2])) if depthwise else size // shape[-1]
                value = wave * np.sqrt(3.0 / fan_in)
            elif leaf == "gamma":
                value = 1.0 + 0.2 * wave
            elif leaf == "moving_variance":
                value = 1.0 + 0.5 * np.abs(wave)
            else:  # bias, beta, moving_mean
                value = 0.1 * wave
            values.append(value.reshape(shape).astype("float32"))
        if values:
            layer.set_weights(values)


def deterministic_images(batch, height, width, channels=3):
    """A fixed batch of images in [-1, 1], shape (batch, height, width, channels)."""
    return _wave(batch * height * width * channels, 0.5).reshape(
        batch, height, width, channels
    ).astype("float32")
