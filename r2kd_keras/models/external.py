"""Models from outside the zoo: `keras.applications`, KerasHub presets and
saved `.keras` files, as classifiers from images to logits.

Names:

- `keras:<Application>`, e.g. `keras:MobileNetV3Small`, `keras:EfficientNetB0`,
  `keras:ResNet50`: built by `keras.applications` for the dataset's classes
  and image shape, with `classifier_activation=None` (logits) and random
  weights unless `weights="imagenet"` is asked for (then an ImageNet backbone
  with a new classification head when the classes are not ImageNet's 1000).
- `keras_hub:/path/to/preset_dir` or `keras_hub:<preset_name>`: a KerasHub
  `ImageClassifier` (the directory written by `save_to_preset`, or a preset
  that KerasHub downloads).

Both take the images as `r2kd_keras.data` serves them (normalised, RGB) and
start with a `ChannelAffine` layer that turns those into the input their
weights were trained on: what the application's `preprocess_input` makes of
pixels (BGR minus the mean for ResNet50, [-1, 1] for MobileNetV2, [0, 255]
pixels for the models that preprocess inside, such as EfficientNet), or what
the preset's image converter makes of them. Fine-tuning ImageNet weights then
starts from the features they learnt, not from inputs ~100x off.

Nothing here waits on the network: a download that cannot happen fails within
seconds with `DownloadUnavailable`, which says where to put the file instead.
"""

import contextlib
import difflib
import importlib
import json
import os
import re
import socket
import threading
import urllib.error
import urllib.request
import zipfile

import keras
import numpy as np

from r2kd_keras.data.preprocessing import resolve_normalization
from r2kd_keras.models.layers import ChannelAffine

KERAS_PREFIX = "keras:"
KERAS_HUB_PREFIX = "keras_hub:"
IMAGENET_CLASSES = 1000
_CONNECT_SECONDS = 3.0
_READ_SECONDS = 60.0
_KERAS_WEIGHTS_HOST = "storage.googleapis.com"
_KAGGLE_HOST = "api.kaggle.com"
_HUGGING_FACE_HOST = "huggingface.co"


class DownloadUnavailable(FileNotFoundError):
    """A model needs a file from the network and the network is unreachable."""


def is_external(name):
    """Whether `name` is a `keras:` or `keras_hub:` model name.

    Example:
    >>> is_external("keras:MobileNetV2"), is_external("resnet8")
    (True, False)
    """
    return isinstance(name, str) and name.startswith((KERAS_PREFIX, KERAS_HUB_PREFIX))


def keras_application_names():
    """The model builders of `keras.applications`, e.g. `"MobileNetV3Small"`."""
    return sorted(n for n in dir(keras.applications) if n[:1].isupper())


def check_name(role, name):
    """Raises `ValueError` for an unknown `keras:` name (with close matches)
    or a malformed `keras_hub:` name; cheap, builds nothing.

    Args:
        role: what the model is for (`"teacher"`, `"student"`), for the message.
        name: a `keras:` or `keras_hub:` name.

    Example:
    >>> check_name("student", "keras:MobileNetV3Small")
    """
    if name.startswith(KERAS_PREFIX):
        _application(role, name)
    elif not name[len(KERAS_HUB_PREFIX):]:
        raise ValueError(
            f"{role}={name!r} names no preset; pass keras_hub:/path/to/preset_dir "
            "(a folder written by save_to_preset) or keras_hub:<preset name>."
        )


def _application(role, name):
    base = name[len(KERAS_PREFIX):]
    known = keras_application_names()
    if base in known:
        return getattr(keras.applications, base)
    close = _close_matches(base, known)
    hint = (f"Did you mean {', '.join(KERAS_PREFIX + c for c in close)}?"
            if close else f"Known: {', '.join(known)}.")
    raise ValueError(f"{role}={name!r} is not a keras.applications model. {hint}")


def _close_matches(name, known, count=5, cutoff=0.5):
    # Case-blind, best first; ties in name order (difflib's own ties run
    # backwards: EfficientNetB7 before B0).
    scored = [(difflib.SequenceMatcher(None, name.lower(), k.lower()).ratio(), k)
              for k in known]
    ranked = sorted((item for item in scored if item[0] >= cutoff),
                    key=lambda item: (-item[0], item[1]))
    return [k for _, k in ranked[:count]]


def get_model(name, num_classes, input_shape=None, weights=None, normalization="imagenet"):
    """Builds a `keras:` or `keras_hub:` classifier with logits out, taking
    images normalised with `normalization`.

    Args:
        name: `keras:<Application>`, `keras_hub:/path/to/preset_dir` or
            `keras_hub:<preset name>`.
        num_classes: int >= 2, width of the logits.
        input_shape: `(height, width, channels)`; None: the model's default.
        weights: `keras:` names only: None (random) or `"imagenet"` (or a
            weights file path, as `keras.applications` accepts).
        normalization: how the images it will be fed were normalised, as for
            `r2kd_keras.data.build_pipeline`: a name (`"imagenet"`,
            `"cifar100"`, `"fashion_mnist"`), a `(mean, std)` pair for images
            in [0, 1], or None for [0, 1] images. A first layer maps them to
            the input the model's weights expect (see the module docstring).

    Returns:
        A functional `keras.Model` from images to `num_classes` logits.

    Raises:
        ValueError: unknown name, or weights that do not apply.
        DownloadUnavailable: the weights or preset must be downloaded and the
            network is unreachable.

    Example:
    >>> student = get_model("keras:MobileNetV3Small", 10, (32, 32, 3))
    >>> student.output_shape
    (None, 10)
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} must be an int >= 2.")
    if name.startswith(KERAS_PREFIX):
        return _keras_application(name, num_classes, input_shape, weights, normalization)
    if weights is not None:
        raise ValueError(
            f"weights={weights!r} applies to keras: names only; {name!r} takes the "
            "preset's weights."
        )
    check_name("model", name)
    preset = name[len(KERAS_HUB_PREFIX):]
    task = load_hub_classifier(preset)
    if task.output_shape[-1] != num_classes:
        # KerasHub then keeps the backbone's weights and starts a new head.
        task = load_hub_classifier(preset, num_classes=num_classes)
    return as_functional(task, input_shape, name, normalization)


def _keras_application(name, num_classes, input_shape, weights, normalization):
    builder = _application("model", name)
    pretrained = weights is not None
    new_head = pretrained and num_classes != IMAGENET_CLASSES
    kwargs = dict(weights=weights)
    if new_head:
        kwargs.update(include_top=False, pooling="avg")
    else:
        kwargs.update(classes=num_classes, classifier_activation=None)
    if input_shape is None:
        # The application's own default (224, 299, ... by model).
        input_shape = builder(**{**kwargs, "weights": None}).input_shape[1:]
    inputs = keras.Input(tuple(input_shape))
    scale, offset, sources = _compose(normalization, input_shape[-1],
                                      *_preprocess_input_map(builder, name))
    adapted = _adapter(inputs, scale, offset, sources)
    host = _KERAS_WEIGHTS_HOST if pretrained and not os.path.isfile(str(weights)) else None
    with _downloads_allowed(host, _keras_cache_hint(name)):
        # Built on the adapter's output, so the adapter is a layer of the same
        # flat graph (pruning sees every layer).
        model = builder(input_tensor=adapted, input_shape=tuple(input_shape), **kwargs)
    outputs = model.output
    if new_head:
        outputs = keras.layers.Dense(num_classes, name="logits")(outputs)
    # Re-wrapped on the single input: built from a tensor, the application
    # takes a list of one and warns when called on a plain tensor.
    return keras.Model(inputs, outputs, name=model.name)


def _preprocess_input_map(builder, name):
    """`(gain, bias, source)` per output channel such that the application's
    `preprocess_input` gives `gain[j] * pixels[..., source[j]] + bias[j]` on
    [0, 255] RGB pixels; read by probing the function, so every application's
    mode (caffe, tf, torch, or none for models that preprocess inside) is
    handled by what Keras itself does."""
    preprocess = importlib.import_module(builder.__module__).preprocess_input
    probe = np.zeros((5, 1, 1, 3), "float32")
    for channel in range(3):
        probe[1 + channel, ..., channel] = 255.0
    probe[4] = [[[37.0, 142.0, 201.0]]]
    out = np.asarray(preprocess(probe.copy()), "float64")[:, 0, 0, :]
    bias = out[0]
    effect = (out[1:4] - bias) / 255.0  # effect[c, j]: of input c on output j
    source = np.argmax(np.abs(effect), axis=0)
    gain = effect[source, range(3)]
    predicted = gain * probe[4, 0, 0, source] + bias
    if sorted(source) != [0, 1, 2] or not np.allclose(predicted, out[4], rtol=1e-4, atol=1e-3):
        raise ValueError(
            f"{name}'s preprocess_input is not a scale and shift per channel, so its "
            "input cannot be made by one layer; build it with keras.applications and "
            "put its preprocessing in front yourself.")
    return gain, bias, source


def _compose(normalization, channels, gain, bias, source):
    """The `ChannelAffine` arguments from images normalised with
    `normalization` to `gain * pixels[source] + bias`."""
    stats = resolve_normalization(normalization, channels)
    mean, std = (np.asarray(v, "float64") for v in stats) if stats else (
        np.zeros(channels), np.ones(channels))
    if channels != 3:
        # A grey image is the same value in every colour channel.
        gain, bias, source = (np.full(channels, gain.mean()), np.full(channels, bias.mean()),
                              np.arange(channels))
    scale = gain * 255.0 * std[source]
    offset = gain * 255.0 * mean[source] + bias
    return scale, offset, source


def _adapter(inputs, scale, offset, source):
    """`inputs` through a `ChannelAffine`, or as they are when it would be the
    identity (e.g. ImageNet-normalised images into DenseNet)."""
    in_order = list(source) == list(range(len(source)))
    if in_order and np.allclose(scale, 1.0, atol=1e-6) and np.allclose(offset, 0.0, atol=1e-6):
        return inputs
    return ChannelAffine(scale.tolist(), offset.tolist(),
                         source_channels=None if in_order else [int(c) for c in source],
                         name="model_input")(inputs)


def _keras_cache_hint(name):
    folder = os.path.join(
        os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")),
        "models")
    return (f"{name} with weights='imagenet' needs its weights file in Keras's "
            f"cache folder: put it in {folder}/ (download it on a machine with "
            "network; building the model there fills that folder), or pass a local "
            "weights file.")


def load_hub_classifier(preset, **kwargs):
    """A KerasHub `ImageClassifier` from a preset directory or name.

    Args:
        preset: a directory written by `save_to_preset`, or a preset name
            (KerasHub downloads it: needs network).
        **kwargs: passed to `ImageClassifier.from_preset` (e.g. `num_classes`).

    Returns:
        The `keras_hub.models.ImageClassifier`.

    Raises:
        FileNotFoundError: a path that is not a preset directory.
        DownloadUnavailable: a preset name and no network.
        ImportError: keras-hub is not installed.

    Example:
    >>> classifier = load_hub_classifier("presets/my_resnet")
    """
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            f"keras_hub:{preset} needs the keras-hub package: pip install keras-hub."
        ) from error
    local = os.path.sep in preset or preset.startswith(".") or os.path.exists(preset)
    host = None
    if local:
        if not os.path.isfile(os.path.join(preset, "config.json")):
            raise FileNotFoundError(
                f"keras_hub:{preset} is not a KerasHub preset directory (no "
                "config.json in it). Pass a folder written by save_to_preset().")
    else:
        host = _HUGGING_FACE_HOST if preset.startswith("hf://") else _KAGGLE_HOST
    hint = (f"The KerasHub preset {preset!r} must be downloaded. On a machine with "
            f"network run keras_hub.models.ImageClassifier.from_preset({preset!r})"
            ".save_to_preset('my_preset'), copy the folder here and pass "
            "keras_hub:/path/to/my_preset.")
    with _downloads_allowed(host, hint):
        return keras_hub.models.ImageClassifier.from_preset(preset, **kwargs)


def as_functional(task, input_shape, name, normalization="imagenet"):
    """`task` (a KerasHub classifier) as a functional model on `input_shape`
    images (None: the task's own) normalised with `normalization`, named
    after `name`. A task with an image converter gets its scale and offset in
    front, applied to the pixels the images came from; one without takes the
    images as they are."""
    # A KerasHub task preprocesses only in predict(); calling it on a tensor
    # runs the backbone and head: images in, logits out, as the distiller needs.
    shape = tuple(input_shape) if input_shape else tuple(task.input_shape[1:])
    inputs = keras.Input(shape)
    converter = getattr(task.preprocessor, "image_converter", None)
    adapted = inputs
    if converter is not None:
        # The converter maps [0, 255] RGB pixels (KerasHub's convention).
        scale = 1.0 if converter.scale is None else converter.scale
        offset = 0.0 if converter.offset is None else converter.offset
        gain = np.broadcast_to(np.asarray(scale, "float64"), (3,))
        bias = np.broadcast_to(np.asarray(offset, "float64"), (3,))
        adapted = _adapter(inputs, *_compose(normalization, shape[-1], gain, bias,
                                             np.arange(3)))
    return keras.Model(inputs, task(adapted), name=_safe_name(name))


def _safe_name(name):
    return "".join(c if c.isalnum() else "_" for c in os.path.basename(name.rstrip("/")))


@contextlib.contextmanager
def _downloads_allowed(host, hint):
    """Runs the body; when `host` is set and unreachable, a download in it
    fails at once (cached files still load) with `DownloadUnavailable(hint)`."""
    if host is None:
        yield
        return
    if _reachable(host):
        # A stalled transfer then fails instead of hanging.
        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(_READ_SECONDS)
        try:
            yield
        finally:
            socket.setdefaulttimeout(previous_timeout)
        return
    message = f"{host} is unreachable (no network). {hint}"
    if host != _KERAS_WEIGHTS_HOST:
        # KerasHub downloads with `requests`, which ignores urllib's opener.
        raise DownloadUnavailable(message)
    previous = getattr(urllib.request, "_opener", None)
    urllib.request.install_opener(urllib.request.build_opener(_Refuse))
    try:
        yield
    except Exception as error:
        if "URL fetch failure" not in str(error):
            raise
        url = re.search(r"https?://[^\s:]+", str(error))
        where = f" The file: {url.group(0)}" if url else ""
        raise DownloadUnavailable(f"{message}{where}") from None
    finally:
        urllib.request.install_opener(previous)


class _Refuse(urllib.request.BaseHandler):
    # Sorted before the real handlers, so no socket (or DNS look-up) is opened.
    handler_order = 0

    def http_open(self, request):
        raise urllib.error.URLError(f"offline: {request.full_url}")

    https_open = http_open


def _reachable(host, port=443, seconds=_CONNECT_SECONDS):
    # In a thread: a DNS look-up ignores socket timeouts and can block for long.
    result = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=seconds).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(seconds)
    return bool(result and result[0])


# ------------------------------------------------------------ .keras files
def saved_input_shape(path):
    """The input shape `(height, width, channels)` recorded in a `.keras`
    file, read from its config without loading weights; None if unknown.

    Example:
    >>> saved_input_shape("teacher.keras")
    (224, 224, 3)
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    shape = (config.get("build_config") or {}).get("input_shape")
    if not shape:
        inputs = [layer for layer in config.get("config", {}).get("layers", [])
                  if layer.get("class_name") == "InputLayer"]
        shape = inputs[0]["config"].get("batch_shape") if inputs else None
    return tuple(shape[1:]) if shape else None


def load_keras_file(path, role="teacher_model"):
    """`keras.saving.load_model(path, compile=False)`; a file that needs
    KerasHub's layers loads once keras-hub is imported.

    Args:
        path: the `.keras` file.
        role: the flag it came from, for the messages.

    Raises:
        FileNotFoundError: no such file, or not a `.keras` file.
        ValueError: Keras cannot read it (message says why).

    Example:
    >>> teacher = load_keras_file("teacher.keras")
    """
    if not os.path.isfile(path) or not str(path).endswith(".keras"):
        raise FileNotFoundError(
            f"{role}={path!r} is not a .keras file. Pass a model saved with "
            "model.save('teacher.keras').")
    try:
        return keras.saving.load_model(path, compile=False)
    except (TypeError, ValueError) as error:
        if "keras_hub" not in str(error):
            raise ValueError(f"{role}={path!r} cannot be loaded: {error}") from None
    import keras_hub  # noqa: F401  registers KerasHub's layers

    return keras.saving.load_model(path, compile=False)


def check_fits(role, model, num_classes, input_shape, what):
    """Raises `ValueError` unless `model` gives `num_classes` logits for
    images of `input_shape`.

    Args:
        role: the flag the model came from, e.g. `"teacher_model='t.keras'"`.
        model: a `keras.Model`.
        num_classes: classes of the data.
        input_shape: `(height, width, channels)` of the served images.
        what: the data's name, for the message.

    Example:
    >>> check_fits("teacher_model='t.keras'", teacher, 10, (32, 32, 3), "fashion_mnist")
    """
    outputs = model.outputs or []
    classes = outputs[0].shape[-1] if len(outputs) == 1 else None
    if classes != num_classes:
        raise ValueError(
            f"{role} outputs {classes if classes else len(outputs)} "
            f"{'classes' if classes else 'tensors'}, but the data ({what}) has "
            f"{num_classes} classes. Pass a teacher trained on these classes, or omit "
            "the teacher flags to train one.")
    expected = tuple(model.input_shape[1:]) if model.inputs else None
    if expected is None or len(model.inputs) != 1:
        raise ValueError(f"{role} must take one image input; it takes {len(model.inputs)}.")
    if expected[-1] not in (None, input_shape[-1]):
        raise ValueError(
            f"{role} takes {expected[-1]}-channel images but the data has "
            f"{input_shape[-1]} channels.")
    if any(e not in (None, got) for e, got in zip(expected[:2], input_shape[:2])):
        raise ValueError(
            f"{role} takes {expected[0]}x{expected[1]} images but the data is served "
            f"at {input_shape[0]}x{input_shape[1]}; pass --image_size={expected[0]} "
            "(the images are resized, and the student built for that size).")
