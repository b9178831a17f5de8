"""benchmarks/accuracy.py end to end on a tiny real Fashion-MNIST setting:
the report files are written and agree with the per-seed JSON, a rerun
skips finished configurations and reuses the cached teacher, and settings
that differ from the JSON's are refused."""

import importlib.util
import json
import os
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "accuracy.py")
_SPEC = importlib.util.spec_from_file_location("accuracy_benchmark", _PATH)
accuracy = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(accuracy)
# The harness accuracy.py imports (tests/test_study_benchmark.py covers it).
study_results = sys.modules["study_results"]

TINY = ["--train_subset", "512", "--epochs", "1", "--teacher_epochs", "1",
        "--seeds", "0", "--test_subset", "256", "--teacher", "resnet8",
        "--student", "resnet8", "--verbose", "0"]
CELL = re.compile(r"([\d.]+)(?: ± ([\d.]+))? \(n=(\d+)\)")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _table(md):
    """{(row label, column index): mean} from the markdown table."""
    cells = {}
    for line in md.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if not line.startswith("| ") or len(parts) != 3 or parts[0] == "method":
            continue
        for column, text in enumerate(parts[1:]):
            match = CELL.fullmatch(text)
            if match:
                cells[(parts[0], column)] = float(match.group(1))
    return cells


def _teacher_file(directory):
    found = [os.path.join(root, f) for root, _, files in os.walk(directory)
             for f in files if f == "teacher.keras"]
    assert len(found) == 1, found
    return found[0]


def test_paired_differences_by_hand():
    results = study_results.Results.__new__(study_results.Results)
    results.data = {"runs": {
        "r2kd/none": {"0": {"top1": 0.86}, "1": {"top1": 0.87}, "2": {"top1": 0.85}},
        "kd/none": {"0": {"top1": 0.85}, "1": {"top1": 0.88}},
        "r2kd/cutmix": {"0": {"top1": 0.90}},
        "r2kd-noblend/cutmix": {"0": {"top1": 0.89}},
    }}
    paired = dict(accuracy.paired_differences(results))
    # Common seeds 0 and 1: +1 and -1 pp -> mean 0, std sqrt(2).
    kd = paired["R2KD - KD, augment none"]
    assert (kd["positive"], kd["n"]) == (1, 2)
    assert kd["mean"] == pytest.approx(0.0, abs=1e-9)
    assert kd["std"] == pytest.approx(np.sqrt(2.0))
    blend = paired["pruned-teacher blend (R2KD, cutmix)"]
    assert blend["mean"] == pytest.approx(1.0) and blend["std"] is None
    assert "R2KD - DIST, augment none" not in paired  # no DIST run


def test_blend_diagnostics_of_an_unpruned_copy_is_the_teacher():
    images = np.random.default_rng(0).normal(size=(96, 8, 8, 3)).astype("float32")
    labels = np.arange(96) % 5
    teacher = keras.Sequential([
        keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
        keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)])
    teacher.layers[1].moving_mean.assign(np.full(4, 0.3, np.float32))
    val_ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)
    same = accuracy.blend_diagnostics(teacher, val_ds, rate=0.0)
    inference = same["inference"]
    assert inference["agree"] == 1.0 and inference["target_tv"] == pytest.approx(0.0, abs=1e-12)
    assert inference["pruned_top1"] == inference["blend_top1"] == inference["teacher_top1"]
    predicted = np.asarray(teacher.predict(images, verbose=0)).argmax(-1)
    assert inference["teacher_top1"] == pytest.approx(np.mean(predicted == labels))
    # Batch statistics instead of the moving ones change the logits.
    assert same["training"]["target_tv"] > 1e-4
    pruned = accuracy.blend_diagnostics(teacher, val_ds, rate=0.5)["inference"]
    assert 0.0 < pruned["target_tv"] < 1.0 and 0.0 <= pruned["agree"] <= 1.0


def test_runs_writes_consistent_report_and_resumes(tmp_path):
    out = str(tmp_path)
    accuracy.main(TINY + ["--configs", "none/none,r2kd/cutmix", "--output_dir", out])
    stem = os.path.join(out, "accuracy-fashion_mnist")
    with open(stem + ".json") as f:
        data = json.load(f)
    assert set(data["runs"]) == {"none/none", "r2kd/cutmix"}
    for name, runs in data["runs"].items():
        assert list(runs) == ["0"]
        assert 0.0 <= runs["0"]["top1"] <= 1.0
        assert runs["0"]["steps"] == 512 // 64  # 1 epoch of 8 full batches
    assert 0.0 <= data["teachers"]["0"]["top1"] <= 1.0
    blend = data["blend"]["0"]
    assert set(blend) == {"inference", "training"}
    # The same teacher scored twice; a near-tie may flip one of the 256 images.
    assert blend["inference"]["teacher_top1"] == pytest.approx(
        data["teachers"]["0"]["top1"], abs=1.5 / 256)
    with open(stem + ".png", "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    with open(stem + ".md") as f:
        md = f.read()
    table = _table(md)
    # Two printed decimals: half a unit of the last digit, and a hair more for
    # ties such as 15.625, which prints as 15.62.
    assert table == pytest.approx({
        ("student alone (CE)", 0): 100 * data["runs"]["none/none"]["0"]["top1"],
        ("R2KD", 1): 100 * data["runs"]["r2kd/cutmix"]["0"]["top1"],
    }, abs=0.0051)
    assert "**last** epoch" in md and "--configs none/none,r2kd/cutmix" in md
    assert "| inference mode |" in md and "| training mode |" in md
    assert "TensorFlow 2." in md and "Keras 3." in md and "NumPy" in md
    teacher_path = _teacher_file(os.path.join(out, "cache"))
    teacher_mtime = os.path.getmtime(teacher_path)

    # A result edited in the JSON survives the rerun: it is read, not retrained.
    data["runs"]["none/none"]["0"]["top1"] = 0.4242
    with open(stem + ".json", "w") as f:
        json.dump(data, f)
    accuracy.main(TINY + ["--configs", "none/none,r2kd/cutmix,kd/none",
                          "--output_dir", out])
    with open(stem + ".json") as f:
        resumed = json.load(f)
    assert resumed["runs"]["none/none"] == data["runs"]["none/none"]
    assert resumed["runs"]["r2kd/cutmix"] == data["runs"]["r2kd/cutmix"]
    assert set(resumed["runs"]) == {"none/none", "r2kd/cutmix", "kd/none"}
    assert len(resumed["sessions"]) == 2
    assert os.path.getmtime(teacher_path) == teacher_mtime  # loaded, not retrained
    with open(stem + ".md") as f:
        table = _table(f.read())
    assert table[("student alone (CE)", 0)] == pytest.approx(42.42)
    assert table[("KD", 0)] == pytest.approx(
        100 * np.mean([resumed["runs"]["kd/none"]["0"]["top1"]]), abs=0.0051)
    for name, summary in resumed["summary"].items():
        if name != "teacher":
            assert summary["mean"] == pytest.approx(
                100 * np.mean([r["top1"] for r in resumed["runs"][name].values()]))

    # Other settings would mix incomparable numbers into the same table.
    with pytest.raises(ValueError, match=r"other settings \(\{'epochs': \(1, 2\)\}"):
        accuracy.main(TINY[:2] + ["--epochs", "2"] + TINY[4:] + ["--output_dir", out])
