"""Cheaper frozen teachers: BatchNorm folded into the layer before it.

In inference mode a BatchNormalization is a fixed per-channel affine map,
`y = gamma * (x - mean) / sqrt(var + eps) + beta`. After a Conv or Dense layer
with no activation it can be merged into that layer's kernel and bias, which
removes one pass over every feature map. The teachers of `R2KDDistiller` are
frozen and run in inference mode, so they are built through
`inference_teacher`, which folds them (and casts them to a reduced-precision
compute dtype on request).
"""

import keras
import numpy as np

from r2kd_keras import _compat
from r2kd_keras.precision import reduced_precision_copy

# Layers whose kernel's last axis (for depthwise: last two) is the output
# channel, which is what a following BatchNorm scales.
_FOLDABLE = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Dense,
)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
# Layers that return their input unchanged in inference mode.
_INFERENCE_IDENTITY = (
    keras.layers.Identity,
    keras.layers.Dropout,  # and SpatialDropout1D/2D/3D, its subclasses
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)


def _graph_nodes(model):
    return [
        node
        for node in _compat.graph_nodes(model)
        if node.operation is not None and not node.is_input
    ]


def _channel_axis(layer, ndim):
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return 1
    return ndim - 1


def _unfoldable_reason(bn, bn_nodes, nodes_of, consumers, outputs):
    """Why `bn` cannot be folded into the layer before it, or None if it can."""
    if len(bn_nodes) != 1:
        return f"it is called {len(bn_nodes)} times in the model (shared layer)"
    node = bn_nodes[0]
    if node.arguments.kwargs.get("training") is True:
        return "it is called with training=True (batch statistics)"
    source = node.input_tensors[0]
    producer = _compat.producer_of(source)
    if not isinstance(producer, _FOLDABLE):
        return (
            f"its input comes from '{producer.name}' ({type(producer).__name__}), "
            "not from a Conv or Dense layer"
        )
    if len(nodes_of[id(producer)]) != 1:
        return f"'{producer.name}' is called more than once in the model (shared layer)"
    if producer.activation is not keras.activations.linear:
        return f"'{producer.name}' has an activation between it and the BatchNorm"
    if getattr(producer, "lora_enabled", False) or getattr(producer, "quantization_mode", None):
        return f"'{producer.name}' is LoRA-enabled or quantized"
    if consumers[id(source)] != 1 or id(source) in outputs:
        return f"the output of '{producer.name}' also feeds other layers or the model output"
    ndim = len(source.shape)
    axis = _channel_axis(producer, ndim)
    if bn.axis % ndim != axis:
        return (
            f"it normalises axis {bn.axis}, not the channel axis {axis} of '{producer.name}'"
        )
    return None


def _affine(bn):
    """`(scale, shift)` with `bn(x) == x * scale + shift` in inference mode."""
    weights = {w.path.rsplit("/", 1)[-1]: keras.ops.convert_to_numpy(w) for w in bn.weights}
    mean = weights["moving_mean"].astype("float64")
    variance = weights["moving_variance"].astype("float64")
    gamma = weights.get("gamma", np.ones_like(mean)).astype("float64")
    beta = weights.get("beta", np.zeros_like(mean)).astype("float64")
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return scale, beta - mean * scale


def _folded_weights(layer, bn):
    """The kernel and bias of `layer` followed by `bn`, computed in float64."""
    scale, shift = _affine(bn)
    weights = [w.astype("float64") for w in layer.get_weights()]
    kernel = weights[0]
    bias = weights[1] if layer.use_bias else np.zeros_like(shift)
    if isinstance(layer, _DEPTHWISE):
        # Output channel c * multiplier + m is input channel c, copy m.
        kernel = kernel * scale.reshape(kernel.shape[-2:])
    else:
        kernel = kernel * scale
    dtype = layer.get_weights()[0].dtype
    return [kernel.astype(dtype), (bias * scale + shift).astype(dtype)]


def fold_batchnorm(model, strict=False):
    """A copy of `model` with every foldable BatchNorm merged into its Conv/Dense.

    A BatchNormalization folds when it directly follows a Conv1D/2D/3D,
    DepthwiseConv1D/2D or Dense layer that has no activation, whose output
    feeds nothing else, and it normalises that layer's channel axis. The layer
    gets `kernel * scale` and `bias * scale + shift` (computed in float64) and
    the BatchNorm disappears; so do layers that are the identity in inference
    mode (Identity, Dropout and its spatial variants, GaussianNoise,
    GaussianDropout, AlphaDropout). Nested functional or Sequential models are
    folded recursively; a BatchNorm after a nested model's last layer, after
    an `Add` (pre-activation ResNets) or after a pooling layer stays in place.

    The copy equals `model(x, training=False)` up to float rounding and is for
    inference only: it has no batch statistics to train with.

    Args:
        model: a built functional or Sequential `keras.Model`. Not modified.
        strict: raise instead of leaving a BatchNorm that cannot be folded.

    Returns:
        A new functional `keras.Model` with the same name, inputs and outputs.

    Raises:
        ValueError: `model` is not a built functional/Sequential model, or
            `strict` and a BatchNorm cannot be folded (the error names it).

    Example:
    >>> teacher = r2kd_keras.models.get_model("resnet32x4", 100)
    >>> folded = fold_batchnorm(teacher)
    >>> np.allclose(folded(x), teacher(x, training=False), atol=1e-4)
    True
    """
    if not _compat.is_functional(model):
        raise ValueError(
            f"`fold_batchnorm` needs a functional or Sequential model; '{model.name}' "
            f"is a subclassed {type(model).__name__}. Fold the layers where it builds "
            "them, or pass fold=False / fold_teachers=False."
        )
    if not model.built:
        raise ValueError(
            f"`fold_batchnorm` needs a built model; '{model.name}' is not. Call it on "
            "a batch or give it an Input first."
        )
    if isinstance(model, keras.Sequential):
        # The same layers as a functional graph: one code path for both.
        model = keras.Model(model.inputs, model.outputs, name=model.name)

    nodes = _graph_nodes(model)
    nodes_of, consumers = {}, {}
    for node in nodes:
        nodes_of.setdefault(id(node.operation), []).append(node)
        for tensor in node.input_tensors:
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    outputs = {id(tensor) for tensor in model.outputs}

    folded_into = {}  # id(conv) -> its BatchNorm
    dropped = set()
    for layer in model.layers:
        if isinstance(layer, _INFERENCE_IDENTITY):
            dropped.add(id(layer))
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        reason = _unfoldable_reason(
            layer, nodes_of.get(id(layer), []), nodes_of, consumers, outputs
        )
        if reason is None:
            producer = _compat.producer_of(nodes_of[id(layer)][0].input_tensors[0])
            folded_into[id(producer)] = layer
            dropped.add(id(layer))
        elif strict:
            raise ValueError(
                f"fold_batchnorm(strict=True): BatchNorm '{layer.name}' of model "
                f"'{model.name}' cannot be folded: {reason}. Pass strict=False to "
                "leave it in place."
            )

    clones = []  # (original, copy) of every layer the copy calls

    def clone(layer):
        if id(layer) in dropped or not isinstance(layer, keras.layers.Layer):
            return layer  # `call` skips it; Keras ops in the graph (`x + 3`) have no state
        if isinstance(layer, keras.Model):
            copy = fold_batchnorm(layer, strict=strict)
        else:
            config = layer.get_config()
            if id(layer) in folded_into:
                config["use_bias"] = True
            copy = layer.__class__.from_config(config)
        clones.append((layer, copy))
        return copy

    def call(layer, *args, **kwargs):
        return args[0] if id(layer) in dropped else layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer, copy in clones:
        if id(layer) in folded_into:
            copy.set_weights(_folded_weights(layer, folded_into[id(layer)]))
        elif not isinstance(layer, keras.Model):  # nested models come folded
            copy.set_weights(layer.get_weights())
    folded.trainable = model.trainable
    return folded


def inference_teacher(model, dtype=None, fold=True):
    """The frozen, inference-only copy of a teacher that distillation runs.

    Args:
        model: a built `keras.Model` (the teacher or the pruned teacher;
            prune before folding, so that the zeros are those of the
            unfolded kernels).
        dtype: None or `"float32"` (no copy), `"bfloat16"` or `"float16"`:
            the compute dtype (see `precision.reduced_precision_copy`).
        fold: fold BatchNorm into the layers before it (`fold_batchnorm`).
            A subclassed model cannot be folded and is used unfolded.

    Returns:
        `model` itself when there is nothing to change, else a new,
        non-trainable model with the same outputs in inference mode.

    Example:
    >>> runner = inference_teacher(teacher, dtype="bfloat16")
    >>> logits = keras.ops.cast(runner(x, training=False), "float32")
    """
    runner = model
    if fold and _compat.is_functional(model):
        runner = fold_batchnorm(model)
    if dtype not in (None, "float32"):
        runner = reduced_precision_copy(runner, dtype)
    if runner is not model:
        runner.trainable = False
    return runner
