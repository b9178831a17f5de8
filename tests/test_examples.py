"""End-to-end runs of the example scripts as users run them: real processes,
real files in each dataset's on-disk layout, SIGTERM / SIGKILL and resume,
mirrored replicas, and two multi-worker processes talking over 127.0.0.1."""

import csv
import gzip
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.data import images as im

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(REPO, "examples")


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=REPO, KERAS_BACKEND="tensorflow",
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _command(script, *args):
    return [sys.executable, os.path.join(EXAMPLES, script), "--verbose=0", *args]


def _run(script, *args, timeout=300, **env):
    result = subprocess.run(_command(script, *args), cwd=REPO, env=_env(**env),
                            capture_output=True, text=True, timeout=timeout)
    return result


def _ok(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _idx(path, array):
    # IDX: 0x00 0x00, type 0x08 (ubyte), number of dimensions, big-endian sizes.
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(root, train=512, test=128, seed=0):
    """Fashion-MNIST's four IDX files with learnable fake images: class k is
    a bright 6x6 square at a class-specific place on noise."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = np.arange(count) % 10
        rng.shuffle(labels)
        pixels = rng.integers(0, 60, (count, 28, 28))
        for i, label in enumerate(labels):
            row, col = divmod(int(label), 4)
            pixels[i, 2 + 8 * row:8 + 8 * row, 2 + 6 * col:8 + 6 * col] = 230
        _idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"), pixels)
        _idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"), labels)
    return root


def write_tiny_imagenet(root, classes=4, per_class=8, val_per_class=2):
    """A miniature `tiny-imagenet-200/` tree of real 64x64 JPEGs, one colour
    per class (the layout of the official zip)."""
    base = os.path.join(root, "tiny-imagenet-200")
    wnids = [f"n{k:08d}" for k in range(classes)]
    im.write(os.path.join(base, "wnids.txt"), "\n".join(wnids).encode() + b"\n")
    im.write(os.path.join(base, "words.txt"),
             "".join(f"{w}\tthing {k}\n" for k, w in enumerate(wnids)).encode())
    rng = np.random.default_rng(0)
    lines = []
    for k, wnid in enumerate(wnids):
        colour = im.COLOURS[k % len(im.COLOURS)]
        for j in range(per_class):
            noisy = np.clip(im.solid(colour) + rng.integers(-20, 20, (64, 64, 3)), 0, 255)
            im.write(os.path.join(base, "train", wnid, "images", f"{wnid}_{j}.JPEG"),
                     im.jpeg_bytes(noisy))
        for j in range(val_per_class):
            name = f"val_{k}_{j}.JPEG"
            im.write(os.path.join(base, "val", "images", name),
                     im.jpeg_bytes(im.solid(colour)))
            lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    im.write(os.path.join(base, "val", "val_annotations.txt"), "\n".join(lines).encode())
    return base


@pytest.fixture(scope="module")
def fmnist_dir(tmp_path_factory):
    return write_fashion_mnist(str(tmp_path_factory.mktemp("fmnist")))


def _csv_epochs(path):
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _backup_epoch(directory):
    path = os.path.join(directory, "backup", "training_metadata.json")
    try:
        with open(path) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError):
        return 0


def _wait_for_epoch(process, directory, epoch, timeout=120):
    deadline = time.time() + timeout
    while _backup_epoch(directory) < epoch:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.time() < deadline, "training did not reach the epoch in time"
        time.sleep(0.05)


def test_sigterm_and_sigkill_mid_epoch_then_resume(fmnist_dir, tmp_path):
    out = str(tmp_path / "run")
    args = ["--data_dir", fmnist_dir, "--output_dir", out, "--distillation", "none",
            "--augment", "none", "--student", "resnet8", "--epochs", "4",
            "--steps_per_epoch", "25", "--batch_size", "8", "--val_subset", "16",
            "--export", "none"]
    # The CIFAR-100 script on Fashion-MNIST files: one run, no teacher stage.
    command = _command("cifar100.py", "--dataset", "fashion_mnist", *args)

    # SIGTERM once epoch 1 is saved: a clear message and exit status 143.
    process = subprocess.Popen(command, cwd=REPO, env=_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_epoch(process, out, 1)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-3000:]
    assert "run the same command again to resume" in stderr
    after_term = _backup_epoch(out)
    assert 1 <= after_term < 4

    # The same command resumes; SIGKILL it mid-epoch after one more epoch.
    process = subprocess.Popen(command, cwd=REPO, env=_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_epoch(process, out, after_term + 1)
    time.sleep(0.3)
    process.kill()
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(out, "results.json"))

    result = _ok(subprocess.run(command, cwd=REPO, env=_env(), text=True,
                                capture_output=True, timeout=300))
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    # An uninterrupted run makes epochs * steps_per_epoch optimizer steps.
    assert results["students"]["none"]["steps"] == 4 * 25
    assert _csv_epochs(os.path.join(out, "metrics.csv")) == [0, 1, 2, 3]
    assert "student alone" in result.stdout


def test_tinyimagenet_mirrored_two_cpu_replicas(tmp_path):
    root = write_tiny_imagenet(str(tmp_path / "data"))
    out = str(tmp_path / "run")
    result = _ok(_run(
        "tinyimagenet.py", "--data_dir", root, "--output_dir", out,
        "--strategy", "mirrored", "--cpu_replicas", "2", "--image_size", "32",
        "--teacher", "resnet8",
        "--student", "resnet8", "--epochs", "1", "--batch_size", "8",
        "--student_sparsity", "0.5", "--export", "dynamic"))
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    student = results["students"]["r2kd"]
    assert results["replicas"] == 2 and results["num_classes"] == 4
    assert results["teacher"]["source"] == "trained"
    assert student["steps"] == 32 // 8
    assert student["sparsity"] == pytest.approx(0.5, abs=0.02)
    assert student["export"]["bytes_raw"] == os.path.getsize(os.path.join(out, "student.tflite"))
    assert 0.0 <= student["accuracy"] <= 1.0 and student["images_per_sec"] > 0
    for name in ("teacher.keras", "best.keras", "last.keras", "metrics.csv",
                 "curves.png", "backup/training_metadata.json",
                 "teacher/last.keras", "teacher/metrics.csv"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert os.listdir(os.path.join(out, "logs", "train"))
    with open(os.path.join(out, "best.json")) as f:
        assert json.load(f)["epoch"] == 0
    with open(os.path.join(out, "curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "R2KD" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--student", "resnet9"], "student='resnet9' is not a model of the zoo"),
        (["--data_dir", "/nonexistent/fmnist"], "apt-get install dataset-fashion-mnist"),
        (["--strategy", "mirrored", "--cpu_replicas", "2", "--batch_size", "15"],
         "batch_size=15 (the global batch) is not divisible by the 2 replicas"),
    ],
)
def test_bad_input_fails_fast_with_a_clear_message(tmp_path, args, message):
    start = time.time()
    result = _run("fashion_mnist.py", "--output_dir", str(tmp_path), *args, timeout=120)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert time.time() - start < 60


def test_read_only_output_folder_fails_before_training(fmnist_dir):
    from tests.test_callbacks import mounted_tmpfs

    with mounted_tmpfs("ro") as read_only:
        out = os.path.join(read_only, "run")
        result = _run("cifar100.py", "--dataset", "fashion_mnist", "--data_dir", fmnist_dir,
                      "--output_dir", out, "--distillation", "none", "--epochs", "1",
                      timeout=120)
    assert result.returncode == 1, result.stderr[-3000:]
    assert (f"error: [Errno 30] output_dir={out!r} cannot be written (Read-only file "
            "system); pass a folder you can write to with --output_dir.") in result.stderr
    assert "Traceback" not in result.stderr


def _partials(directory):
    # Checkpoint writes only: run_config.json is written once, before training.
    return [os.path.join(d, f) for d, _, fs in os.walk(directory) for f in fs
            if ".partial." in f and not f.startswith("run_config.")]


def _kill_during_a_write(command, out, attempts=4):
    """Starts `command` and, once epoch 1 is backed up, SIGKILLs it while a
    checkpoint file is being written (a `.partial.` file exists); retries
    when the write finished between the look and the kill. Returns the
    partial files left."""
    for _ in range(attempts):
        process = subprocess.Popen(command, cwd=REPO, env=_env(), text=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_for_epoch(process, out, 1, timeout=300)
        deadline = time.time() + 300
        while not _partials(out):
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.time() < deadline, "no checkpoint write was seen"
            time.sleep(0.001)
        process.kill()
        process.communicate(timeout=60)
        left = _partials(out)
        if left:
            return left
    pytest.fail(f"{attempts} kills all landed between writes")


@pytest.mark.large
def test_sigkill_during_a_checkpoint_write_then_resume_and_refuse_other_settings(
        fmnist_dir, tmp_path):
    import h5py
    import keras

    out = str(tmp_path / "run")
    args = ["--dataset", "fashion_mnist", "--data_dir", fmnist_dir, "--output_dir", out,
            "--distillation", "none", "--augment", "none", "--student", "resnet8",
            "--epochs", "4", "--steps_per_epoch", "10", "--batch_size", "8",
            "--val_subset", "16", "--export", "none"]
    command = _command("cifar100.py", *args)
    left = _kill_during_a_write(command, out)
    # Every committed file is whole: the backup's weights, the checkpoints.
    with open(os.path.join(out, "backup", "training_metadata.json")) as f:
        metadata = json.load(f)
    assert metadata["epoch"] >= 1
    with h5py.File(os.path.join(out, "backup", metadata["weights"]), "r") as f:
        assert list(f.keys())
    for name in ("last.keras", "best.keras"):
        if os.path.exists(os.path.join(out, name)):
            keras.saving.load_model(os.path.join(out, name), compile=False)

    result = _ok(subprocess.run(command, cwd=REPO, env=_env(), text=True,
                                capture_output=True, timeout=300))
    with open(os.path.join(out, "results.json")) as f:
        assert json.load(f)["students"]["none"]["steps"] == 4 * 10, left
    assert _csv_epochs(os.path.join(out, "metrics.csv")) == [0, 1, 2, 3]
    assert _partials(out) == []
    assert "student alone" in result.stdout

    # Other settings on the same folder: refused before training, outputs kept.
    mtime = os.path.getmtime(os.path.join(out, "results.json"))
    refused = _run("cifar100.py", *args, "--epochs", "5", "--lr", "0.1", timeout=120)
    assert refused.returncode == 1
    assert ("holds a run with other settings: --epochs: 4 (stored) -> 5 (now); "
            "--lr: 0.05 (stored) -> 0.1 (now)") in refused.stderr
    assert "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    assert os.path.getmtime(os.path.join(out, "results.json")) == mtime
    # A flag that cannot change results may differ: the finished run resumes.
    _ok(_run("cifar100.py", *args, "--verbose=1", timeout=300))
    with open(os.path.join(out, "results.json")) as f:
        assert json.load(f)["students"]["none"]["steps"] == 4 * 10


@pytest.mark.large
def test_disk_full_during_training_stops_at_the_write_and_resumes(fmnist_dir, tmp_path):
    import keras

    from tests.test_callbacks import mounted_tmpfs

    with mounted_tmpfs("size=1200k") as disk:
        out = os.path.join(disk, "run")
        args = ["--dataset", "fashion_mnist", "--data_dir", fmnist_dir, "--output_dir",
                out, "--distillation", "none", "--augment", "none", "--student",
                "resnet8", "--epochs", "3", "--steps_per_epoch", "4", "--batch_size",
                "8", "--val_subset", "16", "--export", "none"]
        full = _run("cifar100.py", *args, timeout=300)
        assert full.returncode == 1, full.stderr[-3000:]
        assert "error: [Errno 28] Could not write" in full.stderr
        assert "(No space left on device); the previous checkpoint is intact" in full.stderr
        assert "Traceback" not in full.stderr
        assert _partials(out) == []
        for name in ("last.keras", "best.keras"):
            if os.path.exists(os.path.join(out, name)):
                keras.saving.load_model(os.path.join(out, name), compile=False)

        subprocess.run(["mount", "-o", "remount,size=64m", disk], check=True)
        _ok(_run("cifar100.py", *args, timeout=300))
        with open(os.path.join(out, "results.json")) as f:
            assert json.load(f)["students"]["none"]["steps"] == 3 * 4
        assert _csv_epochs(os.path.join(out, "metrics.csv")) == [0, 1, 2]


@pytest.mark.large
def test_fashion_mnist_demo_quick(fmnist_dir, tmp_path):
    out = str(tmp_path / "run")
    result = _ok(_run("fashion_mnist.py", "--data_dir", fmnist_dir, "--output_dir", out,
                      "--epochs", "1", "--train_subset", "256", "--batch_size", "32"))
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    names = [line.split("|")[1].strip() for line in lines[1:]]
    assert names == ["teacher resnet14", "resnet8 student alone", "resnet8 KD",
                     "resnet8 R2KD"]
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    for method in ("none", "kd", "r2kd"):
        row = results["students"][method]
        assert row["steps"] == 256 // 32
        assert row["sparsity"] == pytest.approx(0.5, abs=0.02)
        assert os.path.isfile(os.path.join(out, method, "student.tflite"))


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _student_weights(path):
    import keras

    return [np.asarray(w) for w in keras.saving.load_model(path, compile=False).get_weights()]


@pytest.mark.large
def test_multiworker_two_processes_match_single_process(fmnist_dir, tmp_path):
    import keras

    from r2kd_keras.models import get_model

    teacher_path = str(tmp_path / "teacher.keras")
    keras.utils.set_random_seed(3)
    get_model("resnet8", 10, (32, 32, 3)).save(teacher_path)
    common = ["--data_dir", fmnist_dir, "--teacher", "resnet8", "--teacher_weights",
              teacher_path, "--student", "resnet8", "--augment", "none", "--epochs", "1",
              "--steps_per_epoch", "4", "--batch_size", "16", "--val_subset", "32",
              "--export", "none"]
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    outs = [str(tmp_path / "chief"), str(tmp_path / "worker1")]
    temps = [tmp_path / "tmp0", tmp_path / "tmp1"]
    workers = []
    for index in range(2):
        temps[index].mkdir()
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen(
            _command("cifar100.py", "--dataset", "fashion_mnist", "--strategy",
                     "multiworker", "--output_dir", outs[index], *common),
            cwd=REPO, env=_env(TF_CONFIG=config, TMPDIR=str(temps[index])),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for worker in workers:
        _, stderr = worker.communicate(timeout=400)
        assert worker.returncode == 0, stderr[-3000:]
    single = str(tmp_path / "single")
    _ok(_run("cifar100.py", "--dataset", "fashion_mnist", "--strategy", "mirrored",
             "--cpu_replicas", "2", "--output_dir", single, *common))

    # Only the chief wrote; the other worker's temporary outputs are gone.
    written = [os.path.join(d, f) for d, _, fs in os.walk(outs[1]) for f in fs]
    assert written == []
    assert list(temps[1].iterdir()) == []
    assert os.path.isfile(os.path.join(outs[0], "results.json"))
    with open(os.path.join(outs[0], "results.json")) as f:
        assert json.load(f)["students"]["r2kd"]["steps"] == 4
    # Two workers of one replica each = one process of two replicas on the
    # same global batch (same per-replica BatchNorm batches).
    for a, b in zip(_student_weights(os.path.join(outs[0], "last.keras")),
                    _student_weights(os.path.join(single, "last.keras"))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _mock_tfds_run(script, data_dir, out, *args):
    # tfds.testing.mock_data patches tfds in-process: run the example inside it.
    code = (
        "import runpy, sys\n"
        "import tensorflow_datasets as tfds\n"
        f"sys.argv = {[script, *args]!r}\n"
        "with tfds.testing.mock_data(num_examples=16, "
        "policy=tfds.testing.MockPolicy.USE_CODE):\n"
        f"    runpy.run_path({os.path.join(EXAMPLES, script)!r}, run_name='__main__')\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=400)


@pytest.mark.parametrize("script, tfds_name, extra", [
    ("cifar100.py", "cifar100", []),
    pytest.param("fgvr.py", "stanford_dogs",
                 ["--fgvr_dataset", "stanford_dogs", "--image_size", "32"],
                 marks=pytest.mark.large),
    pytest.param("imagenet.py", "imagenet2012", ["--image_size", "32"],
                 marks=pytest.mark.large),
])
def test_tfds_examples_on_mock_data(tmp_path, script, tfds_name, extra):
    data_dir = tmp_path / "tfds"
    # The loaders check for a prepared dataset before calling tfds.
    (data_dir / tfds_name / "1.0.0").mkdir(parents=True)
    (data_dir / tfds_name / "1.0.0" / "dataset_info.json").write_text("{}")
    out = str(tmp_path / "run")
    result = _mock_tfds_run(
        script, str(data_dir), out, "--verbose=0", "--data_dir", str(data_dir),
        "--output_dir", out, "--teacher", "resnet8", "--student", "resnet8",
        "--epochs", "1", "--batch_size", "8", "--steps_per_epoch", "2",
        "--val_subset", "8", "--export", "none", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["students"]["r2kd"]["steps"] == 2
