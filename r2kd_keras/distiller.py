"""`R2KDDistiller`: a `keras.Model` whose `fit` trains a student with R2KD
(or a KD / DIST / DKD / CE-only baseline on the same trainer)."""

import inspect

import keras
import tensorflow as tf
from keras import ops

from r2kd_keras import _compat
from r2kd_keras import checks
from r2kd_keras import labels as labels_lib
from r2kd_keras import legacy_settings
from r2kd_keras import methods as methods_lib
from r2kd_keras import pruning
from r2kd_keras import teachers
from r2kd_keras.augment import protocol as augment_protocol
from r2kd_keras.callbacks import StepsPerEpoch
from r2kd_keras.distribute import gather_global_batch
from r2kd_keras.precision import TEACHER_DTYPES  # noqa: F401 (old import path)
from r2kd_keras.precision import reduced_precision_copy  # noqa: F401 (old import path)
from r2kd_keras.precision import resolve_teacher_dtype  # noqa: F401 (old import path)

DISTILLATION_METHODS = methods_lib.METHOD_NAMES

_FIT_SIGNATURE = inspect.signature(keras.Model.fit)


@keras.saving.register_keras_serializable(package="r2kd_keras")
class R2KDDistiller(_compat.SymbolicBuildFix, keras.Model):
    """Trains `student` from `teacher` with R2KD (Kim et al., TKDE 2024).

    One training step on a batch `(x, y)`:
    `L = ce_weight * CE(student(x), y) + D(x) + D(A(x))`, where `A` is the
    augmenter (second view; omitted when None) and `D` the method's terms
    (for R2KD `value_weight * correlation_value_loss + rank_weight *
    spearman_rank_loss`) against the blended target
    `z = teacher_weight * teacher(x) + (1 - teacher_weight) * pruned_teacher(x)`.
    Both teachers are frozen and run in inference mode (the reference runs the
    pruned teacher in training mode; we do not). Terms that look across the
    batch are computed on the global batch under `tf.distribute` (logits are
    gathered across replicas), so a mirrored step equals a one-device step.

    `method` selects the method on the same trainer (see `r2kd_keras.methods`
    for each one's recipe defaults): `methods.R2KD()`, `KD()` (CE weight 0.1,
    KD weight 0.9, as in mdistiller), `DIST()`, `DKD()` (labels as targets,
    a warm-up of 20 epochs counted from the optimizer's steps), or
    `CrossEntropyOnly()` (the student alone; with an augmenter its CE also
    covers `A(x)` with the augmenter's mixed labels), or one of their names
    `"r2kd"`, `"kd"`, `"dist"`, `"dkd"`, `"none"`. Baselines apply their term
    to both views.

    Labels may be class ids or one-hot, and may change form between calls;
    compiled metrics always receive one-hot labels (use `"accuracy"` or the
    categorical metrics, not the sparse ones).

    Args:
        student: the `keras.Model` to train; outputs logits `(batch, C)`. May
            be wrapped by `r2kd_keras.pruning.prune_low_magnitude`: masks are
            then updated and re-applied at every step.
        teacher: a built, trained `keras.Model` with the same output shape,
            outputting logits. May be None only with a method without teacher.
        pruned_teacher: a model, or None to build one by pruning a copy of
            the teacher (`prune_teacher(teacher, teacher_prune_rate)`).
        teacher_prune_rate: L1 layer-wise pruning rate for the built copy;
            0 disables the blend.
        teacher_weight: weight of the full teacher in the blend (0.7).
        augmenter: the second view: a Keras image layer or any callable on a
            `{"images", "labels"}` dict (labels one-hot float), or on images;
            an object with `requires_teacher = True` is also given
            `teacher=fn` (CutMixPick). None: one view.
        method: a `methods.DistillationMethod`, or its name (`"r2kd"`).
        temperature, value_weight, rank_weight, rank_mode, rank_sharpness,
            ce_weight, distillation_weight: deprecated, kept for old code:
            settings of the method named by `method` (or `distillation`),
            None keeping its recipe default. A setting the method does not
            have is ignored, as before. Prefer `method=methods.R2KD(...)`.
        loss_kwargs: deprecated: further settings of a named baseline, e.g.
            `{"beta": 6.0}` for DKD (also `"warmup_epochs"`) or
            `{"beta": 1.0, "gamma": 1.0}` for DIST.
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
        check_numerics: stop with a clear error when the loss is NaN/Inf,
            naming what was not finite first: the images, the augmented view,
            the teacher's logits or the student's logits.
        allow_probabilities: by default a teacher or student whose final
            activation is softmax/sigmoid is refused, and so are outputs on
            the first training batch whose rows are all in [0, 1] and sum to
            1 (`fit` raises a ValueError). True lets such models through.
        distillation: deprecated alias of `method` (a name).

    Example:
    >>> distiller = R2KDDistiller(student=student, teacher=teacher,
    ...                           method=methods.R2KD(rank_mode="soft"),
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
        method="r2kd",
        temperature=None,
        value_weight=None,
        rank_weight=None,
        rank_mode=None,
        rank_sharpness=None,
        ce_weight=None,
        distillation_weight=None,
        loss_kwargs=None,
        teacher_dtype=None,
        pruned_teacher_training=False,
        fold_teachers=True,
        check_numerics=True,
        allow_probabilities=False,
        distillation=None,
        **kwargs,
    ):
        method = legacy_settings.resolve_method(method, distillation, loss_kwargs, dict(
            temperature=temperature, value_weight=value_weight, rank_weight=rank_weight,
            rank_mode=rank_mode, rank_sharpness=rank_sharpness, ce_weight=ce_weight,
            distillation_weight=distillation_weight))
        super().__init__(**kwargs)
        self.method = method
        checks.check_distiller_arguments(
            student, teacher, method, teacher_prune_rate, teacher_weight, augmenter)

        self.student = student
        self.teacher_prune_rate = teacher_prune_rate
        self.teacher_weight = float(teacher_weight)
        self.augmenter = augmenter
        self.teacher_dtype = teacher_dtype
        self.pruned_teacher_training = bool(pruned_teacher_training)
        self.fold_teachers = bool(fold_teachers)
        self.check_numerics = check_numerics
        self.allow_probabilities = bool(allow_probabilities)
        if not self.allow_probabilities:
            checks.refuse_probability_models(
                [("student", student), ("teacher", teacher), ("pruned_teacher", pruned_teacher)])
        self.num_classes = checks.check_models_fit(student, teacher)

        self.teacher = teacher
        self._explicit_pruned_teacher = pruned_teacher is not None
        self.pruned_teacher = teachers.prepare_teachers(
            student, teacher, pruned_teacher, teacher_prune_rate, teacher_weight)
        self._teacher_runners = teachers.teacher_runners(
            self.teacher, self.pruned_teacher, teacher_dtype, self.fold_teachers,
            self.pruned_teacher_training)
        self.steps_per_epoch = keras.Variable(0.0, trainable=False, name="steps_per_epoch")
        self._trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("loss", "ce_loss") + tuple(self.method.term_names)
        }
        # `call` is the student's, so the distiller is built when it is
        # (BackupAndRestore refuses unbuilt models).
        self.built = student.built

    @property
    def distillation(self):
        """The method's name (deprecated: read `method`)."""
        return self.method.name

    @property
    def loss_kwargs(self):
        """Deprecated: the method's `loss_kwargs`-style settings that differ
        from its recipe defaults."""
        return legacy_settings.changed_loss_kwargs(self.method)

    @property
    def metrics(self):
        # The public way of a custom train_step (Keras guide "Customizing
        # fit"): our own "loss" tracker replaces compile's, never updated here.
        others = [m for m in super().metrics if m.name != "loss"]
        return [self._trackers["loss"]] + others

    # ----------------------------------------------------------------- parts
    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def _target_logits(self, views, training=True):
        """Blended teacher logits per view (`teachers.blended_targets`)."""
        return teachers.blended_targets(
            self._teacher_runners, views, self.teacher_weight,
            self.pruned_teacher_training, training)

    def _second_view(self, images, one_hot):
        """`(A(x), labels of A(x))`; the labels are only used without teacher."""
        return augment_protocol.second_view(
            self.augmenter, images, one_hot,
            teacher=lambda x: ops.cast(self._teacher_runners[0](x, training=False), "float32"))

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
        method = self.method
        (clean_logits, _, _), *augmented = views
        parts = {"ce_loss": method.ce_weight * self._cross_entropy(one_hot, clean_logits)}
        if not method.uses_teacher:
            for student_logits, _, labels in augmented:
                parts["ce_loss"] += method.ce_weight * self._cross_entropy(labels, student_logits)
        else:
            step = ops.cast(self.optimizer.iterations, "float32")
            for student_logits, target_logits, _ in views:
                terms = method.loss_terms(
                    student_logits, target_logits, one_hot, step, self.steps_per_epoch
                )
                for name, value in terms.items():
                    parts[name] = parts.get(name, 0.0) + value
        total = sum(parts.values())
        regularization = self.student.losses
        if regularization:
            total += ops.sum(regularization)
        return total, parts

    def _unpack(self, data):
        x, y = checks.labelled_batch(data)
        return x, self._one_hot(x, y)

    def _one_hot(self, x, y, check_range=True):
        num_classes = self.num_classes or self.student.compute_output_spec(x).shape[-1]
        return labels_lib.to_one_hot(y, num_classes, check_range=check_range)

    def symbolic_build_batch(self, data_batch):
        # Metrics built on one-hot labels, the form `_record` gives them.
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data_batch)
        return data_batch if y is None else (x, self._one_hot(x, y, check_range=False))

    def _record(self, x, one_hot, student_logits, total, parts):
        replicas = self.distribute_strategy.num_replicas_in_sync
        batch = tf.cast(tf.shape(one_hot)[0], "float32") * replicas
        for name, value in {"loss": total, **parts}.items():
            self._trackers[name].update_state(value, sample_weight=batch)
        # One label form for the compiled metrics, whatever the batch held.
        return self.multi_worker_logs(self.compute_metrics(x, one_hot, student_logits))

    # ----------------------------------------------------------------- steps
    def train_step(self, data):
        x, one_hot = self._unpack(data)
        pruning.begin_pruning_step(self.student)
        images = [x]
        labels = [one_hot]
        if self.augmenter is not None:
            x_aug, y_aug = self._second_view(x, one_hot)
            images.append(x_aug)
            labels.append(y_aug)
        targets = [None] * len(images)
        if self.method.uses_teacher:
            targets = self._target_logits(images)

        variables = checks.trainable_student_variables(self.student)
        replicas = self.distribute_strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            # Separate student calls: its BatchNorm statistics stay per view,
            # as in the reference.
            student_logits = [
                ops.cast(self.student(view, training=True), "float32") for view in images
            ]
            views = [
                (gather_global_batch(logits),
                 None if target is None else gather_global_batch(target),
                 gather_global_batch(view_labels))
                for logits, target, view_labels in zip(student_logits, targets, labels)
            ]
            total, parts = self._loss_and_parts(views, gather_global_batch(one_hot))
            # Gradients are summed over replicas and every replica computes
            # the same global-batch loss, hence the division.
            scaled = self.optimizer.scale_loss(total / replicas)
        if not self.allow_probabilities:
            checks.assert_logits_on_first_step(
                self.optimizer.iterations, [("teacher", t) for t in targets[:1] if t is not None]
                + [("student", student_logits[0])]
            )
        if self.check_numerics:
            checks.assert_finite_step(total, [
                ("the images", images[:1]), ("the augmented images", images[1:]),
                ("the logits of the teacher", [t for t in targets if t is not None]),
                ("the logits of the student", student_logits),
            ])
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        # Momentum and weight decay would otherwise move pruned weights off 0.
        pruning.apply_pruning_masks(self.student)
        return self._record(x, one_hot, student_logits[0], total, parts)

    def test_step(self, data):
        x, one_hot = self._unpack(data)
        student_logits = ops.cast(self.student(x, training=False), "float32")
        target = (
            self._target_logits([x], training=False)[0] if self.method.uses_teacher else None
        )
        views = [(
            gather_global_batch(student_logits),
            None if target is None else gather_global_batch(target),
            None,
        )]
        total, parts = self._loss_and_parts(views, gather_global_batch(one_hot))
        return self._record(x, one_hot, student_logits, total, parts)

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, with two differences: a `tf.data.Dataset` is not
        shuffled by default (the pipeline shuffles itself; Keras would only
        warn), and a method whose warm-up is counted in epochs gets the fit's
        steps per epoch. Outputs refused as probabilities raise a ValueError."""
        bound = _FIT_SIGNATURE.bind(self, *args, **kwargs)
        arguments = bound.arguments
        if isinstance(arguments.get("x"), tf.data.Dataset):
            arguments.setdefault("shuffle", False)
        if self.method.needs_steps_per_epoch:
            callbacks = arguments.get("callbacks") or []
            if isinstance(callbacks, keras.callbacks.CallbackList):
                raise ValueError(
                    f"{self.method!r} counts its warm-up in epochs and needs a list of "
                    "callbacks, not a CallbackList; give a list or `warmup_steps`."
                )
            arguments["callbacks"] = [*callbacks, StepsPerEpoch()]
        try:
            return super().fit(*bound.args[1:], **bound.kwargs)
        except tf.errors.InvalidArgumentError as error:
            refused = checks.probabilities_error_from(error)
            if refused is None:
                raise
            raise refused from None

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
            "method": serialize(self.method),
            "teacher_dtype": self.teacher_dtype,
            "pruned_teacher_training": self.pruned_teacher_training,
            "fold_teachers": self.fold_teachers,
            "check_numerics": self.check_numerics,
            "allow_probabilities": self.allow_probabilities,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("student", "teacher", "pruned_teacher", "augmenter"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
