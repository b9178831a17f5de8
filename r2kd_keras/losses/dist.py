"""DIST (Huang et al., 2022): Pearson-correlation distances between softened
class distributions, per sample and per class."""

import keras
from keras import ops

from r2kd_keras.losses._common import _LogitsLoss
from r2kd_keras.losses._common import _soft_targets
from r2kd_keras.losses._common import cosine_per_row


def dist_loss(student_logits, teacher_logits, temperature=4.0, beta=2.0, gamma=2.0):
    """DIST (Huang et al., 2022): Pearson-correlation distance, both directions.

    `tau^2 * (beta * inter + gamma * intra)`, `inter = 1 - mean_i
    pearson(P_s[i], P_t[i])` and `intra` the same over classes.

    Args:
        student_logits: `(batch, classes)` logits of the student.
        teacher_logits: `(batch, classes)` logits of the teacher.
        temperature: softmax temperature (4 on CIFAR).
        beta: weight of the inter-class (per-sample) term.
        gamma: weight of the intra-class (per-class) term.

    Returns:
        A scalar tensor.

    Example:
    >>> dist_loss(student(x), teacher(x), beta=2.0, gamma=2.0)
    """
    p_s, p_t = _soft_targets(student_logits, teacher_logits, temperature)
    inter = 1.0 - ops.mean(cosine_per_row(p_s, p_t, centred=True))
    intra = 1.0 - ops.mean(
        cosine_per_row(ops.transpose(p_s), ops.transpose(p_t), centred=True)
    )
    return temperature**2 * (beta * inter + gamma * intra)


@keras.saving.register_keras_serializable(package="r2kd_keras")
class DISTLoss(_LogitsLoss):
    """`keras.losses.Loss` form of `dist_loss`.

    Args:
        temperature, beta, gamma: as in `dist_loss`.
        name: loss name.

    Example:
    >>> DISTLoss(beta=2.0, gamma=2.0)(teacher_logits, student_logits)
    """

    loss_fn = staticmethod(dist_loss)

    def __init__(self, temperature=4.0, beta=2.0, gamma=2.0, name=None, **kwargs):
        super().__init__(temperature, name, beta=beta, gamma=gamma, **kwargs)
