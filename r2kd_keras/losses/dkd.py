"""Decoupled knowledge distillation (Zhao et al., 2022): separate target-class
and non-target-class KL terms."""

import keras
from keras import ops

from r2kd_keras import labels as labels_lib
from r2kd_keras.losses._common import _kl_from_log_probs
from r2kd_keras.losses._common import _LogitsLoss
from r2kd_keras.losses._common import _validated_logits

# DKD hides the target class from the non-target distribution this way.
_DKD_TARGET_MASK = 1000.0


def dkd_loss(
    student_logits, teacher_logits, labels, temperature=4.0, alpha=1.0, beta=8.0
):
    """Decoupled KD (Zhao et al., 2022): target and non-target terms.

    `tau^2 * (alpha * KL(b_t || b_s) + beta * KL(q_t || q_s))`, `b` the binary
    target-vs-rest distribution and `q` the softmax over non-target classes
    (target logit lowered by 1000, as in mdistiller). The warm-up factor
    `min(epoch / 20, 1)` is the trainer's job.

    Args:
        student_logits: `(batch, classes)` logits of the student.
        teacher_logits: `(batch, classes)` logits of the teacher.
        labels: `(batch,)` integer class ids or `(batch, classes)` one-hot.
        temperature: softmax temperature.
        alpha: weight of the target-class term (TCKD).
        beta: weight of the non-target term (NCKD).

    Returns:
        A scalar tensor.

    Example:
    >>> dkd_loss(student(x), teacher(x), y, alpha=1.0, beta=8.0)
    """
    z_s, z_t = _validated_logits(student_logits, teacher_logits, temperature)
    target = labels_lib.to_one_hot(labels, z_s.shape[-1], check_range=False)
    z_s, z_t = z_s / temperature, z_t / temperature

    def binary_log_probs(z):
        log_all = ops.logsumexp(z, axis=-1)
        log_target = ops.sum(z * target, axis=-1) - log_all
        # Non-target mass by logsumexp over the others: exact where
        # 1 - p_target would round to 0.
        log_other = ops.logsumexp(z - 1e30 * target, axis=-1) - log_all
        return ops.stack([log_target, log_other], axis=-1)

    tckd = ops.mean(_kl_from_log_probs(binary_log_probs(z_t), binary_log_probs(z_s)))
    hide_target = _DKD_TARGET_MASK * target
    nckd = ops.mean(
        _kl_from_log_probs(
            ops.log_softmax(z_t - hide_target), ops.log_softmax(z_s - hide_target)
        )
    )
    return temperature**2 * (alpha * tckd + beta * nckd)


@keras.saving.register_keras_serializable(package="r2kd_keras")
class DKDLoss(_LogitsLoss):
    """`keras.losses.Loss` form of `dkd_loss`.

    DKD needs the labels too, so `y_true` is a dict
    `{"teacher_logits": ..., "labels": ...}`.

    Args:
        temperature, alpha, beta: as in `dkd_loss`.
        name: loss name.

    Example:
    >>> DKDLoss()({"teacher_logits": z_t, "labels": y}, student_logits)
    """

    loss_fn = staticmethod(dkd_loss)

    def __init__(self, temperature=4.0, alpha=1.0, beta=8.0, name=None, **kwargs):
        super().__init__(temperature, name, alpha=alpha, beta=beta, **kwargs)

    def call(self, y_true, y_pred):
        if not isinstance(y_true, dict) or set(y_true) != {"teacher_logits", "labels"}:
            raise ValueError(
                "DKDLoss needs `y_true={'teacher_logits': ..., 'labels': ...}`; "
                f"received: {type(y_true).__name__}"
                + (f" with keys {sorted(y_true)}" if isinstance(y_true, dict) else "")
            )
        return self.loss_fn(
            y_pred, y_true["teacher_logits"], y_true["labels"], **self.loss_kwargs
        )
