"""Distillation losses on logits: R2KD's correlation and rank terms, and the
KD, DIST and DKD baselines, as pure `keras.ops` functions.

Every function takes `(student_logits, teacher_logits, ...)` of shape
`(batch, classes)` and returns a scalar averaged over the batch. Terms that
look across the batch (R2KD's and DIST's per-class column terms) are over the
batch they are given: under `tf.distribute`, pass logits gathered across
replicas (`R2KDDistiller` does this) or the term is a per-replica estimate.

Each function has a `keras.losses.Loss` wrapper taking
`(y_true=teacher_logits, y_pred=student_logits)`, and `CorrelationDistillation`
plugs R2KD into `keras.distillation.Distiller`.
"""

import keras
from keras import ops

from r2kd_keras import labels as labels_lib

# The reference's epsilon in every cosine (mdistiller R2KD.py, DIST).
COSINE_EPS = 1e-8
# Floor under squared norms: an all-zero column (softmax underflow at huge
# logits) would otherwise make the gradient of the norm 0 * inf = NaN.
_SQUARED_NORM_FLOOR = 1e-30
# DKD hides the target class from the non-target distribution this way.
_DKD_TARGET_MASK = 1000.0


def _validated_logits(student_logits, teacher_logits, temperature):
    """Float32 logits, after checking shapes and temperature."""
    _check_temperature(temperature)
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


def _check_temperature(temperature):
    if not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ValueError(
            f"`temperature` must be a positive number, received: {temperature!r}"
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


def correlation_value_loss(student_logits, teacher_logits, temperature=4.0):
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


RANK_MODES = ("exact", "soft")


def spearman_rank_loss(
    student_logits,
    teacher_logits,
    temperature=4.0,
    mode="exact",
    sharpness=10.0,
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
    if mode not in RANK_MODES:
        raise ValueError(f"`mode` must be one of {RANK_MODES}, received: {mode!r}")
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
    temperature=4.0,
    value_weight=2.0,
    rank_weight=2.0,
    rank_mode="exact",
    rank_sharpness=10.0,
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


def _kl_from_log_probs(log_p_t, log_p_s):
    """`sum_c p_t (log p_t - log p_s)` per row; 0 log 0 taken as 0."""
    p_t = ops.exp(log_p_t)
    return ops.sum(ops.where(p_t > 0, p_t * (log_p_t - log_p_s), 0.0), axis=-1)


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


class _LogitsLoss(keras.losses.Loss):
    """Base of the wrappers: `y_true` is the teacher's logits, `y_pred` the
    student's; the pure function's keyword arguments are the config."""

    loss_fn = None

    def __init__(self, name, reduction="sum_over_batch_size", dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.loss_kwargs = kwargs

    def call(self, y_true, y_pred):
        return type(self).loss_fn(y_pred, y_true, **self.loss_kwargs)

    def get_config(self):
        return {**super().get_config(), **self.loss_kwargs}


@keras.saving.register_keras_serializable(package="r2kd_keras")
class CorrelationValueLoss(_LogitsLoss):
    """`keras.losses.Loss` form of `correlation_value_loss`.

    Args:
        temperature: softmax temperature.
        name: loss name.

    Example:
    >>> CorrelationValueLoss(temperature=4.0)(teacher_logits, student_logits)
    """

    loss_fn = staticmethod(correlation_value_loss)

    def __init__(self, temperature=4.0, name="correlation_value_loss", **kwargs):
        _check_temperature(temperature)
        super().__init__(name=name, temperature=temperature, **kwargs)


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

    def __init__(
        self, temperature=4.0, mode="exact", sharpness=10.0,
        name="spearman_rank_loss", **kwargs,
    ):
        if mode not in RANK_MODES:
            raise ValueError(f"`mode` must be one of {RANK_MODES}, received: {mode!r}")
        super().__init__(
            name=name, temperature=temperature, mode=mode, sharpness=sharpness,
            **kwargs,
        )


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
        self, temperature=4.0, value_weight=2.0, rank_weight=2.0,
        rank_mode="exact", rank_sharpness=10.0, name="r2kd_loss", **kwargs,
    ):
        _check_temperature(temperature)
        if rank_mode not in RANK_MODES:
            raise ValueError(
                f"`rank_mode` must be one of {RANK_MODES}, received: {rank_mode!r}"
            )
        super().__init__(
            name=name, temperature=temperature, value_weight=value_weight,
            rank_weight=rank_weight, rank_mode=rank_mode,
            rank_sharpness=rank_sharpness, **kwargs,
        )


@keras.saving.register_keras_serializable(package="r2kd_keras")
class KDLoss(_LogitsLoss):
    """`keras.losses.Loss` form of `kd_loss`.

    Args:
        temperature: softmax temperature.
        name: loss name.

    Example:
    >>> KDLoss(temperature=4.0)(teacher_logits, student_logits)
    """

    loss_fn = staticmethod(kd_loss)

    def __init__(self, temperature=4.0, name="kd_loss", **kwargs):
        _check_temperature(temperature)
        super().__init__(name=name, temperature=temperature, **kwargs)


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

    def __init__(self, temperature=4.0, beta=2.0, gamma=2.0, name="dist_loss", **kwargs):
        _check_temperature(temperature)
        super().__init__(
            name=name, temperature=temperature, beta=beta, gamma=gamma, **kwargs
        )


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

    def __init__(self, temperature=4.0, alpha=1.0, beta=8.0, name="dkd_loss", **kwargs):
        _check_temperature(temperature)
        super().__init__(
            name=name, temperature=temperature, alpha=alpha, beta=beta, **kwargs
        )

    def call(self, y_true, y_pred):
        if not isinstance(y_true, dict) or set(y_true) != {"teacher_logits", "labels"}:
            raise ValueError(
                "DKDLoss needs `y_true={'teacher_logits': ..., 'labels': ...}`; "
                f"received: {type(y_true).__name__}"
                + (f" with keys {sorted(y_true)}" if isinstance(y_true, dict) else "")
            )
        return dkd_loss(
            y_pred, y_true["teacher_logits"], y_true["labels"], **self.loss_kwargs
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
        self, temperature=4.0, value_weight=2.0, rank_weight=2.0,
        rank_mode="exact", rank_sharpness=10.0,
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
