"""The experiment runner the example scripts share.

One call of `run(config)` is one experiment of the paper's recipe: build the
`tf.distribute` strategy, load the data, load (or first train and save) the
teacher, distil the student with R2KD or a baseline (optionally pruning it),
and write everything to `config.output_dir`: the run's settings
(`run_config.json`; a rerun under other settings is refused), the backup
state (a killed run resumes from its last finished epoch when the same
command is run again), best and last student checkpoints, TensorBoard logs,
a CSV of metrics, `results.json`, a PNG of the training curves and the
exported `.tflite`. Every file is replaced atomically.

The example scripts are a few lines each: `define_flags(**dataset_defaults)`
then `absl.app.run(main)`. Where things are (docs/runner.md lists the flags):

| module | holds |
|---|---|
| `config.py` | `TrainConfig`: each field with its flag help and choices |
| `flags.py` | `define_flags`, `config_from_flags`, `flag_table`, `main` |
| `data.py` | `load_data` (the `data` registry), `steps_per_epoch_of` |
| `models.py` | `load_teacher`, `build_student`, `make_optimizer` |
| `stages.py` | `train_stage`, `teacher_stage`, `evaluate`, `export_student` |
| `outputs.py` | output folder checks, `run_config.json`, `--overwrite` |
| `report.py` | `format_table`, `plot_curves`, `results.json` |
| `run.py` | `run` |

The recipe's optimizer and schedule are in `r2kd_keras.optimizers`, the
callbacks in `r2kd_keras.callbacks`, the strategy helpers in
`r2kd_keras.distribute`; their names stay importable from here.
"""

from r2kd_keras import augment as _augment
from r2kd_keras import data as _data
from r2kd_keras import pruning
from r2kd_keras.callbacks import (
    AtomicBackupAndRestore,
    CheckpointWriteError,
    MetricsCSV,
    ScalarSummaries,
    StudentCheckpoint,
    Throughput,
    TrainingInterrupted,
)
from r2kd_keras.methods import METHOD_NAMES as DISTILLATIONS
from r2kd_keras.distiller import R2KDDistiller
from r2kd_keras.distribute import (
    STRATEGIES,
    check_batch,
    is_chief,
    logical_cpus,
    make_strategy,
)
from r2kd_keras.optimizers import (
    LR_DECAY,
    REFERENCE_BATCH,
    REFERENCE_EPOCHS,
    REFERENCE_MILESTONES,
    L2SGD,
    milestone_epochs,
    scaled_learning_rate,
    step_decay,
)
from r2kd_keras.precision import student_policy
from r2kd_keras.train.config import EXPORTS, PRUNE_SCHEDULES, TrainConfig, check_model_name
from r2kd_keras.train.data import load_data, steps_per_epoch_of
from r2kd_keras.train.flags import config_from_flags, define_flags, flag_table, main
from r2kd_keras.train.models import build_student, load_teacher, make_optimizer
from r2kd_keras.train.outputs import RUN_CONFIG, TEACHER_FILE, prepare_output_dir
from r2kd_keras.train.report import format_table, plot_curves
from r2kd_keras.train.run import run
from r2kd_keras.train.stages import evaluate, export_student, teacher_stage, train_stage

# Names of the single-module runner, kept for existing imports.
WorkerBackupAndRestore = AtomicBackupAndRestore
_logical_cpus = logical_cpus
AUGMENTS = _augment.AUGMENTER_NAMES
DATASETS = _data.dataset_names()

__all__ = [
    "AUGMENTS", "DATASETS", "DISTILLATIONS", "EXPORTS", "LR_DECAY", "PRUNE_SCHEDULES",
    "REFERENCE_BATCH", "REFERENCE_EPOCHS", "REFERENCE_MILESTONES", "RUN_CONFIG",
    "STRATEGIES", "TEACHER_FILE", "AtomicBackupAndRestore", "CheckpointWriteError",
    "L2SGD", "MetricsCSV", "R2KDDistiller", "ScalarSummaries", "StudentCheckpoint",
    "Throughput", "TrainConfig", "TrainingInterrupted", "WorkerBackupAndRestore",
    "build_student", "check_batch", "check_model_name", "config_from_flags",
    "define_flags", "evaluate", "export_student", "flag_table", "format_table",
    "is_chief", "load_data", "load_teacher", "make_optimizer", "make_strategy",
    "milestone_epochs", "plot_curves", "prepare_output_dir", "pruning", "run",
    "scaled_learning_rate", "step_decay", "steps_per_epoch_of", "student_policy",
    "teacher_stage", "train_stage",
]
