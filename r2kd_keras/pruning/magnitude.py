"""Magnitude masks: the one piece of pruning maths shared by the one-shot
teacher pruning of R2KD and the scheduled student pruning."""

import keras
import numpy as np

PRUNABLE_LAYER_TYPES = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Dense,
)


def magnitude_mask(weights, sparsity):
    """Mask that zeroes the `round(sparsity * n)` smallest-|w| entries.

    Ties are broken by position so the count is exact, which is what
    `torch.nn.utils.prune.l1_unstructured` (the reference's pruner) does.

    Args:
        weights: array-like of any shape.
        sparsity: float in [0, 1), fraction of entries to zero.

    Returns:
        A float32 numpy array of 0s and 1s with the shape of `weights`.

    Example:
    >>> magnitude_mask(np.array([0.3, -0.1, 2.0, 0.05]), 0.5)
    array([1., 0., 1., 0.], dtype=float32)
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"`sparsity` must be in [0, 1), received: {sparsity}")
    flat = np.abs(np.asarray(weights, dtype=np.float64)).ravel()
    n_pruned = int(round(sparsity * flat.size))
    mask = np.ones(flat.size, dtype=np.float32)
    if n_pruned:
        mask[np.argsort(flat, kind="stable")[:n_pruned]] = 0.0
    return mask.reshape(np.shape(weights))


def prunable_kernels(layer):
    """The kernel variables of `layer` that magnitude pruning applies to.

    Biases, BatchNorm parameters and embeddings are never pruned.
    """
    if isinstance(layer, keras.layers.SeparableConv2D):
        return [layer.depthwise_kernel, layer.pointwise_kernel]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [layer.kernel]
    if isinstance(layer, PRUNABLE_LAYER_TYPES):
        return [layer.kernel]
    return []


def _leaf_layers(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not list(layer._flatten_layers(include_self=False, recursive=False)):
            yield layer


def prune_teacher(model, rate=0.1):
    """One-shot, layer-wise L1 magnitude pruning of a trained model (R2KD, 1).

    In every Conv and Dense kernel (the first conv and the classifier
    included) the `rate` fraction of smallest-|w| weights is set to zero.
    Biases and BatchNorm are untouched; there is no fine-tuning.

    Args:
        model: a built `keras.Model`. It is not modified.
        rate: float in [0, 1), the fraction of each kernel to zero.

    Returns:
        A new `keras.Model` with the same architecture and pruned weights.

    Example:
    >>> pruned = prune_teacher(teacher, rate=0.1)
    >>> blended = 0.7 * teacher(x) + 0.3 * pruned(x)
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"`rate` must be in [0, 1), received: {rate}")
    if not model.built:
        raise ValueError(
            f"`model` must be built before pruning; model '{model.name}' is not. "
            "Call it on a batch or build it with an input shape first."
        )
    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    kernels = [k for layer in _leaf_layers(pruned) for k in prunable_kernels(layer)]
    if not kernels:
        raise ValueError(
            f"`model` '{model.name}' has no Conv or Dense kernel to prune."
        )
    for kernel in kernels:
        value = keras.ops.convert_to_numpy(kernel)
        kernel.assign(value * magnitude_mask(value, rate))
    return pruned
