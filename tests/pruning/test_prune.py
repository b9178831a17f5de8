"""prune_low_magnitude on layers and models, plain fit with UpdatePruningStep,
strip_pruning, get_sparsity, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras.pruning import ConstantSparsity
from r2kd_keras.pruning import PruneLowMagnitude
from r2kd_keras.pruning import PruningPolicy
from r2kd_keras.pruning import UpdatePruningStep
from r2kd_keras.pruning import get_sparsity
from r2kd_keras.pruning import prune_low_magnitude
from r2kd_keras.pruning import pruning_wrappers
from r2kd_keras.pruning import strip_pruning
from tests.pruning.helpers import assert_pruned_weights_zero
from tests.pruning.helpers import fashion_mnist
from tests.pruning.helpers import sgd
from tests.pruning.helpers import small_cnn

PRUNED_LAYERS = ["conv", "depthwise", "separable", "pointwise", "logits"]


def _compile(model):
    model.compile(sgd(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _fit(model, steps, batch_size=16):
    images, labels = fashion_mnist(steps * batch_size)
    model.fit(images, labels, batch_size=batch_size, epochs=1, shuffle=False,
              verbose=0, callbacks=[UpdatePruningStep()])


def test_wraps_conv_and_dense_kernels_and_leaves_the_rest():
    model = small_cnn(seed=0)
    pruned = prune_low_magnitude(model)
    wrapped = {w.layer.name: w for w in pruning_wrappers(pruned)}
    assert sorted(wrapped) == sorted(PRUNED_LAYERS)
    assert wrapped["separable"].masks[0].shape == (3, 3, 8, 1)  # depthwise part
    assert wrapped["separable"].masks[1].shape == (1, 1, 8, 8)  # pointwise part
    assert isinstance(pruned.get_layer("bn"), keras.layers.BatchNormalization)
    assert not pruning_wrappers(model)  # the original is left alone
    # The clone starts from the original weights, in new variables.
    np.testing.assert_array_equal(
        wrapped["conv"].layer.kernel.numpy(), model.get_layer("conv").kernel.numpy()
    )
    assert wrapped["conv"].layer.kernel is not model.get_layer("conv").kernel
    x = fashion_mnist(4)[0]
    np.testing.assert_allclose(pruned(x), model(x), atol=1e-6)


def test_sequential_and_single_layer():
    sequential = keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(8), keras.layers.Dense(3)]
    )
    pruned = prune_low_magnitude(sequential)
    assert isinstance(pruned, keras.Sequential)
    assert len(pruning_wrappers(pruned)) == 2
    dense = keras.layers.Dense(4)
    layer = prune_low_magnitude(dense)
    assert isinstance(layer, PruneLowMagnitude) and layer.layer is dense
    assert layer.name == f"prune_low_magnitude_{dense.name}"


def test_pruning_policy_keeps_chosen_layers_dense():
    class KeepLogitsDense(PruningPolicy):
        def allow_pruning(self, layer):
            return layer.name != "logits"

    pruned = prune_low_magnitude(small_cnn(), pruning_policy=KeepLogitsDense())
    assert "logits" not in [w.layer.name for w in pruning_wrappers(pruned)]
    assert isinstance(pruned.get_layer("logits"), keras.layers.Dense)


def test_unwrappable_layers_warn_or_raise_with_strict():
    inputs = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(20, 8, name="embed")(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    with pytest.warns(UserWarning, match="'embed' \\(Embedding\\)"):
        pruned = prune_low_magnitude(model)
    assert [w.layer.name for w in pruning_wrappers(pruned)] == ["head"]
    with pytest.raises(ValueError, match="embed"):
        prune_low_magnitude(model, strict=True)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: prune_low_magnitude(prune_low_magnitude(small_cnn())),
         "already pruned"),
        (lambda: prune_low_magnitude(
            keras.Sequential([keras.Input((4, 4, 2)), keras.layers.BatchNormalization()])),
         "nothing to prune"),
        # The first conv sees 1 input channel: not a multiple of 4.
        (lambda: prune_low_magnitude(small_cnn(), sparsity_m_by_n=(2, 4), strict=True),
         r"'conv'.*sparsity_m_by_n=\(2, 4\).*input dimension 1"),
        (lambda: prune_low_magnitude(small_cnn(), block_size=(2, 2), strict=True),
         r"block_size=\(2, 2\) needs rank-2"),
        (lambda: prune_low_magnitude(small_cnn(), sparsity_m_by_n=(4, 4)),
         r"sparsity_m_by_n.*m < n.*\(4, 4\)"),
        (lambda: prune_low_magnitude(small_cnn(), block_size=(0, 2)),
         r"block_size.*\(0, 2\)"),
        (lambda: PruneLowMagnitude(keras.layers.BatchNormalization(name="bn")),
         "'bn'.*no Conv or Dense kernel"),
        (lambda: prune_low_magnitude(keras.Sequential([keras.layers.Dense(2)])),
         "must be built"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_m_by_n_on_a_built_layer_with_bad_input_dimension():
    layer = keras.layers.Dense(3, name="d6")
    layer.build((None, 6))
    with pytest.raises(ValueError, match=r"d6.*shape \(6, 3\).*input dimension 6"):
        prune_low_magnitude(layer, sparsity_m_by_n=(2, 4))


def test_subclassed_model_and_bad_schedule():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="subclassed Net"):
        prune_low_magnitude(net)
    with pytest.raises(TypeError, match="pruning_schedule.*0.5"):
        prune_low_magnitude(keras.layers.Dense(2), pruning_schedule=0.5)


def test_fit_follows_tfmot_steps_and_keeps_zeros():
    # tfmot's numbering: a batch runs at step optimizer.iterations (0, 1, 2,
    # ... across fit calls), so begin_step=2 first prunes on the 3rd batch,
    # the first batch of the second fit call.
    pruned = _compile(prune_low_magnitude(
        small_cnn(seed=2), pruning_schedule=ConstantSparsity(0.5, 2, frequency=3)
    ))
    _fit(pruned, steps=2)
    assert get_sparsity(pruned)["total"] == 0.0
    _fit(pruned, steps=1)
    report = get_sparsity(pruned)
    for wrapper in pruning_wrappers(pruned):
        sizes = [int(np.prod(mask.shape)) for mask in wrapper.masks]
        # Each kernel: round(0.5 * n) zeros, so within one weight of 50%.
        expected = sum(round(0.5 * n) for n in sizes) / sum(sizes)
        assert report["per_layer"][wrapper.layer.name] == pytest.approx(expected)
        assert abs(expected - 0.5) <= len(sizes) / sum(sizes)
    _fit(pruned, steps=4)
    assert_pruned_weights_zero(pruning_wrappers(pruned))
    assert int(pruning_wrappers(pruned)[0].pruning_step.numpy()) == 6


def test_training_without_the_callback_says_what_to_do():
    pruned = _compile(prune_low_magnitude(small_cnn()))
    images, labels = fashion_mnist(16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="UpdatePruningStep"):
        pruned.fit(images, labels, batch_size=16, verbose=0)


def test_n_by_m_sparsity_after_training():
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(8, name="a"), keras.layers.Dense(4, name="b")]
    )
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5, 0, frequency=1),
                                 sparsity_m_by_n=(2, 4))
    pruned.compile(sgd(), "mse")
    rng = np.random.default_rng(0)
    pruned.fit(rng.normal(size=(32, 16)), rng.normal(size=(32, 4)), batch_size=16,
               verbose=0, callbacks=[UpdatePruningStep()])
    for layer in strip_pruning(pruned).layers:
        kernel = layer.kernel.numpy()  # (in, out): groups of 4 along `in`
        groups = kernel.T.reshape(kernel.shape[1], -1, 4)
        assert np.all((groups == 0).sum(axis=-1) >= 2), layer.name


def test_strip_pruning_bakes_zeros_and_predicts_the_same():
    pruned = _compile(prune_low_magnitude(
        small_cnn(seed=3), pruning_schedule=ConstantSparsity(0.8, 0, frequency=2)
    ))
    _fit(pruned, steps=3)
    stripped = strip_pruning(pruned)
    assert not pruning_wrappers(stripped)
    assert [layer.name for layer in stripped.layers[1:]][:1] == ["conv"]
    x = fashion_mnist(32)[0]
    np.testing.assert_allclose(stripped.predict(x, verbose=0),
                               pruned.predict(x, verbose=0), atol=1e-6)
    assert get_sparsity(stripped) == get_sparsity(pruned)
    assert get_sparsity(stripped)["total"] == pytest.approx(0.8, abs=0.01)
    wrapped_vars = {id(v) for v in pruned.weights}
    assert not any(id(v) in wrapped_vars for v in stripped.weights)


def test_get_sparsity_counts_zeros_by_hand():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    model.get_layer("d").kernel.assign([[0, 1], [0, 0], [2, 3], [4, 0]])
    report = get_sparsity(model)
    assert report == {"per_layer": {"d": 4 / 8}, "total": 4 / 8}
    with pytest.raises(ValueError, match="no Conv or Dense kernel"):
        get_sparsity(keras.Sequential([keras.Input((4,)), keras.layers.ReLU()]))


@pytest.mark.large
def test_keras_applications_model_with_graph_ops_prunes_and_strips():
    # MobileNetV3's hard-swish puts plain Keras ops (`x + 3.0`) in the graph.
    model = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=10, classifier_activation=None)
    pruned = prune_low_magnitude(model, pruning_schedule=ConstantSparsity(0.5, 0))
    wrappers = pruning_wrappers(pruned)
    kernels = [layer for layer in model.layers if isinstance(
        layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense))]
    assert len(wrappers) == len(kernels)
    _compile(pruned).fit(np.random.default_rng(0).random((8, 32, 32, 3), "float32"),
                         np.arange(8) % 10, batch_size=8, epochs=1, verbose=0,
                         callbacks=[UpdatePruningStep()])
    assert_pruned_weights_zero(wrappers)
    stripped = strip_pruning(pruned)
    assert get_sparsity(stripped)["total"] == pytest.approx(0.5, abs=0.01)
    x = np.random.default_rng(1).random((2, 32, 32, 3), "float32")
    np.testing.assert_allclose(stripped(x), pruned(x), atol=1e-5)
