"""What the rest of the library does with these models: clone them layer by layer
(pruning wrappers, bfloat16 teacher copies) and save them; and the PyTorch-matching
BatchNorm settings and initialisers."""

import keras
import numpy as np
import pytest

from r2kd_keras.models import get_model

# One model per family and per special layer (grouped conv, shuffle, split, depthwise).
FAMILIES = ["resnet8", "wrn_16_1", "vgg8", "mobilenetv2", "shufflenetv1", "shufflenetv2"]


def _images(batch, size=32):
    return np.random.default_rng(3).normal(size=(batch, size, size, 3)).astype("float32")


@pytest.mark.parametrize("name", FAMILIES)
def test_clone_model_rebuilds_every_layer(name):
    model = get_model(name, 10)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert all(a is not b for a, b in zip(clone.layers, model.layers))
    x = _images(2)
    np.testing.assert_allclose(clone(x), model(x), atol=1e-6)


def test_keras_file_round_trip_keeps_custom_layers(tmp_path):
    model = get_model("shufflenetv2", 10)
    path = tmp_path / "shufflenetv2.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    x = _images(2)
    np.testing.assert_allclose(restored(x), model(x), atol=1e-6)


def test_batchnorm_moving_mean_follows_pytorch_momentum():
    """PyTorch: running = 0.9 * running + 0.1 * batch mean (momentum 0.1 there)."""
    model = get_model("resnet8", 10)
    x = _images(4)
    stem = keras.Model(model.input, model.get_layer("stem_conv").output)
    batch_mean = np.asarray(stem(x)).mean(axis=(0, 1, 2))
    model(x, training=True)
    np.testing.assert_allclose(
        model.get_layer("stem_bn").moving_mean.numpy(), 0.1 * batch_mean, rtol=1e-4, atol=1e-7
    )


@pytest.mark.parametrize("name", FAMILIES + ["resnet50", "mobilenetv1"])
def test_every_batchnorm_has_pytorch_defaults(name):
    norms = [
        layer for layer in get_model(name, 10).layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert norms
    assert all(layer.momentum == 0.9 and layer.epsilon == 1e-5 for layer in norms)


def test_initialisers_follow_the_reference():
    """Conv: N(0, sqrt(2 / (k*k*out))); depthwise: the same with out = channels;
    VGG/MobileNetV2 classifier N(0, 0.01), zero bias; ResNet fc U(+-1/sqrt(fan_in))."""
    keras.utils.set_random_seed(7)
    wide = get_model("resnet32x4", 10)
    kernel = wide.get_layer("stage3_block5_conv2").kernel.numpy()  # 3x3, 256 -> 256
    assert kernel.std() == pytest.approx(np.sqrt(2.0 / (9 * 256)), rel=0.01)
    assert np.abs(kernel).max() > 4 * kernel.std()  # untruncated, as torch's normal_
    fc = wide.get_layer("logits")
    bound = 1 / np.sqrt(256)
    for values in (fc.kernel.numpy(), fc.bias.numpy()):
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.9 * bound

    mobile = get_model("mobilenetv2", 100)
    depthwise = mobile.get_layer("stage6_block2_dwconv2").kernel.numpy()  # 480 channels
    assert depthwise.std() == pytest.approx(np.sqrt(2.0 / (9 * 480)), rel=0.03)
    head = mobile.get_layer("logits")
    assert head.kernel.numpy().std() == pytest.approx(0.01, rel=0.02)
    assert not head.bias.numpy().any()
