"""`r2kd evaluate`: scores checked by hand and against numpy on real files."""

import io
import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from r2kd_keras import evaluate
from r2kd_keras.data import NORMALIZATION

CLASSES = ["ant", "bee", "cat"]
SIZE = 16


def test_scores_by_hand():
    # Six classes, so top-5 is a real cut: the label of row 3 ranks last.
    logits = np.array([[6, 5, 4, 3, 2, 1],    # label 0: top-1 hit
                       [1, 6, 5, 4, 3, 2],    # label 0: miss, label ranked 6th -> top-5 miss
                       [1, 2, 6, 5, 4, 3],    # label 1: miss, ranked 5th -> top-5 hit
                       [1, 6, 2, 3, 4, 5]],   # label 1: hit
                      np.float32)
    labels = np.array([0, 0, 1, 1])
    names = list("abcdef")
    got = evaluate.scores(logits, labels, names)
    assert got["images"] == 4 and got["top1"] == 0.5 and got["top5"] == 0.75
    assert got["per_class"]["a"] == {"accuracy": 0.5, "images": 2}
    assert got["per_class"]["b"] == {"accuracy": 0.5, "images": 2}
    assert got["per_class"]["c"] == {"accuracy": None, "images": 0}
    expected = np.zeros((6, 6), int)
    expected[0, 0] = expected[0, 1] = expected[1, 2] = expected[1, 1] = 1
    np.testing.assert_array_equal(got["confusion"], expected)


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _folder(root, classes, per_class=3, seed=0):
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, name in enumerate(classes):
        os.makedirs(os.path.join(root, name))
        for k in range(per_class):
            image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            with open(os.path.join(root, name, f"{k}.png"), "wb") as f:
                f.write(_png(image))
            images.append(image)
            labels.append(label)
    return str(root), np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(CLASSES))(x))
    path = str(tmp_path_factory.mktemp("run") / "student.keras")
    model.save(path)
    return path, model


def _expected(model, images, labels, names):
    # Independent of the loader: PNGs are lossless, normalise by hand.
    mean, std = NORMALIZATION["imagenet"]
    x = (images.astype(np.float32) / 255.0 - np.asarray(mean)) / np.asarray(std)
    return evaluate.scores(np.asarray(model(x.astype(np.float32))), labels, names)


def test_keras_model_on_an_image_folder(tmp_path, saved_model):
    path, model = saved_model
    root, images, labels = _folder(tmp_path / "val", CLASSES)
    report = evaluate.evaluate_model(path, root, output_dir=str(tmp_path / "out"))
    expected = _expected(model, images, labels, CLASSES)
    assert report.images == 9 and report.class_names == CLASSES
    assert report.top1 == pytest.approx(expected["top1"])
    assert report.per_class == expected["per_class"] and report.confusion == expected["confusion"]
    with open(tmp_path / "out" / "evaluation.json") as f:
        written = json.load(f)
    assert written["top1"] == report.top1 and written["confusion"] == report.confusion
    assert os.path.getsize(tmp_path / "out" / "confusion_matrix.png") > 1000
    assert "top-1" in report.summary() and "least accurate classes" in report.summary()


def test_class_order_comes_from_the_run(tmp_path, saved_model):
    path, model = saved_model
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_model = str(run_dir / "student.keras")
    model.save(run_model)
    with open(run_dir / "results.json", "w") as f:
        json.dump({"class_names": CLASSES}, f)
    # A folder with two of the three classes: labels must follow the model's order.
    root, images, labels = _folder(tmp_path / "val", CLASSES[1:])
    report = evaluate.evaluate_model(run_model, root)
    expected = _expected(model, images, labels + 1, CLASSES)
    assert report.class_names == CLASSES and report.per_class["ant"]["images"] == 0
    assert report.confusion == expected["confusion"]
    assert report.output_dir == str(run_dir / "student_eval")


def test_bad_inputs(tmp_path, saved_model):
    path, _ = saved_model
    root, _, _ = _folder(tmp_path / "val", ["x", "y"])
    with pytest.raises(ValueError, match=r"outputs 3 classes but the data has 2"):
        evaluate.evaluate_model(path, root)
    with pytest.raises(ValueError, match=r"class folders the model does not know: \['x', 'y'\]"):
        evaluate.evaluate_model(path, root, class_names=CLASSES)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate.evaluate_model(str(tmp_path / "none.keras"), root)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"0")
    with pytest.raises(ValueError, match=r"must be a \.keras or a \.tflite file"):
        evaluate.evaluate_model(str(onnx), root)
