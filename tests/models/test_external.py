"""`keras:` and `keras_hub:` models, `.keras` files of any architecture, and
the offline failure of names that need a download."""

import os
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest

from r2kd_keras.data.preprocessing import resolve_normalization
from r2kd_keras.models import ChannelAffine, external, get_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_keras_application_gives_logits_for_the_data():
    model = get_model("keras:MobileNetV3Small", 7, (32, 32, 3))
    assert model.output_shape == (None, 7)
    assert model.layers[-1].get_config().get("activation") in (None, "linear")
    logits = np.asarray(model(np.random.default_rng(0).normal(size=(4, 32, 32, 3))))
    assert not np.allclose(logits.sum(-1), 1.0)


def _served(pixels, normalization):
    mean, std = resolve_normalization(normalization, pixels.shape[-1])
    return ((pixels / 255.0 - np.asarray(mean)) / np.asarray(std)).astype("float32")


def _first_conv_output(model, images):
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    return np.asarray(keras.Model(model.input, conv.output)(images))


# One application per preprocess_input mode: "tf" ([-1, 1]), "caffe" (BGR minus
# the mean), "torch" (ImageNet-normalised), none (preprocessing built in).
@pytest.mark.parametrize("application", ["MobileNetV2", "ResNet50", "DenseNet121",
                                         "EfficientNetB0", "MobileNetV3Small"])
@pytest.mark.parametrize("normalization", ["imagenet", "fashion_mnist"])
def test_keras_application_sees_what_its_preprocess_input_makes(application, normalization):
    pixels = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    model = get_model(f"keras:{application}", 5, (32, 32, 3), normalization=normalization)
    builder = getattr(keras.applications, application)
    plain = builder(input_shape=(32, 32, 3), weights=None, classes=5,
                    classifier_activation=None)
    plain.set_weights(model.get_weights())
    preprocess_input = sys.modules[builder.__module__].preprocess_input
    got = _first_conv_output(model, _served(pixels, normalization))
    want = _first_conv_output(plain, preprocess_input(pixels.copy()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_resnet50_input_is_bgr_pixels_minus_the_caffe_mean():
    model = get_model("keras:ResNet50", 5, (32, 32, 3))
    adapter = model.get_layer("model_input")
    rgb = np.array([[[[10.0, 120.0, 250.0]]]], "float32")
    got = np.asarray(adapter(_served(rgb, "imagenet")))
    np.testing.assert_allclose(got[0, 0, 0], [250 - 103.939, 120 - 116.779, 10 - 123.68],
                               atol=1e-3)


def test_densenet_on_imagenet_normalised_images_needs_no_adapter():
    model = get_model("keras:DenseNet121", 5, (32, 32, 3))
    assert not any(isinstance(layer, ChannelAffine) for layer in model.layers)


def test_grey_images_get_the_mean_colour_map():
    # MobileNetV2: pixels / 127.5 - 1 in every channel, so grey the same.
    model = get_model("keras:MobileNetV2", 5, (32, 32, 1), normalization=None)
    adapter = model.get_layer("model_input")
    np.testing.assert_allclose(np.asarray(adapter(np.full((1, 1, 1, 1), 0.5, "float32"))),
                               [[[[0.5 * 255 / 127.5 - 1]]]], atol=1e-6)


def test_pretrained_weights_file_loads_behind_the_adapter(tmp_path):
    # A weights file the way keras.applications ships them (legacy h5, no top),
    # read by the same code path as weights="imagenet".
    from keras.src.legacy.saving import legacy_h5_format

    source = keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None,
                                            include_top=False)
    path = str(tmp_path / "mobilenet_v2_no_top.h5")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    model = get_model("keras:MobileNetV2", 7, (32, 32, 3), weights=path)
    assert model.output_shape == (None, 7)
    assert isinstance(model.layers[1], ChannelAffine)
    for layer in (layer for layer in source.layers if layer.weights):
        for got, want in zip(model.get_layer(layer.name).get_weights(), layer.get_weights()):
            np.testing.assert_array_equal(got, want)


def test_keras_application_with_its_adapter_saves_and_loads(tmp_path):
    model = get_model("keras:MobileNetV2", 5, (32, 32, 3))
    path = str(tmp_path / "m.keras")
    model.save(path)
    x = np.random.default_rng(6).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(keras.saving.load_model(path)(x), model(x), atol=1e-6)


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
def save_tiny_hub_classifier(directory, num_classes=4, size=32, scale=None, offset=None):
    """A small KerasHub ResNet classifier (logits) saved with save_to_preset;
    with `scale` or `offset`, it has an image converter that applies them."""
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64], stackwise_num_blocks=[1], stackwise_num_strides=[1],
        block_type="basic_block", use_pre_activation=False, image_shape=(size, size, 3))
    preprocessor = None
    if scale is not None or offset is not None:
        preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(
            keras_hub.layers.ResNetImageConverter(scale=scale, offset=offset))
    classifier = keras_hub.models.ResNetImageClassifier(
        backbone=backbone, num_classes=num_classes, activation=None,
        preprocessor=preprocessor)
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


def test_keras_hub_preset_gets_its_image_converter_in_front(tmp_path):
    # ImageNet statistics as KerasHub's ResNet presets store them: on pixels.
    scale = [1 / (255 * s) for s in (0.229, 0.224, 0.225)]
    offset = [-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    directory = str(tmp_path / "with_converter")
    classifier = save_tiny_hub_classifier(directory, scale=scale, offset=offset)
    pixels = np.random.default_rng(7).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    for normalization in ("imagenet", "cifar100"):
        model = get_model(f"keras_hub:{directory}", 4, (32, 32, 3),
                          normalization=normalization)
        want = classifier(pixels * np.float32(scale) + np.float32(offset))
        np.testing.assert_allclose(model(_served(pixels, normalization)), want,
                                   rtol=1e-4, atol=1e-4)


def test_keras_hub_path_that_is_not_a_preset(tmp_path):
    pytest.importorskip("keras_hub")
    with pytest.raises(FileNotFoundError, match="is not a KerasHub preset directory"):
        external.load_hub_classifier(str(tmp_path))
