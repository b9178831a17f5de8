"""What every loss shares: logit and temperature checks, softmax targets,
the reference's cosine, the KL divergence and the `keras.losses.Loss` base."""

import keras
from keras import ops

from r2kd_keras.validation import check_positive

# The reference's epsilon in every cosine (mdistiller R2KD.py, DIST).
COSINE_EPS = 1e-8
# Floor under squared norms: an all-zero column (softmax underflow at huge
# logits) would otherwise make the gradient of the norm 0 * inf = NaN.
_SQUARED_NORM_FLOOR = 1e-30


def _validated_logits(student_logits, teacher_logits, temperature):
    """Float32 logits, after checking shapes and temperature."""
    check_positive("temperature", temperature)
    student_logits = ops.cast(student_logits, "float32")
    teacher_logits = ops.cast(teacher_logits, "float32")
    if len(student_logits.shape) != 2 or len(teacher_logits.shape) != 2:
        raise ValueError(
            "Logits must have shape (batch, classes); received student "
            f"{tuple(student_logits.shape)} and teacher "
            f"{tuple(teacher_logits.shape)}."
        )
    if student_logits.shape[-1] != teacher_logits.shape[-1]:
        raise ValueError(
            "Student and teacher must predict the same number of classes; "
            f"received student {tuple(student_logits.shape)} and teacher "
            f"{tuple(teacher_logits.shape)}."
        )
    return student_logits, teacher_logits


def _soft_targets(student_logits, teacher_logits, temperature):
    z_s, z_t = _validated_logits(student_logits, teacher_logits, temperature)
    return (
        ops.softmax(z_s / temperature, axis=-1),
        ops.softmax(z_t / temperature, axis=-1),
    )


def _norm(x, axis):
    return ops.sqrt(ops.maximum(ops.sum(x * x, axis=axis), _SQUARED_NORM_FLOOR))


def cosine_per_row(a, b, centred=False, absolute=False):
    """Row-wise cosine similarity `a.b / (|a| |b| + 1e-8)` as in the reference.

    Args:
        a, b: tensors of shape `(rows, features)`.
        centred: subtract each row's mean first (Pearson correlation).
        absolute: take `|a.b|` (R2KD's "absolute cosine").

    Returns:
        A tensor of shape `(rows,)`.

    Example:
    >>> cosine_per_row(ops.ones((2, 3)), ops.ones((2, 3)))  # [1., 1.]
    """
    if centred:
        a = a - ops.mean(a, axis=1, keepdims=True)
        b = b - ops.mean(b, axis=1, keepdims=True)
    dot = ops.sum(a * b, axis=1)
    if absolute:
        dot = ops.abs(dot)
    return dot / (_norm(a, 1) * _norm(b, 1) + COSINE_EPS)


def _kl_from_log_probs(log_p_t, log_p_s):
    """`sum_c p_t (log p_t - log p_s)` per row; 0 log 0 taken as 0."""
    p_t = ops.exp(log_p_t)
    return ops.sum(ops.where(p_t > 0, p_t * (log_p_t - log_p_s), 0.0), axis=-1)


class _LogitsLoss(keras.losses.Loss):
    """Base of the `keras.losses.Loss` wrappers of the pure functions.

    `y_true` is the teacher's logits, `y_pred` the student's. A subclass names
    its function in `loss_fn` and passes the function's keyword arguments on
    to this constructor: they are `loss_kwargs` and, with the name and
    reduction, the config. The default name is the function's name.

    Args:
        temperature: softmax temperature, checked here for every wrapper.
        name: loss name; `None` for the name of `loss_fn`.
        reduction, dtype: as in `keras.losses.Loss`.
        **loss_kwargs: the other keyword arguments of `loss_fn`.
    """

    loss_fn = None

    def __init__(
        self, temperature=4.0, name=None, reduction="sum_over_batch_size", dtype=None,
        **loss_kwargs,
    ):
        check_positive("temperature", temperature)
        super().__init__(
            name=name or self.loss_fn.__name__, reduction=reduction, dtype=dtype
        )
        self.loss_kwargs = {"temperature": temperature, **loss_kwargs}

    def call(self, y_true, y_pred):
        return self.loss_fn(y_pred, y_true, **self.loss_kwargs)

    def get_config(self):
        return {**super().get_config(), **self.loss_kwargs}
