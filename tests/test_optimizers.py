"""r2kd_keras.optimizers: the recipe's learning-rate rules and optimizer
against hand formulas (PyTorch SGD and MultiStepLR), also under a real
MirroredStrategy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras import optimizers
from r2kd_keras import train
from r2kd_keras.distiller import R2KDDistiller


# ------------------------------------------------------------ learning rate
def test_linear_scaling_rule():
    assert optimizers.scaled_learning_rate(0.05, 64) == pytest.approx(0.05)
    assert optimizers.scaled_learning_rate(0.05, 256) == pytest.approx(0.2)
    assert optimizers.scaled_learning_rate(0.01, 32) == pytest.approx(0.005)


@pytest.mark.parametrize("epochs, expected", [
    (240, [150, 180, 210]),  # the reference
    (24, [15, 18, 21]),
    (4, [2, 3, 4]),  # 2.5 -> 2 (round half to even), 3.0, 3.5 -> 4
    (1, [1, 1, 1]),  # never before the second epoch
])
def test_milestones_scale_with_epochs(epochs, expected):
    assert optimizers.milestone_epochs(epochs) == expected


def _multistep_lr(base, epoch, milestones, gamma=0.1):
    # torch.optim.lr_scheduler.MultiStepLR stepped once per epoch.
    return base * gamma ** sum(epoch >= m for m in milestones)


def test_step_decay_matches_multistep_lr_per_step():
    steps_per_epoch = 7
    schedule = optimizers.step_decay(0.05, 240, steps_per_epoch)
    for epoch in (0, 149, 150, 179, 180, 209, 210, 239):
        for step_in_epoch in (0, steps_per_epoch - 1):
            iteration = epoch * steps_per_epoch + step_in_epoch
            expected = _multistep_lr(0.05, epoch, (150, 180, 210))
            assert float(schedule(iteration)) == pytest.approx(expected, rel=1e-6), (
                epoch, step_in_epoch)


# ---------------------------------------------------------------- optimizer
def _torch_sgd(w, grads, lr, momentum, weight_decay):
    # torch.optim.SGD (dampening 0, no nesterov): d = g + wd * w;
    # buf = d on the first step, momentum * buf + d after; w -= lr * buf.
    buf = None
    for g in grads:
        d = g + weight_decay * w
        buf = d if buf is None else momentum * buf + d
        w = w - lr * buf
    return w


def _keras_steps(optimizer, w0, grads):
    variable = keras.Variable(w0)
    for g in grads:
        optimizer.apply([tf.constant(g)], [variable])
    return keras.ops.convert_to_numpy(variable)


def test_l2sgd_is_pytorch_sgd_and_keras_weight_decay_is_not():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5,)).astype("float32")
    grads = [rng.normal(size=(5,)).astype("float32") for _ in range(3)]
    expected = _torch_sgd(w0, grads, lr=0.1, momentum=0.9, weight_decay=0.05)

    ours = _keras_steps(optimizers.L2SGD(0.1, momentum=0.9, l2=0.05), w0, grads)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)

    # Keras's `weight_decay` is decoupled: w <- w - lr * wd * w, then the
    # momentum step on the raw gradient (its velocity starts at zero).
    w, velocity = w0.copy(), np.zeros_like(w0)
    for g in grads:
        w = w - 0.1 * 0.05 * w
        velocity = 0.9 * velocity - 0.1 * g
        w = w + velocity
    keras_decoupled = _keras_steps(
        keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.05), w0, grads)
    np.testing.assert_allclose(keras_decoupled, w, rtol=1e-5)
    assert np.abs(keras_decoupled - expected).max() > 1e-3


def test_l2sgd_config_round_trip():
    optimizer = optimizers.L2SGD(optimizers.step_decay(0.1, 10, 5), momentum=0.8, l2=1e-3)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(clone, optimizers.L2SGD)
    assert (clone.l2, clone.momentum) == (1e-3, 0.8)


def test_make_optimizer_scales_lr_with_the_global_batch():
    config = train.TrainConfig(lr=0.05, batch_size=256, epochs=240)
    optimizer = train.make_optimizer(config, steps_per_epoch=10)
    assert float(optimizer.learning_rate) == pytest.approx(0.2)
    assert optimizer.l2 == pytest.approx(5e-4) and optimizer.momentum == 0.9


def _one_step_weights(strategy, x, y):
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        runner = R2KDDistiller(model, None, distillation="none")
        runner.compile(optimizer=optimizers.L2SGD(0.5, momentum=0.9, l2=0.1),
                       metrics=["accuracy"], jit_compile=False)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    runner.fit(ds, epochs=2, verbose=0)
    return [np.asarray(w) for w in model.get_weights()]


def test_l2_term_counts_once_under_mirrored_strategy(mirrored_strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, 16).astype("int32")
    single = _one_step_weights(tf.distribute.get_strategy(), x, y)
    mirrored = _one_step_weights(mirrored_strategy, x, y)
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)




def test_dkd_warmup_scales_with_epochs_like_the_milestones():
    # 20 of 240 epochs -> 2 of 24: the same share as the decay milestones.
    assert optimizers.scaled_epochs(20, 24) == pytest.approx(2.0)
    assert optimizers.scaled_epochs(20, 240) == pytest.approx(20.0)


def test_recipe_optimizer_decays_at_the_scaled_milestones():
    optimizer = optimizers.recipe_optimizer(0.05, 128, epochs=24, steps_per_epoch=10,
                                            momentum=0.8, weight_decay=1e-3)
    # Batch 128 doubles 0.05; x0.1 from the first step of epoch 15 (step 150).
    for step, expected in ((149, 0.1), (150, 0.01)):
        optimizer.iterations.assign(step)
        assert float(optimizer.learning_rate) == pytest.approx(expected)
    assert (optimizer.momentum, optimizer.l2) == (0.8, 1e-3)
    wrapped = optimizers.recipe_optimizer(0.05, 64, 24, 10, loss_scale=True)
    assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)
