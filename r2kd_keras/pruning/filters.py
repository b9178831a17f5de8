"""Filter (channel) pruning: mask whole channel groups, then `shrink` them away.

`prune_filters` wraps every Conv/Dense layer whose channels may be removed
in `PruneFilters` (`filter_wrapper`), reading the channel groups from the
graph (`channels.ChannelGraph`: the channels tied by residual adds,
depthwise convs, BatchNorm, concatenation). At each pruning step the
lowest-scoring groups are masked, so a masked channel reaches nothing and
`shrink` (`pruning.shrinking`) can cut it out of every layer of its group: the
smaller network computes the same logits.
"""

import warnings

import keras

from r2kd_keras.pruning.channels import MODEL_OUTPUT
from r2kd_keras.pruning.channels import ChannelGraph
from r2kd_keras.pruning.filter_wrapper import IMPORTANCES
from r2kd_keras.pruning.filter_wrapper import SCOPES
from r2kd_keras.pruning.filter_wrapper import PruneFilters
from r2kd_keras.pruning.graph import is_graph_model
from r2kd_keras.pruning.schedules import ConstantSparsity
from r2kd_keras.pruning.shrinking import finalize  # noqa: F401 (old import path)
from r2kd_keras.pruning.shrinking import shrink  # noqa: F401 (old import path)
from r2kd_keras.pruning.strip import copy_layer
from r2kd_keras.pruning.wrapper import pruning_wrappers
from r2kd_keras.validation import check_choice

_PINNED = -1


def _filter_specs(model):
    """`{layer: (out_groups, in_groups)}` and the layers whose filters are all
    pinned, with the reason."""
    graph = ChannelGraph(model)
    ids = {root: i for i, root in enumerate(sorted(graph.groups()))}

    def group_ids(labels):
        return [ids.get(graph.group(label), _PINNED) for label in labels]

    specs, pinned = {}, {}
    for name, labels in graph.produced.items():
        outs = group_ids(labels)
        ins = group_ids(graph.consumed[name])
        if any(g >= 0 for g in outs + ins):
            specs[name] = (outs, ins)
        reason = graph.pinned_reason(labels[0])
        if all(g < 0 for g in outs) and reason != MODEL_OUTPUT:
            pinned[name] = reason
    return specs, pinned


def prune_filters(model, pruning_schedule=None, importance="l1", scope="layer",
                  strict=False):
    """Adds filter (channel) pruning to a functional or Sequential model.

    The model is cloned; every Conv/Dense layer that makes or reads a
    removable channel group is wrapped in `PruneFilters`. Train exactly as
    with `prune_low_magnitude` (`UpdatePruningStep` in `fit`, or
    `begin_pruning_step` / `apply_pruning_masks` in a `train_step`, e.g.
    inside `R2KDDistiller`), then `finalize` (or `shrink`) for a smaller
    dense model. The schedule's sparsity is the fraction of channel groups
    removed (of each group of tied layers with `scope="layer"`, of the whole
    model with `scope="global"`).

    Channels are tied across residual adds, depthwise convs, BatchNorm,
    concatenation and flattening, found from the graph; channels that reach
    the model's outputs, a channel shuffle, a grouped conv or a layer not
    known to be channel-wise are kept. Layers whose filters are all kept
    for such a reason are reported (a warning, or `ValueError` if `strict`);
    the classifier is kept silently.

    Args:
        model: a built Sequential or functional model.
        pruning_schedule: a `PruningSchedule`; default `ConstantSparsity(0.5, 0)`.
        importance: "l1" or "l2" norm of a filter's weights.
        scope: "layer" or "global" ranking.
        strict: raise instead of warning about layers that cannot be pruned.

    Returns:
        A new model of the same kind with `PruneFilters` layers.

    Example:
    >>> pruned = prune_filters(model, PolynomialDecay(0.0, 0.5, 0, 1000))
    >>> pruned.fit(ds, epochs=3, callbacks=[UpdatePruningStep()])
    >>> small = finalize(pruned)
    """
    check_choice("importance", importance, IMPORTANCES)
    check_choice("scope", scope, SCOPES)
    if pruning_schedule is None:
        pruning_schedule = ConstantSparsity(0.5, 0)
    if not is_graph_model(model):
        raise ValueError(
            f"`model` must be a Sequential or functional model; '{model.name}' is "
            f"a subclassed {type(model).__name__}, whose channel graph is unknown."
        )
    if not model.built:
        raise ValueError(f"`model` '{model.name}' must be built; give it an Input.")
    if pruning_wrappers(model):
        raise ValueError(
            f"`model` '{model.name}' is already pruned; call strip_pruning first."
        )
    specs, pinned = _filter_specs(model)
    if pinned:
        message = (
            f"prune_filters keeps every filter of {len(pinned)} layer(s) of "
            f"'{model.name}': " + "; ".join(f"'{n}': {r}" for n, r in pinned.items())
        )
        if strict:
            raise ValueError(message + ". Pass strict=False to allow this.")
        warnings.warn(message, stacklevel=2)
    if not specs:
        raise ValueError(
            f"`model` '{model.name}' has no channel that can be removed "
            "(every Conv/Dense output reaches a model output or a fixed layer)."
        )

    def clone_layer(layer):
        copy = copy_layer(layer)
        if layer.name not in specs:
            return copy
        outs, ins = specs[layer.name]
        return PruneFilters(copy, pruning_schedule, out_groups=outs, in_groups=ins,
                            importance=importance, scope=scope)

    return keras.models.clone_model(model, clone_function=clone_layer)
