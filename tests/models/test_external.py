"""`keras:` and `keras_hub:` models, `.keras` files of any architecture, and
the offline failure of names that need a download."""

import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from r2kd_keras.models import external, get_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_keras_application_gives_logits_for_the_data():
    model = get_model("keras:MobileNetV3Small", 7, (32, 32, 3))
    assert model.output_shape == (None, 7)
    assert model.layers[-1].get_config().get("activation") in (None, "linear")
    # The pipelines normalise already: no built-in [0, 255] rescaling.
    assert not any(isinstance(layer, keras.layers.Rescaling) for layer in model.layers)
    logits = np.asarray(model(np.random.default_rng(0).normal(size=(4, 32, 32, 3))))
    assert not np.allclose(logits.sum(-1), 1.0)


def test_unknown_keras_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"student='keras:MobilenetV3small' is not a "
                       r"keras.applications model\. Did you mean keras:MobileNetV3Small"):
        external.check_name("student", "keras:MobilenetV3small")


def test_weights_only_for_keras_names():
    with pytest.raises(ValueError, match="weights='imagenet' applies to keras: names only"):
        get_model("resnet8", 10, weights="imagenet")


def test_a_hanging_look_up_counts_as_unreachable(monkeypatch):
    # A DNS look-up that never answers cannot be produced on demand here:
    # stand in for it with a connect that blocks far longer than the budget.
    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("gave up")

    monkeypatch.setattr(external.socket, "create_connection", hang)
    start = time.perf_counter()
    assert not external._reachable("example.org", seconds=1.0)
    assert time.perf_counter() - start < 3


_OFFLINE_CASES = [
    ("keras:MobileNetV2", "imagenet", external._KERAS_WEIGHTS_HOST, "models/"),
    ("keras_hub:resnet_18_imagenet", None, external._KAGGLE_HOST,
     "pass keras_hub:/path/to/my_preset"),
]


def _skip_if_online(host):
    if external._reachable(host):
        pytest.skip(f"{host} is reachable: this test needs no network")


@pytest.mark.parametrize("name, weights, host, where", _OFFLINE_CASES)
def test_download_needing_name_fails_fast_offline(tmp_path, monkeypatch, name, weights,
                                                  host, where):
    _skip_if_online(host)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(external.DownloadUnavailable) as error:
        get_model(name, 10, (32, 32, 3), weights=weights)
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert f"{host} is unreachable (no network)" in message and where in message
    if weights:
        assert os.path.join(str(tmp_path), "models") in message


_OFFLINE_SCRIPT = """
import sys, time
from r2kd_keras.models import external, get_model
for name, weights in [{cases}]:
    start = time.perf_counter()
    try:
        get_model(name, 10, (32, 32, 3), weights=weights)
    except external.DownloadUnavailable as error:
        print(f"RESULT {{time.perf_counter() - start:.2f}} {{error}}", flush=True)
"""


@pytest.mark.large
def test_download_needing_names_fail_fast_offline_in_a_fresh_process(tmp_path):
    for _, _, host, _ in _OFFLINE_CASES:
        _skip_if_online(host)
    cases = ", ".join(repr((name, weights)) for name, weights, _, _ in _OFFLINE_CASES)
    env = dict(os.environ, PYTHONPATH=REPO, KERAS_HOME=str(tmp_path),
               CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", _OFFLINE_SCRIPT.format(cases=cases)],
                            env=env, capture_output=True, text=True, timeout=300)
    results = [line.split(" ", 2)[1:] for line in result.stdout.splitlines()
               if line.startswith("RESULT ")]
    assert len(results) == len(_OFFLINE_CASES), result.stdout + result.stderr[-2000:]
    for (seconds, message), (_, _, host, where) in zip(results, _OFFLINE_CASES):
        assert float(seconds) < 10 and host in message and where in message


# -------------------------------------------------------------- .keras files
def _cnn(input_shape, classes, sequential=False):
    layers = [keras.layers.Conv2D(4, 3, activation="relu"),
              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(classes)]
    if sequential:
        return keras.Sequential([keras.Input(input_shape), *layers])
    inputs = keras.Input(input_shape)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("sequential", [False, True])
def test_saved_input_shape_is_read_without_loading(tmp_path, sequential):
    path = str(tmp_path / "t.keras")
    _cnn((48, 40, 1), 3, sequential).save(path)
    assert external.saved_input_shape(path) == (48, 40, 1)
    assert external.saved_input_shape(str(tmp_path / "missing.keras")) is None


def test_load_keras_file_loads_any_architecture(tmp_path):
    path = str(tmp_path / "t.keras")
    model = _cnn((16, 16, 3), 3)
    model.save(path)
    loaded = external.load_keras_file(path)
    x = np.random.default_rng(1).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    with pytest.raises(FileNotFoundError, match=r"teacher_model=.*t\.h5' is not a \.keras file"):
        external.load_keras_file(str(tmp_path / "t.h5"))


@pytest.mark.parametrize("classes, shape, message", [
    (5, (32, 32, 3), r"outputs 3 classes, but the data \(photos\) has 5 classes"),
    (3, (64, 64, 3), r"takes 32x32 images but the data is served at 64x64; "
                     r"pass --image_size=32"),
    (3, (32, 32, 1), r"takes 3-channel images but the data has 1 channels"),
])
def test_check_fits_says_what_differs(classes, shape, message):
    with pytest.raises(ValueError, match=message):
        external.check_fits("teacher_model='t.keras'", _cnn((32, 32, 3), 3), classes,
                            shape, "photos")


def test_check_fits_accepts_any_size_model():
    external.check_fits("t", _cnn((None, None, 3), 3), 3, (50, 50, 3), "photos")


# ------------------------------------------------------------------ KerasHub
def save_tiny_hub_classifier(directory, num_classes=4, size=32):
    """A small KerasHub ResNet classifier (logits) saved with save_to_preset."""
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64], stackwise_num_blocks=[1], stackwise_num_strides=[1],
        block_type="basic_block", use_pre_activation=False, image_shape=(size, size, 3))
    classifier = keras_hub.models.ResNetImageClassifier(
        backbone=backbone, num_classes=num_classes, activation=None)
    classifier.save_to_preset(directory)
    return classifier


@pytest.fixture(scope="module")
def hub_preset(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("hub") / "tiny_resnet")
    return directory, save_tiny_hub_classifier(directory)


def test_keras_hub_preset_directory_as_a_functional_model(hub_preset):
    directory, classifier = hub_preset
    model = get_model(f"keras_hub:{directory}", 4, (32, 32, 3))
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 4)
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(x), classifier(x), atol=1e-5)


def test_keras_hub_preset_with_other_classes_keeps_the_backbone(hub_preset):
    directory, classifier = hub_preset
    model = get_model(f"keras_hub:{directory}", 6, (32, 32, 3))
    assert model.output_shape == (None, 6)
    hub = model.layers[-1]
    expected = classifier.backbone.get_weights()
    for got, want in zip(hub.backbone.get_weights(), expected):
        np.testing.assert_array_equal(got, want)


def test_keras_hub_path_that_is_not_a_preset(tmp_path):
    pytest.importorskip("keras_hub")
    with pytest.raises(FileNotFoundError, match="is not a KerasHub preset directory"):
        external.load_hub_classifier(str(tmp_path))
