"""`R2KDDistiller`: a `keras.Model` whose `fit` trains a student with R2KD
(or a KD / DIST / DKD / CE-only baseline on the same trainer)."""

import keras
import tensorflow as tf
from keras import ops

from r2kd_keras import folding
from r2kd_keras import losses
from r2kd_keras import pruning

DISTILLATION_METHODS = ("r2kd", "kd", "dist", "dkd", "none")
TEACHER_DTYPES = (None, "auto", "bfloat16", "float16")

# Recipe defaults per method: the CE weight and the weight of the distillation
# term (mdistiller CIFAR-100 configs; KD: CE 0.1, KD 0.9).
_CE_WEIGHT = {"r2kd": 1.0, "kd": 0.1, "dist": 1.0, "dkd": 1.0, "none": 1.0}
_DISTILL_WEIGHT = {"kd": 0.9, "dist": 1.0, "dkd": 1.0}
_DKD_DEFAULT_WARMUP_EPOCHS = 20

_NOT_FINITE_MESSAGE = (
    "R2KDDistiller: the training loss is NaN or Inf. Usual causes: a learning "
    "rate too high for this batch size, inputs that are not normalised, or a "
    "teacher that outputs NaN. Lower the learning rate or check the data, then "
    "resume from the last BackupAndRestore / checkpoint state"
)


def _check_range(name, value, low, high, high_inclusive=True):
    ok = isinstance(value, (int, float)) and low <= value and (
        value <= high if high_inclusive else value < high
    )
    if not ok:
        bracket = "]" if high_inclusive else ")"
        raise ValueError(
            f"`{name}` must be a number in [{low}, {high}{bracket}, received: {value!r}"
        )


def _output_shape(model):
    outputs = getattr(model, "outputs", None)
    if outputs and len(outputs) == 1:
        return tuple(outputs[0].shape)
    return None


def _input_shape(model):
    inputs = getattr(model, "inputs", None)
    if inputs and len(inputs) == 1:
        return tuple(inputs[0].shape)
    return None


def resolve_teacher_dtype(teacher_dtype):
    """`"auto"`: bfloat16 where the hardware runs it fast, else float32 (None).

    bfloat16 is picked on a CPU with AVX512-BF16 or AMX-BF16 instructions and
    on GPUs of compute capability 8.0 or newer; float16 on older GPUs.
    """
    if teacher_dtype not in TEACHER_DTYPES:
        raise ValueError(
            f"`teacher_dtype` must be one of {TEACHER_DTYPES}, received: {teacher_dtype!r}"
        )
    if teacher_dtype != "auto":
        return teacher_dtype
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get(
            "compute_capability", (0, 0)
        )
        return "bfloat16" if capability >= (8, 0) else "float16"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return None
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else None


def reduced_precision_copy(model, dtype):
    """An inference copy of `model` computing in `dtype` (mixed precision).

    Variables stay float32; convolutions and the rest run in `dtype`; Dense
    layers (the classifier) stay float32 so logits keep their precision.

    Args:
        model: a functional or Sequential `keras.Model`.
        dtype: `"bfloat16"` or `"float16"`.

    Returns:
        A new model with the same weights.

    Example:
    >>> fast_teacher = reduced_precision_copy(teacher, "bfloat16")
    """
    policy = keras.DTypePolicy(f"mixed_{dtype}")

    def clone(layer):
        if isinstance(layer, keras.Model):
            return reduced_precision_copy(layer, dtype)
        config = layer.get_config()
        if not isinstance(layer, keras.layers.Dense):
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except ValueError as error:
        raise ValueError(
            f"`teacher_dtype={dtype!r}` needs a functional or Sequential teacher "
            f"to copy layer by layer; model '{model.name}' could not be cloned "
            f"({error}). Use teacher_dtype=None."
        ) from error
    copy.set_weights(model.get_weights())
    copy.trainable = False
    return copy


def _augmenter_takes_dict(augmenter):
    """Keras 3 and keras-cv image layers and `r2kd_keras.augment` views (which
    declare `requires_teacher`) take `{"images", "labels"}` dicts; other
    callables get the images alone."""
    if getattr(augmenter, "accepts_dict", False) or hasattr(augmenter, "requires_teacher"):
        return True
    from keras.src.layers.preprocessing.image_preprocessing import (
        base_image_preprocessing_layer as base,
    )

    if isinstance(augmenter, base.BaseImagePreprocessingLayer):
        return True
    return type(augmenter).__module__.startswith("keras_cv.")


class _EpochTracker(keras.callbacks.Callback):
    """Feeds the epoch index to the distiller (DKD's warm-up needs it)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.epoch.assign(float(epoch))


@keras.saving.register_keras_serializable(package="r2kd_keras")
class R2KDDistiller(keras.Model):
    """Trains `student` from `teacher` with R2KD (Kim et al., TKDE 2024).

    One training step on a batch `(x, y)`:
    `L = ce_weight * CE(student(x), y) + D(x) + D(A(x))`, where `A` is the
    augmenter (second view; omitted when None) and, for R2KD,
    `D = value_weight * correlation_value_loss + rank_weight *
    spearman_rank_loss` against the blended target
    `z = teacher_weight * teacher(x) + (1 - teacher_weight) * pruned_teacher(x)`.
    Both teachers are frozen and run in inference mode (the reference runs the
    pruned teacher in training mode; we do not). Terms that look across the
    batch are computed on the global batch under `tf.distribute` (logits are
    gathered across replicas), so a mirrored step equals a one-device step.

    `distillation` selects the method on the same trainer: `"kd"` (Hinton;
    CE weight 0.1, KD weight 0.9 by default, as in mdistiller), `"dist"`,
    `"dkd"` (labels as targets, warm-up `min(epoch / 20, 1)` with epochs
    counted from 1 as in mdistiller), or `"none"`
    (the student alone; with an augmenter its CE also covers `A(x)` with the
    augmenter's mixed labels). Baselines apply their term to both views.

    Args:
        student: the `keras.Model` to train; outputs logits `(batch, C)`. May
            be wrapped by `r2kd_keras.pruning.prune_low_magnitude`: masks are
            then updated and re-applied at every step.
        teacher: a built, trained `keras.Model` with the same output shape.
            May be None only with `distillation="none"`.
        pruned_teacher: a model, or None to build one by pruning a copy of
            the teacher (`prune_teacher(teacher, teacher_prune_rate)`).
        teacher_prune_rate: L1 layer-wise pruning rate for the built copy;
            0 disables the blend.
        teacher_weight: weight of the full teacher in the blend (0.7).
        augmenter: the second view: a Keras image layer or any callable on a
            `{"images", "labels"}` dict (labels one-hot float), or on images;
            an object with `requires_teacher = True` is also given
            `teacher=fn` (CutMixPick). None: one view.
        distillation: one of `"r2kd"`, `"kd"`, `"dist"`, `"dkd"`, `"none"`.
        temperature: softmax temperature of the distillation term.
        value_weight: R2KD value-term weight (2).
        rank_weight: R2KD rank-term weight (2).
        rank_mode: `"exact"` (the reference: logged, no gradient) or `"soft"`.
        rank_sharpness: soft-rank sharpness (see `losses.spearman_rank_loss`).
        ce_weight: weight of the cross-entropy; None takes the method's
            recipe default (0.1 for KD, 1 otherwise).
        distillation_weight: weight of a baseline's term; None takes the
            recipe default (0.9 for KD, 1 otherwise). Unused by R2KD.
        loss_kwargs: extra keyword arguments of the baseline loss, e.g.
            `{"beta": 6.0}` for DKD or `{"beta": 1.0, "gamma": 1.0}` for DIST;
            DKD also takes `"warmup_epochs"` (20).
        teacher_dtype: None (float32), `"bfloat16"`, `"float16"` or `"auto"`:
            teachers compute in that dtype (their logits are cast back to
            float32; bfloat16 moved resnet32x4's logits by ~0.004 and kept
            its top-1 here). Needs a functional or Sequential teacher.
        pruned_teacher_training: reproduce the reference, whose pruned teacher
            runs in training mode (BatchNorm on batch statistics, moving
            averages updated by every step). Default False: inference mode.
        fold_teachers: run the teachers with their BatchNorms folded into the
            convolutions before them (`folding.fold_batchnorm`; exact up to
            float rounding, fewer passes over the feature maps). The pruned
            teacher is pruned first, then folded; in reference mode it stays
            unfolded. Subclassed teachers run unfolded.
        check_numerics: stop with a clear error when the loss is NaN/Inf.

    Example:
    >>> distiller = R2KDDistiller(student=student, teacher=teacher,
    ...                           augmenter=keras.layers.CutMix())
    >>> distiller.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
    ...                   metrics=["accuracy"])
    >>> distiller.fit(train_ds, validation_data=val_ds, epochs=240)
    >>> distiller.student.save("student.keras")
    """

    # Tells `pruning.UpdatePruningStep` that this model steps the masks itself.
    drives_pruning = True

    def __init__(
        self,
        student,
        teacher,
        pruned_teacher=None,
        teacher_prune_rate=0.1,
        teacher_weight=0.7,
        augmenter=None,
        distillation="r2kd",
        temperature=4.0,
        value_weight=2.0,
        rank_weight=2.0,
        rank_mode="exact",
        rank_sharpness=10.0,
        ce_weight=None,
        distillation_weight=None,
        loss_kwargs=None,
        teacher_dtype=None,
        pruned_teacher_training=False,
        fold_teachers=True,
        check_numerics=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if distillation not in DISTILLATION_METHODS:
            raise ValueError(
                f"`distillation` must be one of {DISTILLATION_METHODS}, "
                f"received: {distillation!r}"
            )
        if not isinstance(student, keras.Model):
            raise ValueError(
                f"`student` must be a keras.Model, received: {type(student).__name__}"
            )
        if teacher is None and distillation != "none":
            raise ValueError(
                f"`teacher` is None, which only `distillation='none'` allows; "
                f"received distillation={distillation!r}."
            )
        _check_range("teacher_prune_rate", teacher_prune_rate, 0.0, 1.0, False)
        _check_range("teacher_weight", teacher_weight, 0.0, 1.0)
        for name, value in (("value_weight", value_weight), ("rank_weight", rank_weight)):
            _check_range(name, value, 0.0, float("inf"))
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(
                f"`temperature` must be a positive number, received: {temperature!r}"
            )
        if rank_mode not in losses.RANK_MODES:
            raise ValueError(
                f"`rank_mode` must be one of {losses.RANK_MODES}, received: {rank_mode!r}"
            )
        if augmenter is not None and not callable(augmenter):
            raise ValueError(
                f"`augmenter` must be callable or None, received: {augmenter!r}"
            )

        self.student = student
        self.distillation = distillation
        self.temperature = float(temperature)
        self.value_weight = float(value_weight)
        self.rank_weight = float(rank_weight)
        self.rank_mode = rank_mode
        self.rank_sharpness = float(rank_sharpness)
        self.ce_weight = _CE_WEIGHT[distillation] if ce_weight is None else ce_weight
        _check_range("ce_weight", self.ce_weight, 0.0, float("inf"))
        self.distillation_weight = (
            _DISTILL_WEIGHT.get(distillation, 1.0)
            if distillation_weight is None
            else distillation_weight
        )
        _check_range("distillation_weight", self.distillation_weight, 0.0, float("inf"))
        self.loss_kwargs = dict(loss_kwargs or {})
        self._dkd_warmup_epochs = self.loss_kwargs.pop(
            "warmup_epochs", _DKD_DEFAULT_WARMUP_EPOCHS
        )
        self.teacher_prune_rate = teacher_prune_rate
        self.teacher_weight = float(teacher_weight)
        self.augmenter = augmenter
        self.teacher_dtype = teacher_dtype
        self.pruned_teacher_training = bool(pruned_teacher_training)
        self.fold_teachers = bool(fold_teachers)
        self.check_numerics = check_numerics
        self.num_classes = self._validate_models(student, teacher)

        self.teacher = teacher
        self._explicit_pruned_teacher = pruned_teacher is not None
        self.pruned_teacher = None
        if teacher is not None and teacher_weight < 1.0:
            if pruned_teacher is not None:
                self._validate_models(student, pruned_teacher, role="pruned_teacher")
                self.pruned_teacher = pruned_teacher
            elif teacher_prune_rate > 0:
                self.pruned_teacher = pruning.prune_teacher(teacher, teacher_prune_rate)
        for model in (self.teacher, self.pruned_teacher):
            if model is not None:
                model.trainable = False

        compute_dtype = resolve_teacher_dtype(teacher_dtype)
        self._teacher_runners = [
            folding.inference_teacher(
                model, compute_dtype,
                fold=self.fold_teachers and not (is_pruned and self.pruned_teacher_training),
            )
            for model, is_pruned in ((self.teacher, False), (self.pruned_teacher, True))
            if model is not None
        ]
        if self.pruned_teacher_training and self.pruned_teacher is not None:
            # Keras runs BatchNorm of a non-trainable layer in inference mode
            # whatever `training` says; the optimizer still only sees the student.
            self._teacher_runners[1].trainable = True
        self.epoch = keras.Variable(0.0, trainable=False, name="epoch")
        self._term_names = {
            "r2kd": ["value_loss", "rank_loss"],
            "none": [],
        }.get(distillation, ["distill_loss"])
        self._trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ["ce_loss"] + self._term_names
        }
        self._augmenter_takes_dict = (
            augmenter is not None and _augmenter_takes_dict(augmenter)
        )
        # `call` is the student's, so the distiller is built when it is
        # (BackupAndRestore refuses unbuilt models).
        self.built = student.built

    # ------------------------------------------------------------ validation
    def _validate_models(self, student, teacher, role="teacher"):
        if teacher is None:
            shape = _output_shape(student)
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
        s_out, t_out = _output_shape(student), _output_shape(teacher)
        if s_out and t_out and s_out[1:] != t_out[1:]:
            raise ValueError(
                f"Student and {role} outputs differ: student outputs shape "
                f"{s_out}, {role} '{teacher.name}' outputs {t_out}. Both must "
                "output logits over the same classes (batch, num_classes)."
            )
        s_in, t_in = _input_shape(student), _input_shape(teacher)
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

    def _labels_one_hot(self, y, num_classes):
        """One-hot float labels from sparse ids or one-hot/soft labels."""
        y = tf.convert_to_tensor(y)
        shape = tuple(y.shape)
        if len(shape) == 2 and shape[-1] == num_classes and num_classes != 1:
            return tf.cast(y, "float32")
        if len(shape) == 2 and shape[-1] == 1:
            y = tf.squeeze(y, -1)
        elif len(shape) != 1:
            raise ValueError(
                f"Labels must be class ids of shape (batch,) or (batch, 1), or "
                f"one-hot of shape (batch, {num_classes}); received labels of "
                f"shape {shape} (dtype {y.dtype.name})."
            )
        if y.dtype.is_floating:
            y = tf.cast(y, "int64")
        checks = [
            tf.debugging.assert_non_negative(
                y, message=f"Labels must be class ids in [0, {num_classes}); "
                f"received a negative label (labels of shape {shape})."
            ),
            tf.debugging.assert_less(
                y, tf.cast(num_classes, y.dtype),
                message=f"Labels must be class ids in [0, {num_classes}); "
                f"received a label >= {num_classes} (labels of shape {shape}). "
                "Check the dataset's class count against the models'.",
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.one_hot(tf.cast(y, "int32"), num_classes)

    # ----------------------------------------------------------------- parts
    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def _target_logits(self, views, training=True):
        """Blended teacher logits per view, float32, no gradient.

        Teachers in inference mode see all views in one call: with BatchNorm
        using its moving statistics that equals one call per view, and is
        cheaper. The reference-mode pruned teacher sees each view alone.
        """
        # Views may differ in size (CutMixPick keeps at most 64 images).
        sizes = [tf.shape(view)[0] for view in views]
        fused = ops.concatenate(views, axis=0) if len(views) > 1 else views[0]
        per_model = []
        for model, is_pruned in zip(self._teacher_runners, (False, True)):
            if training and is_pruned and self.pruned_teacher_training:
                per_model.append([model(view, training=True) for view in views])
            else:
                logits = model(fused, training=False)
                per_model.append(tf.split(logits, sizes, axis=0) if len(views) > 1 else [logits])
        targets = []
        for logits in zip(*per_model):
            logits = [ops.cast(z, "float32") for z in logits]
            target = logits[0]
            if len(logits) == 2:
                w = self.teacher_weight
                target = w * logits[0] + (1.0 - w) * logits[1]
            targets.append(ops.stop_gradient(target))
        return targets

    def _second_view(self, images, one_hot):
        """`(A(x), labels of A(x))`; the labels are only used by `"none"`."""
        if self._augmenter_takes_dict:
            data = {"images": images, "labels": one_hot}
            if getattr(self.augmenter, "requires_teacher", False):
                first = self._teacher_runners[0]
                out = self.augmenter(
                    data, teacher=lambda x: ops.cast(first(x, training=False), "float32")
                )
            else:
                out = self.augmenter(data)
        else:
            out = self.augmenter(images)
        if isinstance(out, dict):
            return out["images"], out.get("labels", one_hot)
        return out, one_hot

    @staticmethod
    def _gather(tensor):
        """The tensor over the global batch (identity on one replica)."""
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return tensor
        gathered = context.all_gather(tensor, axis=0)
        # all_gather forgets the static class count the losses need.
        gathered.set_shape([None] + list(tensor.shape[1:]))
        return gathered

    def _distillation_terms(self, student_logits, target_logits, one_hot):
        """Named distillation terms for one view, on global-batch tensors."""
        tau = self.temperature
        if self.distillation == "r2kd":
            return {
                "value_loss": self.value_weight
                * losses.correlation_value_loss(student_logits, target_logits, tau),
                "rank_loss": self.rank_weight
                * losses.spearman_rank_loss(
                    student_logits, target_logits, tau, self.rank_mode,
                    self.rank_sharpness,
                ),
            }
        if self.distillation == "kd":
            term = losses.kd_loss(student_logits, target_logits, tau, **self.loss_kwargs)
        elif self.distillation == "dist":
            term = losses.dist_loss(student_logits, target_logits, tau, **self.loss_kwargs)
        else:
            # mdistiller counts epochs from 1: the first epoch gets 1/warmup.
            warmup = ops.minimum((self.epoch + 1.0) / float(self._dkd_warmup_epochs), 1.0)
            term = warmup * losses.dkd_loss(
                student_logits, target_logits, one_hot, tau, **self.loss_kwargs
            )
        return {"distill_loss": self.distillation_weight * term}

    @staticmethod
    def _cross_entropy(one_hot, logits):
        return ops.mean(
            keras.losses.categorical_crossentropy(one_hot, logits, from_logits=True)
        )

    def _loss_and_parts(self, views, one_hot):
        """Total loss and its logged parts, all as global-batch means.

        `views` is a list of `(student_logits, target_logits, labels)`, the
        clean view first; every tensor is already gathered across replicas.
        """
        (clean_logits, _, _), *augmented = views
        parts = {"ce_loss": self.ce_weight * self._cross_entropy(one_hot, clean_logits)}
        if self.distillation == "none":
            for student_logits, _, labels in augmented:
                parts["ce_loss"] += self.ce_weight * self._cross_entropy(
                    labels, student_logits
                )
        else:
            for student_logits, target_logits, _ in views:
                for name, value in self._distillation_terms(
                    student_logits, target_logits, one_hot
                ).items():
                    parts[name] = parts.get(name, 0.0) + value
        total = sum(parts.values())
        regularization = self.student.losses
        if regularization:
            total += ops.sum(regularization)
        return total, parts

    def _unpack(self, data):
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
        num_classes = self.num_classes or self.student.compute_output_spec(x).shape[-1]
        return x, y, self._labels_one_hot(y, num_classes)

    def _record(self, x, y, student_logits, total, parts):
        batch = tf.cast(tf.shape(x)[0], "float32") * self.distribute_strategy.num_replicas_in_sync
        self._loss_tracker.update_state(total, sample_weight=batch)
        for name, value in parts.items():
            self._trackers[name].update_state(value, sample_weight=batch)
        return self.compute_metrics(x, y, student_logits)

    # ------------------------------------------------------- multi-worker
    # Keras 3.15's TensorFlow trainer has two faults with
    # MultiWorkerMirroredStrategy: `fit` builds the metrics from
    # `strategy.reduce("MEAN", first_batch)`, which fails on a nested
    # (images, labels) batch, and it reduces the step's logs on axis 0, which
    # is invalid for scalars. Shapes are all the build needs, so it gets the
    # local replica's part; logs go out with shape (1,), whose mean over
    # replicas is the global mean (the replicas' batches are equal).
    def _is_multi_worker(self):
        return isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._is_multi_worker() and iterator is not None and data_batch is None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0],
                    next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _logs(self, logs):
        if self._is_multi_worker():
            return {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    # ----------------------------------------------------------------- steps
    def train_step(self, data):
        x, y, one_hot = self._unpack(data)
        pruning.begin_pruning_step(self.student)
        images = [x]
        labels = [one_hot]
        if self.augmenter is not None:
            x_aug, y_aug = self._second_view(x, one_hot)
            images.append(x_aug)
            labels.append(y_aug)
        targets = [None] * len(images)
        if self.distillation != "none":
            targets = self._target_logits(images)

        variables = self.student.trainable_variables
        replicas = self.distribute_strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            # Separate student calls: its BatchNorm statistics stay per view,
            # as in the reference.
            student_logits = [
                ops.cast(self.student(view, training=True), "float32") for view in images
            ]
            views = [
                (self._gather(logits), None if target is None else self._gather(target),
                 self._gather(view_labels))
                for logits, target, view_labels in zip(student_logits, targets, labels)
            ]
            total, parts = self._loss_and_parts(views, self._gather(one_hot))
            # Gradients are summed over replicas and every replica computes
            # the same global-batch loss, hence the division.
            if self.check_numerics:
                total = tf.debugging.check_numerics(total, _NOT_FINITE_MESSAGE)
            scaled = self.optimizer.scale_loss(total / replicas)
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        # Momentum and weight decay would otherwise move pruned weights off 0.
        pruning.apply_pruning_masks(self.student)
        return self._logs(self._record(x, y, student_logits[0], total, parts))

    def test_step(self, data):
        x, y, one_hot = self._unpack(data)
        student_logits = ops.cast(self.student(x, training=False), "float32")
        target = (
            None if self.distillation == "none"
            else self._target_logits([x], training=False)[0]
        )
        views = [(
            self._gather(student_logits),
            None if target is None else self._gather(target),
            None,
        )]
        total, parts = self._loss_and_parts(views, self._gather(one_hot))
        return self._logs(self._record(x, y, student_logits, total, parts))

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, plus the epoch counter that DKD's warm-up reads."""
        x = args[0] if args else kwargs.get("x")
        shuffle_position = 8
        if isinstance(x, tf.data.Dataset) and len(args) <= shuffle_position:
            # fit's default shuffle=True only makes Keras warn that it cannot
            # shuffle a Dataset: the pipeline shuffles itself.
            kwargs.setdefault("shuffle", False)
        callbacks_position = 5
        if len(args) > callbacks_position:
            args = list(args)
            args[callbacks_position] = list(args[callbacks_position] or []) + [_EpochTracker()]
        else:
            kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [_EpochTracker()]
        return super().fit(*args, **kwargs)

    # ---------------------------------------------------------- serialisation
    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        if self.augmenter is not None and not hasattr(self.augmenter, "get_config"):
            raise ValueError(
                "This R2KDDistiller cannot be serialised: its `augmenter` "
                f"({self.augmenter!r}) has no get_config. Save the student "
                "(`distiller.student.save(...)`) or use a Keras layer augmenter."
            )
        return {
            **super().get_config(),
            "student": serialize(self.student),
            "teacher": serialize(self.teacher),
            "pruned_teacher": (
                serialize(self.pruned_teacher) if self._explicit_pruned_teacher else None
            ),
            "teacher_prune_rate": self.teacher_prune_rate,
            "teacher_weight": self.teacher_weight,
            "augmenter": serialize(self.augmenter),
            "distillation": self.distillation,
            "temperature": self.temperature,
            "value_weight": self.value_weight,
            "rank_weight": self.rank_weight,
            "rank_mode": self.rank_mode,
            "rank_sharpness": self.rank_sharpness,
            "ce_weight": self.ce_weight,
            "distillation_weight": self.distillation_weight,
            "loss_kwargs": {**self.loss_kwargs, "warmup_epochs": self._dkd_warmup_epochs}
            if self.distillation == "dkd" else self.loss_kwargs,
            "teacher_dtype": self.teacher_dtype,
            "pruned_teacher_training": self.pruned_teacher_training,
            "fold_teachers": self.fold_teachers,
            "check_numerics": self.check_numerics,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("student", "teacher", "pruned_teacher", "augmenter"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
