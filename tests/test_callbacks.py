"""r2kd_keras.callbacks: atomic replacement of every file a run writes,
checked with real faults: a full disk (a tiny tmpfs mounted for the test), a
read-only mount and a path under a file; the backup callback resumes one
consistent epoch; TensorBoard scalars without tensorboard."""

import contextlib
import csv
import json
import os
import subprocess
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from r2kd_keras import callbacks
from r2kd_keras.distiller import R2KDDistiller
from r2kd_keras.train.outputs import check_writable


@contextlib.contextmanager
def mounted_tmpfs(options):
    """A real tmpfs mounted with `options` (e.g. `"size=256k"`, `"ro"`) on a
    fresh folder; skips the test where mounting is not allowed (not root,
    no CAP_SYS_ADMIN). Tests run as root, where chmod does not stop writes."""
    point = tempfile.mkdtemp(prefix="r2kd_tmpfs_")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", point],
                             capture_output=True, text=True)
    if mounted.returncode:
        os.rmdir(point)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", point], check=True)
        os.rmdir(point)


def fill(directory):
    """Fills the file system of `directory`; returns the filler's path."""
    filler = os.path.join(directory, "filler")
    with open(filler, "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
    assert os.statvfs(directory).f_bavail == 0
    return filler


def _partial_files(directory):
    return [n for _, _, files in os.walk(directory) for n in files if ".partial" in n]


def _model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(32, 4)).astype("float32"),
            rng.integers(0, 3, 32).astype("int32"))


def test_partial_path_keeps_the_extension_savers_check():
    assert callbacks.partial_path("/r/last.keras") == "/r/last.partial.keras"
    assert callbacks.partial_path("b/epoch3.weights.h5") == "b/epoch3.partial.weights.h5"
    assert callbacks.partial_path("metrics.csv") == "metrics.partial.csv"


def test_disk_full_keeps_the_previous_json_and_csv():
    with mounted_tmpfs("size=64k") as disk:
        path = os.path.join(disk, "results.json")
        callbacks.write_json(path, {"top1": 0.5})
        csv_path = os.path.join(disk, "metrics.csv")
        metrics = callbacks.MetricsCSV(csv_path)
        metrics.on_epoch_begin(0)
        metrics.on_epoch_end(0, {"loss": 2.0})
        filler = fill(disk)

        with pytest.raises(callbacks.CheckpointWriteError,
                           match=rf"Could not write {path} \(No space left on device\)"):
            callbacks.write_json(path, {"top1": 0.9, "pad": "x" * 8192})
        with pytest.raises(callbacks.CheckpointWriteError, match="metrics.csv"):
            metrics.on_epoch_end(1, {"loss": 1.0, "pad": 1.0})
        with open(path) as f:
            assert json.load(f) == {"top1": 0.5}
        assert callbacks.read_csv(csv_path) == [{"epoch": 0.0, "loss": 2.0}]
        assert _partial_files(disk) == []

        os.remove(filler)  # space again: the next epoch writes both rows
        metrics.on_epoch_end(2, {"loss": 0.5})
        with open(csv_path, newline="") as f:
            assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1", "2"]


def test_disk_full_during_a_student_checkpoint_keeps_the_previous_one():
    student = _model()
    distiller = R2KDDistiller(student, None, distillation="none")
    with mounted_tmpfs("size=256k") as disk:
        checkpoint = callbacks.StudentCheckpoint(disk)
        checkpoint.set_model(distiller)
        checkpoint.on_epoch_end(0, {"val_accuracy": 0.5})
        saved = [w.copy() for w in student.get_weights()]
        student.set_weights([w + 1.0 for w in saved])
        filler = fill(disk)

        with pytest.raises(callbacks.CheckpointWriteError, match="last.keras"):
            checkpoint.on_epoch_end(1, {"val_accuracy": 0.9})
        assert _partial_files(disk) == []
        for name in ("last.keras", "best.keras"):
            loaded = keras.saving.load_model(os.path.join(disk, name), compile=False)
            for a, b in zip(loaded.get_weights(), saved):
                np.testing.assert_array_equal(a, b)
        with open(os.path.join(disk, "best.json")) as f:
            assert json.load(f) == {"val_accuracy": 0.5, "epoch": 0}
        os.remove(filler)


def test_backup_resumes_the_last_committed_epoch_after_a_full_disk():
    x, y = _data()
    with mounted_tmpfs("size=512k") as disk:
        backup = os.path.join(disk, "backup")
        model = _model()
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[callbacks.AtomicBackupAndRestore(backup)])
        after_epoch_1 = [w.copy() for w in model.get_weights()]
        iterations = int(model.optimizer.iterations)
        filler = fill(disk)
        # Resumes at epoch 1, trains epoch 2, and fails committing it.
        with pytest.raises(callbacks.CheckpointWriteError, match="epoch2.weights.h5"):
            model.fit(x, y, epochs=2, verbose=0,
                      callbacks=[callbacks.AtomicBackupAndRestore(backup)])
        assert sorted(os.listdir(backup)) == ["epoch1.weights.h5", "training_metadata.json"]
        os.remove(filler)

        fresh = _model()
        restore = callbacks.AtomicBackupAndRestore(backup)
        history = fresh.fit(x, y, epochs=1, verbose=0, callbacks=[restore])
        # Epoch 1 of 1 is done already: nothing trains, the state is epoch 1's.
        assert history.epoch == []
        for a, b in zip(fresh.get_weights(), after_epoch_1):
            np.testing.assert_array_equal(a, b)
        assert int(fresh.optimizer.iterations) == iterations


def test_backup_commits_by_the_metadata_and_removes_the_previous_weights(tmp_path):
    x, y = _data()
    backup = str(tmp_path / "backup")
    model = _model()
    model.fit(x, y, epochs=3, verbose=0, callbacks=[callbacks.AtomicBackupAndRestore(backup)])
    assert sorted(os.listdir(backup)) == ["epoch3.weights.h5", "training_metadata.json"]
    with open(os.path.join(backup, "training_metadata.json")) as f:
        assert json.load(f) == {"epoch": 3, "weights": "epoch3.weights.h5"}
    # A non-chief worker reads the chief's folder and writes its own.
    other = str(tmp_path / "worker")
    resumed = _model()
    history = resumed.fit(x, y, epochs=4, verbose=0,
                          callbacks=[callbacks.AtomicBackupAndRestore(backup, other)])
    assert history.epoch == [3]
    assert sorted(os.listdir(other)) == ["epoch4.weights.h5", "training_metadata.json"]
    assert sorted(os.listdir(backup)) == ["epoch3.weights.h5", "training_metadata.json"]


def test_output_folder_that_cannot_be_written(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    with pytest.raises(callbacks.CheckpointWriteError,
                       match=rf"output_dir='{a_file}/run' cannot be written \(Not a directory\)"):
        check_writable(str(a_file / "run"))
    with mounted_tmpfs("ro") as read_only:
        for directory in (read_only, os.path.join(read_only, "run")):
            with pytest.raises(callbacks.CheckpointWriteError,
                               match=r"cannot be written \(Read-only file system\)"):
                check_writable(directory)
    check_writable(str(tmp_path / "new" / "run"))
    assert os.listdir(tmp_path / "new" / "run") == []  # the probe is removed


def test_scalar_summaries_write_tensorboard_scalars(tmp_path):
    callback = callbacks.ScalarSummaries(str(tmp_path))
    callback.on_epoch_end(0, {"loss": 1.5, "val_accuracy": 0.25})
    callback.on_train_end()
    seen = {}
    for run in ("train", "validation"):
        (event_file,) = os.listdir(tmp_path / run)
        for record in tf.data.TFRecordDataset(str(tmp_path / run / event_file)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                seen[(run, value.tag)] = float(tf.make_ndarray(value.tensor))
    assert seen == {("train", "epoch_loss"): 1.5,
                    ("validation", "epoch_accuracy"): 0.25}


