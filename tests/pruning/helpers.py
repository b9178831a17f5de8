"""Shared fixtures for the pruning tests: a small CNN and real images."""

import gzip

import keras
import numpy as np
import tensorflow as tf

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def fashion_mnist(n=128):
    """The first `n` Fashion-MNIST training images (float32 in [0, 1]) and labels."""
    with gzip.open(f"{FASHION_MNIST}/train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(16 + n * 784)[16:], np.uint8)
    with gzip.open(f"{FASHION_MNIST}/train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(8 + n)[8:], np.uint8)
    return images.reshape(n, 28, 28, 1).astype("float32") / 255.0, labels.astype("int32")


def small_cnn(seed=0, first_filters=8):
    """Conv, BatchNorm, DepthwiseConv, SeparableConv, pointwise Conv, Dense."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(first_filters, 3, strides=2, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, name="depthwise")(x)
    x = keras.layers.SeparableConv2D(8, 3, strides=2, name="separable")(x)
    x = keras.layers.Conv2D(16, 1, name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def sgd():
    """SGD with momentum and weight decay: both push pruned weights off zero."""
    return keras.optimizers.SGD(0.05, momentum=0.9, weight_decay=1e-2)


def assert_pruned_weights_zero(wrappers):
    """Every kernel entry whose mask is 0 is exactly 0.0 (on every replica)."""
    for wrapper in wrappers:
        for kernel, mask in zip(wrapper.kernels, wrapper.masks):
            for k, m in zip(replica_values(kernel), replica_values(mask)):
                assert np.all(k[m == 0] == 0.0), kernel.path


def replica_values(variable):
    """The per-device values of a (possibly mirrored) Keras variable."""
    value = variable.value
    parts = getattr(value, "values", None) or (value,)
    return [np.asarray(part.numpy()) for part in parts]



def strategy_for(kind, request):
    """No strategy, or the session's MirroredStrategy (conftest fixture)."""
    if kind == "mirrored":
        return request.getfixturevalue("mirrored_strategy")
    return tf.distribute.get_strategy()
