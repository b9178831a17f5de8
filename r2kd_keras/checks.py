"""`R2KDDistiller`'s checks of its inputs: its arguments and batches; models
that fit together and output logits, not probabilities; a finite loss, or
which tensor was not finite."""

import keras
import tensorflow as tf
from keras import ops

from r2kd_keras.validation import check_range

_NOT_FINITE = (
    "R2KDDistiller: {cause}. Usual causes: a "
    "learning rate too high for this batch size, inputs that are not "
    "normalised, or a teacher that outputs NaN. Lower the learning rate or "
    "check the data, then resume from the last BackupAndRestore / checkpoint state"
)
_PROBABILITIES = "outputs probabilities, not logits"
_FIRST_BATCH = "on the first batch, every row is in [0, 1] and sums to 1"
_PROBABILITY_ADVICE = (
    "R2KDDistiller needs logits. Build it with `classifier_activation=None` "
    "(keras.applications) or remove its final activation; pass "
    "`allow_probabilities=True` to go on anyway."
)
ROLES = ("teacher", "student")


def check_distiller_arguments(student, teacher, method, teacher_prune_rate, teacher_weight,
                              augmenter):
    """Raises a ValueError naming the first of `R2KDDistiller`'s arguments
    that cannot work (the models' fit is `check_models_fit`'s)."""
    if not isinstance(student, keras.Model):
        raise ValueError(
            f"`student` must be a keras.Model, received: {type(student).__name__}"
        )
    if teacher is None and method.uses_teacher:
        raise ValueError(
            f"`teacher` is None, which only a method without teacher "
            f"(`method='none'`) allows; received method={method!r}."
        )
    check_range("teacher_prune_rate", teacher_prune_rate, 0.0, 1.0, False)
    check_range("teacher_weight", teacher_weight, 0.0, 1.0)
    if augmenter is not None and not callable(augmenter):
        raise ValueError(
            f"`augmenter` must be callable or None, received: {augmenter!r}"
        )


def trainable_student_variables(student):
    """The student's trainable variables; a ValueError when there are none,
    which would train nothing while the loss is still reported."""
    variables = student.trainable_variables
    if not variables:
        raise ValueError(
            f"R2KDDistiller: the student {student.name!r} has no trainable weights, so "
            "training would not change it. R2KDDistiller freezes its teacher "
            "(teacher.trainable = False), and keras.models.clone_model of a frozen model "
            "has frozen layers: unfreeze them (`for layer in student.layers: "
            "layer.trainable = True`), or clone the model before it is used as a teacher."
        )
    return variables


def labelled_batch(data):
    """`(x, y)` of a batch; a ValueError for one without labels or with
    sample weights, which the distiller does not support."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if y is None:
        raise ValueError(
            "R2KDDistiller needs labels: pass (images, labels) batches; "
            "received a dataset or arrays without labels."
        )
    if sample_weight is not None:
        raise ValueError(
            "R2KDDistiller does not support `sample_weight`; received one "
            f"of shape {tuple(sample_weight.shape)}."
        )
    return x, y


def model_shape(model, attribute):
    """The shape of a functional model's single input or output, else None
    (Keras's Distiller also reads `inputs` / `outputs` when present)."""
    tensors = getattr(model, attribute, None)
    if tensors and len(tensors) == 1:
        return tuple(tensors[0].shape)
    return None


def _final_activation(model):
    """`(layer name, "softmax" | "sigmoid")` of the layer making `model`'s
    single output if it ends in one of those, else None."""
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        return None
    for layer in reversed(model.layers):
        try:
            produces_output = layer.output is outputs[0]
        except (AttributeError, ValueError, RuntimeError):  # not one inbound node
            continue
        if not produces_output:
            continue
        if isinstance(layer, keras.Model):
            return _final_activation(layer)
        inner = getattr(layer, "layer", layer)  # a pruning wrapper's layer
        if isinstance(inner, keras.layers.Softmax):
            return layer.name, "softmax"
        name = getattr(getattr(inner, "activation", None), "__name__", None)
        return (layer.name, name) if name in ("softmax", "sigmoid") else None
    return None


def probabilities_error(role, detail=_FIRST_BATCH):
    return ValueError(f"The {role} {_PROBABILITIES} ({detail}). {_PROBABILITY_ADVICE}")


def refuse_probability_models(named_models):
    """Raises the probabilities error for the first `(role, model)` whose
    final layer applies softmax or sigmoid."""
    for role, model in named_models:
        activation = model is not None and _final_activation(model)
        if activation:
            layer, kind = activation
            raise probabilities_error(
                f"{role} '{model.name}'", f"its final layer '{layer}' applies {kind}"
            )


def check_models_fit(student, teacher, role="teacher"):
    """The class count, after checking that `teacher` (a teacher, or the
    pruned teacher as `role`) can teach `student`."""
    if teacher is None:
        shape = model_shape(student, "outputs")
        return shape[-1] if shape else None
    if not isinstance(teacher, keras.Model):
        raise ValueError(
            f"`{role}` must be a keras.Model, received: {type(teacher).__name__}"
        )
    if not teacher.built:
        raise ValueError(
            f"`{role}` '{teacher.name}' is not built. Load trained weights or "
            "call it on a batch before distilling."
        )
    s_out, t_out = model_shape(student, "outputs"), model_shape(teacher, "outputs")
    s_in, t_in = model_shape(student, "inputs"), model_shape(teacher, "inputs")
    if s_out and t_out and s_out[1:] != t_out[1:]:
        raise ValueError(
            f"Student and {role} outputs differ: student outputs shape "
            f"{s_out}, {role} '{teacher.name}' outputs {t_out}. Both must "
            "output logits over the same classes (batch, num_classes)."
        )
    if s_in and t_in and s_in[1:] != t_in[1:]:
        raise ValueError(
            f"Student and {role} inputs differ: student takes {s_in}, "
            f"{role} '{teacher.name}' takes {t_in}."
        )
    if s_out and len(s_out) != 2:
        raise ValueError(
            f"The student must output logits of shape (batch, classes); "
            f"received output shape {s_out}."
        )
    return (s_out or t_out or (None,))[-1]


def _looks_like_probabilities(outputs):
    outputs = ops.cast(outputs, "float32")
    in_unit_range = ops.logical_and(ops.all(outputs >= 0.0), ops.all(outputs <= 1.0))
    sums_to_one = ops.all(ops.abs(ops.sum(outputs, axis=-1) - 1.0) <= 1e-2)
    return ops.logical_and(in_unit_range, sums_to_one)


def assert_logits_on_first_step(step, named_outputs):
    """Asserts, at step 0 only, that no `(role, outputs)` looks like
    probabilities; `probabilities_error_from` turns the failure into the
    ValueError."""
    first_step = ops.equal(step, 0)
    for role, outputs in named_outputs:
        refused = ops.logical_and(first_step, _looks_like_probabilities(outputs))
        tf.debugging.Assert(ops.logical_not(refused), [f"The {role} {_PROBABILITIES}."])


def probabilities_error_from(error):
    """The probabilities ValueError if `error` (a `tf.errors.OpError`) is the
    failure of `assert_logits_on_first_step`, else None."""
    for role in ROLES:
        if f"The {role} {_PROBABILITIES}." in error.message:
            return probabilities_error(role)
    return None


def _all_finite(tensors):
    flags = [
        tf.reduce_all(tf.math.is_finite(t))
        for t in tf.nest.flatten(tensors)
        if t is not None and t.dtype.is_floating
    ]
    return tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)


def assert_finite_step(total, named_groups):
    """Asserts `total` and every group of `(name, tensors)` are finite; the
    message names the first group holding a NaN/Inf, in the order given.

    The groups are checked even when the loss is finite: oneDNN's AVX-512
    max/ReLU kernels turn a NaN pixel into a number, so a corrupt image can
    train silently on a finite loss."""
    message = tf.constant(_NOT_FINITE.format(
        cause="the training loss is NaN or Inf (only the loss: its inputs are finite)"
    ))
    finite = tf.math.is_finite(total)
    for name, tensors in reversed(named_groups):
        group_finite = _all_finite(tensors)
        cause = f"{name} are not finite (NaN or Inf)"
        message = tf.where(group_finite, message, _NOT_FINITE.format(cause=cause))
        finite = tf.logical_and(finite, group_finite)
    return tf.debugging.Assert(finite, [message])
