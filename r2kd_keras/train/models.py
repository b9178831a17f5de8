"""Teacher loading, student building and the recipe optimizer of a config."""

import os

import keras

from r2kd_keras import models as models_lib
from r2kd_keras import pruning
from r2kd_keras.optimizers import recipe_optimizer
from r2kd_keras.precision import student_policy


def load_teacher(path, name, num_classes, input_shape, normalization="imagenet"):
    """Builds the zoo model `name` and loads the weights in `path` into it.

    Args:
        path: a `.keras` or `.weights.h5` file.
        name: the teacher's zoo name.
        num_classes: classes of the dataset.
        input_shape: `(height, width, channels)` of the dataset's images.
        normalization: the dataset's normalisation (`DatasetInfo.normalization`),
            for `keras:` teachers (see `models.get_model`).

    Returns:
        The teacher, weights loaded.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file's weights do not fit that architecture.

    Example:
    >>> teacher = load_teacher("teacher.keras", "resnet32x4", 100, (32, 32, 3))
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"teacher_weights={path!r} does not exist.")
    teacher = models_lib.get_model(name, num_classes, input_shape,
                                   normalization=normalization)
    try:
        teacher.load_weights(path)
    except (ValueError, KeyError, OSError) as error:
        raise ValueError(
            f"teacher_weights={path!r} do not fit teacher={name!r} with "
            f"{num_classes} classes and input shape {tuple(input_shape)}: {error} "
            "Pass the --teacher architecture and the dataset the file was trained "
            "with, or omit --teacher_weights to train a teacher."
        ) from None
    return teacher


def build_student(config, num_classes, input_shape, total_steps, normalization="imagenet"):
    """The student of `config`, in mixed precision and wrapped for pruning
    when asked.

    Args:
        config: a `TrainConfig`.
        num_classes: classes of the dataset.
        input_shape: image shape.
        total_steps: training steps of the run (sets the pruning schedule).
        normalization: the dataset's normalisation (`DatasetInfo.normalization`),
            for `keras:` students (see `models.get_model`).

    Returns:
        A `keras.Model`.

    Example:
    >>> student = build_student(TrainConfig(student="resnet8"), 10, (32, 32, 3), 1000)
    """
    previous = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy(student_policy())
    try:
        student = models_lib.get_model(config.student, num_classes, input_shape,
                                       weights=config.student_weights,
                                       torch_checkpoint=config.student_checkpoint,
                                       normalization=normalization)
    finally:
        keras.config.set_dtype_policy(previous)
    if not config.student_sparsity:
        return student
    # tfmot's default frequency (100) would never prune a short run.
    frequency = max(1, min(100, total_steps // 10))
    if config.prune_schedule == "constant":
        schedule = pruning.ConstantSparsity(config.student_sparsity, 0, frequency=frequency)
    else:
        end = max(frequency, int(total_steps * 0.75) // frequency * frequency)
        schedule = pruning.PolynomialDecay(0.0, config.student_sparsity, 0, end,
                                           frequency=frequency)
    return pruning.prune_for_structure(student, config.prune_structure, schedule)


def make_optimizer(config, steps_per_epoch, epochs=None, loss_scale=False):
    """The recipe's optimizer for `config` (see `optimizers.recipe_optimizer`).

    Args:
        config: a `TrainConfig` (lr, batch_size, momentum, weight_decay).
        steps_per_epoch: steps per epoch, for the step decay.
        epochs: total epochs; None: `config.epochs`.
        loss_scale: wrap in `keras.optimizers.LossScaleOptimizer` (float16).

    Returns:
        An `L2SGD` (or its loss-scaled wrapper).

    Example:
    >>> optimizer = make_optimizer(TrainConfig(), steps_per_epoch=781)
    """
    return recipe_optimizer(config.lr, config.batch_size, epochs or config.epochs,
                            steps_per_epoch, momentum=config.momentum,
                            weight_decay=config.weight_decay, loss_scale=loss_scale)
