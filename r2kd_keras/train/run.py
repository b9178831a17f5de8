"""`run(config)`: one experiment from data to exported students."""

import dataclasses
import os
import time

import keras
import tensorflow as tf

from r2kd_keras import inputs
from r2kd_keras import pruning
from r2kd_keras.distribute import check_batch, is_chief, make_strategy, shard_by_data
from r2kd_keras.train.data import load_data, steps_per_epoch_of
from r2kd_keras.train.models import build_student
from r2kd_keras.train.outputs import prepare_output_dir
from r2kd_keras.train.report import write_results
from r2kd_keras.train.stages import evaluate, export_student, teacher_stage, train_stage


def _resolve_methods(config, methods):
    """`{method: augmenter name}`; `None` for `config.distillation` alone."""
    if not methods:
        return {config.distillation: config.augment}
    if not isinstance(methods, dict):
        methods = dict.fromkeys(methods)
    return {method: augment or config.augment for method, augment in methods.items()}


def run(config, strategy=None, methods=None):
    """Runs one experiment (or the same student with several methods).

    Args:
        config: a `TrainConfig`.
        strategy: a ready strategy; None builds `config.strategy`.
        methods: None: `config.distillation` only, its outputs directly in
            `output_dir`; a list of methods, or a dict from method to its
            augmenter name (None: `config.augment`): one sub-folder each,
            sharing the teacher (for comparison tables).

    Returns:
        dict, also written (on the chief) to `output_dir/results.json`:
        `teacher` (accuracy, source), `students` (per method: `accuracy`,
        `sparsity` (share of zero weights in the exported student), `params`
        and `params_before_pruning` (equal unless filter pruning cut the
        network down), `export`, `steps`, `images_per_sec`, `train_seconds`),
        `wall_seconds`, `config`.

    Raises:
        ValueError: bad settings, or `output_dir` holds a run with other
            settings (see `outputs.prepare_output_dir`).
        CheckpointWriteError: `output_dir` cannot be written, or a write
            failed during training (the previous checkpoint is intact).

    Example:
    >>> results = run(TrainConfig(dataset="fashion_mnist", teacher="resnet20",
    ...                           student="resnet8", epochs=3, output_dir="/tmp/r"))
    >>> results["students"]["r2kd"]["accuracy"]
    """
    start = time.perf_counter()
    config.validate()
    strategy = strategy or make_strategy(config.strategy, config.cpu_replicas, config.tpu)
    check_batch(config.batch_size, strategy)
    train_ds, val_ds, info = load_data(config)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        train_ds, val_ds = shard_by_data(train_ds), shard_by_data(val_ds)
    input_shape = (info.image_size, info.image_size, info.channels)
    steps = steps_per_epoch_of(config, info)
    single = not methods
    methods = _resolve_methods(config, methods)
    with strategy.scope():  # checked before anything is written
        given = (inputs.given_teacher(config, info, input_shape)
                 if any(m != "none" for m in methods) else None)
    chief = is_chief(strategy)
    if chief:
        prepare_output_dir(config, methods)
    keras.utils.set_random_seed(config.seed)

    teacher, teacher_summary = None, None
    if any(m != "none" for m in methods):
        teacher, teacher_summary = teacher_stage(
            config, strategy, info, train_ds, val_ds, input_shape, given=given)
        if teacher_summary["val_accuracy"] is None:
            teacher_summary["val_accuracy"] = evaluate(teacher, val_ds, strategy)
        if given is not None or config.teacher_checkpoint or config.teacher_weights:
            teacher_summary["warning"] = inputs.teacher_warning(
                teacher_summary["val_accuracy"], info)
    students = {}
    for method, augment in methods.items():
        directory = config.output_dir if single else os.path.join(config.output_dir, method)
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            student = build_student(config, info.num_classes, input_shape,
                                    steps * config.epochs, info.normalization)
        stage = train_stage(
            config, strategy, student=student, teacher=teacher, info=info,
            train_ds=train_ds, val_ds=val_ds, directory=directory,
            epochs=config.epochs, steps_per_epoch=steps, distillation=method,
            augment=augment)
        summary = {"augment": augment}
        summary.update({k: stage[k] for k in ("steps", "images_per_sec", "train_seconds")})
        summary["accuracy"] = stage["val_accuracy"]
        deployed = pruning.finalize(student)
        summary["sparsity"] = pruning.get_sparsity(deployed)["total"]
        summary["params"] = deployed.count_params()
        # The wrapped student minus what its wrappers add (masks, step): no
        # second copy of the model, as strip_pruning would make.
        summary["params_before_pruning"] = student.count_params() - sum(
            w.count_params() - w.layer.count_params()
            for w in pruning.pruning_wrappers(student))
        summary["export"] = None
        if chief and config.export != "none":
            summary["export"] = export_student(
                deployed, config.export, os.path.join(directory, "student.tflite"),
                val_ds)
        students[method] = summary
    results = {
        "dataset": info.name,
        "num_classes": info.num_classes,
        "class_names": info.class_names,
        "replicas": strategy.num_replicas_in_sync,
        "teacher": teacher_summary,
        "students": students,
        "wall_seconds": time.perf_counter() - start,
        "config": dataclasses.asdict(config),
    }
    if chief:
        write_results(results, os.path.join(config.output_dir, "results.json"))
    return results
