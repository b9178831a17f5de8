"""`prune_low_magnitude`: wrap a layer, a Sequential or a functional model."""

import warnings

import keras
from keras.src.models.functional import Functional

from r2kd_keras.pruning.schedules import ConstantSparsity
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


def _is_plain_graph_model(model):
    return isinstance(model, (keras.Sequential, Functional))


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
        pruning_schedule: a `PruningSchedule`; default `ConstantSparsity(0.5, 0)`
            (note: `frequency=100`, so masks first update at step 100).
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
    if not _is_plain_graph_model(model):
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
