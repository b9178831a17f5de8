"""Magnitude masks: the one piece of pruning maths shared by the one-shot
teacher pruning of R2KD and the scheduled student pruning."""

import abc

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


class PrunableLayer(abc.ABC):
    """Mixin for a custom layer that says which of its weights are pruned.

    `prune_low_magnitude` wraps any layer that inherits from it and prunes
    exactly the variables `get_prunable_weights()` returns (tfmot's
    `PrunableLayer`). Return kernels, not biases.

    Example:
    >>> class Scale(keras.layers.Layer, PrunableLayer):
    ...     def build(self, input_shape):
    ...         self.w = self.add_weight(shape=(input_shape[-1], 4))
    ...     def call(self, x):
    ...         return x @ self.w
    ...     def get_prunable_weights(self):
    ...         return [self.w]
    """

    @abc.abstractmethod
    def get_prunable_weights(self):
        """The variables to prune (a list; empty before `build`)."""
        raise NotImplementedError


def walk_layers(layer):
    """`layer` and every layer nested in it, depth first, each once.

    Public recursion over `Model.layers` and `Wrapper.layer`, as tfmot's
    callbacks collect their layers.

    Example:
    >>> [l.name for l in walk_layers(model)]
    """
    seen, stack = set(), [layer]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        children = list(getattr(current, "layers", None) or [])
        if isinstance(current, keras.layers.Wrapper):
            children.append(current.layer)
        stack.extend(reversed(children))


def zero_lowest(scores, n_pruned):
    """0/1 mask zeroing the `n_pruned` lowest scores along the last axis.

    Example:
    >>> zero_lowest(keras.ops.convert_to_tensor([3.0, 1.0, 2.0]), 1)  # [1, 0, 1]

    Ranking twice (argsort of argsort) gives each entry its rank; ties are
    ranked by position, so exactly `n_pruned` entries are zeroed and the
    result is the same on every replica.
    """
    ranks = keras.ops.argsort(keras.ops.argsort(scores, axis=-1), axis=-1)
    return keras.ops.cast(ranks >= n_pruned, "float32")


def magnitude_mask_tensor(weights, sparsity):
    """In-graph `magnitude_mask`: keras.ops only, `sparsity` may be a tensor.

    Args:
        weights: tensor of any shape.
        sparsity: scalar (float or tensor) in [0, 1); not validated here.

    Returns:
        A 0/1 tensor with the shape and dtype of `weights`.

    Example:
    >>> magnitude_mask_tensor(keras.ops.ones((4, 4)), 0.25)  # 4 zeros
    """
    flat = keras.ops.reshape(keras.ops.abs(weights), (-1,))
    size = int(np.prod(weights.shape))
    # Rounding in float64 keeps the count identical to the numpy reference.
    n_pruned = keras.ops.cast(
        keras.ops.round(keras.ops.cast(sparsity, "float64") * size), "int32"
    )
    mask = keras.ops.reshape(zero_lowest(flat, n_pruned), weights.shape)
    return keras.ops.cast(mask, weights.dtype)


def block_magnitude_mask(weights, sparsity, block_size):
    """Magnitude mask over `block_size` blocks of a rank-2 tensor.

    Each block is scored by the mean |w| of its entries (partial blocks at
    the edges average only their real entries, like tfmot's "AVG" pooling
    with SAME padding); the `round(sparsity * n_blocks)` lowest blocks are
    zeroed.

    Args:
        weights: rank-2 tensor.
        sparsity: scalar in [0, 1).
        block_size: (height, width) of a block.

    Returns:
        A 0/1 tensor with the shape and dtype of `weights`.

    Example:
    >>> block_magnitude_mask(keras.ops.ones((4, 8)), 0.5, (1, 4))
    """
    rows, cols = weights.shape
    bh, bw = block_size
    pad = ((0, -rows % bh), (0, -cols % bw))
    grid = (-(-rows // bh), bh, -(-cols // bw), bw)
    sums = keras.ops.sum(
        keras.ops.reshape(keras.ops.pad(keras.ops.abs(weights), pad), grid),
        axis=(1, 3),
    )
    counts = keras.ops.sum(
        keras.ops.reshape(keras.ops.pad(keras.ops.ones_like(weights), pad), grid),
        axis=(1, 3),
    )
    block_mask = magnitude_mask_tensor(sums / counts, sparsity)
    mask = keras.ops.repeat(keras.ops.repeat(block_mask, bh, axis=0), bw, axis=1)
    return mask[:rows, :cols]


def m_by_n_mask(weights, m_by_n):
    """Structured mask: `m` zeros in every `n` consecutive input weights.

    Groups run along the input-channel axis (axis -2 of a Dense or Conv
    kernel), the layout sparse N:M kernels expect (tfmot's `sparsity_m_by_n`).

    Args:
        weights: tensor of rank >= 2 whose axis -2 is a multiple of `n`.
        m_by_n: (m, n), `m < n`.

    Returns:
        A 0/1 tensor with the shape and dtype of `weights`.

    Example:
    >>> m_by_n_mask(keras.ops.ones((8, 3)), (2, 4))  # 2:4 sparsity
    """
    m, n = m_by_n
    moved = keras.ops.moveaxis(keras.ops.abs(weights), -2, -1)
    groups = keras.ops.reshape(moved, (-1, n))
    mask = keras.ops.reshape(zero_lowest(groups, m), moved.shape)
    return keras.ops.cast(keras.ops.moveaxis(mask, -1, -2), weights.dtype)


def magnitude_mask(weights, sparsity):
    """Mask that zeroes the `round(sparsity * n)` smallest-|w| entries.

    Ties are broken by position so the count is exact, which is what
    `torch.nn.utils.prune.l1_unstructured` (the reference's pruner) does.
    This is the numpy face of `magnitude_mask_tensor`, which the scheduled
    pruning wrappers run in-graph.

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
    weights = np.asarray(weights, dtype=np.float64)
    mask = magnitude_mask_tensor(keras.ops.convert_to_tensor(weights), sparsity)
    return keras.ops.convert_to_numpy(mask).astype(np.float32)


def prunable_kernels(layer):
    """The kernel variables of `layer` that magnitude pruning applies to.

    Biases, BatchNorm parameters and embeddings are never pruned; a
    `PrunableLayer` chooses its own.
    """
    if isinstance(layer, PrunableLayer):
        return list(layer.get_prunable_weights() if layer.built else [])
    if isinstance(layer, keras.layers.SeparableConv2D):
        return [layer.depthwise_kernel, layer.pointwise_kernel]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [layer.kernel]
    if isinstance(layer, PRUNABLE_LAYER_TYPES):
        return [layer.kernel]
    return []


def _leaf_layers(model):
    for layer in walk_layers(model):
        if layer is not model and not isinstance(
            layer, (keras.Model, keras.layers.Wrapper)
        ):
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
