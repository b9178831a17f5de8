"""The `r2kd` command on a user's own images: bad input stopped before any
training with nothing written, and (large) the whole job end to end on
Fashion-MNIST written as a JPEG folder tree, run as a user runs it."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from r2kd_keras import cli, inputs, models, train
from r2kd_keras.data import NORMALIZATION, idx
from tests.data import images as im
from tests.models.test_external import save_tiny_hub_classifier

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
           "sneaker", "bag", "boot"]


def _colour_tree(root, classes=3, per_class=4, size=20):
    for label in range(classes):
        for k in range(per_class):
            image = im.solid(im.COLOURS[label], size)
            image[:4, :4] = 10 * k
            im.write(os.path.join(root, f"class{label}", f"{k}.jpg"), im.jpeg_bytes(image))
    return str(root)


def _cnn(input_shape, classes, path):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(classes)(x), name="my_cnn").save(path)
    return path


def _config(tmp_path, **changes):
    values = dict(dataset="image_folder", data_dir=_colour_tree(tmp_path / "photos"),
                  student="resnet8", batch_size=2, epochs=1, export="none",
                  output_dir=str(tmp_path / "out"))
    values.update(changes)
    return train.TrainConfig(**values)


# ------------------------------------------------------------ the command
def test_usage_and_unknown_command(capsys):
    assert cli.main(["r2kd"]) == 0
    assert "distill" in capsys.readouterr().out
    assert cli.main(["r2kd", "train"]) == 2
    assert "unknown command 'train'" in capsys.readouterr().err


# ------------------------------------------ bad input: before any training
def _fails_before_writing(config, error, message):
    with pytest.raises(error, match=message):
        train.run(config)
    assert not os.path.exists(config.output_dir)


def test_one_class_folder(tmp_path):
    config = _config(tmp_path, data_dir=_colour_tree(tmp_path / "one", classes=1))
    _fails_before_writing(config, ValueError, r"has 1 class folder.*at least 2")


def test_class_without_readable_image(tmp_path):
    config = _config(tmp_path)
    im.write(os.path.join(config.data_dir, "class9", "x.jpg"), b"not an image")
    with pytest.warns(UserWarning, match="not readable images"):
        _fails_before_writing(config, ValueError, r"no readable image: \['class9'\]")


def test_val_dir_with_other_classes(tmp_path):
    config = _config(tmp_path, val_dir=_colour_tree(tmp_path / "val", classes=2))
    _fails_before_writing(config, ValueError, r"only in data_dir: \['class2'\]")


@pytest.mark.parametrize("shape, classes, message", [
    ((32, 32, 3), 5, r"teacher_model=.* outputs 5 classes, but the data \(photos\) "
                     r"has 3 classes"),
    ((48, 48, 3), 3, r"takes 48x48 images but the data is served at 32x32; "
                     r"pass --image_size=48"),
])
def test_teacher_file_that_does_not_fit_the_data(tmp_path, shape, classes, message):
    teacher = _cnn(shape, classes, str(tmp_path / "teacher.keras"))
    config = _config(tmp_path, teacher_model=teacher, image_size=32)
    _fails_before_writing(config, ValueError, message)


def test_teacher_input_size_is_the_default_served_size(tmp_path):
    teacher = _cnn((48, 48, 3), 3, str(tmp_path / "teacher.keras"))
    _, val_ds, info = train.load_data(_config(tmp_path, teacher_model=teacher))
    assert info.image_size == 48 and next(iter(val_ds))[0].shape[1:] == (48, 48, 3)


def test_unknown_keras_name(tmp_path):
    config = _config(tmp_path, student="keras:EfficientNetBO")
    _fails_before_writing(config, ValueError,
                          r"student='keras:EfficientNetBO' is not a keras.applications "
                          r"model\. Did you mean keras:EfficientNetB0")


def test_teacher_weights_file_with_other_class_count(tmp_path):
    path = str(tmp_path / "resnet8.keras")
    models.get_model("resnet8", 10, (32, 32, 3)).save(path)
    config = _config(tmp_path, teacher="resnet8", teacher_weights=path, image_size=32)
    _fails_before_writing(config, ValueError, r"outputs 10 classes, but the data .* has 3")


@pytest.mark.parametrize("change, message", [
    ({"dataset": "image_folder", "data_dir": None}, "needs data_dir"),
    ({"dataset": "cifar100", "val_dir": "v"}, "applies to dataset='image_folder' only"),
    ({"val_fraction": 1.0}, r"val_fraction=1.0 must be in \[0, 1\)"),
    ({"student_weights": "imagenet"}, "applies to keras: students only"),
    ({"teacher_model": __file__}, r"is not a \.keras file"),
])
def test_config_checks(change, message):
    with pytest.raises(ValueError, match=message):
        train.TrainConfig(**change).validate()


def test_keras_hub_teacher_is_loaded_as_is_and_checked(tmp_path):
    preset = str(tmp_path / "hub")
    classifier = save_tiny_hub_classifier(preset, num_classes=3, size=32)
    config = _config(tmp_path, teacher=f"keras_hub:{preset}", image_size=32)
    _, val_ds, info = train.load_data(config)
    teacher = inputs.given_teacher(config, info, (32, 32, 3))
    x = next(iter(val_ds))[0]
    np.testing.assert_allclose(teacher(x), classifier(x), atol=1e-5)
    other = _colour_tree(tmp_path / "four", classes=4)
    _fails_before_writing(_config(tmp_path, data_dir=other, teacher=config.teacher,
                                  image_size=32),
                          ValueError, r"outputs 3 classes, but the data \(four\) has 4")


# ------------------------------------------------------------- end to end
def _env():
    env = dict(os.environ, PYTHONPATH=REPO, KERAS_BACKEND="tensorflow",
               CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command's own default is tested
    return env


def _r2kd(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "r2kd_keras", *args], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=timeout)


def _fashion_tree(root, first, per_class):
    """Fashion-MNIST test images from Debian's files as `root/<class>/<n>.jpg`,
    32x32 RGB."""
    images = idx.read_idx(os.path.join(idx.DEBIAN_DIR, "t10k-images-idx3-ubyte.gz"))
    labels = idx.read_idx(os.path.join(idx.DEBIAN_DIR, "t10k-labels-idx1-ubyte.gz"))
    for label, name in enumerate(FASHION):
        for n in np.flatnonzero(labels == label)[first:first + per_class]:
            picture = Image.fromarray(images[n]).resize((32, 32)).convert("RGB")
            im.write(os.path.join(root, name, f"{n}.jpg"), im.jpeg_bytes(np.asarray(picture)))
    return str(root)


@pytest.mark.large
@pytest.mark.skipif(not os.path.isdir(idx.DEBIAN_DIR),
                    reason="apt-get install dataset-fashion-mnist")
def test_distill_own_folder_any_teacher_keras_student_pruned_int8(tmp_path):
    # The README's student: MobileNetV3's hard-swish (keras.ops nodes) prunes too.
    train_dir = _fashion_tree(tmp_path / "train", 0, 12)
    val_dir = _fashion_tree(tmp_path / "val", 12, 4)
    teacher = _cnn((32, 32, 3), 10, str(tmp_path / "teacher.keras"))
    out = str(tmp_path / "out")
    result = _r2kd("distill", "--dataset=image_folder", f"--data_dir={train_dir}",
                   f"--val_dir={val_dir}", f"--teacher_model={teacher}",
                   "--student=keras:MobileNetV3Small", "--epochs=1", "--batch_size=20",
                   "--student_sparsity=0.5", "--export=int8", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("results.json", "metrics.csv", "curves.png", "student.tflite",
                 "last.keras"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert not os.path.exists(os.path.join(out, "teacher.keras"))  # given, not trained
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["class_names"] == sorted(FASHION)
    assert results["teacher"]["source"] == teacher
    student = results["students"]["r2kd"]
    assert student["sparsity"] == pytest.approx(0.5, abs=0.05)
    # Quiet output that ends with the table and the output paths.
    printed = result.stdout + result.stderr
    for noise in ("Assets written", "I0000", "signature_serialization", "retracing"):
        assert noise not in printed, noise
    assert "| teacher teacher.keras |" in result.stdout
    assert os.path.join(out, "student.tflite") in result.stdout.split("outputs:")[1]

    # The file runs in LiteRT, and r2kd evaluate scores it like the export check.
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.path.join(out, "student.tflite"))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    mean, std = NORMALIZATION["imagenet"]
    image = np.asarray(Image.open(os.path.join(val_dir, "bag", os.listdir(
        os.path.join(val_dir, "bag"))[0])), np.float32) / 255.0
    x = ((image - mean) / std)[None].astype(np.float32)
    if detail["dtype"] == np.int8:
        scale, zero = detail["quantization"]
        x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert logits.shape == (1, 10) and np.all(np.isfinite(logits))

    scored = _r2kd("evaluate", os.path.join(out, "student.tflite"), f"--data_dir={val_dir}")
    assert scored.returncode == 0, scored.stderr[-3000:]
    with open(os.path.join(out, "student_eval", "evaluation.json")) as f:
        evaluation = json.load(f)
    assert evaluation["images"] == 40 and evaluation["class_names"] == sorted(FASHION)
    assert evaluation["top1"] == pytest.approx(student["export"]["accuracy_litert"])
    assert os.path.isfile(os.path.join(out, "student_eval", "confusion_matrix.png"))


@pytest.mark.large
def test_distill_bad_input_exits_with_one_line_and_writes_nothing(tmp_path):
    one = _colour_tree(tmp_path / "one", classes=1)
    out = str(tmp_path / "out")
    result = _r2kd("distill", f"--data_dir={one}", f"--output_dir={out}", timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: data_dir=")
    assert not os.path.exists(out)
    helped = _r2kd("distill", "--help", timeout=300)
    assert "--teacher_model" in helped.stdout and "--val_fraction" in helped.stdout
    exported = _r2kd("export", "--help", timeout=300)
    assert exported.returncode == 0 and "--quantize" in exported.stdout


@pytest.mark.large
def test_distill_with_a_keras_hub_teacher_from_a_preset_directory(tmp_path):
    preset = str(tmp_path / "hub")
    save_tiny_hub_classifier(preset, num_classes=3, size=32)
    config = _config(tmp_path, teacher=f"keras_hub:{preset}", image_size=32,
                     batch_size=4, validation_freq=0, steps_per_epoch=2)
    results = train.run(config)
    assert results["teacher"]["source"] == config.teacher
    assert results["teacher"]["val_accuracy"] is not None
    assert results["students"]["r2kd"]["steps"] == 2
