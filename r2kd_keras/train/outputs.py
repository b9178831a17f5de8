"""Where a run writes, and the guard that never resumes it under other
settings: `run_config.json` in `output_dir` stores the settings that change
results; a rerun with others is refused unless `--overwrite` is given."""

import dataclasses
import glob
import json
import os
import shutil
import tempfile

from r2kd_keras.callbacks import CheckpointWriteError, os_reason, read_json, write_json
from r2kd_keras.methods import METHOD_NAMES

RUN_CONFIG = "run_config.json"
TEACHER_FILE = "teacher.keras"
# What the runner writes in `output_dir` (method sub-folders are named by
# method): the state a rerun would resume, and what `--overwrite` deletes.
RUN_OUTPUTS = ("backup", "logs", "teacher", TEACHER_FILE, "results.json", "metrics.csv",
               "last.keras", "best.keras", "best.json", "curves.png",
               "student.tflite") + METHOD_NAMES


class StageOutputs:
    """Where one stage writes: `directory` on the chief, a temp dir that is
    deleted at the end on other workers (the Keras multi-worker pattern).

    Args:
        directory: the stage's folder.
        chief: whether this task keeps the files.

    Example:
    >>> outputs = StageOutputs("run", chief=True); outputs.path("metrics.csv")
    'run/metrics.csv'
    """

    def __init__(self, directory, chief):
        self.directory = directory
        self.chief = chief
        self.write_dir = directory if chief else tempfile.mkdtemp(prefix="r2kd_worker_")
        os.makedirs(self.write_dir, exist_ok=True)
        # Left by a kill during a write; the files they would have replaced are intact.
        for leftover in glob.glob(self.path("*.partial.*")) + glob.glob(
                self.path("backup", "*.partial.*")):
            os.remove(leftover)

    def path(self, *parts):
        return os.path.join(self.write_dir, *parts)

    def cleanup(self):
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)


def check_writable(directory):
    """Creates `directory` and writes (then deletes) a file in it.

    Raises:
        CheckpointWriteError: naming `directory` and the reason, before any
            training, when it cannot be created or written.

    Example:
    >>> check_writable("runs/r2kd")
    """
    probe = os.path.join(directory, ".r2kd_write_probe")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(probe, "w") as f:
            f.write("probe")
        os.remove(probe)
    except OSError as error:
        raise CheckpointWriteError(
            error.errno,
            f"output_dir={directory!r} cannot be written ({os_reason(error)}); "
            "pass a folder you can write to with --output_dir.") from None


def existing_outputs(directory):
    """The names of `RUN_OUTPUTS` (and leftover partial files) present in `directory`."""
    partial = [os.path.basename(p) for p in glob.glob(os.path.join(directory, "*.partial.*"))]
    return [n for n in RUN_OUTPUTS if os.path.exists(os.path.join(directory, n))] + partial


def _describe(stored, current):
    changed = []
    for name in sorted(set(stored) | set(current)):
        if stored.get(name) != current.get(name):
            changed.append(f"--{name}: {stored.get(name)!r} (stored) -> "
                           f"{current.get(name)!r} (now)")
    return changed


def _with_new_settings(stored, config):
    """`stored` with the settings added since it was written (a newer
    release's fields) at their defaults, so that an older run still resumes
    when the new settings are left as they were."""
    if stored is None or "settings" not in stored:
        return stored
    defaults = {f.name: f.default for f in dataclasses.fields(config)
                if f.metadata["affects_results"] and f.default is not dataclasses.MISSING}
    defaults = json.loads(json.dumps(defaults))
    return {**stored, "settings": {**defaults, **stored["settings"]}}


def prepare_output_dir(config, methods):
    """Makes `config.output_dir` ready for the run of `config` and `methods`.

    Checks it can be written; with `config.overwrite` deletes an earlier
    run's outputs; refuses (`ValueError`, listing the differing flags) to
    resume outputs written under other settings, or without a stored
    `run_config.json`; then stores the settings.

    Args:
        config: the `TrainConfig`.
        methods: `{method: augmenter name}` of the run.

    Example:
    >>> prepare_output_dir(config, {"r2kd": "cutmix"})
    """
    directory = config.output_dir
    check_writable(directory)
    path = os.path.join(directory, RUN_CONFIG)
    if config.overwrite:
        keep = os.path.abspath(config.teacher_weights or "")
        for name in existing_outputs(directory) + [RUN_CONFIG]:
            target = os.path.join(directory, name)
            if os.path.abspath(target) == keep:
                continue  # the teacher this run loads
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
    # The JSON round trip makes tuples lists, as they are stored.
    current = json.loads(json.dumps({"settings": config.result_settings(),
                                     "methods": methods}))
    stored = _with_new_settings(read_json(path), config)
    present = existing_outputs(directory)
    if present and stored != current:
        if stored is None:
            reason = (f"holds outputs ({', '.join(present)}) but no {RUN_CONFIG}, "
                      "so its settings cannot be checked")
        else:
            differences = _describe(stored["settings"], current["settings"])
            if stored["methods"] != current["methods"]:
                differences.append(f"methods: {stored['methods']} (stored) -> "
                                   f"{current['methods']} (now)")
            reason = "holds a run with other settings: " + "; ".join(differences)
        hint = ""
        if os.path.isfile(os.path.join(directory, TEACHER_FILE)):
            hint = (f" To keep its trained teacher, pass --teacher_weights "
                    f"{os.path.join(directory, TEACHER_FILE)} with a new --output_dir.")
        raise ValueError(
            f"output_dir={directory!r} {reason}. Run the same command as before to "
            "resume it, pass --overwrite to delete its outputs and start over, or "
            f"pass another --output_dir.{hint}")
    write_json(path, current, indent=2)
