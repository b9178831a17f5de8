"""Hinton's knowledge distillation (Hinton et al., 2015): the KL divergence
between softened class distributions."""

import keras
from keras import ops

from r2kd_keras.losses._common import _kl_from_log_probs
from r2kd_keras.losses._common import _LogitsLoss
from r2kd_keras.losses._common import _validated_logits


def kd_loss(student_logits, teacher_logits, temperature=4.0):
    """Hinton's KD term: `tau^2 * KL(softmax(z_t/tau) || softmax(z_s/tau))`.

    Summed over classes, averaged over the batch (PyTorch's `batchmean`).

    Args:
        student_logits: `(batch, classes)` logits of the student.
        teacher_logits: `(batch, classes)` logits of the teacher.
        temperature: softmax temperature.

    Returns:
        A scalar tensor.

    Example:
    >>> kd_loss(student(x), teacher(x), temperature=4.0)
    """
    z_s, z_t = _validated_logits(student_logits, teacher_logits, temperature)
    log_p_s = ops.log_softmax(z_s / temperature)
    log_p_t = ops.log_softmax(z_t / temperature)
    return temperature**2 * ops.mean(_kl_from_log_probs(log_p_t, log_p_s))


@keras.saving.register_keras_serializable(package="r2kd_keras")
class KDLoss(_LogitsLoss):
    """`keras.losses.Loss` form of `kd_loss`.

    Args:
        temperature: softmax temperature; the `tau^2` factor is included.
        name: loss name (`"kd_loss"`).

    Example:
    >>> KDLoss(temperature=4.0)(teacher_logits, student_logits)
    """

    loss_fn = staticmethod(kd_loss)
