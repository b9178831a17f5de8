"""One optimizer step through every family: every variable moves, loss is finite."""

import keras
import numpy as np
import pytest

from r2kd_keras.models import get_model

# One model per family and per special layer (grouped conv, shuffle, split, depthwise).
FAMILIES = ["resnet8", "wrn_16_1", "vgg8", "mobilenetv2", "shufflenetv1", "shufflenetv2"]


def _images(batch, size=32):
    return np.random.default_rng(3).normal(size=(batch, size, size, 3)).astype("float32")


def _train_one_step(model, run_eagerly):
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=run_eagerly,
        jit_compile=False,
    )
    before = [w.numpy().copy() for w in model.weights]
    loss = model.train_on_batch(_images(8), np.arange(8) % 10)
    assert np.isfinite(loss)
    # every kernel, bias and BN parameter moved, and so did every BN moving statistic
    unchanged = [
        w.path for b, w in zip(before, model.weights) if np.array_equal(b, w.numpy())
    ]
    assert not unchanged


@pytest.mark.parametrize("name", FAMILIES)
def test_one_eager_train_step_updates_every_variable(name):
    _train_one_step(get_model(name, 10), run_eagerly=True)


def test_one_compiled_train_step_updates_every_variable():
    _train_one_step(get_model("resnet8", 10), run_eagerly=False)


@pytest.mark.large
@pytest.mark.parametrize("name", ["shufflenetv1", "shufflenetv2", "mobilenetv2"])
def test_one_compiled_train_step_mobile(name):
    _train_one_step(get_model(name, 10), run_eagerly=False)
