"""The distiller's frozen teachers: the pruned copy of the blend, the models
that run them in the step (BatchNorm folded, reduced precision), and the
blended target they give."""

import tensorflow as tf
from keras import ops

from r2kd_keras import checks
from r2kd_keras import folding
from r2kd_keras import pruning
from r2kd_keras.precision import resolve_teacher_dtype


def prepare_teachers(student, teacher, pruned_teacher, prune_rate, teacher_weight):
    """Freezes the teachers and returns the pruned teacher of the blend.

    Args:
        student: the student, which `pruned_teacher` must fit.
        teacher: the teacher, or None.
        pruned_teacher: a given pruned teacher, or None to prune a copy of
            `teacher` at `prune_rate`.
        prune_rate: the L1 layer-wise rate of the copy; 0 builds none.
        teacher_weight: the full teacher's weight; 1 needs no pruned teacher.

    Returns:
        The pruned teacher, or None when there is no blend.

    Example:
    >>> pruned = prepare_teachers(student, teacher, None, 0.1, 0.7)
    """
    pruned = None
    if teacher is not None and teacher_weight < 1.0:
        if pruned_teacher is not None:
            checks.check_models_fit(student, pruned_teacher, role="pruned_teacher")
            pruned = pruned_teacher
        elif prune_rate > 0:
            pruned = pruning.prune_teacher(teacher, prune_rate)
    for model in (teacher, pruned):
        if model is not None:
            model.trainable = False
    return pruned


def teacher_runners(teacher, pruned_teacher, teacher_dtype, fold, pruned_training):
    """The models that compute the teachers' logits in a step, teacher first.

    Args:
        teacher: the frozen teacher, or None.
        pruned_teacher: the frozen pruned teacher, or None.
        teacher_dtype: see `precision.resolve_teacher_dtype`.
        fold: fold BatchNorm into the convolutions (`folding.inference_teacher`);
            the pruned teacher in training mode stays unfolded.
        pruned_training: the pruned teacher runs in training mode, as in the
            reference.

    Returns:
        A list of zero, one or two models.

    Example:
    >>> runners = teacher_runners(teacher, pruned, None, fold=True, pruned_training=False)
    """
    compute_dtype = resolve_teacher_dtype(teacher_dtype)
    runners = [
        folding.inference_teacher(
            model, compute_dtype, fold=fold and not (is_pruned and pruned_training)
        )
        for model, is_pruned in ((teacher, False), (pruned_teacher, True))
        if model is not None
    ]
    if pruned_training and pruned_teacher is not None:
        # Keras runs BatchNorm of a non-trainable layer in inference mode
        # whatever `training` says; the optimizer still only sees the student.
        runners[1].trainable = True
    return runners


def blended_targets(runners, views, teacher_weight, pruned_training, training=True):
    """Blended teacher logits per view, float32, no gradient.

    Teachers in inference mode see all views in one call: with BatchNorm
    using its moving statistics that equals one call per view, and is
    cheaper. The reference-mode pruned teacher sees each view alone.

    Args:
        runners: from `teacher_runners`.
        views: a list of image batches.
        teacher_weight: the full teacher's weight in the blend.
        pruned_training: the pruned teacher runs in training mode.
        training: whether this is a training step.

    Returns:
        A list with a `(batch, classes)` target per view.

    Example:
    >>> clean, augmented = blended_targets(runners, [x, x_aug], 0.7, False)
    """
    # Views may differ in size (CutMixPick keeps at most 64 images).
    sizes = [tf.shape(view)[0] for view in views]
    fused = ops.concatenate(views, axis=0) if len(views) > 1 else views[0]
    per_model = []
    for model, is_pruned in zip(runners, (False, True)):
        if training and is_pruned and pruned_training:
            per_model.append([model(view, training=True) for view in views])
        else:
            logits = model(fused, training=False)
            per_model.append(tf.split(logits, sizes, axis=0) if len(views) > 1 else [logits])
    targets = []
    for logits in zip(*per_model):
        logits = [ops.cast(z, "float32") for z in logits]
        target = logits[0]
        if len(logits) == 2:
            w = teacher_weight
            target = w * logits[0] + (1.0 - w) * logits[1]
        targets.append(ops.stop_gradient(target))
    return targets
