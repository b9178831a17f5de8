"""`TrainConfig`: every setting of one experiment, each field carrying its
flag help, its choices and whether it changes results (the flags, the
documentation and the resume check all read these metadata)."""

import dataclasses
import os

from r2kd_keras import augment as augment_lib
from r2kd_keras import data as data_lib
from r2kd_keras import inputs
from r2kd_keras import losses
from r2kd_keras import models as models_lib
from r2kd_keras.methods import METHOD_NAMES
from r2kd_keras.distribute import STRATEGIES
from r2kd_keras.models import external, registry
from r2kd_keras.optimizers import REFERENCE_BATCH, REFERENCE_EPOCHS
from r2kd_keras.pruning.structure import STRUCTURES

# `--export` value -> `export.to_tflite(quantize=...)`; None: no export.
EXPORTS = {"none": None, "float": "none", "dynamic": "dynamic", "int8": "int8"}
PRUNE_SCHEDULES = ("constant", "polynomial")
TEACHER_DTYPES = (None, "auto", "bfloat16", "float16")


def _field(default, help, choices=None, affects_results=True):
    """A `TrainConfig` field: `help` is the flag's help text; `choices` (a
    tuple, or a function returning one, read when used) makes it an enum
    flag; `affects_results=False` lets a resumed run differ in it."""
    return dataclasses.field(default=default, metadata={
        "help": help, "choices": choices, "affects_results": affects_results})


def field_choices(field):
    """The allowed values of a `TrainConfig` field, or None for any value.

    Example:
    >>> field_choices(dataclasses.fields(TrainConfig)[0])
    ('fashion_mnist', 'cifar100', 'tiny_imagenet', 'fgvr', 'imagenet')
    """
    choices = field.metadata["choices"]
    return choices() if callable(choices) else choices


@dataclasses.dataclass
class TrainConfig:
    """Everything one experiment needs; one absl flag per field.

    Each field's help, choices and whether it may change between a run and
    its resume are in the field's metadata (`flag_table()` lists them, and
    `docs/runner.md` is generated from it).

    Example:
    ```python
    results = run(TrainConfig(dataset="fashion_mnist", teacher="resnet20",
                              student="resnet8", epochs=2, output_dir="/tmp/run"))
    ```
    """

    dataset: str = _field("cifar100", "Dataset.", choices=data_lib.dataset_names)
    data_dir: str = _field(
        None, "Where the dataset is (default: the loader's; image_folder: the folder "
        "of class sub-folders, data_dir/<class>/*.jpg|png).")
    val_dir: str = _field(
        None, "image_folder: validation folder with the same class sub-folders.")
    val_fraction: float = _field(
        0.2, "image_folder without --val_dir: share of each class held out.")
    fgvr_dataset: str = _field(
        "caltech_birds2011",
        "tfds name for --dataset=fgvr (caltech_birds2011, stanford_dogs, cars196).")
    image_size: int = _field(
        None, "Served image size (default: the dataset's; image_folder: the "
        "--teacher_model's input size, else 64).")
    teacher: str = _field(
        "resnet32x4", "Teacher: a zoo name, keras:<Application> (e.g. keras:ResNet50) "
        "or keras_hub:<preset dir or name> (used as is).")
    teacher_model: str = _field(
        None, "A trained teacher of any architecture as a .keras file, used as is "
        "(overrides --teacher).")
    teacher_weights: str = _field(
        None, "Teacher .keras or .weights.h5 file of the --teacher architecture. With no "
        "teacher given (this, --teacher_model, --teacher_checkpoint or a keras_hub: "
        "--teacher) it is trained first and saved as output_dir/teacher.keras (reused on "
        "the next run).")
    teacher_checkpoint: str = _field(
        None, "A PyTorch checkpoint (.pth) of the --teacher zoo architecture, e.g. "
        "mdistiller's resnet32x4_vanilla/ckpt_epoch_240.pth, loaded without PyTorch.")
    teacher_epochs: int = _field(None, "Epochs of the teacher training (default: --epochs).")
    student: str = _field(
        "resnet8x4", "Student: a zoo name (resnet8x4), keras:<Application> (e.g. "
        "keras:MobileNetV3Small) or keras_hub:<preset>; built for the data, logits out.")
    student_checkpoint: str = _field(
        None, "A PyTorch checkpoint (.pth) of the --student zoo architecture to start "
        "from (fine-tuning).")
    student_weights: str = _field(
        None, "keras: students only: imagenet starts from an ImageNet backbone "
        "(a new head).")
    distillation: str = _field("r2kd", "Distillation method.", choices=METHOD_NAMES)
    augment: str = _field("cutmix", "Second view of the training step.",
                          choices=augment_lib.AUGMENTER_NAMES)
    teacher_prune_rate: float = _field(
        0.1, "Pruning rate of R2KD's pruned teacher copy (0: no blend).")
    rank_mode: str = _field("exact", "R2KD's rank term: exact (logged, no gradient) or soft.",
                            choices=losses.RANK_MODES)
    pruned_teacher_training: bool = _field(
        False, "Run R2KD's pruned teacher in training mode, as the reference does.")
    dkd_warmup_epochs: float = _field(
        None, "DKD's warm-up in epochs (default: 20 of 240, scaled with --epochs).")
    teacher_dtype: str = _field(
        None, "Teacher compute dtype: auto, bfloat16, float16 (default float32).",
        choices=TEACHER_DTYPES)
    student_sparsity: float = _field(
        0.0, "Final sparsity of the student's kernels (0: dense).")
    prune_structure: str = _field(
        "unstructured", "What --student_sparsity removes: unstructured weights, whole "
        "filters (the student is shrunk to a smaller dense network before export), 2:4 "
        "(two of every four input weights) or xnnpack (1x1 convolutions, for XNNPACK's "
        "sparse kernels).", choices=STRUCTURES)
    prune_schedule: str = _field(
        "constant", "Student pruning schedule (polynomial: cubic, reaches the target "
        "at 75% of the steps).", choices=PRUNE_SCHEDULES)
    epochs: int = _field(REFERENCE_EPOCHS,
                         "Epochs; the lr milestones 150/180/210 of 240 scale with it.")
    batch_size: int = _field(REFERENCE_BATCH,
                             "Global batch; the lr scales linearly from the recipe's 64.")
    lr: float = _field(0.05, "Learning rate at batch 64 (scaled linearly with --batch_size).")
    weight_decay: float = _field(5e-4, "PyTorch-style (coupled L2) weight decay.")
    momentum: float = _field(0.9, "SGD momentum.")
    seed: int = _field(42, "Seed of the data order, augmentation and initialisation.")
    output_dir: str = _field(
        "runs/r2kd", "Output folder (the same command on the same folder resumes).",
        affects_results=False)
    overwrite: bool = _field(
        False, "Delete the outputs of an earlier run in --output_dir and start over.",
        affects_results=False)
    export: str = _field("dynamic", "TFLite export of the student.", choices=tuple(EXPORTS))
    mixed_precision: bool = _field(
        False, "Student in mixed_bfloat16 (CPU) / mixed_float16 (GPU).")
    strategy: str = _field("default", "tf.distribute strategy.", choices=STRATEGIES)
    cpu_replicas: int = _field(
        None, "With --strategy=mirrored: this many logical CPU replicas.")
    tpu: str = _field("", "TPU name or address for --strategy=tpu.")
    train_subset: int = _field(None, "Use only this many training images.")
    label_noise: float = _field(
        0.0, "Share of the training labels replaced by a random other class "
        "(symmetric noise, fixed by --seed; fashion_mnist); validation labels stay clean.")
    val_subset: int = _field(None, "Evaluate on only this many validation images.")
    steps_per_epoch: int = _field(None, "Steps per epoch (default: one pass).")
    validation_freq: int = _field(
        1, "Validate every N epochs; 0: only once after training (no best.keras).")
    verbose: int = _field(2, "Keras fit verbosity (0, 1, 2).", affects_results=False)

    def validate(self):
        """Raises `ValueError` naming the first bad field; returns self."""
        for field in dataclasses.fields(self):
            allowed = field_choices(field)
            value = getattr(self, field.name)
            if allowed is not None and value not in allowed:
                raise ValueError(
                    f"{field.name}={value!r} is not known; use one of "
                    f"{', '.join(map(str, allowed))}."
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
        if not 0.0 <= self.teacher_prune_rate < 1.0:
            raise ValueError(
                f"teacher_prune_rate={self.teacher_prune_rate!r} must be in [0, 1)."
            )
        if not 0.0 <= self.label_noise < 1.0:
            raise ValueError(f"label_noise={self.label_noise!r} must be in [0, 1).")
        if self.dkd_warmup_epochs is not None and self.dkd_warmup_epochs <= 0:
            raise ValueError(
                f"dkd_warmup_epochs={self.dkd_warmup_epochs!r} must be positive.")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr!r} must be positive.")
        inputs.check_config(self)
        _check_checkpoint("teacher", self.teacher, self.teacher_checkpoint,
                          self.teacher_model or self.teacher_weights)
        _check_checkpoint("student", self.student, self.student_checkpoint,
                          self.student_weights)
        if self.teacher_weights and not os.path.isfile(self.teacher_weights):
            raise FileNotFoundError(
                f"teacher_weights={self.teacher_weights!r} does not exist. Pass a "
                "`.keras` file saved from the teacher, or omit the flag to train "
                "the teacher first."
            )
        return self

    def result_settings(self):
        """The fields that change results, as a JSON-ready dict (what a
        resumed run must match)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata["affects_results"]}


def _check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive int.")


def _check_checkpoint(role, name, path, other_source):
    if path is None:
        return
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{role}_checkpoint={path!r} does not exist. Pass the .pth file of a "
            "published checkpoint (docs/published-teachers.md lists them).")
    if external.is_external(name):
        raise ValueError(
            f"{role}_checkpoint={path!r} fits zoo architectures only, not "
            f"{role}={name!r}; pass the zoo name the checkpoint was trained as.")
    if other_source:
        raise ValueError(
            f"{role}_checkpoint={path!r} and {other_source!r} both give the {role}'s "
            "weights; pass one.")


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
