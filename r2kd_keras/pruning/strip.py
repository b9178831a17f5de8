"""After training: remove the wrappers (`strip_pruning`), measure (`get_sparsity`)."""

import keras
import numpy as np

from r2kd_keras.pruning import magnitude
from r2kd_keras.pruning.wrapper import PruneLowMagnitude


def copy_layer(layer):
    """A fresh, built copy of `layer` holding the same weight values.

    Example:
    >>> twin = copy_layer(model.get_layer("conv1"))
    """
    if not isinstance(layer, keras.layers.Layer):
        return layer  # a stateless operation of the graph (`x + 3.0`)
    copy = layer.__class__.from_config(layer.get_config())
    if layer.built and layer.weights:
        copy.build_from_config(layer.get_build_config())
        copy.set_weights(layer.get_weights())
    return copy


def _stripped_layer(wrapper):
    plain = copy_layer(wrapper.layer)
    for kernel, mask in zip(magnitude.prunable_kernels(plain), wrapper.masks):
        kernel.assign(kernel * mask)
    return plain


def strip_pruning(model):
    """A plain Keras model without pruning wrappers, zeros baked in.

    Every `PruneLowMagnitude` becomes a copy of its layer whose kernels are
    `kernel * mask`; other layers are copied as they are. The result has the
    same outputs, saves and exports like any Keras model, and shares no
    variables with `model`.

    Args:
        model: a `PruneLowMagnitude` layer, or a Sequential or functional
            model (models without wrappers are simply copied).

    Returns:
        A new layer or model of the same kind.

    Example:
    >>> final = strip_pruning(pruned_model)
    >>> final.export("student.tflite", format="litert")
    """
    if isinstance(model, PruneLowMagnitude):
        return _stripped_layer(model)
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a Keras model or a PruneLowMagnitude layer, "
            f"received: {model!r}"
        )

    def clone_layer(layer):
        if isinstance(layer, PruneLowMagnitude):
            return _stripped_layer(layer)
        return copy_layer(layer)

    return keras.models.clone_model(model, clone_function=clone_layer, recursive=True)


def get_sparsity(model):
    """Fraction of exact zeros in the prunable kernels, per layer and in total.

    Wrapped and stripped models give the same report (layers are keyed by
    the name of the Conv/Dense layer, not of its wrapper). Biases and
    BatchNorm are not counted.

    Args:
        model: a Keras model or layer, pruned, stripped or never pruned.

    Returns:
        `{"per_layer": {layer_name: fraction}, "total": fraction}`; the total
        weighs each layer by its number of kernel weights.

    Example:
    >>> get_sparsity(strip_pruning(pruned))["total"]
    0.8
    """
    per_layer, zeros, size = {}, 0, 0
    for layer in magnitude.walk_layers(model):
        kernels = [
            keras.ops.convert_to_numpy(k) for k in magnitude.prunable_kernels(layer)
        ]
        if not kernels or isinstance(layer, PruneLowMagnitude):
            continue
        layer_zeros = sum(int(np.count_nonzero(k == 0)) for k in kernels)
        layer_size = sum(k.size for k in kernels)
        per_layer[layer.name] = layer_zeros / layer_size
        zeros += layer_zeros
        size += layer_size
    if not size:
        raise ValueError(
            f"`model` '{model.name}' has no Conv or Dense kernel to measure."
        )
    return {"per_layer": per_layer, "total": zeros / size}
