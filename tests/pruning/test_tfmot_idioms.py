"""tfmot's documented idioms: the first batch is step 0, the custom training
loop of tfmot's guide, a fresh optimizer restarting the count, PrunableLayer,
prune_scope and PruneForLatencyOnXNNPack."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras.pruning import ConstantSparsity
from r2kd_keras.pruning import PrunableLayer
from r2kd_keras.pruning import PruneForLatencyOnXNNPack
from r2kd_keras.pruning import PruningSummaries
from r2kd_keras.pruning import UpdatePruningStep
from r2kd_keras.pruning import get_sparsity
from r2kd_keras.pruning import prune_low_magnitude
from r2kd_keras.pruning import prune_scope
from r2kd_keras.pruning import pruning_wrappers
from tests.pruning.helpers import assert_pruned_weights_zero
from tests.pruning.helpers import fashion_mnist
from tests.pruning.helpers import sgd
from tests.pruning.helpers import small_cnn

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_default_schedule_prunes_on_the_first_batch():
    # tfmot: ConstantSparsity(0.5, begin_step=0) with frequency 100 updates
    # at steps 0, 100, ...; the first batch is step 0 (optimizer.iterations).
    model = prune_low_magnitude(small_cnn(seed=1))
    model.compile(sgd(), LOSS)
    images, labels = fashion_mnist(16)
    model.fit(images, labels, batch_size=16, verbose=0, callbacks=[UpdatePruningStep()])
    for wrapper in pruning_wrappers(model):
        assert int(wrapper.pruning_step.numpy()) == 0
        for mask in wrapper.masks:
            assert int((mask.numpy() == 0).sum()) == round(0.5 * mask.shape.num_elements())
    # A new optimizer restarts tfmot's count: the next batch is step 0 again.
    model.compile(sgd(), LOSS)
    model.fit(images, labels, batch_size=16, verbose=0, callbacks=[UpdatePruningStep()])
    assert int(pruning_wrappers(model)[0].pruning_step.numpy()) == 0


def test_custom_training_loop_of_tfmots_guide(tmp_path):
    images, labels = fashion_mnist(48)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    model = prune_low_magnitude(small_cnn(seed=2), ConstantSparsity(0.75, 0, frequency=2))
    optimizer = sgd()
    # The guide, verbatim but for the names.
    model.optimizer = optimizer
    step_callback = UpdatePruningStep()
    step_callback.set_model(model)
    log_callback = PruningSummaries(log_dir=str(tmp_path))
    log_callback.set_model(model)
    step_callback.on_train_begin()
    log_callback.on_train_begin()
    for _ in range(2):
        log_callback.on_epoch_begin(epoch=-1)
        for x, y in dataset:
            step_callback.on_train_batch_begin(batch=-1)
            with tf.GradientTape() as tape:
                loss = LOSS(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        step_callback.on_epoch_end(batch=-1)
        log_callback.on_epoch_end(batch=-1)
    wrappers = pruning_wrappers(model)
    assert int(wrappers[0].pruning_step.numpy()) == 5  # 6 batches: steps 0..5
    assert_pruned_weights_zero(wrappers)  # on_epoch_end re-applied the masks
    assert get_sparsity(model)["total"] == pytest.approx(0.75, abs=0.01)


class _TwoWeights(keras.layers.Layer, PrunableLayer):
    """A custom layer pruning its first weight only."""

    def build(self, input_shape):
        self.pruned = self.add_weight(shape=(input_shape[-1], 8), name="pruned")
        self.kept = self.add_weight(shape=(8, 4), name="kept")

    def call(self, x):
        return x @ self.pruned @ self.kept

    def get_prunable_weights(self):
        return [self.pruned]


def test_prunable_layer_chooses_its_weights():
    model = keras.Sequential([keras.Input((6,)), _TwoWeights(name="custom")])
    pruned = prune_low_magnitude(model, ConstantSparsity(0.5, 0))
    pruned.compile(sgd(), "mse")
    rng = np.random.default_rng(0)
    pruned.fit(rng.normal(size=(16, 6)), rng.normal(size=(16, 4)), batch_size=16,
               verbose=0, callbacks=[UpdatePruningStep()])
    (wrapper,) = pruning_wrappers(pruned)
    assert [k.name for k in wrapper.kernels] == ["pruned"]
    assert int((wrapper.layer.pruned.numpy() == 0).sum()) == 24
    assert not np.any(wrapper.layer.kept.numpy() == 0)


def test_prune_scope_loads_a_pruned_model(tmp_path):
    path = str(tmp_path / "pruned.keras")
    prune_low_magnitude(small_cnn(seed=3)).save(path)
    with prune_scope():
        loaded = keras.saving.load_model(path)
    assert len(pruning_wrappers(loaded)) == 5


def _mobilenet_like(stem_padding="valid", middle=None):
    layers = keras.layers
    inputs = keras.Input((32, 32, 3))
    x = inputs
    if stem_padding == "valid":
        x = layers.ZeroPadding2D(1)(x)
    x = layers.Conv2D(8, 3, strides=2, padding=stem_padding, name="stem")(x)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.Conv2D(16, 1, name="expand")(x)
    if middle is not None:
        x = middle(x)
    x = layers.Conv2D(16, 1, name="project")(x)
    x = layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = layers.Conv2D(10, 1, name="logits")(x)
    return keras.Model(inputs, layers.Flatten()(x))


def test_prune_for_latency_on_xnnpack_wraps_only_1x1_convs():
    pruned = prune_low_magnitude(_mobilenet_like(), pruning_policy=PruneForLatencyOnXNNPack())
    assert sorted(w.layer.name for w in pruning_wrappers(pruned)) == [
        "expand", "logits", "project"
    ]


@pytest.mark.parametrize(
    "stem_padding, middle, message",
    [
        ("same", None, "3x3, stride 2, 'valid'.*ZeroPadding2D"),
        ("valid", keras.layers.MaxPooling2D(1, name="pool"), "layer 'pool' \\(MaxPooling2D\\)"),
    ],
)
def test_prune_for_latency_on_xnnpack_refuses_what_xnnpack_cannot_run(
    stem_padding, middle, message
):
    with pytest.raises(ValueError, match=message):
        prune_low_magnitude(_mobilenet_like(stem_padding, middle),
                            pruning_policy=PruneForLatencyOnXNNPack())
