"""The reference recipe's optimizer and learning-rate rules.

Recipe (`docs`: r2kd-method.md section 5): SGD, momentum 0.9, weight decay
5e-4 (PyTorch's coupled L2, see `L2SGD`), batch 64, lr 0.05 for 240 epochs,
x0.1 at epochs 150, 180 and 210. With other `epochs` the milestones move
proportionally (`milestone_epochs`); with another global batch the learning
rate scales linearly (`scaled_learning_rate`).
"""

import keras

REFERENCE_BATCH = 64
REFERENCE_EPOCHS = 240
REFERENCE_MILESTONES = (150, 180, 210)
LR_DECAY = 0.1


def scaled_learning_rate(lr, batch_size, reference_batch=REFERENCE_BATCH):
    """Linear scaling rule: `lr * batch_size / reference_batch`.

    Args:
        lr: learning rate at `reference_batch` (the recipe's 0.05 at 64).
        batch_size: the global batch actually used.
        reference_batch: the batch `lr` was tuned for.

    Returns:
        float, the learning rate for `batch_size`.

    Example:
    >>> scaled_learning_rate(0.05, 256)
    0.2
    """
    return lr * batch_size / reference_batch


def milestone_epochs(epochs, milestones=REFERENCE_MILESTONES, reference=REFERENCE_EPOCHS):
    """The decay epochs of the recipe moved proportionally to `epochs`.

    `round(epochs * m / 240)` for m in (150, 180, 210), kept >= 1, so 240
    epochs give (150, 180, 210) and 24 give (15, 18, 21).

    Args:
        epochs: total epochs of the run.
        milestones: the reference's decay epochs.
        reference: the reference's total epochs.

    Returns:
        list of int: first epoch (0-based) trained at each lower rate.

    Example:
    >>> milestone_epochs(24)
    [15, 18, 21]
    """
    return [max(1, int(round(epochs * m / reference))) for m in milestones]


def scaled_epochs(reference_value, epochs, reference=REFERENCE_EPOCHS):
    """An epoch count of the 240-epoch recipe moved proportionally to `epochs`.

    Used for DKD's warm-up (20 of 240 epochs in mdistiller's CIFAR recipe),
    which shrinks with a shorter run as the decay milestones do.

    Args:
        reference_value: the count at `reference` epochs.
        epochs: total epochs of the run.
        reference: the reference's total epochs.

    Returns:
        float: `reference_value * epochs / reference`.

    Example:
    >>> scaled_epochs(20, 24)
    2.0
    """
    return reference_value * epochs / reference


def step_decay(base_lr, epochs, steps_per_epoch, gamma=LR_DECAY):
    """PyTorch `MultiStepLR` of the recipe as a Keras schedule over steps.

    Args:
        base_lr: learning rate of the first epochs.
        epochs: total epochs (milestones from `milestone_epochs`).
        steps_per_epoch: optimizer steps per epoch.
        gamma: factor at each milestone.

    Returns:
        A `keras.optimizers.schedules.PiecewiseConstantDecay`: `base_lr *
        gamma**k` during the epochs after the k-th milestone.

    Example:
    >>> schedule = step_decay(0.05, 240, 100)
    >>> float(schedule(15000))  # first step of epoch 150
    0.005
    """
    # Keras applies values[i+1] once step > boundaries[i]; `iterations` is
    # e * steps_per_epoch on the first step of epoch e.
    boundaries = [e * steps_per_epoch - 1 for e in milestone_epochs(epochs)]
    values = [base_lr * gamma**k for k in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


@keras.saving.register_keras_serializable(package="r2kd_keras")
class L2SGD(keras.optimizers.SGD):
    """SGD with PyTorch's weight decay: `g <- g + l2 * w` before momentum.

    Keras's own `SGD(weight_decay=...)` is decoupled (it shrinks the weights
    by `lr * weight_decay` outside the momentum buffer, like AdamW), which is
    about 10x weaker than PyTorch's coupled form at momentum 0.9. The reference
    trains with PyTorch `SGD(momentum=0.9, weight_decay=5e-4)`, which this
    reproduces: the term is added to the gradient after the cross-replica sum,
    so it counts once under `tf.distribute`. It applies to every trainable
    variable, biases and BatchNorm included, as PyTorch's does.

    Args:
        learning_rate: float or schedule.
        momentum: momentum (0.9 in the recipe).
        l2: coefficient of the coupled L2 term (5e-4 in the recipe).
        **kwargs: other `keras.optimizers.SGD` arguments.

    Example:
    >>> optimizer = L2SGD(learning_rate=0.05, momentum=0.9, l2=5e-4)
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, l2=5e-4, name="l2_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, name=name, **kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = keras.ops.add(
                keras.ops.cast(gradient, variable.dtype),
                keras.ops.multiply(keras.ops.cast(self.l2, variable.dtype), variable),
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


def recipe_optimizer(lr, batch_size, epochs, steps_per_epoch, momentum=0.9,
                     weight_decay=5e-4, loss_scale=False):
    """The recipe's optimizer: `L2SGD` on the scaled, step-decayed rate.

    Args:
        lr: learning rate at the reference batch of 64.
        batch_size: the global batch (scales `lr` linearly).
        epochs: total epochs (places the decay milestones).
        steps_per_epoch: optimizer steps per epoch.
        momentum: SGD momentum.
        weight_decay: coupled L2 coefficient.
        loss_scale: wrap in `keras.optimizers.LossScaleOptimizer` (float16).

    Returns:
        An `L2SGD` (or its loss-scaled wrapper).

    Example:
    >>> optimizer = recipe_optimizer(0.05, 64, 240, steps_per_epoch=781)
    """
    schedule = step_decay(scaled_learning_rate(lr, batch_size), epochs, steps_per_epoch)
    optimizer = L2SGD(schedule, momentum=momentum, l2=weight_decay)
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scale else optimizer
