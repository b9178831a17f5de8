"""keras-cv's augmentation layers (same dict protocol) plug in as the second
view: in tf.data and inside a train_step under `fit`. Skipped without keras-cv
(`pip install keras-cv==0.9.0`)."""

import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras.augment import SecondView
from tests.augment_helpers import TwoViewModel

keras_cv = pytest.importorskip("keras_cv")
B, C = 8, 5
RNG = np.random.default_rng(0)
X = RNG.normal(size=(B, 16, 16, 3)).astype(np.float32)
Y = (np.arange(B) % C).astype(np.int32)


@pytest.mark.parametrize("make", [
    lambda: keras_cv.layers.MixUp(alpha=0.2, seed=1),
    lambda: keras_cv.layers.CutMix(seed=1),
])
def test_keras_cv_mix_layers_in_dataset_map(make):
    wrapped = SecondView(make(), C)
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).batch(4).map(
        lambda x, y: wrapped({"images": x, "labels": y}))  # int labels: wrapper one-hots
    for out in ds:
        assert out["images"].shape == (4, 16, 16, 3)
        np.testing.assert_allclose(out["labels"].numpy().sum(-1), 1.0, atol=1e-5)
    direct = make()
    ds = tf.data.Dataset.from_tensor_slices((X, tf.one_hot(Y, C))).batch(4).map(
        lambda x, y: direct({"images": x, "labels": y}))
    assert [o["images"].shape for o in ds] == [(4, 16, 16, 3)] * 2


@pytest.mark.parametrize("make, normalization", [
    (lambda: keras_cv.layers.MixUp(alpha=0.2, seed=1), None),
    # Fails as a layer of a functional model under fit (OperatorNotAllowedInGraphError),
    # works here: called from train_step, outside Keras's symbolic tracing.
    (lambda: keras_cv.layers.RandAugment(value_range=(0, 1), seed=1), "cifar100"),
])
def test_keras_cv_layer_as_second_view_under_fit(make, normalization):
    model = TwoViewModel(SecondView(make(), C, normalization=normalization), C)
    model.compile(optimizer="sgd")
    history = model.fit(X, Y, batch_size=4, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert float(model.change) > 0.0  # the second view differed from the clean one
