"""The experiment runner the example scripts share.

One call of `run(config)` is one experiment of the paper's recipe: build the
`tf.distribute` strategy, load the data, load (or first train and save) the
teacher, distil the student with R2KD or a baseline (optionally pruning it),
and write everything to `config.output_dir`: BackupAndRestore state (a killed
run resumes from its last finished epoch when the same command is run again),
best and last student checkpoints, TensorBoard logs, a CSV of metrics,
`results.json`, a PNG of the training curves and the exported `.tflite`.

The example scripts are a few lines each: `define_flags(**dataset_defaults)`
then `absl.app.run(main)`.

Recipe (`docs`: r2kd-method.md section 5): SGD, momentum 0.9, weight decay
5e-4 (PyTorch's coupled L2, see `L2SGD`), batch 64, lr 0.05 for 240 epochs,
x0.1 at epochs 150, 180 and 210. With other `epochs` the milestones move
proportionally (`milestone_epochs`); with another global batch the learning
rate scales linearly (`scaled_learning_rate`).
"""

import csv
import dataclasses
import json
import os
import shutil
import signal
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from r2kd_keras import augment as augment_lib
from r2kd_keras import data as data_lib
from r2kd_keras import export as export_lib
from r2kd_keras import inputs
from r2kd_keras import logs
from r2kd_keras import models as models_lib
from r2kd_keras import pruning
from r2kd_keras.distiller import R2KDDistiller
from r2kd_keras.models import external, registry

REFERENCE_BATCH = 64
REFERENCE_EPOCHS = 240
REFERENCE_MILESTONES = (150, 180, 210)
LR_DECAY = 0.1

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
DISTILLATIONS = ("r2kd", "kd", "dist", "dkd", "none")
AUGMENTS = ("none", "mixup", "cutmix", "cutout", "randaugment", "autoaugment",
            "cutmixpick")
PRUNE_SCHEDULES = ("constant", "polynomial")
EXPORTS = {"none": None, "float": "none", "dynamic": "dynamic", "int8": "int8"}
DATASETS = ("fashion_mnist", "cifar100", "tiny_imagenet", "fgvr", "imagenet",
            "image_folder")
TEACHER_FILE = "teacher.keras"
_LOOK_UP = object()


# ----------------------------------------------------------------- config
@dataclasses.dataclass
class TrainConfig:
    """Everything one experiment needs; the absl flags mirror these fields.

    Args:
        dataset: one of `DATASETS`.
        data_dir: where the dataset lives (loader-specific; None: its default);
            for `"image_folder"`, the folder of class sub-folders.
        val_dir: `"image_folder"` only: a validation folder with the same
            class sub-folders; None: hold out `val_fraction` of `data_dir`.
        val_fraction: `"image_folder"` only: share of each class held out.
        fgvr_dataset: the tfds name used when `dataset="fgvr"`.
        image_size: served image size; None: the dataset's native size (32 for
            Fashion-MNIST, padded from 28 so the CIFAR models run).
        teacher: name of the teacher: the zoo's, `keras:<Application>` or
            `keras_hub:<preset dir or name>` (a KerasHub preset is a trained
            teacher, used as is).
        teacher_model: a `.keras` file of a trained teacher of any
            architecture, loaded as is (`teacher` is then ignored).
        teacher_weights: a `.keras` (or `.weights.h5`) file of that teacher;
            None trains the teacher first and saves it as
            `output_dir/teacher.keras` (reused on the next run).
        teacher_epochs: epochs of that teacher training; None: `epochs`.
        student: name of the student (the same naming as `teacher`), built
            for the data's classes and image shape, logits out.
        student_weights: `keras:` students only: `"imagenet"` starts from an
            ImageNet backbone (a new classification head); None: random.
        distillation: `"r2kd"`, `"kd"`, `"dist"`, `"dkd"` or `"none"`.
        augment: the second view of R2KD (see `augment.make_augmenter`).
        teacher_prune_rate: rate of the pruned teacher copy of R2KD.
        teacher_dtype: None, `"auto"`, `"bfloat16"` or `"float16"`.
        student_sparsity: final sparsity of the student's kernels; 0: dense.
        prune_schedule: `"constant"` or `"polynomial"` (cubic, reaches the
            target at 75% of the training steps).
        epochs: training epochs of the student.
        batch_size: the global batch (split evenly over the replicas).
        lr: learning rate at the recipe's batch of 64; scaled linearly.
        weight_decay: PyTorch-style L2 weight decay of every variable.
        momentum: SGD momentum.
        seed: seed of the data order, augmentation and initialisation.
        output_dir: where every output goes.
        export: `"none"`, `"float"`, `"dynamic"` or `"int8"`.
        mixed_precision: student in mixed_bfloat16 (CPU) / mixed_float16 (GPU).
        strategy: `"default"`, `"mirrored"`, `"multiworker"` or `"tpu"`.
        cpu_replicas: with `strategy="mirrored"`, this many logical CPU
            devices instead of the GPUs (testing without GPUs).
        tpu: TPU name or address for `strategy="tpu"` ("" for a local TPU VM).
        train_subset: use only this many training images.
        val_subset: evaluate on only this many validation images.
        steps_per_epoch: steps per epoch; None: one pass over the training set.
        validation_freq: validate every this many epochs; 0: once, after
            training (no `best.keras` then).
        verbose: Keras `fit` verbosity.

    Example:
    ```python
    results = run(TrainConfig(dataset="fashion_mnist", teacher="resnet20",
                              student="resnet8", epochs=2, output_dir="/tmp/run"))
    ```
    """

    dataset: str = "cifar100"
    data_dir: str = None
    val_dir: str = None
    val_fraction: float = 0.2
    fgvr_dataset: str = "caltech_birds2011"
    image_size: int = None
    teacher: str = "resnet32x4"
    teacher_model: str = None
    teacher_weights: str = None
    teacher_epochs: int = None
    student: str = "resnet8x4"
    student_weights: str = None
    distillation: str = "r2kd"
    augment: str = "cutmix"
    teacher_prune_rate: float = 0.1
    teacher_dtype: str = None
    student_sparsity: float = 0.0
    prune_schedule: str = "constant"
    epochs: int = REFERENCE_EPOCHS
    batch_size: int = REFERENCE_BATCH
    lr: float = 0.05
    weight_decay: float = 5e-4
    momentum: float = 0.9
    seed: int = 42
    output_dir: str = "runs/r2kd"
    export: str = "dynamic"
    mixed_precision: bool = False
    strategy: str = "default"
    cpu_replicas: int = None
    tpu: str = ""
    train_subset: int = None
    val_subset: int = None
    steps_per_epoch: int = None
    validation_freq: int = 1
    verbose: int = 2

    def validate(self):
        """Raises `ValueError` naming the first bad field; returns self."""
        choices = {
            "dataset": DATASETS, "distillation": DISTILLATIONS, "augment": AUGMENTS,
            "prune_schedule": PRUNE_SCHEDULES, "export": tuple(EXPORTS),
            "strategy": STRATEGIES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not known; use one of "
                    f"{', '.join(allowed)}."
                )
        for name in ("teacher", "student"):
            check_model_name(name, getattr(self, name))
        for name in ("epochs", "batch_size"):
            _check_positive_int(name, getattr(self, name))
        for name in ("teacher_epochs", "train_subset", "val_subset",
                     "steps_per_epoch", "cpu_replicas", "image_size"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        if not isinstance(self.validation_freq, int) or self.validation_freq < 0:
            raise ValueError(
                f"validation_freq={self.validation_freq!r} must be an int >= 0.")
        if not 0.0 <= self.student_sparsity < 1.0:
            raise ValueError(
                f"student_sparsity={self.student_sparsity!r} must be in [0, 1)."
            )
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr!r} must be positive.")
        inputs.check_config(self)
        if self.teacher_weights and not os.path.isfile(self.teacher_weights):
            raise FileNotFoundError(
                f"teacher_weights={self.teacher_weights!r} does not exist. Pass a "
                "`.keras` file saved from the teacher, or omit the flag to train "
                "the teacher first."
            )
        return self


def _check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int.")


def check_model_name(role, name):
    """Raises `ValueError` unless `name` is a model of the zoo or a valid
    `keras:` / `keras_hub:` name.

    Args:
        role: what the model is for (`"teacher"`, `"student"`), for the message.
        name: the name to check.

    Example:
    >>> check_model_name("student", "resnet8")
    """
    if external.is_external(name):
        return external.check_name(role, name)
    known = models_lib.list_models() + list(registry._ALIASES)
    if name not in known:
        raise ValueError(
            f"{role}={name!r} is not a model of the zoo; use one of "
            f"{', '.join(known)}."
        )


# ---------------------------------------------------------------- strategy
def make_strategy(name="default", cpu_replicas=None, tpu=""):
    """Builds the `tf.distribute` strategy for `name`.

    Args:
        name: `"default"` (one device), `"mirrored"` (all local GPUs, or
            `cpu_replicas` logical CPU devices), `"multiworker"`
            (`MultiWorkerMirroredStrategy` configured by the `TF_CONFIG`
            environment variable) or `"tpu"` (`TPUStrategy` on the TPU that
            `TPUClusterResolver(tpu)` finds).
        cpu_replicas: for `"mirrored"`: split the CPU into this many logical
            devices and mirror over them; must be called before TensorFlow
            initialises its devices.
        tpu: TPU name or `grpc://` address; `""` for a TPU VM.

    Returns:
        A `tf.distribute.Strategy`.

    Example:
    >>> strategy = make_strategy("mirrored", cpu_replicas=2)
    >>> strategy.num_replicas_in_sync
    2
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if cpu_replicas:
            return tf.distribute.MirroredStrategy(_logical_cpus(cpu_replicas))
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "strategy='multiworker' needs the TF_CONFIG environment variable "
                "(cluster spec and this task's type and index); it is not set. "
                "See https://www.tensorflow.org/guide/distributed_training."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy={name!r} is not known; use one of {', '.join(STRATEGIES)}.")


def _logical_cpus(count):
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:
        # Devices are initialised already: use them if there are enough.
        pass
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < count:
        raise ValueError(
            f"cpu_replicas={count} needs {count} logical CPU devices but "
            f"TensorFlow already started with {len(devices)}; set it before any "
            "TensorFlow operation runs."
        )
    return [d.name for d in devices[:count]]


def is_chief(strategy):
    """Whether this task writes the outputs (always True outside multi-worker).

    Args:
        strategy: a `tf.distribute.Strategy`.

    Returns:
        bool: the task is the `chief`, or worker 0 of a cluster without chief.

    Example:
    >>> is_chief(tf.distribute.get_strategy())
    True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    cluster = resolver.cluster_spec().as_dict()
    return (task_type in (None, "chief")
            or (task_type == "worker" and task_id == 0 and "chief" not in cluster))


def check_batch(batch_size, strategy):
    """Per-replica batch size; `ValueError` if the replicas do not divide it.

    Args:
        batch_size: the global batch.
        strategy: a `tf.distribute.Strategy`.

    Returns:
        int: `batch_size // strategy.num_replicas_in_sync`.

    Example:
    >>> check_batch(64, tf.distribute.get_strategy())
    64
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"batch_size={batch_size} (the global batch) is not divisible by the "
            f"{replicas} replicas of the strategy; use a multiple of {replicas}, "
            f"e.g. {max(replicas, batch_size // replicas * replicas)}."
        )
    return batch_size // replicas


# ------------------------------------------------------------ optimisation
def scaled_learning_rate(lr, batch_size, reference_batch=REFERENCE_BATCH):
    """Linear scaling rule: `lr * batch_size / reference_batch`.

    Args:
        lr: learning rate at `reference_batch` (the recipe's 0.05 at 64).
        batch_size: the global batch actually used.
        reference_batch: the batch `lr` was tuned for.

    Returns:
        float, the learning rate for `batch_size`.

    Example:
    >>> scaled_learning_rate(0.05, 256)
    0.2
    """
    return lr * batch_size / reference_batch


def milestone_epochs(epochs, milestones=REFERENCE_MILESTONES, reference=REFERENCE_EPOCHS):
    """The decay epochs of the recipe moved proportionally to `epochs`.

    `round(epochs * m / 240)` for m in (150, 180, 210), kept >= 1, so 240
    epochs give (150, 180, 210) and 24 give (15, 18, 21).

    Args:
        epochs: total epochs of the run.
        milestones: the reference's decay epochs.
        reference: the reference's total epochs.

    Returns:
        list of int: first epoch (0-based) trained at each lower rate.

    Example:
    >>> milestone_epochs(24)
    [15, 18, 21]
    """
    return [max(1, int(round(epochs * m / reference))) for m in milestones]


def step_decay(base_lr, epochs, steps_per_epoch, gamma=LR_DECAY):
    """PyTorch `MultiStepLR` of the recipe as a Keras schedule over steps.

    Args:
        base_lr: learning rate of the first epochs.
        epochs: total epochs (milestones from `milestone_epochs`).
        steps_per_epoch: optimizer steps per epoch.
        gamma: factor at each milestone.

    Returns:
        A `keras.optimizers.schedules.PiecewiseConstantDecay`: `base_lr *
        gamma**k` during the epochs after the k-th milestone.

    Example:
    >>> schedule = step_decay(0.05, 240, 100)
    >>> float(schedule(15000))  # first step of epoch 150
    0.005
    """
    # Keras applies values[i+1] once step > boundaries[i]; `iterations` is
    # e * steps_per_epoch on the first step of epoch e.
    boundaries = [e * steps_per_epoch - 1 for e in milestone_epochs(epochs)]
    values = [base_lr * gamma**k for k in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


@keras.saving.register_keras_serializable(package="r2kd_keras")
class L2SGD(keras.optimizers.SGD):
    """SGD with PyTorch's weight decay: `g <- g + l2 * w` before momentum.

    Keras's own `SGD(weight_decay=...)` is decoupled (it shrinks the weights
    by `lr * weight_decay` outside the momentum buffer, like AdamW), which is
    about 10x weaker than PyTorch's coupled form at momentum 0.9. The reference
    trains with PyTorch `SGD(momentum=0.9, weight_decay=5e-4)`, which this
    reproduces: the term is added to the gradient after the cross-replica sum,
    so it counts once under `tf.distribute`. It applies to every trainable
    variable, biases and BatchNorm included, as PyTorch's does.

    Args:
        learning_rate: float or schedule.
        momentum: momentum (0.9 in the recipe).
        l2: coefficient of the coupled L2 term (5e-4 in the recipe).
        **kwargs: other `keras.optimizers.SGD` arguments.

    Example:
    >>> optimizer = L2SGD(learning_rate=0.05, momentum=0.9, l2=5e-4)
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, l2=5e-4, name="l2_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, name=name, **kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        if self.l2:
            gradient = keras.ops.add(
                keras.ops.cast(gradient, variable.dtype),
                keras.ops.multiply(keras.ops.cast(self.l2, variable.dtype), variable),
            )
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "l2": self.l2}


def make_optimizer(config, steps_per_epoch, epochs=None, loss_scale=False):
    """The recipe's optimizer for `config`.

    Args:
        config: a `TrainConfig` (lr, batch_size, momentum, weight_decay).
        steps_per_epoch: steps per epoch, for the step decay.
        epochs: total epochs; None: `config.epochs`.
        loss_scale: wrap in `keras.optimizers.LossScaleOptimizer` (float16).

    Returns:
        An `L2SGD` (or its loss-scaled wrapper).

    Example:
    >>> optimizer = make_optimizer(TrainConfig(), steps_per_epoch=781)
    """
    lr = scaled_learning_rate(config.lr, config.batch_size)
    schedule = step_decay(lr, epochs or config.epochs, steps_per_epoch)
    optimizer = L2SGD(schedule, momentum=config.momentum, l2=config.weight_decay)
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scale else optimizer


def student_policy():
    """`"mixed_float16"` when a GPU is visible, else `"mixed_bfloat16"`."""
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


# -------------------------------------------------------------------- data
def load_data(config, batch_size=None):
    """`(train_ds, val_ds, info)` of `config.dataset`, fails fast if absent.

    Args:
        config: a `TrainConfig`.
        batch_size: global batch; None: `config.batch_size`.

    Returns:
        The loader's `(train_ds, val_ds, info)`; `train_ds` is repeated (the
        run fixes `steps_per_epoch`) and `val_ds` cut to `val_subset`.

    Example:
    >>> train_ds, val_ds, info = load_data(TrainConfig(dataset="fashion_mnist"))
    """
    batch_size = batch_size or config.batch_size
    common = dict(batch_size=batch_size, seed=config.seed)
    if config.image_size:
        common["image_size"] = config.image_size
    name = config.dataset
    if name == "fashion_mnist":
        common.setdefault("image_size", 32)
        train_ds, val_ds, info = data_lib.fashion_mnist(
            data_dir=config.data_dir, channels=3, train_subset=config.train_subset,
            **common)
    elif name == "cifar100":
        common.pop("image_size", None)
        train_ds, val_ds, info = data_lib.cifar100(data_dir=config.data_dir, **common)
    elif name == "tiny_imagenet":
        if not config.data_dir:
            raise ValueError(
                "dataset='tiny_imagenet' needs data_dir: the `tiny-imagenet-200` "
                "folder (from http://cs231n.stanford.edu/tiny-imagenet-200.zip) "
                "or the folder containing it."
            )
        train_ds, val_ds, info = data_lib.tiny_imagenet(config.data_dir, **common)
    elif name == "fgvr":
        train_ds, val_ds, info = data_lib.fgvr(
            config.fgvr_dataset, data_dir=config.data_dir, **common)
    elif name == "imagenet":
        train_ds, val_ds, info = data_lib.imagenet(data_dir=config.data_dir, **common)
    elif name == "image_folder":
        common.setdefault("image_size", inputs.default_image_size(config.teacher_model))
        train_ds, val_ds, info = data_lib.image_folder(
            config.data_dir, val_dir=config.val_dir, val_fraction=config.val_fraction,
            **common)
    else:
        raise ValueError(f"dataset={name!r} is not known; use one of {', '.join(DATASETS)}.")
    if config.val_subset:
        val_ds = val_ds.take(-(-config.val_subset // batch_size))
    return train_ds.repeat(), val_ds, info


def steps_per_epoch_of(config, info):
    """Steps per epoch: `config.steps_per_epoch`, else one pass (last partial
    batch dropped) over the training images in use."""
    if config.steps_per_epoch:
        return config.steps_per_epoch
    examples = info.train_examples
    if config.train_subset:
        examples = min(examples, config.train_subset)
    steps = examples // config.batch_size
    if steps < 1:
        raise ValueError(
            f"The training set has {examples} images, fewer than one batch of "
            f"batch_size={config.batch_size}; lower batch_size."
        )
    return steps


def _shard_by_data(dataset):
    # In-memory and file-list datasets have no files to shard: each worker
    # reads everything and keeps its replicas' part of every global batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return dataset.with_options(options)


# ----------------------------------------------------------------- models
def load_teacher(path, name, num_classes, input_shape):
    """Builds the zoo model `name` and loads the weights in `path` into it.

    Args:
        path: a `.keras` or `.weights.h5` file.
        name: the teacher's zoo name.
        num_classes: classes of the dataset.
        input_shape: `(height, width, channels)` of the dataset's images.

    Returns:
        The teacher, weights loaded.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file's weights do not fit that architecture.

    Example:
    >>> teacher = load_teacher("teacher.keras", "resnet32x4", 100, (32, 32, 3))
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"teacher_weights={path!r} does not exist.")
    teacher = models_lib.get_model(name, num_classes, input_shape)
    try:
        teacher.load_weights(path)
    except (ValueError, KeyError, OSError) as error:
        raise ValueError(
            f"teacher_weights={path!r} do not fit teacher={name!r} with "
            f"{num_classes} classes and input shape {tuple(input_shape)}: {error} "
            "Pass the --teacher architecture and the dataset the file was trained "
            "with, or omit --teacher_weights to train a teacher."
        ) from None
    return teacher


def build_student(config, num_classes, input_shape, total_steps):
    """The student of `config`, in mixed precision and wrapped for pruning
    when asked.

    Args:
        config: a `TrainConfig`.
        num_classes: classes of the dataset.
        input_shape: image shape.
        total_steps: training steps of the run (sets the pruning schedule).

    Returns:
        A `keras.Model`.

    Example:
    >>> student = build_student(TrainConfig(student="resnet8"), 10, (32, 32, 3), 1000)
    """
    previous = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy(student_policy())
    try:
        student = models_lib.get_model(config.student, num_classes, input_shape,
                                       weights=config.student_weights)
    finally:
        keras.config.set_dtype_policy(previous)
    if not config.student_sparsity:
        return student
    # tfmot's default frequency (100) would never prune a short run.
    frequency = max(1, min(100, total_steps // 10))
    if config.prune_schedule == "constant":
        schedule = pruning.ConstantSparsity(config.student_sparsity, 0, frequency=frequency)
    else:
        end = max(frequency, int(total_steps * 0.75) // frequency * frequency)
        schedule = pruning.PolynomialDecay(0.0, config.student_sparsity, 0, end,
                                           frequency=frequency)
    return pruning.prune_low_magnitude(student, schedule)


# -------------------------------------------------------------- callbacks
class TrainingInterrupted(Exception):
    """Raised in the training loop when the process receives SIGTERM."""


class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` for multi-worker runs: every worker restores from
    the chief's `backup_dir`; a non-chief saves to its own `write_dir` (the
    saving must run on all workers, the files are kept by the chief only).

    Args:
        backup_dir: the shared backup folder, read by all.
        write_dir: where this worker saves; `backup_dir` for the chief.

    Example:
    >>> callback = WorkerBackupAndRestore("run/backup", "/tmp/worker1/backup")
    """

    def __init__(self, backup_dir, write_dir=None):
        # double_checkpoint: a file cut by SIGKILL mid-save falls back to the
        # previous epoch's copy.
        super().__init__(backup_dir, delete_checkpoint=False, double_checkpoint=True)
        self._read = (self._weights_path, self._training_metadata_path)
        if write_dir and write_dir != backup_dir:
            self.backup_dir = write_dir
            self._weights_path = os.path.join(write_dir, "latest.weights.h5")
            self._training_metadata_path = os.path.join(
                write_dir, "training_metadata.json")
            self._prev_weights_path = f"{self._weights_path}.bkp"
            self._prev_training_metadata_path = f"{self._training_metadata_path}.bkp"

    def _load_model(self):
        write = (self._weights_path, self._training_metadata_path)
        self._weights_path, self._training_metadata_path = self._read
        try:
            super()._load_model()
        finally:
            self._weights_path, self._training_metadata_path = write


class StudentCheckpoint(keras.callbacks.Callback):
    """Saves the distiller's student as `last.keras` after every epoch and
    as `best.keras` when `monitor` improves (the best value survives resume
    in `best.json`).

    Args:
        directory: where the files go.
        monitor: a metric of the epoch logs (higher is better).

    Example:
    >>> distiller.fit(ds, callbacks=[StudentCheckpoint("run")])
    """

    def __init__(self, directory, monitor="val_accuracy"):
        super().__init__()
        self.directory = directory
        self.monitor = monitor
        self._best_file = os.path.join(directory, "best.json")

    def _best(self):
        if os.path.isfile(self._best_file):
            with open(self._best_file) as f:
                return json.load(f)[self.monitor]
        return -float("inf")

    def on_epoch_end(self, epoch, logs=None):
        student = self.model.student
        student.save(os.path.join(self.directory, "last.keras"))
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self._best():
            student.save(os.path.join(self.directory, "best.keras"))
            with open(self._best_file, "w") as f:
                json.dump({self.monitor: float(value), "epoch": epoch}, f)


class Throughput(keras.callbacks.Callback):
    """Training images per second, timed from the end of each epoch's first
    batch (which pays for tracing) to the end of its last.

    Args:
        batch_size: the global batch.

    Example:
    >>> meter = Throughput(64); model.fit(ds, callbacks=[meter]); meter.images_per_sec
    """

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self.images = 0
        self.seconds = 0.0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if batch > 0:
            self.images += self.batch_size * (batch - self._last_batch)
            self.seconds += now - self._last
        self._last, self._last_batch = now, batch

    @property
    def images_per_sec(self):
        """Measured images/s, or None before two batches of an epoch ran."""
        return self.images / self.seconds if self.seconds else None


class MetricsCSV(keras.callbacks.Callback):
    """One CSV row of epoch metrics per epoch, safe across kills and resumes.

    The whole (small) file is rewritten atomically after every epoch, so a
    SIGKILL never leaves a half-written file, and when a resumed run starts
    at epoch `e` the rows of epochs >= `e` (written after the last backup)
    are dropped, so every epoch appears once. Missing values are empty.

    Args:
        path: the CSV file.

    Example:
    >>> model.fit(ds, epochs=10, callbacks=[MetricsCSV("run/metrics.csv")])
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self._rows = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._rows is None:
            self._rows = [row for row in _read_csv(self.path) if row["epoch"] < epoch]

    def on_epoch_end(self, epoch, logs=None):
        self._rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        keys = ["epoch"] + sorted({k for row in self._rows for k in row} - {"epoch"})
        temporary = f"{self.path}.tmp"
        with open(temporary, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, restval="")
            writer.writeheader()
            for row in self._rows:
                writer.writerow({**row, "epoch": int(row["epoch"])})
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)


class ScalarSummaries(keras.callbacks.Callback):
    """Writes the epoch metrics as TensorBoard scalars (`train/` and
    `validation/` runs, like `keras.callbacks.TensorBoard`) with TensorFlow's
    own summary ops, so it works without the `tensorboard` package (which
    `keras.callbacks.TensorBoard` needs and tensorflow-cpu 2.21 does not
    install).

    Args:
        log_dir: the TensorBoard log folder.

    Example:
    >>> model.fit(ds, callbacks=[ScalarSummaries("run/logs")])
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir
        self._writers = {}
        # TensorBoard shows a summary as a scalar curve by this plugin name.
        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        ).SerializeToString()

    def _writer(self, run):
        if run not in self._writers:
            self._writers[run] = tf.summary.create_file_writer(
                os.path.join(self.log_dir, run))
        return self._writers[run]

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            run, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writer(run).as_default():
                tf.summary.write(f"epoch_{tag}", tf.constant(float(value)), step=epoch,
                                 metadata=self._metadata)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()


class _SigtermGuard:
    """Turns SIGTERM into `TrainingInterrupted` raised between steps, so the
    run stops with a message; the backup of the last finished epoch stays
    valid (nothing is saved mid-epoch)."""

    def __enter__(self):
        self._previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, self._raise)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    @staticmethod
    def _raise(signum, frame):
        raise TrainingInterrupted("received SIGTERM")

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


# --------------------------------------------------------------- outputs
def _read_csv(path):
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


def plot_curves(csv_path, png_path, title=""):
    """Writes the loss and accuracy curves of a `MetricsCSV` file as a PNG.

    Args:
        csv_path: the metrics CSV.
        png_path: the image to write.
        title: figure title.

    Example:
    >>> plot_curves("run/metrics.csv", "run/curves.png")
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = _read_csv(csv_path)
    epochs = [row["epoch"] + 1 for row in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for key in (metric, f"val_{metric}"):
            values = [row.get(key, np.nan) for row in rows]
            axis.plot(epochs, values, marker="o", label=key)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(png_path, dpi=80)
    plt.close(figure)


class _Outputs:
    """Where one stage writes: `directory` on the chief, a temp dir that is
    deleted at the end on other workers (the Keras multi-worker pattern)."""

    def __init__(self, directory, chief):
        self.directory = directory
        self.chief = chief
        self.write_dir = directory if chief else tempfile.mkdtemp(prefix="r2kd_worker_")
        os.makedirs(self.write_dir, exist_ok=True)

    def path(self, *parts):
        return os.path.join(self.write_dir, *parts)

    def cleanup(self):
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)


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
        WorkerBackupAndRestore(os.path.join(outputs.directory, "backup"),
                               outputs.path("backup")),
    ]
    with _SigtermGuard():
        distiller.fit(train_ds, validation_data=val_ds if validation_freq else None,
                      validation_freq=validation_freq or 1, epochs=epochs,
                      steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                      verbose=verbose)
    return meter.images_per_sec


def _last_metrics(outputs):
    rows = _read_csv(outputs.path("metrics.csv"))
    return rows[-1] if rows else {}


def train_stage(config, strategy, *, student, teacher, info, train_ds, val_ds,
                directory, epochs, steps_per_epoch, distillation, augment):
    """Trains `student` (from `teacher` unless `distillation="none"`) and
    writes the stage's outputs to `directory`.

    Args:
        config: the `TrainConfig`.
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
    outputs = _Outputs(directory, is_chief(strategy))
    with strategy.scope():
        augmenter = augment_lib.make_augmenter(
            augment, info.num_classes, info.image_size, seed=config.seed,
            normalization=info.normalization)
        distiller = R2KDDistiller(
            student, teacher, teacher_prune_rate=config.teacher_prune_rate,
            augmenter=augmenter, distillation=distillation,
            teacher_dtype=config.teacher_dtype if teacher is not None else None)
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
        last = _last_metrics(outputs)
        if "val_accuracy" not in last:
            # The last epoch was not validated (validation_freq).
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
    saved = os.path.join(config.output_dir, TEACHER_FILE)
    path = config.teacher_weights or (saved if os.path.isfile(saved) else None)
    if path:
        with strategy.scope():
            teacher = load_teacher(path, config.teacher, info.num_classes, input_shape)
        return teacher, {"source": path, "val_accuracy": None}
    epochs = config.teacher_epochs or config.epochs
    steps = steps_per_epoch_of(config, info)
    with strategy.scope():
        teacher = models_lib.get_model(config.teacher, info.num_classes, input_shape)
    stage = train_stage(
        config, strategy, student=teacher, teacher=None, info=info,
        train_ds=train_ds, val_ds=val_ds,
        directory=os.path.join(config.output_dir, "teacher"), epochs=epochs,
        steps_per_epoch=steps, distillation="none", augment="none")
    outputs = _Outputs(config.output_dir, is_chief(strategy))
    teacher.save(outputs.path(TEACHER_FILE))
    outputs.cleanup()
    return teacher, {"source": "trained", "val_accuracy": stage["val_accuracy"],
                     "seconds": stage["train_seconds"]}


def export_student(student, export, path, val_ds):
    """Strips pruning from `student` and writes it to `path` as `.tflite`.

    Args:
        student: the trained student (pruning wrappers allowed).
        export: a key of `EXPORTS` other than `"none"`.
        path: the `.tflite` file.
        val_ds: batched `(images, labels)`: int8 calibration and the LiteRT
            accuracy check.

    Returns:
        The `export.ExportReport` as a dict.

    Example:
    >>> report = export_student(student, "dynamic", "run/student.tflite", val_ds)
    """
    model = pruning.strip_pruning(student)
    quantize = EXPORTS[export]
    with logs.native_output_kept_aside(logs.is_quiet()):  # the converter's C++ chatter
        report = export_lib.to_tflite(
            model, path, quantize=None if quantize == "none" else quantize,
            representative_data=val_ds if quantize == "int8" else None,
            verify=val_ds, latency_runs=20)
    return {k: v for k, v in dataclasses.asdict(report).items() if k != "notes"}


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
        `sparsity`, `export`, `steps`, `images_per_sec`, `train_seconds`),
        `wall_seconds`, `config`.

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
        train_ds, val_ds = _shard_by_data(train_ds), _shard_by_data(val_ds)
    input_shape = (info.image_size, info.image_size, info.channels)
    steps = steps_per_epoch_of(config, info)
    single = not methods
    methods = dict.fromkeys([config.distillation]) if single else (
        methods if isinstance(methods, dict) else dict.fromkeys(methods))
    with strategy.scope():  # checked before anything is written
        given = (inputs.given_teacher(config, info, input_shape)
                 if any(m != "none" for m in methods) else None)
    chief = is_chief(strategy)
    os.makedirs(config.output_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)

    teacher, teacher_summary = None, None
    if any(m != "none" for m in methods):
        teacher, teacher_summary = teacher_stage(
            config, strategy, info, train_ds, val_ds, input_shape, given=given)
        if teacher_summary["val_accuracy"] is None:
            teacher_summary["val_accuracy"] = evaluate(teacher, val_ds, strategy)
    students = {}
    for method, augment in methods.items():
        directory = config.output_dir if single else os.path.join(config.output_dir, method)
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            student = build_student(config, info.num_classes, input_shape,
                                    steps * config.epochs)
        stage = train_stage(
            config, strategy, student=student, teacher=teacher, info=info,
            train_ds=train_ds, val_ds=val_ds, directory=directory,
            epochs=config.epochs, steps_per_epoch=steps, distillation=method,
            augment=augment or config.augment)
        summary = {"augment": augment or config.augment}
        summary.update({k: stage[k] for k in ("steps", "images_per_sec", "train_seconds")})
        summary["accuracy"] = stage["val_accuracy"]
        summary["sparsity"] = pruning.get_sparsity(pruning.strip_pruning(student))["total"]
        summary["export"] = None
        if chief and config.export != "none":
            summary["export"] = export_student(
                student, config.export, os.path.join(directory, "student.tflite"),
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
        with open(os.path.join(config.output_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=2, default=_jsonable)
    return results


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


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
    return float(runner.evaluate(val_ds, verbose=0, return_dict=True)["accuracy"])


def format_table(results):
    """A text table of teacher and student accuracies and exported sizes.

    Args:
        results: the dict `run` returns.

    Returns:
        str.

    Example:
    >>> print(format_table(run(config, methods=["none", "kd", "r2kd"])))
    """
    names = {"none": "student alone", "kd": "KD", "r2kd": "R2KD", "dist": "DIST",
             "dkd": "DKD"}
    lines = ["| model | top-1 (%) | sparsity | .tflite bytes (gzip) | LiteRT top-1, "
             "first 500 (%) |",
             "|---|---|---|---|---|"]
    config = results["config"]
    if results["teacher"]:
        accuracy = results["teacher"]["val_accuracy"]
        teacher = os.path.basename(config.get("teacher_model") or config["teacher"])
        lines.append(f"| teacher {teacher} | {100 * accuracy:.2f} | - | - | - |")
    for method, row in results["students"].items():
        report = row["export"] or {}
        size = (f"{report['bytes_raw']:,} ({report['bytes_gzip']:,})"
                if report else "-")
        litert = report.get("accuracy_litert")
        lines.append(
            f"| {config['student']} {names.get(method, method)} | "
            f"{100 * row['accuracy']:.2f} | {row['sparsity']:.2f} | {size} | "
            f"{'-' if litert is None else f'{100 * litert:.2f}'} |")
    return "\n".join(lines)


# -------------------------------------------------------------------- flags
_FLAG_HELP = {
    "dataset": "Dataset; image_folder: your own images in --data_dir/<class>/*.jpg|png.",
    "data_dir": "Where the dataset is (image_folder: the folder of class sub-folders).",
    "val_dir": "image_folder: validation folder with the same class sub-folders.",
    "val_fraction": "image_folder without --val_dir: share of each class held out.",
    "fgvr_dataset": "tfds name for --dataset=fgvr (caltech_birds2011, stanford_dogs, cars196).",
    "image_size": "Served image size (default: the dataset's; image_folder: the "
                  "--teacher_model's input size, else 64).",
    "teacher": "Teacher: a zoo name, keras:<Application> (e.g. keras:ResNet50) or "
               "keras_hub:<preset dir or name> (used as is).",
    "teacher_model": "A trained teacher of any architecture as a .keras file "
                     "(overrides --teacher).",
    "teacher_weights": "Teacher .keras file; absent: train the teacher first.",
    "teacher_epochs": "Epochs of the teacher training (default: --epochs).",
    "student": "Student: a zoo name (resnet8x4), keras:<Application> (e.g. "
               "keras:MobileNetV3Small) or keras_hub:<preset>.",
    "student_weights": "keras: students: imagenet starts from ImageNet weights.",
    "distillation": "Distillation method.", "augment": "Second view of R2KD.",
    "teacher_prune_rate": "Pruning rate of R2KD's pruned teacher copy.",
    "teacher_dtype": "Teacher compute dtype: auto, bfloat16, float16 (default float32).",
    "student_sparsity": "Final sparsity of the student's kernels (0: dense).",
    "prune_schedule": "Student pruning schedule.",
    "epochs": "Epochs; the lr milestones 150/180/210 of 240 scale with it.",
    "batch_size": "Global batch; the lr scales linearly from the recipe's 64.",
    "lr": "Learning rate at batch 64 (scaled linearly with --batch_size).",
    "weight_decay": "PyTorch-style (coupled L2) weight decay.",
    "momentum": "SGD momentum.", "seed": "Random seed.",
    "output_dir": "Output folder (a rerun with the same folder resumes).",
    "export": "TFLite export of the student.",
    "mixed_precision": "Student in mixed_bfloat16 (CPU) / mixed_float16 (GPU).",
    "strategy": "tf.distribute strategy.",
    "cpu_replicas": "With --strategy=mirrored: this many logical CPU replicas.",
    "tpu": "TPU name or address for --strategy=tpu.",
    "train_subset": "Use only this many training images.",
    "val_subset": "Evaluate on only this many validation images.",
    "steps_per_epoch": "Steps per epoch (default: one pass).",
    "validation_freq": "Validate every N epochs; 0: only once after training.",
    "verbose": "Keras fit verbosity (0, 1, 2).",
}
_ENUMS = {"dataset": DATASETS, "distillation": DISTILLATIONS, "augment": AUGMENTS,
          "prune_schedule": PRUNE_SCHEDULES, "export": tuple(EXPORTS),
          "strategy": STRATEGIES}


def define_flags(**defaults):
    """Defines one absl flag per `TrainConfig` field (idempotent).

    Args:
        **defaults: new defaults, e.g. `dataset="cifar100"`.

    Example:
    >>> define_flags(dataset="cifar100", teacher="resnet32x4", student="resnet8x4")
    >>> app.run(main)
    """
    from absl import flags

    unknown = set(defaults) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ValueError(f"define_flags got unknown fields {sorted(unknown)}.")
    for field in dataclasses.fields(TrainConfig):
        if field.name in flags.FLAGS:
            continue
        default = defaults.get(field.name, field.default)
        help_text = _FLAG_HELP[field.name]
        if field.name in _ENUMS:
            flags.DEFINE_enum(field.name, default, _ENUMS[field.name], help_text)
        elif field.type is bool:
            flags.DEFINE_bool(field.name, default, help_text)
        elif field.type is int:
            flags.DEFINE_integer(field.name, default, help_text)
        elif field.type is float:
            flags.DEFINE_float(field.name, default, help_text)
        else:
            flags.DEFINE_string(field.name, default, help_text)


def config_from_flags(flag_values=None):
    """A `TrainConfig` from the parsed absl flags.

    Example:
    >>> config = config_from_flags()
    """
    from absl import flags

    flag_values = flag_values or flags.FLAGS
    return TrainConfig(**{
        f.name: flag_values[f.name].value for f in dataclasses.fields(TrainConfig)
    })


def main(argv, methods=None, config=None):
    """absl entry point: runs the experiment of the flags, prints a summary,
    and turns bad input and interruptions into a one-line error (exit 1).

    Args:
        argv: leftover command-line arguments (must be empty).
        methods: see `run`.
        config: a `TrainConfig`; None: from the flags.

    Example:
    >>> app.run(main)
    """
    import sys

    if len(argv) > 1:
        raise SystemExit(f"error: unexpected arguments {argv[1:]}")
    config = config or config_from_flags()
    logs.configure(logs.absl_verbosity())
    try:
        results = run(config, methods=methods)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"error: {error}") from None
    except (TrainingInterrupted, KeyboardInterrupt) as error:
        print(f"Interrupted ({error or 'keyboard'}): the last finished epoch is saved "
              f"in {config.output_dir}; run the same command again to resume.",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        # Everything worth keeping is on disk; a normal interpreter exit can
        # deadlock destroying the tf.data iterator the signal interrupted.
        os._exit(143)
    print(format_table(results))
    print(f"wall time {results['wall_seconds']:.0f} s; outputs in {config.output_dir}")
    print(logs.format_outputs(config.output_dir))
