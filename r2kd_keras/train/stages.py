"""The runner's stages: training a student (or the teacher) with its
checkpoints, the teacher stage, evaluation and the TFLite export."""

import dataclasses
import os
import time

from r2kd_keras import augment as augment_lib
from r2kd_keras import export as export_lib
from r2kd_keras import inputs
from r2kd_keras import logs
from r2kd_keras import models as models_lib
from r2kd_keras import pruning
from r2kd_keras.callbacks import (
    AtomicBackupAndRestore,
    MetricsCSV,
    ScalarSummaries,
    SigtermGuard,
    StudentCheckpoint,
    Throughput,
    read_csv,
    replace_atomically,
)
from r2kd_keras.distiller import R2KDDistiller
from r2kd_keras.methods import DKD_WARMUP_EPOCHS
from r2kd_keras.distribute import is_chief
from r2kd_keras.optimizers import scaled_epochs
from r2kd_keras.train.config import EXPORTS
from r2kd_keras.train.data import steps_per_epoch_of
from r2kd_keras.train.models import load_teacher, make_optimizer
from r2kd_keras.train.outputs import TEACHER_FILE, StageOutputs
from r2kd_keras.train.report import plot_curves


def _fit(distiller, train_ds, val_ds, outputs, epochs, steps_per_epoch, batch_size,
         verbose, validation_freq):
    meter = Throughput(batch_size)
    # Outputs first, the backup last: a kill in between makes the resumed run
    # redo (and rewrite) that epoch rather than lose its row.
    callbacks = [
        MetricsCSV(outputs.path("metrics.csv")),
        StudentCheckpoint(outputs.write_dir),
        ScalarSummaries(outputs.path("logs")),
        meter,
        AtomicBackupAndRestore(os.path.join(outputs.directory, "backup"),
                               outputs.path("backup")),
    ]
    # train_ds repeats (load_data): only the validation passes end by running out.
    with SigtermGuard(), logs.end_of_data_expected():
        distiller.fit(train_ds, validation_data=val_ds if validation_freq else None,
                      validation_freq=validation_freq or 1, epochs=epochs,
                      steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                      verbose=verbose)
    return meter.images_per_sec


def _method_kwargs(config, distillation, epochs):
    """`R2KDDistiller` arguments of the method's options in `config`."""
    kwargs = {"teacher_prune_rate": config.teacher_prune_rate,
              "rank_mode": config.rank_mode,
              "pruned_teacher_training": config.pruned_teacher_training}
    if distillation == "dkd":
        # Scaled with the run's length like the lr milestones.
        warmup = config.dkd_warmup_epochs or scaled_epochs(DKD_WARMUP_EPOCHS, epochs)
        kwargs["loss_kwargs"] = {"warmup_epochs": warmup}
    return kwargs


def train_stage(config, strategy, *, student, teacher, info, train_ds, val_ds,
                directory, epochs, steps_per_epoch, distillation, augment):
    """Trains `student` (from `teacher` unless `distillation="none"`) and
    writes the stage's outputs to `directory`.

    Args:
        config: the `TrainConfig` (optimizer, R2KD and DKD options).
        strategy: the `tf.distribute` strategy; models must have been built
            in its scope.
        student: the model to train.
        teacher: the teacher or None.
        info: the dataset's `DatasetInfo`.
        train_ds: repeated training dataset.
        val_ds: validation dataset.
        directory: the stage's output folder.
        epochs: epochs to train.
        steps_per_epoch: steps per epoch.
        distillation: the method.
        augment: the second-view augmenter name.

    Returns:
        dict: `val_accuracy`, `val_loss`, `steps`, `images_per_sec`,
        `train_seconds`, and `model` (the trained student).

    Example:
    >>> stage = train_stage(config, strategy, student=s, teacher=t, ...)
    """
    outputs = StageOutputs(directory, is_chief(strategy))
    with strategy.scope():
        augmenter = augment_lib.make_augmenter(
            augment, info.num_classes, info.image_size, seed=config.seed,
            normalization=info.normalization)
        distiller = R2KDDistiller(
            student, teacher, augmenter=augmenter, distillation=distillation,
            teacher_dtype=config.teacher_dtype if teacher is not None else None,
            **_method_kwargs(config, distillation, epochs))
        float16 = any(layer.dtype_policy.name == "mixed_float16" for layer in student.layers)
        distiller.compile(
            optimizer=make_optimizer(config, steps_per_epoch, epochs, loss_scale=float16),
            metrics=["accuracy"], jit_compile=False)
    start = time.perf_counter()
    try:
        images_per_sec = _fit(distiller, train_ds, val_ds, outputs, epochs,
                              steps_per_epoch, config.batch_size, config.verbose,
                              config.validation_freq)
        seconds = time.perf_counter() - start
        rows = read_csv(outputs.path("metrics.csv"))
        last = rows[-1] if rows else {}
        if "val_accuracy" not in last:
            # The last epoch was not validated (validation_freq).
            with logs.end_of_data_expected():
                scores = distiller.evaluate(val_ds, verbose=0, return_dict=True)
            last = {"val_accuracy": scores["accuracy"], "val_loss": scores["loss"]}
        if outputs.chief:
            plot_curves(outputs.path("metrics.csv"), outputs.path("curves.png"),
                        title=f"{student.name} ({distillation})")
    finally:
        outputs.cleanup()
    return {
        "val_accuracy": last.get("val_accuracy"),
        "val_loss": last.get("val_loss"),
        "steps": int(distiller.optimizer.iterations.numpy()),
        "images_per_sec": images_per_sec,
        "train_seconds": seconds,
        "model": student,
    }


_LOOK_UP = object()


def teacher_stage(config, strategy, info, train_ds, val_ds, input_shape,
                  given=_LOOK_UP):
    """Uses the trained teacher the user gave (`teacher_model`, a `keras_hub:`
    preset), loads `config.teacher_weights`, or reuses / trains and saves
    `output_dir/teacher.keras`.

    Args:
        config: the `TrainConfig`.
        strategy: the strategy (the teacher is built in its scope).
        info: the dataset's `DatasetInfo`.
        train_ds: repeated training dataset.
        val_ds: validation dataset.
        input_shape: image shape.
        given: what `inputs.given_teacher` returned, when already called;
            by default it is called here.

    Returns:
        `(teacher, summary)`: the model and a dict with its `val_accuracy`
        (None when loaded) and where it came from.

    Example:
    >>> teacher, summary = teacher_stage(config, strategy, info, train, val, (32, 32, 3))
    """
    if given is _LOOK_UP:
        with strategy.scope():
            given = inputs.given_teacher(config, info, input_shape)
    if given is not None:
        return given, {"source": config.teacher_model or config.teacher,
                       "val_accuracy": None}
    if config.teacher_checkpoint:
        with strategy.scope():
            teacher = models_lib.get_model(config.teacher, info.num_classes, input_shape,
                                           torch_checkpoint=config.teacher_checkpoint)
        return teacher, {"source": config.teacher_checkpoint, "val_accuracy": None}
    saved = os.path.join(config.output_dir, TEACHER_FILE)
    path = config.teacher_weights or (saved if os.path.isfile(saved) else None)
    if path:
        with strategy.scope():
            teacher = load_teacher(path, config.teacher, info.num_classes, input_shape,
                                   info.normalization)
        return teacher, {"source": path, "val_accuracy": None}
    epochs = config.teacher_epochs or config.epochs
    steps = steps_per_epoch_of(config, info)
    with strategy.scope():
        teacher = models_lib.get_model(config.teacher, info.num_classes, input_shape,
                                       normalization=info.normalization)
    stage = train_stage(
        config, strategy, student=teacher, teacher=None, info=info,
        train_ds=train_ds, val_ds=val_ds,
        directory=os.path.join(config.output_dir, "teacher"), epochs=epochs,
        steps_per_epoch=steps, distillation="none", augment="none")
    outputs = StageOutputs(config.output_dir, is_chief(strategy))
    replace_atomically(outputs.path(TEACHER_FILE), teacher.save)
    outputs.cleanup()
    return teacher, {"source": "trained", "val_accuracy": stage["val_accuracy"],
                     "seconds": stage["train_seconds"]}


def export_student(student, export, path, val_ds):
    """Writes `student` to `path` as `.tflite`, first stripping pruning
    (shrinking a filter-pruned one to its smaller dense network) if it still
    has pruning wrappers.

    Args:
        student: the trained student: already `pruning.finalize`d (as the
            runner passes it, so the model is finalized once) or still
            wrapped.
        export: a key of `EXPORTS` other than `"none"`.
        path: the `.tflite` file.
        val_ds: batched `(images, labels)`: int8 calibration and the LiteRT
            accuracy check.

    Returns:
        The `export.ExportReport` as a dict.

    Example:
    >>> report = export_student(student, "dynamic", "run/student.tflite", val_ds)
    """
    model = pruning.finalize(student) if pruning.pruning_wrappers(student) else student
    quantize = EXPORTS[export]
    with logs.native_output_kept_aside(logs.is_quiet()):  # the converter's C++ chatter
        report = export_lib.to_tflite(
            model, path, quantize=None if quantize == "none" else quantize,
            representative_data=val_ds if quantize == "int8" else None,
            verify=val_ds, latency_runs=20)
    return {k: v for k, v in dataclasses.asdict(report).items() if k != "notes"}


def evaluate(model, val_ds, strategy):
    """Top-1 accuracy of `model` on `val_ds` (global mean under `strategy`).

    Args:
        model: a classifier returning logits.
        val_ds: batched `(images, labels)`.
        strategy: the strategy the model was built under.

    Returns:
        float in [0, 1].

    Example:
    >>> evaluate(teacher, val_ds, tf.distribute.get_strategy())
    """
    with strategy.scope():
        runner = R2KDDistiller(model, None, distillation="none")
        runner.compile(optimizer="sgd", metrics=["accuracy"], jit_compile=False)
    with logs.end_of_data_expected():
        return float(runner.evaluate(val_ds, verbose=0, return_dict=True)["accuracy"])
