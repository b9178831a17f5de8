"""Tests of `r2kd_keras.export`: every quantize mode on a small CNN trained on
real Fashion-MNIST images, checked against Keras by running the written file
in LiteRT here (not through the code under test); sizes, sparsity, bad input,
no partial files, and the command line."""

import gzip
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from r2kd_keras import export
from r2kd_keras.export import arguments
from r2kd_keras.pruning import ConstantSparsity
from r2kd_keras.pruning import begin_pruning_step
from r2kd_keras.pruning import magnitude_mask
from r2kd_keras.pruning import prune_low_magnitude

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUT_SHAPE = (32, 32, 3)

# Documented bounds (README, export section), relative to the largest |logit|
# of Keras on the same images. Measured on this CNN over 3 seeds, 1000 test
# images: float16 <= 5.8e-4 (weights keep 11 significant bits), dynamic
# <= 1.3e-2 (int8 weights, activations quantized per inference).
FLOAT16_RELATIVE_DIFF = 1e-3
DYNAMIC_RELATIVE_DIFF = 2.5e-2


def _read_idx(name, header, count, item_size):
    with gzip.open(os.path.join(FASHION_MNIST, name)) as f:
        raw = f.read(header + count * item_size)
    return np.frombuffer(raw, np.uint8, offset=header)


def _fashion_mnist(prefix, count, skip=0):
    """Images padded to 32x32, grey repeated to RGB, in [0, 1]; int labels."""
    total = skip + count
    images = _read_idx(f"{prefix}-images-idx3-ubyte.gz", 16, total, 784)
    labels = _read_idx(f"{prefix}-labels-idx1-ubyte.gz", 8, total, 1)
    images = images.reshape(total, 28, 28)[skip:]
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))[..., None].repeat(3, -1)
    return images.astype(np.float32) / 255.0, labels[skip:].astype(np.int64)


def _small_cnn(input_shape=INPUT_SHAPE):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same")(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


@pytest.fixture(scope="module")
def data():
    x_train, y_train = _fashion_mnist("train", 1000)
    x_test, y_test = _fashion_mnist("t10k", 200)
    return x_train, y_train, x_test, y_test


@pytest.fixture(scope="module")
def trained(data):
    x_train, y_train, _, _ = data
    keras.utils.set_random_seed(0)
    model = _small_cnn()
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train, y_train, batch_size=32, epochs=4, verbose=0)
    return model


@pytest.fixture(scope="module")
def sparse80(trained):
    """`trained` with 80% of every Conv/Dense kernel zeroed by magnitude."""
    model = keras.models.clone_model(trained)
    model.set_weights(trained.get_weights())
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            value = keras.ops.convert_to_numpy(layer.kernel)
            layer.kernel.assign(value * magnitude_mask(value, 0.8))
    return model


@pytest.fixture(scope="module")
def float32_export(trained, data, tmp_path_factory):
    """`trained` exported once in float32 and verified on the test images."""
    _, _, x_test, y_test = data
    path = tmp_path_factory.mktemp("float32") / "student.tflite"
    return export.to_tflite(trained, path, verify=(x_test, y_test))


def _litert(path, x):
    """The test's own LiteRT run: float in, float out, any io dtype."""
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y, inp


def _keras(model, x):
    return np.asarray(model(x, training=False))


def _only_file(directory, name):
    assert sorted(os.listdir(directory)) == [name]


def test_float32_matches_keras_and_report_is_consistent(trained, data, float32_export):
    _, _, x_test, y_test = data
    report = float32_export
    path = report.path

    _only_file(os.path.dirname(path), "student.tflite")
    expected = _keras(trained, x_test)
    got, inp = _litert(path, x_test)
    assert inp["dtype"] == np.float32
    assert np.max(np.abs(got - expected)) <= 1e-4
    with open(path, "rb") as f:
        raw = f.read()
    assert report.bytes_raw == len(raw)
    assert report.bytes_gzip == len(gzip.compress(raw, 9))
    assert report.max_abs_diff <= 1e-4
    assert report.num_verify == len(x_test)
    assert report.top1_agreement == 1.0
    assert report.accuracy_keras == pytest.approx(np.mean(expected.argmax(1) == y_test))
    # A few training steps on real images: well above the 10% of chance.
    assert report.accuracy_keras > 0.5
    assert report.weight_sparsity < 0.01
    assert report.quantize == "none" and report.input_scale is None
    assert 0 < report.latency_ms < 1000
    assert "max abs diff" in str(report) and str(path) in str(report)
    header = export.ExportReport.markdown_header().splitlines()[0]
    assert report.markdown_row().count("|") == header.count("|")


@pytest.mark.parametrize(
    "quantize, relative_bound",
    [("float16", FLOAT16_RELATIVE_DIFF), ("dynamic", DYNAMIC_RELATIVE_DIFF)],
)
def test_float16_and_dynamic_within_documented_bound(
    tmp_path, trained, data, float32_export, quantize, relative_bound
):
    _, _, x_test, _ = data
    path = tmp_path / f"{quantize}.tflite"
    float_size = float32_export.bytes_raw
    report = export.to_tflite(trained, path, quantize=quantize, verify=x_test)

    expected = _keras(trained, x_test)
    got, _ = _litert(path, x_test)
    assert np.max(np.abs(got - expected)) <= relative_bound * np.max(np.abs(expected))
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.97
    assert report.quantize == quantize
    # float16 halves the weights, int8 quarters them (plus graph overhead).
    assert report.bytes_raw < (0.6 if quantize == "float16" else 0.4) * float_size


@pytest.mark.parametrize("inference_io", ["int8", "float32"])
def test_int8_agrees_with_keras(tmp_path, trained, data, inference_io):
    x_train, y_train, x_test, _ = data
    path = tmp_path / "int8.tflite"
    report = export.to_tflite(
        trained,
        path,
        quantize="int8",
        representative_data=tf.data.Dataset.from_tensor_slices(
            (x_train, y_train)
        ).batch(50),
        verify=x_test,
        inference_io=inference_io,
        max_samples=300,
    )

    got, inp = _litert(path, x_test)
    agreement = np.mean(got.argmax(1) == _keras(trained, x_test).argmax(1))
    assert agreement >= 0.95
    assert report.top1_agreement == pytest.approx(agreement)
    if inference_io == "int8":
        assert inp["dtype"] == np.int8
        scale, zero_point = inp["quantization"]
        assert (report.input_scale, report.input_zero_point) == (scale, zero_point)
        # Calibration saw inputs in [0, 1]: the int8 range must cover them.
        assert scale * (127 - zero_point) >= 0.99 and scale * (-128 - zero_point) <= 0
    else:
        assert inp["dtype"] == np.float32 and report.input_scale is None


@pytest.mark.parametrize(
    "as_data, has_labels",
    [
        (lambda x, y: x, False),
        (lambda x, y: (x, y), True),
        (lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)).batch(32), True),
        (lambda x, y: tf.data.Dataset.from_tensor_slices((x, y)), True),
        (lambda x, y: tf.data.Dataset.from_tensor_slices(x).batch(16), False),
        (lambda x, y: (lambda: iter(x)), False),
        (lambda x, y: ((xi[None], yi[None]) for xi, yi in zip(x, y)), True),
        (lambda x, y: ((xi, np.eye(10)[yi]) for xi, yi in zip(x, y)), True),
    ],
    ids=[
        "array", "tuple", "batched_xy", "unbatched_xy", "batched_x",
        "generator_fn", "generator_xy", "generator_one_hot",
    ],
)
def test_input_forms_read_the_same_images_and_labels(data, as_data, has_labels):
    x_train, y_train, _, _ = data
    x, y = x_train[:64], y_train[:64]
    got_x, got_y = arguments.collect(as_data(x, y), "verify", (None,) + INPUT_SHAPE, 50)
    np.testing.assert_array_equal(got_x, x[:50])
    if has_labels:
        np.testing.assert_array_equal(got_y, y[:50])
    else:
        assert got_y is None


def test_sparse_model_is_small_after_gzip(tmp_path, sparse80, data, float32_export):
    _, _, x_test, _ = data
    dense = float32_export
    sparse = export.to_tflite(sparse80, tmp_path / "sparse.tflite", verify=x_test)

    kernels = [
        keras.ops.convert_to_numpy(layer.kernel)
        for layer in sparse80.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
    ]
    zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
    assert sparse.weight_sparsity == pytest.approx(zeros)
    assert sparse.weight_sparsity == pytest.approx(0.8, abs=0.01)
    assert sparse.bytes_gzip <= 0.35 * dense.bytes_gzip
    assert sparse.sparse_encoding
    # The same model stored dense is timed too, so the report says whether
    # LiteRT runs the sparse file any faster.
    assert 0 < sparse.dense_latency_ms < 1000
    assert "same model stored dense" in str(sparse)
    assert dense.dense_latency_ms is None
    got, _ = _litert(tmp_path / "sparse.tflite", x_test)
    assert np.max(np.abs(got - _keras(sparse80, x_test))) <= 1e-4

    plain = export.to_tflite(sparse80, tmp_path / "plain.tflite", sparsity=False)
    assert not plain.sparse_encoding
    assert sparse.bytes_raw < 0.5 * plain.bytes_raw


def test_sparse_dynamic_falls_back_to_a_dense_encoding_that_runs(
    tmp_path, sparse80, data
):
    _, _, x_test, _ = data
    path = tmp_path / "m.tflite"
    report = export.to_tflite(sparse80, path, quantize="dynamic")

    # DEFAULT + EXPERIMENTAL_SPARSITY does not prepare under XNNPACK.
    assert not report.sparse_encoding
    assert any("sparse encoding dropped" in note for note in report.notes)
    got, _ = _litert(path, x_test)
    expected = _keras(sparse80, x_test)
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.95
    _only_file(tmp_path, "m.tflite")


def test_pruning_wrapped_student_is_stripped(tmp_path, trained, data):
    _, _, x_test, _ = data
    wrapped = prune_low_magnitude(
        trained, pruning_schedule=ConstantSparsity(0.5, begin_step=0, frequency=1)
    )
    begin_pruning_step(wrapped)
    report = export.to_tflite(wrapped, tmp_path / "m.tflite")

    assert report.weight_sparsity == pytest.approx(0.5, abs=0.01)
    got, _ = _litert(tmp_path / "m.tflite", x_test)
    assert np.max(np.abs(got - _keras(wrapped, x_test))) <= 1e-4


def test_distiller_exports_its_student(tmp_path, trained, data):
    from r2kd_keras.distiller import R2KDDistiller

    _, _, x_test, _ = data
    distiller = R2KDDistiller(student=trained, teacher=None, distillation="none")
    export.to_tflite(distiller, tmp_path / "m.tflite")

    got, _ = _litert(tmp_path / "m.tflite", x_test)
    assert got.shape == (len(x_test), 10)
    assert np.max(np.abs(got - _keras(trained, x_test))) <= 1e-4


def _dynamic_model():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


@pytest.mark.parametrize(
    "name, kwargs, error, message",
    [
        ("m.lite", {}, ValueError, "'.tflite'"),
        ("m.tflite", {"quantize": "int4"}, ValueError, "'int4'"),
        ("m.tflite", {"quantize": "int8"}, ValueError, "representative_data"),
        ("m.tflite", {"inference_io": "int8"}, ValueError, "quantize=None"),
        ("m.tflite", {"inference_io": "uint8"}, ValueError, "'uint8'"),
        ("m.tflite", {"num_threads": 0}, ValueError, "num_threads"),
        ("m.tflite", {"max_samples": 0}, ValueError, "max_samples"),
        ("missing/m.tflite", {}, FileNotFoundError, "does not exist"),
        (
            "m.tflite",
            {"quantize": "int8", "representative_data": np.zeros((4, 28, 28, 1))},
            ValueError,
            "(4, 28, 28, 1)",
        ),
        ("m.tflite", {"verify": "images.npy"}, TypeError, "images.npy"),
    ],
)
def test_bad_arguments_fail_before_writing(tmp_path, trained, name, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        export.to_tflite(trained, tmp_path / name, **kwargs)
    assert os.listdir(tmp_path) == []


def test_bad_models(tmp_path):
    with pytest.raises(ValueError, match=r"dynamic input dimensions \(None, None, None, 3\)"):
        export.to_tflite(_dynamic_model(), tmp_path / "m.tflite")
    with pytest.raises(TypeError, match="keras.Model.*ndarray"):
        export.to_tflite(np.zeros(3), tmp_path / "m.tflite")
    assert os.listdir(tmp_path) == []


@pytest.fixture
def read_only_dir(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    immutable = shutil.which("chattr") and os.geteuid() == 0
    if immutable:  # root ignores permission bits
        subprocess.run(["chattr", "+i", str(directory)], check=False)
    try:
        (directory / "probe").write_bytes(b"")
    except OSError:
        yield directory
    else:
        (directory / "probe").unlink()
        pytest.skip("cannot make a directory read-only here")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=False)
        directory.chmod(0o755)


def test_unwritable_directory(trained, read_only_dir):
    with pytest.raises(PermissionError, match="Cannot write"):
        export.to_tflite(trained, read_only_dir / "m.tflite")
    assert os.listdir(read_only_dir) == []


def test_failed_conversion_keeps_existing_file_and_leaves_no_temp(tmp_path):
    # erfinv has no TFLite builtin kernel: the converter refuses the model.
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Lambda(lambda t: keras.ops.erfinv(keras.ops.tanh(t) * 0.5))(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    path = tmp_path / "m.tflite"
    path.write_bytes(b"previous model")

    with pytest.raises(Exception, match="Erfinv"):
        export.to_tflite(model, path)
    assert path.read_bytes() == b"previous model"
    _only_file(tmp_path, "m.tflite")


def _cli_args(tmp_path, trained, data):
    x_train, _, x_test, y_test = data
    trained.save(tmp_path / "student.keras")
    np.save(tmp_path / "calib.npy", x_train[:200])
    np.save(tmp_path / "x.npy", x_test)
    np.save(tmp_path / "y.npy", y_test)
    return [
        str(tmp_path / "student.keras"), str(tmp_path / "student_int8.tflite"),
        "--quantize", "int8", "--inference_io", "int8",
        "--representative_data", str(tmp_path / "calib.npy"),
        "--verify", str(tmp_path / "x.npy"),
        "--verify_labels", str(tmp_path / "y.npy"),
    ]


def _check_cli_output(stdout, tmp_path, trained, data):
    x_test = data[2]
    assert "input scale" in stdout and "top-1 accuracy" in stdout
    got, inp = _litert(tmp_path / "student_int8.tflite", x_test)
    assert inp["dtype"] == np.int8
    assert np.mean(got.argmax(1) == _keras(trained, x_test).argmax(1)) >= 0.95


def test_cli_end_to_end_int8(tmp_path, trained, data, capsys):
    assert export.main(_cli_args(tmp_path, trained, data)) == 0
    _check_cli_output(capsys.readouterr().out, tmp_path, trained, data)


@pytest.mark.large
def test_python_dash_m_end_to_end_int8(tmp_path, trained, data):
    result = subprocess.run(
        [sys.executable, "-m", "r2kd_keras.export", *_cli_args(tmp_path, trained, data)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    _check_cli_output(result.stdout, tmp_path, trained, data)


def test_cli_errors_exit_2_without_writing(tmp_path, trained, capsys):
    with pytest.raises(SystemExit) as exit_info:
        export.main([str(tmp_path / "nope.keras"), str(tmp_path / "m.tflite")])
    assert exit_info.value.code == 2
    assert "file not found" in capsys.readouterr().err

    trained.save(tmp_path / "student.keras")
    with pytest.raises(SystemExit) as exit_info:
        export.main(
            [str(tmp_path / "student.keras"), str(tmp_path / "m.tflite"),
             "--quantize", "int8"]
        )
    assert exit_info.value.code == 2
    assert "representative_data" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["student.keras"]
