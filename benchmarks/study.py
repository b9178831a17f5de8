"""The harness the seeded studies share (`accuracy.py`, `robustness.py`).

One place for what makes two studies comparable: the grid of student
configurations, the settings a result depends on (and the flags that set
them), and how a teacher and a student are trained and cached through the
runner. Their scores, summaries and reports: `study_results.py`.
"""

import dataclasses
import fnmatch
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from r2kd_keras import precision  # noqa: E402
from r2kd_keras import train  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


# ---------------------------------------------------------------------- grid
@dataclasses.dataclass(frozen=True)
class StudentConfig:
    """One configuration of the grid: a method, its second view and R2KD options.

    Args:
        method: `distillation` of `R2KDDistiller`.
        augment: `"none"` or `"cutmix"` (`augment.make_augmenter` name).
        teacher_prune_rate: rate of R2KD's pruned teacher copy; 0: no blend.
        rank_mode: R2KD's rank term, `"exact"` or `"soft"`.
        pruned_teacher_training: run the pruned teacher in training mode,
            as the reference does.
        variant: suffix of the name for R2KD variants, e.g. `"-noblend"`.

    Example:
    >>> StudentConfig("r2kd", "cutmix", rank_mode="soft", variant="-softrank").name
    'r2kd-softrank/cutmix'
    """

    method: str
    augment: str
    teacher_prune_rate: float = 0.1
    rank_mode: str = "exact"
    pruned_teacher_training: bool = False
    variant: str = ""

    @property
    def name(self):
        return f"{self.method}{self.variant}/{self.augment}"

    @property
    def label(self):
        return METHOD_LABELS[self.method + self.variant]


METHOD_LABELS = {
    "none": "student alone (CE)", "kd": "KD", "dist": "DIST", "dkd": "DKD",
    "r2kd": "R2KD", "r2kd-noblend": "R2KD, no pruned-teacher blend",
    "r2kd-softrank": "R2KD, soft rank",
    "r2kd-trainprune": "R2KD, training-mode pruned teacher (reference)",
}
AUGMENTS = ("none", "cutmix")
# The accuracy study runs all of it; the robustness study the first ten.
GRID = tuple(
    [StudentConfig(m, a) for m in ("none", "kd", "dist", "dkd", "r2kd") for a in AUGMENTS]
    + [StudentConfig("r2kd", "cutmix", teacher_prune_rate=0.0, variant="-noblend"),
       StudentConfig("r2kd", "cutmix", rank_mode="soft", variant="-softrank"),
       StudentConfig("r2kd", "cutmix", pruned_teacher_training=True,
                     variant="-trainprune")]
)
# Every method with and without the CutMix view, without R2KD's variants.
METHODS_GRID = tuple(spec for spec in GRID if not spec.variant)


# ------------------------------------------------------------------ settings
# The 12 x 3 students and 3 teachers: measured 2.7 h projected on 2 cores
# shared at load ~4 (one process got ~1 core); about 1.5 h on 2 idle cores.
DEFAULTS = {"train_subset": 8_000, "epochs": 8, "teacher_epochs": 10}
# Settings a result depends on: a JSON written with others cannot be resumed.
SETTINGS = ("dataset", "teacher", "student", "epochs", "teacher_epochs",
            "train_subset", "val_subset", "batch_size", "lr", "teacher_dtype")
TEACHER_DTYPES = ("auto", "bfloat16", "float16", "float32")


def add_study_flags(parser):
    """The model and recipe flags `study_config` reads, shared by the studies."""
    parser.add_argument("--teacher", default="resnet14")
    parser.add_argument("--student", default="resnet8")
    parser.add_argument("--batch_size", type=int, default=train.REFERENCE_BATCH)
    parser.add_argument("--lr", type=float, default=0.05, help="lr at batch 64.")
    parser.add_argument(
        "--teacher_dtype", default="auto", choices=TEACHER_DTYPES,
        help="The teachers' compute dtype, the same for every method. 'auto' is "
             "resolved on this host (bfloat16 where it is measurably faster, else "
             "float32) and the JSON stores what it resolved to.")


def study_config(args, dataset):
    """The runner's `TrainConfig` of a study's flags, and the settings its JSON keeps.

    The settings hold the teachers' dtype as resolved here, not "auto": `auto`
    picks by measuring the host, so the same flag can mean bfloat16 on one
    machine and float32 on the next, and a resumed study would mix them.

    Args:
        args: parsed flags with `data_dir`, `epochs`, `teacher_epochs`,
            `train_subset`, `test_subset`, `verbose` and those of `add_study_flags`.
        dataset: the dataset's name.

    Returns:
        `(config, settings)`: a validated `train.TrainConfig` and the dict of
        `SETTINGS` for `Results`.

    Example:
    >>> config, settings = study_config(args, "fashion_mnist")
    >>> settings["teacher_dtype"]  # 'float32' on a CPU without fast bfloat16
    """
    requested = None if args.teacher_dtype == "float32" else args.teacher_dtype
    teacher_dtype = precision.resolve_teacher_dtype(requested)
    config = train.TrainConfig(
        dataset=dataset, data_dir=args.data_dir, teacher=args.teacher,
        student=args.student, epochs=args.epochs, teacher_epochs=args.teacher_epochs,
        batch_size=args.batch_size, lr=args.lr, teacher_dtype=teacher_dtype,
        train_subset=args.train_subset, val_subset=args.test_subset,
        validation_freq=0, verbose=args.verbose, export="none").validate()
    settings = {k: getattr(config, k) for k in SETTINGS}
    settings["teacher_dtype"] = teacher_dtype or "float32"
    return config, settings


def select(patterns, grid=GRID, flag="--configs"):
    """The configurations of `grid` matching any of the `fnmatch` patterns.

    Args:
        patterns: comma-separated patterns of names like `r2kd/cutmix`
            (`*`: the whole grid).
        grid: the `StudentConfig`s to choose from, in report order.
        flag: the option named in the error.

    Returns:
        list of `StudentConfig`, in grid order.

    Example:
    >>> [spec.name for spec in select("kd/*")]
    ['kd/none', 'kd/cutmix']
    """
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [spec for spec in grid if any(fnmatch.fnmatchcase(spec.name, p) for p in wanted)]
    if not chosen:
        raise ValueError(
            f"{flag}={patterns!r} matches no configuration; use names or patterns of: "
            f"{', '.join(spec.name for spec in grid)}.")
    return chosen


# ------------------------------------------------------------------ training
def student_dir(cache_dir, config, spec):
    """The folder of the trained student of `spec` under `config` (seed, size
    settings and the teachers' dtype): the runner's stage writes `last.keras`
    there, so that evaluations such as robustness.py need not train it again."""
    tag = (f"{config.dataset}-{config.teacher}-{config.student}-seed{config.seed}-"
           f"n{config.train_subset or 'all'}-e{config.teacher_epochs}-{config.epochs}"
           f"-b{config.batch_size}-lr{config.lr:g}-t{config.teacher_dtype or 'float32'}")
    return os.path.join(cache_dir, "students", tag, spec.name.replace("/", "-"))


def student_file(cache_dir, config, spec):
    """The trained student's `.keras` file (see `student_dir`)."""
    return os.path.join(student_dir(cache_dir, config, spec), "last.keras")


def train_student(config, spec, teacher, info, train_ds, val_ds, steps, directory):
    """Trains a fresh student of `config` with `spec` by the runner's stage;
    its last-epoch top-1.

    The student's checkpoints, metrics and backup go to `directory` (with
    the runner's `run_config.json` guard), so a killed grid resumes the
    student it was training and later studies can reuse the trained students
    (`last.keras`).

    Args:
        config: a `train.TrainConfig` (student, seed, epochs, optimizer).
        spec: the `StudentConfig`.
        teacher: the trained teacher (unused for `method="none"`).
        info: the dataset's `DatasetInfo`.
        train_ds: repeated training batches.
        val_ds: test batches.
        steps: steps per epoch.
        directory: the student's output folder.

    Returns:
        `(top1, train_seconds, optimizer_steps)`.

    Example:
    >>> top1, seconds, _ = train_student(config, GRID[-1], teacher, info, train, test,
    ...                                  125, "results/students/seed0/r2kd-cutmix")
    """
    strategy = tf.distribute.get_strategy()
    config = dataclasses.replace(
        config, output_dir=directory, distillation=spec.method, augment=spec.augment,
        teacher_prune_rate=spec.teacher_prune_rate, rank_mode=spec.rank_mode,
        pruned_teacher_training=spec.pruned_teacher_training)
    train.prepare_output_dir(config, {spec.method: spec.augment})
    keras.utils.set_random_seed(config.seed)
    input_shape = (info.image_size, info.image_size, info.channels)
    student = train.build_student(config, info.num_classes, input_shape,
                                  steps * config.epochs, info.normalization)
    distill = spec.method != "none"
    stage = train.train_stage(
        config, strategy, student=student, teacher=teacher if distill else None,
        info=info, train_ds=train_ds, val_ds=val_ds, directory=directory,
        epochs=config.epochs, steps_per_epoch=steps, distillation=spec.method,
        augment=spec.augment)
    return stage["val_accuracy"], stage["train_seconds"], stage["steps"]


def teacher_for_seed(config, cache_dir, info, train_ds, val_ds):
    """The seed's teacher from `cache_dir`, trained there first if absent.

    Args:
        config: a `train.TrainConfig` with the seed; its teacher size
            settings name the cache folder.
        cache_dir: folder of the cached teachers.
        info: the dataset's `DatasetInfo`.
        train_ds: repeated training batches.
        val_ds: test batches.

    Returns:
        `(teacher, summary)` as `train.teacher_stage`, `val_accuracy` filled.

    Example:
    >>> teacher, summary = teacher_for_seed(config, "results/cache", info, train, test)
    """
    tag = (f"{config.dataset}-{config.teacher}-seed{config.seed}-"
           f"n{config.train_subset or 'all'}-e{config.teacher_epochs}-b{config.batch_size}"
           f"-lr{config.lr:g}")
    # Validating every epoch keeps the teacher's learning curve.
    config = dataclasses.replace(config, output_dir=os.path.join(cache_dir, tag),
                                 validation_freq=1)
    os.makedirs(config.output_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    strategy = tf.distribute.get_strategy()
    input_shape = (info.image_size, info.image_size, info.channels)
    teacher, summary = train.teacher_stage(config, strategy, info, train_ds, val_ds,
                                           input_shape)
    if summary["val_accuracy"] is None:
        summary["val_accuracy"] = train.evaluate(teacher, val_ds, strategy)
    return teacher, summary
