"""The checks of `to_tflite`'s arguments, all made before anything is converted
or written, and the reading of its `representative_data` / `verify` inputs."""

import os

import keras
import numpy as np
import tensorflow as tf

from r2kd_keras import _paths
from r2kd_keras import labels as labels_lib
from r2kd_keras.pruning import pruning_wrappers
from r2kd_keras.pruning import strip_pruning
from r2kd_keras.validation import check_choice

QUANTIZE_MODES = (None, "dynamic", "float16", "int8")
INFERENCE_IO_TYPES = ("float32", "int8")


def student_of(model):
    """The Keras model to export: `model`, its `.student`, pruning wrappers stripped."""
    student = getattr(model, "student", None)
    if isinstance(student, keras.Model):
        model = student
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model or an object with a `.student` "
            f"keras.Model (e.g. R2KDDistiller); received: {type(model).__name__}"
        )
    return strip_pruning(model) if pruning_wrappers(model) else model


def check_options(quantize, representative_data, inference_io):
    """Raises ValueError for a `quantize` / `inference_io` choice that cannot work."""
    check_choice("quantize", quantize, QUANTIZE_MODES)
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "`quantize='int8'` needs `representative_data` (a few hundred "
            "typical inputs) to calibrate activation ranges; received: None"
        )
    check_choice("inference_io", inference_io, INFERENCE_IO_TYPES)
    if inference_io == "int8" and quantize != "int8":
        raise ValueError(
            "`inference_io='int8'` needs `quantize='int8'` (full integer); "
            f"received: quantize={quantize!r}"
        )


def check_positive_ints(**values):
    """Raises ValueError naming the first keyword whose value is not an int >= 1."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; received: {value!r}")


def check_path(path):
    """The target as a str; raises unless it is a `.tflite` file name in an existing directory."""
    path = _paths.as_path(path, "ending in '.tflite'")
    if not path.endswith(".tflite"):
        raise ValueError(
            f"`path` must end with '.tflite'; received: {path!r}"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"The directory of `path` does not exist: {directory!r} "
            f"(path={path!r}). Create it first."
        )
    if os.path.isdir(path):
        raise ValueError(f"`path` is a directory, not a file: {path!r}")
    return path


def fixed_input_shape(model):
    """The model's input shape; raises unless it is built with one fixed-size input."""
    if not model.built:
        raise ValueError(
            f"`model` '{model.name}' is not built; call it on a batch or "
            "build it with a fixed input shape before export."
        )
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        raise ValueError(
            f"`model` '{model.name}' must have exactly one input tensor "
            "(a functional or Sequential image model); received inputs: "
            f"{inputs}"
        )
    shape = tuple(inputs[0].shape)
    if any(dim is None for dim in shape[1:]):
        raise ValueError(
            f"`model` '{model.name}' has dynamic input dimensions {shape}; "
            "TFLite needs fixed height, width and channels. Rebuild it with "
            "e.g. keras.Input((32, 32, 3))."
        )
    return shape


def collect(data, name, input_shape, max_samples):
    """Reads up to `max_samples` inputs (and labels, if any) into numpy."""
    xs, ys = [], []
    count = 0
    for x, y in _elements(data, name):
        x = np.asarray(x, dtype=np.float32)
        if x.shape == input_shape[1:]:
            x = x[None]
            y = None if y is None else np.asarray(y)[None]
        if x.shape[1:] != input_shape[1:]:
            raise ValueError(
                f"`{name}` must hold inputs of shape {input_shape[1:]} (one "
                f"image) or {input_shape} (a batch); received an element of "
                f"shape {x.shape}"
            )
        xs.append(x)
        ys.append(y)
        count += len(x)
        if count >= max_samples:
            break
    if not count:
        raise ValueError(f"`{name}` yielded no inputs; received: {data!r}")
    x = np.concatenate(xs)[:max_samples]
    if any(y is None for y in ys):
        return x, None
    return x, labels_lib.to_class_ids(np.concatenate(ys)[:max_samples]).numpy()


def _elements(data, name):
    """Yields `(x, y_or_None)` from the input forms `to_tflite` accepts."""
    if isinstance(data, (str, bytes)):
        raise TypeError(
            f"`{name}` must hold arrays, not a file name; load it first "
            f"(e.g. np.load). Received: {data!r}"
        )
    if tf.is_tensor(data):
        data = np.asarray(data)
    if isinstance(data, np.ndarray):
        yield data, None
        return
    if (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(a, np.ndarray) for a in data)
    ):
        yield data
        return
    if callable(data) and not isinstance(data, tf.data.Dataset):
        data = data()
    if isinstance(data, tf.data.Dataset):
        data = data.as_numpy_iterator()
    try:
        iterator = iter(data)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a numpy array, an (x, y) tuple of arrays, a "
            "tf.data.Dataset, or a generator; received: "
            f"{type(data).__name__}"
        ) from None
    for element in iterator:
        if isinstance(element, (tuple, list)):
            yield element[0], (element[1] if len(element) > 1 else None)
        else:
            yield element, None

