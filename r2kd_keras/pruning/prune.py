"""`prune_low_magnitude`: wrap a layer, a Sequential or a functional model."""

import contextlib
import warnings

import keras

from r2kd_keras.pruning.graph import FunctionalGraph
from r2kd_keras.pruning.graph import is_graph_model
from r2kd_keras.pruning.schedules import ConstantSparsity
from r2kd_keras.pruning.schedules import PolynomialDecay
from r2kd_keras.pruning.strip import copy_layer
from r2kd_keras.pruning.wrapper import PruneLowMagnitude
from r2kd_keras.pruning.wrapper import check_pruning_args
from r2kd_keras.pruning.wrapper import pruning_wrappers
from r2kd_keras.pruning.wrapper import unprunable_reason

# Layers with weights that are deliberately never pruned: no warning for them.
_NEVER_PRUNED = tuple(
    getattr(keras.layers, name)
    for name in (
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
    )
    if hasattr(keras.layers, name)
)


class PruningPolicy:
    """Decides which layers `prune_low_magnitude` may wrap (tfmot's policy).

    Subclass and override `allow_pruning(layer)` (return False to leave a
    layer dense, silently) and `ensure_model_supports_pruning(model)` (raise
    `ValueError` for a model the policy cannot handle).

    Example:
    >>> class KeepClassifierDense(PruningPolicy):
    ...     def allow_pruning(self, layer):
    ...         return layer.name != "logits"
    >>> pruned = prune_low_magnitude(model, pruning_policy=KeepClassifierDense())
    """

    def allow_pruning(self, layer):
        """Whether `layer` may be wrapped (True for every layer here)."""
        return True

    def ensure_model_supports_pruning(self, model):
        """Raise `ValueError` if the policy cannot handle `model`."""
        return None


class PruneForLatencyOnXNNPack(PruningPolicy):
    """Prunes only what XNNPACK's sparse inference can run (tfmot's policy).

    XNNPACK runs a subgraph sparse (NCHW, sparse 1x1 convolutions) when it
    starts with a 3x3 stride-2 VALID Conv2D on 3 input channels behind a
    `ZeroPadding2D(1)`, ends at a `GlobalAveragePooling2D(keepdims=True)`,
    and in between holds only 1x1 stride-1 Conv2D, 3x3/5x5 depthwise
    convolutions, BatchNorm, Add, Multiply, ZeroPadding2D, ReLU-like
    activations and bilinear UpSampling2D. This policy checks those rules
    (raising `ValueError` naming the first layer that breaks them) and wraps
    only the 1x1 Conv2D layers. Export with `export.to_tflite(...,
    sparsity=True)`; see docs/pruning.md for what was measured.

    Example:
    >>> pruned = prune_low_magnitude(
    ...     mobilenet, pruning_schedule=ConstantSparsity(0.8, 0),
    ...     pruning_policy=PruneForLatencyOnXNNPack())
    """

    _ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "sigmoid")

    def allow_pruning(self, layer):
        """Only 1x1 Conv2D layers are wrapped."""
        return isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1)

    def _padding_before(self, graph, layer, amount):
        producers = graph.producers(layer.name)
        if len(producers) != 1:
            return False
        pad = graph.layer(producers[0])
        return isinstance(pad, keras.layers.ZeroPadding2D) and tuple(
            map(tuple, pad.padding)
        ) == ((amount, amount), (amount, amount))

    def _is_start(self, graph, layer):
        return (
            type(layer) is keras.layers.Conv2D
            and tuple(layer.kernel.shape[:3]) == (3, 3, 3)
            and tuple(layer.strides) == (2, 2)
            and layer.padding == "valid"
            and self._padding_before(graph, layer, 1)
        )

    @staticmethod
    def _is_end(layer):
        return isinstance(layer, keras.layers.GlobalAveragePooling2D) and layer.keepdims

    def _supported(self, graph, layer):
        # XNNPACK's sparse subgraph rules (tfmot's `_check_layer_support`).
        layers = keras.layers
        if isinstance(layer, (layers.Add, layers.Multiply, layers.ZeroPadding2D,
                              layers.ReLU, layers.LeakyReLU, layers.ELU)):
            return True
        if isinstance(layer, layers.DepthwiseConv2D):
            size, strides = tuple(layer.kernel_size), tuple(layer.strides)
            if layer.depth_multiplier != 1 or tuple(layer.dilation_rate) != (1, 1):
                return False
            if size not in ((3, 3), (5, 5)):
                return False
            if strides == (1, 1):
                return layer.padding == "same"
            return strides == (2, 2) and layer.padding == "valid" and (
                self._padding_before(graph, layer, size[0] // 2)
            )
        if isinstance(layer, layers.Conv2D):
            return (layer.groups == 1 and tuple(layer.dilation_rate) == (1, 1)
                    and tuple(layer.kernel_size) == (1, 1)
                    and tuple(layer.strides) == (1, 1))
        if isinstance(layer, layers.GlobalAveragePooling2D):
            return layer.keepdims
        if isinstance(layer, layers.BatchNormalization):
            return layer.axis in (3, -1, [3], [-1])
        if isinstance(layer, layers.UpSampling2D):
            return layer.interpolation == "bilinear"
        if isinstance(layer, layers.Activation):
            return keras.activations.serialize(layer.activation) in self._ACTIVATIONS
        return False

    def _search(self, graph, sources, stop, step):
        """Layers where `stop` holds, reached from `sources` along `step`;
        empty if some path ends before reaching one."""
        to_visit, seen, found = list(sources), set(sources), set()
        while to_visit:
            name = to_visit.pop()
            if stop(name):
                found.add(name)
                continue
            following = step(name)
            if not following:
                return set()
            for other in following:
                if other not in seen:
                    seen.add(other)
                    to_visit.append(other)
        return found

    def ensure_model_supports_pruning(self, model):
        """Raises `ValueError` unless `model` has an XNNPACK-sparse subgraph."""
        if not model.built:
            raise ValueError(f"`model` '{model.name}' must be built.")
        graph = FunctionalGraph(model)
        starts = self._search(
            graph, [t[0] for t in graph.inputs],
            lambda n: graph.layer(n) is not None and self._is_start(graph, graph.layer(n)),
            graph.consumers,
        )
        if not starts:
            raise ValueError(
                f"PruneForLatencyOnXNNPack: model '{model.name}' has no XNNPACK "
                "sparse entry on every input branch: a Conv2D 3x3, stride 2, "
                "'valid' padding, on 3 input channels, right after "
                "ZeroPadding2D(1). Build the stem that way (a 'same' stride-2 "
                "conv pads asymmetrically, which XNNPACK's sparse path refuses)."
            )
        ends = self._search(
            graph, [t[0] for t in graph.outputs],
            lambda n: self._is_end(graph.layer(n)), graph.producers,
        )
        if not ends:
            raise ValueError(
                f"PruneForLatencyOnXNNPack: model '{model.name}' has no "
                "GlobalAveragePooling2D(keepdims=True) on every output branch; "
                "XNNPACK's sparse subgraph must end at one."
            )

        def check(name):
            if name in ends:
                return True
            layer = graph.layer(name)
            if layer is None or not self._supported(graph, layer):
                raise ValueError(
                    f"PruneForLatencyOnXNNPack: layer '{name}' "
                    f"({graph.class_name(name)}) between the stem and the "
                    f"global pooling of model '{model.name}' is not supported "
                    "by XNNPACK's sparse inference."
                )
            return False

        self._search(
            graph, [c for s in starts for c in graph.consumers(s)], check,
            graph.consumers,
        )


@contextlib.contextmanager
def prune_scope():
    """tfmot's `prune_scope`, for code written against tfmot.

    tfmot needed it to load Keras 2 h5 files holding its wrappers. Here every
    pruning class is registered with `keras.saving`, so `load_model` works
    without it; inside the scope the classes are also known by their bare
    names (as tfmot's scope provides them).

    Example:
    >>> with prune_scope():
    ...     model = keras.saving.load_model("pruned.keras")
    """
    objects = {
        "PruneLowMagnitude": PruneLowMagnitude,
        "ConstantSparsity": ConstantSparsity,
        "PolynomialDecay": PolynomialDecay,
    }
    with keras.saving.custom_object_scope(objects):
        yield


def prune_low_magnitude(to_prune, pruning_schedule=None, block_size=(1, 1),
                        sparsity_m_by_n=None, pruning_policy=None, strict=False):
    """Adds magnitude pruning to a layer or model (tfmot's API, Keras 3).

    A model is cloned (the original is left untouched); Conv1D/2D/3D,
    DepthwiseConv2D, SeparableConv2D and Dense layers are wrapped in
    `PruneLowMagnitude`. BatchNorm and other normalisation layers, biases
    and layers without weights are left alone; any other layer with weights
    (Embedding, RNNs, ...) is reported: a warning, or a `ValueError` if
    `strict`. Train with `UpdatePruningStep()` in `fit`, or call
    `begin_pruning_step` / `apply_pruning_masks` in a custom `train_step`;
    then `strip_pruning` for export.

    Args:
        to_prune: a Keras layer, a built Sequential or a functional model.
        pruning_schedule: a `PruningSchedule`; default `ConstantSparsity(0.5, 0)`,
            which (as in tfmot) prunes on the first batch, then every 100.
        block_size: (height, width) blocks pruned together (Dense kernels).
        sparsity_m_by_n: (m, n) for structured sparsity, e.g. (2, 4) zeroes 2
            of every 4 consecutive input weights of Conv/Dense kernels.
        pruning_policy: a `PruningPolicy` choosing which layers to prune.
        strict: raise instead of warning about layers that cannot be pruned.

    Returns:
        A `PruneLowMagnitude` layer, or a new model of the same kind.

    Example:
    >>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=2000)
    >>> pruned = prune_low_magnitude(model, pruning_schedule=schedule)
    >>> pruned.compile("sgd", "sparse_categorical_crossentropy")
    >>> pruned.fit(ds, epochs=5, callbacks=[UpdatePruningStep()])
    >>> final = strip_pruning(pruned)
    """
    if pruning_schedule is None:
        pruning_schedule = ConstantSparsity(0.5, 0)
    block_size, sparsity_m_by_n = check_pruning_args(block_size, sparsity_m_by_n)
    options = dict(pruning_schedule=pruning_schedule, block_size=block_size,
                   sparsity_m_by_n=sparsity_m_by_n)

    if not isinstance(to_prune, keras.Model):
        if not isinstance(to_prune, keras.layers.Layer):
            raise TypeError(
                "`to_prune` must be a Keras layer, Sequential or functional model, "
                f"received: {to_prune!r}"
            )
        return PruneLowMagnitude(to_prune, **options)

    model = to_prune
    if not is_graph_model(model):
        raise ValueError(
            f"`to_prune` must be a Sequential or functional model; '{model.name}' "
            f"is a subclassed {type(model).__name__}, which cannot be cloned. "
            "Wrap its layers with prune_low_magnitude(layer) where it builds them."
        )
    if not model.built:
        raise ValueError(
            f"`to_prune` model '{model.name}' must be built; call it on a batch "
            "or give it an Input first."
        )
    if pruning_wrappers(model):
        raise ValueError(
            f"`to_prune` model '{model.name}' is already pruned (it contains "
            "PruneLowMagnitude layers). Call strip_pruning(model) first to prune "
            "it again with new settings."
        )
    policy = pruning_policy or PruningPolicy()
    policy.ensure_model_supports_pruning(model)

    skipped = []

    def clone_layer(layer):
        copy = copy_layer(layer)
        # Keras ops in the graph (hard-swish's `x + 3` in MobileNetV3) are not layers.
        if not isinstance(layer, keras.layers.Layer):
            return copy
        if not layer.weights or isinstance(layer, _NEVER_PRUNED):
            return copy
        if not policy.allow_pruning(layer):
            return copy
        reason = unprunable_reason(layer, block_size, sparsity_m_by_n)
        if reason:
            skipped.append(f"'{layer.name}' ({type(layer).__name__}): {reason}")
            return copy
        return PruneLowMagnitude(copy, **options)

    pruned = keras.models.clone_model(model, clone_function=clone_layer, recursive=True)
    if skipped:
        message = (
            f"prune_low_magnitude left {len(skipped)} layer(s) of '{model.name}' "
            "dense: " + "; ".join(skipped)
        )
        if strict:
            raise ValueError(message + ". Pass strict=False to allow this.")
        warnings.warn(message, stacklevel=2)
    if not pruning_wrappers(pruned):
        raise ValueError(
            f"`to_prune` model '{model.name}' has nothing to prune: no Conv or "
            "Dense layer was allowed and compatible with the options given."
        )
    return pruned
