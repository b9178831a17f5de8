"""r2kd_keras.inputs: the check of a teacher the user gave against the images
it is fed. A teacher no better than guessing is flagged with what to check,
by hand on its threshold and end to end on real PNG files, where the same
teacher passes with its classes in the folders' order and is flagged with
them in another."""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

from r2kd_keras import inputs
from r2kd_keras import train
from r2kd_keras.data.preprocessing import DatasetInfo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Solid colours, one class each; sorted folder names give the labels.
COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}


def _info(num_classes=10, normalization="imagenet"):
    return DatasetInfo(name="image_folder", num_classes=num_classes, image_size=32,
                       channels=3, train_examples=100, val_examples=2000,
                       class_names=[f"class{k}" for k in range(num_classes)],
                       normalization=normalization)


@pytest.mark.parametrize("accuracy, flagged", [
    (0.0, True), (0.11, True), (0.15, True), (0.1501, False), (0.9, False)])
def test_a_teacher_within_five_points_of_chance_is_flagged(accuracy, flagged):
    # 10 classes: chance 10%, flagged up to 10% + 5 points.
    message = inputs.teacher_warning(accuracy, _info())
    assert (message is not None) == flagged


def test_the_warning_says_what_the_images_are_and_the_label_order():
    message = inputs.teacher_warning(0.11, _info())
    assert message.startswith("the teacher scores 11.0% top-1 on the 2,000 validation "
                              "images, no better than guessing (10.0% for 10 classes)")
    assert "this label order (class0, class1, class2, class3, class4, class5, ...)" in message
    # ImageNet's statistics, as published.
    assert "mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)" in message
    assert "32x32, 3 channels, values in [0, 1]" in message
    assert "a layer in front that turns these back into pixels" in message
    two = inputs.teacher_warning(0.5, _info(2, normalization=((0.5,), (0.25,))))
    assert "(50.0% for 2 classes)" in two and "mean (0.500, 0.500, 0.500)" in two


def _colour_folder(root, per_class):
    for name, rgb in COLOURS.items():
        os.makedirs(os.path.join(root, name))
        for k in range(per_class):
            image = np.empty((32, 32, 3), np.uint8)
            image[:] = rgb
            path = os.path.join(root, name, f"{k}.png")
            keras.utils.save_img(path, image)
    return str(root)


def _colour_teacher(path, channel_to_class):
    """Logits 10 x (mean of the input channel each class reads): after the
    ImageNet normalisation the colour's own channel is the largest."""
    kernel = np.zeros((3, 3), np.float32)
    for channel, label in enumerate(channel_to_class):
        kernel[channel, label] = 10.0
    teacher = keras.Sequential([keras.Input((32, 32, 3)),
                                keras.layers.GlobalAveragePooling2D(),
                                keras.layers.Dense(3)])
    teacher.layers[-1].set_weights([kernel, np.zeros(3, np.float32)])
    teacher.save(path)
    return path


def test_a_given_teacher_is_checked_on_the_served_images(tmp_path):
    train_dir = _colour_folder(tmp_path / "train", 8)
    val_dir = _colour_folder(tmp_path / "val", 4)
    # Labels in sorted folder order: blue 0, green 1, red 2; channels R, G, B.
    right = _colour_teacher(str(tmp_path / "right.keras"), channel_to_class=(2, 1, 0))
    config = train.TrainConfig(
        dataset="image_folder", data_dir=train_dir, val_dir=val_dir, teacher_model=right,
        student="resnet8", epochs=1, batch_size=8, image_size=32, export="none",
        output_dir=str(tmp_path / "right"), verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = train.run(config)
    # Evaluating on a folder's images (no known length) ends without Keras's
    # "ran out of data" warning, which would read as a short epoch.
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    assert results["teacher"]["val_accuracy"] == 1.0
    assert results["teacher"]["warning"] is None

    # The same teacher with its classes in R, G, B order: only green is right.
    wrong = _colour_teacher(str(tmp_path / "wrong.keras"), channel_to_class=(0, 1, 2))
    out = str(tmp_path / "wrong")
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run(
        [sys.executable, "-m", "r2kd_keras", "distill", f"--data_dir={train_dir}",
         f"--val_dir={val_dir}", f"--teacher_model={wrong}", "--student=resnet8",
         "--epochs=1", "--batch_size=8", "--image_size=32", "--export=none",
         f"--output_dir={out}"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "results.json")) as f:
        teacher = json.load(f)["teacher"]
    assert teacher["val_accuracy"] == pytest.approx(1 / 3)
    assert teacher["warning"].startswith("the teacher scores 33.3% top-1 on the 12 "
                                         "validation images")
    assert "this label order (blue, green, red)" in teacher["warning"]
    # Said when it is found (before the student trains) and again under the table.
    assert teacher["warning"] in result.stderr
    table_end = result.stdout.index("| teacher wrong.keras | 33.33 |")
    assert f"warning: {teacher['warning']}" in result.stdout[table_end:]
