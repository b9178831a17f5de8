"""R2KD's losses (Kim et al., TKDE 2024): the correlation-value and Spearman
rank terms, their sum for one view, their `keras.losses.Loss` forms and the
`keras.distillation` adapter."""

import keras
from keras import ops

from r2kd_keras.losses._common import _LogitsLoss
from r2kd_keras.losses._common import _soft_targets
from r2kd_keras.losses._common import cosine_per_row
from r2kd_keras.validation import check_choice

RANK_MODES = ("exact", "soft")
# The recipe's defaults (mdistiller's CIFAR-100 R2KD config), one place for
# the pure functions, the Keras losses and `methods.R2KD`.
TEMPERATURE = 4.0
VALUE_WEIGHT = 2.0
RANK_WEIGHT = 2.0
RANK_SHARPNESS = 10.0


def correlation_value_loss(student_logits, teacher_logits, temperature=TEMPERATURE):
    """R2KD's value term: absolute-cosine distance in both directions.

    `tau^2 * (d_row + d_col)`, where `d_row = 1 - mean_i e(P_s[i], P_t[i])`
    compares each sample's class distribution and `d_col` does the same for
    each class across the batch, `e` being the absolute uncentred cosine.
    The loss weight (`value_weight`, 2 in the paper) is applied by the caller.

    Args:
        student_logits: `(batch, classes)` logits of the student.
        teacher_logits: `(batch, classes)` logits of the (blended) teacher.
        temperature: softmax temperature `tau`.

    Returns:
        A scalar tensor.

    Example:
    >>> correlation_value_loss(student(x), teacher(x), temperature=4.0)
    """
    p_s, p_t = _soft_targets(student_logits, teacher_logits, temperature)
    d_row = 1.0 - ops.mean(cosine_per_row(p_s, p_t, absolute=True))
    d_col = 1.0 - ops.mean(
        cosine_per_row(ops.transpose(p_s), ops.transpose(p_t), absolute=True)
    )
    return temperature**2 * (d_row + d_col)


def _exact_ranks(p):
    """1-based ranks within each row; ties broken by position."""
    order = ops.argsort(p, axis=-1)
    return ops.cast(ops.argsort(order, axis=-1), "float32") + 1.0


def _soft_ranks(scores, sharpness):
    """Pairwise-sigmoid soft ranks: `1/2 + sum_j sigmoid(k (s_i - s_j))`.

    The `j = i` term is 1/2, so each rank lies in [1, C] and tends to the
    exact 1-based rank as `k` grows (for distinct scores). Memory is
    `O(batch * C^2)`.
    """
    diff = ops.expand_dims(scores, -1) - ops.expand_dims(scores, -2)
    return 0.5 + ops.sum(ops.sigmoid(sharpness * diff), axis=-1)


def spearman_rank_loss(
    student_logits,
    teacher_logits,
    temperature=TEMPERATURE,
    mode="exact",
    sharpness=RANK_SHARPNESS,
):
    """R2KD's rank term: `1 - mean_i spearman(P_s[i], P_t[i])`.

    Ranks are normalised by `C (C + 1) / 2` and compared with a centred
    cosine (eps 1e-8), as in the reference. The loss weight (`rank_weight`,
    2 in the paper) is applied by the caller; there is no `tau^2`.

    `mode="exact"` reproduces the reference value, which is built from
    `argsort` and so **passes no gradient**: it is a logged quantity that does
    not train the student (the reference's behaviour). `mode="soft"` replaces
    the student's ranks with differentiable pairwise-sigmoid soft ranks of
    `z_s / tau` (ranks of `P_s` equal ranks of the logits), so the rank term
    trains the student; it converges to the exact value as `sharpness` grows.

    Args:
        student_logits: `(batch, classes)` logits of the student.
        teacher_logits: `(batch, classes)` logits of the (blended) teacher.
        temperature: softmax temperature `tau`.
        mode: `"exact"` or `"soft"`.
        sharpness: slope `k` of the soft-rank sigmoids (soft mode only).

    Returns:
        A scalar tensor.

    Example:
    >>> spearman_rank_loss(student(x), teacher(x), mode="soft", sharpness=10.0)
    """
    check_choice("mode", mode, RANK_MODES)
    if mode == "soft" and not sharpness > 0:
        raise ValueError(f"`sharpness` must be positive, received: {sharpness!r}")
    p_s, p_t = _soft_targets(student_logits, teacher_logits, temperature)
    num_classes = p_s.shape[-1]
    if mode == "exact":
        ranks_s = _exact_ranks(p_s)
    else:
        scaled = ops.cast(student_logits, "float32") / temperature
        ranks_s = _soft_ranks(scaled, sharpness)
    ranks_t = _exact_ranks(p_t)
    scale = num_classes * (num_classes + 1) / 2.0
    rho = cosine_per_row(ranks_s / scale, ranks_t / scale, centred=True)
    return 1.0 - ops.mean(rho)


def r2kd_loss(
    student_logits,
    teacher_logits,
    temperature=TEMPERATURE,
    value_weight=VALUE_WEIGHT,
    rank_weight=RANK_WEIGHT,
    rank_mode="exact",
    rank_sharpness=RANK_SHARPNESS,
):
    """The R2KD distillation term for one view.

    `value_weight * correlation_value_loss + rank_weight * spearman_rank_loss`.

    Args:
        student_logits: `(batch, classes)` logits of the student.
        teacher_logits: `(batch, classes)` logits of the (blended) teacher.
        temperature: softmax temperature.
        value_weight: weight of the value term (paper: 2).
        rank_weight: weight of the rank term (paper: 2).
        rank_mode: `"exact"` (reference; no gradient) or `"soft"`.
        rank_sharpness: soft-rank sharpness, see `spearman_rank_loss`.

    Returns:
        A scalar tensor.

    Example:
    >>> loss = r2kd_loss(student(x), teacher(x))
    """
    return value_weight * correlation_value_loss(
        student_logits, teacher_logits, temperature
    ) + rank_weight * spearman_rank_loss(
        student_logits, teacher_logits, temperature, rank_mode, rank_sharpness
    )


@keras.saving.register_keras_serializable(package="r2kd_keras")
class CorrelationValueLoss(_LogitsLoss):
    """`keras.losses.Loss` form of `correlation_value_loss`, unweighted.

    Args:
        temperature: softmax temperature `tau`.
        name: loss name (`"correlation_value_loss"`).

    Example:
    >>> CorrelationValueLoss(temperature=4.0)(teacher_logits, student_logits)
    """

    loss_fn = staticmethod(correlation_value_loss)


@keras.saving.register_keras_serializable(package="r2kd_keras")
class SpearmanRankLoss(_LogitsLoss):
    """`keras.losses.Loss` form of `spearman_rank_loss`.

    Args:
        temperature: softmax temperature.
        mode: `"exact"` (no gradient) or `"soft"`.
        sharpness: soft-rank sharpness.
        name: loss name.

    Example:
    >>> SpearmanRankLoss(mode="soft")(teacher_logits, student_logits)
    """

    loss_fn = staticmethod(spearman_rank_loss)

    def __init__(self, temperature=TEMPERATURE, mode="exact", sharpness=RANK_SHARPNESS, name=None,
                 **kwargs):
        check_choice("mode", mode, RANK_MODES)
        super().__init__(temperature, name, mode=mode, sharpness=sharpness, **kwargs)


@keras.saving.register_keras_serializable(package="r2kd_keras")
class R2KDLoss(_LogitsLoss):
    """`keras.losses.Loss` form of `r2kd_loss` (one view).

    Args:
        temperature, value_weight, rank_weight, rank_mode, rank_sharpness:
            as in `r2kd_loss`.
        name: loss name.

    Example:
    >>> R2KDLoss(rank_mode="soft")(teacher_logits, student_logits)
    """

    loss_fn = staticmethod(r2kd_loss)

    def __init__(
        self, temperature=TEMPERATURE, value_weight=VALUE_WEIGHT, rank_weight=RANK_WEIGHT,
        rank_mode="exact", rank_sharpness=RANK_SHARPNESS, name=None, **kwargs,
    ):
        check_choice("rank_mode", rank_mode, RANK_MODES)
        super().__init__(
            temperature, name, value_weight=value_weight, rank_weight=rank_weight,
            rank_mode=rank_mode, rank_sharpness=rank_sharpness, **kwargs,
        )


@keras.saving.register_keras_serializable(package="r2kd_keras")
class CorrelationDistillation(keras.distillation.DistillationLoss):
    """R2KD's loss for `keras.distillation.Distiller`, in one line.

    Caveats of the host trainer, not of this loss: `keras.distillation.
    Distiller` (Keras 3.15) does not scale distillation losses for the replica
    count, so under `MirroredStrategy` with N replicas this term is applied
    N times too strongly, and its per-class column term sees only each
    replica's slice of the batch. It also has no pruned-teacher blend and no
    augmented view. `r2kd_keras.R2KDDistiller` has none of these limits.

    Args:
        temperature, value_weight, rank_weight, rank_mode, rank_sharpness:
            as in `r2kd_loss`.

    Example:
    >>> distiller = keras.distillation.Distiller(
    ...     teacher=teacher, student=student,
    ...     distillation_losses=CorrelationDistillation(),
    ...     student_loss_weight=0.5)
    """

    def __init__(
        self, temperature=TEMPERATURE, value_weight=VALUE_WEIGHT, rank_weight=RANK_WEIGHT,
        rank_mode="exact", rank_sharpness=RANK_SHARPNESS,
    ):
        self._loss = R2KDLoss(
            temperature=temperature, value_weight=value_weight,
            rank_weight=rank_weight, rank_mode=rank_mode,
            rank_sharpness=rank_sharpness,
        )

    def validate_outputs(self, teacher_outputs, student_outputs):
        super().validate_outputs(teacher_outputs, student_outputs)
        if teacher_outputs.shape[-1] != student_outputs.shape[-1]:
            raise ValueError(
                "Teacher and student must output the same number of classes; "
                f"received teacher {tuple(teacher_outputs.shape)} and student "
                f"{tuple(student_outputs.shape)}."
            )

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return r2kd_loss(student_outputs, teacher_outputs, **self._loss.loss_kwargs)

    def get_config(self):
        return dict(self._loss.loss_kwargs)

    @classmethod
    def from_config(cls, config):
        return cls(**config)
