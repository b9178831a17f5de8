"""Training callbacks whose files survive kills and full disks.

Every file is written to a temporary name next to it and moved into place
with `os.replace` (atomic on POSIX), so a SIGKILL or a full disk during a
write leaves the previous version intact; a failing write raises
`CheckpointWriteError` naming the file.
"""

import csv
import json
import os
import signal
import time

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from r2kd_keras import _compat


class CheckpointWriteError(OSError):
    """A checkpoint or output file could not be written (disk full, read-only
    folder, ...); the previous version of the file is intact."""


class TrainingInterrupted(Exception):
    """Raised in the training loop when the process receives SIGTERM."""


def partial_path(path):
    """The temporary name `replace_atomically` writes `path` under first.

    The marker goes before the first dot of the file name so the extension,
    which Keras's savers check (`.keras`, `.weights.h5`), is kept.

    Example:
    >>> partial_path("run/last.keras")
    'run/last.partial.keras'
    """
    directory, name = os.path.split(path)
    stem, dot, extension = name.partition(".")
    return os.path.join(directory, f"{stem}.partial{dot}{extension}")


def replace_atomically(path, write):
    """Calls `write(temporary)` and moves the finished file over `path`.

    Args:
        path: the file to (re)write.
        write: a function writing the whole file to the path it is given.

    Raises:
        CheckpointWriteError: the write failed; `path` still holds its
            previous content and the temporary file is removed.

    Example:
    >>> replace_atomically("run/last.keras", model.save)
    """
    temporary = partial_path(path)
    try:
        write(temporary)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            # Durable before it replaces the previous version.
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except OSError as error:
        try:
            os.remove(temporary)
        except OSError:
            pass
        raise CheckpointWriteError(
            error.errno,
            f"Could not write {path} ({os_reason(error)}); the previous "
            "checkpoint is intact. Free disk space or pass a writable "
            "--output_dir, then run the same command again to resume."
        ) from error


def os_reason(error):
    """The system's short text for an `OSError` (h5py's carry pages of detail).

    Example:
    >>> os_reason(OSError(28, "Unable to synchronously create file ..."))
    'No space left on device'
    """
    return os.strerror(error.errno) if error.errno else str(error)


def write_json(path, value, **kwargs):
    """Writes `value` as JSON to `path` atomically (see `replace_atomically`).

    Args:
        path: the file.
        value: a JSON-serialisable value.
        **kwargs: `json.dump` arguments (e.g. `indent`, `default`).

    Example:
    >>> write_json("run/results.json", {"top1": 0.9}, indent=2)
    """
    def write(temporary):
        with open(temporary, "w") as f:
            json.dump(value, f, **kwargs)

    replace_atomically(path, write)


def read_json(path, default=None):
    """The JSON value in `path`, or `default` when the file does not exist."""
    if not os.path.isfile(path):
        return default
    with open(path) as f:
        return json.load(f)


def read_csv(path):
    """Rows of a `MetricsCSV` file as dicts of floats (empty cells left out);
    `[]` when the file does not exist."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """`keras.callbacks.BackupAndRestore` whose state is replaced atomically,
    readable by every worker of a multi-worker run.

    Keras's callback writes `latest.weights.h5` and then the epoch in
    `training_metadata.json`: a kill between the two resumes new weights at
    the old epoch. Here each save writes a new weights file (model and
    optimizer), then commits it by replacing `training_metadata.json`
    (`{"epoch", "weights"}`) atomically; the previous weights file is removed
    only after that. A kill at any point resumes one consistent epoch.

    Every worker restores from the chief's `backup_dir`; a non-chief saves to
    its own `write_dir` (saving must run on all workers, the files are kept
    by the chief only).

    Args:
        backup_dir: the backup folder that is read.
        write_dir: where this worker saves; None: `backup_dir`.

    Example:
    >>> model.fit(ds, epochs=10, callbacks=[AtomicBackupAndRestore("run/backup")])
    """

    METADATA = "training_metadata.json"

    def __init__(self, backup_dir, write_dir=None):
        super().__init__()
        self.backup_dir = backup_dir
        self.write_dir = write_dir or backup_dir

    def on_train_begin(self, logs=None):
        metadata = read_json(os.path.join(self.backup_dir, self.METADATA))
        if metadata is None:
            return
        if not self.model.built:
            raise ValueError(
                f"Cannot restore {self.backup_dir}: build the model (call it on "
                "a batch) before `fit`.")
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            # Optimizer slots must exist to receive the saved values.
            optimizer.build(self.model.trainable_variables)
        # Keras's own callback names its single weights file this way.
        weights = metadata.get("weights", "latest.weights.h5")
        self.model.load_weights(os.path.join(self.backup_dir, weights))
        _compat.resume_at_epoch(self.model, metadata["epoch"])

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.write_dir, exist_ok=True)
        metadata_path = os.path.join(self.write_dir, self.METADATA)
        previous = read_json(metadata_path, {}).get("weights")
        weights = f"epoch{epoch + 1}.weights.h5"
        replace_atomically(os.path.join(self.write_dir, weights),
                           lambda path: self.model.save_weights(path, overwrite=True))
        write_json(metadata_path, {"epoch": epoch + 1, "weights": weights})
        if previous and previous != weights:
            try:
                os.remove(os.path.join(self.write_dir, previous))
            except FileNotFoundError:
                pass


class StudentCheckpoint(keras.callbacks.Callback):
    """Saves the distiller's student as `last.keras` after every epoch and
    as `best.keras` when `monitor` improves (the best value survives resume
    in `best.json`). Every file is replaced atomically.

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
        best = read_json(self._best_file)
        return -float("inf") if best is None else best[self.monitor]

    def on_epoch_end(self, epoch, logs=None):
        student = self.model.student
        replace_atomically(os.path.join(self.directory, "last.keras"), student.save)
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self._best():
            replace_atomically(os.path.join(self.directory, "best.keras"), student.save)
            write_json(self._best_file, {self.monitor: float(value), "epoch": epoch})


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


class StepsPerEpoch(keras.callbacks.Callback):
    """Gives the model the fit's steps per epoch, for a warm-up counted in
    epochs (`methods.DKD`): assigned to the model's `steps_per_epoch`
    variable (`R2KDDistiller` adds this callback itself). Read from the
    public `params["steps"]`; counted over the first epoch when Keras cannot
    know it in advance.

    Example:
    >>> model.steps_per_epoch = keras.Variable(0.0, trainable=False)
    >>> model.fit(train_ds, epochs=3, callbacks=[StepsPerEpoch()])
    """

    def on_train_begin(self, logs=None):
        steps = self.params.get("steps")
        if steps:
            self.model.steps_per_epoch.assign(float(steps))
        self._counting = not steps
        self._batches = 0

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the index of the last step run (steps_per_execution).
        self._batches = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if self._counting and self._batches:
            self.model.steps_per_epoch.assign(float(self._batches))
            self._counting = False


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
            self._rows = [row for row in read_csv(self.path) if row["epoch"] < epoch]

    def on_epoch_end(self, epoch, logs=None):
        self._rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        keys = ["epoch"] + sorted({k for row in self._rows for k in row} - {"epoch"})

        def write(temporary):
            with open(temporary, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=keys, restval="")
                writer.writeheader()
                for row in self._rows:
                    writer.writerow({**row, "epoch": int(row["epoch"])})

        replace_atomically(self.path, write)


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


class SigtermGuard:
    """Context manager turning SIGTERM into `TrainingInterrupted` raised
    between steps, so the run stops with a message; the backup of the last
    finished epoch stays valid (nothing is saved mid-epoch).

    Example:
    >>> with SigtermGuard():
    ...     model.fit(ds, epochs=10)
    """

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
