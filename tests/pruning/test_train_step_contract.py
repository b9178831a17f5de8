"""The contract with a custom train_step (the distiller's): begin_pruning_step
before the forward pass, apply_pruning_masks after optimizer.apply, under fit,
on one device and under MirroredStrategy over two CPU devices."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras.pruning import PolynomialDecay
from r2kd_keras.pruning import UpdatePruningStep
from r2kd_keras.pruning import apply_pruning_masks
from r2kd_keras.pruning import begin_pruning_step
from r2kd_keras.pruning import prune_low_magnitude
from r2kd_keras.pruning import pruning_wrappers
from tests.pruning.helpers import assert_pruned_weights_zero
from tests.pruning.helpers import fashion_mnist
from tests.pruning.helpers import replica_values
from tests.pruning.helpers import sgd
from tests.pruning.helpers import small_cnn
from tests.pruning.helpers import strategy_for

FINAL_SPARSITY = 0.8


class PruningTrainer(keras.Model):
    """A minimal model with its own train_step, as the distiller has."""

    drives_pruning = True

    def __init__(self, net, **kwargs):
        super().__init__(**kwargs)
        self.net = net

    def call(self, x, training=False):
        return self.net(x, training=training)

    def train_step(self, data):
        x, y = data
        begin_pruning_step(self.net)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, y=y, y_pred=self.net(x, training=True))
        variables = self.net.trainable_variables
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        apply_pruning_masks(self.net)
        return {"loss": loss}


class CheckAfterEveryStep(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps_checked = 0

    def on_train_batch_end(self, batch, logs=None):
        assert_pruned_weights_zero(pruning_wrappers(self.model))
        self.steps_checked += 1


def _train(strategy, steps=8):
    images, labels = fashion_mnist(128)
    with strategy.scope():
        # tfmot's numbering: the 8 batches are steps 0..7 (optimizer.iterations
        # before each batch); masks update at steps 0, 2, 4 and 6 = end_step.
        schedule = PolynomialDecay(0.0, FINAL_SPARSITY, begin_step=0, end_step=6,
                                   frequency=2)
        net = prune_low_magnitude(small_cnn(seed=7), pruning_schedule=schedule)
        trainer = PruningTrainer(net)
        trainer.compile(sgd(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    checker = CheckAfterEveryStep()
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    # UpdatePruningStep is given too: it must stand aside (drives_pruning).
    trainer.fit(dataset.take(steps), epochs=1, verbose=0, shuffle=False,
                callbacks=[UpdatePruningStep(), checker])
    return trainer, checker


@pytest.mark.parametrize("kind", ["one_device", "mirrored"])
def test_custom_train_step_reaches_sparsity_with_exact_zeros(kind, request):
    strategy = strategy_for(kind, request)
    trainer, checker = _train(strategy)
    assert checker.steps_checked == 8
    wrappers = pruning_wrappers(trainer)
    assert len(wrappers) == 5
    for wrapper in wrappers:
        # Counted once per step: not twice, although the callback was given.
        # The last of 8 batches is step 7.
        assert [int(v) for v in replica_values(wrapper.pruning_step)] == [
            7
        ] * strategy.num_replicas_in_sync
        for kernel, mask in zip(wrapper.kernels, wrapper.masks):
            masks = replica_values(mask)
            kernels = replica_values(kernel)
            for other in masks[1:]:
                np.testing.assert_array_equal(other, masks[0])
            for other in kernels[1:]:
                np.testing.assert_array_equal(other, kernels[0])
            expected_zeros = round(FINAL_SPARSITY * masks[0].size)
            assert int((masks[0] == 0).sum()) == expected_zeros, kernel.path
            assert int((kernels[0] == 0).sum()) >= expected_zeros


def test_no_wrappers_is_a_no_op_without_ops():
    model = small_cnn(seed=1)

    @tf.function
    def step():
        begin_pruning_step(model)
        apply_pruning_masks(model)
        return tf.constant(0)

    graph = step.get_concrete_function().graph
    assert not [op for op in graph.get_operations() if "Assign" in op.type]


def test_plain_fit_with_callback_under_mirrored_strategy(mirrored_strategy):
    strategy = mirrored_strategy
    images, labels = fashion_mnist(64)
    with strategy.scope():
        # 4 batches = steps 0..3; updates at 0 and 2 = end_step (sparsity 0.5).
        schedule = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=2, frequency=2)
        model = prune_low_magnitude(small_cnn(seed=5), pruning_schedule=schedule)
        model.compile(sgd(), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    checker = CheckAfterEveryStep()
    model.fit(images, labels, batch_size=16, verbose=0,
              callbacks=[UpdatePruningStep(), checker])
    assert checker.steps_checked == 4
    for wrapper in pruning_wrappers(model):
        assert [int(v) for v in replica_values(wrapper.pruning_step)] == [3, 3]
        for mask in wrapper.masks:
            first, second = replica_values(mask)
            np.testing.assert_array_equal(first, second)
            assert int((first == 0).sum()) == round(0.5 * first.size)
